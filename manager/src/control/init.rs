//! `swarm init`, as a pure decision like the other control operations: [`settings`] checks the request and works out
//! what the new cluster looks like (spec with defaults, address pools, the ingress subnet), and [`init_op`] builds
//! the one store op that creates it. The node supervisor does the rest, which is I/O: the CA and the first node's
//! certificate, starting Raft, and proposing the op.

use super::{networks, ControlError};
use crate::allocator::Subnet;
use crate::store::{ClusterRecord, Op};
use skep_api::docker::{defaults, Availability, ClusterInfo, InitRequest, JoinTokens, Node, NodeDescription, NodeRole, NodeState, SwarmSpec, TlsInfo};
use std::net::SocketAddr;

/// What a valid `swarm init` request asks for, defaults filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct InitSettings {
    /// The swarm spec, validated, with defaults.
    pub spec: SwarmSpec,
    /// The first node's availability.
    pub availability: Availability,
    /// Address pools for overlay subnets.
    pub pools: Vec<Subnet>,
    /// Prefix length of the subnets cut from the pools.
    pub subnet_size: u8,
    /// The `ingress` network's subnet: the first free one of the pools.
    pub ingress_subnet: Subnet,
    /// VXLAN UDP port.
    pub data_path_port: u32,
}

/// Check a `swarm init` request. Explicit address pools must not overlap a route of this host (`host_routes`);
/// the default pool merely skips such subnets.
pub fn settings(req: &InitRequest, host_routes: &[Subnet]) -> Result<InitSettings, ControlError> {
    // `force_new_cluster` on a node outside any swarm is a plain init: there is no state to keep.
    let availability = Availability::from_request(&req.availability)?.unwrap_or_default();
    let mut spec = super::validate_spec(req.spec.clone())?;
    // `--autolock` is the request's flag (the docker CLI's); the spec's own setting means the same
    spec.encryption_config.auto_lock_managers |= req.auto_lock_managers;
    let (pools, subnet_size) = if req.default_addr_pool.is_empty() {
        networks::check_pools(&[], req.subnet_size, &[])?
    } else {
        networks::check_pools(&req.default_addr_pool, req.subnet_size, host_routes)?
    };
    let ingress_subnet = networks::auto_subnet(&Default::default(), &pools, subnet_size, host_routes)?;
    let data_path_port = if req.data_path_port == 0 { defaults::DATA_PATH_PORT } else { req.data_path_port };
    Ok(InitSettings { spec, availability, pools, subnet_size, ingress_subnet, data_path_port })
}

/// Check a `swarm init --force-new-cluster` request made on a manager of a swarm: the cluster keeps its own address
/// pools, data path and this node's availability, so asking for others is refused rather than ignored (the docker
/// CLI's defaults — no pool, port 0, availability `active`, subnet size 24 — pass). The swarm spec is kept too: the
/// CLI always sends its flags' defaults there, so it cannot be told apart; `swarm update` changes it.
pub fn check_force_new_cluster(req: &InitRequest) -> Result<(), ControlError> {
    let refuse = |what: &str| {
        Err(ControlError::InvalidArgument(format!("--force-new-cluster keeps the swarm's {what}; it cannot be changed here")))
    };
    if req.auto_lock_managers {
        return refuse("autolock setting (use `swarm update --autolock`)");
    }
    if !req.default_addr_pool.is_empty() || !matches!(req.subnet_size, 0 | 24) {
        return refuse("address pools");
    }
    if !req.data_path_addr.is_empty() || req.data_path_port != 0 {
        return refuse("data path address and port");
    }
    if !matches!(Availability::from_request(&req.availability)?, None | Some(Availability::Active)) {
        return refuse("node availability (use `node update --availability`)");
    }
    Ok(())
}

/// The new cluster's identity and the first node, made by the caller (IDs, CA, tokens are random or cryptographic).
#[derive(Clone, Debug)]
pub struct NewCluster {
    /// Cluster ID.
    pub cluster_id: String,
    /// The first node's ID.
    pub node_id: String,
    /// The `ingress` network's ID.
    pub ingress_id: String,
    /// The root CA certificate (PEM).
    pub ca_cert_pem: String,
    /// The root CA key (PEM).
    pub ca_key_pem: String,
    /// The CA as `Swarm.ClusterInfo.TLSInfo` shows it.
    pub tls_info: TlsInfo,
    /// Join tokens.
    pub tokens: JoinTokens,
    /// The first node's description.
    pub description: NodeDescription,
    /// The first node's cluster address.
    pub advertise: SocketAddr,
    /// The unlock key (`SWMKEY-1-…`) when the settings ask for autolock: made by the caller, used only then.
    pub unlock_key: String,
}

