//! The running manager: openraft plus the store, the RPCs other nodes call, and the loops only the leader runs.
//!
//! This is the only part of the crate that touches the network, the disk and the clock. Reads are linearizable (the
//! leader confirms its leadership; a follower asks the leader for a read index and waits until it has applied that
//! far); writes are proposed on the leader, forwarded there from a follower.

use crate::control::{ControlError, NO_LEADER};
use crate::dispatcher::Liveness;
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::state_machine::StateMachine;
use crate::raft::{decode, encode, Member, Raft, RaftTiming};
use crate::store::{Applied, ApplyResult, ClusterState, Command, Op};
use batch::{Batcher, WriteError};
use openraft::ChangeMembers;
use skep_api::docker::{node_state, role, Node, Peer};
use skep_api::wire::{ErrorKind, HeartbeatReply, JoinReply, Request, Response, WireError};
use skep_pki::{JoinToken, PeerIdentity, Role, RootCa};
use skep_transport::Endpoint;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;
use tokio::time::Instant;

mod batch;
mod tasks;
pub use tasks::{assignments_for, digest, schedule};

/// Least time between the starts of two reconcile rounds (see `task_loop`).
const ROUND_GAP: Duration = Duration::from_millis(100);

/// Least time between two store versions published to the assignment long polls (see `dispatch_loop`).
const DISPATCH_GAP: Duration = Duration::from_millis(50);

/// How long a proposal or read may wait for a leader before giving up with 503.
const LEADER_WAIT: Duration = Duration::from_secs(5);

/// What a manager needs to start.
#[derive(Clone, Debug)]
pub struct ManagerConfig {
    /// This node's ID.
    pub node_id: String,
    /// This manager's Raft ID.
    pub raft_id: u64,
    /// This node's cluster address (advertised).
    pub addr: SocketAddr,
    /// Where the log and snapshot live.
    pub dir: PathBuf,
    /// Raft timing.
    pub timing: RaftTiming,
}

