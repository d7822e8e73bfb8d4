//! Raft messages over the QUIC transport.
//!
//! Each openraft RPC becomes one [`Request::Raft`] whose payload is the bincode of the openraft request; the reply
//! carries the bincode of `Result<response, RaftError>`. Transport failures are reported to openraft as
//! `Unreachable`, so it backs off instead of spinning.

use super::{decode, encode, Member, TypeConfig};
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable};
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

type NodeId = u64;

/// Makes a [`Peer`] per target.
#[derive(Clone)]
pub struct Network {
    endpoint: Endpoint,
}

impl Network {
    /// Over this endpoint.
    pub fn new(endpoint: Endpoint) -> Network {
        Network { endpoint }
    }
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Peer {
        Peer { endpoint: self.endpoint.clone(), target, member: node.clone() }
    }
}

/// One target manager.
pub struct Peer {
    endpoint: Endpoint,
    target: NodeId,
    member: Member,
}

impl Peer {
    async fn call<Req: Serialize, Resp: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        kind: RaftKind,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Member, RaftError<NodeId, E>>> {
        let payload = encode(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let addr = self
            .member
            .addr
            .parse()
            .map_err(|e: std::net::AddrParseError| RPCError::Unreachable(Unreachable::new(&e)))?;
        let req = Request::Raft { kind, payload };
        let call = self.endpoint.call::<Request, Response>(addr, skep_pki::NODE_SAN, &req);
        let resp = match tokio::time::timeout(option.hard_ttl(), call).await {
            Err(_) => return Err(RPCError::Unreachable(Unreachable::new(&AnyError::error("raft rpc timed out")))),
            Ok(Err(e)) => return Err(RPCError::Unreachable(Unreachable::new(&e))),
            Ok(Ok(r)) => r,
        };
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
        self.call(RaftKind::Append, &rpc, &option).await
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
        self.call(RaftKind::Vote, &rpc, &option).await
    }
}

/// Serve one Raft request on the receiving manager: decode, hand to openraft, encode the result.
pub async fn serve(raft: &super::Raft, kind: RaftKind, payload: &[u8]) -> Response {
    fn reply<T: Serialize>(r: &T) -> Response {
        match encode(r) {
            Ok(payload) => Response::Raft { payload },
            Err(e) => Response::Error(skep_api::wire::WireError::new(skep_api::wire::ErrorKind::Internal, e.to_string())),
        }
    }
    let bad = |e: bincode::error::DecodeError| {
        Response::Error(skep_api::wire::WireError::new(skep_api::wire::ErrorKind::InvalidArgument, format!("bad raft message: {e}")))
    };
    match kind {
        RaftKind::Append => match decode::<AppendEntriesRequest<TypeConfig>>(payload) {
            Ok(req) => reply(&raft.append_entries(req).await),
            Err(e) => bad(e),
        },
        RaftKind::Vote => match decode::<VoteRequest<NodeId>>(payload) {
            Ok(req) => reply(&raft.vote(req).await),
            Err(e) => bad(e),
        },
        RaftKind::Snapshot => match decode::<InstallSnapshotRequest<TypeConfig>>(payload) {
            Ok(req) => reply(&raft.install_snapshot(req).await),
            Err(e) => bad(e),
        },
    }
}
