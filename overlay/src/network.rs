//! The overlay data plane of one node: VXLAN networks, task sandboxes attached to them, and the host leg of the
//! ingress routing mesh.
//!
//! # Layout in the kernel
//!
//! ```text
//!  node namespace (the daemon's own)          <prefix>-n<vni>  (one per network)         <prefix>-t-<task12>
//!  ─────────────────────────────────          ────────────────────────────────           ───────────────────
//!  underlay IP, UDP 4789 socket  ◄─────────── skvx<vni> (VXLAN, learning off, proxy) ┐
//!  of every skvx<vni>                                                                 ├─ br0
//!  skh<vni> (host leg, addr) ◄── veth ──────► vh<hex addr> ───────────────────────────┤
//!                                             vp<hex addr> ───────────────────────────┘ ◄── veth ──► eth0 (addr)
//! ```
//!
//! * **Why a namespace per network** (Docker's overlay driver does the same): the bridge, the VXLAN device and the
//!   ports of every task live apart from the node's own routing, so overlay subnets may overlap the node's networks
//!   or each other, and removing a network is deleting one namespace's links.
//! * **Why the VXLAN device is made in the node's namespace and then moved**: a VXLAN device keeps the namespace it
//!   was created in for its UDP socket. Made there, its encapsulated traffic leaves on the underlay; its Ethernet side
//!   is in the network's namespace, enslaved to the bridge.
//! * **No learning, no flooding**: every endpoint's MAC is derived from its IP ([`mac_for`]), so for each remote peer
//!   of a network the node programs a static FDB entry (MAC → that node's underlay IP) and a static neighbour entry
//!   (IP → MAC) on the VXLAN device, whose `proxy` flag makes it answer ARP requests from those entries locally. The
//!   plan from the managers' store is the only source of truth; there is no gossip.
//! * **Sandboxes**: a task's network namespace (named, or a Docker container's `/proc/PID/ns/net`) gets one end of a
//!   veth per network, named by the caller (`eth0`), with its address and the MAC derived from it; the other end is a
//!   port of the network's bridge.
//! * **Host leg**: a veth from the node's own namespace to a network's bridge, so the node itself has an address on
//!   that network (the ingress network: the routing mesh DNATs published ports to task IPs through it).
//!
//! All MTUs of a network are the plan's `mtu`, or the underlay MTU minus the 50 bytes of VXLAN-over-IPv4 headers.
//!
//! Names are derived, never stored (see [`names`]), so a restarted daemon finds what it made, and
//! [`DataPlane::teardown_all`] finds what a crashed one left. One DataPlane per node namespace: the node-side names
//! (`skvx<vni>`, `skh<vni>`) carry the VNI, not the prefix, to fit in 15 bytes.
//!
//! The daemon's threads never enter another namespace: every namespace is reached through a netlink socket opened
//! inside it by [`Netns::netlink`], and devices are moved by namespace file descriptor.

mod error;
pub mod names;
mod nl;

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, LinkVxlan};

pub use self::error::{Error, Result};
pub use self::names::{host_leg_name, mac_for};
use self::nl::{errno, nl_err, FdbEntry};
use crate::netns::Netns;

/// The UDP port of every VXLAN device (IANA's; Docker uses it too).
pub const VXLAN_PORT: u16 = 4789;

/// Bytes that VXLAN over IPv4 adds to every frame: outer IPv4 (20) + UDP (8) + VXLAN (8) + inner Ethernet (14).
pub const VXLAN_OVERHEAD: u32 = 50;

/// The largest VNI (24 bits).
pub const VNI_MAX: u32 = (1 << 24) - 1;

/// The smallest MTU IPv4 allows.
const MTU_MIN: u32 = 68;

/// What one overlay network should look like on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkPlan {
    /// The network's cluster ID; kept for logs and [`DataPlane::vni_of`]. The kernel side is keyed by `vni`.
    pub id: String,
    /// The VXLAN network identifier, unique in the cluster (1 ..= 2^24 − 1).
    pub vni: u32,
    /// The network's subnet; peers outside it are skipped (with a warning), as they could never be reached.
    pub subnet: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The MTU of every device of this network; `None`: the underlay MTU − [`VXLAN_OVERHEAD`].
    pub mtu: Option<u32>,
    /// Every endpoint of the network on other nodes. Entries whose `node` is this node are ignored: local endpoints
    /// are bridge ports and need no tunnel.
    pub peers: Vec<Peer>,
}

