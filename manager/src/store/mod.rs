//! The cluster store: the state every manager replicates through Raft, and the commands that change it.
//!
//! `apply` is a pure, deterministic function of (state, log index, command): everything that varies (IDs, times,
//! tokens, certificates) is decided by the proposer and carried inside the command, so every manager computes the same
//! state. Checks that depend on the current state (optimistic-concurrency `version`, existence, name clashes) are made
//! again at apply time, because only the applied order is linearizable.
//!
//! The state is held behind an `Arc` so readers take a consistent snapshot with one clone of a pointer. Its tables
//! are persistent maps (`imbl::OrdMap`): the copy `apply` makes while readers hold the previous version shares all
//! unchanged structure, so a write costs O(log n), not a copy of the store.

mod networks;
mod payloads;
#[cfg(test)]
mod tests;

pub use networks::{endpoint_mode, normalize_port, uses_ingress, NetworkRecord};
pub use payloads::{references, PayloadKind};

use serde::{Deserialize, Serialize};
use skep_api::docker::{
    ClusterInfo, JobStatus, JoinTokens, Labels, ManagerStatus, Network, Node, NodeDescription, NodeRole, NodeSpec, NodeState,
    ObjectVersion, Reachability, Secret, Service, ServiceSpec, SwarmSpec, Task, TaskState, TaskStatus, UpdateStatus,
};
/// A table of the store: an ordered persistent map (cheap to clone, O(log n) to change).
pub type Table<K, V> = imbl::OrdMap<K, V>;

/// Everything the managers agree on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// Log index of the last applied command: the store's global version.
    pub index: u64,
    /// The swarm, once initialised.
    pub cluster: Option<ClusterRecord>,
    /// Nodes by ID.
    pub nodes: Table<String, NodeRecord>,
    /// IDs of removed nodes: their certificates are refused on every RPC.
    pub removed: imbl::OrdSet<String>,
    /// Next Raft ID to hand out to a manager.
    pub next_raft_id: u64,
    /// Internal key-value records (benchmarks and bookkeeping); never shown by the Docker API.
    pub kv: Table<String, Vec<u8>>,
    /// Services by ID.
    #[serde(default)]
    pub services: Table<String, Service>,
    /// Tasks by ID (current and history).
    #[serde(default)]
    pub tasks: Table<String, Task>,
    /// Restart history per slot (`<service>/<slot>` or `<service>/node/<node>`): times of the restarts, kept here so
    /// that a leader change does not reset the restart policy's attempt count.
    #[serde(default)]
    pub restarts: Table<String, Vec<String>>,
    /// Swarm networks by ID, with their allocations.
    #[serde(default)]
    pub networks: Table<String, NetworkRecord>,
    /// Per service: the log index at which its task template last changed.
    #[serde(default)]
    pub template_index: Table<String, u64>,
    /// Per task: the template index of its service when the task was made from that template. With
    /// `template_index` it tells whether a task is up to date without comparing whole specs, which the orchestrators
    /// would otherwise do for every task on every round.
    #[serde(default)]
    pub task_template: Table<String, u64>,
    /// Per task: when it first reached `running` (the updater's monitor period counts from there; a task's status
    /// after it failed no longer says).
    #[serde(default)]
    pub running_at: Table<String, String>,
    /// Secrets by ID, with their data (in plaintext: see [`payloads`]).
    #[serde(default)]
    pub secrets: Table<String, Secret>,
    /// Configs by ID, with their data.
    #[serde(default)]
    pub configs: Table<String, Secret>,
    /// Results of recent requests that must apply at most once.
    #[serde(default)]
    pub requests: Requests,
    /// Managers that said in their heartbeat that their Raft has not caught up yet (restarted, or far behind): they
    /// are listed as unreachable until they say otherwise, because their API cannot serve yet.
    #[serde(default)]
    pub catching_up: imbl::OrdSet<String>,
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
    /// With autolock, the key (`SWMKEY-1-…`) every manager's data key and node key are encrypted with on its disk;
    /// empty without autolock.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unlock_key: String,
    /// A root CA rotation in progress (`swarm ca --rotate`): the root that signs node certificates until every node
    /// holds one of its certificates, when it becomes the trust root (see [`crate::ca::rotation`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_rotation: Option<RootRotation>,
}

