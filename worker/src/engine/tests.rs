//! The conformance suite against both engines, plus what only the process engine promises (namespaces, surviving
//! the agent, user switching, log rotation).

use super::process::Isolation;
use super::suite::{self, Fixture};
use super::*;
use std::path::PathBuf;
use std::time::Duration;

/// A fresh state directory, removed when the test is done with it.
struct StateDir(PathBuf);

impl StateDir {
    fn new(name: &str) -> StateDir {
        let dir =
            std::env::temp_dir().join(format!("skep-engine-{name}-{}-{:x}", std::process::id(), rand::random::<u32>()));
        std::fs::create_dir_all(&dir).unwrap();
        StateDir(dir)
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn process_engine(name: &str) -> (ProcessEngine, StateDir) {
    let dir = StateDir::new(name);
    (ProcessEngine::new(dir.0.clone()), dir)
}

/// Each suite check on its own engine, so they run in parallel.
macro_rules! process_suite {
    ($($check:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $check() {
            let (e, _dir) = process_engine(stringify!($check));
            tokio::time::timeout(Duration::from_secs(90), suite::$check(&e, &Fixture::process()))
                .await
                .expect("suite check finished in time");
        }
    )*};
}

mod process_conformance {
    use super::*;
    process_suite!(
        start_logs_stop,
        exit_codes,
        missing_is_not_found,
        stop_signal_is_honoured,
        grace_period_ends_in_sigkill,
        adopt_checks_identity,
        remove_is_idempotent,
        env_and_workdir,
    );
}

/// The whole suite once more without namespaces (what an unprivileged agent gets).
#[tokio::test]
async fn process_suite_without_namespaces() {
    let (e, _dir) = process_engine("plain");
    let e = e.with_isolation(Isolation::None);
    assert!(!e.namespaced().await);
    tokio::time::timeout(Duration::from_secs(120), suite::run_all(&e, &Fixture::process())).await.expect("in time");
}

/// As root, a task lives in its own PID namespace (the supervisor is PID 1) with its own /proc.
#[tokio::test]
async fn process_tasks_get_pid_and_mount_namespaces() {
    let (e, _dir) = process_engine("ns");
    if !e.namespaced().await {
        println!("skipped: namespaces unavailable (not root, or unshare refused)");
        return;
    }
    let t = Fixture::process().task("echo \"pid=$$ ppid=$PPID procs=$(ls /proc | grep -c '^[0-9]')\"");
    e.prepare(&t).await.unwrap();
    let h = e.start(&t).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), e.wait(&h)).await.unwrap().unwrap();
    let out = String::from_utf8(e.logs(&t.id, 4096).await.unwrap()).unwrap();
    assert!(exit.success(), "{exit:?}: {out}");
    let field = |name: &str| -> u32 {
        out.split(&format!("{name}=")).nth(1).and_then(|s| s.split_whitespace().next()).unwrap().parse().unwrap()
    };
    assert_eq!(field("ppid"), 1, "the supervisor is PID 1 of the task's namespace: {out}");
    assert!(field("pid") < 10, "own PID namespace: {out}");
    assert!(field("procs") <= 5, "own /proc: {out}");
    e.remove(&t.id).await.unwrap();
}

/// Network namespace: the host's interfaces are not there, loopback works.
#[tokio::test]
async fn process_tasks_have_only_loopback() {
    let (e, _dir) = process_engine("net");
    if !e.namespaced().await {
        println!("skipped: namespaces unavailable (not root, or unshare refused)");
        return;
    }
    let t = Fixture::process().task("ip -o link show | cut -d: -f2; ip -o addr show lo | grep -c 127.0.0.1");
    e.prepare(&t).await.unwrap();
    let h = e.start(&t).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), e.wait(&h)).await.unwrap().unwrap();
    let out = String::from_utf8(e.logs(&t.id, 4096).await.unwrap()).unwrap();
    assert!(exit.success(), "{exit:?}: {out}");
    let links: Vec<&str> = out.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert_eq!(links, vec!["lo", "1"], "only lo, with 127.0.0.1: {out}");
    e.remove(&t.id).await.unwrap();
}

