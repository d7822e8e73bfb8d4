//! The node's networking agent: turns the [`NetworkView`] the leader sends with the assignments into kernel state
//! (through `skep-overlay`) and DNS answers (through `skep-dns`), and gives each networked task its sandbox.
//!
//! - **Networks**: a node takes part in the networks of its tasks, plus `ingress` when anything publishes through the
//!   routing mesh. Each is synced with the peers the view lists; one no longer needed is removed.
//! - **Sandboxes**: a task with network attachments gets a named network namespace with one interface per network
//!   (its allocated address), its VIP table, and a DNS server on 127.0.0.11:53 inside. The `process` engine starts
//!   the task in it; for an engine that cannot (`docker`), the task's own namespace is plumbed after it starts.
//! - **VIPs**: each sandbox's nftables table DNATs every VIP on its networks to the service's running tasks there.
//! - **Routing mesh**: the node's leg on `ingress` and an nftables table that DNATs every published port to the
//!   running tasks' ingress addresses anywhere in the cluster. A service labelled `com.skep.proxy-protocol=v2` is
//!   published by a userspace relay instead, which tells the backend the client's address (PROXY protocol v2).
//! - **DNS**: one [`Records`] table per view, shared by every sandbox's server; each server answers only for the
//!   networks of its task.
//! - **Metrics**: every DNS server counts its answers in the daemon's [`QueryCounters`] (`NetConfig::dns_queries`);
//!   the mesh's connections are read at a scrape ([`NetAgent::mesh_connections`]): the counters of the ingress
//!   table's DNAT rules in nftables, and the relays' accepted connections.
//!
//! Everything is reconciled from the latest view under one lock, so the kernel follows the managers' store and a
//! failed step is retried with the next view. Errors are logged, never fatal to the agent; a task whose sandbox
//! cannot be made is rejected with the reason ([`NetError`], in `network/error.rs`).

mod error;

pub use error::NetError;
pub use skep_dns::{QueryCounters, QueryResult};
/// A published port's protocol (of [`MeshConnections`]).
pub use skep_overlay::nft::Proto;

use skep_api::docker::Task;
use skep_api::netview::{NetworkInfo, NetworkView};
use skep_dns::{Records, RecordsBuilder, Upstream};
use skep_overlay::netns::Netns;
use skep_overlay::network::{DataPlane, DataPlaneConfig, NetworkPlan, Peer};
use skep_overlay::nft::{self, HostPort, IngressPort, VipRule};
use skep_overlay::proxy::{ProxyConfig, ProxyListener};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex};

/// The service label that publishes a service's ingress ports through the PROXY protocol v2 relay.
pub const PROXY_LABEL: &str = "com.skep.proxy-protocol";

/// How the agent is set up.
#[derive(Clone, Debug)]
pub struct NetConfig {
    /// Unique per node on this machine (names of the namespaces it creates).
    pub prefix: String,
    /// The node's underlay address (VXLAN endpoint).
    pub underlay: Ipv4Addr,
    /// Where resolv.conf files for tasks are written.
    pub state_dir: PathBuf,
    /// Where the tasks' DNS servers count their answers (the daemon's, kept across agents).
    pub dns_queries: QueryCounters,
}

/// How long a scrape waits for nft to list the mesh's counters.
const MESH_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// How a connection came through the routing mesh ([`NetAgent::mesh_connections`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshPath {
    /// DNATed by the kernel (the ingress table's rule for the port).
    Nftables,
    /// Accepted by the userspace PROXY v2 relay of the port.
    Proxy,
}

impl MeshPath {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            MeshPath::Nftables => "nftables",
            MeshPath::Proxy => "proxy",
        }
    }
}

/// New connections to one published port that reached the mesh on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeshConnections {
    /// TCP or UDP (a relay is TCP).
    pub proto: Proto,
    /// The published port.
    pub port: u16,
    /// The kernel's DNAT or the relay.
    pub via: MeshPath,
    /// Connections since the rule or relay was made (the DNAT counters restart when the ingress table is replaced,
    /// i.e. when a published port or its backends change; Prometheus's `rate()` takes that as a reset).
    pub count: u64,
}

