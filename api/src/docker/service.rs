//! Services (spec = intent) and tasks (one-shot units the orchestrators create from a service).
//!
//! The spec types carry every field of Docker's (API 1.50), typed, with no catch-all map: request bodies are read by
//! [`super::decode`], which needs each struct's field names, and [`super::fields`] says which of them skep carries
//! out. These shapes only travel as JSON (API, store commands, and as JSON bytes on the wire).

use super::{is_empty_str, null_default, EndpointVirtualIp, Labels, NetworkAttachmentConfig, ObjectVersion, Platform};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `Spec` of a service. Every field of Docker's `ServiceSpec` (API 1.50) is here, typed, so that the decoder in
/// [`super::decode`] matches each key and each refused field can be named (see [`super::fields`]); a field Docker
/// does not know is ignored, as Docker ignores it. Serialization follows Go's `omitempty` tags.
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
    /// Deprecated since API 1.44: networks of the service itself. skep moves them into `TaskTemplate.Networks`.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub networks: Vec<NetworkAttachmentConfig>,
    /// Ports and endpoint mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_spec: Option<EndpointSpec>,
}

/// `TaskTemplate` / a task's `Spec`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskSpec {
    /// The container (or process) to run. Always present in what skep returns (the CLI crashes without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_spec: Option<ContainerSpec>,
    /// A plugin to install (`Runtime: plugin`): refused by skep.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin_spec: Option<serde_json::Value>,
    /// Internal to Docker (`Runtime: attachment`): refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_attachment_spec: Option<serde_json::Value>,
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
    /// Log driver of the task's container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_driver: Option<Driver>,
    /// Bumped by `service update --force` to replace tasks without a spec change.
    pub force_update: u64,
    /// `container` (the default; what Docker shows).
    #[serde(skip_serializing_if = "is_empty_str")]
    pub runtime: String,
}

/// `LogDriver`: a driver name and its options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Driver {
    /// Driver name.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub name: String,
    /// Driver options.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `ContainerSpec`. Fields skep does not carry out yet are kept as JSON values (`serde_json::Value`): they are
/// refused unless zero (see [`super::fields`]), and get their real types when an engine implements them.
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
    /// Supplementary groups.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// Credential spec, SELinux, seccomp, AppArmor, no-new-privileges.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub privileges: Option<Privileges>,
    /// Run an init process as PID 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// Signal to stop with (default SIGTERM).
    #[serde(skip_serializing_if = "is_empty_str")]
    pub stop_signal: String,
    /// Allocate a TTY.
    #[serde(rename = "TTY", skip_serializing_if = "super::is_false")]
    pub tty: bool,
    /// Keep stdin open.
    #[serde(skip_serializing_if = "super::is_false")]
    pub open_stdin: bool,
    /// Read-only root file system.
    #[serde(skip_serializing_if = "super::is_false")]
    pub read_only: bool,
    /// Bind, volume and tmpfs mounts.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<serde_json::Value>,
    /// Nanoseconds between the stop signal and SIGKILL (default 10 s).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<i64>,
    /// Health check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<serde_json::Value>,
    /// Extra `/etc/hosts` entries (`IP host...`).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Resolver settings.
    #[serde(rename = "DNSConfig", skip_serializing_if = "Option::is_none")]
    pub dns_config: Option<DnsConfig>,
    /// Secrets the task gets as files.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<super::SecretReference>,
    /// Configs the task gets as files.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<super::SwarmConfigReference>,
    /// `default` (what Docker shows on Linux), `process`, `hyperv`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub isolation: String,
    /// Namespaced kernel parameters.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Capabilities added to the default set.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub capability_add: Vec<String>,
    /// Capabilities dropped from the default set.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub capability_drop: Vec<String>,
    /// Resource limits (`nofile` ...).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub ulimits: Vec<serde_json::Value>,
    /// OOM score adjustment.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub oom_score_adj: i64,
    /// swarmkit's `ContainerSpec.PullOptions`: the registry credentials given with `--with-registry-auth`
    /// (`X-Registry-Auth`). Kept with the spec in the store and sent to a node with its tasks; never part of an API
    /// answer ([`ContainerSpec::strip_credentials`]), never set from a request body (the header only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pull_options: Option<PullOptions>,
}

/// Registry credentials for pulling a task's image.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PullOptions {
    /// The `X-Registry-Auth` value (base64url JSON of an `AuthConfig`).
    pub registry_auth: String,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // credentials: never in a log
        f.write_str("PullOptions { registry_auth: <redacted> }")
    }
}

impl ContainerSpec {
    /// Forgets the registry credentials (every API answer, and every request body before the header sets them).
    pub fn strip_credentials(&mut self) {
        self.pull_options = None;
    }
}