/// The op that creates the cluster: its record, the first node (a ready manager), and the ingress network.
pub fn init_op(s: InitSettings, c: NewCluster) -> Op {
    let autolock = s.spec.encryption_config.auto_lock_managers;
    let record = ClusterRecord {
        info: ClusterInfo {
            id: c.cluster_id,
            spec: s.spec,
            tls_info: c.tls_info,
            default_addr_pool: s.pools.iter().map(|p| p.to_string()).collect(),
            subnet_size: u32::from(s.subnet_size),
            data_path_port: s.data_path_port,
            ..Default::default()
        },
        tokens: c.tokens,
        ca_cert_pem: c.ca_cert_pem,
        ca_key_pem: c.ca_key_pem,
        unlock_key: if autolock { c.unlock_key } else { String::new() },
        root_rotation: None,
    };
    let mut node = Node { id: c.node_id, description: c.description, ..Default::default() };
    node.spec.role = NodeRole::Manager;
    node.spec.availability = s.availability;
    node.status.state = NodeState::Ready;
    node.status.addr = c.advertise.ip().to_string();
    Op::Init {
        cluster: Box::new(record),
        node: Box::new(node),
        cluster_addr: c.advertise.to_string(),
        ingress: Some(Box::new(networks::ingress_network(c.ingress_id, s.ingress_subnet))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_request_gets_dockers_defaults() {
        let s = settings(&InitRequest::default(), &[]).unwrap();
        assert_eq!(s.availability, Availability::Active);
        assert_eq!(s.spec.name, "default");
        assert_eq!(s.data_path_port, defaults::DATA_PATH_PORT);
        assert_eq!(s.pools.iter().map(|p| p.to_string()).collect::<Vec<_>>(), ["10.0.0.0/8"]);
        assert_eq!(s.subnet_size, 24);
        assert_eq!(s.ingress_subnet.to_string(), "10.0.0.0/24");
    }

    #[test]
    fn the_default_pool_skips_host_routes_but_an_explicit_one_may_not_overlap_them() {
        let route: Subnet = "10.0.0.0/16".parse().unwrap();
        let s = settings(&InitRequest::default(), &[route]).unwrap();
        assert_eq!(s.ingress_subnet.to_string(), "10.1.0.0/24");
        let req = InitRequest { default_addr_pool: vec!["10.0.0.0/8".into()], ..Default::default() };
        assert_eq!(settings(&req, &[route]).unwrap_err().status(), 400);
    }

    #[test]
    fn bad_requests_are_refused_and_autolock_is_taken() {
        let bad = InitRequest { availability: "sleepy".into(), ..Default::default() };
        assert_eq!(settings(&bad, &[]).unwrap_err(), ControlError::InvalidArgument("invalid availability 'sleepy'".into()));
        let force = InitRequest { force_new_cluster: true, ..Default::default() };
        assert!(settings(&force, &[]).is_ok(), "outside a swarm, --force-new-cluster is a plain init");
        let lock = InitRequest { auto_lock_managers: true, ..Default::default() };
        assert!(settings(&lock, &[]).unwrap().spec.encryption_config.auto_lock_managers);
    }

    #[test]
    fn force_new_cluster_refuses_what_it_would_not_carry_out() {
        let cli = InitRequest { force_new_cluster: true, availability: "active".into(), subnet_size: 24, ..Default::default() };
        assert!(check_force_new_cluster(&cli).is_ok(), "the docker CLI's defaults");
        for (bad, what) in [
            (InitRequest { default_addr_pool: vec!["10.20.0.0/16".into()], ..cli.clone() }, "address pools"),
            (InitRequest { subnet_size: 26, ..cli.clone() }, "address pools"),
            (InitRequest { data_path_port: 4790, ..cli.clone() }, "data path"),
            (InitRequest { data_path_addr: "10.0.0.1".into(), ..cli.clone() }, "data path"),
            (InitRequest { availability: "drain".into(), ..cli.clone() }, "availability"),
        ] {
            let e = check_force_new_cluster(&bad).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.to_string().contains(what), "{e}");
        }
        let e = check_force_new_cluster(&InitRequest { auto_lock_managers: true, ..cli }).unwrap_err();
        assert!(e.status() == 400 && e.to_string().contains("autolock"), "{e}");
    }

    #[test]
    fn the_op_creates_a_ready_manager_and_ingress() {
        let s = settings(&InitRequest { availability: "drain".into(), ..Default::default() }, &[]).unwrap();
        let c = NewCluster {
            cluster_id: "c1".into(),
            node_id: "n1".into(),
            ingress_id: "i1".into(),
            ca_cert_pem: "CERT".into(),
            ca_key_pem: "KEY".into(),
            tls_info: TlsInfo::default(),
            tokens: JoinTokens { worker: "W".into(), manager: "M".into() },
            description: NodeDescription::default(),
            advertise: "10.9.0.1:2377".parse().unwrap(),
            unlock_key: "SWMKEY-1-k".into(),
        };
        let locked = settings(&InitRequest { auto_lock_managers: true, ..Default::default() }, &[]).unwrap();
        assert!(locked.spec.encryption_config.auto_lock_managers);
        let Op::Init { cluster, .. } = init_op(locked, c.clone()) else { panic!("not an init op") };
        assert_eq!(cluster.unlock_key, "SWMKEY-1-k");
        let Op::Init { cluster, node, cluster_addr, ingress } = init_op(s, c) else { panic!("not an init op") };
        assert_eq!(cluster.unlock_key, "", "no key without autolock");
        assert_eq!(cluster.info.id, "c1");
        assert_eq!(cluster.info.default_addr_pool, ["10.0.0.0/8"]);
        assert_eq!((node.spec.role, node.spec.availability), (NodeRole::Manager, Availability::Drain));
        assert_eq!((node.status.state, node.status.addr.as_str()), (NodeState::Ready, "10.9.0.1"));
        assert_eq!(cluster_addr, "10.9.0.1:2377");
        assert_eq!(ingress.unwrap().id, "i1");
    }
}
