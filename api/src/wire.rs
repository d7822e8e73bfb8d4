//! Messages between nodes over the QUIC transport (one request, one response per stream).
//!
//! Payloads that only managers understand (Raft messages, store commands) travel as opaque bytes, so that this crate
//! does not depend on the Raft library; the manager encodes and decodes them with the same bounded codec.
//!
//! The node vocabulary in these messages ([`NodeRole`], [`Availability`]) is encoded as its word, like the `String`
//! fields it replaced: the bytes are the same as earlier builds sent.

use crate::docker::{Availability, NodeDescription, NodeRole, Peer, Task, TaskStatus};
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
        #[serde(with = "as_bytes")]
        payload: Vec<u8>,
    },
    /// Manager → leader: a store command to propose.
    Propose {
        /// Encoded command.
        #[serde(with = "as_bytes")]
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
    /// Node → leader: my task assignments. Long poll: answered when the set differs from `known` (its digest), or
    /// after about 10 s with the same set.
    Assignments {
        /// Digest of the set the node has (0: none yet).
        known: u64,
    },
    /// Node → leader: observed task states (batched by the node).
    TaskStatus {
        /// `(task ID, status)`.
        #[serde(with = "as_json")]
        updates: Vec<(String, TaskStatus)>,
    },
    /// Manager → any node: records of a task this node runs or ran (`docker service logs`; long poll when following).
    TaskLogs(crate::logs::LogsRequest),
    /// Node → manager: the cluster's root of trust and the CA that signs certificates now (a root CA rotation
    /// changes them). Long poll: answered when the state differs from `known` (its [`CaState::digest`]), or after
    /// about 25 s. Appended last, so that the other requests keep their encoding.
    CaWatch {
        /// Digest of the state the node has (0: none).
        known: u64,
    },
    /// Manager → leader: my Raft data was found corrupt and is set aside; take this Raft ID out of the membership and
    /// give me a fresh one, so that I rejoin as a new voter from a snapshot. Appended last, so that the other requests
    /// keep their encoding.
    RaftReseat {
        /// The Raft ID whose log and vote were lost.
        raft_id: u64,
    },
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
    /// Pre-vote: would the receiver vote for the sender if it campaigned now? Asked before a manager raises its term,
    /// so that a manager cut off from a live leader never deposes it when it comes back (Ongaro's thesis, §9.6).
    /// Appended last, so that the other kinds keep their encoding.
    PreVote,
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
        #[serde(with = "as_bytes")]
        payload: Vec<u8>,
    },
    /// Proposal result (encoded store result).
    Proposed {
        /// Encoded result.
        #[serde(with = "as_bytes")]
        result: Vec<u8>,
    },
    /// Read index for a linearizable read.
    ReadIndex {
        /// Wait until this log index is applied.
        index: u64,
    },
    /// The node's assignment set: every task it should run or stop.
    Assignments {
        /// Digest of the set (send it back as `known`).
        digest: u64,
        /// The tasks (whole objects: spec, desired state).
        #[serde(with = "as_json")]
        tasks: Vec<Task>,
        /// The networks and services this node must program (part of the digest).
        #[serde(with = "as_json")]
        network: crate::netview::NetworkView,
        /// The secrets and configs the node's tasks use (only while one of them may still run there).
        dependencies: Vec<Dependency>,
    },
    /// What changed in the node's assignment set since the set it holds (its `known` digest, named here as `base`):
    /// the leader sends this instead of [`Response::Assignments`] when it still knows which set that was, so a node
    /// is not sent every task again whenever one of them changes (nor on every long poll that times out).
    AssignmentChanges {
        /// Digest of the resulting assignments and network view (send it back as `known`).
        digest: u64,
        /// The `known` digest these changes apply to.
        base: u64,
        /// [`assignment_digest`] of the task set after the changes: a node whose set comes out otherwise asks for the
        /// whole set (`known: 0`).
        set_digest: u64,
        /// Tasks new to the set, or whose desired state changed (whole objects).
        #[serde(with = "as_json")]
        updated: Vec<Task>,
        /// IDs of tasks no longer in the set.
        removed: Vec<String>,
        /// The networks and services this node must program (whole, as in `Assignments`).
        #[serde(with = "as_json")]
        network: crate::netview::NetworkView,
        /// Secrets and configs new to the node's set.
        dependencies: Vec<Dependency>,
        /// Secrets and configs no task of the node needs any more: the node forgets them.
        removed_dependencies: Vec<DependencyKey>,
        /// [`dependency_digest`] of the node's dependencies after the changes (checked like `set_digest`).
        dependency_digest: u64,
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
    /// Records of a task's logs.
    TaskLogs(crate::logs::LogsBatch),
    /// The answer to [`Request::CaWatch`].
    Ca(CaState),
}

