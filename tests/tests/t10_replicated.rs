//! Replicated services on 3 managers + 2 workers with the `process` engine: create, spread, scale up, scale down,
//! remove; the tasks the API reports are the processes that really run on each host.

use anyhow::{ensure, Result};
use serde_json::Value;
use skep_tests::services::{converged, is_running, running_per_node, state, summarize_tasks};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::{Duration, Instant};

/// Bound on a service converging after a create or scale.
const CONVERGE: Duration = Duration::from_secs(30);
const PROGRAM: &str = "sleep 3600";

/// Every host's running tasks (per the API) equal the `sleep 3600` programs that run there.
fn processes_match_tasks(c: &Cluster, ids: &[String], tasks: &[Value]) -> Result<()> {
    let per_node = running_per_node(tasks);
    for (i, id) in ids.iter().enumerate() {
        let procs = c.task_processes_matching(i, PROGRAM);
        let want = per_node.get(id).copied().unwrap_or(0);
        ensure!(procs.len() == want, "{}: {want} running tasks but {} programs: {procs:?}", c.host(i).name, procs.len());
    }
    Ok(())
}

#[test]
fn replicated_service_spreads_scales_and_is_removed_with_its_processes() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    c.form(3, 2)?;
    let ids: Vec<String> = (0..5).map(|i| c.node_id(i)).collect::<Result<_>>()?;

    let t0 = Instant::now();
    c.skep_ok(0, &["service", "create", "--name", "web", "--replicas", "6", "-d", "busybox", "sleep", "3600"])?;
    let tasks = c.wait_running(0, "web", 6, CONVERGE)?;
    eprintln!("create: 6 running after {} ms", t0.elapsed().as_millis());
    let spread = running_per_node(&tasks);
    assert!(spread.len() >= 3, "6 replicas on only {} nodes: {}", spread.len(), summarize_tasks(&tasks));
    wait_until("each host's sleep processes to match its running tasks", Duration::from_secs(10), || {
        processes_match_tasks(&c, &ids, &c.tasks(0, "web")?)
    })?;
    let service_id = c.services(1)?.first().and_then(|s| s["ID"].as_str().map(str::to_owned)).expect("one service");

    let t0 = Instant::now();
    c.skep_ok(1, &["service", "scale", "-d", "web=9"])?;
    let tasks = c.wait_running(0, "web", 9, CONVERGE)?;
    eprintln!("scale 6 -> 9: 9 running after {} ms", t0.elapsed().as_millis());
    assert!(running_per_node(&tasks).len() >= 4, "9 replicas on few nodes: {}", summarize_tasks(&tasks));

    let t0 = Instant::now();
    c.skep_ok(2, &["service", "scale", "-d", "web=2"])?;
    // (The reaper may already have deleted some of the removed tasks: every task left is running or shut down.)
    let tasks = c.wait_tasks(0, "web", CONVERGE, "2 running, the others shut down", |t| {
        converged(t, 2) && t.iter().all(|t| is_running(t) || state(t) == "shutdown")
    })?;
    eprintln!("scale 9 -> 2: converged after {} ms", t0.elapsed().as_millis());
    wait_until("only 2 sleep processes left, on the nodes of the running tasks", Duration::from_secs(10), || {
        processes_match_tasks(&c, &ids, &c.tasks(0, "web")?)
    })?;
    let total: usize = (0..5).map(|i| c.task_processes_matching(i, PROGRAM).len()).sum();
    assert_eq!(total, 2, "{}", summarize_tasks(&tasks));

    let t0 = Instant::now();
    c.skep_ok(0, &["service", "rm", "web"])?;
    ensure!(c.services(0)?.is_empty(), "service still listed after rm");
    wait_until("no task of the removed service running", CONVERGE, || -> Result<()> {
        let tasks = c.tasks(0, &service_id)?;
        ensure!(tasks.iter().all(|t| state(t) != "running"), "{}", summarize_tasks(&tasks));
        Ok(())
    })?;
    wait_until("no sleep process left on any host", Duration::from_secs(15), || -> Result<()> {
        let left: Vec<_> = (0..5).flat_map(|i| c.task_processes_matching(i, PROGRAM)).collect();
        ensure!(left.is_empty(), "{left:?}");
        Ok(())
    })?;
    wait_until("no task wrapper left either", Duration::from_secs(5), || -> Result<()> {
        let stray: Vec<_> = (0..5).flat_map(|i| c.task_processes(i)).collect();
        ensure!(stray.is_empty(), "{stray:?}");
        Ok(())
    })?;
    eprintln!("rm: all processes gone after {} ms", t0.elapsed().as_millis());
    c.pass();
    Ok(())
}
