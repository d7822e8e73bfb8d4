//! Five managers split in two by nftables rules (every link between the sides cut; each side still talks within
//! itself) while clients read and write through all five: the leader on the two-manager side (it must lose its
//! leadership in effect: nothing it is asked commits), and the leader on the three-manager side (the two cut off
//! cannot elect a leader of their own).
//!
//! Asserted (see `skep_tests::registers`): no write invoked through a minority-side manager after the cut is
//! acknowledged before the heal (refused or timed out); the majority side acknowledges writes meanwhile; after the heal
//! every manager takes a write within [`RECOVER_BOUND`], all five name one leader, and the whole history with final
//! reads through each is linearizable (nothing acknowledged lost, the minority caught up).

use anyhow::Result;
use skep_tests::registers::{managers, Registers};
use skep_tests::Cluster;
use std::time::Duration;

/// Bound on a write through a manager being acknowledged after the heal.
const RECOVER_BOUND: Duration = Duration::from_secs(30);
/// How long the sides stay apart.
const HOLD: Duration = Duration::from_secs(10);
const ALL: [usize; 5] = [0, 1, 2, 3, 4];

/// Cuts `minority` from the rest for [`HOLD`] while clients run on all five, then checks the invariants.
fn split(c: &Cluster, h: &Registers, minority: [usize; 2]) -> Result<()> {
    let majority: Vec<usize> = ALL.into_iter().filter(|i| !minority.contains(i)).collect();
    eprintln!("minority side: {minority:?}, majority side: {majority:?} (0-based hosts)");
    let (from, to) =
        h.during(c, &ALL, HOLD, || minority.iter().try_for_each(|&m| c.isolate_from(m, &majority)))?;
    for m in minority {
        let acked = h.acknowledged_writes_through(m, from, to);
        assert!(acked.is_empty(), "{} on the minority side acknowledged writes: {acked:?}", c.host(m).name);
    }
    let acked: usize = majority.iter().map(|&i| h.acknowledged_writes_through(i, from, to).len()).sum();
    eprintln!("{acked} writes acknowledged by the majority side while split");
    assert!(acked > 0, "the majority side acknowledged no write in {HOLD:?}");
    h.settle(c, &ALL, to, RECOVER_BOUND)
}

#[test]
fn the_leader_on_the_two_manager_side_commits_nothing_and_the_three_go_on() -> Result<()> {
    managers(5, |c, h, leader| split(c, h, [leader, (leader + 1) % 5]))
}

#[test]
fn two_followers_cut_off_from_the_leader_and_two_others_commit_nothing_and_catch_up() -> Result<()> {
    managers(5, |c, h, leader| split(c, h, [(leader + 1) % 5, (leader + 2) % 5]))
}
