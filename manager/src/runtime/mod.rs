//! The running manager: openraft plus the store, the RPCs other nodes call, and the loops only the leader runs.
//!
//! This is the only part of the crate that touches the network, the disk and the clock: the Raft shell around the
//! pure parts (store, control, orchestrator, scheduler, allocator, dispatcher, CA, role manager), and the async
//! drivers that feed them and propose what they decide. Reads are linearizable (the leader confirms its leadership;
//! a follower asks the leader for a read index and waits until it has applied that far); writes are proposed on the
//! leader, forwarded there from a follower.
//!
//! # Layout
//! - this file: [`Manager`] (the handle), [`ManagerConfig`], start-up and the state everything below shares.
//! - `batch`: group commit of proposals on the leader.
//! - `client`: linearizable reads, proposals and their forwarding (both ends), and the generic control path
//!   ([`Manager::query`], [`Manager::control`]).
//! - `membership`: bootstrap and Raft membership changes (a manager joins, a node leaves, a voter is removed).
//! - `serve`: [`Manager::handle`], the router from an authorized RPC to its driver.
//! - `admission`: the `Join` and `RenewCert` RPCs, driving [`ca::admit`](crate::ca::admit).
//! - `dispatch`: the node session RPCs (heartbeat, assignments long poll, task status) and the loops behind them,
//!   driving the [`dispatcher`](crate::dispatcher).
//! - `election`: a follower's election timer, in place of openraft's own.
//! - `prevote`: the pre-vote a manager asks for before it campaigns, its answer, and the vote gate (one vote per term).
//! - `leader`: the leader's periodic duties: liveness verdicts and the role manager's demotions.
//! - `metrics`: what the manager measures of itself for the daemon's `/metrics` ([`Manager::raft_status`],
//!   [`ManagerMetrics`]).
//! - `reconcile`: the rounds of orchestration, scheduling and reaping.

use crate::dispatcher::{assignments::AssignmentCache, Liveness, Sent};
use crate::raft::log_store::LogStore;
use crate::raft::network::Network;
use crate::raft::state_machine::StateMachine;
use crate::raft::{Raft, RaftTiming};
use crate::store::ClusterState;
use batch::Batcher;
pub use metrics::{ManagerMetrics, RaftStatus};
use skep_api::docker::{Node, Peer};
use skep_api::wire::{ErrorKind, Response, WireError};
use skep_transport::Endpoint;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};
use tokio::sync::watch;

mod admission;
mod batch;
mod client;
mod dispatch;
mod election;
mod leader;
mod membership;
mod metrics;
mod prevote;
mod reconcile;
mod serve;

/// How recent a quorum's acknowledgement must be for [`Manager::leader_ready`]: generous, so that a leader whose
/// followers answer late under load keeps acting; the point is the restarted ex-leader that has heard from nobody.
const QUORUM_ACK_FRESH: Duration = Duration::from_secs(2);

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
    /// The data key a new log and every snapshot are encrypted with (`None`: plaintext, for tests and benchmarks
    /// that compare).
    pub dek: Option<skep_pki::SecretKey>,
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

impl StartError {
    /// Whether the manager's Raft files are damaged (a checksum, a header or a record that does not hold), as
    /// opposed to unreadable (I/O), locked out (a wrong data key) or refused by openraft. Damaged files can be set
    /// aside and rebuilt from the other managers (`RaftReseat`); the others cannot.
    pub fn is_corrupt(&self) -> bool {
        use crate::raft::log_store::LogStoreError as L;
        use crate::raft::state_machine::SnapshotError as S;
        use crate::raft::wal::WalError as W;
        matches!(
            self,
            StartError::Log(L::Checksum { .. } | L::Truncated { .. } | L::Decode { .. } | L::Wal(W::Corrupt { .. }))
                | StartError::Snapshot(S::Corrupt { .. })
        )
    }
}

