//! The `Join`, `RenewCert` and `CaWatch` RPCs: [`ca::admit`] decides, this proposes the new node (for a join) and answers.
//! A join is served by the leader only (it writes the store); a renewal by any manager, from its own replica.

use super::{werr, Manager};
use crate::ca::{self, AdmissionRequest};
use crate::dispatcher::{heartbeat_period_ns, manager_peers};
use skep_api::wire::{ErrorKind, JoinReply, JoinRequest, Response};
use skep_pki::PeerIdentity;
use std::net::SocketAddr;
use std::time::SystemTime;
use tokio::time::Instant;

/// How long a `CaWatch` waits for a change before answering with the same state.
const CA_LONG_POLL: std::time::Duration = std::time::Duration::from_secs(25);

impl Manager {
    pub(super) async fn handle_join(&self, j: JoinRequest, from: SocketAddr) -> Response {
        if !self.leader_ready() {
            return self.not_leader();
        }
        let state = self.local_state();
        let node_id = skep_api::id::new_id(&mut rand::thread_rng());
        let request = AdmissionRequest::Join { request: &j, from, node_id: &node_id };
        let admitted = match ca::admit(&state, request, SystemTime::now()) {
            Ok(a) => a,
            Err(e) => return Response::Error(e.into()),
        };
        self.lock_live().joined(&admitted.node_id, Instant::now());
        let mut raft_id = None;
        for op in admitted.ops {
            match self.propose(op).await {
                Ok(applied) => raft_id = applied.raft_id,
                Err(e) => return werr(ErrorKind::Unavailable, e.to_string()),
            }
        }
        Response::Joined(JoinReply {
            node_id: admitted.node_id,
            cluster_id: admitted.cluster_id,
            role: admitted.role,
            cert_pem: admitted.cert_pem,
            ca_pem: admitted.ca_pem,
            raft_id,
            managers: manager_peers(&self.local_state()),
            heartbeat_ms: (heartbeat_period_ns(&state) / 1_000_000) as u64,
        })
    }

    /// `CaWatch`: the cluster's CA state from this manager's replica, once it differs from the caller's `known`, or
    /// after [`CA_LONG_POLL`] anyway.
    pub(super) async fn handle_ca_watch(&self, known: u64) -> Response {
        let mut changes = self.inner.sm.subscribe();
        let mut stop = self.inner.stop.subscribe();
        let deadline = Instant::now() + CA_LONG_POLL;
        loop {
            let state = changes.borrow_and_update().cluster.as_ref().map(ca::rotation::ca_state);
            let Some(state) = state else {
                return werr(ErrorKind::Unavailable, "the swarm is not initialised");
            };
            if state.digest != known {
                return Response::Ca(state);
            }
            tokio::select! {
                r = tokio::time::timeout_at(deadline, changes.changed()) => match r {
                    Ok(Ok(())) => continue,
                    _ => return Response::Ca(state),
                },
                _ = stop.changed() => return werr(ErrorKind::Unavailable, "the manager is shutting down"),
            }
        }
    }

    pub(super) fn handle_renew(&self, id: PeerIdentity, csr_pem: &str) -> Response {
        let request = AdmissionRequest::Renew { node_id: &id.node_id, csr_pem };
        match ca::admit(&self.local_state(), request, SystemTime::now()) {
            Ok(a) => Response::Cert { cert_pem: a.cert_pem, ca_pem: a.ca_pem },
            Err(e) => Response::Error(e.into()),
        }
    }
}
