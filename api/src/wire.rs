//! Messages between nodes over the QUIC transport (one request, one response per stream).
//!
//! Payloads that only managers understand (Raft messages, store commands) travel as opaque bytes, so that this crate
//! does not depend on the Raft library; the manager encodes and decodes them with the same bounded codec.

use crate::docker::{NodeDescription, Peer};
use serde::{Deserialize, Serialize};

/// Version of this message set; a peer with another version is refused with [`ErrorKind::Version`].
pub const WIRE_VERSION: u32 = 1;

/// A request from one node to another.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Request {
    /// The only request allowed without a client certificate: exchange a join token and a CSR for a node certificate.
    Join(JoinRequest),
    /// Any node → leader: liveness, plus the node's description when it changed.
    Heartbeat(Heartbeat),
    /// Any node → manager: a fresh certificate for a new key (renewal, or after a role change).
    RenewCert {
        /// CSR in PEM; its subject is ignored.
        csr_pem: String,
    },
    /// Manager → manager: a Raft message (bincode of the openraft request).
    Raft {
        /// Which Raft RPC.
        kind: RaftKind,
        /// Encoded request.
        payload: Vec<u8>,
    },
    /// Manager → leader: a store command to propose.
    Propose {
        /// Encoded command.
        command: Vec<u8>,
    },
    /// Manager → leader: confirm leadership and return the index a linearizable read must wait for.
    ReadIndex,
    /// Manager → leader: add me to the Raft membership as a voter (after joining or promotion).
    RaftJoin {
        /// This manager's Raft ID (assigned by the store when the node became a manager).
        raft_id: u64,
    },
    /// Node → leader: I am leaving the swarm.
    Leave,
}

/// Which Raft RPC a [`Request::Raft`] carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RaftKind {
    /// AppendEntries.
    Append,
    /// RequestVote.
    Vote,
    /// InstallSnapshot (one chunk).
    Snapshot,
}

/// A reply.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Response {
    /// Join accepted.
    Joined(JoinReply),
    /// Heartbeat accepted.
    Heartbeat(HeartbeatReply),
    /// A renewed certificate.
    Cert {
        /// Node certificate, PEM.
        cert_pem: String,
        /// Root CA, PEM.
        ca_pem: String,
    },
    /// Raft reply (bincode of the openraft response, or of its error).
    Raft {
        /// Encoded `Result` of the Raft call.
        payload: Vec<u8>,
    },
    /// Proposal result (encoded store result).
    Proposed {
        /// Encoded result.
        result: Vec<u8>,
    },
    /// Read index for a linearizable read.
    ReadIndex {
        /// Wait until this log index is applied.
        index: u64,
    },
    /// Done, nothing to return.
    Ok,
    /// This manager is not the leader; try the leader.
    NotLeader {
        /// The leader's cluster address, when known.
        leader_addr: Option<String>,
    },
    /// Refused or failed.
    Error(WireError),
}

/// Join a swarm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The whole token (`SWMTKN-1-…`).
    pub token: String,
    /// CSR for the node certificate.
    pub csr_pem: String,
    /// What the node reports about itself.
    pub description: NodeDescription,
    /// Cluster address other nodes reach the joiner at (`IP:port`); empty: the address the request came from.
    pub advertise_addr: String,
    /// Requested availability (`active` when empty).
    pub availability: String,
}

/// What a joining node receives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinReply {
    /// The node's new ID.
    pub node_id: String,
    /// Cluster ID.
    pub cluster_id: String,
    /// `manager` or `worker`, from the token.
    pub role: String,
    /// Node certificate, PEM.
    pub cert_pem: String,
    /// Root CA, PEM.
    pub ca_pem: String,
    /// Raft ID, for a manager.
    pub raft_id: Option<u64>,
    /// The managers' cluster addresses.
    pub managers: Vec<Peer>,
    /// Heartbeat period in milliseconds.
    pub heartbeat_ms: u64,
}

/// A node's heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Sent on the first heartbeat of a session and whenever it changes.
    pub description: Option<NodeDescription>,
    /// The node's cluster address (`IP:port`).
    pub addr: String,
}

/// The leader's answer to a heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Send the next heartbeat within this many milliseconds.
    pub period_ms: u64,
    /// Current managers, to fail over to.
    pub managers: Vec<Peer>,
    /// The role the node should have (`manager` after a promotion).
    pub desired_role: String,
    /// The Raft ID to use when the node is (or becomes) a manager.
    pub raft_id: Option<u64>,
    /// The store's description of the node differs from what it has: send the description next time.
    pub want_description: bool,
}

/// Error classes a caller acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No or wrong credentials (token secret, certificate role).
    Unauthorized,
    /// The node was removed from the swarm.
    Removed,
    /// Bad request.
    InvalidArgument,
    /// No leader, no quorum, or shutting down: try again.
    Unavailable,
    /// Wire version mismatch.
    Version,
    /// Anything else.
    Internal,
}

/// An error reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct WireError {
    /// Class.
    pub kind: ErrorKind,
    /// Text for humans.
    pub message: String,
}

impl WireError {
    /// Build one.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> WireError {
        WireError { kind, message: message.into() }
    }
}

/// Longest message accepted on the wire (Raft snapshots are sent whole for now; 64 MiB bounds them).
pub const MAX_FRAME: usize = 64 * 1024 * 1024;
