//! A manager frozen with `SIGSTOP` (a long GC pause, a stalled VM) while clients read and write through every
//! manager, then thawed with `SIGCONT`: the leader or a follower, for 3 s (about an election timeout) and for 15 s
//! (long enough for the others to move on by many terms and log entries).
//!
//! Asserted (see `skep_tests::registers`): the history of every client's operations is linearizable, so no
//! acknowledged write was lost and no read saw a stale or unwritten value, including the requests that hung on the
//! frozen daemon and were answered after it thawed; when the leader is frozen for 15 s, the two others go on
//! acknowledging writes meanwhile; after the thaw, a write through every manager is acknowledged within
//! [`RECOVER_BOUND`] and all of them name one and the same leader (the thawed leader stepped down or won again, never
//! both).

use anyhow::Result;
use skep_tests::registers::{managers, AFTER, BEFORE};
use std::time::Duration;

/// Bound on a write through a manager being acknowledged after the fault healed.
const RECOVER_BOUND: Duration = Duration::from_secs(30);

/// Which manager is frozen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Victim {
    Leader,
    Follower,
}

fn pause_while_writing(victim: Victim, pause: Duration) -> Result<()> {
    managers(3, |c, h, leader| {
        let at = match victim {
            Victim::Leader => leader,
            Victim::Follower => (leader + 1) % 3,
        };
        eprintln!("freezing {} ({victim:?}) for {pause:?}", c.host(at).name);
        let (from, to) = std::thread::scope(|s| -> Result<_> {
            s.spawn(|| h.clients(c, &[0, 1, 2], BEFORE + pause + AFTER, "w"));
            std::thread::sleep(BEFORE);
            let mut frozen = c.pause(at)?;
            let from = h.now();
            std::thread::sleep(pause);
            let to = h.now();
            frozen.resume();
            Ok((from, to))
        })?;
        if victim == Victim::Leader && pause >= Duration::from_secs(15) {
            let others: Vec<String> =
                (0..3).filter(|&i| i != at).flat_map(|i| h.acknowledged_writes_through(i, from, to)).collect();
            eprintln!("{} writes acknowledged through the others while the leader was frozen", others.len());
            assert!(!others.is_empty(), "no write acknowledged through the other managers in {pause:?} without a leader");
        }
        h.settle(c, &[0, 1, 2], to, RECOVER_BOUND)
    })
}

#[test]
fn the_leader_frozen_for_3s_loses_no_write_and_the_history_stays_linearizable() -> Result<()> {
    pause_while_writing(Victim::Leader, Duration::from_secs(3))
}

#[test]
fn the_leader_frozen_for_15s_is_replaced_loses_no_write_and_the_history_stays_linearizable() -> Result<()> {
    pause_while_writing(Victim::Leader, Duration::from_secs(15))
}

#[test]
fn a_follower_frozen_for_3s_loses_no_write_and_the_history_stays_linearizable() -> Result<()> {
    pause_while_writing(Victim::Follower, Duration::from_secs(3))
}

#[test]
fn a_follower_frozen_for_15s_catches_up_and_the_history_stays_linearizable() -> Result<()> {
    pause_while_writing(Victim::Follower, Duration::from_secs(15))
}
