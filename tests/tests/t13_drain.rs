//! Draining a node moves its tasks elsewhere and stops its processes; once active again it takes new tasks.

use anyhow::{ensure, Context as _, Result};
use skep_tests::services::{node_of, running_per_node, summarize_tasks};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::{Duration, Instant};

const CONVERGE: Duration = Duration::from_secs(30);
const PROGRAM: &str = "sleep 3600";

#[test]
fn drained_node_hands_its_tasks_over_and_takes_new_ones_when_active() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    c.form(3, 2)?;
    let ids: Vec<String> = (0..5).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    c.skep_ok(0, &["service", "create", "--name", "web", "--replicas", "6", "-d", "busybox", "sleep", "3600"])?;
    let tasks = c.wait_running(0, "web", 6, CONVERGE)?;

    // The node with the most tasks.
    let per = running_per_node(&tasks);
    let (victim_id, n_before) = per.iter().max_by_key(|(_, n)| **n).map(|(k, n)| (k.clone(), *n)).context("no task")?;
    let victim = ids.iter().position(|id| *id == victim_id).context("unknown node")?;
    let before: Vec<String> = tasks.iter().filter(|t| node_of(t) == victim_id).filter_map(|t| t["ID"].as_str().map(str::to_owned)).collect();
    wait_until("the victim to run its programs", Duration::from_secs(10), || -> Result<()> {
        let p = c.task_processes_matching(victim, PROGRAM).len();
        ensure!(p == n_before, "{p} programs, {n_before} tasks");
        Ok(())
    })?;
    eprintln!("draining {} which runs {n_before} of 6 tasks", c.host(victim).name);

    let t0 = Instant::now();
    c.skep_ok(1, &["node", "update", "--availability", "drain", &victim_id])?;
    let tasks = c.wait_tasks(0, "web", CONVERGE, "6 running, none on the drained node", |t| {
        let per = running_per_node(t);
        skep_tests::services::converged(t, 6) && !per.contains_key(&victim_id)
    })?;
    eprintln!("drain: tasks moved after {} ms", t0.elapsed().as_millis());
    for id in &before {
        let t = skep_tests::json::find_by(&tasks, "ID", id).context("old task vanished")?;
        assert_eq!(t["DesiredState"], "shutdown", "old task on the drained node: {t}");
    }
    wait_until("the drained node's programs to stop", Duration::from_secs(15), || -> Result<()> {
        let p = c.task_processes(victim);
        ensure!(p.is_empty(), "{p:?}");
        Ok(())
    })?;
    // A drained node stays empty.
    std::thread::sleep(Duration::from_secs(2));
    let tasks = c.tasks(0, "web")?;
    assert!(!running_per_node(&tasks).contains_key(&victim_id), "{}", summarize_tasks(&tasks));

    c.skep_ok(2, &["node", "update", "--availability", "active", &victim_id])?;
    let avail = c.node_inspect(0, &victim_id)?;
    assert_eq!(avail["Spec"]["Availability"], "active", "{avail}");
    // The reactivated node holds no task of the service, so spreading puts some of the new ones there.
    c.skep_ok(0, &["service", "scale", "-d", "web=10"])?;
    let tasks = c.wait_running(0, "web", 10, CONVERGE)?;
    let on_victim = running_per_node(&tasks).get(&victim_id).copied().unwrap_or(0);
    eprintln!("after reactivation and scale to 10: {on_victim} on the reactivated node; {}", summarize_tasks(&tasks));
    assert!(on_victim >= 1, "the reactivated node got none of 4 new tasks: {}", summarize_tasks(&tasks));
    wait_until("its programs to run", Duration::from_secs(10), || -> Result<()> {
        let p = c.task_processes_matching(victim, PROGRAM).len();
        ensure!(p == on_victim, "{p} programs, {on_victim} tasks");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
