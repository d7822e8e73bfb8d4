//! The cluster store: the state every manager replicates through Raft, and the commands that change it.
//!
//! `apply` is a pure, deterministic function of (state, log index, command): everything that varies (IDs, times,
//! tokens, certificates) is decided by the proposer and carried inside the command, so every manager computes the same
//! state. Checks that depend on the current state (optimistic-concurrency `version`, existence, name clashes) are made
//! again at apply time, because only the applied order is linearizable.
//!
//! The state is held behind an `Arc` so readers take a consistent snapshot with one clone of a pointer; `apply`
//! copies on write.

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use skep_api::docker::{
    node_state, reachability, ClusterInfo, JoinTokens, ManagerStatus, Node, NodeDescription, NodeSpec, ObjectVersion,
    SwarmSpec,
};
use std::collections::{BTreeMap, BTreeSet};

/// Everything the managers agree on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Log index of the last applied command: the store's global version.
    pub index: u64,
    /// The swarm, once initialised.
    pub cluster: Option<ClusterRecord>,
    /// Nodes by ID.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// IDs of removed nodes: their certificates are refused on every RPC.
    pub removed: BTreeSet<String>,
    /// Next Raft ID to hand out to a manager.
    pub next_raft_id: u64,
    /// Internal key-value records (benchmarks and bookkeeping); never shown by the Docker API.
    pub kv: BTreeMap<String, Vec<u8>>,
}

/// The swarm object plus what only managers may see.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// The API view (ID, spec, TLS info...).
    pub info: ClusterInfo,
    /// Current join tokens.
    pub tokens: JoinTokens,
    /// Root CA certificate, PEM.
    pub ca_cert_pem: String,
    /// Root CA key, PEM: replicated so that any leader can sign node certificates.
    pub ca_key_pem: String,
}

/// A node and its Raft identity.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The API view. `ManagerStatus` is filled in at read time (leadership is not stored).
    pub node: Node,
    /// Raft ID while the node is (or is becoming) a manager.
    pub raft_id: Option<u64>,
    /// Cluster address `IP:port` of the node's QUIC endpoint.
    pub cluster_addr: String,
}

/// A change to the store. `at` is the proposer's wall-clock time (RFC 3339) for `UpdatedAt`/`CreatedAt`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Command {
    /// When the proposer made it.
    pub at: String,
    /// What to do.
    pub op: Op,
}

/// The operations.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// `swarm init`: the cluster and its first (manager) node.
    Init {
        /// The swarm.
        cluster: Box<ClusterRecord>,
        /// The first node (a manager).
        node: Box<Node>,
        /// Its cluster address.
        cluster_addr: String,
    },
    /// A node joined. Managers get a Raft ID at apply time.
    AddNode {
        /// The node as it joins.
        node: Box<Node>,
        /// Its cluster address.
        cluster_addr: String,
    },
    /// `node update` / promote / demote: replace the spec, if `version` still matches.
    UpdateNodeSpec {
        /// Node ID.
        id: String,
        /// The `Version.Index` the client read.
        version: u64,
        /// New spec.
        spec: NodeSpec,
    },
    /// The dispatcher observed a state change (ready/down), or the node's address moved.
    SetNodeStatus {
        /// Node ID.
        id: String,
        /// `ready`, `down`...
        state: String,
        /// Why.
        message: String,
        /// The node's IP.
        addr: String,
    },
    /// The node reported a new description.
    SetNodeDescription {
        /// Node ID.
        id: String,
        /// What it reports.
        description: Box<NodeDescription>,
    },
    /// Give up a manager's Raft ID after it left the membership (demotion finished).
    ClearRaftId {
        /// Node ID.
        id: String,
    },
    /// `node rm`: forget the node and refuse its certificate from now on.
    RemoveNode {
        /// Node ID.
        id: String,
    },
    /// `swarm update`: new spec and, when rotating, new tokens; only if `version` still matches.
    UpdateCluster {
        /// The `Version.Index` the client read.
        version: u64,
        /// New spec.
        spec: Box<SwarmSpec>,
        /// New tokens (the proposer rotates them).
        tokens: JoinTokens,
    },
    /// Internal record.
    KvPut {
        /// Key.
        key: String,
        /// Value.
        value: Vec<u8>,
    },
}

