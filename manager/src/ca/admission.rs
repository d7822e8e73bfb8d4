//! Admission: the certificate a node gets when it joins the swarm with a token, or renews the certificate it has.
//!
//! A join is allowed with a token whose CA digest is this cluster's and whose secret is the current manager or worker
//! token; the token decides the role. The CA chooses the node ID (the caller passes a fresh one in), never the
//! joiner. A renewal is allowed to any node in the store, with the role the store gives it, except that a demoted
//! manager keeps its manager certificate until it has left the Raft membership: with a worker certificate it could no
//! longer take part in the Raft calls that remove it. Certificates are valid for the cluster spec's
//! `CAConfig.NodeCertExpiry`, signed by the root that signs now (the new one during a root CA rotation).

use crate::dispatcher::UNKNOWN_NODE;
use crate::store::{ClusterRecord, ClusterState, Op};
use skep_api::docker::{defaults, Node, NodeRole, NodeState};
use skep_api::wire::{ErrorKind, JoinRequest, WireError};
use skep_pki::{JoinToken, RootCa};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// Docker's answer to a join with a bad token (any kind of bad: unparsable, another CA's, not a current secret).
pub const BAD_TOKEN: &str = "rpc error: code = InvalidArgument desc = A valid join token is necessary to join this cluster";

/// What asks for a certificate.
#[derive(Clone, Copy, Debug)]
pub enum AdmissionRequest<'a> {
    /// `swarm join`: a node without a certificate presents a token and a CSR.
    Join {
        /// The request as the joiner sent it.
        request: &'a JoinRequest,
        /// The address the request came from (the joiner's cluster address when it advertises none).
        from: SocketAddr,
        /// The ID the node gets if admitted (fresh, chosen by the caller's RNG).
        node_id: &'a str,
    },
    /// A node of the swarm renews its certificate (its current certificate says who it is).
    Renew {
        /// The node, from its current certificate.
        node_id: &'a str,
        /// The CSR for the new certificate.
        csr_pem: &'a str,
    },
}

/// A node admitted: its certificate, and what to propose.
#[derive(Clone, Debug)]
pub struct Admitted {
    /// The node the certificate names.
    pub node_id: String,
    /// The role the certificate carries.
    pub role: NodeRole,
    /// The node certificate, PEM.
    pub cert_pem: String,
    /// The root CA certificate, PEM (sent with it).
    pub ca_pem: String,
    /// The cluster the certificate is for.
    pub cluster_id: String,
    /// Store changes to propose before answering: the new node for a join; nothing for a renewal.
    pub ops: Vec<Op>,
}

/// Why a certificate was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdmissionError {
    /// The store has no cluster record yet (the `swarm init` is not applied). Retryable.
    #[error("the swarm is not initialised")]
    NotInitialised,
    /// The join token is unparsable, of another CA, or not a current secret.
    #[error("{BAD_TOKEN}")]
    BadToken,
    /// The node asking for a renewal is not in this replica (yet). Retryable.
    #[error("{UNKNOWN_NODE}")]
    UnknownNode,
    /// The CSR cannot be signed (unparsable, wrong key type, bad self-signature).
    #[error("invalid CSR: {0}")]
    InvalidCsr(String),
    /// The stored root CA cannot be loaded (a broken store; not the caller's fault).
    #[error("root CA: {0}")]
    RootCa(String),
}

impl AdmissionError {
    /// The wire error class a caller acts on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            AdmissionError::NotInitialised | AdmissionError::UnknownNode => ErrorKind::Unavailable,
            AdmissionError::BadToken => ErrorKind::Unauthorized,
            AdmissionError::InvalidCsr(_) => ErrorKind::InvalidArgument,
            AdmissionError::RootCa(_) => ErrorKind::Internal,
        }
    }
}

impl From<AdmissionError> for WireError {
    fn from(e: AdmissionError) -> WireError {
        WireError::new(e.kind(), e.to_string())
    }
}

/// Decide on a join or a renewal at time `now` (the certificate's validity starts there).
pub fn admit(state: &ClusterState, request: AdmissionRequest<'_>, now: SystemTime) -> Result<Admitted, AdmissionError> {
    match request {
        AdmissionRequest::Join { request, from, node_id } => join(state, request, from, node_id, now),
        AdmissionRequest::Renew { node_id, csr_pem } => renew(state, node_id, csr_pem, now),
    }
}