/// What a scrape reads of the mesh without the agent's lock (held across nft runs while reconciling).
#[derive(Default)]
struct MeshWatch {
    /// The ingress table has DNAT rules (so its counters are worth listing).
    dnat: bool,
    /// Accepted connections of each relay, by port.
    relays: BTreeMap<u16, Arc<AtomicU64>>,
}

/// A running PROXY v2 relay: its backends, its stop switch, the connections it accepted.
type Relay = (watch::Sender<Vec<SocketAddr>>, watch::Sender<bool>, Arc<AtomicU64>);

/// A task's sandbox, once made.
struct Sandbox {
    ns: Netns,
    /// (network ID, address) per interface.
    addrs: Vec<(String, Ipv4Addr)>,
    dns: Option<skep_dns::DnsServer>,
    /// The VIP rules last applied (skip unchanged ones).
    vips: Option<Vec<VipRule>>,
}

struct Inner {
    view: NetworkView,
    /// Networks synced into the kernel: vni → (network ID, last plan).
    synced: BTreeMap<u32, NetworkPlan>,
    sandboxes: BTreeMap<String, Sandbox>,
    /// The ingress leg made (vni, address).
    leg: Option<(u32, Ipv4Addr, String)>,
    /// The ingress rules last applied.
    ingress_rules: Option<Vec<IngressPort>>,
    /// PROXY v2 relays by port.
    proxies: BTreeMap<u16, Relay>,
    /// Host-mode publishing per task: gateway pair index and the ports (backend = the task end of the pair).
    gateways: BTreeMap<String, (u32, Vec<HostPort>)>,
    /// The host-port rules last applied.
    host_rules: Option<Vec<HostPort>>,
}

/// The node's networking agent. Cheap to share behind an `Arc`.
pub struct NetAgent {
    cfg: NetConfig,
    plane: DataPlane,
    records: watch::Sender<Arc<Records>>,
    upstream: Upstream,
    inner: Mutex<Inner>,
    /// The mesh as the last reconcile left it, for scrapes.
    mesh: std::sync::Mutex<MeshWatch>,
}

impl NetAgent {
    /// Starts the agent (no kernel change until the first view or task).
    pub async fn new(cfg: NetConfig) -> Result<NetAgent, NetError> {
        let plane = DataPlane::new(DataPlaneConfig {
            prefix: cfg.prefix.clone(),
            underlay: cfg.underlay,
            underlay_mtu: None,
            node_ns: None,
        })
        .await
        .map_err(NetError::DataPlane)?;
        let _ = std::fs::create_dir_all(&cfg.state_dir);
        Ok(NetAgent {
            cfg,
            plane,
            records: watch::channel(Arc::new(Records::empty())).0,
            upstream: Upstream::from_host(),
            inner: Mutex::new(Inner {
                view: NetworkView::default(),
                synced: BTreeMap::new(),
                sandboxes: BTreeMap::new(),
                leg: None,
                ingress_rules: None,
                proxies: BTreeMap::new(),
                gateways: BTreeMap::new(),
                host_rules: None,
            }),
            mesh: Default::default(),
        })
    }

    /// New connections through the routing mesh on this node, per published port: the ingress table's DNAT counters
    /// (one `nft list`, bounded in time; absent when it fails, logged) and the relays' accepted connections.
    pub async fn mesh_connections(&self) -> Vec<MeshConnections> {
        let (dnat, relays) = {
            let m = self.mesh.lock().unwrap_or_else(|p| p.into_inner());
            (m.dnat, m.relays.iter().map(|(p, c)| (*p, c.load(Ordering::Relaxed))).collect::<Vec<_>>())
        };
        let mut out = Vec::new();
        if dnat {
            match nft::ingress_connections(None, MESH_READ_TIMEOUT).await {
                Ok(ports) => out.extend(ports.into_iter().map(|p| MeshConnections {
                    proto: p.proto,
                    port: p.port,
                    via: MeshPath::Nftables,
                    count: p.connections,
                })),
                Err(e) => tracing::debug!("reading the mesh's counters: {e}"),
            }
        }
        let relayed = relays.into_iter().map(|(port, count)| MeshConnections {
            proto: Proto::Tcp,
            port,
            via: MeshPath::Proxy,
            count,
        });
        out.extend(relayed);
        out
    }

