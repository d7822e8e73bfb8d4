//! Raft messages over the QUIC transport.
//!
//! Each openraft RPC becomes one [`Request::Raft`] whose payload is the bincode of the openraft request; the reply
//! carries the bincode of `Result<response, RaftError>`. Transport failures are reported to openraft as
//! `Unreachable`, so it backs off instead of spinning (for [`REPLICATION_BACKOFF`]). Each call carries openraft's
//! deadline into the transport, so a peer that stays silent until then loses its cached connection and the next
//! attempt redials: a manager killed and restarted on the same address is reached again at once.
//!
//! Bounded by bytes: an AppendEntries whose payload would not fit a transport frame is not sent (it would fail at
//! encode and be retried forever); openraft is told `PayloadTooLarge` and sends fewer entries. A follower that
//! cannot decode an AppendEntries from its leader (a poison entry: no retry can help) stops its Raft with a fatal
//! error in its log, instead of answering an error the leader would take for a network fault and retry forever.

use super::{decode, encode, Member, TypeConfig};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::AnyError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use skep_api::wire::{RaftKind, Request, Response};
use skep_transport::Endpoint;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

type NodeId = u64;

/// Largest Raft payload sent: a transport frame less room for the request around it.
pub const MAX_RAFT_PAYLOAD: usize = skep_transport::codec::DEFAULT_MAX_FRAME - 64 * 1024;

/// Makes a [`Peer`] per target.
#[derive(Clone)]
pub struct Network {
    endpoint: Endpoint,
    greater_log: GreaterLog,
    answered: Answered,
}

/// See [`Network::greater_log`].
pub type GreaterLog = Arc<Mutex<Option<tokio::time::Instant>>>;

/// See [`Network::answered`].
pub type Answered = Arc<Mutex<BTreeMap<NodeId, tokio::time::Instant>>>;

impl Network {
    /// Over this endpoint.
    pub fn new(endpoint: Endpoint) -> Network {
        Network { endpoint, greater_log: Default::default(), answered: Default::default() }
    }

    /// When each peer last answered a Raft call of this manager's (any answer: the peer is reachable). A leader calls
    /// every member several times a second (its heartbeats), so a leader's view is current: a membership change
    /// reads it before it removes a voter (`runtime::membership`), as swarmkit's `CanRemoveMember` reads whether its
    /// Raft peers are active, and not the nodes' heartbeats, which take 3 s to mark a manager down.
    pub fn answered(&self) -> Answered {
        self.answered.clone()
    }

    /// When a voter last refused a vote request of this manager's and its log was longer: the next election waits
    /// longer, as openraft's own timer does (`smaller_log_timeout`), so that the voter with the longer log is
    /// elected instead of this one campaigning again and again. The election timer (`runtime::election`) reads it;
    /// openraft keeps the same fact to itself (as a flag cleared only by its next election, so that a refusal seen
    /// once, e.g. by a restarted manager, still delays an election much later).
    pub fn greater_log(&self) -> GreaterLog {
        self.greater_log.clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        let (greater_log, answered) = (self.greater_log.clone(), self.answered.clone());
        Peer { endpoint: self.endpoint.clone(), target, member: node.clone(), greater_log, answered }
    }
}

/// One target manager.
pub struct Peer {
    endpoint: Endpoint,
    target: NodeId,
    member: Member,
    /// See [`Network::greater_log`].
    greater_log: GreaterLog,
    /// See [`Network::answered`].
    answered: Answered,
}

impl Peer {
    async fn call<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        kind: RaftKind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>> {
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        if payload.len() > MAX_RAFT_PAYLOAD {
            // the caller (append_entries) turns this into a hint of fewer entries
            return Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(1)));
        }
        let addr = self
            .member
            .addr
            .parse()
            .map_err(|e: std::net::AddrParseError| RPCError::Unreachable(Unreachable::new(&e)))?;
        let req = Request::Raft { kind, payload };
        // the deadline goes into the call, so that a peer silent until then (killed, perhaps restarted already) loses
        // its cached connection and the next call redials
        let deadline = tokio::time::Instant::now() + option.hard_ttl();
        let resp = match self.endpoint.call_until::<Request, Response>(addr, skep_pki::NODE_SAN, &req, deadline).await {
            Err(skep_transport::TransportError::Timeout) => {
                return Err(RPCError::Unreachable(Unreachable::new(&AnyError::error("raft rpc timed out"))))
            }
            Err(e) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Ok(r) => r,
        };
        self.answered.lock().unwrap_or_else(|p| p.into_inner()).insert(self.target, tokio::time::Instant::now());
        match resp {
            Response::Raft { payload } => {
                let r: Result<Resp, RaftError<NodeId, E>> =
                    decode(&payload).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                r.map_err(|e| RPCError::RemoteError(RemoteError::new_with_node(self.target, self.member.clone(), e)))
            }
            Response::Error(e) => Err(RPCError::Unreachable(Unreachable::new(&e))),
            other => Err(RPCError::Network(NetworkError::new(&AnyError::error(format!(
                "unexpected reply to a raft rpc: {other:?}"
            ))))),
        }
    }
}

