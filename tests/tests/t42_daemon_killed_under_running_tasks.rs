//! A daemon `SIGKILL`ed while the `process` engine runs its tasks; the task programs live on (own sessions), and the
//! daemon is started again on the same data root. t12 covers a *worker* daemon killed and restarted at once (its tasks
//! adopted) and a worker machine that dies with its programs; this file covers what it leaves out:
//!
//! - the **leader's** daemon killed while it runs tasks: the others elect a leader, the restarted daemon adopts the
//!   tasks still assigned to it (the same processes) or, if they were replaced meanwhile, stops their programs;
//! - a worker daemon killed and kept down until its tasks are **replaced** elsewhere, then restarted: its orphaned
//!   programs (still running, their tasks now replaced) are stopped, not adopted.
//!
//! Asserted in both: afterwards exactly `N` tasks run, no slot holds two live tasks, each host runs exactly the
//! programs of its running tasks (none duplicated, none lost), and it still holds a few heartbeats later.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::json::{find_by, str_at};
use skep_tests::services::{converged, is_running, node_of, summarize_tasks};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

const N: usize = 6;
const PROGRAM: &str = "sleep 3600";
/// Bound on every convergence here (election, Down detection, replacement, adoption).
const CONVERGE: Duration = Duration::from_secs(45);

/// Forms `managers` + `workers`, runs `N` replicas of [`PROGRAM`], waits until the programs match the tasks. Returns
/// the node IDs.
fn setup(c: &mut Cluster, managers: usize, workers: usize) -> Result<Vec<String>> {
    c.form(managers, workers)?;
    let ids: Vec<String> = (0..managers + workers).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    c.skep_ok(0, &["service", "create", "--name", "work", "--replicas", &N.to_string(), "-d", "busybox", "sleep", "3600"])?;
    c.wait_running(0, "work", N, CONVERGE)?;
    wait_until("programs to match tasks", CONVERGE, || c.processes_match_tasks(&ids, PROGRAM, &c.tasks(0, "work")?, N))?;
    Ok(ids)
}

/// IDs of the tasks running on node `id`, and the pids of host `v`'s programs (sorted).
fn running_on(c: &Cluster, from: usize, id: &str, v: usize) -> Result<(Vec<String>, Vec<u32>)> {
    let tasks = c.tasks(from, "work")?;
    let ids = tasks.iter().filter(|t| is_running(t) && node_of(t) == id).filter_map(|t| str_at(t, "ID")).map(str::to_owned);
    let mut pids: Vec<u32> = c.task_processes_matching(v, PROGRAM).iter().map(|p| p.pid).collect();
    pids.sort_unstable();
    Ok((ids.collect(), pids))
}

/// Waits (from host `from`) for `N` running tasks whose programs match, checks it again 3 s later, and returns the
/// tasks.
fn converged_without_duplicates(c: &Cluster, from: usize, ids: &[String]) -> Result<Vec<Value>> {
    let check = || -> Result<Vec<Value>> {
        let tasks = c.tasks(from, "work")?;
        ensure!(converged(&tasks, N), "{}", summarize_tasks(&tasks));
        c.processes_match_tasks(ids, PROGRAM, &tasks, N)?;
        Ok(tasks)
    };
    wait_until("N running tasks, each host running exactly its tasks' programs", CONVERGE, check)?;
    // no late duplicate from the restarted daemon
    std::thread::sleep(Duration::from_secs(3));
    let tasks = check().context("3 s after converging")?;
    eprintln!("converged: {}", summarize_tasks(&tasks));
    Ok(tasks)
}

#[test]
fn the_leader_daemon_killed_under_running_tasks_adopts_or_stops_them_on_restart_without_duplicates() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    let ids = setup(&mut c, 3, 0)?;
    let leader = c.leader_id(0)?;
    let v = c.host_of(&leader).context("the leader's host")?;
    let (old, pids) = running_on(&c, v, &leader, v)?;
    ensure!(!old.is_empty(), "the leader runs no task");
    eprintln!("killing the daemon of the leader {} with {} tasks running (programs {pids:?})", c.host(v).name, old.len());
    c.kill(v)?;
    let other = (v + 1) % 3;
    wait_until("the other managers to elect another leader", CONVERGE, || -> Result<()> {
        let now = c.leader_id(other)?;
        ensure!(now != leader, "{now} still leads");
        Ok(())
    })?;
    let alive: Vec<u32> = c.task_processes_matching(v, PROGRAM).iter().map(|p| p.pid).collect();
    ensure!(alive.len() == pids.len(), "the daemon's death took programs with it: {alive:?} of {pids:?}");
    c.start(v)?;
    let tasks = converged_without_duplicates(&c, other, &ids)?;
    // each old task either runs on the leader's host still (adopted: the same programs) or was replaced and its
    // program stopped (processes_match_tasks counted that)
    let adopted: Vec<&String> = old.iter().filter(|id| find_by(&tasks, "ID", id).is_some_and(is_running)).collect();
    let (_, now) = running_on(&c, other, &leader, v)?;
    eprintln!("{} of {} tasks adopted; programs now {now:?}", adopted.len(), old.len());
    if adopted.len() == old.len() {
        assert_eq!(now, pids, "the adopted tasks must run the same processes");
    }
    c.pass();
    Ok(())
}

#[test]
fn a_worker_daemon_killed_until_its_tasks_are_replaced_stops_its_orphans_on_restart() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(4)?;
    let ids = setup(&mut c, 3, 1)?;
    let v = 3;
    let (old, pids) = running_on(&c, 0, &ids[v], v)?;
    ensure!(!old.is_empty(), "the worker runs no task");
    c.kill(v)?;
    eprintln!("killed the daemon of {}; its {} programs {pids:?} live on", c.host(v).name, pids.len());
    c.wait_tasks(0, "work", CONVERGE, "the worker's tasks replaced on the others", |t| {
        converged(t, N) && t.iter().filter(|t| is_running(t) && node_of(t) == ids[v]).count() == 0
    })?;
    let orphans = c.task_processes_matching(v, PROGRAM);
    eprintln!("replaced; {} orphaned programs still run on {}", orphans.len(), c.host(v).name);
    c.start(v)?;
    converged_without_duplicates(&c, 0, &ids)?;
    let left: Vec<u32> = c.task_processes_matching(v, PROGRAM).iter().map(|p| p.pid).filter(|p| pids.contains(p)).collect();
    assert!(left.is_empty(), "orphaned programs of replaced tasks still run: {left:?}");
    c.pass();
    Ok(())
}
