//! Leader crash: a SIGKILLed leader is replaced within the election bound, writes resume, and the old
//! leader comes back as a reachable follower with its data.

use anyhow::{ensure, Context as _, Result};
use skep_tests::json::{find_by, str_at};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::{Duration, Instant};

/// Bound on electing a new leader and acknowledging a write after the leader died.
const FAILOVER_BOUND: Duration = Duration::from_secs(20);

#[test]
fn a_killed_leader_is_replaced_and_writes_resume() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    c.form(3, 2)?;
    let old_leader = c.leader_id(0)?;
    let old_host = c.host_of(&old_leader).context("no host runs the leader")?;
    let survivor = (0..3).find(|&i| i != old_host).expect("3 managers");
    let worker = c.node_id(3)?;
    eprintln!("leader is {} ({old_leader}); querying through {}", c.host(old_host).name, c.host(survivor).name);

    c.kill(old_host)?;
    let t0 = Instant::now();
    let new_leader = wait_until("a new leader", FAILOVER_BOUND, || -> Result<String> {
        let l = c.leader_id(survivor)?;
        ensure!(l != old_leader, "leader is still the killed {l}");
        Ok(l)
    })?;
    let elected_ms = t0.elapsed().as_millis();
    wait_until("a write through the new leader", FAILOVER_BOUND.saturating_sub(t0.elapsed()), || {
        c.skep_ok(survivor, &["node", "update", "--label-add", "failover=survived", &worker])
    })?;
    let write_ms = t0.elapsed().as_millis();
    eprintln!("failover: new leader {new_leader} after {elected_ms} ms, first write acknowledged after {write_ms} ms");

    let node = c.node_inspect(survivor, &worker)?;
    assert_eq!(str_at(&node, "Spec.Labels.failover"), Some("survived"), "{node}");
    let nodes = c.node_ls(survivor)?;
    let dead = find_by(&nodes, "ID", &old_leader).context("old leader vanished from node ls")?;
    assert_ne!(str_at(dead, "ManagerStatus"), Some("Leader"), "{dead}");

    // The workers' sessions moved to the new leader: a full down-TTL (3 heartbeat periods) after the failover they
    // are still Ready, never marked Down.
    let workers = [c.node_id(3)?, c.node_id(4)?];
    std::thread::sleep(Duration::from_secs(4));
    let nodes = c.node_ls(survivor)?;
    for w in &workers {
        let n = find_by(&nodes, "ID", w).context("worker vanished")?;
        assert_eq!(str_at(n, "Status"), Some("Ready"), "worker {w} after the failover: {n}");
    }

    c.start(old_host)?;
    assert_eq!(c.node_id(old_host)?, old_leader, "restart must keep the node ID");
    c.wait_nodes(survivor, Duration::from_secs(30), "the restarted manager Reachable and Ready", |n| {
        find_by(n, "ID", &old_leader)
            .is_some_and(|v| str_at(v, "ManagerStatus") == Some("Reachable") && str_at(v, "Status") == Some("Ready"))
    })?;
    assert_eq!(c.leader_id(old_host)?, new_leader, "the restarted manager must follow the new leader");
    let node = c.node_inspect(old_host, &worker)?;
    assert_eq!(str_at(&node, "Spec.Labels.failover"), Some("survived"), "the restarted manager lacks the write");
    c.pass();
    Ok(())
}
