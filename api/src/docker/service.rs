//! Services (spec = intent) and tasks (one-shot units the orchestrators create from a service).
//!
//! Fields skep does not model yet are kept in `extra` maps (`#[serde(flatten)]`), so a spec the CLI sends comes back
//! unchanged from `inspect`. These shapes only travel as JSON (API, store commands, and as JSON bytes on the wire).

use super::{is_empty_str, null_default, EndpointVirtualIp, Labels, NetworkAttachmentConfig, ObjectVersion, Platform};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Unmodelled fields, kept verbatim.
pub type Extra = BTreeMap<String, serde_json::Value>;

/// `Spec` of a service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceSpec {
    /// Service name.
    pub name: String,
    /// Service labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// What each task runs.
    pub task_template: TaskSpec,
    /// Replicated or global.
    pub mode: ServiceMode,
    /// Rolling update settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    /// Rollback settings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// Ports and endpoint mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
    /// Anything else.
    #[serde(flatten)]
    pub extra: Extra,
}

/// `TaskTemplate` / a task's `Spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskSpec {
    /// The container (or process) to run. Always present in what skep returns (the CLI crashes without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_spec: Option<ContainerSpec>,
    /// Limits and reservations.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// When to replace a task that stopped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Constraints, preferences, platforms, max replicas per node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Networks to attach.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachmentConfig>,
    /// Bumped by `service update --force` to replace tasks without a spec change.
    pub force_update: u64,
    /// `container` (the default).
    #[serde(skip_serializing_if = "is_empty_str")]
    pub runtime: String,
    /// Anything else (LogDriver, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `ContainerSpec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerSpec {
    /// Image reference; for the process engine, the program (a path or a name on PATH).
    pub image: String,
    /// Container labels.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Entrypoint override.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Arguments.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Hostname.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub hostname: String,
    /// `K=V` environment.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// Working directory.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub dir: String,
    /// `user[:group]`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub user: String,
    /// Signal to stop with (default SIGTERM).
    #[serde(skip_serializing_if = "is_empty_str")]
    pub stop_signal: String,
    /// Nanoseconds between the stop signal and SIGKILL (default 10 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    /// Allocate a TTY.
    #[serde(rename = "TTY", skip_serializing_if = "super::is_false")]
    pub tty: bool,
    /// Anything else (Init, DNSConfig, Mounts, Secrets, Configs, Privileges, ...).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `Resources`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ResourceRequirements {
    /// Enforced by the engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceAmounts>,
    /// Used by the scheduler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceAmounts>,
}

/// CPU and memory amounts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ResourceAmounts {
    /// CPUs × 10⁹.
    #[serde(rename = "NanoCPUs", skip_serializing_if = "super::is_zero")]
    pub nano_cpus: i64,
    /// Bytes.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub memory_bytes: i64,
    /// Anything else (Pids, GenericResources).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `RestartPolicy`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RestartPolicy {
    /// `none`, `on-failure`, `any` (default).
    #[serde(skip_serializing_if = "is_empty_str")]
    pub condition: String,
    /// Nanoseconds between restarts (default 5 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<i64>,
    /// 0 = unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    /// Nanoseconds over which attempts are counted (0 = forever).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<i64>,
}

/// `Placement`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Placement {
    /// `node.labels.zone==a`, ...
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    /// `[{"Spread": {"SpreadDescriptor": "node.labels.zone"}}]`.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub preferences: Vec<PlacementPreference>,
    /// At most this many tasks of the service per node (0 = no limit).
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub max_replicas: u64,
    /// Platforms the image supports.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// One placement preference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PlacementPreference {
    /// Spread over the values of a label.
    pub spread: SpreadOver,
}

/// `Spread`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SpreadOver {
    /// `node.labels.zone`.
    pub spread_descriptor: String,
}

/// `Mode`: exactly one of the variants is set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceMode {
    /// `{"Replicas": N}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated: Option<ReplicatedMode>,
    /// `{}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global: Option<serde_json::Value>,
    /// Jobs (not supported yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated_job: Option<serde_json::Value>,
    /// Jobs (not supported yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_job: Option<serde_json::Value>,
}

/// `Replicated`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ReplicatedMode {
    /// Number of tasks; absent means 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u64>,
}

/// `UpdateConfig` / `RollbackConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UpdateConfig {
    /// Tasks updated at once (0 = all).
    pub parallelism: u64,
    /// Nanoseconds between batches.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub delay: i64,
    /// `pause`, `continue`, `rollback`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub failure_action: String,
    /// Nanoseconds to watch a task after its update.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub monitor: i64,
    /// Failures tolerated.
    pub max_failure_ratio: f64,
    /// `stop-first` or `start-first`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub order: String,
}

/// `EndpointSpec`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EndpointSpec {
    /// `vip` (default) or `dnsrr`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub mode: String,
    /// Published ports.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

/// A published port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PortConfig {
    /// Name.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub name: String,
    /// `tcp`, `udp`, `sctp`.
    pub protocol: String,
    /// Port inside the task.
    pub target_port: u32,
    /// Port on the nodes.
    pub published_port: u32,
    /// `ingress` or `host`.
    pub publish_mode: String,
}

/// `Endpoint` (observed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Endpoint {
    /// Copy of the spec.
    pub spec: EndpointSpec,
    /// Allocated ports.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
    /// One VIP per attached network.
    #[serde(rename = "VirtualIPs", deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub virtual_ips: Vec<EndpointVirtualIp>,
}

/// `UpdateStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct UpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused`, `rollback_completed`.
    pub state: String,
    /// Start time.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub started_at: String,
    /// End time.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub completed_at: String,
    /// Text shown by the CLI.
    pub message: String,
}

/// `ServiceStatus` (only with `status=true`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ServiceStatus {
    /// Tasks whose state is running.
    pub running_tasks: u64,
    /// Replicas, or for global services the tasks with desired state running.
    pub desired_tasks: u64,
    /// Completed job tasks.
    pub completed_tasks: u64,
}

/// A service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Service {
    /// Service ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Store version.
    pub version: ObjectVersion,
    /// Creation time.
    pub created_at: String,
    /// Last write.
    pub updated_at: String,
    /// Current spec.
    pub spec: ServiceSpec,
    /// Spec before the last update (for rollback).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_spec: Option<ServiceSpec>,
    /// Observed endpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<Endpoint>,
    /// Rolling update progress.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_status: Option<UpdateStatus>,
    /// Task counts (list with `status=true`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_status: Option<ServiceStatus>,
}

/// `POST /services/create` and `…/update` replies.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ServiceCreateResponse {
    /// New service ID (create only).
    #[serde(rename = "ID", skip_serializing_if = "is_empty_str", default)]
    pub id: String,
    /// Warnings.
    #[serde(default)]
    pub warnings: Option<Vec<String>>,
}

impl ServiceMode {
    /// Replica count for replicated services (absent = 1).
    pub fn replicas(&self) -> Option<u64> {
        self.replicated.as_ref().map(|r| r.replicas.unwrap_or(1))
    }
    /// Whether the service is global.
    pub fn is_global(&self) -> bool {
        self.global.is_some()
    }
}