/// A running manager. Cheap to clone.
#[derive(Clone)]
pub struct Manager {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: ManagerConfig,
    raft: Raft,
    /// The log store openraft runs on (a clone: its last log ID for pre-votes).
    log: LogStore,
    /// Held while a vote request is answered or this manager starts a campaign (`prevote`: one vote per term).
    vote_gate: tokio::sync::Mutex<()>,
    /// Group commit in front of `raft` for every proposal.
    batch: Batcher,
    sm: StateMachine,
    endpoint: Endpoint,
    /// Heartbeat deadlines; meaningful on the leader only.
    live: Mutex<Liveness>,
    /// Stops the background loops.
    stop: watch::Sender<bool>,
    /// Status reports waiting to be proposed together (see `dispatch`'s status loop).
    status_tx: tokio::sync::mpsc::Sender<dispatch::Report>,
    /// Per-node assignment sets of the current store version.
    assignments: Mutex<AssignmentCache>,
    /// What each node was last sent, so the next answer can carry only the changes.
    sent: Mutex<Sent>,
    /// The store version the long polls answer from: the newest, published at most every `DISPATCH_GAP`.
    dispatched: watch::Sender<Arc<ClusterState>>,
    /// This leader was demoted and is handing leadership over: it serves no reads, writes or nodes meanwhile, so
    /// that nothing it sends keeps the followers from electing its successor.
    handing_over: std::sync::atomic::AtomicBool,
    /// Leader changes, proposal and assignment latency, recorded as they happen (the daemon's `/metrics` reads them).
    metrics: ManagerMetrics,
    /// Whether the Raft directory's disk is full: a write of the log or a snapshot waits for space meanwhile, and the
    /// manager refuses its clients (503) and does not act as leader (see `raft::space`).
    space: Arc<crate::raft::space::Space>,
    /// When each Raft peer last answered this manager (see [`Network::answered`]): which voters a leader reaches.
    answered: crate::raft::network::Answered,
}

fn now_string() -> String {
    skep_api::time::format(SystemTime::now())
}

fn werr(kind: ErrorKind, msg: impl Into<String>) -> Response {
    Response::Error(WireError::new(kind, msg))
}

