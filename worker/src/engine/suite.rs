//! The conformance suite every [`Engine`] must pass (style.md #25: trait owners ship suites).
//!
//! Each check takes an engine and a [`Fixture`] and panics on the first broken promise. The programs are POSIX
//! shell scripts run as `Command = ["sh", "-c", script]`, so one suite fits both the process engine (the host's sh)
//! and the Docker engine (any image with a shell, such as a busybox image). Every wait is bounded.
//!
//! ```ignore
//! let engine = ProcessEngine::new(dir);
//! skep_worker::engine::suite::run_all(&engine, &Fixture::process()).await;
//! ```

use super::{Engine, EngineError, Exit, Handle};
use skep_api::docker::health::Health;
use skep_api::docker::{ContainerSpec, Task, TaskSpec};
use std::future::Future;
use std::time::Duration;
use tokio::time::{timeout, Instant};

/// What the suite needs to know about the engine under test.
#[derive(Clone, Debug)]
pub struct Fixture {
    /// `Image` of every task: a local image with `sh` for Docker, empty for the process engine.
    pub image: String,
    /// Prefix of the task IDs the suite makes (they must not collide with anything else on the host).
    pub prefix: String,
}

impl Fixture {
    /// For the process engine.
    pub fn process() -> Fixture {
        Fixture { image: String::new(), prefix: "suitep".into() }
    }

    /// For an engine running images; `image` must have `sh`, `sleep` and `pwd`.
    pub fn image(image: &str) -> Fixture {
        Fixture { image: image.into(), prefix: "suited".into() }
    }

