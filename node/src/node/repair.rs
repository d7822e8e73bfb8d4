//! A manager whose Raft data is corrupt rebuilds it from the other managers instead of refusing to start.
//!
//! The log and the snapshot are checksummed (`skep_manager::raft::wal`, `state_machine`), so damage is found when the
//! manager opens them. What is damaged cannot be trusted, and what was lost with it includes the manager's vote and
//! entries it may have helped commit. Coming back under the same Raft ID with an empty log could therefore let it vote
//! in a leader that lacks committed entries. So the repair gives the node a fresh Raft ID:
//! 1. the node saves its state as "a worker waiting to be reseated" (`Membership::reseat`) before anything else, so a
//!    crash from here on never restarts Raft under the old ID, then moves the damaged files aside
//!    (`swarm/raft.corrupt-<unix time>/`, kept for the operator) and starts without Raft;
//! 2. it asks the leader (`Request::RaftReseat`), retrying until there is one: the leader takes the old ID out of the
//!    membership and the store gives the node a new one;
//! 3. the node sees a manager's role with a new Raft ID, as after `docker node promote`, starts Raft on an empty log
//!    and asks to be a voter; the leader sends it a snapshot.
//!
//! This needs another manager holding the data: a single manager with damaged files refuses to start and says how to
//! recover (a backup, or the files of another manager).

use super::NodeHandle;
use crate::state::Membership;
use skep_api::docker::NodeRole;
use skep_api::wire::{ErrorKind, Request, Response};
use skep_manager::runtime::StartError;
use skep_transport::{LeaderCaller, Policy};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

/// How long to wait between two reseat requests that found no leader or a leader that could not change the
/// membership yet.
const RETRY: Duration = Duration::from_secs(2);

/// Whether a manager failed to start because its Raft files are damaged.
pub(super) fn is_corrupt(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<StartError>().is_some_and(StartError::is_corrupt))
}

impl NodeHandle {
    /// Step 1: record the pending reseat, then move the damaged Raft files aside. Returns the state to run with: a
    /// worker that remembers the Raft ID it lost. Refuses when no other manager is known to hold the data.
    pub(super) fn set_aside_corrupt_raft(
        &self,
        state: Membership,
        raft_id: u64,
        why: &anyhow::Error,
    ) -> anyhow::Result<Membership> {
        let raft = self.inner.paths.raft();
        if !state.managers.iter().any(|p| p.node_id != state.node_id) {
            anyhow::bail!(
                "{why:#}\nThis manager's Raft data in {} is corrupt and no other manager holds a copy, so it cannot \
                 be rebuilt here. Restore the swarm from a backup (`skep swarm restore FILE` on a fresh data root), \
                 or put back an intact copy of the directory and start again.",
                raft.display()
            );
        }
        let mut next = state;
        next.role = NodeRole::Worker;
        next.raft_id = None;
        next.reseat = Some(raft_id);
        // first the state: a crash before the move leaves a worker waiting to be reseated, never Raft under the old ID
        self.inner.paths.save(&next)?;
        let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let aside = self.inner.paths.swarm.join(format!("raft.corrupt-{secs}"));
        std::fs::rename(&raft, &aside)
            .map_err(|e| anyhow::anyhow!("moving the corrupt raft data {} aside: {e}", raft.display()))?;
        tracing::error!(
            raft_id,
            kept = %aside.display(),
            "{why:#}. This manager's Raft data is corrupt: it was moved aside and will be rebuilt from the other \
             managers. The node runs as a worker until the leader gives it a new Raft ID, then rejoins as a manager \
             and receives a snapshot. Nothing to do; delete the kept directory once the node is a manager again."
        );
        Ok(next)
    }

    /// Step 2: ask the leader until it has reseated this node (then the agent's next desired role carries the new
    /// Raft ID), or until the swarm says it cannot be.
    pub(super) async fn reseat_loop(self, leader: LeaderCaller, old: u64, mut stop: watch::Receiver<bool>) {
        let policy = Policy::until(Duration::from_secs(20), Duration::from_secs(5), Duration::from_millis(500));
        loop {
            let req = Request::RaftReseat { raft_id: old };
            match leader.call(&req, policy).await {
                Ok(Response::Ok) => {
                    tracing::info!(old, "the leader took the lost raft id out of the membership; rejoining as a manager");
                    return;
                }
                Ok(Response::Error(e)) if e.kind == ErrorKind::InvalidArgument || e.kind == ErrorKind::Removed => {
                    tracing::error!("the swarm cannot rebuild this manager's raft data: {}", e.message);
                    self.set_error(format!("rebuilding this manager's corrupt raft data: {}", e.message));
                    return;
                }
                Ok(other) => tracing::warn!("asking the leader to rebuild this manager's raft data: {other:?}; retrying"),
                Err(e) => tracing::warn!("asking the leader to rebuild this manager's raft data: {e}; retrying"),
            }
            tokio::select! {
                _ = tokio::time::sleep(RETRY) => {}
                _ = stop.changed() => return,
            }
        }
    }
}
