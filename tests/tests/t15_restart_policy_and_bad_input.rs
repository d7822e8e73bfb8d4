//! Restart policy and bad input: a missing program is rejected and retried at the restart delay (not in a hot loop);
//! `--restart-condition none` leaves a failed task alone; invalid specs are refused with Docker's status (400; 500
//! for a bad constraint; 409 for a taken name) and create nothing; a constraint no node meets keeps tasks pending with
//! the scheduler's reason.

use anyhow::{ensure, Result};
use serde_json::{json, Value};
use skep_tests::json::str_at;
use skep_tests::services::{desired, slot_of, state, summarize_tasks};
use skep_tests::{require_root_and_netns, Cluster};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(30);
/// How long the missing-program service is watched; at the default 5 s delay that is 3 attempts per slot.
const WATCH: Duration = Duration::from_secs(12);

/// Number of tasks (attempts) per slot.
fn attempts(tasks: &[Value]) -> BTreeMap<u64, usize> {
    let mut m = BTreeMap::new();
    for t in tasks {
        *m.entry(slot_of(t)).or_insert(0) += 1;
    }
    m
}

fn create_raw(c: &Cluster, spec: &Value) -> Result<skep_tests::services::ApiResponse> {
    c.api(0, "POST", "/services/create", Some(&spec.to_string()))
}

#[test]
fn restart_policy_and_bad_input() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    c.form(3, 2)?;

    // 1. A program that does not exist: rejected, retried at the 5 s default delay.
    let t0 = Instant::now();
    c.skep_ok(0, &["service", "create", "--name", "missing", "--replicas", "2", "-d", "skep-no-such-program"])?;
    let tasks = c.wait_tasks(0, "missing", CONVERGE, "both slots rejected once", |t| {
        (1..=2).all(|s| t.iter().any(|t| slot_of(t) == s && state(t) == "rejected"))
    })?;
    eprintln!("missing program: first rejections after {} ms", t0.elapsed().as_millis());
    let rejected = tasks.iter().find(|t| state(t) == "rejected").expect("waited for it");
    let err = str_at(rejected, "Status.Err").unwrap_or("");
    assert!(err.contains("executable file not found"), "Err of a rejected task: {err:?}; {rejected}");

    // 2. --restart-condition none: one failed task per slot, never replaced.
    let t1 = Instant::now();
    c.skep_ok(0, &["service", "create", "--name", "once", "--replicas", "2", "--restart-condition", "none", "-d", "busybox", "false"])?;
    let tasks = c.wait_tasks(0, "once", CONVERGE, "both tasks failed", |t| t.len() == 2 && t.iter().all(|t| state(t) == "failed"))?;
    eprintln!("restart-condition none: both failed after {} ms", t1.elapsed().as_millis());
    for t in &tasks {
        let err = str_at(t, "Status.Err").unwrap_or("");
        assert!(err.contains("non-zero exit (1)"), "Err of a failed task: {err:?}; {t}");
    }

    // 3. Invalid specs: 400 (409 for a taken name), nothing created.
    let base = || json!({"Name": "bad", "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "Args": ["sleep", "3600"]}}});
    let mut both_modes = base();
    both_modes["Mode"] = json!({"Global": {}, "Replicated": {"Replicas": 2}});
    let mut bad_constraint = base();
    bad_constraint["TaskTemplate"]["Placement"] = json!({"Constraints": ["node.role"]});
    let mut empty_image = base();
    empty_image["TaskTemplate"]["ContainerSpec"]["Image"] = json!("");
    // Docker answers a constraint without an operator with 500 (swarmkit's plain error becomes codes.Unknown);
    // recorded from Docker 20.10 in tests/fixtures/docker-api-decoding (refuse_bad_constraint)
    for (what, spec, status) in [
        ("global mode with replicas", both_modes, 400),
        ("constraint without operator", bad_constraint, 500),
        ("empty image", empty_image, 400),
    ] {
        let r = create_raw(&c, &spec)?;
        eprintln!("{what}: {} {}", r.status, r.message());
        assert_eq!(r.status, status, "{what}: {} {}", r.status, r.body);
    }
    let r = create_raw(&c, &json!({"Name": "bad2", "TaskTemplate": {"ContainerSpec": {"Image": "busybox"}, "Placement": {"Constraints": ["node.role"]}}}))?;
    assert!(r.message().contains("constraint"), "{}", r.body);
    let out = c.skep(0, &["service", "create", "--name", "bad3", "--constraint", "node.role", "-d", "busybox", "sleep", "1"])?;
    let text = out.refused()?;
    assert!(text.contains("constraint"), "skep service create --constraint node.role: {text}");
    let mut dup = base();
    dup["Name"] = json!("once");
    let r = create_raw(&c, &dup)?;
    eprintln!("duplicate name: {} {}", r.status, r.message());
    assert_eq!(r.status, 409, "{}", r.body);
    assert!(r.message().contains("already exists"), "{}", r.body);
    let names: Vec<String> = c.services(1)?.iter().filter_map(|s| str_at(s, "Spec.Name").map(str::to_owned)).collect();
    assert_eq!(names.len(), 2, "services after the refusals: {names:?}");
    assert!(names.iter().all(|n| n == "missing" || n == "once"), "{names:?}");

    // 4. A constraint nobody meets: pending, with the reason on the task.
    c.skep_ok(0, &["service", "create", "--name", "nowhere", "--constraint", "node.labels.zone==mars", "-d", "busybox", "sleep", "3600"])?;
    let want = "no suitable node (scheduling constraints not satisfied on 5 nodes)";
    let tasks = c.wait_tasks(0, "nowhere", CONVERGE, "the task pending with the scheduler's reason", |t| {
        t.len() == 1 && state(&t[0]) == "pending" && str_at(&t[0], "Status.Err") == Some(want)
    })?;
    assert_eq!(desired(&tasks[0]), "running");

    // Back to 1: count the attempts once WATCH has passed since the create.
    std::thread::sleep(WATCH.saturating_sub(t0.elapsed()));
    let tasks = c.tasks(0, "missing")?;
    let per_slot = attempts(&tasks);
    eprintln!("missing program: attempts per slot after {} ms: {per_slot:?}", t0.elapsed().as_millis());
    assert_eq!(per_slot.len(), 2, "{}", summarize_tasks(&tasks));
    for (slot, n) in &per_slot {
        assert!((2..=4).contains(n), "slot {slot}: {n} attempts in {WATCH:?}: {}", summarize_tasks(&tasks));
    }
    for t in tasks.iter().filter(|t| desired(t) != "running") {
        assert_eq!(state(t), "rejected", "an old attempt: {t}");
    }

    // And still nothing replaced the failed tasks of `once` (well past the 5 s delay by now).
    let tasks = c.tasks(0, "once")?;
    ensure!(tasks.len() == 2 && tasks.iter().all(|t| state(t) == "failed"), "{}", summarize_tasks(&tasks));
    eprintln!("restart-condition none: still 2 failed tasks {} ms after they failed", t1.elapsed().as_millis());
    let tasks = c.tasks(0, "nowhere")?;
    ensure!(tasks.len() == 1 && state(&tasks[0]) == "pending", "{}", summarize_tasks(&tasks));
    c.pass();
    Ok(())
}
