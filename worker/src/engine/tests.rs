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

/// The task init binary cargo builds with the crate's integration tests (`target/<profile>/skep-task-init`), or
/// `$SKEP_TASK_INIT`.
pub(crate) fn test_init() -> PathBuf {
    if let Some(p) = std::env::var_os(process::INIT_ENV) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("own executable");
    let deps = exe.parent().expect("deps dir");
    [deps.join("skep-task-init"), deps.parent().expect("profile dir").join("skep-task-init")]
        .into_iter()
        .find(|p| p.is_file())
        .expect("skep-task-init is not built: `cargo build -p skep-worker --bin skep-task-init`")
}

fn process_engine(name: &str) -> (ProcessEngine, StateDir) {
    let dir = StateDir::new(name);
    (ProcessEngine::new(dir.0.clone()).with_init(test_init()), dir)
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
        log_records,
        healthchecks,
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

/// Without namespaces, what needs them is refused with a reason, never ignored.
#[tokio::test]
async fn process_without_namespaces_refuses_mounts_hostnames_sysctls_and_files() {
    let (e, _dir) = process_engine("plain-refusals");
    let e = e.with_isolation(Isolation::None);
    let fx = Fixture::process();
    let mut with_mount = fx.task("true");
    with_mount.spec.container_spec.as_mut().unwrap().set_field("Mounts", serde_json::json!([{"Type": "tmpfs", "Target": "/skep-never-mounted"}]),
    ).unwrap();
    let mut with_hostname = fx.task("true");
    with_hostname.spec.container_spec.as_mut().unwrap().hostname = "h1".into();
    let mut with_sysctl = fx.task("true");
    with_sysctl.spec.container_spec.as_mut().unwrap().set_field("Sysctls", serde_json::json!({"net.ipv4.ip_default_ttl": "33"}),
    ).unwrap();
    for (t, what) in [(&with_mount, "Mounts"), (&with_hostname, "Hostname"), (&with_sysctl, "Sysctls")] {
        let err = e.prepare(t).await.unwrap_err();
        assert!(err.to_string().starts_with(&format!("{what} needs the task's own namespaces")), "{err}");
    }
    let file = TaskFile { target: "/run/secrets/x".into(), data: b"s".to_vec(), uid: 0, gid: 0, mode: 0o400 };
    let err = e.use_files("t1", vec![file]).unwrap_err();
    assert!(err.to_string().contains("own mount namespace"), "{err}");
}

/// As root, a task lives in its own PID namespace (the supervisor is PID 1) with its own /proc.
#[tokio::test]
async fn process_tasks_get_pid_and_mount_namespaces() {
    let (e, _dir) = process_engine("ns");
    if !e.namespaced().await {
        println!("skipped: namespaces unavailable (not root, or the kernel refused them)");
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

/// A healthcheck runs inside the task's namespaces: it sees the task's hostname and its own /proc.
#[tokio::test]
async fn process_healthchecks_run_in_the_tasks_namespaces() {
    let (e, _dir) = process_engine("hcns");
    if !e.namespaced().await {
        println!("skipped: namespaces unavailable (not root, or the kernel refused them)");
        return;
    }
    let mut t = Fixture::process().task("sleep 60");
    let c = t.spec.container_spec.as_mut().unwrap();
    c.hostname = "hc-inside".into();
    c.healthcheck = Some(serde_json::json!({
        "Test": ["CMD-SHELL", "test \"$(hostname)\" = hc-inside && test $(ls /proc | grep -c '^[0-9]') -le 8"],
        "Interval": 200_000_000i64, "Retries": 1,
    }));
    e.prepare(&t).await.unwrap();
    let h = e.start(&t).await.unwrap();
    let (tx, mut rx) = tokio::sync::watch::channel(skep_api::docker::health::Health::Starting);
    let watching = e.watch_health(&h, &t, tx);
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            _ = watching => panic!("no check"),
            _ = rx.changed() => *rx.borrow(),
        }
    })
    .await
    .expect("a verdict in time");
    assert_eq!(got, skep_api::docker::health::Health::Healthy);
    e.stop(&h, &t).await.unwrap();
    let _ = e.wait(&h).await;
    e.remove(&t.id).await.unwrap();
}

