//! Raft membership: a new cluster's single member (bootstrap), a manager joining the voters (its own call, and the
//! leader's side of it), a node leaving, the removal of a voter (leave, demotion), and a manager whose Raft data was
//! corrupt reseated under a fresh Raft ID.

use super::{werr, Manager};
use crate::control::ControlError;
use crate::dispatcher::UNKNOWN_NODE;
use crate::raft::Member;
use crate::store::Op;
use openraft::ChangeMembers;
use skep_api::docker::{NodeRole, NodeState};
use skep_api::wire::{ErrorKind, Request, Response};
use skep_pki::PeerIdentity;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;
use skep_transport::{LeaderCaller, Policy};

impl Manager {
    /// Make this manager the single member of a new cluster (`swarm init`, or `--force-new-cluster`).
    pub async fn bootstrap(&self) -> Result<(), ControlError> {
        let mut members = BTreeMap::new();
        members.insert(self.inner.cfg.raft_id, self.member());
        match self.inner.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(e) => Err(ControlError::Internal(format!("cannot initialise raft: {e}"))),
        }?;
        self.inner
            .raft
            .wait(Some(Duration::from_secs(10)))
            .current_leader(self.inner.cfg.raft_id, "bootstrap")
            .await
            .map_err(|e| ControlError::Unavailable(format!("no leader after bootstrap: {e}")))?;
        Ok(())
    }

    /// `swarm init --force-new-cluster`: stop this manager and rewrite its Raft files so that it is the single
    /// member of a new membership, reachable at `addr`, keeping the state it had applied (see
    /// [`crate::raft::force`]). The caller starts a manager on the same directory afterwards.
    pub async fn force_new_cluster(&self, addr: SocketAddr) -> Result<(), ControlError> {
        self.shutdown().await;
        let (last, state) = self.inner.sm.applied();
        let member = Member { node_id: self.inner.cfg.node_id.clone(), addr: addr.to_string() };
        let cfg = &self.inner.cfg;
        crate::raft::force::single_member(&cfg.dir, cfg.raft_id, member, last, &state, cfg.dek.clone())
            .await
            .map_err(|e| ControlError::Internal(format!("--force-new-cluster: {e}")))
    }

    /// Wait until this manager leads and serves writes (after [`Manager::force_new_cluster`] and a restart).
    pub async fn wait_leader(&self, within: Duration) -> Result<(), ControlError> {
        let deadline = tokio::time::Instant::now() + within;
        while !self.leader_ready() {
            if tokio::time::Instant::now() >= deadline {
                return Err(ControlError::Unavailable(format!("not the raft leader after {within:?}")));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    fn member(&self) -> Member {
        Member { node_id: self.inner.cfg.node_id.clone(), addr: self.inner.cfg.addr.to_string() }
    }

    /// Join the Raft membership of an existing cluster: ask the leader (through any manager in `seeds`) to add us.
    pub async fn join_raft(&self, seeds: &[SocketAddr]) -> Result<(), ControlError> {
        let leader = LeaderCaller::new(self.inner.endpoint.clone(), skep_pki::NODE_SAN, seeds.to_vec());
        let policy = Policy::until(Duration::from_secs(20), Duration::from_secs(5), Duration::from_millis(200));
        match leader.call(&Request::RaftJoin { raft_id: self.inner.cfg.raft_id }, policy).await {
            Ok(Response::Ok) => Ok(()),
            Ok(Response::Error(e)) => Err(ControlError::InvalidArgument(e.message)),
            Ok(other) => Err(ControlError::Internal(format!("unexpected reply {other:?}"))),
            Err(e) => Err(ControlError::Unavailable(format!("timed out joining the raft cluster ({e})"))),
        }
    }

    /// Remove a manager from the Raft membership (demotion, leave, rm). Leader only.
    pub(super) async fn remove_voter(&self, raft_id: u64) -> Result<(), ControlError> {
        let voters = self.voters();
        if !voters.contains(&raft_id) {
            // a learner, or already gone
            let m = self.inner.raft.metrics().borrow().membership_config.membership().clone();
            if m.get_node(&raft_id).is_none() {
                return Ok(());
            }
        }
        self.removal_keeps_quorum(raft_id)?;
        let mut set = BTreeSet::new();
        set.insert(raft_id);
        self.inner
            .raft
            .change_membership(ChangeMembers::RemoveVoters(set.clone()), false)
            .await
            .map_err(|e| ControlError::Unavailable(format!("cannot change raft membership: {e}")))?;
        // remove it as a learner too
        let _ = self.inner.raft.change_membership(ChangeMembers::RemoveNodes(set), false).await;
        Ok(())
    }

    /// `RaftJoin`: a promoted manager (its store record says manager, with this Raft ID) asks to become a voter.
    pub(super) async fn handle_raft_join(&self, id: PeerIdentity, raft_id: u64) -> Response {
        if !self.is_leader() {
            return self.not_leader();
        }
        let state = self.local_state();
        let Some(rec) = state.nodes.get(&id.node_id) else {
            return werr(ErrorKind::Unavailable, UNKNOWN_NODE);
        };
        if rec.node.spec.role != NodeRole::Manager || rec.raft_id != Some(raft_id) {
            return werr(ErrorKind::InvalidArgument, "this node is not a manager with that raft id");
        }
        if self.voters().contains(&raft_id) {
            return Response::Ok;
        }
        let member = Member { node_id: id.node_id.clone(), addr: rec.cluster_addr.clone() };
        if let Err(e) = self.inner.raft.add_learner(raft_id, member, true).await {
            return werr(ErrorKind::Unavailable, format!("adding learner: {e}"));
        }
        let mut set = BTreeSet::new();
        set.insert(raft_id);
        match self.inner.raft.change_membership(ChangeMembers::AddVoterIds(set), false).await {
            Ok(_) => Response::Ok,
            Err(e) => werr(ErrorKind::Unavailable, format!("adding voter: {e}")),
        }
    }

    /// `RaftReseat`: a manager found its Raft log or snapshot corrupt and set it aside. Its old Raft ID leaves the
    /// membership first, then the store gives the node a fresh one; the node sees it as a promotion and joins with
    /// an empty log, which the leader fills by snapshot. A fresh ID rather than the old one with an empty log: the
    /// lost log may have held entries this voter helped commit, and its lost vote may have been granted this term,
    /// so under the old ID it could vote a candidate in that lacks them. Idempotent: a retry after the store moved
    /// on is answered `Ok`.
    pub(super) async fn handle_raft_reseat(&self, id: PeerIdentity, old: u64) -> Response {
        if !self.is_leader() {
            return self.not_leader();
        }
        let state = self.local_state();
        let Some(rec) = state.nodes.get(&id.node_id) else {
            return werr(ErrorKind::Unavailable, UNKNOWN_NODE);
        };
        if rec.node.spec.role != NodeRole::Manager {
            return werr(ErrorKind::InvalidArgument, "this node is not a manager");
        }
        match rec.raft_id {
            Some(r) if r == old => {}
            // already reseated (a retry) or the promotion is under way: the node follows the store
            Some(_) => return Response::Ok,
            None => return werr(ErrorKind::InvalidArgument, "this node has no raft id"),
        }
        let voters = self.voters();
        if voters.len() <= 1 && voters.contains(&old) {
            return werr(ErrorKind::InvalidArgument, "the only voter cannot be reseated");
        }
        if let Err(e) = self.remove_voter(old).await {
            return werr(ErrorKind::Unavailable, e.to_string());
        }
        match self.propose(Op::ReseatRaftId { id: id.node_id.clone(), old }).await {
            Ok(a) => {
                tracing::warn!(node = %id.node_id, old, new = ?a.raft_id,
                    "reseated a manager whose raft data was corrupt: it rejoins under a new raft id");
                Response::Ok
            }
            Err(e) => werr(ErrorKind::Unavailable, e.to_string()),
        }
    }

    /// `Leave`: a node leaves the swarm. A manager leaves the Raft membership first and is recorded as a worker;
    /// then the node is down ("node left the swarm") and its liveness is no longer tracked.
    pub(super) async fn handle_leave(&self, id: PeerIdentity) -> Response {
        if !self.is_leader() {
            return self.not_leader();
        }
        let state = self.local_state();
        let Some(rec) = state.nodes.get(&id.node_id).cloned() else {
            return Response::Ok;
        };
        if let Some(r) = rec.raft_id {
            if let Err(e) = self.remove_voter(r).await {
                return werr(ErrorKind::Unavailable, e.to_string());
            }
            let mut spec = rec.node.spec.clone();
            spec.role = NodeRole::Worker;
            let _ = self.propose(Op::UpdateNodeSpec { id: id.node_id.clone(), version: rec.node.version.index, spec }).await;
            let _ = self.propose(Op::ClearRaftId { id: id.node_id.clone() }).await;
        }
        self.lock_live().forget(&id.node_id);
        match self
            .propose(Op::SetNodeStatus {
                id: id.node_id.clone(),
                state: NodeState::Down,
                message: "node left the swarm".into(),
                addr: String::new(),
            })
            .await
        {
            Ok(_) => Response::Ok,
            Err(e) => werr(ErrorKind::Unavailable, e.to_string()),
        }
    }
}

/// How recently a voter must have answered this leader's Raft calls to count as reachable for a membership change: a
/// few of openraft's heartbeats (one every 375 ms by default, see [`crate::raft::RaftTiming`]), well below the 3 s
/// the nodes' own heartbeats take to mark a manager down.
const ANSWERED_FRESH: Duration = Duration::from_millis(1500);

impl Manager {
    /// Refuses (Docker's [`LOSS_OF_QUORUM`](crate::control::LOSS_OF_QUORUM)) to take voter `raft_id` out of the
    /// membership unless the remaining voters keep a quorum this leader reaches (see [`crate::role_manager`]).
    pub(super) fn removal_keeps_quorum(&self, raft_id: u64) -> Result<(), ControlError> {
        let me = self.inner.cfg.raft_id;
        let answered = super::lock(&self.inner.answered).clone();
        let now = tokio::time::Instant::now();
        let fresh = |at: &tokio::time::Instant| now.duration_since(*at) <= ANSWERED_FRESH;
        let reachable = |v: u64| v == me || answered.get(&v).is_some_and(fresh);
        let voters = self.voters();
        if crate::role_manager::removal_keeps_quorum(&voters, raft_id, reachable) {
            return Ok(());
        }
        let unreachable: Vec<u64> = voters.into_iter().filter(|&v| v != raft_id && !reachable(v)).collect();
        tracing::info!(raft_id, ?unreachable, "not removing a voter: the others would not keep a reachable quorum");
        Err(crate::control::loss_of_quorum(&format!("removing raft member {raft_id}; unreachable: {unreachable:?}")))
    }

    /// On the leader, before a proposal goes into the log: a demotion of a voter is refused while the other voters
    /// would not keep a reachable quorum (the same check the removal makes later, made while the client waits).
    pub(super) fn check_proposal(&self, op: &Op) -> Result<(), ControlError> {
        let state = self.local_state();
        match crate::role_manager::demoted_voter(&state, op, &self.voters()) {
            Some((node, raft_id)) => self.removal_keeps_quorum(raft_id).map_err(|_| {
                crate::control::loss_of_quorum(&format!("demoting node {node}"))
            }),
            None => Ok(()),
        }
    }
}
