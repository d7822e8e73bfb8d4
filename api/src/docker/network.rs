//! Networks (`/networks`), service attachments and virtual IPs, as the Engine API describes them (docs.docker.com/reference/api/engine/version/v1.50/).

use super::{null_default, Labels};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Driver options and the like.
pub type Options = BTreeMap<String, String>;

/// The option key Docker uses to show an overlay's VXLAN ID.
pub const VXLAN_ID_OPTION: &str = "com.docker.network.driver.overlay.vxlanid_list";
/// The option key for an overlay's MTU (else the underlay's minus the VXLAN overhead).
pub const MTU_OPTION: &str = "com.docker.network.driver.mtu";
/// The name of the routing mesh's network.
pub const INGRESS_NAME: &str = "ingress";

/// One `IPAM.Config` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct IpamConfig {
    /// CIDR, e.g. `10.0.1.0/24`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subnet: String,
    /// Range inside the subnet (accepted, not used for allocation).
    #[serde(rename = "IPRange", skip_serializing_if = "String::is_empty")]
    pub ip_range: String,
    /// Gateway address, e.g. `10.0.1.1`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub gateway: String,
}

/// `IPAM`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Ipam {
    /// `default`.
    pub driver: String,
    /// Driver options (`null` when none, as Docker shows it).
    pub options: Option<Options>,
    /// Subnets.
    #[serde(deserialize_with = "null_default")]
    pub config: Vec<IpamConfig>,
}

/// `ConfigFrom`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct ConfigReference {
    /// Network to take the configuration from.
    pub network: String,
}

/// An endpoint in `Network.Containers` (the tasks attached, on `network inspect`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EndpointResource {
    /// Task name (`web.1.<task id>`).
    pub name: String,
    /// Endpoint ID (the task ID here).
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// MAC address.
    pub mac_address: String,
    /// `10.0.1.3/24`.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// Empty (no IPv6 yet).
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// A network (`GET /networks/{id}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Network {
    /// Name.
    pub name: String,
    /// ID (note Docker's spelling `Id`).
    #[serde(rename = "Id")]
    pub id: String,
    /// Creation time.
    pub created: String,
    /// `swarm` for overlays, `local` for the host's own.
    pub scope: String,
    /// `overlay`, `bridge`, `host`, `null`.
    pub driver: String,
    /// Always true.
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    /// Not supported yet.
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Address management.
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    /// No traffic to or from outside the network.
    pub internal: bool,
    /// Standalone containers may attach.
    pub attachable: bool,
    /// The routing mesh's network.
    pub ingress: bool,
    /// `ConfigFrom`.
    pub config_from: ConfigReference,
    /// Only a configuration.
    pub config_only: bool,
    /// Tasks attached (filled in on inspect).
    #[serde(deserialize_with = "null_default")]
    pub containers: BTreeMap<String, EndpointResource>,
    /// Driver options; overlays show their VXLAN ID here.
    #[serde(deserialize_with = "null_default")]
    pub options: Options,
    /// Labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
}

/// `POST /networks/create` body.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkCreateRequest {
    /// Name (required).
    pub name: String,
    /// `overlay` (the only driver a swarm creates).
    pub driver: String,
    /// Empty or `swarm`.
    pub scope: String,
    /// Subnets.
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    /// No traffic to or from outside.
    pub internal: bool,
    /// Standalone containers may attach.
    pub attachable: bool,
    /// Create the routing mesh's network (only when none exists).
    pub ingress: bool,
    /// Only a configuration (not supported).
    pub config_only: bool,
    /// `ConfigFrom` (not supported).
    pub config_from: Option<ConfigReference>,
    /// IPv6 (not supported).
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: Option<bool>,
    /// Driver options.
    #[serde(deserialize_with = "null_default")]
    pub options: Options,
    /// Labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// Old clients' duplicate check (ignored: names are always unique in a swarm).
    pub check_duplicate: Option<bool>,
}

