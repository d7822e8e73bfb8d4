//! Each node's [`NetworkView`], computed from the store: which networks it takes part in, every remote endpoint on
//! them, and the services it can reach there. The dispatcher sends it with the node's assignments; since it is a pure
//! function of the replicated state, every node's data plane and DNS follow the managers, with no gossip to diverge
//! (Docker spreads this state by gossip, in libnetwork's networkdb, moby/moby `libnetwork/networkdb/`, which is only
//! eventually consistent).

use crate::store::{endpoint_mode, normalize_port, uses_ingress, ClusterState};
use skep_api::docker::{Task, TaskState};
use skep_api::netview::{NetworkInfo, NetworkView, Peer, ServiceInfo, TaskEndpoint};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

/// A task that holds its addresses: placed on a node and not yet over.
fn holds_addresses(t: &Task) -> bool {
    !t.node_id.is_empty() && !t.status.state.is_terminal() && !t.networks_attachments.is_empty()
}

/// What every node's view is cut from; built once per store version.
#[derive(Default)]
pub struct ClusterNet {
    /// Per network: (overlay address, node ID) of every live task endpoint.
    endpoints: BTreeMap<String, Vec<(Ipv4Addr, String)>>,
    /// Per node: the networks its live tasks are on.
    node_networks: BTreeMap<String, BTreeSet<String>>,
    /// Underlay address per node.
    node_addrs: BTreeMap<String, Ipv4Addr>,
    /// Services, as nodes see them, with the networks they are on.
    services: Vec<(BTreeSet<String>, bool, ServiceInfo)>,
    /// Does anything publish through the routing mesh?
    mesh: bool,
}

impl ClusterNet {
    /// Index the state.
    pub fn new(state: &ClusterState) -> ClusterNet {
        let mut c = ClusterNet::default();
        for (id, rec) in &state.nodes {
            if let Ok(ip) = rec.node.status.addr.parse() {
                c.node_addrs.insert(id.clone(), ip);
            }
        }
        let mut by_service: BTreeMap<&str, Vec<TaskEndpoint>> = BTreeMap::new();
        for t in state.tasks.values().filter(|t| holds_addresses(t)) {
            let mut addrs = Vec::new();
            for a in &t.networks_attachments {
                let Some((ip, _)) = a.ipv4() else { continue };
                c.endpoints.entry(a.network.id.clone()).or_default().push((ip, t.node_id.clone()));
                c.node_networks.entry(t.node_id.clone()).or_default().insert(a.network.id.clone());
                addrs.push((a.network.id.clone(), ip));
            }
            let svc = state.services.get(&t.service_id).map(|s| s.spec.name.as_str()).unwrap_or_default();
            let slot = if t.slot > 0 { t.slot.to_string() } else { t.node_id.clone() };
            by_service.entry(t.service_id.as_str()).or_default().push(TaskEndpoint {
                id: t.id.clone(),
                name: format!("{svc}.{slot}.{}", t.id),
                node_id: t.node_id.clone(),
                addrs,
                backend: t.status.state == TaskState::Running && t.desired_state == TaskState::Running,
            });
        }
        for s in state.services.values() {
            let mesh = uses_ingress(s);
            c.mesh |= mesh;
            let nets: BTreeSet<String> = state.attached_networks(&s.spec.task_template.networks, mesh).into_iter().collect();
            let ep = s.endpoint.as_ref();
            let vips = ep
                .iter()
                .flat_map(|e| &e.virtual_ips)
                .filter_map(|v| Some((v.network_id.clone(), v.ipv4()?)))
                .collect();
            let aliases = s
                .spec
                .task_template
                .networks
                .iter()
                .filter(|a| !a.aliases.is_empty())
                .map(|a| (a.target.clone(), a.aliases.clone()))
                .collect();
            let info = ServiceInfo {
                id: s.id.clone(),
                name: s.spec.name.clone(),
                endpoint_mode: endpoint_mode(s.spec.endpoint_spec.as_ref()).to_string(),
                vips,
                aliases,
                ports: ep.map(|e| e.ports.iter().map(normalize_port).collect()).unwrap_or_default(),
                tasks: by_service.remove(s.id.as_str()).unwrap_or_default(),
                proxy_protocol: s.spec.labels.get("com.skep.proxy-protocol").is_some_and(|v| v == "v2"),
            };
            c.services.push((nets, mesh, info));
        }
        c
    }