/// The cluster's root of trust as nodes follow it (see [`Request::CaWatch`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaState {
    /// Digest of the other fields (send it back as `known`); never 0.
    pub digest: u64,
    /// The root CA every node should trust, PEM.
    pub trust_root_pem: String,
    /// The public key (SubjectPublicKeyInfo DER, base64, as `TLSInfo.CertIssuerPublicKey`) of the CA that signs node
    /// certificates now: a node whose certificate another key issued renews it.
    pub issuer_public_key: String,
}

impl CaState {
    /// A state with its digest computed.
    pub fn new(trust_root_pem: String, issuer_public_key: String) -> CaState {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&trust_root_pem, &issuer_public_key).hash(&mut h);
        CaState { digest: h.finish() | 1, trust_root_pem, issuer_public_key }
    }
}

/// Digest of an assignment set from its `(task ID, desired state)` pairs in ascending ID order: what a node must act
/// on, not status details. Leader and node compute it alike (the same build), and it is never 0 (0 means "no set").
pub fn assignment_digest<'a>(keys: impl IntoIterator<Item = (&'a str, crate::docker::TaskState)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let keys: Vec<(&str, crate::docker::TaskState)> = keys.into_iter().collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    keys.hash(&mut h);
    h.finish() | 1
}

/// Which kind of object a [`Dependency`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum DependencyKind {
    /// A secret (`ContainerSpec.Secrets`).
    Secret,
    /// A config (`ContainerSpec.Configs`).
    Config,
}

/// Names one dependency in an assignment set.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DependencyKey {
    /// Secret or config.
    pub kind: DependencyKind,
    /// The object's ID.
    pub id: String,
    /// For a templated object, the task it was rendered for (its content is that task's alone); `None` for the
    /// object's own payload, shared by every task using it.
    pub task: Option<String>,
}

/// A secret's or config's content as a node receives it with the assignments of the tasks that use it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dependency {
    /// What it is.
    pub key: DependencyKey,
    /// Its content.
    pub content: DependencyContent,
}

/// The content of a [`Dependency`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DependencyContent {
    /// The bytes of the file.
    Data(#[serde(with = "as_bytes")] Vec<u8>),
    /// The file could not be made (a template that does not render for its task): the task is refused with this.
    Error(String),
}

impl std::fmt::Debug for DependencyContent {
    /// Never the bytes: they may be a secret's.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DependencyContent::Data(d) => write!(f, "Data({} bytes)", d.len()),
            DependencyContent::Error(e) => write!(f, "Error({e:?})"),
        }
    }
}

/// Digest of a node's dependency keys in ascending order; leader and node compute it alike, never 0.
pub fn dependency_digest<'a>(keys: impl IntoIterator<Item = &'a DependencyKey>) -> u64 {
    use std::hash::{Hash, Hasher};
    let keys: Vec<&DependencyKey> = keys.into_iter().collect();
    let mut h = std::collections::hash_map::DefaultHasher::new();
    keys.hash(&mut h);
    h.finish() | 1
}