/// The new root of a root CA rotation in progress.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RootRotation {
    /// The new root CA certificate, PEM.
    pub ca_cert_pem: String,
    /// Its key, PEM.
    pub ca_key_pem: String,
    /// The new root cross-signed by the current trust root: sent after every certificate the new root signs, so that
    /// nodes still trusting the current root accept them.
    pub cross_signed_pem: String,
    /// The cluster's `TLSInfo` while the rotation runs: the current trust root, the new root as the issuer.
    pub tls_info: skep_api::docker::TlsInfo,
}

/// A change to the root CA that `swarm update` asks for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RootCaChange {
    /// Start this rotation, replacing any in progress.
    Start(RootRotation),
    /// Cancel the rotation in progress; the cluster's `TLSInfo` becomes this (the trust root as the issuer).
    Cancel {
        /// The cluster's `TLSInfo` from now on.
        tls_info: skep_api::docker::TlsInfo,
    },
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
        /// The routing mesh's network (subnet chosen by the proposer).
        #[serde(default)]
        ingress: Option<Box<Network>>,
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
        state: NodeState,
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
    /// A manager's Raft data was found corrupt and is being rebuilt from the others: it gets a fresh Raft ID (the old
    /// one has left the membership, so its lost vote and log can never count again). Only while the node still
    /// holds `old`: a retried request changes nothing.
    ReseatRaftId {
        /// Node ID.
        id: String,
        /// The Raft ID whose data was lost.
        old: u64,
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
        /// The unlock key from now on (the proposer makes a new one when asked to, or on turning autolock on).
        #[serde(default)]
        unlock_key: String,
        /// A root CA rotation to start (`swarm ca --rotate`, replacing any in progress) or to cancel; `None`: no
        /// change.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        root_ca: Option<Box<RootCaChange>>,
    },
    /// The leader ends a root CA rotation once every node holds a certificate from the new root: the new root becomes
    /// the trust root and the join tokens change (they name the root's digest). Only if the rotation in progress is
    /// still the one to the root `ca_cert_pem`.
    FinishRootRotation {
        /// The new root's certificate, PEM (as in the rotation in progress).
        ca_cert_pem: String,
        /// The join tokens from now on, naming the new root.
        tokens: JoinTokens,
        /// The cluster's `TLSInfo` from now on.
        tls_info: skep_api::docker::TlsInfo,
    },
    /// `service create`: name uniqueness is checked again at apply time.
    CreateService {
        /// The service (ID, spec; version and times are set at apply).
        service: Box<Service>,
    },
    /// `service update` / scale: replace the spec if `version` still matches. `previous` becomes `PreviousSpec`.
    UpdateService {
        /// Service ID.
        id: String,
        /// The `Version.Index` the client read.
        version: u64,
        /// New spec.
        spec: Box<ServiceSpec>,
        /// Keep the old spec as `PreviousSpec` and reset `UpdateStatus` (a spec change, not a scale).
        spec_changed: bool,
    },
    /// Set a service's `UpdateStatus` (the updater's progress).
    SetUpdateStatus {
        /// Service ID.
        id: String,
        /// New status (`None` clears it).
        status: Option<UpdateStatus>,
    },
    /// Roll a service back to its previous spec (swarmkit's rollback). `version: Some` is a user's
    /// `service update --rollback` / `service rollback` (checked like an update; the specs swap and the rollback
    /// starts now); `None` is the updater's automatic rollback (the previous spec is used up, the update's start
    /// time kept).
    RollbackService {
        /// Service ID.
        id: String,
        /// The `Version.Index` the client read (manual rollbacks).
        version: Option<u64>,
        /// `UpdateStatus.Message`.
        message: String,
    },
    /// `service rm`.
    RemoveService {
        /// Service ID.
        id: String,
    },
    /// Create or replace tasks (orchestrators, scheduler). A replacement may not move `Status.State` backwards.
    PutTasks {
        /// Whole task objects.
        tasks: Vec<Task>,
    },
    /// Workers' status reports: applied only where they move the observed state forward (or keep it and add detail).
    ReportTaskStatus {
        /// `(task ID, status)`.
        updates: Vec<(String, TaskStatus)>,
    },
    /// The reaper deletes old tasks.
    DeleteTasks {
        /// Task IDs.
        ids: Vec<String>,
    },
    /// Remember a restart of a slot (restart policy bookkeeping); history longer than `keep` is trimmed.
    RecordRestart {
        /// `<service>/<slot>`.
        key: String,
        /// How many entries to keep.
        keep: usize,
    },
    /// `network create`: ID, subnet and gateway chosen by the proposer; name, overlap and VXLAN ID settled at apply.
    CreateNetwork {
        /// The network.
        network: Box<Network>,
    },
    /// `network rm`: refused while in use.
    RemoveNetwork {
        /// Network ID.
        id: String,
    },
    /// `secret create` / `config create`: the name is checked again at apply time.
    CreatePayload {
        /// Secret or config.
        kind: PayloadKind,
        /// The object with its data (version and times are set at apply).
        object: Box<Secret>,
    },
    /// `secret update` / `config update`: only the labels change, if `version` still matches.
    UpdatePayloadLabels {
        /// Secret or config.
        kind: PayloadKind,
        /// ID.
        id: String,
        /// The `Version.Index` the client read.
        version: u64,
        /// The new labels.
        labels: Labels,
    },
    /// `secret rm` / `config rm`: refused at apply time while a service references it.
    RemovePayload {
        /// Secret or config.
        kind: PayloadKind,
        /// ID.
        id: String,
    },
    /// Internal record.
    KvPut {
        /// Key.
        key: String,
        /// Value (base64 in the JSON of an entry, a third of the size of a list of numbers).
        #[serde(with = "base64_bytes")]
        value: Vec<u8>,
    },
    /// A manager's Raft caught up (`false`) or fell behind / restarted (`true`), as its heartbeat reports.
    SetManagerCatchingUp {
        /// Node ID.
        id: String,
        /// Whether it is catching up.
        catching_up: bool,
    },
    /// `op`, applied at most once per `request`: a write forwarded to a leader that died before it answered is sent
    /// again to the next leader, and if the first copy was committed after all, the second gets the first's result
    /// instead of applying twice (see [`Requests`]).
    Once {
        /// A random ID the proposer chose for this request.
        request: u64,
        /// What to do.
        op: Box<Op>,
    },
}

