//! `/networks`: validate a create against the cluster and this host's routes, choose the subnet, and render the API
//! view (with the tasks attached). Pure: the host's routes are passed in by the caller.

use super::{invalid, ControlError};
use crate::allocator::{self, Subnet};
use crate::store::{ClusterState, NetworkRecord, Op};
use skep_api::docker::{
    EndpointResource, Ipam, IpamConfig, Network, NetworkCreateRequest, INGRESS_NAME, MTU_OPTION,
};
use skep_api::filters::Filters;

/// The address pools and subnet size of the cluster (`swarm init --default-addr-pool …`).
pub fn cluster_pools(state: &ClusterState) -> (Vec<Subnet>, u8) {
    let spec = state.cluster.as_ref().map(|c| &c.info);
    let pools: Vec<Subnet> = spec
        .map(|i| i.default_addr_pool.iter().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    let size = spec.map(|i| i.subnet_size).filter(|s| (1..=30).contains(s)).unwrap_or(24) as u8;
    if pools.is_empty() {
        (vec![allocator::DEFAULT_POOL.parse().expect("constant")], size)
    } else {
        (pools, size)
    }
}

/// Check `--default-addr-pool` values (at `swarm init`): valid CIDRs, a mask length that fits them, and no overlap
/// with the host's own routes (a pool colliding with the LAN is the classic overlay outage, moby#24220).
pub fn check_pools(pools: &[String], size: u32, host_routes: &[Subnet]) -> Result<(Vec<Subnet>, u8), ControlError> {
    let size = if size == 0 { u32::from(allocator::DEFAULT_SUBNET_SIZE) } else { size };
    if !(8..=30).contains(&size) {
        return Err(invalid(format!("invalid subnet size {size}: between 8 and 30")));
    }
    let mut out = Vec::new();
    for p in pools {
        let s: Subnet = p.parse().map_err(|e: allocator::BadCidr| invalid(e))?;
        if u32::from(s.len) > size {
            return Err(invalid(format!("subnet size {size} is smaller than pool {s}")));
        }
        if let Some(r) = host_routes.iter().find(|r| r.overlaps(s)) {
            return Err(invalid(format!("address pool {s} overlaps with the host route {r}")));
        }
        out.push(s);
    }
    if out.is_empty() {
        out.push(allocator::DEFAULT_POOL.parse().expect("constant"));
    }
    Ok((out, size as u8))
}

/// Choose a free subnet from the pools, skipping the cluster's networks and the host's routes.
pub fn auto_subnet(state: &ClusterState, pools: &[Subnet], size: u8, host_routes: &[Subnet]) -> Result<Subnet, ControlError> {
    let mut taken: Vec<Subnet> = state.networks.values().map(|n| n.subnet()).collect();
    taken.extend(host_routes.iter().copied());
    allocator::pick_subnet(pools, size, &taken).ok_or_else(|| {
        invalid("could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network")
    })
}

/// The `ingress` network `swarm init` creates.
pub fn ingress_network(id: String, subnet: Subnet) -> Network {
    Network {
        name: INGRESS_NAME.into(),
        id,
        scope: "swarm".into(),
        driver: "overlay".into(),
        enable_ipv4: true,
        ingress: true,
        ipam: Ipam {
            driver: "default".into(),
            options: None,
            config: vec![IpamConfig { subnet: subnet.to_string(), gateway: subnet.first_host().to_string(), ..Default::default() }],
        },
        ..Default::default()
    }
}

/// `POST /networks/create`.
pub fn create(
    state: &ClusterState,
    req: NetworkCreateRequest,
    id: String,
    host_routes: &[Subnet],
) -> Result<Op, ControlError> {
    let name = req.name.trim().to_string();
    if name.is_empty() || name.len() > 64 || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
        return Err(invalid(format!("invalid network name {:?}", req.name)));
    }
    match req.driver.as_str() {
        "" | "overlay" => {}
        other => {
            return Err(ControlError::InvalidArgument(format!(
                "network driver {other:?} is not supported by skep: swarm networks use the overlay driver"
            )))
        }
    }
    if !matches!(req.scope.as_str(), "" | "swarm") {
        return Err(invalid(format!("overlay networks have swarm scope, not {:?}", req.scope)));
    }
    if req.config_only || req.config_from.as_ref().is_some_and(|c| !c.network.is_empty()) {
        return Err(ControlError::NotImplemented("config-only networks are not supported".into()));
    }
    if req.enable_ipv6 == Some(true) {
        return Err(ControlError::NotImplemented("IPv6 overlay networks are not supported yet".into()));
    }
    if state.networks.values().any(|n| n.network.name == name) {
        return Err(ControlError::Conflict(format!("network with name {name} already exists")));
    }
    if req.ingress && state.ingress().is_some() {
        return Err(precondition_ingress());
    }
    if let Some(m) = req.options.get(MTU_OPTION) {
        if !m.parse::<u32>().is_ok_and(|m| (576..=9000).contains(&m)) {
            return Err(invalid(format!("invalid MTU {m:?}: between 576 and 9000")));
        }
    }
    let ipam = req.ipam.clone().unwrap_or_default();
    if ipam.config.len() > 1 {
        return Err(ControlError::NotImplemented("more than one subnet per network is not supported yet".into()));
    }
    let cfg = ipam.config.first().cloned().unwrap_or_default();
    if !cfg.ip_range.is_empty() {
        // the allocator hands out addresses from the whole subnet; accepting a range and ignoring it would put tasks
        // outside it
        return Err(ControlError::NotImplemented("IPAM.Config.IPRange is not supported by skep yet".into()));
    }
    let subnet = if cfg.subnet.is_empty() {
        let (pools, size) = cluster_pools(state);
        auto_subnet(state, &pools, size, host_routes)?
    } else {
        let s: Subnet = cfg.subnet.parse().map_err(|e: allocator::BadCidr| invalid(e))?;
        if s.len > 29 {
            return Err(invalid(format!("subnet {s} is too small for an overlay network (at most /29)")));
        }
        if let Some(o) = state.networks.values().find(|n| n.subnet().overlaps(s)) {
            return Err(invalid(format!("subnet {s} overlaps with network {} ({})", o.network.name, o.subnet())));
        }
        if let Some(r) = host_routes.iter().find(|r| r.overlaps(s)) {
            return Err(invalid(format!("subnet {s} overlaps with the host route {r}")));
        }
        s
    };
    let gateway = if cfg.gateway.is_empty() {
        subnet.first_host()
    } else {
        let g: std::net::Ipv4Addr = cfg.gateway.parse().map_err(|_| invalid(format!("invalid gateway {}", cfg.gateway)))?;
        if !subnet.contains(g) {
            return Err(invalid(format!("gateway {g} is not in subnet {subnet}")));
        }
        g
    };
    let network = Network {
        name,
        id,
        scope: "swarm".into(),
        driver: "overlay".into(),
        enable_ipv4: true,
        internal: req.internal,
        attachable: req.attachable,
        ingress: req.ingress,
        ipam: Ipam {
            driver: if ipam.driver.is_empty() { "default".into() } else { ipam.driver },
            options: ipam.options.filter(|o| !o.is_empty()),
            config: vec![IpamConfig { subnet: subnet.to_string(), gateway: gateway.to_string(), ip_range: cfg.ip_range }],
        },
        options: req.options,
        labels: req.labels,
        ..Default::default()
    };
    Ok(Op::CreateNetwork { network: Box::new(network) })
}

