//! The stock docker CLI against skep's socket: what a docker user types works and prints what they expect.

use anyhow::{ensure, Context as _, Result};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::Duration;

#[test]
fn the_docker_cli_initialises_joins_lists_inspects_drains_and_promotes() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    c.start(0)?;
    c.start(1)?;
    let (ip0, ip1) = (c.host(0).ip.clone(), c.host(1).ip.clone());

    let out = c.docker(0, &["swarm", "init", "--advertise-addr", &ip0, "--listen-addr", &format!("{ip0}:2377")])?;
    let text = out.ok()?;
    assert!(text.contains("Swarm initialized: current node ("), "{text}");
    assert!(text.contains(") is now a manager."), "{text}");

    let out = c.docker(0, &["swarm", "join-token", "worker"])?;
    let text = out.ok()?;
    assert!(text.contains("To add a worker to this swarm, run the following command:"), "{text}");
    assert!(text.contains("docker swarm join --token SWMTKN-1-"), "{text}");
    assert!(text.contains(&format!("{ip0}:2377")), "{text}");
    let token = c.docker(0, &["swarm", "join-token", "-q", "worker"])?.ok()?.trim().to_owned();
    ensure!(token.starts_with("SWMTKN-1-"), "join-token -q printed {token}");

    let out = c.docker(1, &["swarm", "join", "--token", &token, "--advertise-addr", &ip1, "--listen-addr", &format!("{ip1}:2377"), &format!("{ip0}:2377")])?;
    assert!(out.ok()?.contains("This node joined a swarm as a worker."), "{}", out.stdout);

    let manager_id = c.docker(0, &["info", "--format", "{{.Swarm.NodeID}}"])?.ok()?.trim().to_owned();
    let worker_id = c.docker(1, &["info", "--format", "{{.Swarm.NodeID}}"])?.ok()?.trim().to_owned();
    ensure!(!manager_id.is_empty() && !worker_id.is_empty() && manager_id != worker_id, "node IDs {manager_id:?} {worker_id:?}");

    let table = wait_until("docker node ls to list both nodes Ready", Duration::from_secs(30), || -> Result<String> {
        let t = c.docker(0, &["node", "ls"])?.ok()?.to_owned();
        ensure!(t.lines().count() == 3 && t.lines().skip(1).all(|l| l.contains("Ready")), "{t}");
        Ok(t)
    })?;
    let header = table.lines().next().unwrap_or("");
    for col in ["ID", "HOSTNAME", "STATUS", "AVAILABILITY", "MANAGER STATUS", "ENGINE VERSION"] {
        assert!(header.contains(col), "header lacks {col}: {header}");
    }
    let mine = table.lines().find(|l| l.starts_with(&manager_id)).context("manager row missing")?;
    assert!(mine.contains(" * ") && mine.contains("Leader") && mine.contains("Active"), "{mine}");

    let out = c.docker(0, &["node", "inspect", &worker_id])?;
    let v = out.json()?;
    assert_eq!(v[0]["ID"], worker_id.as_str(), "{v}");
    assert_eq!(v[0]["Spec"]["Role"], "worker", "{v}");
    let role = c.docker(0, &["node", "inspect", "--format", "{{.Spec.Role}}", "self"])?.ok()?.trim().to_owned();
    assert_eq!(role, "manager");

    let out = c.docker(0, &["node", "update", "--availability", "drain", &worker_id])?;
    assert_eq!(out.ok()?.trim(), worker_id);
    let avail = c.docker(0, &["node", "inspect", "--format", "{{.Spec.Availability}}", &worker_id])?.ok()?.trim().to_owned();
    assert_eq!(avail, "drain");

    let out = c.docker(0, &["node", "promote", &worker_id])?;
    assert!(out.ok()?.contains(&format!("Node {worker_id} promoted to a manager in the swarm.")), "{}", out.stdout);
    wait_until("the promoted node Reachable in docker node ls", Duration::from_secs(30), || -> Result<()> {
        let t = c.docker(0, &["node", "ls"])?.ok()?.to_owned();
        let row = t.lines().find(|l| l.starts_with(&worker_id)).context("worker row missing")?;
        ensure!(row.contains("Reachable"), "{row}");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