/// Join a swarm.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinRequest {
    /// The whole token (`SWMTKN-1-…`).
    pub token: String,
    /// CSR for the node certificate.
    pub csr_pem: String,
    /// What the node reports about itself.
    #[serde(with = "as_json")]
    pub description: NodeDescription,
    /// Cluster address other nodes reach the joiner at (`IP:port`); empty: the address the request came from.
    pub advertise_addr: String,
    /// Requested availability (the joining node resolves the API's empty value to `active`).
    pub availability: Availability,
}

/// What a joining node receives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinReply {
    /// The node's new ID.
    pub node_id: String,
    /// Cluster ID.
    pub cluster_id: String,
    /// From the token.
    pub role: NodeRole,
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
    #[serde(with = "as_json")]
    pub description: Option<NodeDescription>,
    /// The node's cluster address (`IP:port`).
    pub addr: String,
    /// On a manager: whether its Raft has caught up (it knows the leader and has applied what it holds), i.e. it can
    /// serve the API. The leader lists a manager as reachable only when it says so. `None` on workers.
    pub manager_ready: Option<bool>,
}

/// The leader's answer to a heartbeat.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Send the next heartbeat within this many milliseconds.
    pub period_ms: u64,
    /// Current managers, to fail over to.
    pub managers: Vec<Peer>,
    /// The role the node should have (`manager` after a promotion).
    pub desired_role: NodeRole,
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
    /// The object asked about is not there (a task this node has no logs of).
    NotFound,
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

/// `Vec<u8>` fields as one byte string instead of a sequence of numbers: the same bincode encoding (a length, then the
/// bytes), but written and read in one piece rather than byte by byte (which was 6% of a busy leader's CPU).
pub mod as_bytes {
    use serde::{Deserializer, Serializer};

    /// Serialize as bytes.
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    /// Read bytes back (a byte string or, from self-describing formats, a sequence).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_byte_buf(super::as_json::Bytes)
    }
}

/// Docker-shaped values inside wire messages travel as JSON bytes: their serde attributes (`null` as default,
/// omitted empty fields, free-form JSON) only make sense for a self-describing format, not for bincode.
pub mod as_json {
    use serde::de::{self, DeserializeOwned, Deserializer};
    use serde::{Serialize, Serializer};
    use std::fmt;