/// Results of the latest [`Op::Once`] requests, so that a request sent twice is applied once. Part of the replicated
/// state (and of snapshots), so every manager dedups alike and a new leader knows what its predecessor applied.
/// Bounded by count: a retry comes within seconds of the first copy (one forwarding timeout plus an election), and
/// at the highest write rates measured here (about 8 000 writes/s) [`Requests::KEPT`] covers more than ten.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Requests {
    results: imbl::HashMap<u64, ApplyResult>,
    order: imbl::Vector<u64>,
}

impl Requests {
    /// Requests remembered.
    pub const KEPT: usize = 100_000;

    /// The result of `request`, if it was applied recently.
    pub fn get(&self, request: u64) -> Option<ApplyResult> {
        self.results.get(&request).cloned()
    }

    fn record(&mut self, request: u64, result: ApplyResult) {
        if self.results.insert(request, result).is_none() {
            self.order.push_back(request);
        }
        while self.order.len() > Self::KEPT {
            if let Some(old) = self.order.pop_front() {
                self.results.remove(&old);
            }
        }
    }
}

/// Bytes as a base64 string in JSON.
mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map_err(serde::de::Error::custom)
    }
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
    /// A network cannot be removed while something uses it. (Added last: the variant index is its wire encoding.)
    #[error("rpc error: code = FailedPrecondition desc = network {network} is in use by {by}")]
    InUse {
        /// The network's ID.
        network: String,
        /// What uses it.
        by: NetworkUser,
    },
}

