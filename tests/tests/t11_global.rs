//! Global services: one task per eligible node; a drained node loses its task and gets one back when active again;
//! a node that joins later gets one at once.

use anyhow::{ensure, Result};
use skep_tests::services::{node_of, running, running_per_node, summarize_tasks};
use skep_tests::{require_root_and_netns, wait_until, Cluster, Role};
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(30);
const PROGRAM: &str = "sleep 3600";

/// Exactly one running task on each of `nodes` and none elsewhere.
fn one_per_node(tasks: &[serde_json::Value], nodes: &[&String]) -> bool {
    let per = running_per_node(tasks);
    per.len() == nodes.len() && nodes.iter().all(|n| per.get(n.as_str()) == Some(&1))
}

#[test]
fn global_service_follows_drain_and_new_nodes() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(6)?;
    c.form(3, 2)?;
    let ids: Vec<String> = (0..5).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    let all: Vec<&String> = ids.iter().collect();

    let t0 = Instant::now();
    c.skep_ok(0, &["service", "create", "--name", "g", "--mode", "global", "-d", "busybox", "sleep", "3600"])?;
    c.wait_tasks(0, "g", CONVERGE, "one running task on each of the 5 nodes", |t| one_per_node(t, &all))?;
    eprintln!("create: 5 running after {} ms", t0.elapsed().as_millis());
    for i in 0..5 {
        let n = wait_until(&format!("one sleep on {}", c.host(i).name), Duration::from_secs(10), || -> Result<usize> {
            let n = c.task_processes_matching(i, PROGRAM).len();
            ensure!(n == 1, "{n} processes");
            Ok(n)
        })?;
        assert_eq!(n, 1);
    }

    // Drain a worker: its task stops, the other four keep theirs.
    let drained = &ids[4];
    let t0 = Instant::now();
    c.skep_ok(0, &["node", "update", "--availability", "drain", drained])?;
    let tasks = c.wait_tasks(0, "g", CONVERGE, "4 running, none on the drained node", |t| one_per_node(t, &all[..4]))?;
    eprintln!("drain: 4 running after {} ms", t0.elapsed().as_millis());
    let on_drained: Vec<_> = tasks.iter().filter(|t| node_of(t) == drained.as_str()).collect();
    assert!(!on_drained.is_empty(), "the drained node's task vanished: {}", summarize_tasks(&tasks));
    wait_until("the drained node's sleep to stop", Duration::from_secs(15), || -> Result<()> {
        let p = c.task_processes_matching(4, PROGRAM);
        ensure!(p.is_empty(), "{p:?}");
        Ok(())
    })?;

    let t0 = Instant::now();
    c.skep_ok(1, &["node", "update", "--availability", "active", drained])?;
    c.wait_tasks(0, "g", CONVERGE, "5 running again", |t| one_per_node(t, &all))?;
    eprintln!("active again: 5 running after {} ms", t0.elapsed().as_millis());

    // A sixth host joins as a worker and gets its task.
    c.start(5)?;
    let token = c.join_token(0, Role::Worker)?;
    let t0 = Instant::now();
    c.join(5, 0, &token)?.ok()?;
    let newcomer = c.node_id(5)?;
    let mut six = all.clone();
    six.push(&newcomer);
    let tasks = c.wait_tasks(0, "g", CONVERGE, "6 running, one on the new node", |t| one_per_node(t, &six))?;
    eprintln!("join: the new node's task running {} ms after join", t0.elapsed().as_millis());
    assert_eq!(running(&tasks).len(), 6);
    wait_until("one sleep on the new host", Duration::from_secs(10), || -> Result<()> {
        let n = c.task_processes_matching(5, PROGRAM).len();
        ensure!(n == 1, "{n} processes");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