/// A task outlives the engine instance that started it (an agent restart): a new instance adopts it by handle,
/// waits for it by polling /proc, gets its exit code from the supervisor's exit file, and can stop it.
#[tokio::test]
async fn process_tasks_survive_an_agent_restart() {
    let state = StateDir::new("restart");
    let dir = state.0.clone();
    let fx = Fixture::process();
    let long = fx.task("trap 'exit 5' TERM; echo ready; while :; do sleep 0.1; done");
    let short = fx.task("sleep 1; exit 4");
    let (hl, hs) = {
        let first = ProcessEngine::new(dir.clone());
        first.prepare(&long).await.unwrap();
        first.prepare(&short).await.unwrap();
        let hl = first.start(&long).await.unwrap();
        let hs = first.start(&short).await.unwrap();
        assert!(suite::logs_contain(&first, &long.id, "ready").await);
        (hl, hs)
        // `first` is dropped here, children and all, as when the agent exits.
    };
    let second = ProcessEngine::new(dir.clone());
    let listed = second.list().await.unwrap();
    assert!(listed.contains(&hl) && listed.contains(&hs), "{listed:?}");
    let adopted = second.adopt(&[hl.clone(), hs.clone()]).await;
    assert_eq!(adopted, vec![(hl.clone(), true), (hs.clone(), true)]);
    // Not our child any more: the exit code comes from the exit file.
    let exit = tokio::time::timeout(Duration::from_secs(10), second.wait(&hs)).await.unwrap().unwrap();
    assert_eq!(exit, Exit::Code(4));
    second.stop(&hl, &long).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(10), second.wait(&hl)).await.unwrap().unwrap();
    assert_eq!(exit, Exit::Code(5));
    assert_eq!(second.adopt(std::slice::from_ref(&hl)).await, vec![(hl.clone(), false)]);
    second.remove(&long.id).await.unwrap();
    second.remove(&short.id).await.unwrap();
    assert!(second.list().await.unwrap().is_empty());
}

/// `User` switches uid/gid (root only); an unknown user is rejected before start.
#[tokio::test]
async fn process_user_is_applied() {
    let (e, _dir) = process_engine("user");
    let fx = Fixture::process();
    let mut bad = fx.task("true");
    bad.spec.container_spec.as_mut().unwrap().user = "skep-no-such-user".into();
    let err = e.prepare(&bad).await.unwrap_err();
    assert!(matches!(err, EngineError::Invalid(_)), "{err:?}");
    if !nix::unistd::geteuid().is_root() {
        println!("skipped the uid switch: not root");
        return;
    }
    let mut t = fx.task("echo \"ids=$(id -u):$(id -g)\"");
    t.spec.container_spec.as_mut().unwrap().user = "4321:4322".into();
    e.prepare(&t).await.unwrap();
    let h = e.start(&t).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(20), e.wait(&h)).await.unwrap().unwrap().success());
    assert!(suite::logs_contain(&e, &t.id, "ids=4321:4322").await);
    e.remove(&t.id).await.unwrap();
}

/// Output beyond the log limit is rotated while the task runs, and the tail stays readable.
#[tokio::test]
async fn process_logs_are_bounded() {
    let (e, _dir) = process_engine("logs");
    let e = e.with_log_limit(16 << 10);
    // Six bursts of ~31 KB, each followed by a pause long enough for a rotation check (every second).
    let t = Fixture::process().task(
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; i=$((i+1)); \
         [ $((i % 500)) -eq 0 ] && sleep 1.2; done; echo done",
    );
    e.prepare(&t).await.unwrap();
    let h = e.start(&t).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(30), e.wait(&h)).await.unwrap().unwrap().success());
    let tail = e.logs(&t.id, 100).await.unwrap();
    assert!(String::from_utf8_lossy(&tail).ends_with("done\n"));
    let dir = e.task_dir(&t.id);
    let kept = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
    assert!(kept("stdout.log.1") > 0, "rotated");
    let total = kept("stdout.log") + kept("stdout.log.1");
    assert!(total < 100 << 10, "bounded: {total} of ~186 KB kept");
    e.remove(&t.id).await.unwrap();
}

/// Signal names in every spelling Docker accepts.
#[test]
fn signals_parse_like_docker() {
    use nix::sys::signal::Signal;
    for s in ["SIGTERM", "TERM", "term", "15", ""] {
        assert_eq!(spec::parse_signal(s).unwrap(), Signal::SIGTERM, "{s}");
    }
    assert_eq!(spec::parse_signal("SIGUSR1").unwrap(), Signal::SIGUSR1);
    assert_eq!(spec::parse_signal("kill").unwrap(), Signal::SIGKILL);
    assert!(matches!(spec::parse_signal("SIGBOGUS"), Err(EngineError::Invalid(_))));
    assert!(matches!(spec::parse_signal("99"), Err(EngineError::Invalid(_))));
}

#[test]
fn task_names_follow_docker() {
    let mut t = Fixture::process().task("true");
    t.id = "abc".into();
    t.service_id = "svc1".into();
    t.node_id = "node1".into();
    assert_eq!(spec::task_name(&t), "svc1.1.abc");
    t.labels.insert(spec::LABEL_SERVICE_NAME.into(), "web".into());
    t.slot = 0;
    assert_eq!(spec::task_name(&t), "web.node1.abc");
    assert!(spec::check_task_id("../x").is_err() && spec::check_task_id("").is_err());
}

// ----- Docker -----