/// Network namespace: the host's interfaces are not there, loopback works.
#[tokio::test]
async fn process_tasks_have_only_loopback() {
    let (e, _dir) = process_engine("net");
    if !e.namespaced().await {
        println!("skipped: namespaces unavailable (not root, or the kernel refused them)");
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
        let first = ProcessEngine::new(dir.clone()).with_init(test_init());
        first.prepare(&long).await.unwrap();
        first.prepare(&short).await.unwrap();
        let hl = first.start(&long).await.unwrap();
        let hs = first.start(&short).await.unwrap();
        assert!(suite::logs_contain(&first, &long.id, "ready").await);
        (hl, hs)
        // `first` is dropped here, children and all, as when the agent exits.
    };
    let second = ProcessEngine::new(dir.clone()).with_init(test_init());
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

/// Output beyond the log limits is rotated by the supervisor while the task runs, and the newest stays readable.
#[tokio::test]
async fn process_logs_are_bounded() {
    let (e, _dir) = process_engine("logs");
    let e = e.with_log_limits(crate::logs::LogLimits { max_size: 16 << 10, max_files: 2 });
    let t = Fixture::process().task(
        "i=0; while [ $i -lt 3000 ]; do echo \"line $i xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"; i=$((i+1)); done; echo done",
    );
    e.prepare(&t).await.unwrap();
    let h = e.start(&t).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(30), e.wait(&h)).await.unwrap().unwrap().success());
    let tail = e.logs(&t.id, 100).await.unwrap();
    assert!(String::from_utf8_lossy(&tail).ends_with("done\n"));
    let logs = e.task_dir(&t.id).join("logs");
    let segs = crate::logs::reader::segments(&logs).unwrap();
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert!(segs[0] > 1, "rotated: {segs:?}");
    let total: u64 = segs.iter().map(|s| std::fs::metadata(logs.join(format!("{s}.log"))).unwrap().len()).sum();
    assert!(total < 3 * (16 << 10) + (128 << 10), "bounded: {total} bytes of ~250 KB kept");
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
pub(crate) async fn docker_fixture() -> Result<DockerEngine, String> {
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

/// The docker engine passes mounts, limits, capabilities, sysctls, groups and the templated hostname to the
/// container, rejects a missing bind source with the process engine's words, and reports an OOM kill.
#[tokio::test]
async fn docker_tasks_get_mounts_limits_and_isolation() {
    let e = match docker_fixture().await {
        Ok(e) => e,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    let e = e.with_node(spec::NodeInfo { hostname: "node-d".into(), architecture: "x86_64".into(), os: "linux".into() });
    let fx = Fixture::image(TEST_IMAGE);
    let host = StateDir::new("docker-mounts");
    std::fs::write(host.0.join("hello"), "from the host").unwrap();
    let volume = format!("skeptest{:x}", rand::random::<u32>());
    let mut t = fx.task(
        "echo read=$(cat /rw/hello); echo new > /rw/written && echo rw=ok; \
         (echo x > /ro/x) 2>/dev/null && echo ro=writable || echo ro=refused; echo kept > /data/file; \
         echo tmpmode=$(stat -c %a /scratch); echo host=$(hostname); \
         echo ttl=$(cat /proc/sys/net/ipv4/ip_default_ttl); echo groups=$(id -G); \
         echo capeff=$(grep CapEff /proc/self/status | cut -f2)",
    );
    t.slot = 2;
    let c = t.spec.container_spec.as_mut().unwrap();
    c.hostname = "{{.Node.Hostname}}-{{.Task.Slot}}".into();
    c.set_field("Mounts", serde_json::json!([
            {"Type": "bind", "Source": host.0, "Target": "/rw"},
            {"Type": "bind", "Source": host.0, "Target": "/ro", "ReadOnly": true},
            {"Type": "volume", "Source": volume, "Target": "/data", "VolumeOptions": {"Labels": {"t": "{{.Task.Slot}}"}}},
            {"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o700}},
        ]),
    ).unwrap();
    c.set_field("CapabilityAdd", serde_json::json!(["NET_ADMIN"])).unwrap();
    c.set_field("CapabilityDrop", serde_json::json!(["CHOWN"])).unwrap();
    c.set_field("Sysctls", serde_json::json!({"net.ipv4.ip_default_ttl": "33"})).unwrap();
    c.set_field("Groups", serde_json::json!(["4400"])).unwrap();
    let mut limits = skep_api::docker::Limit { nano_cpus: 500_000_000, memory_bytes: 64 << 20, ..Default::default() };
    limits.pids = 20;
    t.spec.resources = Some(skep_api::docker::ResourceRequirements { limits: Some(limits), reservations: None });

    e.prepare(&t).await.unwrap();
    let id = e.list().await.unwrap().into_iter().find(|h| h.task_id == t.id).unwrap().id;
    let hc = e.client().inspect_container(&id, None).await.unwrap().host_config.unwrap();
    assert_eq!((hc.cpu_period, hc.cpu_quota), (Some(100_000), Some(50_000)));
    assert_eq!((hc.memory, hc.pids_limit), (Some(64 << 20), Some(20)));
    assert_eq!(hc.cap_add, Some(vec!["NET_ADMIN".to_string()]));
    assert_eq!(hc.group_add, Some(vec!["4400".to_string()]));
    let h = e.start(&t).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(30), e.wait(&h)).await.unwrap().unwrap();
    let out = String::from_utf8_lossy(&e.logs(&t.id, 1 << 16).await.unwrap()).into_owned();
    assert!(exit.success(), "{exit:?}: {out}");
    let field = |k: &str| out.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap_or_default().to_string();
    assert_eq!((field("read"), field("rw"), field("ro")), ("from the host".into(), "ok".into(), "refused".into()));
    assert_eq!((field("tmpmode"), field("host"), field("ttl")), ("700".into(), "node-d-2".into(), "33".into()));
    assert!(field("groups").split(' ').any(|g| g == "4400"), "{out}");
    // Docker's default set without CHOWN (bit 0), with NET_ADMIN (bit 12)
    assert_eq!(field("capeff"), "00000000a80435fa");
    assert_eq!(std::fs::read_to_string(host.0.join("written")).unwrap(), "new\n");
    e.remove(&t.id).await.unwrap();
    let v = e.client().inspect_volume(&volume).await.unwrap();
    assert_eq!(v.labels.get("t").map(String::as_str), Some("2"), "the volume outlives the task, labels templated");
    e.client().remove_volume(&volume, None::<bollard::query_parameters::RemoveVolumeOptions>).await.unwrap();

    // a missing bind source: rejected before Docker is asked, in the process engine's words
    let mut t = fx.task("true");
    let missing = host.0.join("missing");
    t.spec.container_spec.as_mut().unwrap().set_field("Mounts", serde_json::json!([{"Type": "bind", "Source": missing, "Target": "/x"}]),
    ).unwrap();
    let err = e.prepare(&t).await.unwrap_err();
    assert!(err.to_string().contains("bind source path does not exist"), "{err}");
    assert!(!e.list().await.unwrap().iter().any(|h| h.task_id == t.id), "nothing created");

    // over its memory limit: OOM-killed, and said so
    let mut t = fx.task("tail /dev/zero");
    t.spec.resources = Some(skep_api::docker::ResourceRequirements {
        limits: Some(skep_api::docker::Limit { memory_bytes: 16 << 20, ..Default::default() }),
        reservations: None,
    });
    e.prepare(&t).await.unwrap();
    let h = e.start(&t).await.unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(60), e.wait(&h)).await.unwrap().unwrap();
    assert_eq!(exit, Exit::OomKilled { code: 137, memory_limit: 16 << 20 });
    e.remove(&t.id).await.unwrap();
}
