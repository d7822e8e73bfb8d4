//! The leader's periodic duties, every 200 ms once it is ready: liveness verdicts
//! ([`Liveness::tick`](crate::dispatcher::Liveness::tick)) and the role manager's demotions
//! ([`role_manager::demotions`]; a demoted leader hands leadership over first), and the end of a root CA rotation
//! once every node holds a certificate from the new root ([`ca::rotation::finished`](crate::ca::rotation::finished)). A manager that becomes the leader
//! first gives every node a full TTL of grace.

use super::Manager;
use crate::control::ControlError;
use crate::role_manager;
use crate::store::{ClusterState, Op, RootRotation};
use std::time::Duration;
use tokio::time::Instant;

impl Manager {
    pub(super) async fn leader_loop(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut was_leader = false;
        let mut tick = tokio::time::interval(Duration::from_millis(200));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let leader = self.leader_ready();
            let state = self.local_state();
            if leader && !was_leader {
                self.lock_live().reset(state.nodes.keys().cloned(), Instant::now());
                tracing::info!(node = %self.inner.cfg.node_id, "became the raft leader");
            }
            was_leader = leader;
            if !leader {
                continue;
            }
            let ops = self.lock_live().tick(&state, &self.inner.cfg.node_id, Instant::now());
            for op in ops {
                let node = match &op {
                    crate::store::Op::SetNodeStatus { id, .. } => Some(id.clone()),
                    _ => None,
                };
                match self.propose_local(op).await {
                    // counted once recorded: a verdict that failed is proposed again by the next tick
                    Ok(_) => node.into_iter().for_each(|n| self.lock_live().marked_down(&n)),
                    Err(e) => tracing::debug!("marking node down: {e}"),
                }
            }
            if let Err(e) = self.demote(&state).await {
                tracing::debug!("role reconciliation: {e}");
            }
            if let Some(r) = crate::ca::rotation::finished(&state) {
                if let Err(e) = self.finish_root_rotation(r).await {
                    tracing::warn!("finishing the root CA rotation (the next tick tries again): {e}");
                }
            }
        }
    }

    /// Every node holds a certificate from the rotation's new root: make it the trust root, with new join tokens
    /// (they name the root's digest).
    async fn finish_root_rotation(&self, r: &RootRotation) -> Result<(), ControlError> {
        let root = skep_pki::RootCa::from_pem(&r.ca_cert_pem, None)
            .map_err(|e| ControlError::Internal(format!("the rotation's root CA: {e}")))?;
        let token = || skep_pki::JoinToken::generate(&root.digest()).to_string();
        let tokens = skep_api::docker::JoinTokens { worker: token(), manager: token() };
        let op = Op::FinishRootRotation { ca_cert_pem: r.ca_cert_pem.clone(), tokens, tls_info: root.tls_info(&root) };
        self.propose_local(op).await?;
        tracing::info!(digest = %root.digest(), "root CA rotation finished: every node holds a certificate from the new root");
        Ok(())
    }

    /// Carry out the demotions `state` calls for, stopping at the first failure (the next tick tries again). The
    /// leader does not remove itself (openraft 0.9 cannot take a leader out of the membership it leads): it hands
    /// leadership over, and the next leader carries out its demotion.
    async fn demote(&self, state: &ClusterState) -> Result<(), ControlError> {
        for d in role_manager::demotions(state) {
            if d.raft_id == self.inner.cfg.raft_id {
                self.hand_over_leadership().await;
                return Ok(());
            }
            self.remove_voter(d.raft_id).await?;
            self.propose_local(d.clear).await?;
            tracing::info!(node = %d.node_id, "left the raft membership after demotion");
        }
        Ok(())
    }

    /// Stop heartbeating (and campaigning) until another manager is elected, up to [`HAND_OVER`]: the followers'
    /// election timers run out and one of them takes over. Meanwhile this manager serves no reads (a read index is
    /// confirmed with heartbeats), writes or nodes: anything it sent would reset the followers' timers. After the
    /// bound the next tick tries again.
    async fn hand_over_leadership(&self) {
        tracing::info!(node = %self.inner.cfg.node_id, "demoted while leading: handing leadership over");
        let rc = self.inner.raft.runtime_config();
        self.inner.handing_over.store(true, std::sync::atomic::Ordering::SeqCst);
        rc.heartbeat(false);
        let me = self.inner.cfg.raft_id;
        let mut metrics = self.inner.raft.metrics();
        let moved = tokio::time::timeout(HAND_OVER, metrics.wait_for(|m| m.current_leader != Some(me))).await;
        rc.heartbeat(true);
        self.inner.handing_over.store(false, std::sync::atomic::Ordering::SeqCst);
        match moved {
            Ok(Ok(_)) => tracing::info!(node = %self.inner.cfg.node_id, "leadership handed over"),
            _ => tracing::warn!(node = %self.inner.cfg.node_id, "no other manager took over within {HAND_OVER:?}; trying again"),
        }
    }
}

/// See [`Manager::hand_over_leadership`].
const HAND_OVER: Duration = Duration::from_secs(10);
