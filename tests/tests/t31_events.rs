//! `docker events` against skep: a service created, scaled and removed is reported as create, update (with the
//! replica counts) and remove, with its name, in Docker's shape, from any manager; `--filter` narrows them; and a
//! follower sees a node going down as it happens, with the task events of its service.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

fn unix_now() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The events `docker events --since S --until U [filters]` prints through host `i`, parsed.
fn events(c: &Cluster, i: usize, since: u64, until: u64, filters: &[&str]) -> Result<Vec<Value>> {
    let (s, u) = (since.to_string(), until.to_string());
    let mut args = vec!["events", "--since", &s, "--until", &u, "--format", "{{json .}}"];
    for f in filters {
        args.extend(["--filter", f]);
    }
    let out = c.docker(i, &args)?.ok()?.to_string();
    out.lines().filter(|l| !l.trim().is_empty()).map(|l| Ok(serde_json::from_str(l)?)).collect()
}

#[test]
fn service_and_node_changes_are_reported_as_docker_events() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(2, 1)?;
    let t0 = unix_now() - 1;
    c.docker(0, &["service", "create", "-d", "--name", "ev", "--replicas", "1", "busybox", "sleep", "3600"])?.ok()?;
    c.wait_running(0, "ev", 1, Duration::from_secs(30))?;
    c.docker(0, &["service", "scale", "-d", "ev=2"])?.ok()?;
    c.docker(0, &["service", "rm", "ev"])?.ok()?;
    let t1 = unix_now() + 1;
    // through the other manager, services only
    let ev = wait_until("the service's three events", Duration::from_secs(20), || -> Result<Vec<Value>> {
        let ev = events(&c, 1, t0, t1, &["type=service"])?;
        ensure!(ev.len() == 3, "{} events: {ev:?}", ev.len());
        Ok(ev)
    })?;
    let actions: Vec<&str> = ev.iter().map(|e| e["Action"].as_str().unwrap_or("")).collect();
    assert_eq!(actions, ["create", "update", "remove"], "{ev:?}");
    for e in &ev {
        assert_eq!(e["Type"], "service");
        assert_eq!(e["scope"], "swarm");
        assert_eq!(e["Actor"]["Attributes"]["name"], "ev", "{e}");
        assert!(e["timeNano"].as_i64().unwrap_or(0) >= (t0 as i64) * 1_000_000_000, "{e}");
    }
    assert_eq!(ev[1]["Actor"]["Attributes"]["replicas.old"], "1", "{}", ev[1]);
    assert_eq!(ev[1]["Actor"]["Attributes"]["replicas.new"], "2", "{}", ev[1]);
    // an event filter
    let removes = events(&c, 0, t0, t1, &["type=service", "event=remove"])?;
    ensure!(removes.len() == 1 && removes[0]["Action"] == "remove", "{removes:?}");
    // tasks of the service, by its name
    let tasks = events(&c, 0, t0, t1, &["type=task", "service=ev"])?;
    ensure!(tasks.iter().any(|e| e["Actor"]["Attributes"]["state"] == "running"), "{tasks:?}");
    ensure!(tasks.iter().all(|e| e["Actor"]["Attributes"]["service.name"] == "ev"), "{tasks:?}");

    // following: the worker goes down
    let worker = c.node_id(2)?;
    let mut follower = Command::new(skep_tests::docker_bin())
        .args(["-H", &c.host_arg(0), "events", "--filter", "type=node", "--format", "{{json .}}"])
        .env("DOCKER_CONFIG", c.root().join("docker-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = follower.stdout.take().context("the follower's output")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    c.kill(2)?;
    let down = (|| -> Result<Value> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).context("no node event within 30 s")?;
            let e: Value = serde_json::from_str(&line)?;
            if e["Actor"]["ID"] == worker.as_str() && e["Actor"]["Attributes"]["state.new"] == "down" {
                return Ok(e);
            }
        }
    })();
    let _ = follower.kill();
    let _ = follower.wait();
    let down = down?;
    assert_eq!(down["Type"], "node");
    assert_eq!(down["Action"], "update");
    assert_eq!(down["Actor"]["Attributes"]["state.old"], "ready", "{down}");
    c.pass();
    Ok(())
}