/// What keeps a network in use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum NetworkUser {
    /// A service names it (or publishes ports, for the ingress network), by service ID. It stays in use until the
    /// service is removed or updated.
    Service(String),
    /// A task that has not stopped yet holds an address on it, by task ID. The address is freed once the task stops:
    /// worth waiting for when the task's service was just removed.
    Task(String),
}

impl std::fmt::Display for NetworkUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetworkUser::Service(id) => write!(f, "service {id}"),
            NetworkUser::Task(id) => write!(f, "task {id}"),
        }
    }
}

/// The result type the state machine returns for every entry.
pub type ApplyResult = Result<Applied, StoreError>;

impl ClusterState {
    /// Apply `cmd` at log `index`. Refused commands leave the state unchanged (but still advance `index`).
    pub fn apply(&mut self, index: u64, cmd: &Command) -> ApplyResult {
        self.index = index;
        match &cmd.op {
            Op::Once { request, op } => {
                if let Some(r) = self.requests.get(*request) {
                    return r;
                }
                let r = self.apply_op(index, &cmd.at, op);
                self.requests.record(*request, r.clone());
                r
            }
            op => self.apply_op(index, &cmd.at, op),
        }
    }

    fn apply_op(&mut self, index: u64, at: &str, op: &Op) -> ApplyResult {
        let v = ObjectVersion { index };
        let mut raft_id = None;
        match op {
            Op::Once { .. } => return Err(StoreError::Invalid("a request inside a request".into())),
            Op::Init { cluster, node, cluster_addr, ingress } => {
                if self.cluster.is_some() {
                    return Err(StoreError::Conflict("swarm already initialised".into()));
                }
                let mut c = (**cluster).clone();
                c.info.version = v;
                c.info.created_at = at.to_owned();
                c.info.updated_at = at.to_owned();
                self.cluster = Some(c);
                self.next_raft_id = self.next_raft_id.max(1);
                raft_id = Some(self.take_raft_id());
                self.insert_node((**node).clone(), cluster_addr.clone(), raft_id, v, at);
                if let Some(n) = ingress {
                    self.create_network((**n).clone(), at)?;
                }
            }
            Op::AddNode { node, cluster_addr } => {
                if self.nodes.contains_key(&node.id) || self.removed.contains(&node.id) {
                    return Err(StoreError::Conflict(format!("node {} already exists", node.id)));
                }
                if node.is_manager() {
                    raft_id = Some(self.take_raft_id());
                }
                self.insert_node((**node).clone(), cluster_addr.clone(), raft_id, v, at);
                self.allocate_node_ip(&node.id);
            }
            Op::UpdateNodeSpec { id, version, spec } => {
                let rec = self.node_mut(id)?;
                if rec.node.version.index != *version {
                    return Err(StoreError::OutOfSequence);
                }
                let promote = spec.role == NodeRole::Manager && rec.raft_id.is_none();
                rec.node.spec = spec.clone();
                rec.node.version = v;
                rec.node.updated_at = at.to_owned();
                if promote {
                    let id = id.clone();
                    let r = self.take_raft_id();
                    self.nodes.get_mut(&id).expect("checked above").raft_id = Some(r);
                    raft_id = Some(r);
                }
            }
            Op::SetNodeStatus { id, state, message, addr } => {
                let rec = self.node_mut(id)?;
                rec.node.status.state = *state;
                rec.node.status.message = message.clone();
                if !addr.is_empty() {
                    rec.node.status.addr = addr.clone();
                }
                rec.node.version = v;
                rec.node.updated_at = at.to_owned();
            }
            Op::SetNodeDescription { id, description } => {
                let rec = self.node_mut(id)?;
                rec.node.description = (**description).clone();
                rec.node.version = v;
                rec.node.updated_at = at.to_owned();
            }
            Op::ClearRaftId { id } => {
                let rec = self.node_mut(id)?;
                rec.raft_id = None;
                rec.node.version = v;
            }
            Op::ReseatRaftId { id, old } => {
                let rec = self.node_mut(id)?;
                if rec.node.spec.role != NodeRole::Manager || rec.raft_id != Some(*old) {
                    return Err(StoreError::Invalid(format!("node {id} is not a manager with raft id {old}")));
                }
                let r = self.take_raft_id();
                let rec = self.nodes.get_mut(id).expect("checked above");
                rec.raft_id = Some(r);
                rec.node.version = v;
                raft_id = Some(r);
            }
            Op::RemoveNode { id } => {
                if self.nodes.remove(id).is_none() {
                    return Err(StoreError::NotFound(format!("node {id} not found")));
                }
                self.removed.insert(id.clone());
                self.catching_up.remove(id);
                self.release_node_ips(id);
            }
            Op::UpdateCluster { version, spec, tokens, unlock_key, root_ca } => {
                let c = self.cluster.as_mut().ok_or_else(|| StoreError::Invalid("no swarm".into()))?;
                if c.info.version.index != *version {
                    return Err(StoreError::OutOfSequence);
                }
                c.info.spec = (**spec).clone();
                c.tokens = tokens.clone();
                c.unlock_key = unlock_key.clone();
                match root_ca.as_deref() {
                    Some(RootCaChange::Start(r)) => {
                        c.info.tls_info = r.tls_info.clone();
                        c.info.root_rotation_in_progress = true;
                        c.root_rotation = Some(r.clone());
                    }
                    Some(RootCaChange::Cancel { tls_info }) => {
                        c.info.tls_info = tls_info.clone();
                        c.info.root_rotation_in_progress = false;
                        c.root_rotation = None;
                    }
                    None => {}
                }
                c.info.version = v;
                c.info.updated_at = at.to_owned();
            }
            Op::FinishRootRotation { ca_cert_pem, tokens, tls_info } => {
                let c = self.cluster.as_mut().ok_or_else(|| StoreError::Invalid("no swarm".into()))?;
                let r = match c.root_rotation.take() {
                    Some(r) if r.ca_cert_pem == *ca_cert_pem => r,
                    other => {
                        c.root_rotation = other;
                        return Err(StoreError::Conflict("the root CA rotation to finish is no longer in progress".into()));
                    }
                };
                c.ca_cert_pem = r.ca_cert_pem;
                c.ca_key_pem = r.ca_key_pem;
                c.tokens = tokens.clone();
                c.info.tls_info = tls_info.clone();
                c.info.root_rotation_in_progress = false;
                c.info.version = v;
                c.info.updated_at = at.to_owned();
            }
            Op::CreateNetwork { network } => self.create_network((**network).clone(), at)?,
            Op::RemoveNetwork { id } => self.remove_network(id)?,
            Op::SetManagerCatchingUp { id, catching_up } => {
                self.node_mut(id)?;
                if *catching_up {
                    self.catching_up.insert(id.clone());
                } else {
                    self.catching_up.remove(id);
                }
            }
            Op::KvPut { key, value } => {
                self.kv.insert(key.clone(), value.clone());
            }
            Op::CreatePayload { kind, object } => self.create_payload(*kind, (**object).clone(), v, at)?,
            Op::UpdatePayloadLabels { kind, id, version, labels } => {
                self.update_payload_labels(*kind, id, *version, labels, v, at)?
            }
            Op::RemovePayload { kind, id } => self.remove_payload(*kind, id)?,
            Op::CreateService { service } => {
                if self.services.contains_key(&service.id) {
                    return Err(StoreError::Conflict(format!("service {} already exists", service.id)));
                }
                if self.services.values().any(|s| s.spec.name == service.spec.name) {
                    return Err(StoreError::Conflict(format!(
                        "rpc error: code = AlreadyExists desc = name conflicts with an existing object: service {} already exists",
                        service.spec.name
                    )));
                }
                self.check_references(&service.spec)?;
                let mut svc = (**service).clone();
                self.allocate_endpoint(&mut svc, None)?;
                self.template_index.insert(svc.id.clone(), index);
                if svc.spec.mode.is_job() {
                    svc.job_status = Some(JobStatus { job_iteration: v, last_execution: at.to_owned() });
                }
                svc.version = v;
                svc.created_at = at.to_owned();
                svc.updated_at = at.to_owned();
                self.services.insert(svc.id.clone(), svc);
            }
            Op::UpdateService { id, version, spec, spec_changed } => {
                let mut svc =
                    self.services.get(id).cloned().ok_or_else(|| StoreError::NotFound(format!("service {id} not found")))?;
                if svc.version.index != *version {
                    return Err(StoreError::OutOfSequence);
                }
                self.check_references(spec)?;
                // every update keeps the spec it replaces, a scale too (swarmkit's UpdateService): a rollback
                // after a scale undoes the scale, as in Docker
                svc.previous_spec = Some(std::mem::replace(&mut svc.spec, (**spec).clone()));
                // a new spec starts a new update; any update also resumes a paused one (swarmkit clears the status on
                // every update)
                let paused = svc.update_status.as_ref().is_some_and(|u| u.state == "paused" || u.state == "rollback_paused");
                if *spec_changed || paused {
                    svc.update_status = None;
                }
                let old = svc.endpoint.take();
                self.allocate_endpoint(&mut svc, old.as_ref())?;
                let template_changed = match (&svc.previous_spec, *spec_changed) {
                    (Some(prev), true) => prev.task_template != svc.spec.task_template,
                    _ => false,
                };
                // every update of a job runs it again (swarmkit: a new JobIteration)
                if svc.spec.mode.is_job() {
                    svc.job_status = Some(JobStatus { job_iteration: v, last_execution: at.to_owned() });
                }
                let restamp = template_changed || !self.template_index.contains_key(id);
                if restamp {
                    self.template_index.insert(id.clone(), index);
                }
                svc.version = v;
                svc.updated_at = at.to_owned();
                self.services.insert(id.clone(), svc);
                if restamp {
                    self.restamp_templates(id, index);
                }
            }
            Op::SetUpdateStatus { id, status } => {
                let svc = self.services.get_mut(id).ok_or_else(|| StoreError::NotFound(format!("service {id} not found")))?;
                svc.update_status = status.clone();
                svc.version = v;
                svc.updated_at = at.to_owned();
            }
            Op::RollbackService { id, version, message } => {
                let mut svc =
                    self.services.get(id).cloned().ok_or_else(|| StoreError::NotFound(format!("service {id} not found")))?;
                if version.is_some_and(|v| v != svc.version.index) {
                    return Err(StoreError::OutOfSequence);
                }
                let Some(previous) = svc.previous_spec.take() else {
                    return Err(StoreError::Invalid(format!("service {id} does not have a previous spec")));
                };
                let template_changed = previous.task_template != svc.spec.task_template;
                let current = std::mem::replace(&mut svc.spec, previous);
                let started_at = match (version, &svc.update_status) {
                    (None, Some(u)) if !u.started_at.is_empty() => u.started_at.clone(),
                    _ => at.to_owned(),
                };
                if version.is_some() {
                    svc.previous_spec = Some(current);
                }
                svc.update_status = Some(UpdateStatus {
                    state: "rollback_started".into(),
                    started_at,
                    completed_at: String::new(),
                    message: message.clone(),
                });
                let old = svc.endpoint.take();
                self.allocate_endpoint(&mut svc, old.as_ref())?;
                if template_changed {
                    self.template_index.insert(id.clone(), index);
                }
                svc.version = v;
                svc.updated_at = at.to_owned();
                self.services.insert(id.clone(), svc);
                if template_changed {
                    self.restamp_templates(id, index);
                }
            }
            Op::RemoveService { id } => {
                let Some(svc) = self.services.remove(id) else {
                    return Err(StoreError::NotFound(format!("service {id} not found")));
                };
                if let Some(ep) = &svc.endpoint {
                    self.release_endpoint(ep);
                }
                self.template_index.remove(id);
                let prefix = format!("{id}/");
                let gone: Vec<String> = self.restarts.keys().filter(|k| k.starts_with(&prefix)).cloned().collect();
                for k in gone {
                    self.restarts.remove(&k);
                }
            }
            Op::PutTasks { tasks } => {
                for t in tasks {
                    let mut t = t.clone();
                    if let Some(old) = self.tasks.get(&t.id) {
                        // observed state never moves backwards; keep the newer status
                        if t.status.state < old.status.state {
                            t.status = old.status.clone();
                        }
                        // desired state only moves forward too (running → shutdown → remove)
                        if t.desired_state < old.desired_state {
                            t.desired_state = old.desired_state;
                        }
                        t.created_at = old.created_at.to_owned();
                        // addresses and host-mode ports belong to the allocator, not to the proposer's copy
                        t.networks_attachments = old.networks_attachments.clone();
                        if t.status.port_status.is_none() {
                            t.status.port_status = old.status.port_status.clone();
                        }
                        if !old.status.state.is_terminal() && t.status.state.is_terminal() {
                            self.release_task(&t);
                        }
                    } else {
                        t.created_at = at.to_owned();
                        t.networks_attachments.clear();
                        self.allocate_task(&mut t);
                        if let (Some(svc), Some(ix)) = (self.services.get(&t.service_id), self.template_index.get(&t.service_id)) {
                            if t.spec == svc.spec.task_template {
                                self.task_template.insert(t.id.clone(), *ix);
                            }
                        }
                    }
                    let was = self.tasks.get(&t.id).map_or(TaskState::New, |o| o.status.state);
                    if was < TaskState::Running && t.status.state >= TaskState::Running {
                        self.running_at.insert(t.id.clone(), at.to_owned());
                    }
                    t.version = v;
                    t.updated_at = at.to_owned();
                    self.tasks.insert(t.id.clone(), t);
                }
            }
            Op::ReportTaskStatus { updates } => {
                for (id, st) in updates {
                    let mut freed = None;
                    if let Some(t) = self.tasks.get_mut(id) {
                        if st.state >= t.status.state {
                            if !t.status.state.is_terminal() && st.state.is_terminal() {
                                freed = Some(t.clone());
                            }
                            if t.status.state < TaskState::Running && st.state >= TaskState::Running {
                                self.running_at.insert(id.clone(), at.to_owned());
                            }
                            let ports = t.status.port_status.take();
                            t.status = st.clone();
                            // the allocator's host-mode ports stay unless the node reports its own
                            if t.status.port_status.is_none() {
                                t.status.port_status = ports;
                            }
                            t.version = v;
                            t.updated_at = at.to_owned();
                        }
                    }
                    if let Some(t) = freed {
                        self.release_task(&t);
                    }
                }
            }
            Op::DeleteTasks { ids } => {
                for id in ids {
                    self.task_template.remove(id);
                    self.running_at.remove(id);
                    if let Some(t) = self.tasks.remove(id) {
                        if !t.status.state.is_terminal() {
                            self.release_task(&t);
                        }
                    }
                }
            }
            Op::RecordRestart { key, keep } => {
                let h = self.restarts.entry(key.clone()).or_default();
                h.push(at.to_owned());
                let excess = h.len().saturating_sub((*keep).max(1));
                h.drain(..excess);
            }
        }
        Ok(Applied { index, raft_id })
    }

