//! Reading a task's `ContainerSpec` the same way in every engine: which spec, which stop signal, how long a grace
//! period, which labels.

use super::EngineError;
use nix::sys::signal::Signal;
use skep_api::docker::{ContainerSpec, Task};
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
/// Task label an orchestrator may set to the service's name, so containers are called `<name>.<slot>.<task>` like
/// Docker's; without it the service ID stands in (a `Task` does not carry its service's name).
pub const LABEL_SERVICE_NAME: &str = "com.skep.service.name";

/// Docker's default grace period between the stop signal and SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

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
