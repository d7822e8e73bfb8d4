//! `GET /info` and `GET /version`.

use super::{ClusterInfo, Labels};
use serde::{Deserialize, Serialize};

/// The Docker API version skep speaks.
pub const API_VERSION: &str = "1.50";
/// The oldest API version accepted.
pub const MIN_API_VERSION: &str = "1.24";

/// `Info.Swarm`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SwarmInfo {
    /// This node's ID; empty outside a swarm.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// This node's address.
    pub node_addr: String,
    /// `inactive`, `pending`, `active`, `error`, `locked`.
    pub local_node_state: String,
    /// Whether this node serves the control API (is a manager).
    pub control_available: bool,
    /// Last error.
    pub error: String,
    /// Managers this node knows.
    pub remote_managers: Option<Vec<Peer>>,
    /// Number of nodes (managers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<i64>,
    /// Number of managers (managers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managers: Option<i64>,
    /// The cluster (managers only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
}

/// A manager's node ID and cluster address.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Peer {
    /// Node ID.
    #[serde(rename = "NodeID")]
    pub node_id: String,
    /// `IP:port`.
    pub addr: String,
}

/// Local node states (`Swarm.LocalNodeState`).
pub mod local_state {
    /// Not in a swarm.
    pub const INACTIVE: &str = "inactive";
    /// Joining.
    pub const PENDING: &str = "pending";
    /// In a swarm.
    pub const ACTIVE: &str = "active";
    /// Something failed; see `Error`.
    pub const ERROR: &str = "error";
}

/// `GET /info` (free-form in Docker; these are the fields `docker info` prints).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Info {
    /// Daemon ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Host name.
    pub name: String,
    /// skep's version.
    pub server_version: String,
    /// OS name.
    pub operating_system: String,
    /// `linux`.
    #[serde(rename = "OSType")]
    pub os_type: String,
    /// `x86_64`.
    pub architecture: String,
    /// Kernel release.
    pub kernel_version: String,
    /// CPUs.
    #[serde(rename = "NCPU")]
    pub ncpu: i64,
    /// Memory in bytes.
    pub mem_total: i64,
    /// Data root.
    pub docker_root_dir: String,
    /// Engine labels.
    #[serde(deserialize_with = "super::null_default")]
    pub labels: Vec<String>,
    /// Plugins, as `docker info` lists them.
    pub plugins: serde_json::Value,
    /// Security options.
    #[serde(deserialize_with = "super::null_default")]
    pub security_options: Vec<String>,
    /// Swarm section.
    pub swarm: SwarmInfo,
    /// Number of containers (tasks run by the engine).
    pub containers: i64,
    /// Driver of the local engine (`process` or `docker`).
    pub driver: String,
}

/// `GET /version`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VersionResponse {
    /// `{"Name": "skep"}`.
    pub platform: serde_json::Value,
    /// Components.
    pub components: serde_json::Value,
    /// skep's version.
    pub version: String,
    /// API version.
    pub api_version: String,
    /// Oldest API version.
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    /// Git commit.
    pub git_commit: String,
    /// Toolchain.
    pub go_version: String,
    /// `linux`.
    pub os: String,
    /// `amd64`.
    pub arch: String,
    /// Kernel release.
    pub kernel_version: String,
    /// Build time.
    pub build_time: String,
}

/// Engine labels reported by a node (`Description.Engine.Labels`) carry the engine in use under this key.
pub const ENGINE_LABEL: &str = "com.skep.engine";

/// Helper for building label maps in tests and descriptions.
pub fn labels<const N: usize>(pairs: [(&str, &str); N]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}