    /// A task running `sh -c script`, with a fresh ID.
    pub fn task(&self, script: &str) -> Task {
        let id = format!("{}{:016x}", self.prefix, rand::random::<u64>());
        Task {
            id,
            service_id: "suitesvc".into(),
            node_id: "suitenode".into(),
            slot: 1,
            spec: TaskSpec {
                container_spec: Some(ContainerSpec {
                    image: self.image.clone(),
                    command: vec!["sh".into(), "-c".into(), script.into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

/// How long any single step may take before the suite calls it hung.
const STEP: Duration = Duration::from_secs(20);

fn spec_mut(t: &mut Task) -> &mut ContainerSpec {
    t.spec.container_spec.get_or_insert_with(Default::default)
}

async fn bounded<T>(what: &str, f: impl Future<Output = T>) -> T {
    match timeout(STEP, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer within {STEP:?}"),
    }
}

async fn run<E: Engine>(e: &E, t: &Task) -> Handle {
    bounded("prepare", e.prepare(t)).await.unwrap_or_else(|err| panic!("prepare {}: {err}", t.id));
    bounded("start", e.start(t)).await.unwrap_or_else(|err| panic!("start {}: {err}", t.id))
}

async fn wait_exit<E: Engine>(e: &E, h: &Handle) -> Exit {
    bounded("wait", e.wait(h)).await.unwrap_or_else(|err| panic!("wait {}: {err}", h.task_id))
}

/// Polls the task's logs until they contain `needle`.
pub async fn logs_contain<E: Engine>(e: &E, task_id: &str, needle: &str) -> bool {
    let deadline = Instant::now() + STEP;
    loop {
        if let Ok(Ok(out)) = timeout(STEP, e.logs(task_id, 1 << 20)).await {
            if String::from_utf8_lossy(&out).contains(needle) {
                return true;
            }
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn cleanup<E: Engine>(e: &E, task_id: &str) {
    bounded("remove", e.remove(task_id)).await.unwrap_or_else(|err| panic!("remove {task_id}: {err}"));
}

/// A long-running task: running, adoptable, listed, its output in the logs; stop ends it within its grace period.
pub async fn start_logs_stop<E: Engine>(e: &E, fx: &Fixture) {
    let mut t = fx.task("echo hi; sleep 30");
    spec_mut(&mut t).stop_grace_period = Some(2_000_000_000);
    let h = run(e, &t).await;
    assert_eq!((h.task_id.as_str(), h.engine.as_str()), (t.id.as_str(), e.name()));
    assert!(h.pid > 0, "a running task has a PID: {h:?}");
    assert_eq!(bounded("adopt", e.adopt(std::slice::from_ref(&h))).await, vec![(h.clone(), true)]);
    let listed = bounded("list", e.list()).await.expect("list");
    assert!(listed.contains(&h), "list has the running task: {h:?} not in {listed:?}");
    assert!(logs_contain(e, &t.id, "hi").await, "logs of {} contain \"hi\"", t.id);

    let started = Instant::now();
    bounded("stop", e.stop(&h, &t)).await.expect("stop");
    assert!(started.elapsed() < Duration::from_secs(2 + 5), "stop took {:?}", started.elapsed());
    let exit = wait_exit(e, &h).await;
    assert!(!exit.success(), "a stopped task did not complete: {exit:?}");
    assert_eq!(bounded("adopt", e.adopt(std::slice::from_ref(&h))).await, vec![(h.clone(), false)]);
    // Stopping again is fine.
    bounded("stop", e.stop(&h, &t)).await.expect("second stop");
    cleanup(e, &t.id).await;
}

/// Log records: stdout and stderr apart, in order, timestamped; a follower reads lines as they come and is told
/// `done` once the task ended; `tail` gives the last records; an unknown task is `NotFound`.
pub async fn log_records<E: Engine>(e: &E, fx: &Fixture) {
    use skep_api::logs::{LogStream, LogsRequest};
    let t = fx.task("echo out1; echo err1 >&2; sleep 1; echo out2; exit 0");
    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64);
    let h = run(e, &t).await;
    let mut req = LogsRequest { task_id: t.id.clone(), follow: true, ..Default::default() };
    let mut got = Vec::new();
    for _ in 0..50 {
        let b = bounded("read_logs", e.read_logs(&req)).await.expect("read_logs");
        got.extend(b.records);
        if b.done {
            break;
        }
        req.cursor = Some(b.cursor);
    }
    assert!(wait_exit(e, &h).await.success());
    let of = |s: LogStream| -> Vec<String> {
        got.iter().filter(|r| r.stream == s).map(|r| String::from_utf8_lossy(&r.line).into_owned()).collect()
    };
    assert_eq!(of(LogStream::Stdout), vec!["out1", "out2"], "{got:?}");
    assert_eq!(of(LogStream::Stderr), vec!["err1"], "{got:?}");
    // Docker's clock may be a little off from ours: a second of slack
    assert!(got.iter().all(|r| r.time_ns >= before - 1_000_000_000 && !r.partial), "{got:?}");
    let b = bounded("read_logs", e.read_logs(&LogsRequest { task_id: t.id.clone(), tail: Some(1), ..Default::default() }))
        .await
        .expect("read_logs tail");
    assert!(b.done);
    assert_eq!(b.records.iter().map(|r| r.line.clone()).collect::<Vec<_>>(), vec![b"out2".to_vec()]);
    cleanup(e, &t.id).await;
    let gone = bounded("read_logs", e.read_logs(&LogsRequest { task_id: t.id.clone(), ..Default::default() })).await;
    assert!(matches!(gone, Err(EngineError::NotFound(_))), "a removed task's logs: {gone:?}");
}

/// `exit 3` is `Exit::Code(3)`; `exit 0` succeeds; the output of an exited task stays readable until `remove`.
pub async fn exit_codes<E: Engine>(e: &E, fx: &Fixture) {
    let t = fx.task("echo bye; exit 3");
    let h = run(e, &t).await;
    assert_eq!(wait_exit(e, &h).await, Exit::Code(3));
    assert_eq!(wait_exit(e, &h).await, Exit::Code(3), "wait again gives the same answer");
    assert!(logs_contain(e, &t.id, "bye").await);
    cleanup(e, &t.id).await;

    let t = fx.task("true");
    let h = run(e, &t).await;
    assert!(wait_exit(e, &h).await.success());
    cleanup(e, &t.id).await;
}

/// A missing program (process) or image (docker) is `NotFound` at `prepare`, before anything ran, or the
/// registry's error when the engine tried to pull it.
pub async fn missing_is_not_found<E: Engine>(e: &E, _fx: &Fixture) {
    let mut t = Fixture::process().task("");
    let c = spec_mut(&mut t);
    c.command.clear();
    c.image = "skep-no-such-program-or-image".into();
    match bounded("prepare", e.prepare(&t)).await {
        Err(EngineError::NotFound(msg)) | Err(EngineError::Pull(msg)) => {
            assert!(msg.contains("skep-no-such-program-or-image"), "the reason names it: {msg}")
        }
        other => panic!("prepare with a missing image/program: expected NotFound, got {other:?}"),
    }
    cleanup(e, &t.id).await;
}

/// The stop signal reaches the program: a program trapping it exits with its own code.
pub async fn stop_signal_is_honoured<E: Engine>(e: &E, fx: &Fixture) {
    // Default: SIGTERM.
    let t = fx.task("trap 'exit 7' TERM; echo ready; while :; do sleep 0.1; done");
    let h = run(e, &t).await;
    assert!(logs_contain(e, &t.id, "ready").await);
    bounded("stop", e.stop(&h, &t)).await.expect("stop");
    assert_eq!(wait_exit(e, &h).await, Exit::Code(7));
    cleanup(e, &t.id).await;

    // StopSignal: a program ignoring TERM but trapping USR1 exits 8, so USR1 was sent rather than TERM.
    let mut t = fx.task("trap '' TERM; trap 'exit 8' USR1; echo ready; while :; do sleep 0.1; done");
    spec_mut(&mut t).stop_signal = "SIGUSR1".into();
    spec_mut(&mut t).stop_grace_period = Some(5_000_000_000);
    let h = run(e, &t).await;
    assert!(logs_contain(e, &t.id, "ready").await);
    bounded("stop", e.stop(&h, &t)).await.expect("stop");
    assert_eq!(wait_exit(e, &h).await, Exit::Code(8));
    cleanup(e, &t.id).await;

    // A program that leaves the signal alone dies of it (nothing between the engine and the program may block it:
    // a blocked mask survives execve, and the stop would wait out the grace period and end in SIGKILL). Not in a
    // container, where the program is PID 1 of its namespace and the kernel drops signals it has no handler for
    // (Docker's behaviour without `--init`).
    if e.name() != "process" {
        return;
    }
    let mut t = fx.task("echo ready; exec sleep 3600");
    spec_mut(&mut t).stop_grace_period = Some(60_000_000_000);
    let h = run(e, &t).await;
    assert!(logs_contain(e, &t.id, "ready").await);
    bounded("stop", e.stop(&h, &t)).await.expect("stop");
    assert!(matches!(wait_exit(e, &h).await, Exit::Signal(15) | Exit::Code(143)), "not ended by SIGTERM");
    cleanup(e, &t.id).await;
}

/// A program ignoring the stop signal is killed once the grace period is over.
pub async fn grace_period_ends_in_sigkill<E: Engine>(e: &E, fx: &Fixture) {
    let mut t = fx.task("trap '' TERM; echo ready; while :; do sleep 0.1; done");
    spec_mut(&mut t).stop_grace_period = Some(1_000_000_000);
    let h = run(e, &t).await;
    assert!(logs_contain(e, &t.id, "ready").await);
    let started = Instant::now();
    bounded("stop", e.stop(&h, &t)).await.expect("stop");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(6), "stop took {took:?}");
    let exit = wait_exit(e, &h).await;
    assert!(matches!(exit, Exit::Signal(9) | Exit::Code(137)), "killed: {exit:?}");
    cleanup(e, &t.id).await;
}

/// `adopt` says running only for the very process/container a handle names.
pub async fn adopt_checks_identity<E: Engine>(e: &E, fx: &Fixture) {
    let mut t = fx.task("sleep 30");
    spec_mut(&mut t).stop_grace_period = Some(0);
    let h = run(e, &t).await;
    // Another incarnation: a different start time (process) or container ID (docker).
    let forged = Handle { id: format!("{}1", h.id), ..h.clone() };
    let other_engine = Handle { engine: "elsewhere".into(), ..h.clone() };
    let got = bounded("adopt", e.adopt(&[h.clone(), forged.clone(), other_engine.clone()])).await;
    assert_eq!(got, vec![(h.clone(), true), (forged, false), (other_engine, false)]);
    bounded("stop", e.stop(&h, &t)).await.expect("stop");
    wait_exit(e, &h).await;
    assert_eq!(bounded("adopt", e.adopt(std::slice::from_ref(&h))).await, vec![(h.clone(), false)]);
    cleanup(e, &t.id).await;
}

/// `list` shows prepared tasks; `remove` takes them away and may be repeated.
pub async fn remove_is_idempotent<E: Engine>(e: &E, fx: &Fixture) {
    let t = fx.task("true");
    bounded("prepare", e.prepare(&t)).await.expect("prepare");
    bounded("prepare", e.prepare(&t)).await.expect("prepare again");
    let listed = bounded("list", e.list()).await.expect("list");
    assert!(listed.iter().any(|h| h.task_id == t.id), "a prepared task is listed");
    cleanup(e, &t.id).await;
    cleanup(e, &t.id).await;
    let listed = bounded("list", e.list()).await.expect("list");
    assert!(!listed.iter().any(|h| h.task_id == t.id), "a removed task is not listed");
    cleanup(e, &format!("{}neverprepared", fx.prefix)).await;
}

/// `Env` and `Dir` reach the program.
pub async fn env_and_workdir<E: Engine>(e: &E, fx: &Fixture) {
    let mut t = fx.task("echo \"env=$SKEP_SUITE_FOO dir=$(pwd)\"");
    spec_mut(&mut t).env = vec!["SKEP_SUITE_FOO=bar baz".into()];
    spec_mut(&mut t).dir = "/tmp".into();
    let h = run(e, &t).await;
    assert!(wait_exit(e, &h).await.success());
    assert!(logs_contain(e, &t.id, "env=bar baz dir=/tmp").await, "env and dir reach the program");
    cleanup(e, &t.id).await;
}

/// Follows a task's health until it is `want` (bounded); panics if `watch_health` says there is no check.
pub(crate) async fn health_becomes<E: Engine>(e: &E, h: &Handle, t: &Task, want: Health) {
    let (tx, mut rx) = tokio::sync::watch::channel(Health::Starting);
    let watching = e.watch_health(h, t, tx);
    tokio::pin!(watching);
    let deadline = Instant::now() + STEP;
    loop {
        if *rx.borrow_and_update() == want {
            return;
        }
        tokio::select! {
            checked = &mut watching => assert!(checked, "{}: watch_health found no check", t.id),
            _ = rx.changed() => {}
            _ = tokio::time::sleep_until(deadline) => panic!("{}: health never became {want:?} (is {:?})", t.id, *rx.borrow()),
        }
    }
}

fn healthcheck(t: &mut Task, test: serde_json::Value, timeout_ms: i64, retries: i64) {
    spec_mut(t).healthcheck = Some(serde_json::json!({
        "Test": test, "Interval": 200_000_000i64, "Timeout": timeout_ms * 1_000_000, "Retries": retries,
    }));
}

/// Healthchecks run in the task (its environment), a failing or hung check makes it unhealthy after `Retries`, and a
/// task without one has none.
pub async fn healthchecks<E: Engine>(e: &E, fx: &Fixture) {
    let mut t = fx.task("sleep 60");
    spec_mut(&mut t).env = vec!["SKEP_SUITE_HC=yes".into()];
    healthcheck(&mut t, serde_json::json!(["CMD-SHELL", "test \"$SKEP_SUITE_HC\" = yes"]), 5000, 1);
    let h = run(e, &t).await;
    health_becomes(e, &h, &t, Health::Healthy).await;
    cleanup_running(e, &h, &t).await;

    let mut t = fx.task("sleep 60");
    healthcheck(&mut t, serde_json::json!(["CMD", "sh", "-c", "exit 1"]), 5000, 2);
    let h = run(e, &t).await;
    health_becomes(e, &h, &t, Health::Unhealthy).await;
    cleanup_running(e, &h, &t).await;

    let mut t = fx.task("sleep 60");
    healthcheck(&mut t, serde_json::json!(["CMD", "sleep", "30"]), 300, 1);
    let h = run(e, &t).await;
    health_becomes(e, &h, &t, Health::Unhealthy).await;
    cleanup_running(e, &h, &t).await;

    let t = fx.task("sleep 60");
    let h = run(e, &t).await;
    let (tx, _rx) = tokio::sync::watch::channel(Health::Starting);
    assert!(!bounded("watch_health", e.watch_health(&h, &t, tx)).await, "no check");
    cleanup_running(e, &h, &t).await;
}

async fn cleanup_running<E: Engine>(e: &E, h: &Handle, t: &Task) {
    bounded("stop", e.stop(h, t)).await.unwrap_or_else(|err| panic!("stop {}: {err}", t.id));
    let _ = bounded("wait", e.wait(h)).await;
    cleanup(e, &t.id).await;
}

/// Every check, one after the other.
pub async fn run_all<E: Engine>(e: &E, fx: &Fixture) {
    missing_is_not_found(e, fx).await;
    exit_codes(e, fx).await;
    env_and_workdir(e, fx).await;
    start_logs_stop(e, fx).await;
    log_records(e, fx).await;
    stop_signal_is_honoured(e, fx).await;
    grace_period_ends_in_sigkill(e, fx).await;
    adopt_checks_identity(e, fx).await;
    remove_is_idempotent(e, fx).await;
    healthchecks(e, fx).await;
}