    /// Publish what scrapes read of the mesh: whether the ingress table DNATs, and the relays' counters.
    fn watch_mesh(&self, inner: &Inner) {
        let dnat = inner.ingress_rules.as_ref().is_some_and(|r| r.iter().any(|p| !p.backends.is_empty()));
        let relays = inner.proxies.iter().map(|(p, (_, _, c))| (*p, c.clone())).collect();
        *self.mesh.lock().unwrap_or_else(|p| p.into_inner()) = MeshWatch { dnat, relays };
    }

    /// A new view from the leader: reconcile networks, routing mesh, VIP tables and DNS.
    pub async fn apply_view(&self, view: NetworkView) {
        let mut inner = self.inner.lock().await;
        inner.view = view;
        self.reconcile(&mut inner).await;
    }

    /// Make the sandbox of a task about to start. Returns its namespace path and resolv.conf, or `None` when the
    /// task has no networks.
    pub async fn prepare_task(&self, task: &Task) -> Result<Option<(PathBuf, PathBuf)>, NetError> {
        if !Self::needs_sandbox(task) {
            return Ok(None);
        }
        let ns = self.plane.sandbox_create(&task.id).await.map_err(NetError::Sandbox)?;
        let path = ns.path().to_path_buf();
        self.attach(task, ns, true).await?;
        Ok(Some((path, self.resolv_conf(&task.id)?)))
    }

    /// Does the task get a sandbox from this agent? (It has networks, or host-mode published ports.)
    pub fn needs_sandbox(task: &Task) -> bool {
        !task.networks_attachments.is_empty() || !host_ports(task).is_empty()
    }

    /// Plumb a task that runs in its own namespace (a container), through its PID. (Host-mode ports are not
    /// published for such tasks yet: their namespace has its own default route.)
    pub async fn attach_pid(&self, task: &Task, pid: i64) -> Result<(), NetError> {
        if task.networks_attachments.is_empty() || pid <= 0 {
            return Ok(());
        }
        let ns = Netns::open(format!("/proc/{pid}/ns/net")).map_err(|source| NetError::TaskNamespace { pid, source })?;
        self.attach(task, ns, false).await
    }

    /// After an agent restart: take a running task's sandbox back (its DNS server is started again).
    pub async fn adopt_task(&self, task: &Task) {
        if !Self::needs_sandbox(task) {
            return;
        }
        let name = self.plane.sandbox_ns_name(&task.id);
        match Netns::open_named(&name) {
            Ok(Some(ns)) => {
                let mut inner = self.inner.lock().await;
                let addrs = addrs_of(task);
                let dns = self.start_dns(&ns, &addrs).await;
                if let Err(e) = self.gateway(&mut inner, task, &ns).await {
                    tracing::warn!(task = %task.id, "host-mode ports of an adopted task: {e}");
                }
                inner.sandboxes.insert(task.id.clone(), Sandbox { ns, addrs, dns, vips: None });
                self.reconcile(&mut inner).await;
            }
            Ok(None) => tracing::warn!(task = %task.id, "adopted task has no network sandbox"),
            Err(e) => tracing::warn!(task = %task.id, "adopting the network sandbox: {e}"),
        }
    }

