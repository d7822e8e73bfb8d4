//! What a node must know about the cluster's networks to program its data plane and answer DNS: the networks it takes
//! part in (with every remote endpoint on them), and the services it can see there (VIPs, running tasks, published
//! ports). The leader computes it from the store and sends it with the node's assignments; there is no gossip, so
//! every node's view is a function of the managers' state.

use crate::docker::PortConfig;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// One node's view of the networks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetworkView {
    /// Networks this node takes part in (those of its tasks, and ingress when anything publishes through the mesh).
    pub networks: Vec<NetworkInfo>,
    /// Services attached to those networks, and every service publishing through the mesh.
    pub services: Vec<ServiceInfo>,
}

/// A network as a node needs it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// Network ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// VXLAN ID.
    pub vni: u32,
    /// Subnet.
    pub subnet: Ipv4Addr,
    /// Prefix length.
    pub prefix_len: u8,
    /// MTU option, if set (else the underlay's minus the VXLAN overhead).
    pub mtu: Option<u32>,
    /// The routing mesh's network.
    pub ingress: bool,
    /// No outside access.
    pub internal: bool,
    /// This node's own address on the network (ingress: its routing-mesh leg).
    pub leg: Option<Ipv4Addr>,
    /// Endpoints on other nodes: overlay address → that node's underlay address.
    pub peers: Vec<Peer>,
}

/// A remote endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Peer {
    /// Its overlay address.
    pub ip: Ipv4Addr,
    /// The underlay address of the node that holds it.
    pub node: Ipv4Addr,
}

/// A service as a node needs it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Service ID.
    pub id: String,
    /// Name.
    pub name: String,
    /// `vip` or `dnsrr`.
    pub endpoint_mode: String,
    /// One VIP per network (vip mode).
    pub vips: Vec<(String, Ipv4Addr)>,
    /// Extra names per network.
    pub aliases: Vec<(String, Vec<String>)>,
    /// Published ports (allocated).
    pub ports: Vec<PortConfig>,
    /// Publish through the PROXY protocol v2 relay (service label `com.skep.proxy-protocol=v2`).
    pub proxy_protocol: bool,
    /// Its tasks that hold addresses.
    pub tasks: Vec<TaskEndpoint>,
}

/// A task's endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TaskEndpoint {
    /// Task ID.
    pub id: String,
    /// `web.1.<id>` (global: `web.<node id>.<id>`).
    pub name: String,
    /// Node it runs on.
    pub node_id: String,
    /// Address per network.
    pub addrs: Vec<(String, Ipv4Addr)>,
    /// Running and meant to run: gets new connections. A task being stopped leaves the backends first.
    pub backend: bool,
}

impl TaskEndpoint {
    /// The task's address on network `net`.
    pub fn addr_on(&self, net: &str) -> Option<Ipv4Addr> {
        self.addrs.iter().find(|(n, _)| n == net).map(|(_, ip)| *ip)
    }
}

impl ServiceInfo {
    /// The addresses on network `net` of the tasks that take new connections (VIP and mesh backends, dnsrr and
    /// `tasks.<name>` answers).
    pub fn backends_on(&self, net: &str) -> Vec<Ipv4Addr> {
        self.tasks.iter().filter(|t| t.backend).filter_map(|t| t.addr_on(net)).collect()
    }
}

impl NetworkView {
    /// The network with this ID.
    pub fn network(&self, id: &str) -> Option<&NetworkInfo> {
        self.networks.iter().find(|n| n.id == id)
    }
    /// The routing mesh's network, when this node is in the mesh.
    pub fn ingress(&self) -> Option<&NetworkInfo> {
        self.networks.iter().find(|n| n.ingress)
    }
}
