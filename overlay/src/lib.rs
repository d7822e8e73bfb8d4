//! The node-local data plane of skep's networking: what a node programs into its own kernel so that its tasks reach
//! each other across hosts (VXLAN overlays), reach services by virtual IP (nftables DNAT), and so that every node
//! answers each published port (the ingress routing mesh).
//!
//! Nothing here talks to the managers: the worker computes what should exist from the cluster store's view and hands
//! it to this crate, which makes the kernel match. There is no gossip; the managers' store is the only source.
//!
//! # Layout
//!
//! - [`netns`]: network namespaces as handles (iproute2's `/run/netns/NAME`, or any `/proc/PID/ns/net`): create,
//!   open, delete, run code or a command inside, and get an rtnetlink handle whose socket lives inside. The daemon's
//!   own threads never change namespace.
//! - [`network`]: the overlay data plane of one node (`DataPlane`): per network a namespace with a bridge and a
//!   VXLAN device (static FDB and proxy-ARP neighbour entries per remote peer, no learning), per task a sandbox
//!   namespace attached by veth, and the host leg that gives the node itself an address on a network (ingress).
//!   [`network::names`] derives every name and MAC, so a restarted daemon finds what it made.
//! - [`nft`]: nftables rules for service virtual IPs and the ingress routing mesh.
//! - [`proxy`]: a userspace TCP relay for published ports that passes the client address on (PROXY protocol v2).

pub mod netns;
pub mod network;
pub mod nft;
pub mod proxy;
