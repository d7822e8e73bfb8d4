//! Managers cut off from each other by nftables rules in their namespaces (`Cluster::cut_link`: the switch stays up,
//! only the chosen links drop packets) while clients read and write through every manager: a follower alone, the
//! leader alone, a flapping link between the leader and a follower, lossy links between all managers, and a one-way
//! cut between the leader and a follower in either direction.
//!
//! Asserted (see `skep_tests::registers`): no write invoked through a cut-off manager after the cut is acknowledged
//! before the heal (it is refused or times out: without a majority nothing commits); while the leader is cut off, the
//! majority side elects another and acknowledges writes; after the heal, a write through every manager is acknowledged
//! within [`RECOVER_BOUND`], all name one and the same leader, and the whole history, with a final read through each
//! manager, is linearizable (no acknowledged write lost, the cut-off side caught up).

use anyhow::Result;
use skep_tests::faults::Link;
use skep_tests::registers::{managers, Registers};
use skep_tests::Cluster;
use std::time::Duration;

/// Bound on a write through a manager being acknowledged after the fault healed.
const RECOVER_BOUND: Duration = Duration::from_secs(30);
const ALL: [usize; 3] = [0, 1, 2];

/// Host `at`, cut off from both others for `hold`, acknowledges no write meanwhile; when `at` led, the others do.
fn one_manager_cut_off(c: &Cluster, h: &Registers, at: usize, was_leader: bool, hold: Duration) -> Result<()> {
    let (from, to) = h.during(c, &ALL, hold, || c.isolate_from(at, &ALL))?;
    let acked = h.acknowledged_writes_through(at, from, to);
    assert!(acked.is_empty(), "{} acknowledged writes while cut off from every other manager: {acked:?}", c.host(at).name);
    if was_leader {
        let others: Vec<String> =
            ALL.iter().filter(|&&i| i != at).flat_map(|&i| h.acknowledged_writes_through(i, from, to)).collect();
        eprintln!("{} writes acknowledged by the majority side while the old leader was cut off", others.len());
        assert!(!others.is_empty(), "the majority side acknowledged no write in {hold:?} without the old leader");
    }
    h.settle(c, &ALL, to, RECOVER_BOUND)
}

#[test]
fn a_follower_cut_off_acknowledges_no_write_and_catches_up_after_the_heal() -> Result<()> {
    managers(3, |c, h, leader| one_manager_cut_off(c, h, (leader + 1) % 3, false, Duration::from_secs(8)))
}

#[test]
fn the_leader_cut_off_alone_is_replaced_by_the_majority_and_acknowledges_nothing_meanwhile() -> Result<()> {
    managers(3, |c, h, leader| one_manager_cut_off(c, h, leader, true, Duration::from_secs(12)))
}

#[test]
fn a_flapping_link_between_the_leader_and_a_follower_loses_no_write() -> Result<()> {
    managers(3, |c, h, leader| {
        let follower = (leader + 1) % 3;
        // cut for 2 s, healed for 1 s, four times
        let (_, healed) = h.during(c, &ALL, Duration::from_secs(1), || {
            for _ in 0..4 {
                c.cut_link(leader, follower, Link::Cut)?;
                std::thread::sleep(Duration::from_secs(2));
                c.heal_links()?;
                std::thread::sleep(Duration::from_secs(1));
            }
            Ok(())
        })?;
        h.settle(c, &ALL, healed, RECOVER_BOUND)
    })
}

#[test]
fn ten_percent_loss_between_all_managers_loses_no_write() -> Result<()> {
    managers(3, |c, h, _| {
        let (_, healed) = h.during(c, &ALL, Duration::from_secs(10), || {
            [(0, 1), (1, 2), (0, 2)].into_iter().try_for_each(|(a, b)| c.cut_link(a, b, Link::Lossy(10)))
        })?;
        h.settle(c, &ALL, healed, RECOVER_BOUND)
    })
}

/// A one-way cut between the leader and a follower for 10 s: the leader's packets lost on the way to the follower
/// (`leader_to_follower`), or the follower's on the way to the leader.
fn one_way(leader_to_follower: bool) -> Result<()> {
    managers(3, |c, h, leader| {
        let follower = (leader + 1) % 3;
        let (from, to) = if leader_to_follower { (leader, follower) } else { (follower, leader) };
        let (_, healed) = h.during(c, &ALL, Duration::from_secs(10), || c.cut_one_way(from, to))?;
        h.settle(c, &ALL, healed, RECOVER_BOUND)
    })
}

#[test]
fn a_follower_whose_packets_to_the_leader_are_lost_one_way_loses_no_write() -> Result<()> {
    one_way(false)
}

#[test]
fn a_follower_that_stops_hearing_the_leader_one_way_loses_no_write() -> Result<()> {
    one_way(true)
}