    /// A task is gone: remove its sandbox and whatever only it needed.
    pub async fn release_task(&self, task_id: &str) {
        let mut inner = self.inner.lock().await;
        if let Some(sb) = inner.sandboxes.remove(task_id) {
            if let Some(d) = sb.dns {
                d.shutdown().await;
            }
        }
        inner.gateways.remove(task_id);
        if let Err(e) = self.plane.sandbox_remove(task_id).await {
            tracing::warn!(task = %task_id, "removing the network sandbox: {e}");
        }
        let _ = std::fs::remove_file(self.cfg.state_dir.join(format!("{task_id}.resolv.conf")));
        self.reconcile(&mut inner).await;
    }

    /// The node leaves the swarm: remove everything this agent made.
    pub async fn teardown(&self) {
        let mut inner = self.inner.lock().await;
        for (_, sb) in std::mem::take(&mut inner.sandboxes) {
            if let Some(d) = sb.dns {
                d.shutdown().await;
            }
        }
        for (_, (_, stop, _)) in std::mem::take(&mut inner.proxies) {
            let _ = stop.send(true);
        }
        if let Err(e) = nft::remove_ingress(None).await {
            tracing::warn!("removing the ingress rules: {e}");
        }
        if let Err(e) = nft::remove_host_ports(None).await {
            tracing::warn!("removing the host-mode port rules: {e}");
        }
        inner.gateways.clear();
        inner.host_rules = None;
        if let Err(e) = self.plane.teardown_all().await {
            tracing::warn!("tearing the overlay down: {e}");
        }
        inner.synced.clear();
        inner.leg = None;
        inner.ingress_rules = None;
        inner.view = NetworkView::default();
        self.watch_mesh(&inner);
    }

    async fn attach(&self, task: &Task, ns: Netns, own: bool) -> Result<(), NetError> {
        let mut inner = self.inner.lock().await;
        if own {
            self.gateway(&mut inner, task, &ns).await?;
        }
        let addrs = addrs_of(task);
        for (i, a) in task.networks_attachments.iter().enumerate() {
            let (Some(vni), Some((ip, len))) = (a.network.vni(), a.ipv4()) else {
                return Err(NetError::NotAllocated { network: a.network.name.clone() });
            };
            self.ensure_network(&mut inner, &a.network.id, vni, &a.network).await?;
            self.plane
                .sandbox_attach(&ns, vni, &format!("eth{i}"), ip, len)
                .await
                .map_err(|source| NetError::Attach { network: a.network.name.clone(), source })?;
        }
        let dns = self.start_dns(&ns, &addrs).await;
        inner.sandboxes.insert(task.id.clone(), Sandbox { ns, addrs, dns, vips: None });
        self.reconcile(&mut inner).await;
        Ok(())
    }

    /// Host-mode ports: a gateway link between the node and the sandbox, and the task's ports in the node's table.
    async fn gateway(&self, inner: &mut Inner, task: &Task, ns: &Netns) -> Result<(), NetError> {
        let mut ports = host_ports(task);
        if ports.is_empty() {
            return Ok(());
        }
        let used: BTreeSet<u32> = inner.gateways.values().map(|(i, _)| *i).collect();
        let i = (0..16384).find(|i| !used.contains(i)).ok_or(NetError::NoGatewayAddress)?;
        let (node_end, task_end) = gateway_pair(i);
        self.plane.sandbox_gateway(ns, node_end, task_end).await.map_err(NetError::Gateway)?;
        for p in &mut ports {
            p.backend = task_end;
        }
        inner.gateways.insert(task.id.clone(), (i, ports));
        Ok(())
    }