fn precondition_ingress() -> ControlError {
    ControlError::Conflict("ingress network already exists".into())
}

/// `DELETE /networks/{id}`.
pub fn remove(state: &ClusterState, reference: &str) -> Result<Op, ControlError> {
    let rec = state.resolve_network(reference)?;
    Ok(Op::RemoveNetwork { id: rec.network.id.clone() })
}

/// The API view: the stored network with `Containers` listing the tasks attached (not terminal).
pub fn view(state: &ClusterState, rec: &NetworkRecord, with_containers: bool) -> Network {
    let mut n = rec.network.clone();
    if with_containers {
        for t in state.tasks.values().filter(|t| !t.status.state.is_terminal()) {
            for a in t.networks_attachments.iter().filter(|a| a.network.id == n.id) {
                let svc = state.services.get(&t.service_id).map(|s| s.spec.name.clone()).unwrap_or_default();
                let slot = if t.slot > 0 { t.slot.to_string() } else { t.node_id.clone() };
                let ip = a.ipv4().map(|(ip, _)| ip);
                n.containers.insert(
                    t.id.clone(),
                    EndpointResource {
                        name: format!("{svc}.{slot}.{}", t.id),
                        endpoint_id: t.id.clone(),
                        mac_address: ip.map(mac_for).unwrap_or_default(),
                        ipv4_address: a.addresses.first().cloned().unwrap_or_default(),
                        ipv6_address: String::new(),
                    },
                );
            }
        }
    }
    n
}

