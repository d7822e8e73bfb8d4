//! Reading a task's `ContainerSpec` the same way in every engine: which spec, which stop signal, how long a grace
//! period, which labels; its templates expanded; its mounts, limits and security settings checked.

use super::{template, EngineError};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use skep_api::docker::fields::{self, EngineKind};
use skep_api::docker::{ContainerSpec, Mount, MountKind, Task};
use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

/// Label: the task ID (how `list` finds what skep started).
pub const LABEL_TASK_ID: &str = "com.skep.task.id";
/// Label: the service ID.
pub const LABEL_SERVICE_ID: &str = "com.skep.service.id";
/// Label: the node ID.
pub const LABEL_NODE_ID: &str = "com.skep.node.id";
/// Label: the slot (replicated services; 0 for global ones).
pub const LABEL_SLOT: &str = "com.skep.task.slot";
/// Task label the orchestrator sets to the service's name, so containers are called `<name>.<slot>.<task>` like
/// Docker's and `{{.Service.Name}}` expands; without it the service ID stands in.
pub const LABEL_SERVICE_NAME: &str = skep_api::docker::TASK_LABEL_SERVICE_NAME;

/// Docker's default grace period between the stop signal and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Refuses a task whose spec sets a field this engine does not carry out (the table in
/// `skep_api::docker::fields`): the manager accepted it because the other engine does.
pub(crate) fn check_fields(task: &Task, engine: EngineKind) -> Result<(), EngineError> {
    match fields::unsupported_by(engine, &task.spec) {
        Some(f) => {
            let name = match engine {
                EngineKind::Process => "process",
                EngineKind::Docker => "docker",
            };
            Err(EngineError::Invalid(format!("{} is not supported by the {name} engine", f.path)))
        }
        None => Ok(()),
    }
}

/// The task's container spec, or `Invalid`.
pub(crate) fn container_spec(task: &Task) -> Result<&ContainerSpec, EngineError> {
    task.spec.container_spec.as_ref().ok_or_else(|| EngineError::Invalid(format!("task {}: no ContainerSpec", task.id)))
}

/// `StopSignal`: `SIGTERM`, `TERM`, `term` or `15`; empty means SIGTERM. Real-time signals (`SIGRTMIN+3`) are not
/// supported (nix's `Signal` has no safe way to send them).
pub fn parse_signal(s: &str) -> Result<Signal, EngineError> {
    let s = s.trim();
    if s.is_empty() {
        return Ok(Signal::SIGTERM);
    }
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).map_err(|_| EngineError::Invalid(format!("invalid signal: {s}")));
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    Signal::from_str(&name).map_err(|_| EngineError::Invalid(format!("invalid signal: {s}")))
}

/// The task's stop signal.
pub(crate) fn stop_signal(spec: &ContainerSpec) -> Result<Signal, EngineError> {
    parse_signal(&spec.stop_signal)
}

/// The task's grace period (`StopGracePeriod` in ns; absent: 10 s; negative: none).
pub(crate) fn grace_period(spec: &ContainerSpec) -> Duration {
    match spec.stop_grace_period {
        None => DEFAULT_GRACE,
        Some(ns) => Duration::from_nanos(ns.max(0) as u64),
    }
}

/// The labels every engine attaches to what it creates for a task.
pub(crate) fn task_labels(task: &Task) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_TASK_ID.to_string(), task.id.clone()),
        (LABEL_SERVICE_ID.to_string(), task.service_id.clone()),
        (LABEL_NODE_ID.to_string(), task.node_id.clone()),
        (LABEL_SLOT.to_string(), task.slot.to_string()),
    ])
}

/// Docker's task name: `<service>.<slot>.<task ID>`, or `<service>.<node ID>.<task ID>` for a global task (slot 0).
pub(crate) fn task_name(task: &Task) -> String {
    let service = match task.labels.get(LABEL_SERVICE_NAME) {
        Some(name) if !name.is_empty() => name.as_str(),
        _ => task.service_id.as_str(),
    };
    if task.slot > 0 {
        format!("{service}.{}.{}", task.slot, task.id)
    } else {
        format!("{service}.{}.{}", task.node_id, task.id)
    }
}

/// A task ID is used as a file and container name: refuse anything that could escape a directory.
pub(crate) fn check_task_id(id: &str) -> Result<(), EngineError> {
    if id.is_empty() || id.len() > 128 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(EngineError::Invalid(format!("invalid task ID {id:?}")));
    }
    Ok(())
}

