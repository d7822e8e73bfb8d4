//! Every name the data plane gives to a namespace or an interface, and the MAC of every endpoint.
//!
//! Names are pure functions of the DataPlane prefix, the VNI, the task ID or the endpoint address, so that a daemon
//! that restarts (or crashed) finds what it made before without any saved state, and `teardown_all` can tell its own
//! namespaces from everyone else's by parsing names back. Interface names fit Linux's 15-byte limit (IFNAMSIZ − 1).

use std::net::Ipv4Addr;

/// Linux's limit on interface names (IFNAMSIZ − 1).
pub const IFNAME_MAX: usize = 15;

/// How many characters of a task ID name its sandbox (Docker shows 12 as well).
pub const TASK_ID_CHARS: usize = 12;

/// The bridge inside every network namespace (alone there, so the name can be fixed).
pub const BRIDGE: &str = "br0";

/// The longest prefix accepted: namespace names stay readable and well under NAME_MAX.
pub const PREFIX_MAX: usize = 40;

/// The MAC address of the endpoint with IPv4 address `ip`: `02:42:a:b:c:d`, as Docker derives it.
///
/// Because every node can compute every endpoint's MAC from its IP, nothing has to be learned or flooded: each node
/// programs static FDB and neighbour entries from the plan alone.
pub fn mac_for(ip: Ipv4Addr) -> [u8; 6] {
    let [a, b, c, d] = ip.octets();
    [0x02, 0x42, a, b, c, d]
}

/// `02:42:0a:00:00:02` for display.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
}

/// The named namespace of network `vni` on the node whose DataPlane prefix is `prefix`: `<prefix>-n<vni>`.
pub fn network_ns_name(prefix: &str, vni: u32) -> String {
    format!("{prefix}-n{vni}")
}

/// The named namespace of task `task_id`'s sandbox: `<prefix>-t-<first 12 characters of the task ID>`.
pub fn sandbox_ns_name(prefix: &str, task_id: &str) -> String {
    let short: String = task_id.chars().take(TASK_ID_CHARS).collect();
    format!("{prefix}-t-{short}")
}

/// The VXLAN device of network `vni`: `skvx<vni>`, at most 12 bytes. It is made under this name in the node's
/// namespace and keeps it in the network's namespace, so a leftover from an interrupted move is recognisable.
pub fn vxlan_name(vni: u32) -> String {
    format!("skvx{vni}")
}

/// The sandbox end of a gateway link ([`super::DataPlane::sandbox_gateway`]).
pub const GATEWAY_IF: &str = "gw0";

/// The node end of a sandbox's gateway link: `skg` + the 8 hex digits of its (node-local) address.
pub fn gateway_name(node_addr: Ipv4Addr) -> String {
    format!("skg{:08x}", u32::from(node_addr))
}

/// The node's end of the host leg of network `vni` (in the node's namespace): `skh<vni>`, at most 11 bytes.
pub fn host_leg_name(vni: u32) -> String {
    format!("skh{vni}")
}

/// The bridge port (network namespace end) of the veth of the endpoint with address `addr`: `vp` + 8 hex digits.
/// Addresses are unique within a network, so are these names within its namespace.
pub fn port_name(addr: Ipv4Addr) -> String {
    format!("vp{:08x}", u32::from(addr))
}

/// The bridge port of the host leg with address `addr`: `vh` + 8 hex digits.
pub fn host_port_name(addr: Ipv4Addr) -> String {
    format!("vh{:08x}", u32::from(addr))
}

/// A namespace name that belongs to a DataPlane prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedNs {
    /// `<prefix>-n<vni>`.
    Network(u32),
    /// `<prefix>-t-<short task id>`.
    Sandbox(String),
}

/// Parses `name` back: `Some` only when it is exactly one of the shapes above for this `prefix` (so prefix `a` does
/// not claim the namespaces of prefix `a-n1` or `a-t`).
pub fn parse_owned_ns(prefix: &str, name: &str) -> Option<OwnedNs> {
    let rest = name.strip_prefix(prefix)?.strip_prefix('-')?;
    if let Some(short) = rest.strip_prefix("t-") {
        let ok = !short.is_empty() && short.len() <= TASK_ID_CHARS && short.chars().all(|c| c.is_ascii_alphanumeric());
        return ok.then(|| OwnedNs::Sandbox(short.to_string()));
    }
    let digits = rest.strip_prefix('n')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || (digits.len() > 1 && digits.starts_with('0'))
    {
        return None;
    }
    digits.parse().ok().map(OwnedNs::Network)
}

