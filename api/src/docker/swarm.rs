//! The swarm (cluster) object, its spec and the init/join/update requests.

use super::{null_default, Labels, ObjectVersion};
use serde::{Deserialize, Serialize};

/// `Spec` of the swarm: cluster-wide settings. Zero values mean "use the default" (see [`SwarmSpec::with_defaults`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SwarmSpec {
    /// Always "default" in Docker.
    pub name: String,
    /// User labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// Task history and other orchestration knobs.
    pub orchestration: OrchestrationConfig,
    /// Raft timing and snapshot knobs.
    pub raft: RaftConfig,
    /// Worker heartbeat period.
    pub dispatcher: DispatcherConfig,
    /// Certificate settings.
    #[serde(rename = "CAConfig")]
    pub ca_config: CaConfig,
    /// Defaults for tasks (a log driver).
    pub task_defaults: TaskDefaults,
    /// Autolock.
    pub encryption_config: EncryptionConfig,
}

/// `Spec.Orchestration`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct OrchestrationConfig {
    /// Old tasks kept per slot (default 5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_history_retention_limit: Option<i64>,
}

/// `Spec.TaskDefaults`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskDefaults {
    /// The log driver of tasks that name none (refused by skep unless empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<super::Driver>,
}

/// `Spec.Raft`. skep's Raft runs on a 100 ms tick: `ElectionTick` 10 is a 1 s election timeout (swarmkit: 10 s).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RaftConfig {
    /// Log entries between snapshots.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub snapshot_interval: u64,
    /// Old snapshots kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_old_snapshots: Option<u64>,
    /// Entries kept for slow followers after a snapshot.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub log_entries_for_slow_followers: u64,
    /// Ticks without a leader before an election.
    pub election_tick: i64,
    /// Ticks between leader heartbeats.
    pub heartbeat_tick: i64,
}

/// `Spec.Dispatcher`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct DispatcherConfig {
    /// Node heartbeat period in nanoseconds. A node is marked down after three missed periods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_period: Option<i64>,
}

/// `Spec.CAConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct CaConfig {
    /// Node certificate validity in nanoseconds (default 90 days, at least 1 hour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_cert_expiry: Option<i64>,
    /// External CAs: not supported by skep; kept as sent so the CLI round-trips it.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "ExternalCAs")]
    pub external_cas: Option<serde_json::Value>,
    /// A new root CA certificate to rotate to (`swarm ca --rotate --ca-cert`), with its key below; never stored or
    /// shown again. Without the key (an external CA) it is refused.
    #[serde(rename = "SigningCACert", skip_serializing_if = "super::is_empty_str")]
    pub signing_ca_cert: String,
    /// The key of `SigningCACert` (`--ca-key`).
    #[serde(rename = "SigningCAKey", skip_serializing_if = "super::is_empty_str")]
    pub signing_ca_key: String,
    /// Bumped by `swarm ca --rotate`.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub force_rotate: i64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// `Spec.EncryptionConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EncryptionConfig {
    /// Autolock: a restarted manager needs the unlock key before it serves (see `docs/design/security.md`).
    pub auto_lock_managers: bool,
}

/// Defaults skep applies (faster than swarmkit's; see docs/design/architecture.md).
pub mod defaults {
    /// Heartbeat period: 1 s (swarmkit: 5 s). A node is down after 3 missed periods.
    pub const HEARTBEAT_PERIOD_NS: i64 = 1_000_000_000;
    /// Node certificate validity: 90 days.
    pub const NODE_CERT_EXPIRY_NS: i64 = 90 * 24 * 3600 * 1_000_000_000;
    /// Minimum node certificate validity: 1 hour.
    pub const MIN_NODE_CERT_EXPIRY_NS: i64 = 3600 * 1_000_000_000;
    /// Task history per slot.
    pub const TASK_HISTORY: i64 = 5;
    /// Raft snapshot interval in entries.
    pub const SNAPSHOT_INTERVAL: u64 = 10_000;
    /// Entries kept for slow followers.
    pub const LOG_ENTRIES_FOR_SLOW_FOLLOWERS: u64 = 500;
    /// Raft election timeout in ticks (a tick is 100 ms in skep).
    pub const ELECTION_TICK: i64 = 10;
    /// Raft heartbeat in ticks.
    pub const HEARTBEAT_TICK: i64 = 1;
    /// Raft tick length in milliseconds.
    pub const RAFT_TICK_MS: u64 = 100;
    /// VXLAN data path port.
    pub const DATA_PATH_PORT: u32 = 4789;
    /// Cluster (QUIC) port.
    pub const CLUSTER_PORT: u16 = 2377;
}

