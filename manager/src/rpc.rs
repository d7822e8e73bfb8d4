//! The entry of node-to-manager RPCs: who the caller is and what it may call. [`RpcHandler`] is the transport handler
//! a node serves its cluster port with: it reads the caller's identity from its verified certificate and hands the
//! request to the [`Manager`] this node runs, if any. [`authorize`] is the policy the manager applies first.
//!
//! A caller without a certificate may only attempt `Join` (the CA checks its token). Every other call needs the
//! certificate of a node of this cluster that was not removed; the Raft calls (`Raft`, `Propose`, `ReadIndex`,
//! `RaftJoin`, `RaftReseat`) need a manager certificate. (A certificate of another CA never gets this far: the TLS
//! handshake refuses it.)
//!
//! A certificate says what the node was when it was issued, for 90 days; the store says what it is now. So the
//! manager calls also need the store's word: `Propose`, `ReadIndex`, `RaftJoin` and `RaftReseat` a node whose current
//! role in the store is manager, and a Raft vote or pre-vote a node that is in this replica's Raft membership. A
//! demoted manager loses them when its demotion (or its removal from the Raft membership) is applied, not when its
//! certificate expires.
//!
//! Raft entries and snapshots (`RaftKind::Append`, `Snapshot`) need only the manager certificate. A replica that was
//! down while the membership changed knows only the old one, and a leader elected from the new voters must still
//! reach it: refusing it left such a replica behind for as long as that leader led (docs/design/faults.md, finding 7).
//! Raft's terms guard these calls: a leader that is not the current one has an older term and is refused by openraft,
//! and a removed node can no longer be elected, since votes and pre-votes still need the membership.
//!
//! One call is the node's own, not its manager's: `TaskLogs` (a manager reading the output of this node's tasks for
//! `docker service logs`) goes to the node's [`TaskLogSource`] on workers and managers alike, and needs a manager
//! certificate.

use crate::runtime::Manager;
use crate::store::ClusterState;
use skep_api::wire::{ErrorKind, RaftKind, Request, Response, WireError};
use skep_api::docker::NodeRole;
use skep_pki::PeerIdentity;
use skep_transport::{Handler, Peer};
use skep_api::logs::{LogsBatch, LogsRequest};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::RwLock;

/// What a node reads its own tasks' logs with (its engine).
pub trait TaskLogSource: Send + Sync + 'static {
    /// One batch of `req`'s task's records (long-polled when following).
    fn read(&self, req: LogsRequest) -> Pin<Box<dyn Future<Output = Result<LogsBatch, WireError>> + Send + '_>>;
}

/// What a node without a task engine (yet) answers `TaskLogs` with.
pub const NO_ENGINE: &str = "this node runs no task engine";

/// What a caller without a certificate is told on any call but `Join`.
pub const NEED_CERTIFICATE: &str = "a node certificate is required";

/// What a node that runs no manager answers every RPC with.
pub const NOT_A_MANAGER: &str = "this node is not a manager";

/// The transport handler: every RPC goes to the manager, if this node runs one. Cheap to clone.
#[derive(Clone)]
pub struct RpcHandler {
    /// The manager this node runs: `None` on a worker, or while a manager is starting or stopping. The node
    /// supervisor swaps it on promotion and demotion while the endpoint keeps serving.
    manager: Arc<RwLock<Option<Manager>>>,
    /// This node's task logs.
    logs: Option<Arc<dyn TaskLogSource>>,
}

impl RpcHandler {
    /// A handler that serves through whatever manager `manager` holds at each call.
    pub fn new(manager: Arc<RwLock<Option<Manager>>>) -> RpcHandler {
        RpcHandler { manager, logs: None }
    }

    /// Serves `TaskLogs` from `logs`.
    pub fn with_logs(mut self, logs: Arc<dyn TaskLogSource>) -> RpcHandler {
        self.logs = Some(logs);
        self
    }
}

impl Handler<Request, Response> for RpcHandler {
    async fn handle(&self, peer: Peer, req: Request) -> Response {
        let identity = peer_identity(&peer);
        if let Request::TaskLogs(q) = req {
            if identity.as_ref().is_none_or(|id| id.role != NodeRole::Manager) {
                return Response::Error(WireError::new(ErrorKind::Unauthorized, "this call needs a manager certificate"));
            }
            return match &self.logs {
                Some(src) => src.read(q).await.map_or_else(Response::Error, Response::TaskLogs),
                None => Response::Error(WireError::new(ErrorKind::Unavailable, NO_ENGINE)),
            };
        }
        let m = self.manager.read().await.clone();
        match m {
            Some(m) => m.handle(identity, peer.addr, req).await,
            None => Response::Error(WireError::new(ErrorKind::Unavailable, NOT_A_MANAGER)),
        }
    }
}

