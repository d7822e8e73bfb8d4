//! Forming a swarm: one `swarm init`, managers and workers joining through it, and every manager agreeing
//! on the membership.

use anyhow::Result;
use skep_tests::json::{count_eq, find_by, req_str, str_at};
use skep_tests::{require_root_and_netns, Cluster};
use std::time::Duration;

#[test]
fn three_managers_and_two_workers_see_five_ready_nodes_and_one_leader_from_every_manager() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    c.form(3, 2)?;
    let ids: Vec<String> = (0..5).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    let mut distinct = ids.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "node IDs are not unique: {ids:?}");

    let mut leaders_seen = Vec::new();
    for m in 0..3 {
        let nodes = c.wait_nodes(m, Duration::from_secs(30), "5 Ready nodes, 3 managers, one Leader", |n| {
            n.len() == 5
                && count_eq(n, "Status", "Ready") == 5
                && n.iter().filter(|v| !str_at(v, "ManagerStatus").unwrap_or("").is_empty()).count() == 3
                && count_eq(n, "ManagerStatus", "Leader") == 1
                && count_eq(n, "ManagerStatus", "Reachable") == 2
        })?;
        for (i, id) in ids.iter().enumerate() {
            let row = find_by(&nodes, "ID", id).unwrap_or_else(|| panic!("{id} (h{}) missing from {nodes:?}", i + 1));
            let is_manager = !str_at(row, "ManagerStatus").unwrap_or("").is_empty();
            assert_eq!(is_manager, i < 3, "h{} manager status: {row}", i + 1);
            assert_eq!(str_at(row, "Availability"), Some("Active"), "{row}");
        }
        let me = nodes.iter().find(|v| skep_tests::json::bool_at(v, "Self") == Some(true));
        assert_eq!(me.and_then(|v| str_at(v, "ID")), Some(ids[m].as_str()), "Self on h{}", m + 1);
        leaders_seen.push(c.leader_id(m)?);
    }
    assert!(leaders_seen.windows(2).all(|w| w[0] == w[1]), "managers disagree on the leader: {leaders_seen:?}");

    for (i, id) in ids.iter().enumerate() {
        let node = c.node_inspect(0, id)?;
        assert_eq!(req_str(&node, "ID")?, id);
        assert_eq!(req_str(&node, "Spec.Role")?, if i < 3 { "manager" } else { "worker" });
        assert_eq!(req_str(&node, "Status.State")?, "ready");
        let info = c.info(i)?;
        assert_eq!(req_str(&info, "Swarm.LocalNodeState")?, "active");
        assert_eq!(skep_tests::json::bool_at(&info, "Swarm.ControlAvailable"), Some(i < 3), "h{} ControlAvailable", i + 1);
    }
    c.pass();
    Ok(())
}

#[test]
fn a_worker_refuses_cluster_commands() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    c.form(1, 1)?;
    let out = c.skep(1, &["node", "ls"])?;
    let msg = out.refused()?;
    assert!(msg.contains("not a swarm manager"), "unexpected refusal: {msg}");
    c.pass();
    Ok(())
}