/// Parses `skvx<vni>` / `skh<vni>` (node-namespace leftovers) back to the VNI.
pub fn parse_node_link(name: &str) -> Option<u32> {
    if let Some(hex) = name.strip_prefix("skg") {
        return u32::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 8);
    }
    let digits = name.strip_prefix("skvx").or_else(|| name.strip_prefix("skh"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Why a prefix is refused, if it is.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.len() > PREFIX_MAX {
        return Err(format!("prefix {prefix:?} must be 1 to {PREFIX_MAX} characters"));
    }
    if !prefix.starts_with(|c: char| c.is_ascii_alphanumeric())
        || !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "prefix {prefix:?} must be letters, digits, '-' and '_', starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Why a task ID is refused, if it is (it becomes part of a file name).
pub fn check_task_id(task_id: &str) -> Result<(), String> {
    if task_id.is_empty() || !task_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!("task id {task_id:?} must be letters and digits"));
    }
    Ok(())
}

/// Why an interface name is refused, if it is.
pub fn check_ifname(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "interface name {name:?} must be 1 to {IFNAME_MAX} bytes without '/', ':' or spaces"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_docker_style() {
        assert_eq!(mac_for(Ipv4Addr::new(10, 0, 0, 2)), [0x02, 0x42, 10, 0, 0, 2]);
        assert_eq!(
            format_mac(&mac_for(Ipv4Addr::new(10, 255, 1, 200))),
            "02:42:0a:ff:01:c8"
        );
    }

    #[test]
    fn interface_names_fit_ifnamsiz() {
        let max_vni = (1 << 24) - 1;
        for name in [
            vxlan_name(max_vni),
            host_leg_name(max_vni),
            port_name(Ipv4Addr::new(255, 255, 255, 255)),
            host_port_name(Ipv4Addr::new(255, 255, 255, 255)),
            BRIDGE.to_string(),
        ] {
            assert!(name.len() <= IFNAME_MAX, "{name}");
            assert!(check_ifname(&name).is_ok(), "{name}");
        }
        assert_eq!(vxlan_name(4096), "skvx4096");
        assert_eq!(host_leg_name(4096), "skh4096");
        assert_eq!(port_name(Ipv4Addr::new(10, 0, 0, 2)), "vp0a000002");
        assert_eq!(host_port_name(Ipv4Addr::new(10, 0, 0, 2)), "vh0a000002");
    }

    #[test]
    fn namespace_names_round_trip() {
        assert_eq!(network_ns_name("skep1", 4097), "skep1-n4097");
        assert_eq!(
            sandbox_ns_name("skep1", "abcdefghijklmnopqrstuvwxy"),
            "skep1-t-abcdefghijkl"
        );
        assert_eq!(sandbox_ns_name("skep1", "abc"), "skep1-t-abc");
        assert_eq!(parse_owned_ns("skep1", "skep1-n4097"), Some(OwnedNs::Network(4097)));
        assert_eq!(
            parse_owned_ns("skep1", "skep1-t-abcdefghijkl"),
            Some(OwnedNs::Sandbox("abcdefghijkl".into()))
        );
    }

    #[test]
    fn prefixes_do_not_claim_each_other() {
        // Another DataPlane's prefix that starts with ours.
        assert_eq!(parse_owned_ns("a", "a-n1-n5"), None);
        assert_eq!(parse_owned_ns("a", "a-t-t-abc"), None);
        assert_eq!(parse_owned_ns("a", "ab-n5"), None);
        assert_eq!(parse_owned_ns("a", "a-n"), None);
        assert_eq!(parse_owned_ns("a", "a-n05"), None);
        assert_eq!(parse_owned_ns("a", "a-t-"), None);
        assert_eq!(parse_owned_ns("a", "a-t-abcdefghijklm"), None);
        assert_eq!(parse_owned_ns("a", "a-x"), None);
        assert_eq!(parse_owned_ns("a", "a-n99999999999"), None);
    }

    #[test]
    fn node_links_parse() {
        assert_eq!(parse_node_link("skvx4096"), Some(4096));
        assert_eq!(parse_node_link("skh12"), Some(12));
        assert_eq!(parse_node_link("skh"), None);
        assert_eq!(parse_node_link("eth0"), None);
        assert_eq!(parse_node_link("skvx1a"), None);
    }

    #[test]
    fn checks() {
        assert!(check_prefix("skep-node1_a").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("-x").is_err());
        assert!(check_prefix("a/b").is_err());
        assert!(check_prefix(&"x".repeat(PREFIX_MAX + 1)).is_err());
        assert!(check_task_id("0123abcXYZ").is_ok());
        assert!(check_task_id("a-b").is_err());
        assert!(check_task_id("").is_err());
        assert!(check_ifname("eth0").is_ok());
        assert!(check_ifname("a-very-long-name0").is_err());
        assert!(check_ifname("a b").is_err());
    }
}