    /// After a service's template changed at `index`: its live tasks whose spec is the new template (made from it
    /// before, as after a rollback to the spec they run) are up to date again, as swarmkit's spec comparison says.
    fn restamp_templates(&mut self, service_id: &str, index: u64) {
        let Some(template) = self.services.get(service_id).map(|s| s.spec.task_template.clone()) else { return };
        let same: Vec<String> = self
            .tasks
            .values()
            .filter(|t| t.service_id == service_id && t.desired_state <= TaskState::Running && t.spec == template)
            .map(|t| t.id.clone())
            .collect();
        for id in same {
            self.task_template.insert(id, index);
        }
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

    /// Resolve a service reference: exact ID, exact name, unique ID prefix.
    pub fn resolve_service(&self, reference: &str) -> Result<&Service, ResolveError> {
        if let Some(s) = self.services.get(reference) {
            return Ok(s);
        }
        if let Some(s) = self.services.values().find(|s| s.spec.name == reference) {
            return Ok(s);
        }
        let by_prefix: Vec<_> = if reference.is_empty() {
            vec![]
        } else {
            self.services.values().filter(|s| s.id.starts_with(reference)).collect()
        };
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(ResolveError::NotFound(format!("service {reference} not found"))),
            n => Err(ResolveError::Ambiguous(format!("service {reference} is ambiguous ({n} matches found)"))),
        }
    }

