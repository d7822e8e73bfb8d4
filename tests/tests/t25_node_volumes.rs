//! A node's volumes through the stock docker CLI (`docker volume create/ls/inspect/rm/prune` against the node):
//! a volume made by hand and one made by a service's `--mount` are both listed, with their labels and options; one
//! in use cannot be removed (Docker's 409 and words) until its task is gone; prune takes only what no task uses; and
//! the volumes are the node's own (another node does not list them).

use anyhow::{ensure, Result};
use serde_json::Value;
use skep_tests::services::state;
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(30);

fn names(ls: &str) -> Vec<String> {
    ls.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn a_nodes_volumes_are_listed_inspected_removed_and_pruned_through_the_docker_cli() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    c.set_engine(Some("process"));
    c.form(1, 1)?;
    c.set_client_timeout(Duration::from_secs(60));
    let manager_id = c.node_id(0)?;

    // by hand, with a label and the local driver's options
    let out = c.docker(0, &["volume", "create", "--label", "team=db", "--opt", "type=tmpfs", "--opt", "device=tmpfs", "--opt", "o=size=1m", "handmade"])?;
    assert_eq!(out.ok()?.trim(), "handmade");
    let v: Value = serde_json::from_str(c.docker(0, &["volume", "inspect", "handmade"])?.ok()?)?;
    assert_eq!(v[0]["Driver"], "local", "{v}");
    assert_eq!(v[0]["Labels"]["team"], "db", "{v}");
    assert_eq!(v[0]["Options"]["type"], "tmpfs", "{v}");
    let missing = c.docker(0, &["volume", "inspect", "nope"])?.refused()?;
    assert!(missing.contains("no such volume"), "{missing}");

    // by a service on the manager
    c.docker(
        0,
        &[
            "service", "create", "-d", "--name", "vol", "--constraint", &format!("node.id=={manager_id}"),
            "--mount", "type=volume,src=svcdata,dst=/tmp/skep-t25-data", "busybox", "sleep", "3600",
        ],
    )?
    .ok()?;
    c.wait_tasks(0, "vol", CONVERGE, "vol running", |t| t.iter().any(|t| state(t) == "running"))?;
    let ls = names(c.docker(0, &["volume", "ls", "-q"])?.ok()?);
    ensure!(ls.contains(&"handmade".to_string()) && ls.contains(&"svcdata".to_string()), "volume ls: {ls:?}");
    let on_worker = names(c.docker(1, &["volume", "ls", "-q"])?.ok()?);
    ensure!(on_worker.is_empty(), "the worker lists the manager's volumes: {on_worker:?}");
    let dangling = names(c.docker(0, &["volume", "ls", "-q", "--filter", "dangling=true"])?.ok()?);
    ensure!(dangling == ["handmade"], "dangling: {dangling:?}");

    // in use: refused, naming it
    let refused = c.docker(0, &["volume", "rm", "svcdata"])?.refused()?;
    assert!(refused.contains("volume is in use"), "{refused}");
    // prune (all): takes the unused one only
    let pruned = c.docker(0, &["volume", "prune", "-a", "-f"])?.ok()?.to_string();
    assert!(pruned.contains("handmade") && !pruned.contains("svcdata"), "{pruned}");

    // the task gone, the volume stays (volumes outlive their tasks) and can be removed
    c.docker(0, &["service", "rm", "vol"])?.ok()?;
    wait_until("the service's volume free", CONVERGE, || -> Result<()> {
        let d = names(c.docker(0, &["volume", "ls", "-q", "--filter", "dangling=true"])?.ok()?);
        ensure!(d == ["svcdata"], "dangling: {d:?}");
        Ok(())
    })?;
    c.docker(0, &["volume", "rm", "svcdata"])?.ok()?;
    ensure!(names(c.docker(0, &["volume", "ls", "-q"])?.ok()?).is_empty(), "volumes left after rm");
    c.pass();
    Ok(())
}
