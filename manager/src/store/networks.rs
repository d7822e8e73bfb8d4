//! Networks in the store, and the allocations `apply` makes for them: VXLAN IDs, service VIPs and published ports,
//! task addresses, and each node's address on the ingress network (its routing-mesh leg).
//!
//! Allocation happens here, at apply time, so that the Raft log orders every claim (see [`crate::allocator`]).
//! Addresses belong to the allocator: a task replaced through `PutTasks` keeps the attachments the store gave it,
//! whatever the proposer's copy says. They are given back when a task's observed state becomes terminal (or it is
//! deleted before that), when a service is removed or leaves a network, and when a node is removed.

use super::{ClusterState, NetworkUser, ResolveError, StoreError, Table};
use crate::allocator::{self, AddrPool, Subnet};
use serde::{Deserialize, Serialize};
use skep_api::docker::{
    Endpoint, EndpointSpec, EndpointVirtualIp, Network, NetworkAttachment, NetworkAttachmentConfig, PortConfig, Service,
    Task, TaskState, VXLAN_ID_OPTION,
};
use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// A swarm network and its address book.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The API view (ID, name, IPAM config with the subnet and gateway, options with the VXLAN ID).
    pub network: Network,
    /// VXLAN ID.
    pub vni: u32,
    /// Which addresses are taken.
    pub pool: AddrPool,
    /// Per-node addresses on this network: on `ingress`, each node's routing-mesh leg.
    pub node_ips: Table<String, Ipv4Addr>,
}

/// `vip` unless the spec says `dnsrr`.
pub fn endpoint_mode(spec: Option<&EndpointSpec>) -> &str {
    match spec.map(|e| e.mode.as_str()) {
        Some("dnsrr") => "dnsrr",
        _ => "vip",
    }
}

/// A port with Docker's defaults filled in (`tcp`, `ingress`).
pub fn normalize_port(p: &PortConfig) -> PortConfig {
    let mut p = p.clone();
    if p.protocol.is_empty() {
        p.protocol = "tcp".into();
    }
    if p.publish_mode.is_empty() {
        p.publish_mode = "ingress".into();
    }
    p
}

/// Does this service publish through the routing mesh?
pub fn uses_ingress(svc: &Service) -> bool {
    svc.spec.endpoint_spec.iter().flat_map(|e| &e.ports).any(|p| normalize_port(p).publish_mode == "ingress")
}

impl NetworkRecord {
    /// The network's subnet.
    pub fn subnet(&self) -> Subnet {
        self.pool.subnet
    }
}

impl ClusterState {
    /// The routing mesh's network, if there is one.
    pub fn ingress(&self) -> Option<&NetworkRecord> {
        self.networks.values().find(|n| n.network.ingress)
    }

    /// Resolve a network reference: exact ID, exact name, unique ID prefix.
    pub fn resolve_network(&self, reference: &str) -> Result<&NetworkRecord, ResolveError> {
        if let Some(n) = self.networks.get(reference) {
            return Ok(n);
        }
        if let Some(n) = self.networks.values().find(|n| n.network.name == reference) {
            return Ok(n);
        }
        let by_prefix: Vec<_> = if reference.is_empty() {
            vec![]
        } else {
            self.networks.values().filter(|n| n.network.id.starts_with(reference)).collect()
        };
        match by_prefix.len() {
            1 => Ok(by_prefix[0]),
            0 => Err(ResolveError::NotFound(format!("network {reference} not found"))),
            n => Err(ResolveError::Ambiguous(format!("network {reference} is ambiguous ({n} matches found)"))),
        }
    }