    /// Sync a network a task needs, with the peers of the current view (or none yet).
    async fn ensure_network(
        &self,
        inner: &mut Inner,
        id: &str,
        vni: u32,
        n: &skep_api::docker::Network,
    ) -> Result<(), NetError> {
        if inner.synced.contains_key(&vni) {
            return Ok(());
        }
        let plan = match inner.view.network(id) {
            Some(info) => plan_of(info),
            None => {
                let (subnet, len) = n
                    .subnet()
                    .and_then(skep_api::docker::parse_ipv4_cidr)
                    .ok_or_else(|| NetError::NoSubnet { network: n.name.clone() })?;
                NetworkPlan {
                    id: id.to_string(),
                    vni,
                    subnet,
                    prefix_len: len,
                    mtu: n.options.get(skep_api::docker::MTU_OPTION).and_then(|m| m.parse().ok()),
                    peers: vec![],
                }
            }
        };
        self.plane.sync_network(&plan).await.map_err(|source| NetError::Network { network: n.name.clone(), source })?;
        inner.synced.insert(vni, plan);
        Ok(())
    }

    /// The sandbox's DNS server: sockets on 127.0.0.11 (ephemeral ports) made inside it, served on the daemon's
    /// runtime, and the redirect from port 53 to them.
    async fn start_dns(&self, ns: &Netns, addrs: &[(String, Ipv4Addr)]) -> Option<skep_dns::DnsServer> {
        // on a thread of its own (`run_async`), so no runtime worker waits for it
        let sockets = ns
            .run_async(|| {
                let any = SocketAddr::from((nft::DNS_ADDR, 0));
                Ok::<_, std::io::Error>((std::net::UdpSocket::bind(any)?, std::net::TcpListener::bind(any)?))
            })
            .await;
        let scope: Vec<String> = addrs.iter().map(|(n, _)| n.clone()).collect();
        let (udp, tcp) = match sockets {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::warn!("embedded DNS: binding 127.0.0.11 in the sandbox: {e}");
                return None;
            }
            Err(e) => {
                tracing::warn!("embedded DNS: entering the sandbox: {e}");
                return None;
            }
        };
        let ports = (udp.local_addr().map(|a| a.port()), tcp.local_addr().map(|a| a.port()));
        let (Ok(up), Ok(tp)) = ports else { return None };
        if let Err(e) = nft::apply_dns_redirect(Some(ns.path()), up, tp).await {
            tracing::warn!("embedded DNS: redirect of port 53: {e}");
            return None;
        }
        let counters = self.cfg.dns_queries.clone();
        match skep_dns::serve(udp, tcp, scope, self.records.subscribe(), self.upstream.clone(), counters) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("embedded DNS: {e}");
                None
            }
        }
    }

    fn resolv_conf(&self, task_id: &str) -> Result<PathBuf, NetError> {
        let p = self.cfg.state_dir.join(format!("{task_id}.resolv.conf"));
        std::fs::write(&p, "nameserver 127.0.0.11\noptions ndots:0\n").map_err(|source| NetError::ResolvConf { path: p.clone(), source })?;
        Ok(p)
    }

    /// Make the kernel and DNS match `inner.view` and the local sandboxes.
    async fn reconcile(&self, inner: &mut Inner) {
        let view = inner.view.clone();
        // networks: those of local sandboxes, and ingress when the view has it
        let mut wanted: BTreeMap<u32, NetworkPlan> = BTreeMap::new();
        let local: BTreeSet<&str> =
            inner.sandboxes.values().flat_map(|s| s.addrs.iter().map(|(n, _)| n.as_str())).collect();
        for n in &view.networks {
            if n.ingress || local.contains(n.id.as_str()) {
                wanted.insert(n.vni, plan_of(n));
            }
        }
        // keep networks a sandbox uses even if the view does not list them yet
        for (vni, plan) in &inner.synced {
            if local.contains(plan.id.as_str()) && !wanted.contains_key(vni) {
                wanted.insert(*vni, plan.clone());
            }
        }
        for (vni, plan) in &wanted {
            if inner.synced.get(vni) != Some(plan) {
                match self.plane.sync_network(plan).await {
                    Ok(()) => {
                        inner.synced.insert(*vni, plan.clone());
                    }
                    Err(e) => tracing::warn!(network = %plan.id, "syncing the overlay: {e}"),
                }
            }
        }
        let gone: Vec<u32> = inner.synced.keys().filter(|v| !wanted.contains_key(v)).copied().collect();
        for vni in gone {
            if inner.leg.as_ref().is_some_and(|(l, _, _)| *l == vni) {
                let _ = self.plane.remove_host_leg(vni).await;
                inner.leg = None;
            }
            if let Err(e) = self.plane.remove_network(vni).await {
                tracing::warn!(vni, "removing the overlay: {e}");
            }
            inner.synced.remove(&vni);
        }
        self.reconcile_mesh(inner, &view).await;
        self.watch_mesh(inner);
        self.reconcile_host_ports(inner).await;
        // VIP tables per sandbox
        for (task, sb) in inner.sandboxes.iter_mut() {
            let rules = vip_rules(&view, &sb.addrs);
            if sb.vips.as_ref() != Some(&rules) {
                match nft::apply_vips(Some(sb.ns.path()), &rules).await {
                    Ok(()) => sb.vips = Some(rules),
                    Err(e) => tracing::warn!(task = %task, "VIP rules: {e}"),
                }
            }
        }
        // DNS: one table for every sandbox
        let records = Arc::new(records_of(&view));
        self.records.send_replace(records);
    }

    /// The node's table of host-mode ports (DNAT to the task ends of gateway links; the client's address is kept).
    async fn reconcile_host_ports(&self, inner: &mut Inner) {
        let mut rules: Vec<HostPort> = inner.gateways.values().flat_map(|(_, p)| p.iter().cloned()).collect();
        rules.sort_by_key(|p| (p.proto, p.port));
        rules.dedup_by_key(|p| (p.proto, p.port));
        if inner.host_rules.as_ref() == Some(&rules) {
            return;
        }
        let done = if rules.is_empty() {
            nft::remove_host_ports(None).await
        } else {
            match nft::enable_ip_forward(None).await {
                Ok(()) => nft::apply_host_ports(None, &rules, None).await,
                Err(e) => Err(e),
            }
        };
        match done {
            Ok(()) => inner.host_rules = Some(rules),
            Err(e) => tracing::warn!("host-mode port rules: {e}"),
        }
    }

    /// The node's leg on ingress, the DNAT table for published ports, and PROXY v2 relays.
    async fn reconcile_mesh(&self, inner: &mut Inner, view: &NetworkView) {
        let Some(ing) = view.ingress().filter(|i| inner.synced.contains_key(&i.vni)) else {
            if inner.ingress_rules.take().is_some() {
                let _ = nft::remove_ingress(None).await;
            }
            for (_, (_, stop, _)) in std::mem::take(&mut inner.proxies) {
                let _ = stop.send(true);
            }
            return;
        };
        let Some(leg_ip) = ing.leg else { return };
        if inner.leg.as_ref().map(|(v, ip, _)| (*v, *ip)) != Some((ing.vni, leg_ip)) {
            match self.plane.host_leg(ing.vni, leg_ip, ing.prefix_len).await {
                Ok(name) => {
                    inner.leg = Some((ing.vni, leg_ip, name));
                    if let Err(e) = nft::enable_ip_forward(None).await {
                        tracing::warn!("enabling forwarding: {e}");
                    }
                }
                Err(e) => {
                    tracing::warn!("routing mesh leg: {e}");
                    return;
                }
            }
        }
        let leg_name = inner.leg.as_ref().map(|(_, _, n)| n.clone()).unwrap_or_default();
        let mut rules: Vec<IngressPort> = Vec::new();
        let mut relays: BTreeMap<u16, Vec<SocketAddr>> = BTreeMap::new();
        for s in &view.services {
            let backends = s.backends_on(&ing.id);
            for p in s.ports.iter().filter(|p| p.publish_mode == "ingress") {
                let (Ok(port), Ok(target)) = (u16::try_from(p.published_port), u16::try_from(p.target_port)) else {
                    continue;
                };
                let Some(proto) = proto_of(&p.protocol) else { continue };
                if s.proxy_protocol && proto == Proto::Tcp {
                    relays.insert(port, backends.iter().map(|ip| SocketAddr::new((*ip).into(), target)).collect());
                } else {
                    rules.push(IngressPort { proto, port, target_port: target, backends: backends.clone() });
                }
            }
        }
        if inner.ingress_rules.as_ref() != Some(&rules) {
            match nft::apply_ingress(None, &leg_name, &rules).await {
                Ok(()) => inner.ingress_rules = Some(rules),
                Err(e) => tracing::warn!("routing mesh rules: {e}"),
            }
        }
        // relays: update backends, start new ones, stop those gone
        let stale: Vec<u16> = inner.proxies.keys().filter(|p| !relays.contains_key(p)).copied().collect();
        for p in stale {
            if let Some((_, stop, _)) = inner.proxies.remove(&p) {
                let _ = stop.send(true);
            }
        }
        for (port, backends) in relays {
            if let Some((tx, _, _)) = inner.proxies.get(&port) {
                tx.send_if_modified(|cur| {
                    let changed = *cur != backends;
                    *cur = backends.clone();
                    changed
                });
                continue;
            }
            let (tx, rx) = watch::channel(backends);
            let (stop_tx, stop_rx) = watch::channel(false);
            let addr = SocketAddr::from(([0, 0, 0, 0], port));
            match ProxyListener::bind(addr, rx, ProxyConfig::default()).await {
                Ok(l) => {
                    let accepted = l.accepted();
                    tokio::spawn(async move {
                        if let Err(e) = l.run(stop_rx).await {
                            tracing::warn!(port, "PROXY v2 relay: {e}");
                        }
                    });
                    inner.proxies.insert(port, (tx, stop_tx, accepted));
                }
                Err(e) => tracing::warn!(port, "PROXY v2 relay: {e}"),
            }
        }
    }
}