    /// A task by ID or unique ID prefix.
    pub fn resolve_task(&self, reference: &str) -> Result<&Task, ResolveError> {
        if let Some(t) = self.tasks.get(reference) {
            return Ok(t);
        }
        let by_prefix: Vec<_> =
            if reference.is_empty() { vec![] } else { self.tasks.values().filter(|t| t.id.starts_with(reference)).collect() };
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(ResolveError::NotFound(format!("task {reference} not found"))),
            n => Err(ResolveError::Ambiguous(format!("task {reference} is ambiguous ({n} matches found)"))),
        }
    }

    /// Tasks of a service.
    pub fn service_tasks<'a>(&'a self, service_id: &'a str) -> impl Iterator<Item = &'a Task> + 'a {
        self.tasks.values().filter(move |t| t.service_id == service_id)
    }

    /// Tasks that hold a place on a node: assigned and not yet terminal, with desired state running.
    pub fn is_task_active(t: &Task) -> bool {
        !t.status.state.is_terminal() && t.desired_state <= TaskState::Running
    }

    /// The node whose Raft ID is `raft_id`.
    pub fn node_by_raft_id(&self, raft_id: u64) -> Option<&NodeRecord> {
        self.nodes.values().find(|r| r.raft_id == Some(raft_id))
    }

    /// The API view of a node, with `ManagerStatus` filled in for managers: `leader_raft` is the current leader's Raft
    /// ID; reachability follows the node's heartbeats (a manager that stopped heartbeating is unreachable).
    pub fn node_view(&self, rec: &NodeRecord, leader_raft: Option<u64>) -> Node {
        let mut n = rec.node.clone();
        if rec.node.is_manager() && rec.raft_id.is_none() {
            // listed as a manager but outside the Raft membership: a manager lost before `--force-new-cluster`
            let addr = rec.cluster_addr.clone();
            n.manager_status = Some(ManagerStatus { leader: false, reachability: Reachability::Unreachable, addr });
        } else if rec.node.is_manager() {
            let leader = leader_raft.is_some() && rec.raft_id == leader_raft;
            let reachability = if leader || (n.status.state == NodeState::Ready && !self.catching_up.contains(&n.id)) {
                Reachability::Reachable
            } else if n.status.state == NodeState::Down || self.catching_up.contains(&n.id) {
                Reachability::Unreachable
            } else {
                Reachability::Unknown
            };
            n.manager_status = Some(ManagerStatus { leader, reachability, addr: rec.cluster_addr.clone() });
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