/// What the caller's certificate (leaf first, already verified by TLS) says about it; `None` without one.
pub fn peer_identity(peer: &Peer) -> Option<PeerIdentity> {
    peer.certs.as_ref().and_then(|c| c.first()).and_then(|der| skep_pki::identity_from_cert_der(der.as_ref()).ok())
}

/// Whether a caller with `identity` may make `req` to a manager whose store is `state` and whose Raft membership
/// holds the nodes for which `in_raft` is true (see the module docs).
pub fn authorize(
    state: &ClusterState,
    in_raft: &dyn Fn(&str) -> bool,
    identity: Option<&PeerIdentity>,
    req: &Request,
) -> Result<(), WireError> {
    if matches!(req, Request::Join(_)) {
        return Ok(());
    }
    let refuse = |kind, msg: &str| Err(WireError::new(kind, msg));
    let Some(id) = identity else {
        return refuse(ErrorKind::Unauthorized, NEED_CERTIFICATE);
    };
    if let Some(c) = &state.cluster {
        if id.cluster_id != c.info.id {
            return refuse(ErrorKind::Unauthorized, "certificate of another cluster");
        }
    }
    if state.removed.contains(&id.node_id) {
        return refuse(ErrorKind::Removed, "this node was removed from the swarm");
    }
    let manager_only = matches!(
        req,
        Request::Raft { .. }
            | Request::Propose { .. }
            | Request::ReadIndex
            | Request::RaftJoin { .. }
            | Request::RaftReseat { .. }
    );
    if manager_only && id.role != NodeRole::Manager {
        return refuse(ErrorKind::Unauthorized, "this call needs a manager certificate");
    }
    match req {
        Request::Raft { kind: RaftKind::Vote | RaftKind::PreVote, .. } if !in_raft(&id.node_id) => {
            refuse(ErrorKind::Unauthorized, "this node is not a member of the Raft cluster")
        }
        Request::Propose { .. } | Request::ReadIndex | Request::RaftJoin { .. } | Request::RaftReseat { .. } => {
            match state.nodes.get(&id.node_id) {
                Some(rec) if rec.node.spec.role == NodeRole::Manager => Ok(()),
                Some(_) => refuse(ErrorKind::Unauthorized, "this node is no longer a manager"),
                // a manager that has not yet applied the entry adding the caller: the caller tries another
                None if state.cluster.is_none() => refuse(ErrorKind::Unavailable, "the store is not ready"),
                None => refuse(ErrorKind::Unauthorized, "this node is not in the swarm"),
            }
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ClusterRecord;
    use skep_api::wire::{Heartbeat, JoinRequest, RaftKind};

    fn id(node: &str, role: NodeRole, cluster: &str) -> PeerIdentity {
        PeerIdentity { node_id: node.into(), role, cluster_id: cluster.into(), not_after_unix: 0 }
    }

    fn kind(r: Result<(), WireError>) -> Option<ErrorKind> {
        r.err().map(|e| e.kind)
    }

    #[test]
    fn who_may_call_what() {
        let mut s = ClusterState::default();
        let mut c = ClusterRecord::default();
        c.info.id = "c1".into();
        s.cluster = Some(c);
        s.removed.insert("gone".into());
        let mut m1 = crate::store::NodeRecord::default();
        m1.node.spec.role = NodeRole::Manager;
        s.nodes.insert("m1".into(), m1);
        let members = |n: &str| n == "m1";
        let join = Request::Join(JoinRequest {
            token: String::new(),
            csr_pem: String::new(),
            description: Default::default(),
            advertise_addr: String::new(),
            availability: Default::default(),
        });
        let hb = Request::Heartbeat(Heartbeat { description: None, addr: String::new(), manager_ready: None });
        let vote = Request::Raft { kind: RaftKind::Vote, payload: vec![] };
        let worker = id("w1", NodeRole::Worker, "c1");
        let manager = id("m1", NodeRole::Manager, "c1");
        // anyone may try to join
        assert_eq!(kind(authorize(&s, &members, None, &join)), None);
        // everything else needs a certificate of this cluster, of a node not removed
        assert_eq!(kind(authorize(&s, &members, None, &hb)), Some(ErrorKind::Unauthorized));
        assert_eq!(kind(authorize(&s, &members, Some(&id("w1", NodeRole::Worker, "c2")), &hb)), Some(ErrorKind::Unauthorized));
        assert_eq!(kind(authorize(&s, &members, Some(&id("gone", NodeRole::Manager, "c1")), &hb)), Some(ErrorKind::Removed));
        assert_eq!(kind(authorize(&s, &members, Some(&worker), &hb)), None);
        // Raft calls need a manager certificate
        for req in [vote.clone(), Request::Propose { command: vec![] }, Request::ReadIndex, Request::RaftJoin { raft_id: 2 }] {
            assert_eq!(kind(authorize(&s, &members, Some(&worker), &req)), Some(ErrorKind::Unauthorized), "{req:?}");
            assert_eq!(kind(authorize(&s, &members, Some(&manager), &req)), None, "{req:?}");
        }
        // ... and the store's word: a demoted manager's certificate still says manager
        s.nodes.get_mut("m1").unwrap().node.spec.role = NodeRole::Worker;
        for req in [Request::Propose { command: vec![] }, Request::ReadIndex, Request::RaftJoin { raft_id: 2 }] {
            assert_eq!(kind(authorize(&s, &members, Some(&manager), &req)), Some(ErrorKind::Unauthorized), "{req:?}");
        }
        // Raft follows the membership: still a member until it is removed from it
        assert_eq!(kind(authorize(&s, &members, Some(&manager), &vote)), None);
        assert_eq!(kind(authorize(&s, &|_: &str| false, Some(&manager), &vote)), Some(ErrorKind::Unauthorized));
        let pre_vote = Request::Raft { kind: RaftKind::PreVote, payload: vec![] };
        assert_eq!(kind(authorize(&s, &|_: &str| false, Some(&manager), &pre_vote)), Some(ErrorKind::Unauthorized));
        // entries and snapshots from a manager this replica's (perhaps stale) membership does not list: a new voter
        // that leads must reach a replica that was down while it was added
        for kind_ in [RaftKind::Append, RaftKind::Snapshot] {
            let req = Request::Raft { kind: kind_, payload: vec![] };
            assert_eq!(kind(authorize(&s, &|_: &str| false, Some(&manager), &req)), None, "{req:?}");
            assert_eq!(kind(authorize(&s, &|_: &str| false, Some(&worker), &req)), Some(ErrorKind::Unauthorized));
        }
        // a node the store does not know
        let stranger = id("m9", NodeRole::Manager, "c1");
        assert_eq!(kind(authorize(&s, &members, Some(&stranger), &Request::ReadIndex)), Some(ErrorKind::Unauthorized));
    }

    #[tokio::test]
    async fn a_node_without_a_manager_answers_unavailable() {
        let h = RpcHandler::new(Arc::new(RwLock::new(None)));
        let peer = Peer { addr: "127.0.0.1:1".parse().unwrap(), certs: None };
        let r = h.handle(peer, Request::ReadIndex).await;
        assert!(matches!(&r, Response::Error(e) if e.kind == ErrorKind::Unavailable && e.message == NOT_A_MANAGER), "{r:?}");
    }

    struct OneRecord;

    impl TaskLogSource for OneRecord {
        fn read(&self, req: LogsRequest) -> Pin<Box<dyn Future<Output = Result<LogsBatch, WireError>> + Send + '_>> {
            Box::pin(async move {
                let line = req.task_id.into_bytes();
                let rec = skep_api::logs::LogRecord { time_ns: 1, stream: skep_api::logs::LogStream::Stdout, partial: false, line };
                Ok(LogsBatch { records: vec![rec], cursor: Default::default(), done: true })
            })
        }
    }

    #[tokio::test]
    async fn task_logs_are_the_nodes_own_and_only_for_managers() {
        let h = RpcHandler::new(Arc::new(RwLock::new(None))).with_logs(Arc::new(OneRecord));
        let req = || Request::TaskLogs(LogsRequest { task_id: "t1".into(), ..Default::default() });
        // no certificate: refused (a worker's certificate is refused the same way; see `authorize`'s test for how
        // identities are read)
        let peer = Peer { addr: "127.0.0.1:1".parse().unwrap(), certs: None };
        let r = h.handle(peer, req()).await;
        assert!(matches!(&r, Response::Error(e) if e.kind == ErrorKind::Unauthorized), "{r:?}");
        // without a log source: unavailable, not a manager's answer
        let bare = RpcHandler::new(Arc::new(RwLock::new(None)));
        assert!(bare.logs.is_none());
        let src = h.logs.clone().unwrap();
        let batch = src.read(LogsRequest { task_id: "t1".into(), ..Default::default() }).await.unwrap();
        assert_eq!(batch.records[0].line, b"t1");
    }
}