/// What a task's templates may say about this node (swarmkit's `Node` template context).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeInfo {
    /// `{{.Node.Hostname}}`.
    pub hostname: String,
    /// `{{.Node.Platform.Architecture}}` (uname spelling, as the node description has it: `x86_64`).
    pub architecture: String,
    /// `{{.Node.Platform.OS}}`.
    pub os: String,
}

impl NodeInfo {
    /// This host: its hostname (`/proc/sys/kernel/hostname`, as the node description reads it) and platform.
    pub fn local() -> NodeInfo {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        NodeInfo { hostname, architecture: std::env::consts::ARCH.into(), os: std::env::consts::OS.into() }
    }
}

/// The template context of a task on this node.
pub(crate) fn template_context(task: &Task, node: &NodeInfo) -> template::Context {
    let service_name = match task.labels.get(LABEL_SERVICE_NAME) {
        Some(name) if !name.is_empty() => name.clone(),
        _ => task.service_id.clone(),
    };
    template::Context {
        service_id: task.service_id.clone(),
        service_name,
        service_labels: None,
        node_id: task.node_id.clone(),
        node_hostname: node.hostname.clone(),
        node_architecture: node.architecture.clone(),
        node_os: node.os.clone(),
        task_id: task.id.clone(),
        task_name: task_name(task),
        task_slot: if task.slot > 0 { task.slot.to_string() } else { task.node_id.clone() },
    }
}

/// The task's container spec with its templates expanded (swarmkit's `ExpandContainerSpec`): `Env` values,
/// `Hostname`, and each mount's `Source`, `Target`, volume labels and driver options.
pub(crate) fn expanded(task: &Task, node: &NodeInfo) -> Result<ContainerSpec, EngineError> {
    let mut c = container_spec(task)?.clone();
    let ctx = template_context(task, node);
    let bad = |what: &str, e: template::TemplateError| EngineError::Invalid(format!("expanding {what} failed: {e}"));
    for kv in &mut c.env {
        if let Some((k, v)) = kv.split_once('=') {
            *kv = format!("{k}={}", ctx.expand(v).map_err(|e| bad("env", e))?);
        }
    }
    c.hostname = ctx.expand(&c.hostname).map_err(|e| bad("hostname", e))?;
    let mut mounts = c.mounts().map_err(|e| EngineError::Invalid(e.to_string()))?;
    for m in &mut mounts {
        m.source = ctx.expand(&m.source).map_err(|e| bad("mounts", e))?;
        m.target = ctx.expand(&m.target).map_err(|e| bad("mounts", e))?;
        if let Some(v) = &mut m.volume_options {
            for value in v.labels.values_mut() {
                *value = ctx.expand(value).map_err(|e| bad("volume labels", e))?;
            }
            if let Some(d) = &mut v.driver_config {
                for value in d.options.values_mut() {
                    *value = ctx.expand(value).map_err(|e| bad("volume driver config", e))?;
                }
            }
        }
    }
    c.set_mounts(&mounts);
    Ok(c)
}

/// The task's mounts, every one checked (after [`expanded`]).
pub(crate) fn mounts(c: &ContainerSpec) -> Result<Vec<(Mount, MountKind)>, EngineError> {
    let invalid = |e: skep_api::docker::MountError| EngineError::Invalid(e.to_string());
    let mounts = c.mounts().map_err(invalid)?;
    skep_api::docker::validate_spec_mounts(&mounts).map_err(invalid)?;
    mounts.into_iter().map(|m| m.kind().map(|k| (m, k)).map_err(invalid)).collect()
}

/// `Resources.Limits` and the memory reservation, as the engines apply them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `NanoCPUs`: CPUs × 10⁹.
    pub nano_cpus: u64,
    /// `MemoryBytes`.
    pub memory_bytes: u64,
    /// `Pids`: most processes (threads included) at once.
    pub pids: u64,
    /// `Reservations.MemoryBytes`: a soft limit (Docker's `MemoryReservation`), applied where the memory
    /// controller exists; never a reason to refuse a task (reservations are the scheduler's).
    pub memory_reservation: u64,
}

/// The CFS period swarmkit's executor uses: quota = `NanoCPUs × period / 10⁹`.
pub const CPU_PERIOD_US: u64 = 100_000;

