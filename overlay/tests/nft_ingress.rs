//! The ingress routing mesh and host-mode ports, against the kernel.
//!
//! ```text
//!  client ns                node ns                               sw ns (bridge br0 = the ingress network)
//!  eth0 10.213.183.1 ─ veth ─ eth0 10.213.183.2 (NODE_IP)
//!                             ingr0 10.213.184.2 (host leg) ─ veth ─ br0 ─┬─ b1 ns eth0 10.213.184.11
//!                                                                         └─ b2 ns eth0 10.213.184.12
//! ```
//!
//! The backends have no route to the client's network, so every mesh answer proves the masquerade on the host leg;
//! b1 alone gets a default route via the node, for the host-mode port that keeps the client's address.

mod nft_support;

use std::io::ErrorKind;
use std::net::Ipv4Addr;

use nft_support::*;
use skep_overlay::nft::{self, HostPort, IngressPort, Proto};

const PREFIX: &str = "skt183";
const NODE_IP: &str = "10.213.183.2";
const CLIENT_IP: &str = "10.213.183.1";
const HOST_LEG_IP: &str = "10.213.184.2";
const HOST_LEG: &str = "ingr0";

fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// `"<name> <peer>"` → (name, peer IP).
fn split(answer: &str) -> (String, String) {
    let mut words = answer.split_whitespace();
    let name = words.next().unwrap_or_default().to_owned();
    let peer = words.next().unwrap_or_default();
    let ip = peer.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(peer).to_owned();
    (name, ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_mesh_and_host_ports() {
    if !netns_available("nft_ingress") {
        return;
    }
    let mut lab = Lab::new(PREFIX);
    let sw = lab.ns("sw");
    lab.bridge(&sw, "br0");
    let node = lab.ns("node");
    let client = lab.ns("client");
    let b1 = lab.ns("b1");
    let b2 = lab.ns("b2");
    lab.veth(&client, "eth0", &format!("{CLIENT_IP}/24"), &node, "eth0", &format!("{NODE_IP}/24"));
    lab.attach(&sw, "br0", "p-node", &node, HOST_LEG, &format!("{HOST_LEG_IP}/24"));
    lab.attach(&sw, "br0", "p-b1", &b1, "eth0", "10.213.184.11/24");
    lab.attach(&sw, "br0", "p-b2", &b2, "eth0", "10.213.184.12/24");
    b1.default_route(HOST_LEG_IP);

    let mut servers = Tasks::default();
    for (ns, name) in [(&b1, "b1"), (&b2, "b2")] {
        servers.tcp_name_server(ns, "0.0.0.0:80", name);
        servers.udp_name_server(ns, "0.0.0.0:5300", name);
    }

    nft::enable_ip_forward(Some(&node.path())).await.expect("ip_forward");
    let forward = nft_support::in_netns(&node, || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward"));
    assert_eq!(forward.unwrap().trim(), "1");
    // The test's own namespace is untouched by that (the write happened on a thread inside `node`).

    let both = vec![a("10.213.184.11"), a("10.213.184.12")];
    let ports = vec![
        IngressPort { proto: Proto::Tcp, port: 8080, target_port: 80, backends: both.clone() },
        IngressPort { proto: Proto::Udp, port: 5353, target_port: 5300, backends: both.clone() },
        IngressPort { proto: Proto::Tcp, port: 8081, target_port: 80, backends: vec![] },
    ];
    nft::apply_ingress(Some(&node.path()), HOST_LEG, &ports).await.expect("apply ingress");
    assert_eq!(skep_tables(&node.path()).await, vec!["ip skep_ingress"]);

    // From the client: both backends answer, and they see the host leg's address (masquerade).
    let mut names = Vec::new();
    for _ in 0..10 {
        let conn = Conn::open(&client, &format!("{NODE_IP}:8080")).await.expect("client → NODE_IP:8080");
        let (name, peer) = split(&conn.first);
        assert_eq!(peer, HOST_LEG_IP, "{}", conn.first);
        names.push(name);
    }
    let counts = tally(&names);
    eprintln!("mesh tcp: {counts:?}");
    assert_eq!(counts.len(), 2, "{counts:?}");

    // UDP through the mesh.
    let mut udp = Vec::new();
    for _ in 0..10 {
        let answer = udp_ask(&client, &format!("{NODE_IP}:5353")).await.expect("client → NODE_IP:5353/udp");
        let (name, peer) = split(&answer);
        assert_eq!(peer, HOST_LEG_IP, "{answer}");
        udp.push(name);
    }
    let counts = tally(&udp);
    eprintln!("mesh udp: {counts:?}");
    assert_eq!(counts.len(), 2, "{counts:?}");

    // From the node itself (output chain), to any of its addresses.
    for addr in [NODE_IP, HOST_LEG_IP] {
        let name = tcp_name(&node, &format!("{addr}:8080")).await.unwrap_or_else(|e| panic!("node → {addr}: {e}"));
        assert!(name == "b1" || name == "b2", "{name}");
    }
    // 127.0.0.1 needs route_localnet on the host leg.
    nft::enable_route_localnet(Some(&node.path()), HOST_LEG).await.expect("route_localnet");
    let name = tcp_name(&node, "127.0.0.1:8080").await.expect("node → 127.0.0.1:8080");
    assert!(name == "b1" || name == "b2", "{name}");

    // Every new connection is counted once by its port's rule (a nat chain sees a connection's first packet only):
    // the client's 10, the node's 3; each UDP exchange is a flow of its own.
    let wait = std::time::Duration::from_secs(5);
    let counted = nft::ingress_connections(Some(&node.path()), wait).await.expect("counters");
    let of = |proto, port| counted.iter().find(|c| c.proto == proto && c.port == port).map(|c| c.connections);
    assert_eq!(of(Proto::Tcp, 8080), Some(13), "{counted:?}");
    assert!(of(Proto::Udp, 5353).is_some_and(|n| (1..=10).contains(&n)), "{counted:?}");
    assert_eq!(of(Proto::Tcp, 8081), None, "a port without tasks has no DNAT rule: {counted:?}");

    // A published port without tasks refuses at once.
    let err = tcp_name(&client, &format!("{NODE_IP}:8081")).await.expect_err("no backends");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");

    // Scale down to b2: an established connection to b1 stays, new ones all go to b2.
    let mut held = None;
    for _ in 0..10 {
        let conn = Conn::open(&client, &format!("{NODE_IP}:8080")).await.expect("connect");
        if conn.first.starts_with("b1 ") {
            held = Some(conn);
            break;
        }
    }
    let mut held = held.expect("one of 10 connections reached b1");
    let ports =
        vec![IngressPort { proto: Proto::Tcp, port: 8080, target_port: 80, backends: vec![a("10.213.184.12")] }];
    nft::apply_ingress(Some(&node.path()), HOST_LEG, &ports).await.expect("apply b2 only");
    for _ in 0..10 {
        assert_eq!(tcp_name(&client, &format!("{NODE_IP}:8080")).await.expect("connect"), "b2");
    }
    assert!(held.ask().await.expect("held connection").starts_with("b1 "));
    drop(held);
    // 5353/udp was dropped from the list: nothing answers it any more (no rule, nothing listening on the node).
    assert!(udp_ask(&client, &format!("{NODE_IP}:5353")).await.is_err());

    // Host mode, client address kept: b1 runs on this node and routes its replies back through it.
    let host = vec![HostPort { proto: Proto::Tcp, port: 9090, target_port: 80, backend: a("10.213.184.11") }];
    nft::apply_host_ports(Some(&node.path()), &host, None).await.expect("apply host ports");
    let conn = Conn::open(&client, &format!("{NODE_IP}:9090")).await.expect("client → host port");
    let (name, peer) = split(&conn.first);
    assert_eq!((name.as_str(), peer.as_str()), ("b1", CLIENT_IP), "{}", conn.first);
    assert_eq!(peer, conn.local.ip().to_string());
    drop(conn);

    // Host mode with masquerade, for a task without a route back (b2).
    let host = vec![
        HostPort { proto: Proto::Tcp, port: 9091, target_port: 80, backend: a("10.213.184.12") },
        HostPort { proto: Proto::Udp, port: 9091, target_port: 5300, backend: a("10.213.184.12") },
    ];
    nft::apply_host_ports(Some(&node.path()), &host, Some(HOST_LEG)).await.expect("apply masqueraded host ports");
    let conn = Conn::open(&client, &format!("{NODE_IP}:9091")).await.expect("client → masqueraded host port");
    assert_eq!(split(&conn.first), ("b2".to_owned(), HOST_LEG_IP.to_owned()));
    drop(conn);
    let answer = udp_ask(&client, &format!("{NODE_IP}:9091")).await.expect("udp host port");
    assert_eq!(split(&answer), ("b2".to_owned(), HOST_LEG_IP.to_owned()));
    // 9090 was replaced away.
    assert!(Conn::open(&client, &format!("{NODE_IP}:9090")).await.is_err());

    let mut tables = skep_tables(&node.path()).await;
    tables.sort();
    assert_eq!(tables, vec!["ip skep_hostports", "ip skep_ingress"]);

    // Teardown leaves no table; removing absent tables is fine.
    nft::remove_ingress(Some(&node.path())).await.expect("remove ingress");
    nft::remove_host_ports(Some(&node.path())).await.expect("remove host ports");
    nft::remove_ingress(Some(&node.path())).await.expect("remove ingress again");
    assert!(skep_tables(&node.path()).await.is_empty());
    drop(servers);
    drop(lab);
    assert!(Lab::leftovers(PREFIX).is_empty(), "namespaces left: {:?}", Lab::leftovers(PREFIX));
}
