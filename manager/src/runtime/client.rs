//! The Raft client side of a manager: linearizable reads, proposals, and their forwarding from a follower to the
//! leader (both ends: the follower's calls and the leader's answers to `ReadIndex` and `Propose`); and on top of
//! them the generic control path, [`Manager::query`] and [`Manager::control`], that API operations go through.

use super::batch::WriteError;
use super::{now_string, werr, Manager};
use crate::control::{ControlError, MANAGER_NOT_READY, NO_LEADER};
use crate::raft::space::NO_SPACE;
use crate::raft::{decode, encode};
use crate::store::{Applied, ApplyResult, ClusterState, Command, Op};
use skep_api::wire::{ErrorKind, Request, Response};
use skep_transport::{LeaderCaller, Policy};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// How long a proposal or read may wait for a leader before giving up with 503.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// Longest wait for the leader's answer to one forwarded read or write (the transport's own call bound).
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed attempt at a leader, how long to wait for Raft to name another before trying the same one again.
const RETRY_SAME: Duration = Duration::from_millis(300);

impl Manager {
    /// Answer a question about the cluster from a linearizable view of the store: `f` is a pure function of the
    /// state (typically one of [`control`](crate::control)'s lookups or views). Errors of the read (no leader: 503)
    /// and of `f` come back alike.
    ///
    /// ```no_run
    /// # async fn example(manager: skep_manager::runtime::Manager) -> Result<(), skep_manager::control::ControlError> {
    /// let nodes = manager.query(|st| Ok(manager.node_views(st))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn query<T>(&self, f: impl FnOnce(&ClusterState) -> Result<T, ControlError>) -> Result<T, ControlError> {
        let state = self.read().await?;
        f(&state)
    }

    /// Carry out a control operation: read a linearizable view of the store, let `f` decide (validate the request
    /// against the state and return a value for the caller and the [`Op`] to propose; typically one of
    /// [`control`](crate::control)'s functions), and propose the op. Returns `f`'s value and where the op was
    /// applied. A refusal by `f` proposes nothing; a refusal by the store (a conflict with a change applied between
    /// the read and the proposal) comes back as the matching [`ControlError`].
    ///
    /// ```no_run
    /// # use skep_manager::control::{self, ControlError};
    /// # async fn example(manager: skep_manager::runtime::Manager, version: u64) -> Result<(), ControlError> {
    /// let spec = skep_api::docker::NodeSpecUpdate { availability: "drain".into(), ..Default::default() };
    /// let (node_id, applied) = manager.control(|st| control::update_node(st, "n1", version, spec)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn control<T>(
        &self,
        f: impl FnOnce(&ClusterState) -> Result<(T, Op), ControlError>,
    ) -> Result<(T, Applied), ControlError> {
        let state = self.read().await?;
        let (value, op) = f(&state)?;
        let applied = self.propose(op).await?;
        Ok((value, applied))
    }

    /// Propose on this manager only, never forwarding: for decisions the leader loops made from their own store. If
    /// this manager is not (or no longer) the leader, the decision is dropped; the real leader makes its own.
    pub async fn propose_local(&self, op: Op) -> Result<Applied, ControlError> {
        let cmd = Command { at: now_string(), op };
        match self.inner.batch.write(cmd).await {
            Ok(r) => r.map_err(ControlError::from),
            Err(e) => Err(ControlError::Unavailable(format!("{NO_LEADER} ({e})"))),
        }
    }

    /// The leader Raft names now, as `(term, leader)`: waits (up to `deadline`) while none is known and, after a
    /// failed attempt at `failed`, until Raft names another one or [`RETRY_SAME`] passed. Calling a dead leader again
    /// and again while the survivors elect its successor is what used to hold a write for seconds after a failover.
    async fn leader_after(&self, failed: Option<(u64, u64)>, deadline: Instant) -> Result<(u64, u64), ControlError> {
        let mut rx = self.inner.raft.metrics();
        let retry_same = Instant::now() + RETRY_SAME;
        loop {
            let now = {
                let m = rx.borrow_and_update();
                m.current_leader.map(|l| (m.current_term, l))
            };
            if let Some(now) = now {
                if Some(now) != failed || Instant::now() >= retry_same {
                    return Ok(now);
                }
            }
            let until = if now.is_some() { retry_same.min(deadline) } else { deadline };
            match tokio::time::timeout_at(until, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(ControlError::Unavailable(NO_LEADER.into())),
                Err(_) if Instant::now() >= deadline => return Err(ControlError::Unavailable(NO_LEADER.into())),
                Err(_) => {}
            }
        }
    }

    /// A caller to `leader` (by its Raft ID), following its redirect if it says another leads.
    fn to_leader(&self, leader: u64) -> Option<LeaderCaller> {
        let m = self.inner.raft.metrics().borrow().membership_config.clone();
        let addr = m.membership().get_node(&leader)?.addr.parse().ok()?;
        Some(LeaderCaller::new(self.inner.endpoint.clone(), skep_pki::NODE_SAN, vec![addr]))
    }

    /// Send `req` to `at`, the `(term, leader)` Raft names, bounded by `deadline` (and [`FORWARD_TIMEOUT`]); `None`
    /// when Raft names another leader (or none: an election started) before the answer, or does not know the
    /// leader's address.
    ///
    /// The call is given up as soon as the leader changes: a killed leader neither answers nor refuses, so a call to
    /// it lasts until the transport gives up on the silent connection (1 s) or on a handshake with the dead address
    /// (2 s), and the retry after it met the same dead leader again if the election had not ended by then; a write
    /// through a follower right after a leader kill took 4-6 s that way, for an election of about one. Giving up a
    /// call that may have reached a leader is safe: reads only ask for an index, and writes are sent as `Op::Once`,
    /// applied once however many copies reach a leader.
    async fn forward(
        &self,
        at: (u64, u64),
        req: &Request,
        deadline: Instant,
    ) -> Option<Result<Response, skep_transport::LeaderError>> {
        let caller = self.to_leader(at.1)?;
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            biased;
            r = caller.call(req, Policy::one_round(left.min(FORWARD_TIMEOUT))) => Some(r),
            () = self.leader_moved(at) => {
                tracing::debug!(term = at.0, leader = at.1, "leader changed during a forwarded call; giving it up");
                None
            }
        }
    }

    /// Resolves once Raft no longer names `from` (a `(term, leader)`) as the leader.
    async fn leader_moved(&self, from: (u64, u64)) {
        let mut rx = self.inner.raft.metrics();
        loop {
            let now = {
                let m = rx.borrow_and_update();
                m.current_leader.map(|l| (m.current_term, l))
            };
            if now != Some(from) {
                return;
            }
            if rx.changed().await.is_err() {
                // Raft has stopped: the call's own bound ends it
                return std::future::pending().await;
            }
        }
    }

    /// A linearizable view of the store.
    pub async fn read(&self) -> Result<Arc<ClusterState>, ControlError> {
        self.refuse_when_disk_full()?;
        let deadline = Instant::now() + LEADER_WAIT;
        let mut failed = None;
        loop {
            let (term, leader) = self.leader_after(failed, deadline).await?;
            if leader == self.inner.cfg.raft_id && self.handing_over() {
                // a demoted leader on its way out: wait for its successor
            } else if leader == self.inner.cfg.raft_id {
                match tokio::time::timeout_at(deadline, self.inner.raft.ensure_linearizable()).await {
                    Ok(Ok(_)) => return Ok(self.local_state()),
                    Ok(Err(e)) => tracing::debug!("read: leadership not confirmed: {e}"),
                    Err(_) => return Err(ControlError::Unavailable(NO_LEADER.into())),
                }
            } else {
                match self.forward((term, leader), &Request::ReadIndex, deadline).await {
                    Some(Ok(Response::ReadIndex { index })) => return self.read_at(index, deadline).await,
                    Some(Ok(other)) => tracing::debug!("read index: {other:?}"),
                    Some(Err(e)) => tracing::debug!("read index: {e}"),
                    None => {}
                }
            }
            failed = Some((term, leader));
            if Instant::now() >= deadline {
                return Err(ControlError::Unavailable(NO_LEADER.into()));
            }
        }
    }

    /// The local replica once it has applied `index` (the leader's read index).
    async fn read_at(&self, index: u64, deadline: Instant) -> Result<Arc<ClusterState>, ControlError> {
        let left = || Some(deadline.saturating_duration_since(Instant::now()));
        let not_ready = |_| ControlError::Unavailable(MANAGER_NOT_READY.into());
        self.inner.raft.wait(left()).log_index_at_least(Some(index), "read index").await.map_err(not_ready)?;
        self.inner.raft.wait(left()).applied_index_at_least(Some(index), "read index").await.map_err(not_ready)?;
        Ok(self.local_state())
    }

    /// Propose `op`; returns once it is applied (on the leader).
    ///
    /// The op goes as an [`Op::Once`] with a fresh request ID, so it can be sent again whenever it is unknown
    /// whether a copy got through (a leader that died after taking it, a forwarding call that timed out): the store
    /// applies it once and answers every copy with that result. While no leader is known the write is held (up to
    /// `LEADER_WAIT`), then forwarded; it is refused only when no leader appeared in that time.
    pub async fn propose(&self, op: Op) -> Result<Applied, ControlError> {
        self.refuse_when_disk_full()?;
        let request = rand::random::<u64>();
        let cmd = Command { at: now_string(), op: Op::Once { request, op: Box::new(op) } };
        let deadline = Instant::now() + LEADER_WAIT;
        let mut failed = None;
        // the command's JSON for forwarding, made once
        let mut command: Option<Vec<u8>> = None;
        loop {
            let (term, leader) = self.leader_after(failed, deadline).await?;
            if leader == self.inner.cfg.raft_id && self.handing_over() {
                // a demoted leader on its way out: wait for its successor
            } else if leader == self.inner.cfg.raft_id {
                self.check_proposal(&cmd.op)?;
                let mut full = self.inner.space.subscribe();
                let written = tokio::select! {
                    r = self.inner.batch.write(cmd.clone()) => r,
                    // held by Raft until space returns: answered now, as a write of unknown outcome (it goes as
                    // `Op::Once`, so a retry is applied at most once)
                    _ = full.wait_for(|f| *f) => return Err(ControlError::Unavailable(NO_SPACE.into())),
                };
                match written {
                    Ok(r) => return r.map_err(ControlError::from),
                    Err(WriteError::Refused(e)) => return Err(ControlError::InvalidArgument(e.to_string())),
                    Err(e) => tracing::debug!("proposal not taken here: {e}"),
                }
            } else {
                let json = match command.take() {
                    Some(j) => j,
                    None => crate::raft::command_json(&cmd).map_err(|e| ControlError::InvalidArgument(e.to_string()))?,
                };
                let sent = self.forward((term, leader), &Request::Propose { command: json.clone() }, deadline).await;
                command = Some(json);
                match sent {
                    Some(Ok(Response::Proposed { result })) => {
                        let r: ApplyResult = decode(&result).map_err(|e| ControlError::Internal(e.to_string()))?;
                        return r.map_err(ControlError::from);
                    }
                    Some(Ok(Response::Error(e))) if e.kind == ErrorKind::InvalidArgument => {
                        return Err(ControlError::InvalidArgument(e.message))
                    }
                    Some(Ok(Response::Error(e))) => return Err(ControlError::Internal(e.message)),
                    Some(Ok(other)) => return Err(ControlError::Internal(format!("unexpected reply {other:?}"))),
                    // nobody took it, or a copy may be in a dead leader's log: ask the next leader (applied once)
                    Some(Err(e)) => tracing::debug!("forwarding a proposal: {e}"),
                    None => {}
                }
            }
            failed = Some((term, leader));
            if Instant::now() >= deadline {
                return Err(ControlError::Unavailable(NO_LEADER.into()));
            }
        }
    }

    /// While this manager's disk is full it acknowledges nothing: 503 at once, rather than a request held until space
    /// returns (see `raft::space`).
    fn refuse_when_disk_full(&self) -> Result<(), ControlError> {
        if self.disk_full() {
            return Err(ControlError::Unavailable(NO_SPACE.into()));
        }
        Ok(())
    }

    /// The leader's side of a forwarded proposal (`Request::Propose`): apply it here, or say who leads.
    pub(super) async fn serve_propose(&self, command: &[u8]) -> Response {
        if !self.is_leader() || self.handing_over() {
            return self.not_leader();
        }
        let cmd: Command = match serde_json::from_slice(command) {
            Ok(c) => c,
            Err(e) => return werr(ErrorKind::InvalidArgument, format!("bad command: {e}")),
        };
        if let Err(e) = self.check_proposal(&cmd.op) {
            return werr(ErrorKind::InvalidArgument, e.to_string());
        }
        let mut full = self.inner.space.subscribe();
        let written = tokio::select! {
            r = self.inner.batch.write(cmd) => r,
            _ = full.wait_for(|f| *f) => return werr(ErrorKind::Unavailable, NO_SPACE),
        };
        match written {
            Ok(r) => match encode(&r) {
                Ok(result) => Response::Proposed { result },
                Err(e) => werr(ErrorKind::Internal, e.to_string()),
            },
            Err(WriteError::ForwardToLeader(leader)) => Response::NotLeader { leader_addr: leader.map(|n| n.addr) },
            Err(WriteError::Refused(e)) => werr(ErrorKind::InvalidArgument, e.to_string()),
            Err(e) => werr(ErrorKind::Unavailable, e.to_string()),
        }
    }

    /// The leader's side of a follower's linearizable read (`Request::ReadIndex`): the index to wait for.
    pub(super) async fn serve_read_index(&self) -> Response {
        if !self.is_leader() || self.handing_over() {
            return self.not_leader();
        }
        if self.disk_full() {
            return werr(ErrorKind::Unavailable, NO_SPACE);
        }
        match self.inner.raft.get_read_log_id().await {
            Ok((read, _)) => Response::ReadIndex { index: read.map(|l| l.index).unwrap_or(0) },
            Err(e) => werr(ErrorKind::Unavailable, e.to_string()),
        }
    }
}