/// Lock a mutex whose data stays consistent even if a holder panicked (every critical section here is a plain
/// update of a cache or a map).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Manager {
    /// Open the log and snapshot under `cfg.dir` and start Raft (not yet a member of anything, unless its log says so).
    pub async fn start(cfg: ManagerConfig, endpoint: Endpoint) -> Result<Manager, StartError> {
        std::fs::create_dir_all(&cfg.dir)?;
        let log = LogStore::open(&cfg.dir, cfg.dek.clone())?;
        let space = log.space();
        let sm = StateMachine::open(&cfg.dir.join("snapshot.json"), cfg.dek.clone())?.with_space(space.clone());
        log.follow_snapshots(sm.durable());
        let config = Arc::new(
            cfg.timing.config("skep").validate().map_err(|e| StartError::Raft(e.to_string()))?,
        );
        let network = Network::new(endpoint.clone());
        let greater_log = network.greater_log();
        let answered = network.answered();
        let raft = Raft::new(cfg.raft_id, config, network, log.clone(), sm.clone())
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
        let ttl = Duration::from_millis(3 * skep_api::docker::defaults::HEARTBEAT_PERIOD_NS as u64 / 1_000_000);
        let (stop, _) = watch::channel(false);
        let (status_tx, status_rx) = tokio::sync::mpsc::channel(4096);
        let (dispatched, _) = watch::channel(sm.state());
        let metrics = ManagerMetrics::default();
        let m = Manager {
            inner: Arc::new(Inner {
                cfg,
                batch: Batcher::start(raft.clone(), metrics.proposal_duration.clone()),
                raft,
                log,
                vote_gate: Default::default(),
                sm,
                endpoint,
                live: Mutex::new(Liveness::new(ttl)),
                stop,
                status_tx,
                assignments: Mutex::new(Default::default()),
                sent: Mutex::new(Default::default()),
                dispatched,
                handing_over: Default::default(),
                metrics,
                space,
                answered,
            }),
        };
        tokio::spawn(m.clone().leader_loop());
        tokio::spawn(m.clone().election_loop(greater_log));
        tokio::spawn(m.clone().task_loop());
        tokio::spawn(m.clone().status_loop(status_rx));
        tokio::spawn(m.clone().dispatch_loop());
        tokio::spawn(m.clone().removal_loop());
        tokio::spawn(m.clone().count_leader_changes());
        Ok(m)
    }

    /// This node's ID.
    pub fn node_id(&self) -> &str {
        &self.inner.cfg.node_id
    }

    /// The last applied log ID and this manager's state as of it, read together (backups).
    pub fn applied(&self) -> (Option<crate::raft::LogId<u64>>, Arc<ClusterState>) {
        self.inner.sm.applied()
    }

    /// The local replica (may lag the leader; use [`Manager::read`] to serve the API).
    pub fn local_state(&self) -> Arc<ClusterState> {
        self.inner.sm.state()
    }

    /// Turns true when this manager is shut down.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.inner.stop.subscribe()
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

    /// Whether this manager is the leader, has applied an entry of its own term (its store holds everything
    /// committed before it took over), and a quorum acknowledged it lately. Only then may the leader loops decide
    /// anything, and may nodes be answered as by the leader: a deposed leader restarted on its data believes it still
    /// leads (openraft restores a committed vote, and an entry of that term is in its store), until its first round
    /// trip with the others; without the quorum check it would hand out assignments from its stale store meanwhile.
    pub fn leader_ready(&self) -> bool {
        let m = self.inner.raft.metrics().borrow().clone();
        m.current_leader == Some(self.inner.cfg.raft_id)
            && m.last_applied.is_some_and(|l| l.leader_id.get_term() == m.current_term)
            && m.millis_since_quorum_ack.is_some_and(|ms| ms <= QUORUM_ACK_FRESH.as_millis() as u64)
            && !self.handing_over()
            && !self.disk_full()
    }

    /// Whether a write of this manager's Raft log or snapshot waits for space (see `raft::space`).
    pub fn disk_full(&self) -> bool {
        self.inner.space.is_full()
    }

    /// Whether this (demoted) leader is handing leadership over (see `leader.rs`).
    pub(super) fn handing_over(&self) -> bool {
        self.inner.handing_over.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this manager can serve the API now: it is the leader and [`Manager::leader_ready`], or it follows a
    /// known leader and has applied everything in its log. A manager restarted on its data reports `false` until the
    /// leader has reached it and it has caught up, and is not listed as reachable meanwhile (see the dispatcher).
    pub fn caught_up(&self) -> bool {
        let m = self.inner.raft.metrics().borrow().clone();
        if self.disk_full() {
            return false;
        }
        match m.current_leader {
            None => false,
            Some(l) if l == self.inner.cfg.raft_id => self.leader_ready(),
            Some(_) => {
                m.state == openraft::ServerState::Follower
                    && m.last_applied.map(|l| l.index) >= m.last_log_index
                    && m.last_log_index.is_some()
            }
        }
    }

    /// Managers' cluster addresses from the store (for heartbeat replies and join replies).
    pub fn manager_peers(state: &ClusterState) -> Vec<Peer> {
        crate::dispatcher::manager_peers(state)
    }

    /// The API view of every node, with ManagerStatus filled in.
    pub fn node_views(&self, state: &ClusterState) -> Vec<Node> {
        let leader = self.leader();
        state.nodes.values().map(|r| state.node_view(r, leader)).collect()
    }

    /// Stop Raft and the loops.
    pub async fn shutdown(&self) {
        let _ = self.inner.stop.send(true);
        // a write waiting for space would hold Raft's core, and its shutdown, forever
        self.inner.space.close();
        if let Err(e) = self.inner.raft.shutdown().await {
            tracing::warn!("raft shutdown: {e}");
        }
    }

    fn lock_live(&self) -> MutexGuard<'_, Liveness> {
        lock(&self.inner.live)
    }

    fn not_leader(&self) -> Response {
        Response::NotLeader { leader_addr: self.leader_addr().map(|a| a.to_string()) }
    }
}