/// An endpoint of a network on some node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// The endpoint's overlay IP (a task's, or a node's host leg).
    pub addr: Ipv4Addr,
    /// The underlay IP of the node it is on (its VXLAN tunnel endpoint).
    pub node: Ipv4Addr,
}

/// How to set up a [`DataPlane`].
#[derive(Debug, Clone)]
pub struct DataPlaneConfig {
    /// Starts the name of every named namespace this DataPlane makes (`<prefix>-n<vni>`, `<prefix>-t-<task>`).
    /// `/run/netns` is machine-wide, so it must be unique per node on the machine (say `skep-<node id>`).
    pub prefix: String,
    /// The node's underlay address: the source of its VXLAN traffic and what other nodes list as `Peer::node`.
    pub underlay: Ipv4Addr,
    /// The underlay MTU; `None`: read from the interface that holds `underlay` ([`detect_underlay_mtu`]).
    pub underlay_mtu: Option<u32>,
    /// The node's namespace (where VXLAN sockets and host legs live); `None`: the caller's own. Tests that play
    /// several nodes in one process give each its own.
    pub node_ns: Option<Netns>,
}

/// The overlay data plane of one node. All methods are idempotent; they are serialised internally.
///
/// Dropping it tears nothing down: a restarting daemon keeps its tasks' connectivity and finds its networks again
/// by name. [`DataPlane::teardown_all`] is the explicit end. Must be used from within a tokio runtime (its netlink
/// connections run there).
pub struct DataPlane {
    /// See [`DataPlaneConfig::prefix`].
    prefix: String,
    /// See [`DataPlaneConfig::underlay`].
    underlay: Ipv4Addr,
    /// The underlay's MTU; networks default to this − [`VXLAN_OVERHEAD`].
    underlay_mtu: u32,
    /// The node's namespace, held open: its descriptor moves host legs there.
    node_ns: Netns,
    /// Netlink in the node's namespace: creates VXLAN devices (so their sockets are there) and host-leg addresses.
    node: Handle,
    /// Networks this process has touched, by VNI. A cache, not the truth: anything missing is found again by name.
    /// A tokio mutex held across the netlink calls of one operation, so two operations never interleave their
    /// check-then-create steps.
    networks: tokio::sync::Mutex<HashMap<u32, Network>>,
}

/// A network's namespace as this process knows it.
struct Network {
    /// The cluster ID, if a plan named it (unknown for a network found again by name after a restart).
    id: Option<String>,
    /// Held open so the descriptor can be used to move veth ends into it.
    ns: Netns,
    /// Netlink inside the network's namespace.
    nl: Handle,
    /// The MTU of its devices.
    mtu: u32,
}

