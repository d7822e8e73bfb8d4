//! What the scheduler knows about one node: the facts the filters read, and what the tasks on it already hold.

use super::constraint::normalize_arch;
use skep_api::docker::{Availability, Labels, Node, NodeRole, NodeState};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::{IpAddr, SocketAddr};

/// Hasher for the interned service numbers: one multiplication (Fibonacci hashing) instead of SipHash, which the
/// spread order would otherwise pay for on every candidate node. The keys are our own small integers, so there is
/// no untrusted input to defend against.
#[derive(Default)]
pub(crate) struct ServiceHasher(u64);

impl Hasher for ServiceHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (u64::from(n) ^ self.0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// One node, flattened for the filters. Built once per [`super::Scheduler`]; the reservation and task counters are
/// updated as tasks are placed so that later decisions in the same batch see earlier ones.
#[derive(Clone, Debug)]
pub(crate) struct NodeInfo {
    /// Node ID (constraint `node.id`, and the final tie-break of the spread order).
    pub(crate) id: String,
    /// `Status.State == ready`: a node that does not heartbeat cannot start anything.
    pub(crate) ready: bool,
    /// `Spec.Availability == active`: paused and drained nodes take no new tasks.
    pub(crate) active: bool,
    /// `Spec.Role` (constraint `node.role`).
    pub(crate) role: NodeRole,
    /// `Description.Hostname` (constraint `node.hostname`).
    pub(crate) hostname: String,
    /// `Status.Addr`, parsed (constraint `node.ip`); `None` when the node has not reported a usable address.
    pub(crate) ip: Option<IpAddr>,
    /// `Spec.Labels`: the operator's labels (constraints and placement preferences).
    pub(crate) labels: Labels,
    /// `Description.Engine.Labels`: the node's own labels.
    pub(crate) engine_labels: Labels,
    /// `Description.Platform.OS`.
    pub(crate) os: String,
    /// `Description.Platform.Architecture`, normalised once here so comparisons are plain equality.
    pub(crate) arch: String,
    /// Total CPUs × 10⁹ the node reported.
    pub(crate) nano_cpus: i64,
    /// Total memory the node reported.
    pub(crate) memory_bytes: i64,
    /// CPU reserved by the tasks that hold resources here.
    pub(crate) reserved_cpus: i64,
    /// Memory reserved by the tasks that hold resources here.
    pub(crate) reserved_memory: i64,
    /// Active tasks here, all services (second key of the spread order).
    pub(crate) tasks: u32,
    /// Active tasks here per interned service (first key of the spread order, and max-replicas).
    pub(crate) per_service: HashMap<u32, u32, BuildHasherDefault<ServiceHasher>>,
}

impl NodeInfo {
    /// Flattens a store node.
    pub(crate) fn new(node: &Node) -> NodeInfo {
        let d = &node.description;
        NodeInfo {
            id: node.id.clone(),
            ready: node.status.state == NodeState::Ready,
            active: node.spec.availability == Availability::Active,
            role: node.spec.role,
            hostname: d.hostname.clone(),
            ip: parse_addr(&node.status.addr),
            labels: node.spec.labels.clone(),
            engine_labels: d.engine.labels.clone(),
            os: d.platform.os.clone(),
            arch: normalize_arch(&d.platform.architecture),
            nano_cpus: d.resources.nano_cpus,
            memory_bytes: d.resources.memory_bytes,
            reserved_cpus: 0,
            reserved_memory: 0,
            tasks: 0,
            per_service: HashMap::default(),
        }
    }

    /// Active tasks of `service` here.
    pub(crate) fn service_tasks(&self, service: u32) -> u32 {
        self.per_service.get(&service).copied().unwrap_or(0)
    }

    /// CPU not yet reserved.
    pub(crate) fn free_cpus(&self) -> i64 {
        self.nano_cpus - self.reserved_cpus
    }

    /// Memory not yet reserved.
    pub(crate) fn free_memory(&self) -> i64 {
        self.memory_bytes - self.reserved_memory
    }

    /// Records a task of `service` holding `cpus`/`memory` here.
    pub(crate) fn add_task(&mut self, service: u32, cpus: i64, memory: i64) {
        self.reserved_cpus += cpus;
        self.reserved_memory += memory;
        self.tasks += 1;
        *self.per_service.entry(service).or_insert(0) += 1;
    }
}

/// `10.0.0.1`, or `10.0.0.1:2377` / `[::1]:2377` should a port slip in.
fn parse_addr(addr: &str) -> Option<IpAddr> {
    addr.parse::<IpAddr>().ok().or_else(|| addr.parse::<SocketAddr>().ok().map(|s| s.ip()))
}