impl SwarmSpec {
    /// The spec with every zero value replaced by its default, as swarmkit stores it.
    pub fn with_defaults(mut self) -> SwarmSpec {
        use defaults::*;
        if self.name.is_empty() {
            self.name = "default".into();
        }
        let o = &mut self.orchestration;
        if o.task_history_retention_limit.is_none() {
            o.task_history_retention_limit = Some(TASK_HISTORY);
        }
        let r = &mut self.raft;
        if r.snapshot_interval == 0 {
            r.snapshot_interval = SNAPSHOT_INTERVAL;
        }
        if r.keep_old_snapshots.is_none() {
            r.keep_old_snapshots = Some(0);
        }
        if r.log_entries_for_slow_followers == 0 {
            r.log_entries_for_slow_followers = LOG_ENTRIES_FOR_SLOW_FOLLOWERS;
        }
        if r.election_tick == 0 {
            r.election_tick = ELECTION_TICK;
        }
        if r.heartbeat_tick == 0 {
            r.heartbeat_tick = HEARTBEAT_TICK;
        }
        if self.dispatcher.heartbeat_period.unwrap_or(0) == 0 {
            self.dispatcher.heartbeat_period = Some(HEARTBEAT_PERIOD_NS);
        }
        if self.ca_config.node_cert_expiry.unwrap_or(0) == 0 {
            self.ca_config.node_cert_expiry = Some(NODE_CERT_EXPIRY_NS);
        }
        self
    }

    /// The spec as Docker stores a `swarm update`: zero values stay zero (the runtime reads them as defaults, see
    /// [`SwarmSpec::heartbeat_period_ns`]), only their JSON shape is Docker's: an absent history limit reads 0, a zero
    /// duration is omitted.
    pub fn as_updated(mut self) -> SwarmSpec {
        if self.name.is_empty() {
            self.name = "default".into();
        }
        self.orchestration.task_history_retention_limit.get_or_insert(0);
        self.raft.keep_old_snapshots.get_or_insert(0);
        if self.dispatcher.heartbeat_period == Some(0) {
            self.dispatcher.heartbeat_period = None;
        }
        if self.ca_config.node_cert_expiry == Some(0) {
            self.ca_config.node_cert_expiry = None;
        }
        self
    }

    /// Heartbeat period in nanoseconds, defaulted.
    pub fn heartbeat_period_ns(&self) -> i64 {
        match self.dispatcher.heartbeat_period {
            Some(p) if p > 0 => p,
            _ => defaults::HEARTBEAT_PERIOD_NS,
        }
    }

    /// Node certificate validity in nanoseconds, defaulted.
    pub fn node_cert_expiry_ns(&self) -> i64 {
        match self.ca_config.node_cert_expiry {
            Some(p) if p > 0 => p,
            _ => defaults::NODE_CERT_EXPIRY_NS,
        }
    }
}

/// `TLSInfo`: the root of trust, as `docker swarm ca` and `node inspect` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TlsInfo {
    /// Root CA certificate, PEM.
    pub trust_root: String,
    /// Issuer subject, base64 of DER.
    pub cert_issuer_subject: String,
    /// Issuer public key, base64 of DER.
    pub cert_issuer_public_key: String,
}

/// The swarm as `GET /info` shows it in `Swarm.Cluster` (no join tokens).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ClusterInfo {
    /// Cluster ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Store version.
    pub version: ObjectVersion,
    /// Creation time.
    pub created_at: String,
    /// Last update time.
    pub updated_at: String,
    /// Settings.
    pub spec: SwarmSpec,
    /// Root of trust.
    #[serde(rename = "TLSInfo")]
    pub tls_info: TlsInfo,
    /// Whether a root CA rotation is going on (`swarm ca --rotate`, until every node has moved to the new root).
    pub root_rotation_in_progress: bool,
    /// Address pools for overlay networks.
    #[serde(deserialize_with = "null_default")]
    pub default_addr_pool: Vec<String>,
    /// Prefix length of each network's subnet.
    pub subnet_size: u32,
    /// VXLAN UDP port.
    pub data_path_port: u32,
}

