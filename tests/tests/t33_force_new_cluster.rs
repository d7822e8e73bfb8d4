//! Quorum loss and `swarm init --force-new-cluster`: two of three managers die for good; the survivor cannot write;
//! `docker swarm init --force-new-cluster` (the stock CLI) on it keeps every service, network, secret and task, makes
//! it the only manager, and the swarm takes writes again; the dead managers are listed unreachable until demoted and
//! removed, and a new manager can join the recovered swarm.

use anyhow::{ensure, Context as _, Result};
use skep_tests::json::{find_by, str_at};
use skep_tests::{require_root_and_netns, Cluster};
use serde_json::Value;
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(40);

fn managers(n: &[Value]) -> usize {
    n.iter().filter(|v| !str_at(v, "ManagerStatus").unwrap_or("").is_empty()).count()
}

/// What both tests set up is there, as host `i` lists it: the service, the network and the secret.
fn ensure_kept(c: &Cluster, i: usize) -> Result<()> {
    let services = c.services(i)?;
    ensure!(find_by(&services, "Spec.Name", "web").is_some(), "service web lost: {services:?}");
    let nets = c.api(i, "GET", "/networks", None)?.json()?;
    ensure!(nets.as_array().is_some_and(|a| find_by(a, "Name", "keep-net").is_some()), "network lost: {nets}");
    let secrets = c.api(i, "GET", "/secrets", None)?.json()?;
    ensure!(secrets.as_array().is_some_and(|a| find_by(a, "Spec.Name", "keep-secret").is_some()), "secret lost: {secrets}");
    Ok(())
}

#[test]
fn a_survivor_of_quorum_loss_forces_a_new_cluster_keeping_the_state_and_takes_writes_again() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(4)?;
    c.form(3, 1)?;
    let ids: Vec<String> = (0..4).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    c.skep_ok(0, &["network", "create", "-d", "overlay", "keep-net"])?;
    let secret = c.api(0, "POST", "/secrets/create", Some(r#"{"Name":"keep-secret","Data":"c2VjcmV0"}"#))?;
    ensure!(secret.status == 201, "secret create: {} {}", secret.status, secret.body);
    c.skep_ok(0, &["service", "create", "-d", "--name", "web", "--replicas", "2", "--network", "keep-net", "busybox", "sleep", "3600"])?;
    let before = c.wait_running(0, "web", 2, SETTLE)?;

    // two managers die for good: no quorum
    c.kill(1)?;
    c.kill(2)?;
    let refused = c.docker(0, &["service", "scale", "-d", "web=3"])?;
    ensure!(refused.ok().is_err(), "a write without quorum was acknowledged");
    eprintln!("without quorum: {}", refused.stderr.trim());

    let out = c.docker(0, &["swarm", "init", "--force-new-cluster"])?;
    out.ok().context("docker swarm init --force-new-cluster")?;
    eprintln!("force-new-cluster: {}", out.stdout.trim());

    // the state is kept: the same service with its tasks, network and secret
    ensure_kept(&c, 0)?;
    let running: Vec<&Value> = before.iter().collect();
    let after = c.tasks(0, "web")?;
    for t in running {
        let id = str_at(t, "ID").unwrap_or_default();
        ensure!(find_by(&after, "ID", id).is_some(), "task {id} lost");
    }

    // writes flow again, and the tasks of the dead managers' nodes run elsewhere
    c.docker(0, &["service", "scale", "-d", "web=3"])?.ok().context("scale after --force-new-cluster")?;
    c.wait_running(0, "web", 3, SETTLE)?;
    let nodes = c.node_ls(0)?;
    ensure!(managers(&nodes) == 3, "the dead managers stay listed: {nodes:?}");
    ensure!(
        str_at(find_by(&nodes, "ID", &ids[0]).context("self")?, "ManagerStatus") == Some("Leader"),
        "the survivor leads: {nodes:?}"
    );

    // the dead managers are demoted and removed; a fresh daemon joins as a manager
    for i in [1, 2] {
        c.wait_nodes(0, SETTLE, "the dead manager Down", |n| {
            find_by(n, "ID", &ids[i]).is_some_and(|v| str_at(v, "Status") == Some("Down"))
        })?;
        c.docker(0, &["node", "demote", &ids[i]])?.ok().with_context(|| format!("demote {}", ids[i]))?;
        c.docker(0, &["node", "rm", &ids[i]])?.ok().with_context(|| format!("rm {}", ids[i]))?;
    }
    c.wait_nodes(0, SETTLE, "two nodes left", |n| n.len() == 2)?;
    std::fs::remove_dir_all(c.host(1).dir.join("swarm")).context("wiping the dead manager's swarm state")?;
    c.start(1)?;
    let token = c.join_token(0, skep_tests::Role::Manager)?;
    c.join(1, 0, &token)?.ok().context("a new manager joins the recovered swarm")?;
    c.wait_nodes(0, SETTLE, "two managers, both reachable", |n| {
        managers(n) == 2 && n.iter().all(|v| matches!(str_at(v, "ManagerStatus"), None | Some("") | Some("Leader") | Some("Reachable")))
    })?;
    c.docker(1, &["service", "scale", "-d", "web=2"])?.ok().context("a write through the new manager")?;
    c.wait_running(1, "web", 2, SETTLE)?;
    c.pass();
    Ok(())
}

/// `skep swarm backup` on a manager, the whole swarm lost, and `skep swarm restore` on a daemon that was never part
/// of it (another host, another address): the services, networks and secrets are back, the restored manager leads
/// alone, and the service's tasks run on it.
#[test]
fn a_backup_restored_on_a_fresh_daemon_brings_the_swarm_back() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    c.form(1, 0)?;
    c.start(1)?;
    c.skep_ok(0, &["network", "create", "-d", "overlay", "keep-net"])?;
    let secret = c.api(0, "POST", "/secrets/create", Some(r#"{"Name":"keep-secret","Data":"c2VjcmV0"}"#))?;
    ensure!(secret.status == 201, "secret create: {} {}", secret.status, secret.body);
    c.skep_ok(0, &["service", "create", "-d", "--name", "web", "--replicas", "2", "--network", "keep-net", "busybox", "sleep", "3600"])?;
    c.wait_running(0, "web", 2, SETTLE)?;
    let file = c.root().join("swarm.backup");
    let file_s = file.to_string_lossy().to_string();
    c.skep_ok(0, &["swarm", "backup", &file_s])?;
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file)?.permissions()) & 0o777;
    ensure!(mode == 0o600, "the backup's mode is {mode:o}");

    // the whole swarm is lost
    c.kill(0)?;
    let ip = c.host(1).ip.clone();
    let out = c.skep_ok(1, &["swarm", "restore", "--advertise-addr", &ip, &file_s])?;
    eprintln!("restore: {}", out.trim());
    ensure_kept(&c, 1)?;
    let nodes = c.node_ls(1)?;
    let me = nodes.iter().find(|v| v["Self"] == true).context("self in node ls")?;
    ensure!(str_at(me, "ManagerStatus") == Some("Leader"), "the restored manager leads: {nodes:?}");
    c.skep_ok(1, &["service", "scale", "web=3"])?;
    c.wait_running(1, "web", 3, SETTLE)?;
    // a second restore on a daemon already in a swarm is refused
    let again = c.skep(1, &["swarm", "restore", &file_s])?.refused()?;
    ensure!(again.contains("already part of a swarm"), "{again}");
    c.pass();
    Ok(())
}
