//! Rendering tests: exact text, no kernel. The integration tests (`overlay/tests/nft_*.rs`) feed the same
//! renderings to a real nft.

use std::net::Ipv4Addr;

use super::*;

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn vips_render_round_robin_single_and_empty() {
    let text = render_vips(&[
        VipRule { vip: ip("10.0.1.2"), backends: vec![ip("10.0.1.5"), ip("10.0.1.6")] },
        VipRule { vip: ip("10.0.1.3"), backends: vec![] },
        VipRule { vip: ip("10.0.1.4"), backends: vec![ip("10.0.1.7")] },
    ])
    .unwrap();
    let expected = "\
table ip skep_vip {}
delete table ip skep_vip
table ip skep_vip {
\tset empty_vips {
\t\ttype ipv4_addr
\t\telements = { 10.0.1.3 }
\t}
\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tmeta l4proto { tcp, udp } ip daddr vmap { 10.0.1.2 : jump vip_10_0_1_2, 10.0.1.4 : jump vip_10_0_1_4 }
\t}
\tchain vip_10_0_1_2 {
\t\tdnat to numgen inc mod 2 map { 0 : 10.0.1.5, 1 : 10.0.1.6 }
\t}
\tchain vip_10_0_1_4 {
\t\tdnat to 10.0.1.7
\t}
\tchain reject_empty {
\t\ttype filter hook output priority 0; policy accept;
\t\tct state new ip daddr @empty_vips meta l4proto tcp reject with tcp reset
\t\tct state new ip daddr @empty_vips meta l4proto udp reject with icmp type port-unreachable
\t}
}
";
    assert_eq!(text, expected);
}

#[test]
fn no_vips_is_an_empty_table() {
    let text = render_vips(&[]).unwrap();
    assert_eq!(
        text,
        "table ip skep_vip {}\ndelete table ip skep_vip\ntable ip skep_vip {\n\tchain output {\n\
         \t\ttype nat hook output priority -100; policy accept;\n\t}\n}\n"
    );
}

#[test]
fn duplicate_vip_is_refused() {
    let rule = VipRule { vip: ip("10.0.1.2"), backends: vec![] };
    assert!(matches!(render_vips(&[rule.clone(), rule]), Err(NftError::DuplicateVip(v)) if v == ip("10.0.1.2")));
}

#[test]
fn ingress_renders_dnat_masquerade_and_reject() {
    let text = render_ingress(
        "skep-ingress",
        &[
            IngressPort {
                proto: Proto::Tcp,
                port: 8080,
                target_port: 80,
                backends: vec![ip("10.0.0.5"), ip("10.0.0.6"), ip("10.0.0.7")],
            },
            IngressPort { proto: Proto::Udp, port: 53, target_port: 5353, backends: vec![ip("10.0.0.5")] },
            IngressPort { proto: Proto::Tcp, port: 9000, target_port: 9000, backends: vec![] },
            IngressPort { proto: Proto::Udp, port: 9000, target_port: 9000, backends: vec![] },
        ],
    )
    .unwrap();
    let expected = "\
table ip skep_ingress {}
delete table ip skep_ingress
table ip skep_ingress {
\tchain prerouting {
\t\ttype nat hook prerouting priority -100; policy accept;
\t\tfib daddr type local jump published
\t}
\tchain output {
\t\ttype nat hook output priority -100; policy accept;
\t\tfib daddr type local jump published
\t}
\tchain published {
\t\tmeta l4proto . th dport vmap { tcp . 8080 : jump tcp_8080, udp . 53 : jump udp_53 }
\t}
\tchain tcp_8080 {
\t\tmeta l4proto tcp counter dnat to numgen inc mod 3 map { 0 : 10.0.0.5, 1 : 10.0.0.6, 2 : 10.0.0.7 } : 80
\t}
\tchain udp_53 {
\t\tmeta l4proto udp counter dnat to 10.0.0.5 : 5353
\t}
\tchain postrouting {
\t\ttype nat hook postrouting priority 100; policy accept;
\t\toifname \"skep-ingress\" ct status dnat meta l4proto tcp ct original proto-dst { 8080 } masquerade
\t\toifname \"skep-ingress\" ct status dnat meta l4proto udp ct original proto-dst { 53 } masquerade
\t}
\tchain reject_empty {
\t\ttype filter hook input priority 0; policy accept;
\t\tct state new tcp dport { 9000 } reject with tcp reset
\t\tct state new udp dport { 9000 } reject with icmp type port-unreachable
\t}
}
";
    assert_eq!(text, expected);
}

