//! Service VIPs in a sandbox, against the kernel: a client namespace and two backend namespaces on a bridge
//! (10.213.181.0/24), the VIP table applied in the client.

mod nft_support;

use std::io::ErrorKind;
use std::net::Ipv4Addr;

use nft_support::*;
use skep_overlay::nft::{self, NftError, VipRule};

const PREFIX: &str = "skt181";
const VIP: &str = "10.213.181.100";
const EMPTY_VIP: &str = "10.213.181.101";

fn a(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vip_balances_follows_backend_changes_and_refuses_when_empty() {
    if !netns_available("nft_vip") {
        return;
    }
    let mut lab = Lab::new(PREFIX);
    let sw = lab.ns("sw");
    lab.bridge(&sw, "br0");
    let cli = lab.ns("cli");
    let b1 = lab.ns("b1");
    let b2 = lab.ns("b2");
    lab.attach(&sw, "br0", "p-cli", &cli, "eth0", "10.213.181.1/24");
    lab.attach(&sw, "br0", "p-b1", &b1, "eth0", "10.213.181.11/24");
    lab.attach(&sw, "br0", "p-b2", &b2, "eth0", "10.213.181.12/24");

    let mut servers = Tasks::default();
    for (ns, name) in [(&b1, "b1"), (&b2, "b2")] {
        // Two ports each: the VIP keeps whatever port the client used.
        servers.tcp_name_server(ns, "0.0.0.0:8000", name);
        servers.tcp_name_server(ns, "0.0.0.0:8001", &format!("{name}-8001"));
        servers.udp_name_server(ns, "0.0.0.0:8053", name);
    }

    let both = vec![a("10.213.181.11"), a("10.213.181.12")];
    let rules = vec![VipRule { vip: a(VIP), backends: both.clone() }, VipRule { vip: a(EMPTY_VIP), backends: vec![] }];
    nft::apply_vips(Some(&cli.path()), &rules).await.expect("apply VIPs");
    // Applying the same rules again replaces the table (idempotent), it does not add a second copy.
    nft::apply_vips(Some(&cli.path()), &rules).await.expect("re-apply VIPs");
    assert_eq!(skep_tables(&cli.path()).await, vec!["ip skep_vip"]);

    // N new TCP connections spread over both backends.
    let mut names = Vec::new();
    for _ in 0..20 {
        names.push(tcp_name(&cli, &format!("{VIP}:8000")).await.expect("connect to VIP"));
    }
    let counts = tally(&names);
    eprintln!("tcp over both: {counts:?}");
    assert!(counts.get("b1").copied().unwrap_or(0) >= 5 && counts.get("b2").copied().unwrap_or(0) >= 5, "{counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 20);
    // Port preserved.
    let other = tcp_name(&cli, &format!("{VIP}:8001")).await.expect("connect to VIP:8001");
    assert!(other.ends_with("-8001"), "{other}");

    // UDP: every fresh socket is a new flow.
    let mut udp = Vec::new();
    for _ in 0..10 {
        let answer = udp_ask(&cli, &format!("{VIP}:8053")).await.expect("udp to VIP");
        udp.push(answer.split_whitespace().next().unwrap().to_owned());
    }
    let counts = tally(&udp);
    eprintln!("udp over both: {counts:?}");
    assert_eq!(counts.len(), 2, "{counts:?}");

    // An established connection on b2 stays on b2 when b2 leaves the set; new connections avoid b2 at once.
    let mut held = None;
    for _ in 0..10 {
        let conn = Conn::open(&cli, &format!("{VIP}:8000")).await.expect("connect");
        if conn.first.starts_with("b2 ") {
            held = Some(conn);
            break;
        }
    }
    let mut held = held.expect("one of 10 connections reached b2");
    let only_b1 = vec![VipRule { vip: a(VIP), backends: vec![a("10.213.181.11")] }];
    nft::apply_vips(Some(&cli.path()), &only_b1).await.expect("apply without b2");
    for _ in 0..20 {
        assert_eq!(tcp_name(&cli, &format!("{VIP}:8000")).await.expect("connect"), "b1");
    }
    let again = held.ask().await.expect("held connection still answers");
    assert!(again.starts_with("b2 "), "established connection moved: {again}");

    // The VIP dropped from the list above (EMPTY_VIP) and a VIP whose backends are all gone refuse at once.
    let empty = vec![VipRule { vip: a(VIP), backends: vec![] }, VipRule { vip: a(EMPTY_VIP), backends: vec![] }];
    nft::apply_vips(Some(&cli.path()), &empty).await.expect("apply empty");
    for vip in [VIP, EMPTY_VIP] {
        let err = tcp_name(&cli, &format!("{vip}:8000")).await.expect_err("empty VIP must refuse");
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{vip}: {err}");
        // UDP: the rejected datagram is dropped in the sender's own output path, so `send` itself fails (EPERM);
        // the ICMP port unreachable is queued on the socket too, so the next call sees ECONNREFUSED.
        let err = udp_ask(&cli, &format!("{vip}:8053")).await.expect_err("empty VIP must refuse UDP");
        assert!(matches!(err.kind(), ErrorKind::PermissionDenied | ErrorKind::ConnectionRefused), "{vip}: {err}");
    }
    // The held connection is still untouched: the reject only sees new connections.
    assert!(held.ask().await.expect("held connection").starts_with("b2 "));

    // Teardown: no table left; removing an absent table is fine.
    nft::remove_vips(Some(&cli.path())).await.expect("remove");
    nft::remove_vips(Some(&cli.path())).await.expect("remove again");
    assert!(skep_tables(&cli.path()).await.is_empty());
    drop(held);
    drop(servers);
    drop(lab);
    assert!(Lab::leftovers(PREFIX).is_empty(), "namespaces left: {:?}", Lab::leftovers(PREFIX));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_vip_table_applies_and_errors_are_typed() {
    if !netns_available("nft_vip") {
        return;
    }
    let mut lab = Lab::new("skt190");
    let ns = lab.ns("big");

    // 500 services (VIPs 10.213.190.0 to 10.213.191.243) of 0 to 8 tasks (10.213.192.1 to .8), in a namespace
    // without interfaces: one transaction.
    let rules: Vec<VipRule> = (0..500u32)
        .map(|i| VipRule {
            vip: Ipv4Addr::from(0x0ad5_be00 + i),
            backends: (0..(i % 9)).map(|j| Ipv4Addr::from(0x0ad5_c001 + j)).collect(),
        })
        .collect();
    nft::apply_vips(Some(&ns.path()), &rules).await.expect("apply 500 VIPs");
    let tables = nft::list_tables(Some(&ns.path())).await.unwrap();
    assert!(tables.iter().any(|t| t.family == "ip" && t.name == nft::VIP_TABLE), "{tables:?}");

    // Invalid input is refused before nft runs; the table in place stays.
    let dup = vec![rules[0].clone(), rules[0].clone()];
    assert!(matches!(nft::apply_vips(Some(&ns.path()), &dup).await, Err(NftError::DuplicateVip(_))));
    assert_eq!(skep_tables(&ns.path()).await, vec!["ip skep_vip"]);

    // A namespace that does not exist is a typed error, not nsenter's exit code.
    let missing = std::path::Path::new("/run/netns/skt190-does-not-exist");
    assert!(matches!(nft::apply_vips(Some(missing), &[]).await, Err(NftError::Netns { .. })));

    nft::remove_vips(Some(&ns.path())).await.expect("remove");
    assert!(skep_tables(&ns.path()).await.is_empty());
    drop(lab);
    assert!(Lab::leftovers("skt190").is_empty());
}