fn join(state: &ClusterState, j: &JoinRequest, from: SocketAddr, node_id: &str, now: SystemTime) -> Result<Admitted, AdmissionError> {
    let cluster = state.cluster.as_ref().ok_or(AdmissionError::NotInitialised)?;
    let token = JoinToken::parse(j.token.trim()).map_err(|_| AdmissionError::BadToken)?;
    let ca = trust_root(cluster)?;
    if token.ca_digest != ca.digest() {
        return Err(AdmissionError::BadToken);
    }
    let matches = |t: &str| JoinToken::parse(t).map(|k| k.secret_matches(&token.secret)).unwrap_or(false);
    let node_role = if matches(&cluster.tokens.manager) {
        NodeRole::Manager
    } else if matches(&cluster.tokens.worker) {
        NodeRole::Worker
    } else {
        return Err(AdmissionError::BadToken);
    };
    let cert_pem = sign(cluster, &j.csr_pem, node_id, node_role, now)?;
    let cluster_addr = if j.advertise_addr.is_empty() {
        SocketAddr::new(from.ip(), defaults::CLUSTER_PORT).to_string()
    } else {
        j.advertise_addr.clone()
    };
    let ip = cluster_addr.parse::<SocketAddr>().map(|a| a.ip().to_string()).unwrap_or_else(|_| from.ip().to_string());
    let mut node = Node { id: node_id.to_string(), description: j.description.clone(), ..Default::default() };
    node.spec.role = node_role;
    node.spec.availability = j.availability;
    node.status.state = NodeState::Ready;
    node.status.addr = ip;
    Ok(Admitted {
        node_id: node_id.to_string(),
        role: node_role,
        cert_pem,
        ca_pem: cluster.ca_cert_pem.clone(),
        cluster_id: cluster.info.id.clone(),
        ops: vec![Op::AddNode { node: Box::new(node), cluster_addr }],
    })
}

fn renew(state: &ClusterState, node_id: &str, csr_pem: &str, now: SystemTime) -> Result<Admitted, AdmissionError> {
    let (Some(cluster), Some(rec)) = (state.cluster.as_ref(), state.nodes.get(node_id)) else {
        return Err(AdmissionError::UnknownNode);
    };
    // A demoted manager keeps its manager certificate until it has left the Raft membership.
    let r = if rec.node.spec.role == NodeRole::Manager || rec.raft_id.is_some() { NodeRole::Manager } else { NodeRole::Worker };
    let cert_pem = sign(cluster, csr_pem, node_id, r, now)?;
    Ok(Admitted {
        node_id: node_id.to_string(),
        role: r,
        cert_pem,
        ca_pem: cluster.ca_cert_pem.clone(),
        cluster_id: cluster.info.id.clone(),
        ops: Vec::new(),
    })
}

fn trust_root(cluster: &ClusterRecord) -> Result<RootCa, AdmissionError> {
    RootCa::from_pem(&cluster.ca_cert_pem, None).map_err(|e| AdmissionError::RootCa(e.to_string()))
}

/// Sign a certificate for `cluster`, valid for its spec's `NodeCertExpiry` from `now`, by the root that signs now:
/// during a root CA rotation the new root, with its cross-signed certificate after the leaf
/// ([`rotation::signer`](super::rotation::signer)).
fn sign(cluster: &ClusterRecord, csr_pem: &str, node_id: &str, r: NodeRole, now: SystemTime) -> Result<String, AdmissionError> {
    let (ca, chain) = super::rotation::signer(cluster).map_err(|e| AdmissionError::RootCa(e.to_string()))?;
    let validity = Duration::from_nanos(cluster.info.spec.node_cert_expiry_ns().max(0) as u64);
    let leaf = ca
        .sign_csr_at(csr_pem, node_id, r, &cluster.info.id, validity, now)
        .map_err(|e| AdmissionError::InvalidCsr(e.to_string()))?;
    Ok(match chain {
        Some(cross) => format!("{}\n{}", leaf.trim_end(), cross.trim_end()) + "\n",
        None => leaf,
    })
}