#[test]
fn ingress_with_only_empty_ports_has_no_nat_chains() {
    let text =
        render_ingress("leg0", &[IngressPort { proto: Proto::Tcp, port: 80, target_port: 80, backends: vec![] }])
            .unwrap();
    assert!(!text.contains("nat"), "{text}");
    assert!(text.contains("ct state new tcp dport { 80 } reject with tcp reset"), "{text}");
    assert!(!text.contains("udp dport"), "{text}");
}

#[test]
fn host_ports_render_with_and_without_masquerade() {
    let ports = [
        HostPort { proto: Proto::Tcp, port: 9090, target_port: 80, backend: ip("10.0.0.5") },
        HostPort { proto: Proto::Tcp, port: 9091, target_port: 81, backend: ip("10.0.0.5") },
    ];
    let kept = render_host_ports(&ports, None).unwrap();
    assert!(kept.starts_with("table ip skep_hostports {}\ndelete table ip skep_hostports\n"), "{kept}");
    assert!(kept.contains("meta l4proto . th dport vmap { tcp . 9090 : jump tcp_9090, tcp . 9091 : jump tcp_9091 }"));
    assert!(kept.contains("\t\tmeta l4proto tcp counter dnat to 10.0.0.5 : 81\n"), "{kept}");
    assert!(!kept.contains("masquerade"), "{kept}");
    assert!(!kept.contains("reject"), "{kept}");

    let masq = render_host_ports(&ports, Some("eth1")).unwrap();
    assert!(
        masq.contains(
            "oifname \"eth1\" ct status dnat meta l4proto tcp ct original proto-dst { 9090, 9091 } masquerade"
        ),
        "{masq}"
    );
    assert!(!masq.contains("udp"), "{masq}");
}

#[test]
fn invalid_ports_and_interfaces_are_refused() {
    let port = |p, t| IngressPort { proto: Proto::Udp, port: p, target_port: t, backends: vec![] };
    assert!(matches!(render_ingress("leg", &[port(0, 1)]), Err(NftError::ZeroPort { proto: Proto::Udp })));
    assert!(matches!(render_ingress("leg", &[port(1, 0)]), Err(NftError::ZeroPort { .. })));
    assert!(matches!(
        render_ingress("leg", &[port(53, 1), port(53, 2)]),
        Err(NftError::DuplicatePort { proto: Proto::Udp, port: 53 })
    ));
    // The same port on both protocols is two ports.
    let both = [port(53, 1), IngressPort { proto: Proto::Tcp, ..port(53, 1) }];
    assert!(render_ingress("leg", &both).is_ok());
    for bad in ["", "a\"b", "0123456789abcdef", "a b", "..", "eth0;", "ä"] {
        assert!(matches!(render_ingress(bad, &[]), Err(NftError::InvalidInterface(_))), "{bad:?}");
    }
    assert!(render_ingress("0123456789abcde", &[]).is_ok());
    assert!(render_host_ports(&[], Some("x\ny")).is_err());
}

#[test]
fn removal_declares_then_deletes() {
    assert_eq!(render_removal(INGRESS_TABLE), "table ip skep_ingress {}\ndelete table ip skep_ingress\n");
}

#[test]
fn port_counters_are_read_from_a_listing() {
    // as nft 1.0.6 lists a table rendered by `render_ingress`
    let listing = "\
table ip skep_ingress {
\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tfib daddr type local jump published
\t}

\tchain published {
\t\tmeta l4proto . th dport vmap { tcp . 8080 : jump tcp_8080, udp . 53 : jump udp_53 }
\t}

\tchain tcp_8080 {
\t\tmeta l4proto tcp counter packets 12 bytes 720 dnat to numgen inc mod 2 map { 0 : 10.0.0.5, 1 : 10.0.0.6 }:80
\t}

\tchain udp_53 {
\t\tmeta l4proto udp counter packets 0 bytes 0 dnat to 10.0.0.5:5353
\t}

\tchain tcp_9 {
\t\tmeta l4proto tcp dnat to 10.0.0.5:9
\t}
}
";
    assert_eq!(
        parse_port_counters(listing),
        [
            PortCount { proto: Proto::Tcp, port: 8080, connections: 12 },
            PortCount { proto: Proto::Udp, port: 53, connections: 0 },
        ]
    );
    assert!(parse_port_counters("").is_empty());
    assert!(parse_port_counters("chain tcp_x {\n counter packets 3 bytes 1\n").is_empty());
}