const TEST_IMAGE: &str = "skep-test-busybox:latest";
const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Runs a command with a time bound; `Err` says why it did not succeed.
async fn sh(what: &str, cmd: &mut tokio::process::Command, limit: Duration) -> Result<(), String> {
    cmd.kill_on_drop(true).stdin(std::process::Stdio::null());
    match tokio::time::timeout(limit, cmd.output()).await {
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(format!("{what}: {}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim())),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out")),
    }
}

/// Makes sure `skep-test-busybox:latest` exists: `FROM scratch` + Debian's static busybox as /bin/sh.
async fn ensure_test_image(e: &DockerEngine) -> Result<(), String> {
    if e.client().inspect_image(TEST_IMAGE).await.is_ok() {
        return Ok(());
    }
    let find = || ["/bin/busybox", "/usr/bin/busybox"].into_iter().map(PathBuf::from).find(|p| p.exists());
    if find().is_none() {
        sh(
            "apt-get install busybox-static",
            tokio::process::Command::new("apt-get").args(["install", "-y", "-q", "busybox-static"]),
            Duration::from_secs(180),
        )
        .await?;
    }
    let busybox = find().ok_or("busybox-static installed no busybox")?;
    let ctx_dir = StateDir::new("image");
    let ctx = ctx_dir.0.clone();
    std::fs::copy(&busybox, ctx.join("busybox")).map_err(|e| e.to_string())?;
    // FROM scratch cannot RUN, so busybox is copied in as the shell too; sleep, pwd and friends are builtins of its
    // standalone shell.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nENV PATH=/bin\n",
    )
    .map_err(|e| e.to_string())?;
    let built = sh(
        "docker build",
        tokio::process::Command::new("docker")
            .args(["build", "-q", "-t", TEST_IMAGE])
            .arg(&ctx)
            .env("DOCKER_BUILDKIT", "0"),
        Duration::from_secs(180),
    )
    .await;
    drop(ctx_dir);
    built
}

/// Connects to the local daemon and makes the test image, or says why not.
async fn docker_fixture() -> Result<DockerEngine, String> {
    if !std::path::Path::new(DOCKER_SOCKET).exists() {
        return Err(format!("{DOCKER_SOCKET} does not exist"));
    }
    let e = tokio::time::timeout(Duration::from_secs(10), DockerEngine::connect(DOCKER_SOCKET))
        .await
        .map_err(|_| "connecting to docker timed out".to_string())?
        .map_err(|e| format!("docker: {e}"))?;
    tokio::time::timeout(Duration::from_secs(10), e.client().ping())
        .await
        .map_err(|_| "docker ping timed out".to_string())?
        .map_err(|e| format!("docker ping: {e}"))?;
    ensure_test_image(&e).await?;
    Ok(e)
}

#[tokio::test]
async fn docker_suite() {
    let e = match docker_fixture().await {
        Ok(e) => e,
        Err(why) => {
            println!("skipped the docker engine suite: {why}");
            return;
        }
    };
    tokio::time::timeout(Duration::from_secs(300), suite::run_all(&e, &Fixture::image(TEST_IMAGE)))
        .await
        .expect("docker suite finished in time");
}

/// Docker-only details: labels, name, restart policy, and a missing executable reported as NotFound at start.
#[tokio::test]
async fn docker_containers_are_labelled_and_never_restarted() {
    let e = match docker_fixture().await {
        Ok(e) => e,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let fx = Fixture::image(TEST_IMAGE);
    let mut t = fx.task("exit 0");
    t.service_id = "svcX".into();
    t.slot = 3;
    e.prepare(&t).await.unwrap();
    let id = e.list().await.unwrap().into_iter().find(|h| h.task_id == t.id).unwrap().id;
    let c = e.client().inspect_container(&id, None).await.unwrap();
    assert_eq!(c.name.as_deref(), Some(format!("/svcX.3.{}", t.id).as_str()));
    let labels = c.config.unwrap().labels.unwrap();
    assert_eq!(labels.get(spec::LABEL_TASK_ID), Some(&t.id));
    assert_eq!(labels.get(spec::LABEL_SERVICE_ID).map(String::as_str), Some("svcX"));
    assert_eq!(labels.get(spec::LABEL_SLOT).map(String::as_str), Some("3"));
    assert_eq!(labels.get(spec::LABEL_NODE_ID).map(String::as_str), Some("suitenode"));
    let policy = c.host_config.unwrap().restart_policy.unwrap().name;
    assert_eq!(policy, Some(bollard::models::RestartPolicyNameEnum::NO));
    e.remove(&t.id).await.unwrap();

    let mut t = fx.task("");
    t.spec.container_spec.as_mut().unwrap().command = vec!["/skep-no-such-binary".into()];
    e.prepare(&t).await.unwrap();
    let err = e.start(&t).await.unwrap_err();
    assert!(err.is_not_found(), "{err:?}");
    e.remove(&t.id).await.unwrap();
}
