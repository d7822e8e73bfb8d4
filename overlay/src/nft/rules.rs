//! The rule types and their rendering into one nft transaction. Pure: no kernel, no process.

use std::collections::HashSet;
use std::fmt::{self, Write as _};
use std::net::Ipv4Addr;

use super::error::NftError;

/// The table of service VIPs, in each task sandbox.
pub const VIP_TABLE: &str = "skep_vip";
/// The table of the ingress routing mesh's published ports, in the node's namespace.
pub const INGRESS_TABLE: &str = "skep_ingress";
/// The table of host-mode published ports, in the node's namespace.
pub const HOST_PORTS_TABLE: &str = "skep_hostports";
/// The table that sends a sandbox's DNS queries for 127.0.0.11:53 to the embedded server's real ports.
pub const DNS_TABLE: &str = "skep_dns";
/// The embedded DNS address inside every sandbox.
pub const DNS_ADDR: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 11);

/// Priority of the nat chains that rewrite destinations (`dstnat`; nft 1.0.6 accepts the name only on
/// `prerouting`, so skep writes the number everywhere).
const PRIO_DSTNAT: i32 = -100;
/// Priority of the nat chain that rewrites sources (`srcnat`).
const PRIO_SRCNAT: i32 = 100;
/// Priority of the filter chains that reject (`filter`).
const PRIO_FILTER: i32 = 0;

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Proto {
    /// The protocol's nft keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A service's virtual IP on one network, as seen from one sandbox attached to that network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VipRule {
    /// The VIP, from the network's subnet. TCP and UDP to it (any port, kept as is) go to one of `backends`.
    pub vip: Ipv4Addr,
    /// The service's tasks' addresses on the same network. Empty: connections are refused at once (TCP reset,
    /// ICMP port unreachable) instead of hanging on an address nobody answers.
    pub backends: Vec<Ipv4Addr>,
}

/// A port published through the ingress routing mesh: every node answers it and balances over all tasks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPort {
    /// TCP or UDP.
    pub proto: Proto,
    /// The published port, on every local address of the node.
    pub port: u16,
    /// The port the tasks listen on.
    pub target_port: u16,
    /// The tasks' addresses on the `ingress` network. Empty: the port refuses connections.
    pub backends: Vec<Ipv4Addr>,
}

/// A port published in host mode: only the node that runs the task answers it, and only for that task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// TCP or UDP.
    pub proto: Proto,
    /// The published port, on every local address of the node.
    pub port: u16,
    /// The port the task listens on.
    pub target_port: u16,
    /// The task's address, reachable from the node's namespace.
    pub backend: Ipv4Addr,
}

/// One published port, ingress or host mode, as the shared port-table renderer sees it.
struct PortDnat<'a> {
    proto: Proto,
    port: u16,
    target_port: u16,
    backends: &'a [Ipv4Addr],
}

/// Renders the sandbox's DNS redirect: queries to 127.0.0.11:53 go to the embedded server on 127.0.0.11:`udp_port`
/// and :`tcp_port`. The server does not take port 53 itself, so a task may run its own DNS server on 0.0.0.0:53
/// (Docker redirects the same way, with iptables).
pub fn render_dns_redirect(udp_port: u16, tcp_port: u16) -> String {
    format!(
        "table ip {DNS_TABLE} {{}}\ndelete table ip {DNS_TABLE}\ntable ip {DNS_TABLE} {{\n\tchain output {{\n\t\ttype nat hook output priority {PRIO_DSTNAT}; policy accept;\n\t\tip daddr {DNS_ADDR} udp dport 53 dnat to {DNS_ADDR}:{udp_port}\n\t\tip daddr {DNS_ADDR} tcp dport 53 dnat to {DNS_ADDR}:{tcp_port}\n\t}}\n}}\n"
    )
}

/// The transaction that removes `table` if it exists and succeeds if it does not (`nft delete table` alone fails
/// on an absent table; declaring it first makes it present).
pub fn render_removal(table: &str) -> String {
    format!("table ip {table} {{}}\ndelete table ip {table}\n")
}