impl DataPlane {
    /// Opens netlink in the node's namespace and, unless given, reads the underlay MTU. Creates nothing.
    pub async fn new(config: DataPlaneConfig) -> Result<DataPlane> {
        names::check_prefix(&config.prefix).map_err(Error::Invalid)?;
        let node_ns = match config.node_ns {
            Some(ns) => ns,
            None => Netns::current()?,
        };
        let node = node_ns.netlink().await?;
        let underlay_mtu = match config.underlay_mtu {
            Some(mtu) => mtu,
            None => underlay_mtu_via(&node, config.underlay).await?,
        };
        if underlay_mtu < MTU_MIN + VXLAN_OVERHEAD {
            return Err(Error::Invalid(format!("underlay MTU {underlay_mtu}")));
        }
        Ok(DataPlane {
            prefix: config.prefix,
            underlay: config.underlay,
            underlay_mtu,
            node_ns,
            node,
            networks: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The prefix of this DataPlane's namespace names.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The node's underlay address.
    pub fn underlay(&self) -> Ipv4Addr {
        self.underlay
    }

    /// The underlay MTU in use.
    pub fn underlay_mtu(&self) -> u32 {
        self.underlay_mtu
    }

    /// The MTU of a network whose plan gives none: underlay MTU − [`VXLAN_OVERHEAD`].
    pub fn default_mtu(&self) -> u32 {
        self.underlay_mtu - VXLAN_OVERHEAD
    }

    /// The node's namespace.
    pub fn node_ns(&self) -> &Netns {
        &self.node_ns
    }

    /// The name of network `vni`'s namespace on this node.
    pub fn network_ns_name(&self, vni: u32) -> String {
        names::network_ns_name(&self.prefix, vni)
    }

    /// The name of task `task_id`'s sandbox namespace on this node.
    pub fn sandbox_ns_name(&self, task_id: &str) -> String {
        names::sandbox_ns_name(&self.prefix, task_id)
    }

    /// The VNI of the network with cluster ID `id`, if a plan for it was synced by this process.
    pub async fn vni_of(&self, id: &str) -> Option<u32> {
        let networks = self.networks.lock().await;
        networks
            .iter()
            .find(|(_, n)| n.id.as_deref() == Some(id))
            .map(|(vni, _)| *vni)
    }

    /// Makes network `plan.vni` on this node match the plan: creates its namespace, bridge and VXLAN device if
    /// missing, sets MTUs, adds the peers that are missing (or moved to another node) and removes the ones no longer
    /// listed. Safe to call again with the same or a changed plan.
    pub async fn sync_network(&self, plan: &NetworkPlan) -> Result<()> {
        check_vni(plan.vni)?;
        if plan.prefix_len > 32 {
            return Err(Error::Invalid(format!("prefix length {}", plan.prefix_len)));
        }
        let mtu = plan.mtu.unwrap_or_else(|| self.default_mtu());
        if mtu < MTU_MIN {
            return Err(Error::Invalid(format!("MTU {mtu}")));
        }
        let mut networks = self.networks.lock().await;
        let ns_name = self.network_ns_name(plan.vni);
        if networks.contains_key(&plan.vni) && !Netns::exists(&ns_name) {
            // Its name was removed behind our back (`ip netns del`): what the cached handle reaches is an orphan.
            networks.remove(&plan.vni);
        }
        let net = match networks.entry(plan.vni) {
            Entry::Occupied(cached) => cached.into_mut(),
            Entry::Vacant(slot) => {
                let ns = Netns::create(&ns_name)?;
                let nl = ns.netlink().await?;
                slot.insert(Network { id: None, ns, nl, mtu })
            }
        };
        net.id = Some(plan.id.clone());
        net.mtu = mtu;

        // Loopback up: harmless, and what `ip netns exec … ping` users expect.
        if let Some(lo) = nl::index_of(&net.nl, "lo").await? {
            nl::set_link(&net.nl, lo, "lo", None, None).await?;
        }
        let bridge = self.ensure_bridge(net).await?;
        let vxlan = self.ensure_vxlan(plan.vni, net, bridge).await?;
        self.sync_peers(plan, net, vxlan).await?;
        tracing::debug!(network = %plan.id, vni = plan.vni, mtu, peers = plan.peers.len(), "overlay network synced");
        Ok(())
    }

    /// The peers programmed on network `vni` as the kernel has them (FDB joined with the neighbour table).
    pub async fn peers(&self, vni: u32) -> Result<Vec<Peer>> {
        let mut networks = self.networks.lock().await;
        let net = self.network(&mut networks, vni).await?;
        let vxlan = nl::index_of(&net.nl, &names::vxlan_name(vni))
            .await?
            .ok_or(Error::UnknownNetwork(vni))?;
        let fdb: HashMap<[u8; 6], Ipv4Addr> = nl::fdb_entries(&net.nl, vxlan)
            .await?
            .into_iter()
            .map(|e| (e.mac, e.dst))
            .collect();
        let mut peers: Vec<Peer> = nl::neighbours(&net.nl, vxlan)
            .await?
            .into_iter()
            .filter_map(|(addr, mac)| fdb.get(&mac).map(|node| Peer { addr, node: *node }))
            .collect();
        peers.sort();
        Ok(peers)
    }

    /// Tears network `vni` down on this node: deletes every link in its namespace (the VXLAN device, the bridge,
    /// and the veths of sandboxes and the host leg, whose other ends go with them) and the namespace. A network
    /// that is not there is fine.
    pub async fn remove_network(&self, vni: u32) -> Result<()> {
        check_vni(vni)?;
        let mut networks = self.networks.lock().await;
        networks.remove(&vni);
        self.remove_network_ns(vni).await
    }

    /// Creates (or opens) task `task_id`'s sandbox namespace `<prefix>-t-<first 12 chars>`, with loopback up so a DNS
    /// server can bind 127.0.0.11 in it.
    pub async fn sandbox_create(&self, task_id: &str) -> Result<Netns> {
        names::check_task_id(task_id).map_err(Error::Invalid)?;
        let ns = Netns::create(&self.sandbox_ns_name(task_id))?;
        let nl = ns.netlink().await?;
        if let Some(lo) = nl::index_of(&nl, "lo").await? {
            nl::set_link(&nl, lo, "lo", None, None).await?;
        }
        // No TIME_WAIT sockets in task sandboxes: the routing mesh masquerades every client to the node's one leg
        // address, so connections of different clients reuse the same leg:port → task:port tuples, and a tuple the
        // task still held in TIME_WAIT refused the new SYN (1 s stalls under connection churn, bench/net (c)). The
        // cost, stale segments of an old connection landing in a new one, needs a duplicate delayed past the old
        // connection's close on a LAN overlay.
        crate::nft::set_sysctl(Some(ns.path()), "net/ipv4/tcp_max_tw_buckets", "0")
            .await
            .map_err(|e| Error::Invalid(format!("sandbox sysctl: {e}")))?;
        Ok(ns)
    }

    /// Attaches `sandbox` (one from [`DataPlane::sandbox_create`], or any namespace opened by path, such as a Docker
    /// container's `/proc/PID/ns/net`) to network `vni` as interface `ifname` with `addr/prefix_len`: a veth whose
    /// sandbox end gets the name, the MAC derived from `addr`, the address (hence the connected route of the
    /// subnet) and the network's MTU, and whose other end is a port of the network's bridge. Attaching the same
    /// address again replaces the earlier attachment.
    pub async fn sandbox_attach(
        &self,
        sandbox: &Netns,
        vni: u32,
        ifname: &str,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<()> {
        names::check_ifname(ifname).map_err(Error::Invalid)?;
        if prefix_len > 32 {
            return Err(Error::Invalid(format!("prefix length {prefix_len}")));
        }
        let mut networks = self.networks.lock().await;
        let net = self.network(&mut networks, vni).await?;
        let port = names::port_name(addr);
        let bridge = nl::index_of(&net.nl, names::BRIDGE)
            .await?
            .ok_or(Error::UnknownNetwork(vni))?;
        // A port for this address left from an earlier attachment: its sandbox end goes with it.
        nl::del_link_named(&net.nl, &port).await?;
        self.add_veth(net, &port, bridge, sandbox, ifname, addr).await?;

        let inner = sandbox.netlink().await?;
        let index = nl::index_of(&inner, ifname).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "interface {ifname} vanished from {} right after it was made",
                sandbox.path().display()
            ))
        })?;
        nl::add_address(&inner, index, ifname, addr, prefix_len).await?;
        nl::set_link(&inner, index, ifname, Some(net.mtu), None).await?;
        if let Some(lo) = nl::index_of(&inner, "lo").await? {
            nl::set_link(&inner, lo, "lo", None, None).await?;
        }
        tracing::debug!(sandbox = %sandbox.path().display(), vni, ifname, %addr, "sandbox attached");
        Ok(())
    }