impl RaftNetwork<TypeConfig> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        let entries = rpc.entries.len() as u64;
        match self.call(RaftKind::Append, &rpc, &option).await {
            Err(RPCError::PayloadTooLarge(_)) if entries > 1 => {
                Err(RPCError::PayloadTooLarge(PayloadTooLarge::new_entries_hint(entries / 2)))
            }
            Err(RPCError::PayloadTooLarge(_)) => {
                // one entry larger than a frame: proposals are bounded well below it (`MAX_ENTRY_BYTES`), so only
                // a log written by a build without that bound gets here
                tracing::error!(
                    peer = self.target,
                    "a Raft entry is larger than a transport frame ({MAX_RAFT_PAYLOAD} bytes) and cannot be replicated"
                );
                Err(RPCError::Unreachable(Unreachable::new(&AnyError::error("raft entry larger than a frame"))))
            }
            other => other,
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId, InstallSnapshotError>>>
    {
        self.call(RaftKind::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Member, RaftError<NodeId>>> {
        let r: Result<VoteResponse<NodeId>, _> = self.call(RaftKind::Vote, &rpc, &option).await;
        if let Ok(resp) = &r {
            if !resp.vote_granted && resp.last_log_id > rpc.last_log_id {
                *self.greater_log.lock().unwrap_or_else(|p| p.into_inner()) = Some(tokio::time::Instant::now());
            }
        }
        r
    }

    /// Pause between replication attempts to a peer that could not be reached. openraft's default is 500 ms; a
    /// manager restarted on its data is then heard from only after it has started an election of its own (about a
    /// second after its start), with a term higher than the leader's, which costs the cluster a second election.
    /// An attempt to a dead peer costs one bounded call, so trying every 100 ms is cheap.
    fn backoff(&self) -> openraft::network::Backoff {
        openraft::network::Backoff::new(std::iter::repeat(REPLICATION_BACKOFF))
    }
}

/// See [`Peer::backoff`].
const REPLICATION_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// The answer to a Raft call: `r` encoded, or an internal error if it cannot be.
pub fn reply<T: Serialize>(r: &T) -> Response {
    match encode(r) {
        Ok(payload) => Response::Raft { payload },
        Err(e) => Response::Error(skep_api::wire::WireError::new(skep_api::wire::ErrorKind::Internal, e.to_string())),
    }
}

/// Serve one Raft entries or snapshot request on the receiving manager: decode, hand to openraft, encode the result.
/// Votes and pre-votes go to `runtime::prevote` instead.
pub async fn serve(raft: &super::Raft, kind: RaftKind, payload: &[u8]) -> Response {
    let bad = |e: bincode::error::DecodeError| {
        Response::Error(skep_api::wire::WireError::new(skep_api::wire::ErrorKind::InvalidArgument, format!("bad raft message: {e}")))
    };
    match kind {
        RaftKind::Append => match decode::<AppendEntriesRequest<TypeConfig>>(payload) {
            Ok(req) => reply(&raft.append_entries(req).await),
            Err(e) => {
                tracing::error!(
                    "FATAL: cannot decode entries from the Raft leader ({e}); no retry can fix this, so this manager \
                     stops taking part in Raft (restart it with a matching skep build, or remove it and rejoin)"
                );
                let raft = raft.clone();
                tokio::spawn(async move {
                    let _ = raft.shutdown().await;
                });
                bad(e)
            }
        },
        RaftKind::Snapshot => match decode::<InstallSnapshotRequest<TypeConfig>>(payload) {
            Ok(req) => reply(&raft.install_snapshot(req).await),
            Err(e) => bad(e),
        },
        // answered by the manager around openraft (`runtime::prevote`): votes pass its one-vote-per-term gate, and
        // pre-votes need its log store; handing either to openraft here would bypass that
        RaftKind::Vote | RaftKind::PreVote => Response::Error(skep_api::wire::WireError::new(
            skep_api::wire::ErrorKind::Internal,
            "votes and pre-votes are answered by the manager, not here",
        )),
    }
}
