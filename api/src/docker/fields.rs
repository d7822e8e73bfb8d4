//! Which fields of a service spec skep carries out, engine by engine: the one table behind "never accept and ignore".
//!
//! Every field of Docker's `ServiceSpec` (API 1.50) is listed in [`SERVICE_SPEC_FIELDS`] with what the `process`
//! and the `docker` engines do with it. The manager refuses a create or update that sets a field no engine
//! carries out (501, naming the field); a worker whose engine does not carry out a field the other engine does
//! rejects the task, with the field's name as the reason (`service ps` shows it). A field is *set* when its value
//! asks for something: `null`, the zero value and Docker's own default are not set (clients send them all the
//! time: `"Privileges": {"CredentialSpec": null, ...}`, `"Init": false`, `"Isolation": "default"`).
//!
//! To move a field from refused to honoured when an engine implements it, change its `process` / `docker` entry:
//! one line. `docs/service-spec-fields.md` is generated from this table ([`markdown`]); a unit test keeps the two
//! equal.

use super::{ContainerSpec, ServiceSpec, UpdateConfig, SECOND_NS};
use serde_json::Value;

/// What an engine does with a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Support {
    /// Carried out.
    Honoured,
    /// Not carried out: a spec that sets it is refused (or its task rejected by that engine).
    Refused,
}

/// A task engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// The embedded engine: tasks are processes.
    Process,
    /// Tasks are containers of the local Docker engine.
    Docker,
}

/// One field of the service spec.
#[derive(Clone, Copy, Debug)]
pub struct Field {
    /// The field's path from the spec's root, in the API's spelling.
    pub path: &'static str,
    /// The `process` engine.
    pub process: Support,
    /// The `docker` engine.
    pub docker: Support,
    /// Whether `spec` sets the field (a zero or default value does not).
    pub set: fn(&ServiceSpec) -> bool,
    /// A body that sets the field (merged into a minimal create request by the tests).
    pub example: &'static str,
    /// What "honoured" means, or what is left out.
    pub note: &'static str,
}

impl Field {
    /// What `engine` does with the field.
    pub fn support(&self, engine: EngineKind) -> Support {
        match engine {
            EngineKind::Process => self.process,
            EngineKind::Docker => self.docker,
        }
    }

    /// Whether no engine carries the field out.
    pub fn refused_everywhere(&self) -> bool {
        self.process == Support::Refused && self.docker == Support::Refused
    }
}

use Support::{Honoured as H, Refused as R};

/// Whether a JSON value asks for nothing: `null`, `false`, `0`, `""`, or a list or object of such values.
pub fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_zero),
        Value::Object(o) => o.values().all(is_zero),
    }
}

fn opt_zero(v: &Option<Value>) -> bool {
    v.as_ref().is_none_or(is_zero)
}

fn container(s: &ServiceSpec) -> Option<&ContainerSpec> {
    s.task_template.container_spec.as_ref()
}

fn c(s: &ServiceSpec, f: impl Fn(&ContainerSpec) -> bool) -> bool {
    container(s).is_some_and(f)
}

fn update(s: &ServiceSpec, f: impl Fn(&UpdateConfig) -> bool) -> bool {
    s.update_config.as_ref().is_some_and(f)
}

fn rollback(s: &ServiceSpec, f: impl Fn(&UpdateConfig) -> bool) -> bool {
    s.rollback_config.as_ref().is_some_and(f)
}

/// Docker's default monitor period (5 s) is what a client reads back and sends again.
fn monitor_set(u: &UpdateConfig) -> bool {
    u.monitor != 0 && u.monitor != 5 * SECOND_NS
}

fn limits(s: &ServiceSpec) -> Option<&super::Limit> {
    s.task_template.resources.as_ref().and_then(|r| r.limits.as_ref())
}

fn reservations(s: &ServiceSpec) -> Option<&super::ResourceAmounts> {
    s.task_template.resources.as_ref().and_then(|r| r.reservations.as_ref())
}

fn placement(s: &ServiceSpec) -> Option<&super::Placement> {
    s.task_template.placement.as_ref()
}