    /// The view of one node.
    pub fn view(&self, state: &ClusterState, node_id: &str) -> NetworkView {
        let mut nets: BTreeSet<String> = self.node_networks.get(node_id).cloned().unwrap_or_default();
        let ingress = state.ingress();
        if self.mesh {
            nets.extend(ingress.map(|i| i.network.id.clone()));
        }
        let mut view = NetworkView::default();
        for id in &nets {
            let Some(rec) = state.networks.get(id) else { continue };
            let mut peers: BTreeSet<Peer> = BTreeSet::new();
            for (ip, node) in self.endpoints.get(id).into_iter().flatten() {
                if node != node_id {
                    if let Some(addr) = self.node_addrs.get(node) {
                        peers.insert(Peer { ip: *ip, node: *addr });
                    }
                }
            }
            for (node, ip) in &rec.node_ips {
                if node != node_id {
                    if let Some(addr) = self.node_addrs.get(node) {
                        peers.insert(Peer { ip: *ip, node: *addr });
                    }
                }
            }
            let subnet = rec.subnet();
            view.networks.push(NetworkInfo {
                id: id.clone(),
                name: rec.network.name.clone(),
                vni: rec.vni,
                subnet: Ipv4Addr::from(subnet.base),
                prefix_len: subnet.len,
                mtu: rec.network.options.get(skep_api::docker::MTU_OPTION).and_then(|m| m.parse().ok()),
                ingress: rec.network.ingress,
                internal: rec.network.internal,
                leg: rec.node_ips.get(node_id).copied(),
                peers: peers.into_iter().collect(),
            });
        }
        for (snets, mesh, info) in &self.services {
            if (*mesh && self.mesh) || snets.iter().any(|n| nets.contains(n)) {
                view.services.push(info.clone());
            }
        }
        view
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Command, Op};
    use skep_api::docker::{
        EndpointSpec, Ipam, IpamConfig, Network, NetworkAttachmentConfig, Node, NodeRole, PortConfig, Service, TaskStatus,
    };

    fn apply(s: &mut ClusterState, op: Op) {
        let i = s.index + 1;
        s.apply(i, &Command { at: "t".into(), op }).unwrap();
    }

    fn node(id: &str, addr: &str) -> Op {
        let mut n = Node { id: id.into(), ..Default::default() };
        n.status.addr = addr.into();
        n.spec.role = NodeRole::Worker;
        Op::AddNode { node: Box::new(n), cluster_addr: String::new() }
    }

    fn net(id: &str, subnet: &str, ingress: bool) -> Op {
        Op::CreateNetwork {
            network: Box::new(Network {
                id: id.into(),
                name: id.into(),
                ingress,
                ipam: Ipam { config: vec![IpamConfig { subnet: subnet.into(), ..Default::default() }], ..Default::default() },
                ..Default::default()
            }),
        }
    }

    #[test]
    fn nodes_see_their_networks_remote_peers_and_the_mesh() {
        let mut s = ClusterState::default();
        apply(&mut s, node("n1", "192.0.2.1"));
        apply(&mut s, node("n2", "192.0.2.2"));
        apply(&mut s, node("n3", "192.0.2.3"));
        apply(&mut s, net("ing", "10.255.0.0/24", true));
        apply(&mut s, net("app", "10.1.0.0/24", false));
        let mut svc = Service { id: "s1".into(), ..Default::default() };
        svc.spec.name = "web".into();
        svc.spec.task_template.networks = vec![NetworkAttachmentConfig { target: "app".into(), ..Default::default() }];
        svc.spec.endpoint_spec = Some(EndpointSpec {
            mode: String::new(),
            ports: vec![PortConfig { published_port: 8080, target_port: 80, ..Default::default() }],
        });
        apply(&mut s, Op::CreateService { service: Box::new(svc) });
        let mk = |id: &str, node: &str| {
            let mut t = Task { id: id.into(), service_id: "s1".into(), slot: 1, node_id: node.into(), ..Default::default() };
            t.spec.networks = vec![NetworkAttachmentConfig { target: "app".into(), ..Default::default() }];
            t.status.state = TaskState::Assigned;
            t.desired_state = TaskState::Running;
            t
        };
        apply(&mut s, Op::PutTasks { tasks: vec![mk("t1", "n1"), mk("t2", "n2")] });
        let running = TaskStatus { state: TaskState::Running, ..Default::default() };
        apply(&mut s, Op::ReportTaskStatus { updates: vec![("t1".into(), running)] });

        let c = ClusterNet::new(&s);
        let v1 = c.view(&s, "n1");
        let app = v1.network("app").unwrap();
        assert_eq!(app.peers.len(), 1, "t2 on n2: {app:?}");
        assert_eq!(app.peers[0].node, "192.0.2.2".parse::<Ipv4Addr>().unwrap());
        let ing = v1.ingress().unwrap();
        assert!(ing.leg.is_some());
        // peers on ingress: t2's ingress address and the legs of n2 and n3
        assert_eq!(ing.peers.len(), 3, "{ing:?}");
        let web = &v1.services[0];
        assert_eq!(web.vips.len(), 2);
        assert_eq!(web.tasks.iter().filter(|t| t.backend).count(), 1, "only t1 runs");
        // n3 runs nothing but is in the mesh
        let v3 = c.view(&s, "n3");
        assert!(v3.network("app").is_none());
        assert!(v3.ingress().is_some());
        assert_eq!(v3.services.len(), 1);
    }
}
