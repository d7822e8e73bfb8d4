//! Failover and restart tails: a leader killed again and again while a client writes through each survivor with the
//! stock docker CLI — every write is held until a leader is elected and then acknowledged, never refused (with a
//! false "not a swarm manager" or anything else); and the killed manager, restarted on its data each time, serves a
//! read that includes the latest write as soon as the others list it as reachable.
//!
//! The figures (kill → acknowledgement, listed reachable → read served) are printed; the goal for them (2 s) is a
//! benchmark's (`bench/run-store.sh` failover), not an assertion here. The bounds below only tell a hang from a
//! slow machine.

use anyhow::{bail, ensure, Context as _, Result};
use skep_tests::json::{find_by, str_at};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::time::{Duration, Instant};

/// Kills of the leader.
const ROUNDS: usize = 10;
/// Longer than this and something hung (the goal is 2 s).
const HANG: Duration = Duration::from_secs(20);

#[test]
fn writes_through_survivors_of_a_killed_leader_are_acknowledged_and_the_restarted_manager_serves_the_latest() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(3, 0)?;
    let ids: Vec<String> = (0..3).map(|i| c.node_id(i)).collect::<Result<_>>()?;
    let mut writes: Vec<Duration> = Vec::new();
    let mut reads: Vec<Duration> = Vec::new();
    for round in 0..ROUNDS {
        let any = (0..3).find(|&i| c.is_running(i)).context("a running manager")?;
        let leader = c.leader_id(any)?;
        let at = c.host_of(&leader).context("the leader's host")?;
        let survivors: Vec<usize> = (0..3).filter(|&i| i != at).collect();
        c.kill(at)?;
        let killed = Instant::now();
        // one write through each survivor at once, each on the survivor's own node (no version races between them)
        let label = format!("round{round}=done");
        let results: Vec<(usize, Duration, Result<String>)> = std::thread::scope(|s| {
            let c = &c;
            let handles: Vec<_> = survivors
                .iter()
                .map(|&i| {
                    let (id, label) = (&ids[i], &label);
                    s.spawn(move || {
                        let out = c.docker(i, &["node", "update", "--label-add", label, id]).and_then(|o| Ok(o.ok()?.to_owned()));
                        (i, killed.elapsed(), out)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("writer thread")).collect()
        });
        for (i, took, out) in results {
            if let Err(e) = out {
                c.dump_logs(40);
                bail!("round {round}: the write through {} after the kill of {} was refused after {took:?}: {e:#}", c.host(i).name, c.host(at).name);
            }
            ensure!(took < HANG, "round {round}: the write through {} hung for {took:?}", c.host(i).name);
            writes.push(took);
        }
        // the killed manager comes back on its data
        c.start(at)?;
        let survivor = survivors[0];
        c.wait_nodes(survivor, HANG, "the restarted manager listed Reachable", |n| {
            find_by(n, "ID", &leader).is_some_and(|v| str_at(v, "ManagerStatus") == Some("Reachable"))
        })?;
        let listed = Instant::now();
        let last_write = (ids[survivors[1]].as_str(), format!("round{round}"));
        wait_until("the restarted manager serving a read with the latest write", HANG, || -> Result<()> {
            let node = c.node_inspect(at, last_write.0)?;
            ensure!(str_at(&node, &format!("Spec.Labels.{}", last_write.1)) == Some("done"), "not yet: {node}");
            Ok(())
        })?;
        reads.push(listed.elapsed());
        eprintln!(
            "round {round}: killed {}; writes through the survivors acknowledged after {:?}; restarted manager served the latest write {:?} after it was listed Reachable",
            c.host(at).name,
            &writes[writes.len() - survivors.len()..],
            listed.elapsed()
        );
    }
    writes.sort();
    reads.sort();
    eprintln!(
        "{ROUNDS} kills: kill → write acknowledged: median {:?}, max {:?}; listed Reachable → read served: median {:?}, max {:?}",
        writes[writes.len() / 2],
        writes[writes.len() - 1],
        reads[reads.len() / 2],
        reads[reads.len() - 1]
    );
    c.pass();
    Ok(())
}