fn restart(s: &ServiceSpec) -> Option<&super::RestartPolicy> {
    s.task_template.restart_policy.as_ref()
}

/// Every field of the service spec. Keep one line per field, so that a field moves from `R` to `H` on its own.
#[rustfmt::skip]
pub const SERVICE_SPEC_FIELDS: &[Field] = &[
    Field { path: "Name", process: H, docker: H, set: |s| !s.name.is_empty(), example: r#"{"Name":"named"}"#, note: "" },
    Field { path: "Labels", process: H, docker: H, set: |s| !s.labels.is_empty(), example: r#"{"Labels":{"a":"b"}}"#, note: "" },
    Field { path: "Mode.Replicated.Replicas", process: H, docker: H, set: |s| s.mode.replicated.is_some(), example: r#"{"Mode":{"Replicated":{"Replicas":2}}}"#, note: "" },
    Field { path: "Mode.Global", process: H, docker: H, set: |s| s.mode.global.is_some(), example: r#"{"Mode":{"Global":{}}}"#, note: "" },
    Field { path: "Mode.ReplicatedJob", process: H, docker: H, set: |s| s.mode.replicated_job.is_some(), example: r#"{"Mode":{"ReplicatedJob":{}}}"#, note: "MaxConcurrent, TotalCompletions; JobStatus; every update runs the job again" },
    Field { path: "Mode.GlobalJob", process: H, docker: H, set: |s| s.mode.global_job.is_some(), example: r#"{"Mode":{"GlobalJob":{}}}"#, note: "once on every eligible node; every update runs it again" },
    Field { path: "TaskTemplate.ContainerSpec.Image", process: H, docker: H, set: |s| c(s, |c| !c.image.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Image":"sleep"}}}"#, note: "process: a registry image, pulled into the node's store and run in its own root (overlayfs, pivot_root); an absolute path runs that host program (see `--host-programs`)" },
    Field { path: "TaskTemplate.ContainerSpec.Labels", process: H, docker: H, set: |s| c(s, |c| !c.labels.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Labels":{"a":"b"}}}}"#, note: "process: kept with the task (a process has no labels)" },
    Field { path: "TaskTemplate.ContainerSpec.Command", process: H, docker: H, set: |s| c(s, |c| !c.command.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Command":["sleep"]}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.Args", process: H, docker: H, set: |s| c(s, |c| !c.args.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Args":["1000"]}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.Hostname", process: H, docker: H, set: |s| c(s, |c| !c.hostname.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Hostname":"h"}}}"#, note: "templated ({{.Service.Name}}, {{.Task.Slot}}, {{.Node.Hostname}}, ...)" },
    Field { path: "TaskTemplate.ContainerSpec.Env", process: H, docker: H, set: |s| c(s, |c| !c.env.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Env":["A=1"]}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.Dir", process: H, docker: H, set: |s| c(s, |c| !c.dir.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Dir":"/tmp"}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.User", process: H, docker: H, set: |s| c(s, |c| !c.user.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"User":"nobody"}}}"#, note: "process: needs root and setpriv" },
    Field { path: "TaskTemplate.ContainerSpec.Groups", process: H, docker: H, set: |s| c(s, |c| !c.groups.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Groups":["adm"]}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.Privileges", process: R, docker: R, set: |s| c(s, |c| c.privileges.as_ref().is_some_and(|p| !opt_zero(&p.credential_spec) || !opt_zero(&p.selinux_context) || !opt_zero(&p.seccomp) || !opt_zero(&p.app_armor) || p.no_new_privileges)), example: r#"{"TaskTemplate":{"ContainerSpec":{"Privileges":{"NoNewPrivileges":true}}}}"#, note: "credential spec, SELinux, seccomp, AppArmor, no-new-privileges" },
    Field { path: "TaskTemplate.ContainerSpec.Init", process: R, docker: R, set: |s| c(s, |c| c.init == Some(true)), example: r#"{"TaskTemplate":{"ContainerSpec":{"Init":true}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.StopSignal", process: H, docker: H, set: |s| c(s, |c| !c.stop_signal.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"StopSignal":"SIGUSR1"}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.TTY", process: R, docker: H, set: |s| c(s, |c| c.tty), example: r#"{"TaskTemplate":{"ContainerSpec":{"TTY":true}}}"#, note: "process: stdin is /dev/null" },
    Field { path: "TaskTemplate.ContainerSpec.OpenStdin", process: R, docker: R, set: |s| c(s, |c| c.open_stdin), example: r#"{"TaskTemplate":{"ContainerSpec":{"OpenStdin":true}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.ReadOnly", process: H, docker: H, set: |s| c(s, |c| c.read_only), example: r#"{"TaskTemplate":{"ContainerSpec":{"ReadOnly":true}}}"#, note: "process: an image's root is remounted read-only; a host program (which shares the host's root) is rejected" },
    Field { path: "TaskTemplate.ContainerSpec.Mounts", process: H, docker: H, set: |s| c(s, |c| !c.mounts.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Mounts":[{"Type":"tmpfs","Target":"/t"}]}}}"#, note: "bind, volume (driver local), tmpfs; see docs/design/task_runtime.md" },
    Field { path: "TaskTemplate.ContainerSpec.StopGracePeriod", process: H, docker: H, set: |s| c(s, |c| c.stop_grace_period.is_some()), example: r#"{"TaskTemplate":{"ContainerSpec":{"StopGracePeriod":3000000000}}}"#, note: "docker: rounded up to whole seconds" },
    Field { path: "TaskTemplate.ContainerSpec.Healthcheck", process: H, docker: H, set: |s| c(s, |c| !opt_zero(&c.healthcheck)), example: r#"{"TaskTemplate":{"ContainerSpec":{"Healthcheck":{"Test":["CMD","true"]}}}}"#, note: "CMD, CMD-SHELL, NONE, intervals, timeout, retries, start period and interval; `process` runs the check in the task's namespaces, root (an image's too) and cgroup, and applies an image's `Healthcheck` under the spec's (Docker's field-by-field merge), `docker` reads Docker's health state (which also runs the image's HEALTHCHECK); the task is `starting` until healthy and fails as `dockerexec: unhealthy container`" },
    Field { path: "TaskTemplate.ContainerSpec.Hosts", process: R, docker: R, set: |s| c(s, |c| !c.hosts.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Hosts":["10.0.0.1 h"]}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.DNSConfig", process: R, docker: R, set: |s| c(s, |c| c.dns_config.as_ref().is_some_and(|d| !d.nameservers.is_empty() || !d.search.is_empty() || !d.options.is_empty())), example: r#"{"TaskTemplate":{"ContainerSpec":{"DNSConfig":{"Nameservers":["10.0.0.1"]}}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.Secrets", process: H, docker: H, set: |s| c(s, |c| !c.secrets.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Secrets":[{"File":{"Name":"s","UID":"0","GID":"0","Mode":292},"SecretName":"s","SecretID":"x"}]}}}"#, note: "files on a tmpfs, read-only at `/run/secrets/<target>` (docs/design/secrets.md)" },
    Field { path: "TaskTemplate.ContainerSpec.Configs", process: H, docker: H, set: |s| c(s, |c| !c.configs.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Configs":[{"File":{"Name":"/etc/c.conf","UID":"0","GID":"0","Mode":292},"ConfigName":"c","ConfigID":"x"}]}}}"#, note: "read-only files at their targets; `Runtime` targets refused (docs/design/secrets.md)" },
    Field { path: "TaskTemplate.ContainerSpec.Isolation", process: R, docker: R, set: |s| c(s, |c| !matches!(c.isolation.as_str(), "" | "default")), example: r#"{"TaskTemplate":{"ContainerSpec":{"Isolation":"hyperv"}}}"#, note: "`default` is accepted" },
    Field { path: "TaskTemplate.ContainerSpec.Sysctls", process: H, docker: H, set: |s| c(s, |c| !c.sysctls.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Sysctls":{"net.ipv4.ip_default_ttl":"33"}}}}"#, note: "namespaced ones only (net.*, kernel.shm*, kernel.msg*, kernel.sem, fs.mqueue.*)" },
    Field { path: "TaskTemplate.ContainerSpec.CapabilityAdd", process: H, docker: H, set: |s| c(s, |c| !c.capability_add.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"CapabilityAdd":["CAP_NET_ADMIN"]}}}"#, note: "on top of Docker's default set" },
    Field { path: "TaskTemplate.ContainerSpec.CapabilityDrop", process: H, docker: H, set: |s| c(s, |c| !c.capability_drop.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"CapabilityDrop":["CAP_CHOWN"]}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.Ulimits", process: R, docker: R, set: |s| c(s, |c| !c.ulimits.is_empty()), example: r#"{"TaskTemplate":{"ContainerSpec":{"Ulimits":[{"Name":"nofile","Soft":1024,"Hard":2048}]}}}"#, note: "" },
    Field { path: "TaskTemplate.ContainerSpec.OomScoreAdj", process: R, docker: R, set: |s| c(s, |c| c.oom_score_adj != 0), example: r#"{"TaskTemplate":{"ContainerSpec":{"OomScoreAdj":100}}}"#, note: "" },
    Field { path: "TaskTemplate.PluginSpec", process: R, docker: R, set: |s| !opt_zero(&s.task_template.plugin_spec) || s.task_template.runtime == "plugin", example: r#"{"TaskTemplate":{"Runtime":"plugin","PluginSpec":{"Name":"p"}}}"#, note: "plugin services" },
    Field { path: "TaskTemplate.NetworkAttachmentSpec", process: R, docker: R, set: |s| !opt_zero(&s.task_template.network_attachment_spec), example: r#"{"TaskTemplate":{"NetworkAttachmentSpec":{"ContainerID":"x"}}}"#, note: "internal to Docker" },
    Field { path: "TaskTemplate.Resources.Limits.NanoCPUs", process: H, docker: H, set: |s| limits(s).is_some_and(|l| l.nano_cpus != 0), example: r#"{"TaskTemplate":{"Resources":{"Limits":{"NanoCPUs":100000000}}}}"#, note: "process: the task's own cgroup (cpu quota)" },
    Field { path: "TaskTemplate.Resources.Limits.MemoryBytes", process: H, docker: H, set: |s| limits(s).is_some_and(|l| l.memory_bytes != 0), example: r#"{"TaskTemplate":{"Resources":{"Limits":{"MemoryBytes":8388608}}}}"#, note: "process: the task's own cgroup; an OOM kill shows in service ps" },
    Field { path: "TaskTemplate.Resources.Limits.Pids", process: H, docker: H, set: |s| limits(s).is_some_and(|l| l.pids != 0), example: r#"{"TaskTemplate":{"Resources":{"Limits":{"Pids":100}}}}"#, note: "process: the task's own cgroup" },
    Field { path: "TaskTemplate.Resources.Reservations.NanoCPUs", process: H, docker: H, set: |s| reservations(s).is_some_and(|r| r.nano_cpus != 0), example: r#"{"TaskTemplate":{"Resources":{"Reservations":{"NanoCPUs":100000000}}}}"#, note: "scheduling" },
    Field { path: "TaskTemplate.Resources.Reservations.MemoryBytes", process: H, docker: H, set: |s| reservations(s).is_some_and(|r| r.memory_bytes != 0), example: r#"{"TaskTemplate":{"Resources":{"Reservations":{"MemoryBytes":8388608}}}}"#, note: "scheduling" },
    Field { path: "TaskTemplate.Resources.Reservations.GenericResources", process: R, docker: R, set: |s| reservations(s).is_some_and(|r| !r.generic_resources.iter().all(is_zero)), example: r#"{"TaskTemplate":{"Resources":{"Reservations":{"GenericResources":[{"DiscreteResourceSpec":{"Kind":"gpu","Value":1}}]}}}}"#, note: "" },
    Field { path: "TaskTemplate.RestartPolicy.Condition", process: H, docker: H, set: |s| restart(s).is_some_and(|r| !r.condition.is_empty()), example: r#"{"TaskTemplate":{"RestartPolicy":{"Condition":"on-failure"}}}"#, note: "" },
    Field { path: "TaskTemplate.RestartPolicy.Delay", process: H, docker: H, set: |s| restart(s).is_some_and(|r| r.delay.is_some()), example: r#"{"TaskTemplate":{"RestartPolicy":{"Delay":1000000000}}}"#, note: "" },
    Field { path: "TaskTemplate.RestartPolicy.MaxAttempts", process: H, docker: H, set: |s| restart(s).is_some_and(|r| r.max_attempts.is_some()), example: r#"{"TaskTemplate":{"RestartPolicy":{"MaxAttempts":3}}}"#, note: "" },
    Field { path: "TaskTemplate.RestartPolicy.Window", process: H, docker: H, set: |s| restart(s).is_some_and(|r| r.window.is_some()), example: r#"{"TaskTemplate":{"RestartPolicy":{"Window":10000000000}}}"#, note: "" },
    Field { path: "TaskTemplate.Placement.Constraints", process: H, docker: H, set: |s| placement(s).is_some_and(|p| !p.constraints.is_empty()), example: r#"{"TaskTemplate":{"Placement":{"Constraints":["node.role==manager"]}}}"#, note: "" },
    Field { path: "TaskTemplate.Placement.Preferences", process: H, docker: H, set: |s| placement(s).is_some_and(|p| !p.preferences.is_empty()), example: r#"{"TaskTemplate":{"Placement":{"Preferences":[{"Spread":{"SpreadDescriptor":"node.labels.zone"}}]}}}"#, note: "a descriptor other than node.labels.* or engine.labels.* has no effect, as in swarmkit" },
    Field { path: "TaskTemplate.Placement.MaxReplicas", process: H, docker: H, set: |s| placement(s).is_some_and(|p| p.max_replicas != 0), example: r#"{"TaskTemplate":{"Placement":{"MaxReplicas":2}}}"#, note: "" },
    Field { path: "TaskTemplate.Placement.Platforms", process: H, docker: H, set: |s| placement(s).is_some_and(|p| !p.platforms.is_empty()), example: r#"{"TaskTemplate":{"Placement":{"Platforms":[{"Architecture":"amd64","OS":"linux"}]}}}"#, note: "" },
    Field { path: "TaskTemplate.Networks", process: H, docker: H, set: |s| !s.task_template.networks.is_empty(), example: r#"{"TaskTemplate":{"Networks":[{"Target":"fieldsnet"}]}}"#, note: "" },
    Field { path: "TaskTemplate.LogDriver", process: R, docker: R, set: |s| s.task_template.log_driver.as_ref().is_some_and(|d| !d.name.is_empty() || !d.options.is_empty()), example: r#"{"TaskTemplate":{"LogDriver":{"Name":"json-file"}}}"#, note: "skep keeps task output itself (`service logs`); its size is the daemon's `--log-opt max-size=…,max-file=…`" },
    Field { path: "TaskTemplate.ForceUpdate", process: H, docker: H, set: |s| s.task_template.force_update != 0, example: r#"{"TaskTemplate":{"ForceUpdate":1}}"#, note: "" },
    Field { path: "UpdateConfig.Parallelism", process: H, docker: H, set: |s| update(s, |u| u.parallelism != 1), example: r#"{"UpdateConfig":{"Parallelism":2}}"#, note: "" },
    Field { path: "UpdateConfig.Delay", process: H, docker: H, set: |s| update(s, |u| u.delay != 0), example: r#"{"UpdateConfig":{"Delay":1000000000}}"#, note: "between a slot's new task coming up (or ending) and the next slot" },
    Field { path: "UpdateConfig.FailureAction", process: H, docker: H, set: |s| update(s, |u| u.failure_action == "rollback"), example: r#"{"UpdateConfig":{"FailureAction":"rollback"}}"#, note: "`pause`, `continue`, `rollback` (to the previous spec, with RollbackConfig)" },
    Field { path: "UpdateConfig.Monitor", process: H, docker: H, set: |s| update(s, monitor_set), example: r#"{"UpdateConfig":{"Monitor":1000000000}}"#, note: "a new task ending within it after it came up is a failure; the update completes after it" },
    Field { path: "UpdateConfig.MaxFailureRatio", process: H, docker: H, set: |s| update(s, |u| u.max_failure_ratio != 0.0), example: r#"{"UpdateConfig":{"MaxFailureRatio":0.5}}"#, note: "failures over the service's slots beyond it trigger the failure action" },
    Field { path: "UpdateConfig.Order", process: H, docker: H, set: |s| update(s, |u| u.order == "start-first"), example: r#"{"UpdateConfig":{"Order":"start-first"}}"#, note: "`start-first`: the old task stops once the new one runs (healthy)" },
    Field { path: "RollbackConfig.Parallelism", process: H, docker: H, set: |s| rollback(s, |u| u.parallelism > 1), example: r#"{"RollbackConfig":{"Parallelism":2}}"#, note: "drives rollbacks (manual and automatic) as UpdateConfig drives updates" },
    Field { path: "RollbackConfig.Delay", process: H, docker: H, set: |s| rollback(s, |u| u.delay != 0), example: r#"{"RollbackConfig":{"Delay":1000000000}}"#, note: "" },
    Field { path: "RollbackConfig.FailureAction", process: H, docker: H, set: |s| rollback(s, |u| u.failure_action == "rollback"), example: r#"{"RollbackConfig":{"FailureAction":"rollback"}}"#, note: "a failing rollback pauses (`rollback_paused`), never rolls back" },
    Field { path: "RollbackConfig.Monitor", process: H, docker: H, set: |s| rollback(s, monitor_set), example: r#"{"RollbackConfig":{"Monitor":1000000000}}"#, note: "" },
    Field { path: "RollbackConfig.MaxFailureRatio", process: H, docker: H, set: |s| rollback(s, |u| u.max_failure_ratio != 0.0), example: r#"{"RollbackConfig":{"MaxFailureRatio":0.5}}"#, note: "" },
    Field { path: "RollbackConfig.Order", process: H, docker: H, set: |s| rollback(s, |u| u.order == "start-first"), example: r#"{"RollbackConfig":{"Order":"start-first"}}"#, note: "" },
    Field { path: "Networks", process: H, docker: H, set: |s| !s.networks.is_empty(), example: r#"{"Networks":[{"Target":"fieldsnet"}]}"#, note: "deprecated: moved into TaskTemplate.Networks" },
    Field { path: "EndpointSpec.Mode", process: H, docker: H, set: |s| s.endpoint_spec.as_ref().is_some_and(|e| !e.mode.is_empty()), example: r#"{"EndpointSpec":{"Mode":"dnsrr"}}"#, note: "" },
    Field { path: "EndpointSpec.Ports", process: H, docker: H, set: |s| s.endpoint_spec.as_ref().is_some_and(|e| !e.ports.is_empty()), example: r#"{"EndpointSpec":{"Ports":[{"TargetPort":80,"PublishedPort":18080}]}}"#, note: "" },
];

/// The first field `spec` sets that no engine carries out.
pub fn refused(spec: &ServiceSpec) -> Option<&'static Field> {
    SERVICE_SPEC_FIELDS.iter().find(|f| f.refused_everywhere() && (f.set)(spec))
}

/// The first field of a task's spec that `engine` does not carry out.
pub fn unsupported_by(engine: EngineKind, task: &super::TaskSpec) -> Option<&'static Field> {
    let spec = ServiceSpec { task_template: task.clone(), ..Default::default() };
    SERVICE_SPEC_FIELDS
        .iter()
        .find(|f| f.path.starts_with("TaskTemplate.") && f.support(engine) == Support::Refused && (f.set)(&spec))
}

/// The table as markdown, the content of `docs/service-spec-fields.md` between its markers.
pub fn markdown() -> String {
    let cell = |s: Support| match s {
        Support::Honoured => "honoured",
        Support::Refused => "**refused**",
    };
    let mut out = String::from("| field | `process` engine | `docker` engine | notes |\n|---|---|---|---|\n");
    for f in SERVICE_SPEC_FIELDS {
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", f.path, cell(f.process), cell(f.docker), f.note));
    }
    out
}

#[cfg(test)]
mod tests;