/// Errors starting a manager.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// Log store.
    #[error("raft log: {0}")]
    Log(#[from] crate::raft::log_store::LogStoreError),
    /// Snapshot.
    #[error("raft snapshot: {0}")]
    Snapshot(#[from] crate::raft::state_machine::SnapshotError),
    /// openraft refused to start.
    #[error("raft: {0}")]
    Raft(String),
    /// I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running manager. Cheap to clone.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ManagerConfig,
    raft: Raft,
    /// Group commit in front of `raft` for every proposal.
    batch: Batcher,
    sm: StateMachine,
    endpoint: Endpoint,
    /// Heartbeat deadlines; meaningful on the leader only.
    live: Mutex<Liveness>,
    /// Stops the background loops.
    stop: watch::Sender<bool>,
    /// Status reports waiting to be proposed together.
    status_tx: tokio::sync::mpsc::Sender<tasks::StatusBatch>,
    /// Per-node assignment sets of the current store version.
    assignments: Mutex<tasks::AssignmentCache>,
    /// What each node was last sent, so the next answer can carry only the changes.
    sent: Mutex<tasks::Sent>,
    /// The store version the long polls answer from: the newest, published at most every `DISPATCH_GAP`.
    dispatched: watch::Sender<Arc<ClusterState>>,
}

fn now_string() -> String {
    skep_api::time::format(SystemTime::now())
}

fn werr(kind: ErrorKind, msg: impl Into<String>) -> Response {
    Response::Error(WireError::new(kind, msg))
}

impl Manager {
    /// Open the log and snapshot under `cfg.dir` and start Raft (not yet a member of anything, unless its log says so).
    pub async fn start(cfg: ManagerConfig, endpoint: Endpoint) -> Result<Manager, StartError> {
        std::fs::create_dir_all(&cfg.dir)?;
        let log = LogStore::open(&cfg.dir.join("raft.redb"))?;
        let sm = StateMachine::open(&cfg.dir.join("snapshot.json"))?;
        let config = Arc::new(
            cfg.timing.config("skep").validate().map_err(|e| StartError::Raft(e.to_string()))?,
        );
        let raft = Raft::new(cfg.raft_id, config, Network::new(endpoint.clone()), log, sm.clone())
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let ttl = Duration::from_millis(3 * skep_api::docker::defaults::HEARTBEAT_PERIOD_NS as u64 / 1_000_000);
        let (stop, _) = watch::channel(false);
        let (status_tx, status_rx) = tokio::sync::mpsc::channel(4096);
        let (dispatched, _) = watch::channel(sm.state());
        let m = Manager {
            inner: Arc::new(Inner {
                cfg,
                batch: Batcher::start(raft.clone()),
                raft,
                sm,
                endpoint,
                live: Mutex::new(Liveness::new(ttl)),
                stop,
                status_tx,
                assignments: Mutex::new(Default::default()),
                sent: Mutex::new(Default::default()),
                dispatched,
            }),
        };
        tokio::spawn(m.clone().leader_loop());
        tokio::spawn(m.clone().task_loop());
        tokio::spawn(m.clone().status_loop(status_rx));
        tokio::spawn(m.clone().dispatch_loop());
        Ok(m)
    }

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

    fn member(&self) -> Member {
        Member { node_id: self.inner.cfg.node_id.clone(), addr: self.inner.cfg.addr.to_string() }
    }

    /// This node's ID.
    pub fn node_id(&self) -> &str {
        &self.inner.cfg.node_id
    }

    /// The local replica (may lag the leader; use [`Manager::read`] to serve the API).
    pub fn local_state(&self) -> Arc<ClusterState> {
        self.inner.sm.state()
    }

    /// Store changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.inner.sm.subscribe()
    }

    /// Current leader's Raft ID.
    pub fn leader(&self) -> Option<u64> {
        self.inner.raft.metrics().borrow().current_leader
    }

    /// Whether this manager is the leader.
    pub fn is_leader(&self) -> bool {
        self.leader() == Some(self.inner.cfg.raft_id)
    }

    /// The leader's cluster address, if one is known.
    pub fn leader_addr(&self) -> Option<SocketAddr> {
        let m = self.inner.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        m.membership_config.membership().get_node(&leader).and_then(|n| n.addr.parse().ok())
    }

    /// Raft IDs of the current voters.
    pub fn voters(&self) -> BTreeSet<u64> {
        self.inner.raft.metrics().borrow().membership_config.membership().voter_ids().collect()
    }

    /// Whether this manager is the leader *and* has applied an entry of its own term, i.e. its store holds everything
    /// committed before it took over. Only then may the leader loops decide anything: a deposed leader that comes back
    /// believing it still leads (openraft restores a committed vote) must not act on its stale store.
    pub fn leader_ready(&self) -> bool {
        let m = self.inner.raft.metrics().borrow().clone();
        m.current_leader == Some(self.inner.cfg.raft_id)
            && m.last_applied.is_some_and(|l| l.leader_id.get_term() == m.current_term)
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

    /// Wait for a leader to be known, up to `LEADER_WAIT`.
    async fn wait_leader(&self) -> Result<u64, ControlError> {
        let deadline = Instant::now() + LEADER_WAIT;
        let mut rx = self.inner.raft.metrics();
        loop {
            if let Some(l) = rx.borrow().current_leader {
                return Ok(l);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Err(ControlError::Unavailable(NO_LEADER.into())),
            }
        }
    }

    /// A linearizable view of the store.
    pub async fn read(&self) -> Result<Arc<ClusterState>, ControlError> {
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.wait_leader().await?;
            if leader == self.inner.cfg.raft_id {
                match tokio::time::timeout_at(deadline, self.inner.raft.ensure_linearizable()).await {
                    Ok(Ok(_)) => return Ok(self.local_state()),
                    Ok(Err(e)) => {
                        tracing::debug!("read: leadership not confirmed: {e}");
                    }
                    Err(_) => return Err(ControlError::Unavailable(NO_LEADER.into())),
                }
            } else if let Some(addr) = self.leader_addr() {
                match self.call_leader(addr, &Request::ReadIndex).await {
                    Ok(Response::ReadIndex { index }) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        self.inner
                            .raft
                            .wait(Some(left))
                            .log_index_at_least(Some(index), "read index")
                            .await
                            .map_err(|_| ControlError::Unavailable(NO_LEADER.into()))?;
                        self.inner
                            .raft
                            .wait(Some(deadline.saturating_duration_since(Instant::now())))
                            .applied_index_at_least(Some(index), "read index")
                            .await
                            .map_err(|_| ControlError::Unavailable(NO_LEADER.into()))?;
                        return Ok(self.local_state());
                    }
                    Ok(other) => tracing::debug!("read index: {other:?}"),
                    Err(e) => tracing::debug!("read index: {e}"),
                }
            }
            if Instant::now() >= deadline {
                return Err(ControlError::Unavailable(NO_LEADER.into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn call_leader(&self, addr: SocketAddr, req: &Request) -> Result<Response, skep_transport::TransportError> {
        self.inner.endpoint.call::<Request, Response>(addr, skep_pki::NODE_SAN, req).await
    }

    /// Propose `op`; returns once it is applied (on the leader). Retries only while no leader could have taken it.
    pub async fn propose(&self, op: Op) -> Result<Applied, ControlError> {
        let cmd = Command { at: now_string(), op };
        let deadline = Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.wait_leader().await?;
            if leader == self.inner.cfg.raft_id {
                match self.inner.batch.write(cmd.clone()).await {
                    Ok(r) => return r.map_err(ControlError::from),
                    Err(WriteError::ForwardToLeader(_)) => {}
                    Err(e) => return Err(ControlError::Unavailable(format!("{NO_LEADER} ({e})"))),
                }
            } else if let Some(addr) = self.leader_addr() {
                let command = serde_json::to_vec(&cmd).map_err(|e| ControlError::Internal(e.to_string()))?;
                match self.call_leader(addr, &Request::Propose { command }).await {
                    Ok(Response::Proposed { result }) => {
                        let r: ApplyResult = decode(&result).map_err(|e| ControlError::Internal(e.to_string()))?;
                        return r.map_err(ControlError::from);
                    }
                    Ok(Response::NotLeader { .. }) => {}
                    Ok(Response::Error(e)) if e.kind == ErrorKind::Unavailable => {}
                    Ok(Response::Error(e)) => return Err(ControlError::Internal(e.message)),
                    Ok(other) => return Err(ControlError::Internal(format!("unexpected reply {other:?}"))),
                    // the leader may or may not have taken it: do not retry (a retry could apply it twice)
                    Err(e) => return Err(ControlError::Unavailable(format!("{NO_LEADER} ({e})"))),
                }
            }
            if Instant::now() >= deadline {
                return Err(ControlError::Unavailable(NO_LEADER.into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Join the Raft membership of an existing cluster: ask the leader (through any manager in `seeds`) to add us.
    pub async fn join_raft(&self, seeds: &[SocketAddr]) -> Result<(), ControlError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut targets: Vec<SocketAddr> = seeds.to_vec();
        let mut i = 0;
        loop {
            let addr = targets[i % targets.len()];
            i += 1;
            match self.call_leader(addr, &Request::RaftJoin { raft_id: self.inner.cfg.raft_id }).await {
                Ok(Response::Ok) => return Ok(()),
                Ok(Response::NotLeader { leader_addr: Some(l) }) => {
                    if let Ok(a) = l.parse() {
                        targets.insert(0, a);
                        i = 0;
                        continue;
                    }
                }
                Ok(Response::Error(e)) if e.kind != ErrorKind::Unavailable => {
                    return Err(ControlError::InvalidArgument(e.message))
                }
                Ok(other) => tracing::debug!("raft join via {addr}: {other:?}"),
                Err(e) => tracing::debug!("raft join via {addr}: {e}"),
            }
            if Instant::now() >= deadline {
                return Err(ControlError::Unavailable("timed out joining the raft cluster".into()));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Managers' cluster addresses from the store (for heartbeat replies and join replies).
    pub fn manager_peers(state: &ClusterState) -> Vec<Peer> {
        state
            .managers()
            .filter(|r| r.raft_id.is_some())
            .map(|r| Peer { node_id: r.node.id.clone(), addr: r.cluster_addr.clone() })
            .collect()
    }

    /// The API view of every node, with ManagerStatus filled in.
    pub fn node_views(&self, state: &ClusterState) -> Vec<Node> {
        let leader = self.leader();
        state.nodes.values().map(|r| state.node_view(r, leader)).collect()
    }

    /// Stop Raft and the loops.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }

    /// Remove a manager from the Raft membership (demotion, leave, rm). Leader only.
    async fn remove_voter(&self, raft_id: u64) -> Result<(), ControlError> {
        let voters = self.voters();
        if !voters.contains(&raft_id) {
            // a learner, or already gone
            let m = self.inner.raft.metrics().borrow().membership_config.membership().clone();
            if m.get_node(&raft_id).is_none() {
                return Ok(());
            }
        }
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

    // ---------------------------------------------------------------------------------------------------------
    // RPCs

    /// Serve one RPC from another node. `identity` is what the caller's certificate says (`None`: no certificate).
    pub async fn handle(&self, identity: Option<PeerIdentity>, from: SocketAddr, req: Request) -> Response {
        let state = self.local_state();
        // Every request but Join needs a certificate of a node that is still in the swarm.
        if !matches!(req, Request::Join(_)) {
            let Some(id) = &identity else {
                return werr(ErrorKind::Unauthorized, "a node certificate is required");
            };
            if let Some(c) = &state.cluster {
                if id.cluster_id != c.info.id {
                    return werr(ErrorKind::Unauthorized, "certificate of another cluster");
                }
            }
            if state.removed.contains(&id.node_id) {
                return werr(ErrorKind::Removed, "this node was removed from the swarm");
            }
            let manager_only = matches!(
                req,
                Request::Raft { .. } | Request::Propose { .. } | Request::ReadIndex | Request::RaftJoin { .. }
            );
            if manager_only && id.role != Role::Manager {
                return werr(ErrorKind::Unauthorized, "this call needs a manager certificate");
            }
        }
        match req {
            Request::Raft { kind, payload } => crate::raft::network::serve(&self.inner.raft, kind, &payload).await,
            Request::Join(j) => self.handle_join(j, from).await,
            Request::Heartbeat(hb) => self.handle_heartbeat(identity.expect("checked"), hb, from).await,
            Request::RenewCert { csr_pem } => self.handle_renew(identity.expect("checked"), &csr_pem),
            Request::Propose { command } => {
                if !self.is_leader() {
                    return Response::NotLeader { leader_addr: self.leader_addr().map(|a| a.to_string()) };
                }
                let cmd: Command = match serde_json::from_slice(&command) {
                    Ok(c) => c,
                    Err(e) => return werr(ErrorKind::InvalidArgument, format!("bad command: {e}")),
                };
                match self.inner.batch.write(cmd).await {
                    Ok(r) => match encode(&r) {
                        Ok(result) => Response::Proposed { result },
                        Err(e) => werr(ErrorKind::Internal, e.to_string()),
                    },
                    Err(WriteError::ForwardToLeader(leader)) => {
                        Response::NotLeader { leader_addr: leader.map(|n| n.addr) }
                    }
                    Err(e) => werr(ErrorKind::Unavailable, e.to_string()),
                }
            }
            Request::ReadIndex => {
                if !self.is_leader() {
                    return Response::NotLeader { leader_addr: self.leader_addr().map(|a| a.to_string()) };
                }
                match self.inner.raft.get_read_log_id().await {
                    Ok((read, _)) => Response::ReadIndex { index: read.map(|l| l.index).unwrap_or(0) },
                    Err(e) => werr(ErrorKind::Unavailable, e.to_string()),
                }
            }
            Request::RaftJoin { raft_id } => self.handle_raft_join(identity.expect("checked"), raft_id).await,
            Request::Leave => self.handle_leave(identity.expect("checked")).await,
            Request::Assignments { known } => self.handle_assignments(identity.expect("checked"), known).await,
            Request::TaskStatus { updates } => self.handle_task_status(identity.expect("checked"), updates).await,
        }
    }

    fn not_leader(&self) -> Response {
        Response::NotLeader { leader_addr: self.leader_addr().map(|a| a.to_string()) }
    }

    async fn handle_join(&self, j: skep_api::wire::JoinRequest, from: SocketAddr) -> Response {
        if !self.is_leader() {
            return self.not_leader();
        }
        let state = self.local_state();
        let Some(cluster) = state.cluster.clone() else {
            return werr(ErrorKind::Unavailable, "the swarm is not initialised");
        };
        const BAD_TOKEN: &str = "rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster";
        let Ok(token) = JoinToken::parse(j.token.trim()) else {
            return werr(ErrorKind::Unauthorized, BAD_TOKEN);
        };
        let ca = match RootCa::from_pem(&cluster.ca_cert_pem, Some(&cluster.ca_key_pem)) {
            Ok(ca) => ca,
            Err(e) => return werr(ErrorKind::Internal, format!("root CA: {e}")),
        };
        if token.ca_digest != ca.digest() {
            return werr(ErrorKind::Unauthorized, BAD_TOKEN);
        }
        let matches = |t: &str| JoinToken::parse(t).map(|k| k.secret_matches(&token.secret)).unwrap_or(false);
        let node_role = if matches(&cluster.tokens.manager) {
            Role::Manager
        } else if matches(&cluster.tokens.worker) {
            Role::Worker
        } else {
            return werr(ErrorKind::Unauthorized, BAD_TOKEN);
        };
        let node_id = skep_api::id::new_id(&mut rand::thread_rng());
        let validity = Duration::from_nanos(cluster.info.spec.node_cert_expiry_ns().max(0) as u64);
        let cert_pem = match ca.sign_csr(&j.csr_pem, &node_id, node_role, &cluster.info.id, validity) {
            Ok(c) => c,
            Err(e) => return werr(ErrorKind::InvalidArgument, format!("invalid CSR: {e}")),
        };
        let availability = if j.availability.is_empty() { "active".to_string() } else { j.availability.clone() };
        if !skep_api::docker::availability::is_valid(&availability) {
            return werr(ErrorKind::InvalidArgument, format!("invalid availability '{availability}'"));
        }
        let cluster_addr = if j.advertise_addr.is_empty() {
            SocketAddr::new(from.ip(), skep_api::docker::defaults::CLUSTER_PORT).to_string()
        } else {
            j.advertise_addr.clone()
        };
        let ip = cluster_addr.parse::<SocketAddr>().map(|a| a.ip().to_string()).unwrap_or_else(|_| from.ip().to_string());
        let mut node = Node { id: node_id.clone(), description: j.description.clone(), ..Default::default() };
        node.spec.role = if node_role == Role::Manager { role::MANAGER } else { role::WORKER }.to_string();
        node.spec.availability = availability;
        node.status.state = node_state::READY.into();
        node.status.addr = ip;
        self.lock_live().joined(&node_id, Instant::now());
        let applied = match self.propose(Op::AddNode { node: Box::new(node), cluster_addr }).await {
            Ok(a) => a,
            Err(e) => return werr(ErrorKind::Unavailable, e.to_string()),
        };
        let state = self.local_state();
        Response::Joined(JoinReply {
            node_id,
            cluster_id: cluster.info.id.clone(),
            role: if node_role == Role::Manager { role::MANAGER } else { role::WORKER }.to_string(),
            cert_pem,
            ca_pem: cluster.ca_cert_pem.clone(),
            raft_id: applied.raft_id,
            managers: Self::manager_peers(&state),
            heartbeat_ms: (cluster.info.spec.heartbeat_period_ns() / 1_000_000) as u64,
        })
    }

    fn lock_live(&self) -> std::sync::MutexGuard<'_, Liveness> {
        self.inner.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn handle_heartbeat(&self, id: PeerIdentity, hb: skep_api::wire::Heartbeat, from: SocketAddr) -> Response {
        if !self.is_leader() {
            return self.not_leader();
        }
        let state = self.local_state();
        let Some(rec) = state.nodes.get(&id.node_id) else {
            // Not (yet) in this replica: a node that was removed is caught by the `removed` check in `handle`;
            // anything else is a race with its own join or init being applied. Retryable.
            return werr(ErrorKind::Unavailable, "this node is not known to the managers yet");
        };
        self.lock_live().heartbeat(&id.node_id, Instant::now());
        let addr = hb.addr.parse::<SocketAddr>().map(|a| a.ip().to_string()).unwrap_or_else(|_| from.ip().to_string());
        if rec.node.status.state != node_state::READY || rec.node.status.addr != addr {
            let op = Op::SetNodeStatus {
                id: id.node_id.clone(),
                state: node_state::READY.into(),
                message: String::new(),
                addr,
            };
            let m = self.clone();
            tokio::spawn(async move {
                if let Err(e) = m.propose_local(op).await {
                    tracing::debug!("marking node ready: {e}");
                }
            });
        }
        if let Some(d) = hb.description {
            if d != rec.node.description {
                let op = Op::SetNodeDescription { id: id.node_id.clone(), description: Box::new(d) };
                let m = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = m.propose_local(op).await {
                        tracing::debug!("recording node description: {e}");
                    }
                });
            }
        }
        let period = state.cluster.as_ref().map(|c| c.info.spec.heartbeat_period_ns()).unwrap_or(1_000_000_000);
        Response::Heartbeat(HeartbeatReply {
            period_ms: (period / 1_000_000) as u64,
            managers: Self::manager_peers(&state),
            desired_role: rec.node.spec.role.clone(),
            raft_id: rec.raft_id,
            want_description: rec.node.description.hostname.is_empty(),
        })
    }

    fn handle_renew(&self, id: PeerIdentity, csr_pem: &str) -> Response {
        let state = self.local_state();
        let (Some(cluster), Some(rec)) = (state.cluster.as_ref(), state.nodes.get(&id.node_id)) else {
            return werr(ErrorKind::Unavailable, "this node is not known to the managers yet");
        };
        // A demoted manager keeps its manager certificate until it has left the Raft membership.
        let r = if rec.node.spec.role == role::MANAGER || rec.raft_id.is_some() { Role::Manager } else { Role::Worker };
        let ca = match RootCa::from_pem(&cluster.ca_cert_pem, Some(&cluster.ca_key_pem)) {
            Ok(ca) => ca,
            Err(e) => return werr(ErrorKind::Internal, format!("root CA: {e}")),
        };
        let validity = Duration::from_nanos(cluster.info.spec.node_cert_expiry_ns().max(0) as u64);
        match ca.sign_csr(csr_pem, &id.node_id, r, &cluster.info.id, validity) {
            Ok(cert_pem) => Response::Cert { cert_pem, ca_pem: cluster.ca_cert_pem.clone() },
            Err(e) => werr(ErrorKind::InvalidArgument, format!("invalid CSR: {e}")),
        }
    }

    async fn handle_raft_join(&self, id: PeerIdentity, raft_id: u64) -> Response {
        if !self.is_leader() {
            return self.not_leader();
        }
        let state = self.local_state();
        let Some(rec) = state.nodes.get(&id.node_id) else {
            return werr(ErrorKind::Unavailable, "this node is not known to the managers yet");
        };
        if rec.node.spec.role != role::MANAGER || rec.raft_id != Some(raft_id) {
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

    async fn handle_leave(&self, id: PeerIdentity) -> Response {
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
            spec.role = role::WORKER.into();
            let _ = self.propose(Op::UpdateNodeSpec { id: id.node_id.clone(), version: rec.node.version.index, spec }).await;
            let _ = self.propose(Op::ClearRaftId { id: id.node_id.clone() }).await;
        }
        self.lock_live().forget(&id.node_id);
        match self
            .propose(Op::SetNodeStatus {
                id: id.node_id.clone(),
                state: node_state::DOWN.into(),
                message: "node left the swarm".into(),
                addr: String::new(),
            })
            .await
        {
            Ok(_) => Response::Ok,
            Err(e) => werr(ErrorKind::Unavailable, e.to_string()),
        }
    }

    // ---------------------------------------------------------------------------------------------------------
    // Leader loops

    /// Orchestrate, schedule and reap whenever the store changes (and every 100 ms, for restart delays), while leader.
    /// Rounds start at least `ROUND_GAP` apart: each scans every task, and under a stream of status reports a round
    /// per store version kept the leader's CPU busy with rounds that found nothing to do; changes in between are
    /// taken together by the next round.
    async fn task_loop(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut changes = self.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reap = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = changes.changed() => { if r.is_err() { return; } }
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            if !self.leader_ready() {
                continue;
            }
            let reap = last_reap.elapsed() >= Duration::from_secs(1);
            if reap {
                last_reap = Instant::now();
            }
            let started = Instant::now();
            self.reconcile_tasks(reap).await;
            changes.borrow_and_update();
            tokio::time::sleep_until(started + ROUND_GAP).await;
        }
    }

    async fn leader_loop(self) {
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
                let now = Instant::now();
                let mut live = self.lock_live();
                live.reset(state.nodes.keys().cloned(), now);
                tracing::info!(node = %self.inner.cfg.node_id, "became the raft leader");
            }
            was_leader = leader;
            if !leader {
                continue;
            }
            // liveness
            let period = state.cluster.as_ref().map(|c| c.info.spec.heartbeat_period_ns()).unwrap_or(1_000_000_000);
            let ops = {
                let mut live = self.lock_live();
                live.set_ttl(Duration::from_nanos(3 * period.max(1) as u64));
                let mut ops = live.expired(&state, Instant::now());
                // the leader heartbeats itself
                live.heartbeat(&self.inner.cfg.node_id, Instant::now());
                ops.retain(|op| !matches!(op, Op::SetNodeStatus { id, .. } if *id == self.inner.cfg.node_id));
                ops
            };
            for op in ops {
                if let Err(e) = self.propose_local(op).await {
                    tracing::debug!("marking node down: {e}");
                }
            }
            if let Err(e) = self.reconcile_roles(&state).await {
                tracing::debug!("role reconciliation: {e}");
            }
        }
    }

    /// Demotions: a node whose spec says worker but who is still a Raft member leaves the membership, then its Raft
    /// ID is cleared (after which its renewed certificate says worker). Promotions are driven by the node itself
    /// (it renews its certificate and asks to join Raft).
    async fn reconcile_roles(&self, state: &ClusterState) -> Result<(), ControlError> {
        for rec in state.nodes.values() {
            let Some(raft_id) = rec.raft_id else { continue };
            if rec.node.spec.role == role::WORKER {
                self.remove_voter(raft_id).await?;
                self.propose_local(Op::ClearRaftId { id: rec.node.id.clone() }).await?;
                tracing::info!(node = %rec.node.id, "left the raft membership after demotion");
            }
        }
        Ok(())
    }
}