    /// Detaches the endpoint with address `addr` from network `vni` (its veth pair goes, the sandbox stays). Not
    /// attached is fine. For sandboxes that outlive an attachment, such as a Docker container leaving a network.
    pub async fn sandbox_detach(&self, vni: u32, addr: Ipv4Addr) -> Result<()> {
        let mut networks = self.networks.lock().await;
        match self.network(&mut networks, vni).await {
            Ok(net) => nl::del_link_named(&net.nl, &names::port_name(addr)).await,
            Err(Error::UnknownNetwork(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Removes task `task_id`'s sandbox: deletes its interfaces (and so their bridge ports), then its name. A sandbox
    /// that is not there is fine.
    pub async fn sandbox_remove(&self, task_id: &str) -> Result<()> {
        names::check_task_id(task_id).map_err(Error::Invalid)?;
        self.remove_sandbox_ns(&self.sandbox_ns_name(task_id)).await
    }

    /// Puts an address on network `vni` into the node's own namespace: a veth whose node end is
    /// [`host_leg_name`]`(vni)` with `addr/prefix_len`, and whose other end is a port of the network's bridge. Returns
    /// the node end's name (what nftables rules match as `oifname`). Calling it again replaces the leg.
    pub async fn host_leg(&self, vni: u32, addr: Ipv4Addr, prefix_len: u8) -> Result<String> {
        if prefix_len > 32 {
            return Err(Error::Invalid(format!("prefix length {prefix_len}")));
        }
        let mut networks = self.networks.lock().await;
        let net = self.network(&mut networks, vni).await?;
        let name = host_leg_name(vni);
        let port = names::host_port_name(addr);
        let bridge = nl::index_of(&net.nl, names::BRIDGE)
            .await?
            .ok_or(Error::UnknownNetwork(vni))?;
        nl::del_link_named(&self.node, &name).await?;
        nl::del_link_named(&net.nl, &port).await?;
        self.add_veth(net, &port, bridge, &self.node_ns, &name, addr).await?;
        let index = nl::index_of(&self.node, &name)
            .await?
            .ok_or_else(|| Error::Invalid(format!("host leg {name} vanished right after it was made")))?;
        nl::add_address(&self.node, index, &name, addr, prefix_len).await?;
        nl::set_link(&self.node, index, &name, Some(net.mtu), None).await?;
        tracing::debug!(vni, %addr, leg = %name, "host leg up");
        Ok(name)
    }

    /// Gives `sandbox` a point-to-point link to the node's own namespace: `gw0` with `task_addr/31` in the sandbox
    /// (its default route, via `node_addr`), and [`names::gateway_name`]`(node_addr)` with `node_addr/31` here. The
    /// node reaches the task through it (host-mode published ports are DNATed there, keeping the client's address,
    /// since replies route back the same way). The pair goes with the sandbox.
    pub async fn sandbox_gateway(&self, sandbox: &Netns, node_addr: Ipv4Addr, task_addr: Ipv4Addr) -> Result<String> {
        let name = names::gateway_name(node_addr);
        nl::del_link_named(&self.node, &name).await?;
        // a gateway made before (an agent restart) goes first: deleting one end of a veth deletes the pair
        let snl = sandbox.netlink().await?;
        nl::del_link_named(&snl, names::GATEWAY_IF).await?;
        let peer = LinkUnspec::new_with_name(names::GATEWAY_IF)
            .address(mac_for(task_addr).to_vec())
            .setns_by_fd(sandbox.raw_fd())
            .build();
        let msg = LinkVeth::new(&name, names::GATEWAY_IF)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        self.node
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(nl_err(format!("add veth {name} peer {}", names::GATEWAY_IF)))?;
        let index = nl::index_of(&self.node, &name)
            .await?
            .ok_or_else(|| Error::Invalid(format!("gateway link {name} vanished right after it was made")))?;
        nl::add_address(&self.node, index, &name, node_addr, 31).await?;
        nl::set_link(&self.node, index, &name, None, None).await?;
        let sindex = nl::index_of(&snl, names::GATEWAY_IF)
            .await?
            .ok_or_else(|| Error::Invalid("gateway link vanished from the sandbox".into()))?;
        nl::add_address(&snl, sindex, names::GATEWAY_IF, task_addr, 31).await?;
        nl::set_link(&snl, sindex, names::GATEWAY_IF, None, None).await?;
        let route = sandbox
            .command("ip")
            .args(["route", "replace", "default", "via", &node_addr.to_string(), "dev", names::GATEWAY_IF])
            .output()
            .map_err(|e| Error::Invalid(format!("ip route in the sandbox: {e}")))?;
        if !route.status.success() {
            return Err(Error::Invalid(format!(
                "default route in the sandbox: {}",
                String::from_utf8_lossy(&route.stderr).trim()
            )));
        }
        Ok(name)
    }

    /// Removes network `vni`'s host leg (not there is fine).
    pub async fn remove_host_leg(&self, vni: u32) -> Result<()> {
        let _networks = self.networks.lock().await;
        nl::del_link_named(&self.node, &host_leg_name(vni)).await
    }

    /// Removes everything this DataPlane's prefix owns: every `<prefix>-n<vni>` and `<prefix>-t-<task>` namespace in
    /// `/run/netns` with its links (also those a crashed earlier run left), and the `skvx*`/`skh*` links in the
    /// node's namespace. For a node leaving the cluster, and for tests.
    pub async fn teardown_all(&self) -> Result<()> {
        let mut networks = self.networks.lock().await;
        networks.clear();
        for name in Netns::list()? {
            match names::parse_owned_ns(&self.prefix, &name) {
                Some(names::OwnedNs::Network(vni)) => self.remove_network_ns(vni).await?,
                Some(names::OwnedNs::Sandbox(_)) => self.remove_sandbox_ns(&name).await?,
                None => {}
            }
        }
        for link in nl::links(&self.node).await? {
            if let Some(name) = nl::link_name(&link).filter(|n| names::parse_node_link(n).is_some()) {
                let name = name.to_string();
                nl::del_link(&self.node, link.header.index, &name).await?;
            }
        }
        Ok(())
    }

    /// The cached network `vni`, or its namespace found again by name (after a restart); the MTU is then read back
    /// from its bridge.
    async fn network<'a>(&self, networks: &'a mut HashMap<u32, Network>, vni: u32) -> Result<&'a mut Network> {
        check_vni(vni)?;
        match networks.entry(vni) {
            Entry::Occupied(cached) => Ok(cached.into_mut()),
            Entry::Vacant(slot) => {
                let ns = Netns::open_named(&self.network_ns_name(vni))?.ok_or(Error::UnknownNetwork(vni))?;
                let nl = ns.netlink().await?;
                let bridge = nl::link_by_name(&nl, names::BRIDGE)
                    .await?
                    .ok_or(Error::UnknownNetwork(vni))?;
                let mtu = nl::link_mtu(&bridge).unwrap_or_else(|| self.default_mtu());
                Ok(slot.insert(Network { id: None, ns, nl, mtu }))
            }
        }
    }

    /// The network's bridge, created if missing, up, with the network's MTU.
    async fn ensure_bridge(&self, net: &Network) -> Result<u32> {
        if nl::index_of(&net.nl, names::BRIDGE).await?.is_none() {
            let msg = LinkBridge::new(names::BRIDGE).mtu(net.mtu).build();
            match net.nl.link().add(msg).execute().await {
                Ok(()) => {}
                Err(e) if errno(&e) == Some(libc::EEXIST) => {}
                Err(e) => {
                    return Err(Error::Netlink {
                        op: "add bridge br0".into(),
                        source: e,
                    })
                }
            }
        }
        let bridge = nl::index_of(&net.nl, names::BRIDGE).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "bridge {} vanished from {}",
                names::BRIDGE,
                net.ns.path().display()
            ))
        })?;
        nl::set_link(&net.nl, bridge, names::BRIDGE, Some(net.mtu), None).await?;
        Ok(bridge)
    }

    /// The network's VXLAN device: if missing, made in the node's namespace (so its UDP socket is bound there, on the
    /// underlay) and moved into the network's namespace; then enslaved to the bridge, MTU set, up.
    async fn ensure_vxlan(&self, vni: u32, net: &Network, bridge: u32) -> Result<u32> {
        let name = names::vxlan_name(vni);
        let index = match nl::index_of(&net.nl, &name).await? {
            Some(index) => index,
            None => {
                // A leftover of an earlier run that stopped between create and move.
                nl::del_link_named(&self.node, &name).await?;
                let msg = LinkVxlan::new(&name, vni)
                    .port(VXLAN_PORT)
                    .local(self.underlay)
                    .learning(false)
                    .proxy(true)
                    .l2miss(false)
                    .l3miss(false)
                    .mtu(net.mtu)
                    .build();
                self.node
                    .link()
                    .add(msg)
                    .execute()
                    .await
                    .map_err(nl_err(format!("add vxlan {name} id {vni}")))?;
                let made = nl::index_of(&self.node, &name)
                    .await?
                    .ok_or_else(|| Error::Invalid(format!("vxlan {name} vanished right after it was made")))?;
                let moved = self
                    .node
                    .link()
                    .set(LinkUnspec::new_with_index(made).setns_by_fd(net.ns.raw_fd()).build())
                    .execute()
                    .await
                    .map_err(nl_err(format!("move vxlan {name} to {}", net.ns.path().display())));
                if let Err(e) = moved {
                    let _ = nl::del_link(&self.node, made, &name).await;
                    return Err(e);
                }
                nl::index_of(&net.nl, &name).await?.ok_or_else(|| {
                    Error::Invalid(format!("vxlan {name} did not arrive in {}", net.ns.path().display()))
                })?
            }
        };
        nl::set_link(&net.nl, index, &name, Some(net.mtu), Some(bridge)).await?;
        Ok(index)
    }

    /// Makes the VXLAN device's FDB and neighbour entries exactly the plan's remote peers.
    async fn sync_peers(&self, plan: &NetworkPlan, net: &Network, vxlan: u32) -> Result<()> {
        let mut want: BTreeMap<Ipv4Addr, Ipv4Addr> = BTreeMap::new();
        for peer in &plan.peers {
            if peer.node == self.underlay {
                continue;
            }
            if !in_subnet(peer.addr, plan.subnet, plan.prefix_len) {
                tracing::warn!(network = %plan.id, addr = %peer.addr, subnet = %plan.subnet, prefix_len = plan.prefix_len,
                    "peer outside the network's subnet skipped");
                continue;
            }
            want.insert(peer.addr, peer.node);
        }
        let want_fdb: HashMap<[u8; 6], Ipv4Addr> = want.iter().map(|(addr, node)| (mac_for(*addr), *node)).collect();

        let have_fdb = nl::fdb_entries(&net.nl, vxlan).await?;
        for entry in &have_fdb {
            if want_fdb.get(&entry.mac) != Some(&entry.dst) {
                nl::fdb_delete(&net.nl, vxlan, entry).await?;
            }
        }
        let have_neigh: HashMap<Ipv4Addr, [u8; 6]> = nl::neighbours(&net.nl, vxlan).await?.into_iter().collect();
        for (ip, mac) in &have_neigh {
            if !want.contains_key(ip) || *mac != mac_for(*ip) {
                nl::neighbour_delete(&net.nl, vxlan, *ip).await?;
            }
        }
        for (addr, node) in &want {
            let entry = FdbEntry {
                mac: mac_for(*addr),
                dst: *node,
            };
            if !have_fdb.contains(&entry) {
                nl::fdb_replace(&net.nl, vxlan, &entry).await?;
            }
            if have_neigh.get(addr) != Some(&entry.mac) {
                nl::neighbour_replace(&net.nl, vxlan, *addr, entry.mac).await?;
            }
        }
        Ok(())
    }

    /// A veth in the network's namespace: `port` (enslaved to `bridge`, up) and its peer `peer_name`, made directly in
    /// `peer_ns` with the MAC of `addr` and the network's MTU.
    async fn add_veth(
        &self,
        net: &Network,
        port: &str,
        bridge: u32,
        peer_ns: &Netns,
        peer_name: &str,
        addr: Ipv4Addr,
    ) -> Result<()> {
        let peer = LinkUnspec::new_with_name(peer_name)
            .mtu(net.mtu)
            .address(mac_for(addr).to_vec())
            .setns_by_fd(peer_ns.raw_fd())
            .build();
        let msg = LinkVeth::new(port, peer_name)
            .mtu(net.mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .build();
        match net.nl.link().add(msg).execute().await {
            Ok(()) => {}
            // The port was deleted just before, so the name taken is the peer's.
            Err(e) if errno(&e) == Some(libc::EEXIST) => {
                return Err(Error::InterfaceExists {
                    ifname: peer_name.to_string(),
                    sandbox: peer_ns.path().to_path_buf(),
                })
            }
            Err(e) => {
                return Err(Error::Netlink {
                    op: format!("add veth {port} peer {peer_name}"),
                    source: e,
                })
            }
        }
        let index = nl::index_of(&net.nl, port).await?.ok_or_else(|| {
            Error::Invalid(format!(
                "veth {port} vanished from {} right after it was made",
                net.ns.path().display()
            ))
        })?;
        nl::set_link(&net.nl, index, port, Some(net.mtu), Some(bridge)).await
    }

    /// Deletes the links of network `vni`'s namespace, a VXLAN device stranded in the node's namespace, and the name.
    async fn remove_network_ns(&self, vni: u32) -> Result<()> {
        let name = self.network_ns_name(vni);
        if let Some(ns) = Netns::open_named(&name)? {
            // Deleting links explicitly makes removal synchronous: the namespace itself is freed only when the last
            // reference (a socket, a handle) goes, which may be later.
            let nl = ns.netlink().await?;
            nl::del_all_links(&nl).await?;
        }
        nl::del_link_named(&self.node, &names::vxlan_name(vni)).await?;
        Netns::delete(&name)?;
        tracing::debug!(vni, ns = %name, "overlay network removed");
        Ok(())
    }

    /// Deletes the links of a sandbox namespace (their bridge ports go with them) and its name.
    async fn remove_sandbox_ns(&self, name: &str) -> Result<()> {
        if let Some(ns) = Netns::open_named(name)? {
            let nl = ns.netlink().await?;
            nl::del_all_links(&nl).await?;
        }
        Netns::delete(name)?;
        Ok(())
    }
}