/// `POST /networks/create` reply (201).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkCreateResponse {
    /// The new network's ID.
    #[serde(rename = "Id")]
    pub id: String,
    /// Always empty.
    pub warning: String,
}

/// `TaskTemplate.Networks[]`: a network a service's tasks attach to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkAttachmentConfig {
    /// Network ID (names are resolved to IDs on create and update).
    pub target: String,
    /// Extra DNS names of the service on this network.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Driver options.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: Options,
}

/// `Endpoint.VirtualIPs[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct EndpointVirtualIp {
    /// Network ID.
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    /// `10.0.1.2/24`.
    pub addr: String,
}

/// `Task.NetworksAttachments[]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct NetworkAttachment {
    /// The network as it was when the task was allocated.
    pub network: Network,
    /// The task's addresses on it (`10.0.1.3/24`).
    #[serde(deserialize_with = "null_default")]
    pub addresses: Vec<String>,
}

/// `a.b.c.d/len` (host bits allowed, surrounding blanks ignored) → the address and the prefix length; `None` when
/// the text is not one. The form every address in these shapes takes (`Addresses`, `Addr`, IPAM subnets).
pub fn parse_ipv4_cidr(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.trim().split_once('/')?;
    Some((ip.parse().ok()?, len.parse().ok().filter(|l| *l <= 32)?))
}

impl NetworkAttachment {
    /// The task's address on the network, with the prefix length.
    pub fn ipv4(&self) -> Option<(Ipv4Addr, u8)> {
        self.addresses.first().and_then(|a| parse_ipv4_cidr(a))
    }
}

impl EndpointVirtualIp {
    /// The VIP.
    pub fn ipv4(&self) -> Option<Ipv4Addr> {
        parse_ipv4_cidr(&self.addr).map(|(ip, _)| ip)
    }
}

impl Network {
    /// The first subnet, if any (`10.0.1.0/24`).
    pub fn subnet(&self) -> Option<&str> {
        self.ipam.config.first().map(|c| c.subnet.as_str()).filter(|s| !s.is_empty())
    }

    /// The VXLAN ID from the driver options.
    pub fn vni(&self) -> Option<u32> {
        self.options.get(VXLAN_ID_OPTION).and_then(|v| v.split(',').next()).and_then(|v| v.trim().parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_request_as_the_cli_sends_it() {
        let body = r#"{"Driver":"overlay","Scope":"","IPAM":{"Driver":"default","Options":{},"Config":[{"Subnet":"10.20.0.0/24"}]},
            "Internal":false,"Attachable":true,"Ingress":false,"ConfigOnly":false,"ConfigFrom":null,"Options":{},"Labels":{},"Name":"net"}"#;
        let r: NetworkCreateRequest = serde_json::from_str(body).unwrap();
        assert_eq!(r.name, "net");
        assert!(r.attachable);
        assert_eq!(r.ipam.unwrap().config[0].subnet, "10.20.0.0/24");
    }

    #[test]
    fn network_shape_uses_dockers_names() {
        let mut n = Network { name: "net".into(), id: "abc".into(), scope: "swarm".into(), ..Default::default() };
        n.options.insert(VXLAN_ID_OPTION.into(), "4097".into());
        let v = serde_json::to_value(&n).unwrap();
        for k in ["Id", "IPAM", "EnableIPv4", "EnableIPv6", "Containers", "Options", "Labels", "ConfigFrom", "Ingress"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        assert_eq!(n.vni(), Some(4097));
        let att = NetworkAttachment { addresses: vec![" 10.0.1.3/24".into()], ..Default::default() };
        assert_eq!(att.ipv4(), Some((Ipv4Addr::new(10, 0, 1, 3), 24)));
        assert_eq!(parse_ipv4_cidr("10.0.1.3/33"), None);
        assert_eq!(parse_ipv4_cidr("10.0.1.3"), None);
        let a = NetworkAttachmentConfig { target: "x".into(), ..Default::default() };
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"Target":"x"}"#);
    }
}
