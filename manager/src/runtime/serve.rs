//! The router of RPCs from other nodes: [`Manager::handle`] applies [`rpc::authorize`](crate::rpc::authorize), then
//! hands each request to its driver (Raft, the Raft client, membership, admission or the dispatcher's sessions).
//! [`Manager::removal_loop`] closes the connections of nodes the store removes, so that none keeps one it opened
//! while it was a member.

use super::Manager;
use crate::rpc;
use skep_api::wire::{ErrorKind, RaftKind, Request, Response, WireError};
use skep_pki::PeerIdentity;
use std::net::SocketAddr;

impl Manager {
    /// Serve one RPC from another node. `identity` is what the caller's certificate says (`None`: no certificate).
    pub async fn handle(&self, identity: Option<PeerIdentity>, from: SocketAddr, req: Request) -> Response {
        let in_raft = |node: &str| {
            let m = self.inner.raft.metrics();
            let m = m.borrow();
            let mut members = m.membership_config.membership().nodes().peekable();
            // a manager that has just joined knows no membership yet: its leader is whoever adds it
            members.peek().is_none() || members.any(|(_, member)| member.node_id == node)
        };
        if let Err(e) = rpc::authorize(&self.local_state(), &in_raft, identity.as_ref(), &req) {
            return Response::Error(e);
        }
        self.route(identity, from, req).await.unwrap_or_else(Response::Error)
    }

    /// Hand an authorized request to its driver. Every request but `Join` carries the caller's identity (authorized
    /// above; `node()` only restates it).
    async fn route(&self, identity: Option<PeerIdentity>, from: SocketAddr, req: Request) -> Result<Response, WireError> {
        let node = move || identity.ok_or_else(|| WireError::new(ErrorKind::Unauthorized, rpc::NEED_CERTIFICATE));
        Ok(match req {
            Request::Raft { kind: RaftKind::PreVote, payload } => self.serve_pre_vote(&payload).await,
            Request::Raft { kind: RaftKind::Vote, payload } => self.serve_vote(&payload).await,
            Request::Raft { kind, payload } => crate::raft::network::serve(&self.inner.raft, kind, &payload).await,
            Request::Join(j) => self.handle_join(j, from).await,
            Request::Heartbeat(hb) => self.handle_heartbeat(node()?, hb, from).await,
            Request::RenewCert { csr_pem } => self.handle_renew(node()?, &csr_pem),
            Request::Propose { command } => self.serve_propose(&command).await,
            Request::ReadIndex => self.serve_read_index().await,
            Request::RaftJoin { raft_id } => self.handle_raft_join(node()?, raft_id).await,
            Request::RaftReseat { raft_id } => self.handle_raft_reseat(node()?, raft_id).await,
            Request::Leave => self.handle_leave(node()?).await,
            Request::Assignments { known } => self.handle_assignments(node()?, known).await,
            Request::TaskStatus { updates } => self.handle_task_status(node()?, updates).await,
            Request::CaWatch { known } => {
                node()?;
                self.handle_ca_watch(known).await
            }
            // served by the node itself ([`rpc::RpcHandler`]), manager or not
            Request::TaskLogs(_) => return Err(WireError::new(ErrorKind::Unavailable, "task logs are not a manager call")),
        })
    }

    /// Close the connections of every node that the store lists as removed, as soon as it is.
    pub(super) async fn removal_loop(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut changes = self.inner.sm.subscribe();
        let mut known = changes.borrow().removed.clone();
        loop {
            tokio::select! {
                r = changes.changed() => { if r.is_err() { return; } }
                _ = stop.changed() => return,
            }
            let removed = changes.borrow_and_update().removed.clone();
            if removed == known {
                continue;
            }
            let newly: Vec<String> = removed.iter().filter(|id| !known.contains(*id)).cloned().collect();
            known = removed;
            for id in newly {
                let closed = self.inner.endpoint.close_callers(
                    |p| rpc::peer_identity(p).is_some_and(|who| who.node_id == id),
                    "this node was removed from the swarm",
                );
                if closed > 0 {
                    tracing::info!(node = %id, closed, "closed the connections of a removed node");
                }
            }
        }
    }
}
