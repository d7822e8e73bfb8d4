//! Rolling updates with swarmkit's semantics on 1 manager + 2 workers (`process` engine), driven by the stock docker
//! CLI: a start-first update never has fewer running tasks than replicas and the routing mesh answers all through it;
//! an update whose new tasks fail rolls back on its own (`--update-failure-action rollback`) and ends
//! `rollback_completed` with the old spec's tasks running and the reason in `UpdateStatus.Message`; a manual
//! `service rollback` goes back; bad update settings are refused with 400s.

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use skep_tests::services::{is_live, overlay_addrs as responder_addrs, state};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Each task answers a TCP connection on port 80 with its own addresses, then closes.
const RESPONDER: &[&str] = &["busybox", "nc", "-ll", "-p", "80", "-e", "busybox", "ip", "-o", "-4", "addr"];

fn update_status(c: &Cluster, svc: &str) -> Result<Value> {
    let v = c.docker(0, &["service", "inspect", svc])?.json()?;
    Ok(v[0]["UpdateStatus"].clone())
}

fn running_ids(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .filter(|t| state(t) == "running" && is_live(t))
        .map(|t| t["ID"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_start_first_update_keeps_every_replica_serving_and_a_failing_update_rolls_back() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;
    c.set_client_timeout(Duration::from_secs(120));

    // --- start-first: never below the replica count, the mesh answers throughout
    let mut web = vec!["service", "create", "-d", "--name", "web", "--replicas", "3", "-p", "8080:80"];
    web.extend(["--update-order", "start-first", "--update-parallelism", "1", "--update-monitor", "1s"]);
    web.extend(RESPONDER);
    c.docker(0, &web)?.ok()?;
    let before = running_ids(&c.wait_running(0, "web", 3, Duration::from_secs(40))?);

    let stop = Arc::new(AtomicBool::new(false));
    let asked = Arc::new(AtomicUsize::new(0));
    let unanswered = Arc::new(AtomicUsize::new(0));
    let min_running = Arc::new(AtomicUsize::new(usize::MAX));
    let (out, ()) = std::thread::scope(|s| -> Result<_> {
        let c = &c;
        let (stop2, asked2, unanswered2, min2) = (stop.clone(), asked.clone(), unanswered.clone(), min_running.clone());
        let watcher = s.spawn(move || {
            let ip = c.host(2).ip.clone();
            while !stop2.load(Ordering::SeqCst) {
                if let Ok(tasks) = c.tasks(0, "web") {
                    min2.fetch_min(running_ids(&tasks).len(), Ordering::SeqCst);
                }
                let o = c.host(0).ns.exec("timeout", &["3", "busybox", "nc", "-w", "2", &ip, "8080"], Duration::from_secs(5));
                asked2.fetch_add(1, Ordering::SeqCst);
                if o.map(|o| responder_addrs(&o.stdout).is_empty()).unwrap_or(true) {
                    unanswered2.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let out = c.docker(0, &["service", "update", "--force", "web"]);
        stop.store(true, Ordering::SeqCst);
        watcher.join().map_err(|_| anyhow::anyhow!("the watcher panicked"))?;
        Ok((out?, ()))
    })?;
    let text = format!("{}{}", out.ok()?, out.stderr);
    ensure!(text.contains("converged"), "update progress did not converge: {text}");
    // the CLI sees the tasks converge a moment before the updater records its verdict in the store
    let st = wait_until("the update recorded completed", Duration::from_secs(10), || -> Result<Value> {
        let st = update_status(&c, "web")?;
        ensure!(st["State"] == "completed" && st["Message"] == "update completed", "UpdateStatus: {st}");
        Ok(st)
    })?;
    ensure!(st["StartedAt"].is_string() && st["CompletedAt"].is_string(), "UpdateStatus times: {st}");
    let after = running_ids(&c.wait_running(0, "web", 3, Duration::from_secs(10))?);
    ensure!(after.iter().all(|id| !before.contains(id)), "every task was replaced: {before:?} → {after:?}");
    let (n, lost, min) = (asked.load(Ordering::SeqCst), unanswered.load(Ordering::SeqCst), min_running.load(Ordering::SeqCst));
    eprintln!("start-first update: {n} mesh requests, {lost} unanswered; fewest running tasks seen {min}");
    ensure!(min >= 3, "a start-first update went below the replica count: {min} running");
    ensure!(n > 0 && lost == 0, "{lost} of {n} requests through the mesh went unanswered");

    // --- a failing update rolls back by itself
    let mut app = vec!["service", "create", "-d", "--name", "app", "--replicas", "3"];
    app.extend(["--update-failure-action", "rollback", "--update-monitor", "2s", "--update-parallelism", "1"]);
    app.extend(["--restart-delay", "1s", "busybox", "sleep", "3600"]);
    c.docker(0, &app)?.ok()?;
    let old = running_ids(&c.wait_running(0, "app", 3, Duration::from_secs(40))?);
    // the new image names no program on the hosts: every new task is rejected
    let out = c.docker(0, &["service", "update", "--no-resolve-image", "--image", "skep-no-such-program", "app"])?;
    // the CLI's progress display shows the rollback and its reason, and waits for it to converge
    let text = format!("{}{}", out.stdout, out.stderr);
    ensure!(text.contains("rollback: update rolled back due to failure"), "the CLI did not report the rollback: {text}");
    let st = wait_until("app rollback_completed", Duration::from_secs(60), || -> Result<Value> {
        let st = update_status(&c, "app")?;
        ensure!(st["State"] == "rollback_completed", "{st}");
        Ok(st)
    })?;
    let msg = st["Message"].as_str().unwrap_or_default();
    ensure!(msg.contains("update rolled back due to failure or early termination of task"), "Message: {msg}");
    let spec = c.docker(0, &["service", "inspect", "app"])?.json()?;
    let image = |v: &Value| v.as_str().unwrap_or_default().starts_with("busybox");
    ensure!(image(&spec[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"]), "spec after the rollback: {}", spec[0]["Spec"]);
    let tasks = c.wait_running(0, "app", 3, Duration::from_secs(30))?;
    let now = running_ids(&tasks);
    let kept = now.iter().filter(|id| old.contains(id)).count();
    ensure!(kept >= 2, "the slots the update did not reach keep their tasks: {old:?} → {now:?}");
    ensure!(
        tasks.iter().filter(|t| state(t) == "running").all(|t| image(&t["Spec"]["ContainerSpec"]["Image"])),
        "a running task of the failed spec"
    );
    eprintln!("failing update: {msg}");

    // --- a manual rollback (docker service rollback) goes back to the previous spec
    c.docker(0, &["service", "update", "-d", "--env-add", "V=2", "app"])?.ok()?;
    wait_until("app updated", Duration::from_secs(60), || -> Result<()> {
        ensure!(update_status(&c, "app")?["State"] == "completed", "not yet");
        Ok(())
    })?;
    let out = c.docker(0, &["service", "rollback", "-d", "app"])?;
    out.ok()?;
    let st = wait_until("app rolled back by hand", Duration::from_secs(60), || -> Result<Value> {
        let st = update_status(&c, "app")?;
        ensure!(st["State"] == "rollback_completed", "{st}");
        Ok(st)
    })?;
    ensure!(st["Message"] == "rollback completed", "{st}");
    let spec = c.docker(0, &["service", "inspect", "app"])?.json()?;
    ensure!(spec[0]["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].is_null(), "env after the rollback: {}", spec[0]["Spec"]);

    // --- bad input: 400s naming the problem, nothing changed
    let svc = c.docker(0, &["service", "inspect", "app"])?.json()?;
    let version = svc[0]["Version"]["Index"].as_u64().context("version")?;
    let mut spec = svc[0]["Spec"].clone();
    for (field, value, want) in [
        ("Delay", serde_json::json!(-1), "update-delay cannot be negative"),
        ("Monitor", serde_json::json!(-5), "update-monitor cannot be negative"),
        ("MaxFailureRatio", serde_json::json!(1.5), "update-maxfailureratio cannot be less than 0 or bigger than 1"),
        ("FailureAction", serde_json::json!("explode"), "unrecognized update failure action explode"),
        ("Order", serde_json::json!("sideways"), "unrecognized update order sideways"),
        ("Delay", serde_json::json!(365i64 * 24 * 3600 * 1_000_000_000), "cannot be more than 24h"),
    ] {
        spec["UpdateConfig"] = serde_json::json!({ field: value });
        let r = c.api(0, "POST", &format!("/services/app/update?version={version}"), Some(&spec.to_string()))?;
        ensure!(r.status == 400 && r.message().contains(want), "{field}={value}: {} {}", r.status, r.body);
    }
    let again = c.docker(0, &["service", "inspect", "app"])?.json()?;
    ensure!(again[0]["Version"]["Index"] == version, "a refused update changed the service");
    c.pass();
    Ok(())
}