/// Renders the sandbox's VIP table: locally generated TCP/UDP to each VIP is DNATed (port kept) to one of its
/// backends, round robin per new connection; VIPs without backends are rejected.
///
/// The result is a complete transaction that replaces [`VIP_TABLE`]; an empty `rules` yields an empty table.
pub fn render_vips(rules: &[VipRule]) -> Result<String, NftError> {
    let mut seen = HashSet::new();
    for rule in rules {
        if !seen.insert(rule.vip) {
            return Err(NftError::DuplicateVip(rule.vip));
        }
    }
    let (served, empty): (Vec<&VipRule>, Vec<&VipRule>) = rules.iter().partition(|r| !r.backends.is_empty());

    let mut out = render_removal(VIP_TABLE);
    let s = &mut out;
    line(s, 0, format_args!("table ip {VIP_TABLE} {{"));
    if !empty.is_empty() {
        line(s, 1, format_args!("set empty_vips {{"));
        line(s, 2, format_args!("type ipv4_addr"));
        line(s, 2, format_args!("elements = {{ {} }}", join(empty.iter().map(|r| r.vip))));
        line(s, 1, format_args!("}}"));
    }
    line(s, 1, format_args!("chain output {{"));
    line(s, 2, format_args!("type nat hook output priority {PRIO_DSTNAT}; policy accept;"));
    if !served.is_empty() {
        let vmap = join(served.iter().map(|r| format!("{} : jump {}", r.vip, vip_chain(r.vip))));
        line(s, 2, format_args!("meta l4proto {{ tcp, udp }} ip daddr vmap {{ {vmap} }}"));
    }
    line(s, 1, format_args!("}}"));
    for rule in &served {
        line(s, 1, format_args!("chain {} {{", vip_chain(rule.vip)));
        line(s, 2, format_args!("dnat to {}", balance(&rule.backends)));
        line(s, 1, format_args!("}}"));
    }
    if !empty.is_empty() {
        line(s, 1, format_args!("chain reject_empty {{"));
        line(s, 2, format_args!("type filter hook output priority {PRIO_FILTER}; policy accept;"));
        line(s, 2, format_args!("ct state new ip daddr @empty_vips meta l4proto tcp reject with tcp reset"));
        line(
            s,
            2,
            format_args!("ct state new ip daddr @empty_vips meta l4proto udp reject with icmp type port-unreachable"),
        );
        line(s, 1, format_args!("}}"));
    }
    line(s, 0, format_args!("}}"));
    Ok(out)
}

/// Renders the node's ingress table: TCP/UDP arriving for `port` on any local address (and the node's own
/// connections to it) is DNATed to `backend:target_port`, round robin per new connection, and masqueraded as it
/// leaves through `host_leg` so that the replies come back through this node. Ports without backends are rejected.
///
/// The masquerade keeps each client's source port where it can (`fully-random` was measured worse: random ports
/// land on tuples the backends still hold in TIME_WAIT; see [`crate::network::DataPlane::sandbox_create`] for how
/// sandboxes avoid that).
///
/// The result is a complete transaction that replaces [`INGRESS_TABLE`].
pub fn render_ingress(host_leg: &str, ports: &[IngressPort]) -> Result<String, NftError> {
    let ports: Vec<PortDnat<'_>> = ports
        .iter()
        .map(|p| PortDnat { proto: p.proto, port: p.port, target_port: p.target_port, backends: &p.backends })
        .collect();
    render_port_table(INGRESS_TABLE, &ports, Some(host_leg))
}

/// Renders the node's host-mode table: the same DNAT as [`render_ingress`], each port to its single task.
///
/// `masquerade_via`: `None` keeps the client's address (the point of host mode), which requires the task's
/// replies to be routed back through this node (its default route); `Some(interface)` masquerades what leaves
/// through that interface, as the mesh does.
///
/// The result is a complete transaction that replaces [`HOST_PORTS_TABLE`].
pub fn render_host_ports(ports: &[HostPort], masquerade_via: Option<&str>) -> Result<String, NftError> {
    let ports: Vec<PortDnat<'_>> = ports
        .iter()
        .map(|p| PortDnat {
            proto: p.proto,
            port: p.port,
            target_port: p.target_port,
            backends: std::slice::from_ref(&p.backend),
        })
        .collect();
    render_port_table(HOST_PORTS_TABLE, &ports, masquerade_via)
}