    /// `network create` (and the ingress network at `swarm init`): the proposer chose ID, subnet and gateway; here
    /// the name and subnet are checked against the cluster and the VXLAN ID is assigned.
    pub(super) fn create_network(&mut self, mut n: Network, at: &str) -> Result<(), StoreError> {
        if self.networks.contains_key(&n.id) || self.networks.values().any(|o| o.network.name == n.name) {
            return Err(StoreError::Conflict(format!("network with name {} already exists", n.name)));
        }
        if n.ingress && self.ingress().is_some() {
            return Err(StoreError::Conflict("ingress network already exists".into()));
        }
        let cfg = n.ipam.config.first().cloned().unwrap_or_default();
        let subnet: Subnet = cfg.subnet.parse().map_err(|e: allocator::BadCidr| StoreError::Invalid(e.to_string()))?;
        if let Some(o) = self.networks.values().find(|o| o.subnet().overlaps(subnet)) {
            return Err(StoreError::Invalid(format!(
                "invalid pool request: Pool overlaps with other one on this address space ({subnet} overlaps {} of network {})",
                o.subnet(),
                o.network.name
            )));
        }
        let gateway: Ipv4Addr = if cfg.gateway.is_empty() {
            subnet.first_host()
        } else {
            cfg.gateway.parse().map_err(|_| StoreError::Invalid(format!("invalid gateway address {}", cfg.gateway)))?
        };
        if !subnet.contains(gateway) {
            return Err(StoreError::Invalid(format!("gateway {gateway} is not in subnet {subnet}")));
        }
        let used: BTreeSet<u32> = self.networks.values().map(|o| o.vni).collect();
        let vni = allocator::pick_vni(&used).ok_or_else(|| StoreError::Invalid("no VXLAN ID left".into()))?;
        n.created = at.to_string();
        n.options.insert(VXLAN_ID_OPTION.into(), vni.to_string());
        if let Some(c) = n.ipam.config.first_mut() {
            c.subnet = subnet.to_string();
            c.gateway = gateway.to_string();
        }
        let mut rec = NetworkRecord { pool: AddrPool::new(subnet, gateway), network: n, vni, node_ips: Table::new() };
        if rec.network.ingress {
            for id in self.nodes.keys() {
                if let Some(ip) = rec.pool.allocate() {
                    rec.node_ips.insert(id.clone(), ip);
                }
            }
        }
        self.networks.insert(rec.network.id.clone(), rec);
        Ok(())
    }

    /// `network rm`: refused while a service names the network or a task still holds an address on it.
    pub(super) fn remove_network(&mut self, id: &str) -> Result<(), StoreError> {
        let rec = self.networks.get(id).ok_or_else(|| StoreError::NotFound(format!("network {id} not found")))?;
        let in_use = |by| StoreError::InUse { network: rec.network.id.clone(), by };
        for s in self.services.values() {
            let named = s.spec.task_template.networks.iter().any(|a| a.target == id);
            if named || (rec.network.ingress && uses_ingress(s)) {
                return Err(in_use(NetworkUser::Service(s.id.clone())));
            }
        }
        for t in self.tasks.values() {
            if !t.status.state.is_terminal() && t.networks_attachments.iter().any(|a| a.network.id == id) {
                return Err(in_use(NetworkUser::Task(t.id.clone())));
            }
        }
        self.networks.remove(id);
        Ok(())
    }

    /// Give a node its ingress address (when there is an ingress network).
    pub(super) fn allocate_node_ip(&mut self, node_id: &str) {
        let Some(id) = self.ingress().map(|n| n.network.id.clone()) else { return };
        let rec = self.networks.get_mut(&id).expect("found above");
        if !rec.node_ips.contains_key(node_id) {
            if let Some(ip) = rec.pool.allocate() {
                rec.node_ips.insert(node_id.to_string(), ip);
            }
        }
    }

    /// A removed node's addresses go back.
    pub(super) fn release_node_ips(&mut self, node_id: &str) {
        let holding: Vec<String> =
            self.networks.iter().filter(|(_, r)| r.node_ips.contains_key(node_id)).map(|(k, _)| k.clone()).collect();
        for id in holding {
            let rec = self.networks.get_mut(&id).expect("listed above");
            if let Some(ip) = rec.node_ips.remove(node_id) {
                rec.pool.release(ip);
            }
        }
    }

