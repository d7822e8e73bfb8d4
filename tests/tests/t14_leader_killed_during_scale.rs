//! The leader is `SIGKILL`ed right after a scale-up was acknowledged: the next leader finishes the job, exactly 12
//! tasks run and no slot ends with two live tasks. When the old leader comes back it only stops the tasks it kept
//! running while dead; it must not disturb the tasks that run elsewhere.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::services::{converged, duplicate_slots, is_running, node_of, running_per_node, summarize_tasks};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const N: usize = 12;
const PROGRAM: &str = "sleep 3600";
/// Election plus node-down detection plus scheduling, with slack.
const CONVERGE: Duration = Duration::from_secs(45);
/// How long the return of the old leader is watched.
const WATCH: Duration = Duration::from_secs(5);

fn processes_match_tasks(c: &Cluster, ids: &[String], tasks: &[Value]) -> Result<()> {
    let per_node = running_per_node(tasks);
    for (i, id) in ids.iter().enumerate() {
        let procs = c.task_processes_matching(i, PROGRAM).len();
        let want = per_node.get(id).copied().unwrap_or(0);
        ensure!(procs == want, "{}: {want} running tasks but {procs} programs", c.host(i).name);
    }
    Ok(())
}

/// 3 managers + 2 workers, 5 replicas (one per node, so the leader runs one too), then `scale web=12 -d` through
/// another manager and `SIGKILL` of the leader at once; waits for exactly 12 running elsewhere, watching every listing
/// for a slot with two live tasks. Returns (node IDs, leader host, host used for queries, old leader ID).
fn scale_and_kill_leader(c: &mut Cluster) -> Result<(Vec<String>, usize, usize, String)> {
    c.form(3, 2)?;
    let ids: Vec<String> = (0..5).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    c.skep_ok(0, &["service", "create", "--name", "web", "--replicas", "5", "-d", "busybox", "sleep", "3600"])?;
    c.wait_running(0, "web", 5, Duration::from_secs(30))?;

    let leader_id = c.leader_id(0)?;
    let leader = c.host_of(&leader_id).context("no host runs the leader")?;
    let via = (0..3).find(|&i| i != leader).expect("3 managers");
    eprintln!("leader {}; scaling through {}", c.host(leader).name, c.host(via).name);

    c.skep_ok(via, &["service", "scale", "-d", &format!("web={N}")])?;
    c.kill(leader)?;
    let t0 = Instant::now();

    let mut dup_seen: Option<String> = None;
    let tasks = wait_until(&format!("exactly {N} running after the leader died"), CONVERGE, || -> Result<Vec<Value>> {
        let tasks = c.tasks(via, "web")?;
        if dup_seen.is_none() && !duplicate_slots(&tasks).is_empty() {
            dup_seen = Some(format!("after {} ms: slots {:?}: {}", t0.elapsed().as_millis(), duplicate_slots(&tasks), summarize_tasks(&tasks)));
        }
        ensure!(converged(&tasks, N) && !running_per_node(&tasks).contains_key(&leader_id), "{}", summarize_tasks(&tasks));
        Ok(tasks)
    })?;
    eprintln!("leader killed: {N} running after {} ms (new leader {})", t0.elapsed().as_millis(), c.leader_id(via)?);
    assert!(dup_seen.is_none(), "a slot held two live tasks: {}", dup_seen.unwrap_or_default());
    assert!(duplicate_slots(&tasks).is_empty());
    Ok((ids, leader, via, leader_id))
}

#[test]
fn scale_survives_the_leader_being_killed() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    let (ids, leader, via, _) = scale_and_kill_leader(&mut c)?;
    // The survivors run exactly their tasks' programs (the dead leader's orphans aside).
    let tasks = c.tasks(via, "web")?;
    wait_until("the live hosts to run exactly their tasks' programs", Duration::from_secs(15), || -> Result<()> {
        let tasks = c.tasks(via, "web")?;
        let per_node = running_per_node(&tasks);
        for (i, id) in ids.iter().enumerate().filter(|&(i, _)| i != leader) {
            let procs = c.task_processes_matching(i, PROGRAM).len();
            ensure!(procs == per_node.get(id).copied().unwrap_or(0), "{}: {procs} programs; {}", c.host(i).name, summarize_tasks(&tasks));
        }
        Ok(())
    })?;
    ensure!(converged(&tasks, N), "{}", summarize_tasks(&tasks));
    c.pass();
    Ok(())
}

#[test]
fn the_killed_leader_returning_leaves_the_other_tasks_alone() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    let (ids, leader, via, leader_id) = scale_and_kill_leader(&mut c)?;

    // What runs on the survivors now must keep running: the old leader only has to stop its own orphans.
    let settled: BTreeMap<String, String> = c
        .tasks(via, "web")?
        .iter()
        .filter(|t| is_running(t))
        .map(|t| (t["ID"].as_str().unwrap_or("").to_owned(), format!("slot {} on {}", t["Slot"], node_of(t))))
        .collect();
    let orphans = c.task_processes_matching(leader, PROGRAM).len();
    c.start(leader)?;
    let t1 = Instant::now();
    eprintln!("old leader {} restarted with {orphans} orphaned programs", c.host(leader).name);

    let mut problems: Vec<String> = Vec::new();
    let mut last = Vec::new();
    while t1.elapsed() < WATCH {
        let tasks = c.tasks(via, "web").unwrap_or_default();
        let ms = t1.elapsed().as_millis();
        if !duplicate_slots(&tasks).is_empty() && problems.len() < 5 {
            problems.push(format!("+{ms} ms: slots {:?} hold two live tasks", duplicate_slots(&tasks)));
        }
        for t in &tasks {
            let id = t["ID"].as_str().unwrap_or("");
            if let Some(what) = settled.get(id) {
                if t["DesiredState"] != "running" && !problems.iter().any(|p| p.contains(id)) {
                    problems.push(format!("+{ms} ms: running task {id} ({what}) was shut down"));
                }
            }
        }
        last = tasks;
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("after the old leader's return: {}", summarize_tasks(&last));
    assert!(
        problems.is_empty(),
        "the return of the old leader {leader_id} disturbed the service ({} problems):\n{}\nlast: {}",
        problems.len(),
        problems.join("\n"),
        summarize_tasks(&last)
    );
    let tasks = c.wait_tasks(via, "web", Duration::from_secs(10), &format!("exactly {N} running"), |t| converged(t, N))?;
    wait_until("each host to run exactly its tasks' programs", Duration::from_secs(15), || {
        processes_match_tasks(&c, &ids, &c.tasks(via, "web")?)
    })?;
    eprintln!("old leader back: {}", summarize_tasks(&tasks));
    c.pass();
    Ok(())
}
