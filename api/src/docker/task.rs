//! Tasks and their state machine (swarmkit's, moby/swarmkit `design/task_model.md`): observed state only moves
//! forward; desired state is the managers' intent.

use super::{is_empty_str, null_default, Labels, ObjectVersion, PortConfig, TaskSpec};
use serde::{Deserialize, Serialize};

/// Task states in their order. The order is the point: a task's observed state never decreases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskState {
    /// Created by an orchestrator.
    #[default]
    New,
    /// Resources allocated.
    Allocated,
    /// Waiting for the scheduler.
    Pending,
    /// Placed on a node.
    Assigned,
    /// The node took it.
    Accepted,
    /// Preparing (image, process set-up).
    Preparing,
    /// Ready to start.
    Ready,
    /// Starting.
    Starting,
    /// Running.
    Running,
    /// Exited 0.
    Complete,
    /// Stopped because its desired state said so.
    Shutdown,
    /// Failed at or after starting.
    Failed,
    /// Failed before starting.
    Rejected,
    /// To be removed (desired state only).
    Remove,
    /// Its node has been down too long.
    Orphaned,
}

impl TaskState {
    /// Terminal: the task will never run again.
    pub fn is_terminal(self) -> bool {
        self >= TaskState::Complete
    }
    /// The API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::New => "new",
            TaskState::Allocated => "allocated",
            TaskState::Pending => "pending",
            TaskState::Assigned => "assigned",
            TaskState::Accepted => "accepted",
            TaskState::Preparing => "preparing",
            TaskState::Ready => "ready",
            TaskState::Starting => "starting",
            TaskState::Running => "running",
            TaskState::Complete => "complete",
            TaskState::Shutdown => "shutdown",
            TaskState::Failed => "failed",
            TaskState::Rejected => "rejected",
            TaskState::Remove => "remove",
            TaskState::Orphaned => "orphaned",
        }
    }
    /// Parse the API spelling.
    pub fn parse(s: &str) -> Option<TaskState> {
        serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
    }
}

/// `ContainerStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ContainerStatus {
    /// Container (or process) ID.
    #[serde(rename = "ContainerID", skip_serializing_if = "is_empty_str")]
    pub container_id: String,
    /// PID.
    #[serde(rename = "PID")]
    pub pid: i64,
    /// Exit code.
    pub exit_code: i64,
}

/// `PortStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PortStatus {
    /// Host-mode published ports.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<PortConfig>,
}

/// `Status` of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TaskStatus {
    /// When the state last changed.
    pub timestamp: String,
    /// Observed state.
    pub state: TaskState,
    /// What happened ("started", "scheduler assigned task to node").
    pub message: String,
    /// Why it failed or waits ("no suitable node (…)").
    #[serde(skip_serializing_if = "is_empty_str")]
    pub err: String,
    /// Engine details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_status: Option<ContainerStatus>,
    /// Host-mode ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_status: Option<PortStatus>,
}

/// Task label the orchestrator sets to the service's name: nodes expand `{{.Service.Name}}` and name containers
/// `<service>.<slot>.<task>` from it (swarmkit's tasks carry `ServiceAnnotations` for the same purpose).
pub const TASK_LABEL_SERVICE_NAME: &str = "com.skep.service.name";

/// A task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Task {
    /// Task ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Store version.
    pub version: ObjectVersion,
    /// Creation time.
    pub created_at: String,
    /// Last write.
    pub updated_at: String,
    /// Task labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// The spec it was made from (immutable).
    pub spec: TaskSpec,
    /// Owning service.
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    /// Replicated: slot ≥ 1; global: 0.
    pub slot: u64,
    /// Node, once assigned (global tasks: from creation).
    #[serde(rename = "NodeID", skip_serializing_if = "is_empty_str")]
    pub node_id: String,
    /// Observed status.
    pub status: TaskStatus,
    /// Intent.
    pub desired_state: TaskState,
    /// The task's addresses on its networks (set by the allocator).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub networks_attachments: Vec<super::NetworkAttachment>,
    /// Jobs: the run the task belongs to (the service's `JobStatus.JobIteration`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_iteration: Option<ObjectVersion>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_ordered_and_spelled_like_docker() {
        assert!(TaskState::New < TaskState::Pending && TaskState::Running < TaskState::Shutdown);
        assert!(TaskState::Failed.is_terminal() && !TaskState::Running.is_terminal());
        assert_eq!(serde_json::to_string(&TaskState::Running).unwrap(), "\"running\"");
        assert_eq!(TaskState::parse("shutdown"), Some(TaskState::Shutdown));
        assert_eq!(TaskState::parse("bogus"), None);
        for s in ["new", "pending", "assigned", "running", "complete", "failed", "rejected", "orphaned"] {
            assert_eq!(TaskState::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn container_fields_the_cli_sends_survive_a_round_trip() {
        let body = r#"{"Image":"busybox","Init":false,"DNSConfig":{},"Args":["httpd","-f"],"Privileges":{"CredentialSpec":null}}"#;
        let c: super::super::ContainerSpec = serde_json::from_str(body).unwrap();
        assert_eq!(c.args, vec!["httpd", "-f"]);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["Init"], false);
        assert!(back["DNSConfig"].is_object());
        assert!(back["Privileges"].is_object());
    }
}