impl Limits {
    /// Any hard limit at all (each one must be applied, or the task refused).
    pub fn any(&self) -> bool {
        self.nano_cpus > 0 || self.memory_bytes > 0 || self.pids > 0
    }

    /// The CFS quota in µs for [`CPU_PERIOD_US`], when a CPU limit is set.
    pub fn cpu_quota_us(&self) -> Option<u64> {
        (self.nano_cpus > 0).then(|| (self.nano_cpus as u128 * CPU_PERIOD_US as u128 / 1_000_000_000) as u64)
    }
}

/// The task's limits; negative amounts and a CPU quota under the kernel's 1 ms minimum are invalid.
pub(crate) fn limits(task: &Task) -> Result<Limits, EngineError> {
    let Some(r) = &task.spec.resources else { return Ok(Limits::default()) };
    let mut l = Limits::default();
    let non_negative = |what: &str, v: i64| {
        u64::try_from(v).map_err(|_| EngineError::Invalid(format!("invalid {what}: {v} (must not be negative)")))
    };
    if let Some(lim) = &r.limits {
        l.nano_cpus = non_negative("Limits.NanoCPUs", lim.nano_cpus)?;
        l.memory_bytes = non_negative("Limits.MemoryBytes", lim.memory_bytes)?;
        l.pids = non_negative("Limits.Pids", lim.pids)?;
    }
    if let Some(res) = &r.reservations {
        l.memory_reservation = non_negative("Reservations.MemoryBytes", res.memory_bytes)?;
    }
    if let Some(q) = l.cpu_quota_us() {
        if q < 1000 {
            return Err(EngineError::Invalid(format!(
                "invalid Limits.NanoCPUs {}: the CPU quota would be {q} µs per {CPU_PERIOD_US} µs, under the \
                 kernel's minimum of 1000 µs (0.01 CPU)",
                l.nano_cpus
            )));
        }
    }
    if l.memory_bytes > 0 && l.memory_bytes < MIN_MEMORY {
        return Err(EngineError::Invalid(format!(
            "Minimum memory limit allowed is 6MB (Limits.MemoryBytes {})",
            l.memory_bytes
        )));
    }
    Ok(l)
}

/// Docker's smallest memory limit (`linuxMinMemory`).
pub const MIN_MEMORY: u64 = 6 << 20;

/// `1073741824` → `1GiB`, `8388608` → `8MiB` (how limits appear in messages).
pub fn human_bytes(n: u64) -> String {
    for (unit, size) in [("GiB", 1u64 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    if n >= 1 << 20 {
        return format!("{:.1}MiB", n as f64 / (1u64 << 20) as f64);
    }
    format!("{n}B")
}

/// The `ContainerSpec` security settings the engines carry out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Security {
    /// Supplementary groups (names or IDs), on top of the user's own.
    pub groups: Vec<String>,
    /// Capabilities added to Docker's default set (`CAP_NET_ADMIN`, `NET_ADMIN`, `ALL`).
    pub capability_add: Vec<String>,
    /// Capabilities dropped from it.
    pub capability_drop: Vec<String>,
    /// Namespaced sysctls.
    pub sysctls: BTreeMap<String, String>,
    /// A read-only root filesystem.
    pub read_only: bool,
}

/// The spec's [`Security`] settings.
pub(crate) fn security(c: &ContainerSpec) -> Result<Security, EngineError> {
    Ok(Security {
        groups: c.groups.clone(),
        capability_add: c.capability_add.clone(),
        capability_drop: c.capability_drop.clone(),
        sysctls: c.sysctls.clone(),
        read_only: c.read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_rejects_a_field_only_the_other_engine_carries_out() {
        let mut task = Task { id: "t1".into(), ..Default::default() };
        task.spec.container_spec = Some(ContainerSpec { image: "sleep".into(), tty: true, ..Default::default() });
        let e = check_fields(&task, EngineKind::Process).unwrap_err();
        assert!(e.to_string().contains("TaskTemplate.ContainerSpec.TTY is not supported by the process engine"), "{e}");
        assert!(check_fields(&task, EngineKind::Docker).is_ok());
        task.spec.container_spec.as_mut().unwrap().tty = false;
        assert!(check_fields(&task, EngineKind::Process).is_ok());
    }
}