/// `GET /swarm`: the cluster plus its join tokens (managers only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Swarm {
    /// Everything but the tokens.
    #[serde(flatten)]
    pub cluster: ClusterInfo,
    /// The current join tokens.
    pub join_tokens: JoinTokens,
}

/// The two join tokens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JoinTokens {
    /// Token a worker joins with.
    pub worker: String,
    /// Token a manager joins with.
    pub manager: String,
}

/// `POST /swarm/init`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct InitRequest {
    /// Where the cluster port listens (`0.0.0.0:2377`).
    pub listen_addr: String,
    /// Address other nodes reach this one at (`IP` or `IP:port`).
    pub advertise_addr: String,
    /// Data path address (overlay traffic); defaults to the advertise address.
    pub data_path_addr: String,
    /// VXLAN port; 0 means 4789.
    pub data_path_port: u32,
    /// Recover a single-manager cluster from this node's state.
    pub force_new_cluster: bool,
    /// Initial settings.
    pub spec: SwarmSpec,
    /// Autolock (`swarm init --autolock`): the same as the spec's `EncryptionConfig.AutoLockManagers`.
    pub auto_lock_managers: bool,
    /// Availability of this node: "", active, pause, drain.
    pub availability: String,
    /// Address pools.
    #[serde(deserialize_with = "null_default")]
    pub default_addr_pool: Vec<String>,
    /// Subnet prefix length; 0 means 24.
    pub subnet_size: u32,
}

/// `POST /swarm/join`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JoinRequest {
    /// Where this node's cluster port listens.
    pub listen_addr: String,
    /// Address other nodes reach this one at.
    pub advertise_addr: String,
    /// Data path address.
    pub data_path_addr: String,
    /// Managers to join through (`IP:port`).
    #[serde(deserialize_with = "null_default")]
    pub remote_addrs: Vec<String>,
    /// Worker or manager token.
    pub join_token: String,
    /// Availability of this node.
    pub availability: String,
}

/// Query of `POST /swarm/update`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SwarmUpdateFlags {
    /// `version=`: the Version.Index the client read.
    pub version: Option<String>,
    /// Make a new worker token.
    pub rotate_worker_token: Option<String>,
    /// Make a new manager token.
    pub rotate_manager_token: Option<String>,
    /// Rotate the unlock key (autolock).
    pub rotate_manager_unlock_key: Option<String>,
}

/// `POST /swarm/unlock`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UnlockRequest {
    /// `SWMKEY-1-…`.
    pub unlock_key: String,
}

/// `GET /swarm/unlockkey`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UnlockKeyResponse {
    /// `SWMKEY-1-…`, empty when autolock is off.
    pub unlock_key: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_request_as_the_cli_sends_it_decodes() {
        let body = r#"{"ListenAddr":"0.0.0.0:2377","AdvertiseAddr":"192.168.1.10","DataPathAddr":"","DataPathPort":0,
       "ForceNewCluster":false,"Spec":{"Labels":null,"Orchestration":{},"Raft":{"ElectionTick":0,"HeartbeatTick":0},
       "Dispatcher":{},"CAConfig":{},"TaskDefaults":{},"EncryptionConfig":{"AutoLockManagers":false}},
       "AutoLockManagers":false,"Availability":"","DefaultAddrPool":[],"SubnetSize":24}"#;
        let req: InitRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.advertise_addr, "192.168.1.10");
        let spec = req.spec.with_defaults();
        assert_eq!(spec.raft.election_tick, 10);
        assert_eq!(spec.dispatcher.heartbeat_period, Some(defaults::HEARTBEAT_PERIOD_NS));
        assert_eq!(spec.orchestration.task_history_retention_limit, Some(5));
    }

    #[test]
    fn swarm_serializes_with_go_names() {
        let s = Swarm {
            cluster: ClusterInfo { id: "c".into(), ..Default::default() },
            join_tokens: JoinTokens { worker: "w".into(), manager: "m".into() },
        };
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["ID"], "c");
        assert_eq!(v["JoinTokens"]["Worker"], "w");
        assert!(v["TLSInfo"].is_object());
        assert!(v["Spec"]["CAConfig"].is_object());
        assert!(v["Spec"]["Labels"].is_object());
    }
}
