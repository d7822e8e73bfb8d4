//! What a manager measures of itself for the daemon's `/metrics`: the Raft figures openraft's metrics watch gives
//! (and the commit index, which only its core can tell), and those that need recording as they happen: leader
//! changes, proposal and assignment latency here, heartbeats in the [`Liveness`](crate::dispatcher::Liveness) that
//! already sees each one. The store-derived figures are not here: the daemon computes them from a store version when
//! it is scraped.

use super::Manager;
use crate::dispatcher::BeatCounts;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};

/// How long a scrape waits for Raft's core to tell the commit index (it answers between two of its own steps).
const COMMITTED_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Raft as this manager sees it now (openraft's metrics watch; the commit index is [`Manager::raft_committed`]).
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
    /// Index of the last entry known committed (0: none; `None`: Raft's core did not answer in time).
    pub committed: Option<u64>,
}

/// The measurements a manager records while it runs. Cheap to clone (each metric is shared).
#[derive(Clone, Debug)]
pub struct ManagerMetrics {
    /// Times the leader this manager knows became a different one (etcd's `leader_changes_seen`).
    pub leader_changes: Counter,
    /// Seconds from a proposal's arrival at the leader's group commit to its entry being applied.
    pub proposal_duration: Histogram,
    /// Seconds from a task's placement on a node (its `assigned` status written) to the node's first report on it
    /// reaching the leader (see [`assignment_delays`](crate::dispatcher::status::assignment_delays)).
    pub assignment_duration: Histogram,
}

impl Default for ManagerMetrics {
    fn default() -> ManagerMetrics {
        // 1 ms to ~16 s: an idle leader commits in a few ms, a loaded one in hundreds
        ManagerMetrics {
            leader_changes: Counter::default(),
            proposal_duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            // 10 ms to ~5 min: a node takes an assignment within its long poll's turnaround, or is slow or stuck
            assignment_duration: Histogram::new(exponential_buckets(0.01, 2.0, 15)),
        }
    }
}

impl Manager {
    /// Raft's figures now: the metrics watch's, then the commit index asked of the core.
    pub async fn raft_status(&self) -> RaftStatus {
        let m = self.inner.raft.metrics().borrow().clone();
        RaftStatus {
            term: m.current_term,
            leader: m.current_leader == Some(self.inner.cfg.raft_id),
            has_leader: m.current_leader.is_some(),
            last_log: m.last_log_index.unwrap_or(0),
            applied: m.last_applied.map_or(0, |l| l.index),
            committed: self.raft_committed().await,
        }
    }

    /// The commit index, asked of Raft's core (openraft 0.9's metrics watch does not carry it; `Raft::with_raft_state`
    /// reads `RaftState::committed` between two of the core's steps), or `None` when the core does not answer within
    /// a short wait (busy or stopping).
    async fn raft_committed(&self) -> Option<u64> {
        let ask = self.inner.raft.with_raft_state(|st| st.committed.map_or(0, |l| l.index));
        tokio::time::timeout(COMMITTED_WAIT, ask).await.ok()?.ok()
    }

    /// Heartbeats received and down verdicts per node, as this manager counted them as leader.
    pub fn heartbeat_counts(&self) -> Vec<(String, BeatCounts)> {
        self.lock_live().counts().map(|(id, c)| (id.to_string(), c)).collect()
    }

    /// The swarm node IDs of the Raft voters in the membership this manager knows (the union of both configurations
    /// while a change is in progress), sorted: what an operator compares with the managers the store lists.
    pub fn raft_voters(&self) -> Vec<String> {
        let m = self.inner.raft.metrics().borrow().membership_config.clone();
        let membership = m.membership();
        let name = |id: u64| membership.get_node(&id).map_or_else(|| format!("raft-{id}"), |n| n.node_id.clone());
        let mut ids: Vec<String> = membership.voter_ids().map(name).collect();
        ids.sort();
        ids
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