    /// The networks a task attaches to: those its spec names, then ingress when its service publishes through the
    /// mesh (`mesh`). A service's VIPs are on the same networks, from its template.
    pub fn attached_networks(&self, networks: &[NetworkAttachmentConfig], mesh: bool) -> Vec<String> {
        let mut ids: Vec<String> = Vec::new();
        for a in networks {
            if !ids.contains(&a.target) {
                ids.push(a.target.clone());
            }
        }
        if mesh {
            if let Some(i) = self.ingress() {
                if !ids.contains(&i.network.id) {
                    ids.push(i.network.id.clone());
                }
            }
        }
        ids
    }

    /// Fill in `svc.endpoint`: published ports (auto ones from 30000–32767, kept across updates) and one VIP per
    /// network in `vip` mode (kept for networks the service stays on). `old` is the endpoint before an update.
    /// On error nothing has been taken.
    pub(super) fn allocate_endpoint(&mut self, svc: &mut Service, old: Option<&Endpoint>) -> Result<(), StoreError> {
        let spec = svc.spec.endpoint_spec.clone().unwrap_or_default();
        let mode = endpoint_mode(Some(&spec)).to_string();
        let mut ports: Vec<PortConfig> = Vec::new();
        // ingress ports other services hold
        let mut taken: BTreeSet<(String, u32)> = BTreeSet::new();
        for o in self.services.values().filter(|o| o.id != svc.id) {
            for p in o.endpoint.iter().flat_map(|e| &e.ports).filter(|p| p.publish_mode == "ingress") {
                taken.insert((p.protocol.clone(), p.published_port));
            }
        }
        let mut mine: BTreeSet<(String, u32)> = BTreeSet::new();
        for p in spec.ports.iter().map(normalize_port) {
            let mut p = p;
            if p.publish_mode == "ingress" && mode == "dnsrr" {
                return Err(StoreError::Invalid(
                    "rpc error: code = InvalidArgument desc = EndpointSpec: port published with ingress mode can't be used with dnsrr mode".into(),
                ));
            }
            if p.published_port == 0 {
                let before = old.into_iter().flat_map(|e| &e.ports).find(|o| {
                    o.protocol == p.protocol && o.target_port == p.target_port && o.publish_mode == p.publish_mode
                });
                p.published_port = match before {
                    Some(b) if !mine.contains(&(p.protocol.clone(), b.published_port)) => b.published_port,
                    _ => {
                        let used: BTreeSet<u32> = taken
                            .iter()
                            .chain(mine.iter())
                            .filter(|(proto, _)| *proto == p.protocol)
                            .map(|(_, port)| *port)
                            .collect();
                        allocator::pick_port(&used).ok_or_else(|| {
                            StoreError::Invalid("no dynamically allocatable port left (30000-32767)".into())
                        })?
                    }
                };
            } else if p.publish_mode == "ingress" && taken.contains(&(p.protocol.clone(), p.published_port)) {
                let other = self
                    .services
                    .values()
                    .find(|o| {
                        o.id != svc.id
                            && o.endpoint.iter().flat_map(|e| &e.ports).any(|q| {
                                q.publish_mode == "ingress"
                                    && q.protocol == p.protocol
                                    && q.published_port == p.published_port
                            })
                    })
                    .map(|o| (o.spec.name.clone(), o.id.clone()))
                    .unwrap_or_default();
                return Err(StoreError::Invalid(format!(
                    "port '{}' is already in use by service '{}' ({}) as an ingress port",
                    p.published_port, other.0, other.1
                )));
            }
            if p.publish_mode == "ingress" && !mine.insert((p.protocol.clone(), p.published_port)) {
                return Err(StoreError::Invalid(format!(
                    "EndpointSpec: duplicate published ports provided: {}/{}",
                    p.published_port, p.protocol
                )));
            }
            ports.push(p);
        }
        if ports.iter().any(|p| p.publish_mode == "ingress") && self.ingress().is_none() {
            return Err(StoreError::Invalid("service needs ingress network, but no ingress network is present".into()));
        }
        let wanted = self.attached_networks(&svc.spec.task_template.networks, uses_ingress(svc));
        for id in &wanted {
            if !self.networks.contains_key(id) {
                return Err(StoreError::NotFound(format!("network {id} not found")));
            }
        }
        // VIPs: keep those on networks still wanted, release the rest, allocate the missing ones.
        let mut vips: Vec<EndpointVirtualIp> = Vec::new();
        let old_vips: Vec<EndpointVirtualIp> = old.map(|e| e.virtual_ips.clone()).unwrap_or_default();
        let mut fresh: Vec<(String, Ipv4Addr)> = Vec::new();
        if mode == "vip" {
            for id in &wanted {
                if let Some(v) = old_vips.iter().find(|v| &v.network_id == id) {
                    vips.push(v.clone());
                    continue;
                }
                let rec = self.networks.get_mut(id).expect("checked above");
                match rec.pool.allocate() {
                    Some(ip) => {
                        fresh.push((id.clone(), ip));
                        vips.push(EndpointVirtualIp { network_id: id.clone(), addr: rec.subnet().cidr_of(ip) });
                    }
                    None => {
                        let (name, subnet) = (rec.network.name.clone(), rec.subnet());
                        for (nid, ip) in fresh {
                            if let Some(r) = self.networks.get_mut(&nid) {
                                r.pool.release(ip);
                            }
                        }
                        return Err(StoreError::Invalid(format!(
                            "could not allocate a virtual IP on network {name} ({subnet}): no addresses left"
                        )));
                    }
                }
            }
        }
        for v in old_vips.iter().filter(|v| !vips.contains(v)) {
            self.release_cidr(&v.network_id, &v.addr);
        }
        svc.endpoint = Some(Endpoint { spec, ports, virtual_ips: vips });
        Ok(())
    }