fn plan_of(n: &NetworkInfo) -> NetworkPlan {
    NetworkPlan {
        id: n.id.clone(),
        vni: n.vni,
        subnet: n.subnet,
        prefix_len: n.prefix_len,
        mtu: n.mtu,
        peers: n.peers.iter().map(|p| Peer { addr: p.ip, node: p.node }).collect(),
    }
}

/// The nftables protocol of a published port (`""` is Docker's default, TCP); SCTP is not published.
fn proto_of(protocol: &str) -> Option<Proto> {
    match protocol {
        "udp" => Some(Proto::Udp),
        "tcp" | "" => Some(Proto::Tcp),
        _ => None,
    }
}

/// The host-mode ports the allocator put on a task (`Status.PortStatus`).
fn host_ports(task: &Task) -> Vec<HostPort> {
    task.status
        .port_status
        .iter()
        .flat_map(|p| &p.ports)
        .filter(|p| p.publish_mode == "host")
        .filter_map(|p| {
            Some(HostPort {
                proto: proto_of(&p.protocol)?,
                port: u16::try_from(p.published_port).ok().filter(|p| *p > 0)?,
                target_port: u16::try_from(p.target_port).ok()?,
                backend: Ipv4Addr::UNSPECIFIED,
            })
        })
        .collect()
}

