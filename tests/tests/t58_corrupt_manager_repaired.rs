//! A manager whose Raft log or snapshot is damaged while it is down is rebuilt from the other managers when it starts
//! again: the damaged files are moved aside with a message that says what happened, the leader takes the lost Raft ID
//! out of the membership and gives the node a fresh one, and the node rejoins as a voter from a snapshot. It then
//! holds the writes made while it was down and counts in the quorum (the other original manager is killed and the
//! swarm still writes). A lone manager has nowhere to rebuild from: it refuses to start, keeps its files, and says
//! how to recover.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::json::{find_by, str_at};
use skep_tests::wait::wait_until;
use skep_tests::{require_root_and_netns, Cluster};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SETTLE: Duration = Duration::from_secs(60);

/// Flips a few bytes in the middle of `file` (past any header, before the last record): damage, not a torn tail.
fn damage(file: &Path) -> Result<()> {
    let f = std::fs::OpenOptions::new().read(true).write(true).open(file).with_context(|| file.display().to_string())?;
    let len = f.metadata()?.len();
    ensure!(len > 256, "{} is too small to damage in the middle ({len} bytes)", file.display());
    let at = len / 2;
    let mut b = [0u8; 8];
    f.read_exact_at(&mut b, at)?;
    for x in &mut b {
        *x ^= 0x5a;
    }
    f.write_all_at(&b, at)?;
    f.sync_all()?;
    eprintln!("damaged 8 bytes at {at} of {} ({len} bytes)", file.display());
    Ok(())
}

fn raft_dir(c: &Cluster, i: usize) -> PathBuf {
    c.host(i).dir.join("swarm").join("raft")
}

/// The largest segment of host `i`'s Raft log.
fn largest_segment(c: &Cluster, i: usize) -> Result<PathBuf> {
    let dir = raft_dir(c, i).join("raft.log");
    let mut segs: Vec<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .with_context(|| dir.display().to_string())?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.len(), e.path())))
        .filter(|(_, p)| p.is_file())
        .collect();
    segs.sort();
    segs.pop().map(|(_, p)| p).context("no segment in the raft log")
}

fn manager_status<'a>(nodes: &'a [Value], id: &str) -> Option<&'a str> {
    find_by(nodes, "ID", id).and_then(|v| str_at(v, "ManagerStatus"))
}

/// `n` writes, one Raft entry each: configs created one after the other.
fn writes(c: &Cluster, i: usize, prefix: &str, n: usize) -> Result<()> {
    for k in 0..n {
        let body = format!(r#"{{"Name":"{prefix}-{k}","Data":"eA=="}}"#);
        let r = c.api(i, "POST", "/configs/create", Some(&body))?;
        ensure!(r.status == 201, "config create {prefix}-{k}: {} {}", r.status, r.body);
    }
    Ok(())
}

/// Host `damaged` (a follower of three managers, stopped, its file `pick` damaged) starts again and is rebuilt.
fn rebuilt_from_the_others(pick: fn(&Cluster, usize) -> Result<PathBuf>) -> Result<()> {
    let mut c = Cluster::new(3)?;
    // snapshots every 100 entries, so that the snapshot case has one to damage
    for i in 0..3 {
        c.set_daemon_extras(i, &[], &[("SKEP_SNAPSHOT_INTERVAL", "100")])?;
    }
    c.form(3, 0)?;
    let ids: Vec<String> = (0..3).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    let leader = c.leader_id(0)?;
    let damaged = (0..3).rev().find(|&i| ids[i] != leader).context("a follower")?;
    let other = (0..3).find(|&i| i != damaged && ids[i] != leader).context("the other follower")?;
    c.skep_ok(0, &["service", "create", "-d", "--name", "web", "--replicas", "2", "busybox", "sleep", "3600"])?;
    writes(&c, 0, "before", 150)?;
    c.wait_running(0, "web", 2, SETTLE)?;

    c.stop(damaged)?;
    let file = pick(&c, damaged)?;
    damage(&file)?;
    // the swarm writes on while it is down
    writes(&c, 0, "while-down", 20)?;
    c.docker(0, &["service", "scale", "-d", "web=3"])?.ok().context("scale while the manager is down")?;

    let started = std::time::Instant::now();
    c.start(damaged)?;
    let log = std::fs::read_to_string(c.daemon(damaged).context("daemon")?.log_path())?;
    ensure!(log.contains("is corrupt") && log.contains("moved aside"), "no message about the corrupt data:\n{log}");
    let kept: Vec<_> = std::fs::read_dir(c.host(damaged).dir.join("swarm"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("raft.corrupt-"))
        .collect();
    ensure!(kept.len() == 1, "the damaged files are kept aside once: {kept:?}");

    // back as a reachable manager, seen alike from every manager
    for i in 0..3 {
        c.wait_nodes(i, SETTLE, "the rebuilt manager reachable", |n| {
            manager_status(n, &ids[damaged]).is_some_and(|s| s == "Reachable" || s == "Leader")
                && n.iter().filter(|v| !str_at(v, "ManagerStatus").unwrap_or("").is_empty()).count() == 3
        })?;
    }
    eprintln!("rebuilt and reachable {:.1} s after its start", started.elapsed().as_secs_f64());

    // it holds what was written while it was down, and takes writes
    wait_until("the rebuilt manager lists every config", SETTLE, || {
        let v = c.api(damaged, "GET", "/configs", None)?.json()?;
        let n = v.as_array().map_or(0, Vec::len);
        ensure!(n == 170, "{n} configs");
        Ok(())
    })?;
    c.docker(damaged, &["service", "scale", "-d", "web=4"])?.ok().context("a write through the rebuilt manager")?;
    c.wait_running(damaged, "web", 4, SETTLE)?;

    // it is a voter: with the other original follower gone, it and the leader are the quorum
    c.kill(other)?;
    c.docker(damaged, &["service", "scale", "-d", "web=2"])?.ok().context("a write that needs the rebuilt voter")?;
    c.wait_running(damaged, "web", 2, SETTLE)?;
    c.pass();
    Ok(())
}

#[test]
fn a_manager_whose_raft_log_was_damaged_is_rebuilt_from_the_others_and_votes_again() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    rebuilt_from_the_others(largest_segment)
}

#[test]
fn a_manager_whose_snapshot_was_damaged_is_rebuilt_from_the_others_and_votes_again() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    rebuilt_from_the_others(|c, i| {
        let f = raft_dir(c, i).join("snapshot.json");
        ensure!(f.is_file(), "no snapshot at {}", f.display());
        Ok(f)
    })
}

#[test]
fn a_lone_manager_with_a_damaged_log_refuses_to_start_keeps_its_files_and_says_how_to_recover() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    c.form(1, 0)?;
    writes(&c, 0, "cfg", 40)?;
    c.stop(0)?;
    let seg = largest_segment(&c, 0)?;
    damage(&seg)?;
    let d = c.daemon_mut(0).context("daemon")?;
    d.start()?;
    wait_until("the daemon to exit", Duration::from_secs(30), || {
        ensure!(!d.is_running(), "still running");
        Ok(())
    })?;
    let log = std::fs::read_to_string(c.daemon(0).context("daemon")?.log_path())?;
    ensure!(
        log.contains("is corrupt") && log.contains("no other manager holds a copy") && log.contains("skep swarm restore"),
        "the refusal does not say what happened and how to recover:\n{log}"
    );
    ensure!(seg.is_file(), "the damaged log was not kept in place");
    c.pass();
    Ok(())
}
