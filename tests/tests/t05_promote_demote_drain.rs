//! Changing a node's role and availability, and the guards around it: the last manager stays, a node that
//! is up cannot be removed, a down one can.

use anyhow::{Context as _, Result};
use skep_tests::json::{find_by, req_str, str_at};
use skep_tests::{require_root_and_netns, Cluster};
use serde_json::Value;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(30);

fn managers(n: &[Value]) -> usize {
    n.iter().filter(|v| !str_at(v, "ManagerStatus").unwrap_or("").is_empty()).count()
}

fn field<'a>(n: &'a [Value], id: &str, key: &str) -> Option<&'a str> {
    find_by(n, "ID", id).and_then(|v| str_at(v, key))
}

#[test]
fn promoted_demoted_and_drained_nodes_show_their_new_role_and_availability() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(5)?;
    c.form(3, 2)?;
    let w1 = c.node_id(3)?;
    let w2 = c.node_id(4)?;

    c.skep_ok(0, &["node", "promote", &w1])?;
    c.wait_nodes(0, SETTLE, "4 managers with the promoted one Reachable", |n| {
        managers(n) == 4 && field(n, &w1, "ManagerStatus") == Some("Reachable")
    })?;
    assert_eq!(req_str(&c.node_inspect(0, &w1)?, "Spec.Role")?, "manager");
    c.wait_nodes(3, SETTLE, "the promoted node answering node ls itself", |n| managers(n) == 4)?;

    c.skep_ok(0, &["node", "demote", &w1])?;
    c.wait_nodes(0, SETTLE, "3 managers after the demotion", |n| {
        managers(n) == 3 && field(n, &w1, "ManagerStatus").unwrap_or("").is_empty()
    })?;
    assert_eq!(req_str(&c.node_inspect(0, &w1)?, "Spec.Role")?, "worker");

    c.skep_ok(0, &["node", "update", "--availability", "drain", &w2])?;
    c.wait_nodes(0, SETTLE, "the drained node shown as Drain", |n| field(n, &w2, "Availability") == Some("Drain"))?;
    assert_eq!(req_str(&c.node_inspect(1, &w2)?, "Spec.Availability")?, "drain");

    let msg = c.skep(0, &["node", "rm", &w2])?.refused().context("removing a node that is up")?;
    eprintln!("rm of a live node refused: {}", msg.trim());
    c.stop(4)?;
    c.wait_nodes(0, SETTLE, "the stopped node Down", |n| field(n, &w2, "Status") == Some("Down"))?;
    c.skep_ok(0, &["node", "rm", &w2])?;
    c.wait_nodes(0, SETTLE, "4 nodes left after the removal", |n| n.len() == 4 && find_by(n, "ID", &w2).is_none())?;
    c.pass();
    Ok(())
}

#[test]
fn the_last_manager_cannot_be_demoted() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    c.form(1, 0)?;
    let me = c.node_id(0)?;
    let msg = c.skep(0, &["node", "demote", &me])?.refused().context("demoting the only manager")?;
    eprintln!("demote of the last manager refused: {}", msg.trim());
    assert_eq!(req_str(&c.node_inspect(0, &me)?, "Spec.Role")?, "manager");
    assert_eq!(c.leader_id(0)?, me);
    c.pass();
    Ok(())
}
