//! Nodes: spec (intent), description (what the node reports), status (observed), manager status; and the node
//! vocabulary: [`NodeRole`], [`Availability`], [`NodeState`], [`Reachability`].
//!
//! The vocabulary is typed everywhere a value is known to be valid: the store, the API's answers, node-to-node
//! messages, a node's `state.json`. Request bodies keep what the client sent ([`NodeSpecUpdate`], and the
//! availability of `swarm init`/`join`) because there an empty string means "not given", and the control layer
//! answers a bad word with the text skep always gave (`invalid role 'boss'`); they parse it with `from_request`.

use super::vocabulary::vocabulary;
use super::{is_empty_str, is_false, null_default, Labels, ObjectVersion, TlsInfo};
use serde::{Deserialize, Serialize};

vocabulary! {
    /// `Spec.Role`: what a node is asked to be. Also the role a node certificate grants (its OU, see `skep-pki`).
    ///
    /// The default is swarmkit's zero value, the least privileged one; it is only ever used for a node built in
    /// code. Decoding never falls back to it: a [`NodeSpec`] without a role, or with an empty one, is refused.
    pub enum NodeRole ("role") {
        /// Runs tasks only.
        #[default]
        Worker = "worker",
        /// A Raft member that can serve the control API; may hold the CA key.
        Manager = "manager",
    }
}

vocabulary! {
    /// `Spec.Availability`: whether the scheduler may place tasks on the node. The default, `active`, is also what
    /// an empty availability in `swarm init`/`join` means (as in Docker).
    pub enum Availability ("availability") {
        /// Takes new tasks.
        #[default]
        Active = "active",
        /// Keeps its tasks, takes no new ones.
        Pause = "pause",
        /// Its tasks move elsewhere.
        Drain = "drain",
    }
}

vocabulary! {
    /// `Status.State`: what the managers last observed of the node.
    pub enum NodeState ("node state") {
        /// Not known (e.g. right after a leader change, before a heartbeat).
        #[default]
        Unknown = "unknown",
        /// Missed its heartbeats.
        Down = "down",
        /// Heartbeating.
        Ready = "ready",
        /// Left the swarm.
        Disconnected = "disconnected",
    }
}

vocabulary! {
    /// `ManagerStatus.Reachability`: a manager as the leader sees it.
    pub enum Reachability ("reachability") {
        /// Not yet known.
        #[default]
        Unknown = "unknown",
        /// Not answering the leader.
        Unreachable = "unreachable",
        /// Replicating from the leader.
        Reachable = "reachable",
    }
}

/// A node as `GET /nodes` returns it.
///
/// Unlike the other shapes, `Spec` may not be left out (it holds the role, which is never guessed); every other
/// field has its default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    /// Node ID.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Store version.
    #[serde(default)]
    pub version: ObjectVersion,
    /// When the node joined.
    #[serde(default)]
    pub created_at: String,
    /// Last write.
    #[serde(default)]
    pub updated_at: String,
    /// What the operator asked for.
    pub spec: NodeSpec,
    /// What the node reported about itself.
    #[serde(default)]
    pub description: NodeDescription,
    /// Observed state.
    #[serde(default)]
    pub status: NodeStatus,
    /// Present on managers only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager_status: Option<ManagerStatus>,
}

/// `Spec` of a node: the operator's intent, as the store keeps it and the API shows it.
///
/// `Role` and `Availability` are required when decoding: a missing, empty or unknown one is an error, never a
/// default (a default role would demote a manager). An update request is a [`NodeSpecUpdate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeSpec {
    /// Optional name; the hostname stands in when empty.
    #[serde(default, skip_serializing_if = "is_empty_str")]
    pub name: String,
    /// Labels used by placement constraints.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: Labels,
    /// What the node should be.
    pub role: NodeRole,
    /// Whether it takes tasks.
    pub availability: Availability,
}