fn render_port_table(table: &str, ports: &[PortDnat<'_>], masquerade_via: Option<&str>) -> Result<String, NftError> {
    if let Some(ifname) = masquerade_via {
        check_ifname(ifname)?;
    }
    let mut seen = HashSet::new();
    for p in ports {
        if p.port == 0 || p.target_port == 0 {
            return Err(NftError::ZeroPort { proto: p.proto });
        }
        if !seen.insert((p.proto, p.port)) {
            return Err(NftError::DuplicatePort { proto: p.proto, port: p.port });
        }
    }
    let (served, empty): (Vec<&PortDnat<'_>>, Vec<&PortDnat<'_>>) = ports.iter().partition(|p| !p.backends.is_empty());

    let mut out = render_removal(table);
    let s = &mut out;
    line(s, 0, format_args!("table ip {table} {{"));
    if !served.is_empty() {
        // Both entry points share one dispatch chain: `prerouting` for packets from elsewhere, `output` for the
        // node's own connections to one of its addresses.
        for (chain, hook) in [("prerouting", "prerouting"), ("output", "output")] {
            line(s, 1, format_args!("chain {chain} {{"));
            line(s, 2, format_args!("type nat hook {hook} priority {PRIO_DSTNAT}; policy accept;"));
            line(s, 2, format_args!("fib daddr type local jump published"));
            line(s, 1, format_args!("}}"));
        }
        let vmap = join(served.iter().map(|p| format!("{} . {} : jump {}", p.proto, p.port, port_chain(p))));
        line(s, 1, format_args!("chain published {{"));
        line(s, 2, format_args!("meta l4proto . th dport vmap {{ {vmap} }}"));
        line(s, 1, format_args!("}}"));
        for p in &served {
            line(s, 1, format_args!("chain {} {{", port_chain(p)));
            // `meta l4proto` gives nft the protocol context a port in a nat statement needs.
            // `counter`: a nat chain sees only a connection's first packet, so it counts new connections (read
            // back by `parse_port_counters`; it restarts when the table is replaced)
            let (proto, to) = (p.proto, balance(p.backends));
            line(s, 2, format_args!("meta l4proto {proto} counter dnat to {to} : {}", p.target_port));
            line(s, 1, format_args!("}}"));
        }
        if let Some(ifname) = masquerade_via {
            // Only connections this table DNATed: `ct original proto-dst` is the published port before DNAT.
            line(s, 1, format_args!("chain postrouting {{"));
            line(s, 2, format_args!("type nat hook postrouting priority {PRIO_SRCNAT}; policy accept;"));
            for proto in [Proto::Tcp, Proto::Udp] {
                let published: Vec<u16> = served.iter().filter(|p| p.proto == proto).map(|p| p.port).collect();
                if !published.is_empty() {
                    line(
                        s,
                        2,
                        format_args!(
                            "oifname \"{ifname}\" ct status dnat meta l4proto {proto} ct original proto-dst {{ {} }} masquerade",
                            join(published)
                        ),
                    );
                }
            }
            line(s, 1, format_args!("}}"));
        }
    }
    if !empty.is_empty() {
        line(s, 1, format_args!("chain reject_empty {{"));
        line(s, 2, format_args!("type filter hook input priority {PRIO_FILTER}; policy accept;"));
        for (proto, verdict) in
            [(Proto::Tcp, "reject with tcp reset"), (Proto::Udp, "reject with icmp type port-unreachable")]
        {
            let refused: Vec<u16> = empty.iter().filter(|p| p.proto == proto).map(|p| p.port).collect();
            if !refused.is_empty() {
                line(s, 2, format_args!("ct state new {proto} dport {{ {} }} {verdict}", join(refused)));
            }
        }
        line(s, 1, format_args!("}}"));
    }
    line(s, 0, format_args!("}}"));
    Ok(out)
}

/// New connections DNATed to a published port, as a port table's counters tell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortCount {
    /// TCP or UDP.
    pub proto: Proto,
    /// The published port.
    pub port: u16,
    /// Connections (a UDP flow is one) DNATed since the table was last replaced.
    pub connections: u64,
}

/// The per-port counters of a port table as `nft list table` prints it ([`render_ingress`] and
/// [`render_host_ports`] put a `counter` in each port's chain, named `tcp_PORT` / `udp_PORT`). Other chains and
/// lines are skipped; so is a port chain without a counter.
pub fn parse_port_counters(listing: &str) -> Vec<PortCount> {
    let mut out = Vec::new();
    let mut chain: Option<(Proto, u16)> = None;
    for line in listing.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("chain ").and_then(|l| l.strip_suffix(" {")) {
            chain = name.split_once('_').and_then(|(proto, port)| {
                let proto = match proto {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    _ => return None,
                };
                Some((proto, port.parse().ok()?))
            });
            continue;
        }
        let Some((proto, port)) = chain else { continue };
        let packets = line.split_once("counter packets ").and_then(|(_, rest)| rest.split(' ').next()?.parse().ok());
        if let Some(connections) = packets {
            out.push(PortCount { proto, port, connections });
            chain = None;
        }
    }
    out
}

/// The DNAT target for `backends` (not empty): the address itself for one, else round robin over all of them.
/// `numgen inc` counts new connections through this rule; the counter restarts when the table is replaced.
fn balance(backends: &[Ipv4Addr]) -> String {
    match backends {
        [one] => one.to_string(),
        many => {
            let map = join(many.iter().enumerate().map(|(i, b)| format!("{i} : {b}")));
            format!("numgen inc mod {} map {{ {map} }}", many.len())
        }
    }
}

fn vip_chain(vip: Ipv4Addr) -> String {
    let [a, b, c, d] = vip.octets();
    format!("vip_{a}_{b}_{c}_{d}")
}

fn port_chain(p: &PortDnat<'_>) -> String {
    format!("{}_{}", p.proto, p.port)
}

/// Linux interface names are at most 15 bytes; skep's are ASCII. Anything else is refused rather than escaped,
/// since the name lands inside an nft string literal.
pub(super) fn check_ifname(name: &str) -> Result<(), NftError> {
    let ok = !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(NftError::InvalidInterface(name.to_owned()))
    }
}

fn join<T: fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    let mut out = String::new();
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{item}");
    }
    out
}

fn line(out: &mut String, indent: usize, text: fmt::Arguments<'_>) {
    for _ in 0..indent {
        out.push('\t');
    }
    let _ = out.write_fmt(text);
    out.push('\n');
}