/// What applying a command produced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Log index the command was applied at (the new `Version.Index` of what it wrote).
    pub index: u64,
    /// The Raft ID handed out, for `AddNode` of a manager or a promotion.
    pub raft_id: Option<u64>,
}

/// Why a command was refused at apply time. Messages are Docker's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such object.
    #[error("{0}")]
    NotFound(String),
    /// Stale `version`.
    #[error("update out of sequence")]
    OutOfSequence,
    /// Name clash or the like.
    #[error("{0}")]
    Conflict(String),
    /// The command does not fit the state.
    #[error("{0}")]
    Invalid(String),
}

/// The result type the state machine returns for every entry.
pub type ApplyResult = Result<Applied, StoreError>;

impl ClusterState {
    /// Apply `cmd` at log `index`. Refused commands leave the state unchanged (but still advance `index`).
    pub fn apply(&mut self, index: u64, cmd: &Command) -> ApplyResult {
        self.index = index;
        let v = ObjectVersion { index };
        let at = &cmd.at;
        let mut raft_id = None;
        match &cmd.op {
            Op::Init { cluster, node, cluster_addr } => {
                if self.cluster.is_some() {
                    return Err(StoreError::Conflict("swarm already initialised".into()));
                }
                let mut c = (**cluster).clone();
                c.info.version = v;
                c.info.created_at = at.clone();
                c.info.updated_at = at.clone();
                self.cluster = Some(c);
                self.next_raft_id = self.next_raft_id.max(1);
                raft_id = Some(self.take_raft_id());
                self.insert_node((**node).clone(), cluster_addr.clone(), raft_id, v, at);
            }
            Op::AddNode { node, cluster_addr } => {
                if self.nodes.contains_key(&node.id) || self.removed.contains(&node.id) {
                    return Err(StoreError::Conflict(format!("node {} already exists", node.id)));
                }
                if node.is_manager() {
                    raft_id = Some(self.take_raft_id());
                }
                self.insert_node((**node).clone(), cluster_addr.clone(), raft_id, v, at);
            }
            Op::UpdateNodeSpec { id, version, spec } => {
                let rec = self.node_mut(id)?;
                if rec.node.version.index != *version {
                    return Err(StoreError::OutOfSequence);
                }
                let promote = spec.role == skep_api::docker::role::MANAGER && rec.raft_id.is_none();
                rec.node.spec = spec.clone();
                rec.node.version = v;
                rec.node.updated_at = at.clone();
                if promote {
                    let id = id.clone();
                    let r = self.take_raft_id();
                    self.nodes.get_mut(&id).expect("checked above").raft_id = Some(r);
                    raft_id = Some(r);
                }
            }
            Op::SetNodeStatus { id, state, message, addr } => {
                let rec = self.node_mut(id)?;
                rec.node.status.state = state.clone();
                rec.node.status.message = message.clone();
                if !addr.is_empty() {
                    rec.node.status.addr = addr.clone();
                }
                rec.node.version = v;
                rec.node.updated_at = at.clone();
            }
            Op::SetNodeDescription { id, description } => {
                let rec = self.node_mut(id)?;
                rec.node.description = (**description).clone();
                rec.node.version = v;
                rec.node.updated_at = at.clone();
            }
            Op::ClearRaftId { id } => {
                let rec = self.node_mut(id)?;
                rec.raft_id = None;
                rec.node.version = v;
            }
            Op::RemoveNode { id } => {
                if self.nodes.remove(id).is_none() {
                    return Err(StoreError::NotFound(format!("node {id} not found")));
                }
                self.removed.insert(id.clone());
            }
            Op::UpdateCluster { version, spec, tokens } => {
                let c = self.cluster.as_mut().ok_or_else(|| StoreError::Invalid("no swarm".into()))?;
                if c.info.version.index != *version {
                    return Err(StoreError::OutOfSequence);
                }
                c.info.spec = (**spec).clone();
                c.tokens = tokens.clone();
                c.info.version = v;
                c.info.updated_at = at.clone();
            }
            Op::KvPut { key, value } => {
                self.kv.insert(key.clone(), value.clone());
            }
        }
        Ok(Applied { index, raft_id })
    }

