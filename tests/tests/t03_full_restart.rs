//! Whole-cluster restart: every daemon stops, every daemon starts again on its data root, and the swarm is
//! the same swarm: same node IDs, same data, a leader.

use anyhow::Result;
use skep_tests::json::{count_eq, str_at};
use skep_tests::{require_root_and_netns, Cluster};
use std::time::Duration;

#[test]
fn a_fully_restarted_cluster_keeps_its_nodes_and_data_and_elects_a_leader() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    c.form(3, 2)?;
    let ids: Vec<String> = (0..5).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    for (i, id) in ids.iter().enumerate() {
        c.skep_ok(0, &["node", "update", "--label-add", &format!("host=h{}", i + 1), id])?;
    }

    for i in 0..5 {
        c.stop(i)?;
    }
    for i in 0..5 {
        c.start(i)?;
    }

    for (i, id) in ids.iter().enumerate() {
        assert_eq!(&c.node_id(i)?, id, "h{} changed identity across the restart", i + 1);
    }
    c.wait_nodes(0, Duration::from_secs(45), "5 Ready nodes and one Leader after the restart", |n| {
        n.len() == 5 && count_eq(n, "Status", "Ready") == 5 && count_eq(n, "ManagerStatus", "Leader") == 1
    })?;
    for (i, id) in ids.iter().enumerate() {
        let node = c.node_inspect(1, id)?;
        let want = format!("h{}", i + 1);
        assert_eq!(str_at(&node, "Spec.Labels.host"), Some(want.as_str()), "label lost: {node}");
    }
    c.skep_ok(2, &["node", "update", "--label-add", "after=restart", &ids[4]])?;
    c.pass();
    Ok(())
}
