//! Linearizability of the store's object model through leader kills: three clients, each talking to a different
//! manager over the API, read and write registers (labels of one node) while the leader is killed and restarted
//! again and again; the recorded history (invoke and return times, inputs, outputs) must be linearizable
//! (`skep_tests::linearizability`). Acknowledged writes are never lost, and no read sees a value that was
//! overwritten before it started or one nobody wrote.
//!
//! The clients and the recorded history are `skep_tests::registers`, shared with the fault suite (t40–t44).

use anyhow::{Context as _, Result};
use skep_tests::registers::Registers;
use skep_tests::{require_root_and_netns, Cluster};
use std::time::Duration;

/// Leader kills.
const KILLS: usize = 3;

#[test]
fn reads_and_writes_through_every_manager_stay_linearizable_while_the_leader_is_killed() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(3, 0)?;
    let h = Registers::new(&c.node_id(0)?);
    // a calm start, then rounds of: kill the leader, clients on the survivors through the election, restart it
    h.clients(&c, &[0, 1, 2], Duration::from_secs(3), "r0");
    for round in 1..=KILLS {
        let any = (0..3).find(|&i| c.is_running(i)).context("a running manager")?;
        let leader = c.leader_id(any)?;
        let at = c.host_of(&leader).context("the leader's host")?;
        c.kill(at)?;
        let survivors: Vec<usize> = (0..3).filter(|&i| i != at).collect();
        h.clients(&c, &survivors, Duration::from_secs(4), &format!("r{round}"));
        c.start(at)?;
        h.clients(&c, &[0, 1, 2], Duration::from_secs(2), &format!("r{round}"));
        eprintln!("round {round}: killed and restarted {}", c.host(at).name);
    }
    h.assert_linearizable();
    c.pass();
    Ok(())
}