/// The body of `POST /nodes/{id}/update`: a [`NodeSpec`] as the client sent it. `Role` and `Availability` stay
/// text: empty means "keep the current one", and anything else is parsed by the control layer
/// ([`NodeRole::from_request`], [`Availability::from_request`]), which refuses a bad word with skep's usual text.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NodeSpecUpdate {
    /// Optional name; the hostname stands in when empty.
    #[serde(skip_serializing_if = "is_empty_str")]
    pub name: String,
    /// Labels used by placement constraints.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// `manager`, `worker`, or empty (keep).
    pub role: String,
    /// `active`, `pause`, `drain`, or empty (keep).
    pub availability: String,
}

impl From<NodeSpec> for NodeSpecUpdate {
    fn from(s: NodeSpec) -> NodeSpecUpdate {
        NodeSpecUpdate {
            name: s.name,
            labels: s.labels,
            role: s.role.as_str().to_string(),
            availability: s.availability.as_str().to_string(),
        }
    }
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
    /// Last observed state.
    pub state: NodeState,
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
    /// As the leader sees it.
    pub reachability: Reachability,
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
        self.spec.role == NodeRole::Manager
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_update_body_from_the_cli_decodes() {
        let spec: NodeSpec =
            serde_json::from_str(r#"{"Labels":null,"Role":"worker","Availability":"drain"}"#).unwrap();
        assert_eq!(spec.availability, Availability::Drain);
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

    /// Nodes as this build's predecessor wrote them (into the Raft store and onto the API), with every word of the
    /// vocabulary: they must decode and encode back to the same bytes.
    const STORED: [&str; 4] = [
        r#"{"ID":"9sfnofyy5xctfbsocqa6hqsvh","Version":{"Index":42},"CreatedAt":"2025-01-02T03:04:05.000000006Z","UpdatedAt":"2025-01-02T03:04:07.000000008Z","Spec":{"Labels":{"zone":"a"},"Role":"manager","Availability":"drain"},"Description":{"Hostname":"node-1","Platform":{"Architecture":"x86_64","OS":"linux"},"Resources":{"NanoCPUs":2000000000,"MemoryBytes":25000000000},"Engine":{"EngineVersion":"0.1.0","Labels":{},"Plugins":[{"Type":"Network","Name":"overlay"}]},"TLSInfo":{"TrustRoot":"","CertIssuerSubject":"","CertIssuerPublicKey":""}},"Status":{"State":"ready","Addr":"10.0.0.1"},"ManagerStatus":{"Leader":true,"Reachability":"reachable","Addr":"10.0.0.1:2377"}}"#,
        r#"{"ID":"w","Version":{"Index":0},"CreatedAt":"","UpdatedAt":"","Spec":{"Name":"named","Labels":{},"Role":"worker","Availability":"pause"},"Description":{"Hostname":"","Platform":{"Architecture":"","OS":""},"Resources":{"NanoCPUs":0,"MemoryBytes":0},"Engine":{"EngineVersion":"","Labels":{},"Plugins":[]},"TLSInfo":{"TrustRoot":"","CertIssuerSubject":"","CertIssuerPublicKey":""}},"Status":{"State":"down","Message":"heartbeat failure","Addr":""}}"#,
        r#"{"ID":"u","Version":{"Index":0},"CreatedAt":"","UpdatedAt":"","Spec":{"Labels":{},"Role":"manager","Availability":"active"},"Description":{"Hostname":"","Platform":{"Architecture":"","OS":""},"Resources":{"NanoCPUs":0,"MemoryBytes":0},"Engine":{"EngineVersion":"","Labels":{},"Plugins":[]},"TLSInfo":{"TrustRoot":"","CertIssuerSubject":"","CertIssuerPublicKey":""}},"Status":{"State":"disconnected","Addr":""},"ManagerStatus":{"Reachability":"unreachable","Addr":"10.0.0.3:2377"}}"#,
        r#"{"ID":"u","Version":{"Index":0},"CreatedAt":"","UpdatedAt":"","Spec":{"Labels":{},"Role":"manager","Availability":"active"},"Description":{"Hostname":"","Platform":{"Architecture":"","OS":""},"Resources":{"NanoCPUs":0,"MemoryBytes":0},"Engine":{"EngineVersion":"","Labels":{},"Plugins":[]},"TLSInfo":{"TrustRoot":"","CertIssuerSubject":"","CertIssuerPublicKey":""}},"Status":{"State":"unknown","Addr":""},"ManagerStatus":{"Reachability":"unknown","Addr":"10.0.0.3:2377"}}"#,
    ];

    #[test]
    fn nodes_written_before_the_vocabulary_was_typed_round_trip_byte_for_byte() {
        for json in STORED {
            let n: Node = serde_json::from_str(json).unwrap();
            assert_eq!(serde_json::to_string(&n).unwrap(), json);
        }
        let n: Node = serde_json::from_str(STORED[0]).unwrap();
        assert_eq!((n.spec.role, n.spec.availability, n.status.state), (NodeRole::Manager, Availability::Drain, NodeState::Ready));
        assert_eq!(n.manager_status.map(|m| m.reachability), Some(Reachability::Reachable));
    }

    #[test]
    fn every_word_parses_back_and_others_are_refused_with_skeps_text() {
        for r in NodeRole::ALL {
            assert_eq!(r.to_string().parse::<NodeRole>(), Ok(*r));
        }
        for a in Availability::ALL {
            assert_eq!(a.as_str().parse::<Availability>(), Ok(*a));
        }
        for s in NodeState::ALL {
            assert_eq!(s.as_str().parse::<NodeState>(), Ok(*s));
        }
        for r in Reachability::ALL {
            assert_eq!(r.as_str().parse::<Reachability>(), Ok(*r));
        }
        assert_eq!("boss".parse::<NodeRole>().unwrap_err().to_string(), "invalid role 'boss'");
        assert_eq!("Manager".parse::<NodeRole>().unwrap_err().to_string(), "invalid role 'Manager'");
        assert_eq!("".parse::<NodeRole>().unwrap_err().to_string(), "invalid role ''");
        assert_eq!("sleepy".parse::<Availability>().unwrap_err().to_string(), "invalid availability 'sleepy'");
        assert_eq!(format!("{:<8}|", NodeRole::Worker), "worker  |");
    }

    #[test]
    fn an_empty_request_word_means_not_given() {
        assert_eq!(NodeRole::from_request(""), Ok(None));
        assert_eq!(NodeRole::from_request("manager"), Ok(Some(NodeRole::Manager)));
        assert_eq!(Availability::from_request("pause"), Ok(Some(Availability::Pause)));
        assert_eq!(Availability::from_request(" drain").unwrap_err().to_string(), "invalid availability ' drain'");
    }

    #[test]
    fn a_spec_without_a_valid_role_or_availability_is_refused_not_defaulted() {
        for body in [
            r#"{"Labels":{},"Availability":"active"}"#,
            r#"{"Labels":{},"Role":"","Availability":"active"}"#,
            r#"{"Labels":{},"Role":"boss","Availability":"active"}"#,
            r#"{"Labels":{},"Role":null,"Availability":"active"}"#,
            r#"{"Labels":{},"Role":"manager"}"#,
            r#"{"Labels":{},"Role":"manager","Availability":"sleepy"}"#,
        ] {
            assert!(serde_json::from_str::<NodeSpec>(body).is_err(), "{body}");
        }
        let e = serde_json::from_str::<NodeSpec>(r#"{"Role":"boss","Availability":"active"}"#).unwrap_err();
        assert!(e.to_string().starts_with("invalid role 'boss'"), "{e}");
        // a node must carry its spec
        assert!(serde_json::from_str::<Node>(r#"{"ID":"n1"}"#).is_err());
    }

    #[test]
    fn an_update_body_keeps_what_the_client_sent() {
        let u: NodeSpecUpdate = serde_json::from_str(r#"{"Labels":null,"Availability":"drain"}"#).unwrap();
        assert_eq!((u.role.as_str(), u.availability.as_str()), ("", "drain"));
        let u: NodeSpecUpdate = serde_json::from_str(r#"{"Role":"boss"}"#).unwrap();
        assert_eq!(u.role, "boss");
        // what the CLI sends: the whole spec it read, as the same JSON
        let spec = NodeSpec { role: NodeRole::Manager, availability: Availability::Pause, ..Default::default() };
        assert_eq!(serde_json::to_string(&NodeSpecUpdate::from(spec.clone())).unwrap(), serde_json::to_string(&spec).unwrap());
    }
}