impl ServiceSpec {
    /// [`ContainerSpec::strip_credentials`] of the task template.
    pub fn strip_credentials(&mut self) {
        if let Some(c) = self.task_template.container_spec.as_mut() {
            c.strip_credentials();
        }
    }
}

impl super::Task {
    /// The task as the API may show it: no registry credentials.
    pub fn strip_credentials(&mut self) {
        if let Some(c) = self.spec.container_spec.as_mut() {
            c.strip_credentials();
        }
    }
}

impl Service {
    /// The service as the API may show it: no registry credentials in its spec or previous spec.
    pub fn strip_credentials(&mut self) {
        self.spec.strip_credentials();
        if let Some(p) = self.previous_spec.as_mut() {
            p.strip_credentials();
        }
    }
}

/// `Privileges`. Go marshals the first two without `omitempty`, so an empty one reads
/// `{"CredentialSpec": null, "SELinuxContext": null, "NoNewPrivileges": false}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Privileges {
    /// Windows credential spec.
    pub credential_spec: Option<serde_json::Value>,
    /// SELinux labels.
    #[serde(rename = "SELinuxContext")]
    pub selinux_context: Option<serde_json::Value>,
    /// Seccomp profile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<serde_json::Value>,
    /// AppArmor profile.
    #[serde(rename = "AppArmor", skip_serializing_if = "Option::is_none")]
    pub app_armor: Option<serde_json::Value>,
    /// `no_new_privs`.
    pub no_new_privileges: bool,
}

/// `DNSConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase", rename = "DNSConfig")]
pub struct DnsConfig {
    /// Name servers.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Search domains.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// `Resources`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ResourceRequirements {
    /// Enforced by the engine.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limit>,
    /// Used by the scheduler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceAmounts>,
}

/// `Resources.Limits`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Limit {
    /// CPUs × 10⁹.
    #[serde(rename = "NanoCPUs", skip_serializing_if = "super::is_zero")]
    pub nano_cpus: i64,
    /// Bytes.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub memory_bytes: i64,
    /// Most processes.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub pids: i64,
}

/// `Resources.Reservations` (Go's `Resources`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase", rename = "Resources")]
pub struct ResourceAmounts {
    /// CPUs × 10⁹.
    #[serde(rename = "NanoCPUs", skip_serializing_if = "super::is_zero")]
    pub nano_cpus: i64,
    /// Bytes.
    #[serde(skip_serializing_if = "super::is_zero")]
    pub memory_bytes: i64,
    /// Generic resources (GPUs ...).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<serde_json::Value>,
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

/// One placement preference. Go marshals `Spread` without `omitempty`; a preference without one is dropped when the
/// spec is stored, as Docker drops it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PlacementPreference {
    /// Spread over the values of a label.
    pub spread: Option<SpreadOver>,
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
    /// `{"MaxConcurrent": N, "TotalCompletions": M}`: a job run to M completions, N at a time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicated_job: Option<ReplicatedJob>,
    /// `{}`: a job run once on every eligible node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_job: Option<serde_json::Value>,
}

/// `ReplicatedJob`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ReplicatedJob {
    /// Tasks run at once (absent: 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    /// Completions wanted (absent: `MaxConcurrent`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_completions: Option<u64>,
}

/// `JobStatus`: which run of a job is current.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct JobStatus {
    /// The run: the store version at which it began (tasks carry it as their `JobIteration`).
    pub job_iteration: ObjectVersion,
    /// When the run began.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub last_execution: String,
}

/// `Replicated`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase", rename = "ReplicatedService")]
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
    #[serde(serialize_with = "super::go_float")]
    pub max_failure_ratio: f64,
    /// `stop-first` or `start-first`.
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
    #[serde(skip_serializing_if = "is_empty_str")]
    pub protocol: String,
    /// Port inside the task.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub target_port: u32,
    /// Port on the nodes.
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub published_port: u32,
    /// `ingress` or `host`.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub publish_mode: String,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
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
    /// Jobs: the current run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_status: Option<JobStatus>,
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
    /// Whether the service is a job (replicated or global).
    pub fn is_job(&self) -> bool {
        self.replicated_job.is_some() || self.global_job.is_some()
    }
    /// A replicated job's `(MaxConcurrent, TotalCompletions)` with Docker's defaults (1, and `MaxConcurrent`).
    pub fn job_limits(&self) -> Option<(u64, u64)> {
        self.replicated_job.as_ref().map(|j| {
            let max = j.max_concurrent.unwrap_or(1);
            (max, j.total_completions.unwrap_or(max))
        })
    }
    /// The mode's kind, for "mode change is not allowed".
    pub fn kind(&self) -> &'static str {
        if self.global.is_some() {
            "global"
        } else if self.replicated_job.is_some() {
            "replicated-job"
        } else if self.global_job.is_some() {
            "global-job"
        } else {
            "replicated"
        }
    }
}
