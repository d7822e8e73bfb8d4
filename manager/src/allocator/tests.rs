use super::*;

fn net(s: &str) -> Subnet {
    s.parse().unwrap()
}

#[test]
fn subnets_parse_and_overlap() {
    assert_eq!(net("10.0.1.0/24").to_string(), "10.0.1.0/24");
    assert!("10.0.1.5/24".parse::<Subnet>().is_err(), "host bits set");
    assert!("10.0.1.0/33".parse::<Subnet>().is_err());
    assert!("nonsense".parse::<Subnet>().is_err());
    assert!(net("10.0.0.0/8").overlaps(net("10.3.0.0/16")));
    assert!(!net("10.0.1.0/24").overlaps(net("10.0.2.0/24")));
    assert_eq!(net("10.0.1.0/24").first_host(), Ipv4Addr::new(10, 0, 1, 1));
}

#[test]
fn addresses_are_never_handed_out_twice_and_exhaustion_is_reported() {
    let s = net("10.9.0.0/29"); // 6 hosts: .1 (gateway) .. .6
    let mut p = AddrPool::new(s, s.first_host());
    let mut got = BTreeSet::new();
    while let Some(ip) = p.allocate() {
        assert!(s.contains(ip));
        assert!(got.insert(ip), "{ip} twice");
    }
    assert_eq!(got.len(), 5);
    assert_eq!(p.free(), 0);
    assert!(!got.contains(&Ipv4Addr::new(10, 9, 0, 7)), "broadcast handed out");
    p.release(Ipv4Addr::new(10, 9, 0, 3));
    assert_eq!(p.allocate(), Some(Ipv4Addr::new(10, 9, 0, 3)));
    assert_eq!(p.allocate(), None);
}

#[test]
fn a_released_address_is_not_reused_at_once() {
    let s = net("10.9.1.0/24");
    let mut p = AddrPool::new(s, s.first_host());
    let a = p.allocate().unwrap();
    p.release(a);
    let b = p.allocate().unwrap();
    assert_ne!(a, b, "round robin moves on");
}

#[test]
fn subnet_picking_skips_taken_ones() {
    let pool = [net("10.0.0.0/8")];
    assert_eq!(pick_subnet(&pool, 24, &[]), Some(net("10.0.0.0/24")));
    let taken = [net("10.0.0.0/24"), net("10.0.1.0/24"), net("10.0.2.0/23")];
    assert_eq!(pick_subnet(&pool, 24, &taken), Some(net("10.0.4.0/24")));
    // a taken supernet is skipped in one step
    assert_eq!(pick_subnet(&pool, 24, &[net("10.0.0.0/9")]), Some(net("10.128.0.0/24")));
    assert_eq!(pick_subnet(&[net("10.0.0.0/24")], 24, &[net("10.0.0.0/24")]), None);
    assert_eq!(pick_subnet(&[net("10.0.0.0/24")], 16, &[]), None, "size larger than the pool");
}

#[test]
fn vnis_and_ports() {
    let used: BTreeSet<u32> = [4097, 4098].into();
    assert_eq!(pick_vni(&used), Some(4099));
    let used: BTreeSet<u32> = [30000, 30001].into();
    assert_eq!(pick_port(&used), Some(30002));
    let all: BTreeSet<u32> = DYNAMIC_PORTS.collect();
    assert_eq!(pick_port(&all), None);
}