/// The `i`-th gateway pair: (node end, task end) in 169.254.128.0/17, two addresses per task.
fn gateway_pair(i: u32) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(169, 254, 128, 0)) + 2 * (i % 16384);
    (Ipv4Addr::from(base), Ipv4Addr::from(base + 1))
}

/// (network ID, address) of each of a task's attachments.
fn addrs_of(task: &Task) -> Vec<(String, Ipv4Addr)> {
    task.networks_attachments
        .iter()
        .filter_map(|a| a.ipv4().map(|(ip, _)| (a.network.id.clone(), ip)))
        .collect()
}

/// The VIP rules of a sandbox on these networks.
fn vip_rules(view: &NetworkView, addrs: &[(String, Ipv4Addr)]) -> Vec<VipRule> {
    let mut rules = Vec::new();
    for s in &view.services {
        for (net, vip) in &s.vips {
            if !addrs.iter().any(|(n, _)| n == net) {
                continue;
            }
            rules.push(VipRule { vip: *vip, backends: s.backends_on(net) });
        }
    }
    rules.sort_by_key(|r| r.vip);
    rules
}

/// The DNS table of a view: per network, each service's name and aliases (VIP, or the running tasks' addresses in
/// dnsrr mode), `tasks.<name>`, and each task's name.
pub fn records_of(view: &NetworkView) -> Records {
    let mut b = RecordsBuilder::new();
    for s in &view.services {
        let mut nets: BTreeSet<&str> = s.vips.iter().map(|(n, _)| n.as_str()).collect();
        for t in &s.tasks {
            nets.extend(t.addrs.iter().map(|(n, _)| n.as_str()));
        }
        for net in nets {
            let running = s.backends_on(net);
            let aliases: Vec<&str> =
                s.aliases.iter().filter(|(n, _)| n == net).flat_map(|(_, a)| a.iter().map(String::as_str)).collect();
            let answer: Vec<Ipv4Addr> = if s.endpoint_mode == "dnsrr" {
                running.clone()
            } else {
                s.vips.iter().filter(|(n, _)| n == net).map(|(_, ip)| *ip).collect()
            };
            b = b.service(net, &s.name, &aliases, &answer).tasks(net, &s.name, &running);
            for t in &s.tasks {
                if let Some(ip) = t.addr_on(net) {
                    b = b.task(net, &t.name, ip);
                }
            }
        }
    }
    b.build()
}