    /// A removed service's VIPs go back.
    pub(super) fn release_endpoint(&mut self, ep: &Endpoint) {
        for v in &ep.virtual_ips {
            self.release_cidr(&v.network_id, &v.addr);
        }
    }

    fn release_cidr(&mut self, network: &str, cidr: &str) {
        if let (Some(rec), Ok((ip, _))) = (self.networks.get_mut(network), allocator::parse_cidr(cidr)) {
            rec.pool.release(ip);
        }
    }

    /// Give a new task its addresses. When a network is gone or full, the task is rejected with the reason (the
    /// restart policy then retries it), rather than waiting silently as swarmkit's tasks do in NEW.
    pub(super) fn allocate_task(&mut self, t: &mut Task) {
        if t.status.state.is_terminal() || !t.networks_attachments.is_empty() {
            return;
        }
        let Some(svc) = self.services.get(&t.service_id) else { return };
        let wanted = self.attached_networks(&t.spec.networks, uses_ingress(svc));
        let mut got: Vec<NetworkAttachment> = Vec::new();
        let mut failure = None;
        for id in &wanted {
            let Some(rec) = self.networks.get_mut(id) else {
                failure = Some(format!("network {id} not found"));
                break;
            };
            match rec.pool.allocate() {
                Some(ip) => {
                    let mut network = rec.network.clone();
                    network.containers.clear();
                    got.push(NetworkAttachment { network, addresses: vec![rec.subnet().cidr_of(ip)] });
                }
                None => {
                    failure = Some(format!(
                        "no IP address left in network {} ({}) for this task",
                        rec.network.name,
                        rec.subnet()
                    ));
                    break;
                }
            }
        }
        // host-mode ports show on the task (`service ps` PORTS) and tell its node what to publish
        let host: Vec<PortConfig> = svc
            .endpoint
            .iter()
            .flat_map(|e| &e.ports)
            .filter(|p| p.publish_mode == "host")
            .cloned()
            .collect();
        if !host.is_empty() {
            t.status.port_status = Some(skep_api::docker::PortStatus { ports: host });
        }
        match failure {
            None => t.networks_attachments = got,
            Some(err) => {
                for a in &got {
                    for addr in &a.addresses {
                        self.release_cidr(&a.network.id, addr);
                    }
                }
                t.status.state = TaskState::Rejected;
                t.status.message = "allocation failed".into();
                t.status.err = err;
            }
        }
    }

    /// A task that will not run again gives its addresses back.
    pub(super) fn release_task(&mut self, t: &Task) {
        for a in &t.networks_attachments {
            for addr in &a.addresses {
                self.release_cidr(&a.network.id, addr);
            }
        }
    }
}
