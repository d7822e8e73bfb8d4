//! What a manager measures of itself for the daemon's `/metrics`: the Raft figures openraft's metrics watch gives,
//! and the two that need recording as they happen (leader changes, proposal latency). The store-derived figures are
//! not here: the daemon computes them from a store version when it is scraped.

use super::Manager;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// Raft as this manager sees it now. openraft 0.9's metrics carry no commit index: `applied` ≤ commit ≤
/// `last_log`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RaftStatus {
    /// The current term.
    pub term: u64,
    /// Whether this manager is the leader.
    pub leader: bool,
    /// Whether a leader is known.
    pub has_leader: bool,
    /// Index of the last entry in this manager's log (0: none).
    pub last_log: u64,
    /// Index of the last entry applied to the store (0: none).
    pub applied: u64,
}

/// The measurements a manager records while it runs. Cheap to clone (each metric is shared).
#[derive(Clone, Debug)]
pub struct ManagerMetrics {
    /// Times the leader this manager knows became a different one (etcd's `leader_changes_seen`).
    pub leader_changes: Counter,
    /// Seconds from a proposal's arrival at the leader's group commit to its entry being applied.
    pub proposal_duration: Histogram,
}

impl Default for ManagerMetrics {
    fn default() -> ManagerMetrics {
        // 1 ms to ~16 s: an idle leader commits in a few ms, a loaded one in hundreds
        ManagerMetrics {
            leader_changes: Counter::default(),
            proposal_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
        }
    }
}

impl Manager {
    /// Raft's figures now.
    pub fn raft_status(&self) -> RaftStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        RaftStatus {
            term: m.current_term,
            leader: m.current_leader == Some(self.inner.cfg.raft_id),
            has_leader: m.current_leader.is_some(),
            last_log: m.last_log_index.unwrap_or(0),
            applied: m.last_applied.map_or(0, |l| l.index),
        }
    }

    /// The measurements this manager records.
    pub fn metrics(&self) -> &ManagerMetrics {
        &self.inner.metrics
    }

    /// Count leader changes from openraft's metrics watch until the manager stops: each time the known leader becomes a
    /// different manager (losing sight of a leader and finding the same one again is no change).
    pub(super) async fn count_leader_changes(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut rx = self.inner.raft.metrics();
        let mut last = rx.borrow_and_update().current_leader;
        loop {
            tokio::select! {
                c = rx.changed() => if c.is_err() { return },
                _ = stop.changed() => return,
            }
            let now = rx.borrow_and_update().current_leader;
            if now.is_some() && now != last {
                if last.is_some() {
                    self.inner.metrics.leader_changes.inc();
                }
                last = now;
            }
        }
    }
}