/// Where the agent keeps its files: `<dir>/net`.
pub fn state_dir(dir: &Path) -> PathBuf {
    dir.join("net")
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_api::netview::{ServiceInfo, TaskEndpoint};

    fn view() -> NetworkView {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let t = |id: &str, addr: &str, backend: bool| TaskEndpoint {
            id: id.into(),
            name: format!("web.1.{id}"),
            node_id: "n1".into(),
            addrs: vec![("app".into(), ip(addr))],
            backend,
        };
        NetworkView {
            networks: vec![],
            services: vec![
                ServiceInfo {
                    id: "s1".into(),
                    name: "web".into(),
                    endpoint_mode: "vip".into(),
                    vips: vec![("app".into(), ip("10.1.0.2"))],
                    aliases: vec![("app".into(), vec!["www".into()])],
                    tasks: vec![t("t1", "10.1.0.3", true), t("t2", "10.1.0.4", false)],
                    ..Default::default()
                },
                ServiceInfo {
                    id: "s2".into(),
                    name: "db".into(),
                    endpoint_mode: "dnsrr".into(),
                    tasks: vec![t("t3", "10.1.0.5", true), t("t4", "10.1.0.6", true)],
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn dns_answers_vips_dnsrr_tasks_and_aliases_scoped_to_networks() {
        let r = records_of(&view());
        let app = ["app"];
        assert_eq!(r.lookup(&app, "web").unwrap(), &["10.1.0.2".parse::<Ipv4Addr>().unwrap()]);
        assert_eq!(r.lookup(&app, "www.").unwrap().len(), 1);
        assert_eq!(r.lookup(&app, "tasks.web").unwrap().len(), 1, "only running tasks");
        assert_eq!(r.lookup(&app, "db").unwrap().len(), 2, "dnsrr answers the tasks");
        assert!(r.lookup(&app, "web.1.t1").is_some());
        assert!(r.lookup(&["other"], "web").is_none(), "scoped to the asker's networks");
    }

    #[test]
    fn vip_rules_follow_running_tasks_on_the_sandbox_networks() {
        let rules = vip_rules(&view(), &[("app".into(), "10.1.0.9".parse().unwrap())]);
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].backends, vec!["10.1.0.3".parse::<Ipv4Addr>().unwrap()]);
        assert!(vip_rules(&view(), &[("x".into(), "10.2.0.9".parse().unwrap())]).is_empty());
    }
}