    fn take_raft_id(&mut self) -> u64 {
        let id = self.next_raft_id.max(1);
        self.next_raft_id = id + 1;
        id
    }

    fn insert_node(&mut self, mut node: Node, cluster_addr: String, raft_id: Option<u64>, v: ObjectVersion, at: &str) {
        node.version = v;
        node.created_at = at.to_string();
        node.updated_at = at.to_string();
        node.manager_status = None;
        let id = node.id.clone();
        self.nodes.insert(id, NodeRecord { node, raft_id, cluster_addr });
    }

    fn node_mut(&mut self, id: &str) -> Result<&mut NodeRecord, StoreError> {
        self.nodes.get_mut(id).ok_or_else(|| StoreError::NotFound(format!("node {id} not found")))
    }

    /// Resolve a node reference as Docker does: exact ID, then exact name (spec name or hostname), then unique ID
    /// prefix. Errors carry Docker's messages.
    pub fn resolve_node(&self, reference: &str) -> Result<&NodeRecord, ResolveError> {
        if let Some(n) = self.nodes.get(reference) {
            return Ok(n);
        }
        let by_name: Vec<_> = self.nodes.values().filter(|r| r.node.name() == reference).collect();
        match by_name.len() {
            1 => return Ok(by_name[0]),
            n if n > 1 => return Err(ResolveError::Ambiguous(format!("node {reference} is ambiguous ({n} matches found)"))),
            _ => {}
        }
        if reference.is_empty() {
            return Err(ResolveError::NotFound(format!("node {reference} not found")));
        }
        let by_prefix: Vec<_> = self.nodes.values().filter(|r| r.node.id.starts_with(reference)).collect();
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(ResolveError::NotFound(format!("node {reference} not found"))),
            n => Err(ResolveError::Ambiguous(format!("node {reference} is ambiguous ({n} matches found)"))),
        }
    }

    /// Managers by spec (including those whose promotion is still going on).
    pub fn managers(&self) -> impl Iterator<Item = &NodeRecord> {
        self.nodes.values().filter(|r| r.node.is_manager())
    }

    /// The node whose Raft ID is `raft_id`.
    pub fn node_by_raft_id(&self, raft_id: u64) -> Option<&NodeRecord> {
        self.nodes.values().find(|r| r.raft_id == Some(raft_id))
    }

    /// The API view of a node, with `ManagerStatus` filled in for managers: `leader_raft` is the current leader's Raft
    /// ID; reachability follows the node's heartbeats (a manager that stopped heartbeating is unreachable).
    pub fn node_view(&self, rec: &NodeRecord, leader_raft: Option<u64>) -> Node {
        let mut n = rec.node.clone();
        if rec.node.is_manager() && rec.raft_id.is_some() {
            let leader = leader_raft.is_some() && rec.raft_id == leader_raft;
            let reach = if leader || n.status.state == node_state::READY {
                reachability::REACHABLE
            } else if n.status.state == node_state::DOWN {
                reachability::UNREACHABLE
            } else {
                reachability::UNKNOWN
            };
            n.manager_status =
                Some(ManagerStatus { leader, reachability: reach.to_string(), addr: rec.cluster_addr.clone() });
        }
        n
    }
}

/// A reference that does not name exactly one object.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Nothing matches (404).
    #[error("{0}")]
    NotFound(String),
    /// Several match (400).
    #[error("{0}")]
    Ambiguous(String),
}