/// Reads the MTU of the interface that holds `underlay` in `node_ns` (`None`: the caller's namespace).
pub async fn detect_underlay_mtu(node_ns: Option<&Netns>, underlay: Ipv4Addr) -> Result<u32> {
    let ns = match node_ns {
        Some(ns) => ns.clone(),
        None => Netns::current()?,
    };
    underlay_mtu_via(&ns.netlink().await?, underlay).await
}

async fn underlay_mtu_via(nl: &Handle, underlay: Ipv4Addr) -> Result<u32> {
    let index = nl::link_with_address(nl, underlay)
        .await?
        .ok_or(Error::UnderlayNotFound(underlay))?;
    let link: Option<_> = {
        use futures::TryStreamExt;
        nl.link()
            .get()
            .match_index(index)
            .execute()
            .try_next()
            .await
            .map_err(nl_err(format!("get link {index}")))?
    };
    link.as_ref()
        .and_then(nl::link_mtu)
        .ok_or(Error::UnderlayNotFound(underlay))
}

fn check_vni(vni: u32) -> Result<()> {
    if vni == 0 || vni > VNI_MAX {
        return Err(Error::Invalid(format!("VNI {vni} (must be 1 ..= {VNI_MAX})")));
    }
    Ok(())
}

/// Whether `addr` is in `subnet/prefix_len`.
fn in_subnet(addr: Ipv4Addr, subnet: Ipv4Addr, prefix_len: u8) -> bool {
    let mask = if prefix_len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix_len.min(32)))
    };
    u32::from(addr) & mask == u32::from(subnet) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_membership() {
        let net = Ipv4Addr::new(10, 0, 1, 0);
        assert!(in_subnet(Ipv4Addr::new(10, 0, 1, 7), net, 24));
        assert!(!in_subnet(Ipv4Addr::new(10, 0, 2, 7), net, 24));
        assert!(in_subnet(Ipv4Addr::new(10, 0, 2, 7), net, 16));
        assert!(in_subnet(Ipv4Addr::new(1, 2, 3, 4), net, 0));
        assert!(in_subnet(net, net, 32));
    }

    #[test]
    fn vni_range() {
        assert!(check_vni(0).is_err());
        assert!(check_vni(1).is_ok());
        assert!(check_vni(VNI_MAX).is_ok());
        assert!(check_vni(VNI_MAX + 1).is_err());
    }
}
