//! Nodes: spec (intent), description (what the node reports), status (observed), manager status.

use super::{is_empty_str, is_false, null_default, Labels, ObjectVersion, TlsInfo};
use serde::{Deserialize, Serialize};

/// A node as `GET /nodes` returns it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Node {
    /// Node ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Store version.
    pub version: ObjectVersion,
    /// When the node joined.
    pub created_at: String,
    /// Last write.
    pub updated_at: String,
    /// What the operator asked for.
    pub spec: NodeSpec,
    /// What the node reported about itself.
    pub description: NodeDescription,
    /// Observed state.
    pub status: NodeStatus,
    /// Present on managers only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
}

/// `Spec` of a node: the operator's intent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeSpec {
    /// Optional name; the hostname stands in when empty.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub name: String,
    /// Labels used by placement constraints.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// `manager` or `worker`.
    pub role: String,
    /// `active`, `pause` or `drain`.
    pub availability: String,
}

/// Node roles as the API spells them.
pub mod role {
    /// A Raft member that can serve the control API.
    pub const MANAGER: &str = "manager";
    /// Runs tasks only.
    pub const WORKER: &str = "worker";
}

/// Node availability values.
pub mod availability {
    /// Takes new tasks.
    pub const ACTIVE: &str = "active";
    /// Keeps its tasks, takes no new ones.
    pub const PAUSE: &str = "pause";
    /// Its tasks move elsewhere.
    pub const DRAIN: &str = "drain";
    /// Whether `s` is one of the three.
    pub fn is_valid(s: &str) -> bool {
        matches!(s, ACTIVE | PAUSE | DRAIN)
    }
}

/// Node states (`Status.State`).
pub mod node_state {
    /// Unknown (e.g. right after a leader change, before a heartbeat).
    pub const UNKNOWN: &str = "unknown";
    /// Heartbeating.
    pub const READY: &str = "ready";
    /// Missed its heartbeats.
    pub const DOWN: &str = "down";
    /// Left the swarm.
    pub const DISCONNECTED: &str = "disconnected";
}

/// Manager reachability values.
pub mod reachability {
    /// Not yet known.
    pub const UNKNOWN: &str = "unknown";
    /// Not answering the leader.
    pub const UNREACHABLE: &str = "unreachable";
    /// Replicating from the leader.
    pub const REACHABLE: &str = "reachable";
}

/// `Description`: what a node says about itself.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeDescription {
    /// Host name.
    pub hostname: String,
    /// OS and architecture.
    pub platform: Platform,
    /// CPU and memory.
    pub resources: Resources,
    /// Engine version, labels and plugins.
    pub engine: EngineDescription,
    /// The node's view of the root of trust.
    #[serde(rename = "TLSInfo")]
    pub tls_info: TlsInfo,
}

/// `Platform`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Platform {
    /// `x86_64`, `aarch64` (uname spelling).
    pub architecture: String,
    /// `linux`.
    #[serde(rename = "OS")]
    pub os: String,
}

/// `Resources`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Resources {
    /// CPUs × 10⁹.
    #[serde(rename = "NanoCPUs")]
    pub nano_cpus: i64,
    /// Memory in bytes.
    pub memory_bytes: i64,
}

/// `Engine`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EngineDescription {
    /// Shown in `node ls` ENGINE VERSION.
    pub engine_version: String,
    /// Engine labels (constraints `engine.labels.*`).
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// Plugins.
    #[serde(deserialize_with = "null_default")]
    pub plugins: Vec<PluginDescription>,
}

/// One plugin.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct PluginDescription {
    /// `Network`, `Volume`, `Log`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// Plugin name.
    pub name: String,
}

/// `Status`: observed state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeStatus {
    /// See [`node_state`].
    pub state: String,
    /// Why, when it is not ready.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub message: String,
    /// The node's IP address.
    pub addr: String,
}

/// `ManagerStatus`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ManagerStatus {
    /// Whether this manager is the Raft leader.
    #[serde(skip_serializing_if = "is_false")]
    pub leader: bool,
    /// See [`reachability`].
    pub reachability: String,
    /// Cluster address `IP:port`, used in the printed join command.
    pub addr: String,
}

impl Node {
    /// The name used for lookups and display: `Spec.Name`, else the hostname.
    pub fn name(&self) -> &str {
        if self.spec.name.is_empty() {
            &self.description.hostname
        } else {
            &self.spec.name
        }
    }

    /// Whether the node is a manager by spec.
    pub fn is_manager(&self) -> bool {
        self.spec.role == role::MANAGER
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_update_body_from_the_cli_decodes() {
        let spec: NodeSpec =
            serde_json::from_str(r#"{"Labels":null,"Role":"worker","Availability":"drain"}"#).unwrap();
        assert_eq!(spec.availability, "drain");
        assert!(spec.labels.is_empty());
    }

    #[test]
    fn worker_node_has_no_manager_status_field() {
        let n = Node { id: "x".into(), ..Default::default() };
        let v = serde_json::to_value(&n).unwrap();
        assert!(v.get("ManagerStatus").is_none());
        assert_eq!(v["Description"]["Resources"]["NanoCPUs"], 0);
        assert!(v["Spec"]["Labels"].is_object());
        assert!(v["Spec"].get("Name").is_none());
    }
}