/// The MAC address a task's interface gets (derived from its IPv4 address, as Docker does).
pub fn mac_for(ip: std::net::Ipv4Addr) -> String {
    let o = ip.octets();
    format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

/// `GET /networks?filters=…`: name (substring), id (prefix), driver, scope, type (custom/builtin), label.
pub fn list(state: &ClusterState, f: &Filters) -> Result<Vec<Network>, ControlError> {
    f.check_keys(&["name", "id", "driver", "scope", "type", "label", "dangling"])
        .map_err(|e| ControlError::InvalidArgument(e.to_string()))?;
    for t in f.get("type") {
        if !matches!(t, "custom" | "builtin") {
            return Err(ControlError::InvalidArgument(format!("invalid filter: 'type'='{t}'")));
        }
    }
    Ok(state
        .networks
        .values()
        .filter(|n| f.matches_any("name", |v| n.network.name.contains(v)))
        .filter(|n| f.matches_any("id", |v| n.network.id.starts_with(v)))
        .filter(|n| f.matches_any("driver", |v| v == n.network.driver))
        .filter(|_| f.matches_any("scope", |v| v == "swarm"))
        .filter(|_| f.matches_any("type", |v| v == "custom"))
        .filter(|n| f.matches_labels("label", &n.network.labels))
        .map(|n| view(state, n, false))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;

    fn state_with(nets: &[(&str, &str)]) -> ClusterState {
        let mut s = ClusterState::default();
        for (i, (name, subnet)) in nets.iter().enumerate() {
            let req = NetworkCreateRequest {
                name: name.to_string(),
                driver: "overlay".into(),
                ipam: Some(Ipam { config: vec![IpamConfig { subnet: subnet.to_string(), ..Default::default() }], ..Default::default() }),
                ..Default::default()
            };
            let op = create(&s, req, format!("net{i}"), &[]).unwrap();
            s.apply(i as u64 + 1, &Command { at: "t".into(), op }).unwrap();
        }
        s
    }

    #[test]
    fn names_clash_subnets_overlap_and_routes_are_refused() {
        let s = state_with(&[("app", "10.20.0.0/24")]);
        let req = |name: &str, subnet: &str| NetworkCreateRequest {
            name: name.into(),
            ipam: Some(Ipam { config: vec![IpamConfig { subnet: subnet.into(), ..Default::default() }], ..Default::default() }),
            ..Default::default()
        };
        let e = create(&s, req("app", ""), "x".into(), &[]).unwrap_err();
        assert_eq!((e.status(), e.to_string()), (409, "network with name app already exists".to_string()));
        let e = create(&s, req("b", "10.20.0.0/16"), "x".into(), &[]).unwrap_err();
        assert_eq!(e.status(), 400, "{e}");
        let route: Subnet = "192.168.7.0/24".parse().unwrap();
        let e = create(&s, req("c", "192.168.7.128/25"), "x".into(), &[route]).unwrap_err();
        assert!(e.to_string().contains("host route"), "{e}");
        let e = create(&s, req("d", "10.30.0.5/24"), "x".into(), &[]).unwrap_err();
        assert_eq!(e.status(), 400);
        let e = create(&s, NetworkCreateRequest { name: "e".into(), driver: "macvlan".into(), ..Default::default() }, "x".into(), &[]).unwrap_err();
        assert_eq!(e.status(), 400);        let ranged = NetworkCreateRequest {
            name: "f".into(),
            ipam: Some(Ipam {
                config: vec![IpamConfig { subnet: "10.40.0.0/24".into(), ip_range: "10.41.0.0/28".into(), ..Default::default() }],
                ..Default::default()
            }),
            ..Default::default()
        };
        let e = create(&s, ranged, "x".into(), &[]).unwrap_err();
        assert_eq!(e.status(), 501, "{e}");
        assert!(e.to_string().contains("IPRange"), "{e}");
    }

    #[test]
    fn auto_subnets_skip_taken_ones_and_host_routes_and_get_vnis() {
        let s = state_with(&[("a", "10.0.0.0/24")]);
        let routes = ["10.0.1.0/24".parse().unwrap()];
        let op = create(&s, NetworkCreateRequest { name: "b".into(), ..Default::default() }, "nb".into(), &routes).unwrap();
        let Op::CreateNetwork { network } = &op else { panic!() };
        assert_eq!(network.subnet(), Some("10.0.2.0/24"));
        let mut s = s;
        s.apply(9, &Command { at: "t".into(), op }).unwrap();
        let a = s.resolve_network("a").unwrap().vni;
        let b = s.resolve_network("b").unwrap().vni;
        assert_ne!(a, b);
        assert_eq!(s.resolve_network("nb").unwrap().network.vni(), Some(b));
    }

    #[test]
    fn a_concurrent_create_with_the_same_subnet_loses_at_apply() {
        let s = ClusterState::default();
        let mk = |name: &str, id: &str| create(&s, NetworkCreateRequest { name: name.into(), ..Default::default() }, id.into(), &[]).unwrap();
        let (op1, op2) = (mk("a", "n1"), mk("b", "n2"));
        let mut s2 = s.clone();
        s2.apply(1, &Command { at: "t".into(), op: op1 }).unwrap();
        let e = s2.apply(2, &Command { at: "t".into(), op: op2 }).unwrap_err();
        assert!(e.to_string().contains("overlaps"), "{e}");
    }

    #[test]
    fn pools_are_checked_against_host_routes() {
        let routes: Vec<Subnet> = vec!["10.213.250.0/24".parse().unwrap()];
        assert!(check_pools(&["10.0.0.0/8".into()], 24, &routes).is_err());
        let (p, size) = check_pools(&["172.30.0.0/16".into()], 26, &routes).unwrap();
        assert_eq!((p[0].to_string(), size), ("172.30.0.0/16".to_string(), 26));
        assert!(check_pools(&["172.30.0.0/16".into()], 12, &routes).is_err(), "mask shorter than the pool");
        assert!(check_pools(&["nope".into()], 24, &[]).is_err());
    }
}