    /// Serialize `v` as the bytes of its JSON.
    pub fn serialize<T: Serialize, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_vec(v).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&json)
    }

    /// Read JSON bytes back.
    pub fn deserialize<'de, T: DeserializeOwned, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let bytes = d.deserialize_byte_buf(Bytes)?;
        serde_json::from_slice(&bytes).map_err(de::Error::custom)
    }

    pub(super) struct Bytes;
    impl<'de> de::Visitor<'de> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            let mut out = Vec::new();
            while let Some(b) = seq.next_element::<u8>()? {
                out.push(b);
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(r: &Request) -> Request {
        let b = bincode::serde::encode_to_vec(r, bincode::config::standard()).unwrap();
        let (back, used): (Request, usize) =
            bincode::serde::decode_from_slice(&b, bincode::config::standard().with_limit::<{ MAX_FRAME }>()).unwrap();
        assert_eq!(used, b.len());
        back
    }

    #[test]
    fn messages_with_docker_shapes_survive_bincode() {
        let mut d = NodeDescription { hostname: "h".into(), ..Default::default() };
        d.engine.labels.insert("a".into(), "b".into());
        let r = round_trip(&Request::Heartbeat(Heartbeat { description: Some(d.clone()), addr: "x".into(), manager_ready: Some(true) }));
        match r {
            Request::Heartbeat(h) => assert_eq!(h.description, Some(d.clone())),
            other => panic!("{other:?}"),
        }
        let j = Request::Join(JoinRequest {
            token: "t".into(),
            csr_pem: "c".into(),
            description: d.clone(),
            advertise_addr: String::new(),
            availability: Availability::Drain,
        });
        match round_trip(&j) {
            Request::Join(j) => assert_eq!(j.description, d),
            other => panic!("{other:?}"),
        }
        assert!(matches!(round_trip(&Request::Heartbeat(Heartbeat { description: None, addr: String::new(), manager_ready: None })), Request::Heartbeat(h) if h.description.is_none()));
    }

    /// The fields that were `String`s before the node vocabulary became enums, as earlier builds declared them.
    #[derive(Serialize)]
    struct LegacyJoinReply {
        node_id: String,
        cluster_id: String,
        role: String,
        cert_pem: String,
        ca_pem: String,
        raft_id: Option<u64>,
        managers: Vec<Peer>,
        heartbeat_ms: u64,
    }

    #[derive(Serialize)]
    struct LegacyHeartbeatReply {
        period_ms: u64,
        managers: Vec<Peer>,
        desired_role: String,
        raft_id: Option<u64>,
        want_description: bool,
    }

    #[test]
    fn the_node_vocabulary_encodes_as_the_strings_it_replaced() {
        fn enc<T: Serialize>(v: &T) -> Vec<u8> {
            bincode::serde::encode_to_vec(v, bincode::config::standard()).unwrap()
        }
        for &role in NodeRole::ALL {
            let managers = vec![Peer { node_id: "m1".into(), addr: "10.0.0.1:2377".into() }];
            let now = JoinReply {
                node_id: "n".into(),
                cluster_id: "c".into(),
                role,
                cert_pem: "cert".into(),
                ca_pem: "ca".into(),
                raft_id: Some(3),
                managers: managers.clone(),
                heartbeat_ms: 5000,
            };
            let before = LegacyJoinReply {
                node_id: "n".into(),
                cluster_id: "c".into(),
                role: role.to_string(),
                cert_pem: "cert".into(),
                ca_pem: "ca".into(),
                raft_id: Some(3),
                managers: managers.clone(),
                heartbeat_ms: 5000,
            };
            assert_eq!(enc(&now), enc(&before), "{role}");
            let now = HeartbeatReply { period_ms: 5000, managers: managers.clone(), desired_role: role, raft_id: None, want_description: true };
            let before =
                LegacyHeartbeatReply { period_ms: 5000, managers, desired_role: role.to_string(), raft_id: None, want_description: true };
            assert_eq!(enc(&now), enc(&before), "{role}");
        }
        for a in Availability::ALL {
            assert_eq!(enc(a), enc(&a.to_string()));
        }
        // and a word from an earlier build decodes
        let (back, _): (HeartbeatReply, usize) = bincode::serde::decode_from_slice(
            &enc(&LegacyHeartbeatReply { period_ms: 1, managers: vec![], desired_role: "manager".into(), raft_id: Some(1), want_description: false }),
            bincode::config::standard().with_limit::<{ MAX_FRAME }>(),
        )
        .unwrap();
        assert_eq!(back.desired_role, NodeRole::Manager);
    }

    #[test]
    fn assignment_answers_carry_dependencies_through_bincode() {
        let key = DependencyKey { kind: DependencyKind::Config, id: "c1".into(), task: Some("t1".into()) };
        let r = Response::AssignmentChanges {
            digest: 3,
            base: 2,
            set_digest: 5,
            updated: vec![],
            removed: vec![],
            network: Default::default(),
            dependencies: vec![Dependency { key: key.clone(), content: DependencyContent::Data(vec![0, 1, 255]) }],
            removed_dependencies: vec![DependencyKey { kind: DependencyKind::Secret, id: "s1".into(), task: None }],
            dependency_digest: dependency_digest([&key]),
        };
        let b = bincode::serde::encode_to_vec(&r, bincode::config::standard()).unwrap();
        let (back, _): (Response, usize) =
            bincode::serde::decode_from_slice(&b, bincode::config::standard().with_limit::<{ MAX_FRAME }>()).unwrap();
        let Response::AssignmentChanges { dependencies, removed_dependencies, .. } = back else { panic!("{back:?}") };
        assert_eq!(dependencies[0].content, DependencyContent::Data(vec![0, 1, 255]));
        assert_eq!(removed_dependencies[0].id, "s1");
        // a secret's bytes never show in logs
        assert_eq!(format!("{:?}", dependencies[0].content), "Data(3 bytes)");
    }
}
