//! Service load balancing in nftables: service VIPs inside task sandboxes (east-west), the ingress routing mesh's
//! published ports and host-mode ports on the node (north-south).
//!
//! The kernel here has no IPVS, so where Docker swarm programs IPVS virtual servers skep programs `nat` chains:
//! a `dnat` whose address comes from `numgen inc mod N map { 0 : b0, 1 : b1, … }`, i.e. round robin over the
//! backends for each *new* connection. The NAT binding lives in the connection's conntrack entry, so replacing the
//! rules never moves an established connection, and a backend that leaves the list gets no new connection from the
//! moment the new rules are committed.
//!
//! Every call renders the *whole* table and replaces it in one nft transaction (`table ip T {}` +
//! `delete table ip T` + the new definition, all in one `nft -f -`): packets see the old ruleset or the new one,
//! never a half state, and a rendering nft refuses leaves the old table in place. skep only ever touches its own
//! tables, [`VIP_TABLE`], [`INGRESS_TABLE`] and [`HOST_PORTS_TABLE`] (family `ip`); other tables (Docker's,
//! firewalld's, the host's) are neither read nor flushed.
//!
//! | What | Where it is applied | Table | Hooks |
//! |---|---|---|---|
//! | [`VipRule`] | the task's sandbox namespace | [`VIP_TABLE`] | nat `output` (DNAT), filter `output` (reject when empty) |
//! | [`IngressPort`] | the node's own namespace | [`INGRESS_TABLE`] | nat `prerouting` + `output` (DNAT to `fib daddr type local`), nat `postrouting` (masquerade on the host leg), filter `input` (reject when empty) |
//! | [`HostPort`] | the node that runs the task | [`HOST_PORTS_TABLE`] | as ingress; masquerade optional |
//!
//! The node forwards mesh traffic between its interfaces, so its namespace needs `net.ipv4.ip_forward=1`:
//! [`enable_ip_forward`]. Connections to `127.0.0.1:PORT` on the node additionally need
//! [`enable_route_localnet`] on the host leg (the kernel otherwise refuses to route a loopback source out of a
//! real interface, even though the masquerade would rewrite it).
//!
//! Example, two services on the sandbox's network 10.0.1.0/24, one without tasks:
//!
//! ```text
//! table ip skep_vip {
//!   set empty_vips {
//!     type ipv4_addr
//!     elements = { 10.0.1.3 }
//!   }
//!   chain output {
//!     type nat hook output priority -100; policy accept;
//!     meta l4proto { tcp, udp } ip daddr vmap { 10.0.1.2 : jump vip_10_0_1_2 }
//!   }
//!   chain vip_10_0_1_2 {
//!     dnat to numgen inc mod 2 map { 0 : 10.0.1.5, 1 : 10.0.1.6 }
//!   }
//!   chain reject_empty {
//!     type filter hook output priority 0; policy accept;
//!     ct state new ip daddr @empty_vips meta l4proto tcp reject with tcp reset
//!     ct state new ip daddr @empty_vips meta l4proto udp reject with icmp type port-unreachable
//!   }
//! }
//! ```
//!
//! # Layout
//! - `rules`: the rule types and the pure rendering ([`render_vips`], [`render_ingress`], [`render_host_ports`]).
//! - `command`: running `nft` (inside a namespace through `nsenter`), bounded in time and output; apply, remove
//!   and list, and read the mesh's per-port connection counters ([`ingress_connections`], for `/metrics`).
//! - `sysctl`: writing `/proc/sys` inside a namespace.
//! - `error`: [`NftError`].
#![forbid(unsafe_code)]

mod command;
mod error;
mod rules;
mod sysctl;
#[cfg(test)]
mod tests;

pub use command::{
    apply_dns_redirect, apply_host_ports, apply_ingress, apply_vips, ingress_connections, list_tables,
    remove_host_ports, remove_ingress, remove_vips, NftTable, NFT_MAX_OUTPUT, NFT_TIMEOUT,
};
pub use error::NftError;
pub use rules::{
    parse_port_counters, render_dns_redirect, render_host_ports, render_ingress, render_removal, render_vips, HostPort,
    IngressPort, PortCount, Proto, VipRule, DNS_ADDR, DNS_TABLE, HOST_PORTS_TABLE, INGRESS_TABLE, VIP_TABLE,
};
pub use sysctl::{enable_ip_forward, enable_route_localnet, set_sysctl};
