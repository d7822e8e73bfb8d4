//! A rolling update goes on where it was when the leader is killed in its middle: 3 managers + 1 worker, a service
//! on the worker updated one task every 2 s (`--update-delay`); the leader is `SIGKILL`ed once the update replaced
//! some but not all tasks. The next leader finishes it from the store: the same `UpdateStatus.StartedAt`, exactly
//! one new task per slot (nothing replaced twice), `completed`, and no slot with two live tasks.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::services::{duplicate_slots, is_live, state, summarize_tasks};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

fn forced(t: &Value) -> bool {
    t["Spec"]["ForceUpdate"] == 1
}

#[test]
fn an_update_continues_where_it_was_after_the_leader_is_killed() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(4)?;
    c.form(3, 1)?;
    c.set_client_timeout(Duration::from_secs(60));
    c.docker(0, &[
        "service", "create", "-d", "--name", "web", "--replicas", "4", "--constraint", "node.role==worker",
        "--update-parallelism", "1", "--update-delay", "2s", "--update-monitor", "1s", "busybox", "sleep", "3600",
    ])?
    .ok()?;
    c.wait_running(0, "web", 4, Duration::from_secs(40))?;

    let leader_id = c.leader_id(0)?;
    let leader = c.host_of(&leader_id).context("no host runs the leader")?;
    let via = (0..3).find(|&i| i != leader).expect("3 managers");
    c.docker(via, &["service", "update", "-d", "--force", "web"])?.ok()?;
    let started = wait_until("the update to be under way", Duration::from_secs(30), || -> Result<String> {
        let tasks = c.tasks(via, "web")?;
        let done = tasks.iter().filter(|t| forced(t) && state(t) == "running").count();
        ensure!((1..4).contains(&done), "{done} updated");
        let svc = c.docker(via, &["service", "inspect", "web"])?.json()?;
        let st = &svc[0]["UpdateStatus"];
        ensure!(st["State"] == "updating", "{st}");
        Ok(st["StartedAt"].as_str().unwrap_or_default().to_string())
    })?;
    c.kill(leader)?;
    eprintln!("killed the leader {} mid-update (started {started})", c.host(leader).name);

    let mut dup_seen = None;
    let svc = wait_until("the update to complete under the next leader", Duration::from_secs(60), || -> Result<Value> {
        let tasks = c.tasks(via, "web")?;
        if dup_seen.is_none() && !duplicate_slots(&tasks).is_empty() {
            dup_seen = Some(summarize_tasks(&tasks));
        }
        let svc = c.docker(via, &["service", "inspect", "web"])?.json()?;
        ensure!(svc[0]["UpdateStatus"]["State"] == "completed", "{}", svc[0]["UpdateStatus"]);
        Ok(svc)
    })?;
    let st = &svc[0]["UpdateStatus"];
    ensure!(st["StartedAt"] == started.as_str(), "the update started over: {st} (was {started})");
    let tasks = c.tasks(via, "web")?;
    let live: Vec<&Value> = tasks.iter().filter(|t| is_live(t)).collect();
    ensure!(live.len() == 4 && live.iter().all(|t| forced(t) && state(t) == "running"), "{}", summarize_tasks(&tasks));
    let made = tasks.iter().filter(|t| forced(t)).count();
    ensure!(made == 4, "{made} tasks made for 4 slots: a slot was updated twice: {}", summarize_tasks(&tasks));
    ensure!(dup_seen.is_none(), "a slot held two live tasks: {}", dup_seen.unwrap_or_default());
    c.pass();
    Ok(())
}
