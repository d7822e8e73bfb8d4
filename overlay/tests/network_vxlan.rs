//! The overlay data plane against the real kernel: two "hosts" (network namespaces joined by a veth underlay), one
//! DataPlane in each, tasks' sandboxes talking TCP across VXLAN.

mod network_support;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use network_support::*;
use skep_overlay::netns::Netns;
use skep_overlay::network::{mac_for, DataPlane, DataPlaneConfig, NetworkPlan, Peer, VXLAN_OVERHEAD};

async fn dataplane(prefix: &str, host: &Netns, underlay: Ipv4Addr) -> DataPlane {
    DataPlane::new(DataPlaneConfig {
        prefix: prefix.into(),
        underlay,
        underlay_mtu: None,
        node_ns: Some(host.clone()),
    })
    .await
    .expect("data plane")
}

fn plan(id: &str, vni: u32, subnet: Ipv4Addr, mtu: Option<u32>, peers: &[(Ipv4Addr, Ipv4Addr)]) -> NetworkPlan {
    NetworkPlan {
        id: id.into(),
        vni,
        subnet,
        prefix_len: 24,
        mtu,
        peers: peers.iter().map(|&(addr, node)| Peer { addr, node }).collect(),
    }
}

/// A task on each host, on one network: TCP works both ways and carries 256 KiB intact; every device of the network
/// has the underlay MTU (1400, detected) − 50; the kernel holds exactly the remote peer; teardown leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_across_vxlan_with_detected_mtu() {
    if !netns_available() {
        return;
    }
    let stem = "sko-vx1";
    let _cleanup = Cleanup::new(stem);
    let (h1, h2) = two_hosts(stem, 211, 1400).await;
    let (u1, u2) = (Ipv4Addr::new(10, 213, 211, 1), Ipv4Addr::new(10, 213, 211, 2));
    let dp1 = dataplane(&format!("{stem}-a"), &h1, u1).await;
    let dp2 = dataplane(&format!("{stem}-b"), &h2, u2).await;
    assert_eq!(dp1.underlay_mtu(), 1400);
    assert_eq!(dp1.default_mtu(), 1400 - VXLAN_OVERHEAD);

    let subnet = Ipv4Addr::new(10, 213, 111, 0);
    let (t1, t2) = (Ipv4Addr::new(10, 213, 111, 2), Ipv4Addr::new(10, 213, 111, 3));
    let p = plan("net1", 4101, subnet, None, &[(t1, u1), (t2, u2)]);
    dp1.sync_network(&p).await.expect("sync on host 1");
    dp2.sync_network(&p).await.expect("sync on host 2");
    dp1.sync_network(&p).await.expect("sync again is a no-op");

    let s1 = dp1
        .sandbox_create("task1aaaaaaaaaaaaaaaaaaaa")
        .await
        .expect("sandbox 1");
    let s2 = dp2
        .sandbox_create("task2bbbbbbbbbbbbbbbbbbbb")
        .await
        .expect("sandbox 2");
    assert_eq!(s1.name(), Some("sko-vx1-a-t-task1aaaaaaa"));
    dp1.sandbox_attach(&s1, 4101, "eth0", t1, 24).await.expect("attach 1");
    dp2.sandbox_attach(&s2, 4101, "eth0", t2, 24).await.expect("attach 2");

    let server = echo_server(&s2, SocketAddrV4::new(t2, 7001), 1);
    let data = payload(256 * 1024);
    let back = echo(&s1, SocketAddrV4::new(t2, 7001), &data, Duration::from_secs(5)).expect("host 1 -> host 2");
    assert!(
        back == data,
        "echo came back altered ({} of {} bytes)",
        back.len(),
        data.len()
    );
    server.join().expect("server");
    let server = echo_server(&s1, SocketAddrV4::new(t1, 7002), 1);
    let back = echo(&s2, SocketAddrV4::new(t1, 7002), b"pong", Duration::from_secs(5)).expect("host 2 -> host 1");
    assert_eq!(back, b"pong");
    server.join().expect("server");

    // MTU: everything on the network is underlay − 50.
    let want = 1400 - VXLAN_OVERHEAD;
    assert_eq!(mtu_of(&s1, "eth0").await, want);
    assert_eq!(mtu_of(&s2, "eth0").await, want);
    let n1 = Netns::open_named("sko-vx1-a-n4101")
        .expect("open")
        .expect("network namespace exists");
    for (name, mtu) in links(&n1).await {
        if name != "lo" {
            assert_eq!(mtu, want, "{name}");
        }
    }
    let names: Vec<String> = links(&n1).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["br0", "lo", "skvx4101", "vp0ad56f02"]);
    // The sandbox end's MAC is derived from its IP.
    let mac = {
        use futures::TryStreamExt;
        use rtnetlink::packet_route::link::LinkAttribute;
        let nl = s1.netlink().await.expect("netlink");
        let link = nl
            .link()
            .get()
            .match_name("eth0")
            .execute()
            .try_next()
            .await
            .expect("get")
            .expect("eth0");
        link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(m) => Some(m.clone()),
            _ => None,
        })
    };
    assert_eq!(mac.as_deref(), Some(&mac_for(t1)[..]));
    // Only the remote peer is programmed (the local one is a bridge port).
    assert_eq!(dp1.peers(4101).await.expect("peers"), [Peer { addr: t2, node: u2 }]);

    dp1.teardown_all().await.expect("teardown 1");
    dp2.teardown_all().await.expect("teardown 2");
    drop((s1, s2));
    assert_eq!(namespaces_with_prefix("sko-vx1-a"), Vec::<String>::new());
    assert_eq!(namespaces_with_prefix("sko-vx1-b"), Vec::<String>::new());
    assert_eq!(links(&h1).await, [("lo".to_string(), 65536), ("u0".to_string(), 1400)]);
    assert_eq!(links(&h2).await, [("lo".to_string(), 65536), ("u0".to_string(), 1400)]);
}

/// Two networks with the same subnet and different VNIs: frames of one never reach the other, even when a plan
/// (wrongly) points one network's peer at an endpoint of the other. The same path to the right network works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_vnis_are_isolated() {
    if !netns_available() {
        return;
    }
    let stem = "sko-vx2";
    let _cleanup = Cleanup::new(stem);
    let (h1, h2) = two_hosts(stem, 212, 1500).await;
    let (u1, u2) = (Ipv4Addr::new(10, 213, 212, 1), Ipv4Addr::new(10, 213, 212, 2));
    let dp1 = dataplane(&format!("{stem}-a"), &h1, u1).await;
    let dp2 = dataplane(&format!("{stem}-b"), &h2, u2).await;

    let subnet = Ipv4Addr::new(10, 213, 112, 0);
    let a = Ipv4Addr::new(10, 213, 112, 2); // on host 1, network 4201
    let b = Ipv4Addr::new(10, 213, 112, 3); // on host 2, network 4202
    let c = Ipv4Addr::new(10, 213, 112, 4); // on host 2, network 4201 (the control)
                                            // Each plan lists every address of the subnet, so each host tunnels frames for all of them to the other host:
                                            // only the VNI can keep them apart.
    let every = [(a, u1), (b, u2), (c, u2)];
    for dp in [&dp1, &dp2] {
        dp.sync_network(&plan("red", 4201, subnet, None, &every))
            .await
            .expect("sync red");
        dp.sync_network(&plan("blue", 4202, subnet, None, &every))
            .await
            .expect("sync blue");
    }
    let sa = dp1.sandbox_create("aaaa").await.expect("sandbox a");
    let sb = dp2.sandbox_create("bbbb").await.expect("sandbox b");
    let sc = dp2.sandbox_create("cccc").await.expect("sandbox c");
    dp1.sandbox_attach(&sa, 4201, "eth0", a, 24).await.expect("attach a");
    dp2.sandbox_attach(&sb, 4202, "eth0", b, 24).await.expect("attach b");
    dp2.sandbox_attach(&sc, 4201, "eth0", c, 24).await.expect("attach c");

    let server_b = echo_server(&sb, SocketAddrV4::new(b, 7101), 1);
    let server_c = echo_server(&sc, SocketAddrV4::new(c, 7102), 1);
    let back = echo(&sa, SocketAddrV4::new(c, 7102), b"same vni", Duration::from_secs(5)).expect("a -> c (same VNI)");
    assert_eq!(back, b"same vni");
    server_c.join().expect("server c");
    let crossed = echo(&sa, SocketAddrV4::new(b, 7101), b"other vni", Duration::from_secs(2));
    assert!(crossed.is_err(), "a reached b across VNIs: {crossed:?}");
    // And the other way, from network 4202 towards network 4201's endpoint.
    let server_a = echo_server(&sa, SocketAddrV4::new(a, 7103), 1);
    let crossed = echo(&sb, SocketAddrV4::new(a, 7103), b"other vni", Duration::from_secs(2));
    assert!(crossed.is_err(), "b reached a across VNIs: {crossed:?}");
    drop((server_a, server_b)); // they time out on their own

    dp1.teardown_all().await.expect("teardown 1");
    dp2.teardown_all().await.expect("teardown 2");
    assert!(namespaces_with_prefix(&format!("{stem}-a")).is_empty());
    assert!(namespaces_with_prefix(&format!("{stem}-b")).is_empty());
}

/// A plan's explicit MTU wins over the underlay's; the host leg gives the node itself an address on the network
/// that reaches a task on the other host; a namespace opened by path (a container's `/proc/PID/ns/net`) can be
/// attached like a sandbox of our own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_mtu_host_leg_and_foreign_namespace() {
    if !netns_available() {
        return;
    }
    let stem = "sko-vx3";
    let _cleanup = Cleanup::new(stem);
    let (h1, h2) = two_hosts(stem, 213, 1500).await;
    let (u1, u2) = (Ipv4Addr::new(10, 213, 213, 1), Ipv4Addr::new(10, 213, 213, 2));
    let dp1 = dataplane(&format!("{stem}-a"), &h1, u1).await;
    let dp2 = dataplane(&format!("{stem}-b"), &h2, u2).await;

    let subnet = Ipv4Addr::new(10, 213, 113, 0);
    let leg = Ipv4Addr::new(10, 213, 113, 254); // host 1's own address on the network
    let task = Ipv4Addr::new(10, 213, 113, 3); // a task on host 2
    let foreign = Ipv4Addr::new(10, 213, 113, 4); // a "container" on host 1
    let p = plan(
        "ingress",
        4301,
        subnet,
        Some(1200),
        &[(leg, u1), (task, u2), (foreign, u1)],
    );
    dp1.sync_network(&p).await.expect("sync 1");
    dp2.sync_network(&p).await.expect("sync 2");

    let leg_name = dp1.host_leg(4301, leg, 24).await.expect("host leg");
    assert_eq!(leg_name, "skh4301");
    assert_eq!(leg_name, skep_overlay::network::host_leg_name(4301));
    assert_eq!(mtu_of(&h1, &leg_name).await, 1200);
    assert_eq!(dp1.host_leg(4301, leg, 24).await.expect("host leg again"), leg_name);

    let st = dp2.sandbox_create("tttt").await.expect("sandbox");
    dp2.sandbox_attach(&st, 4301, "eth0", task, 24).await.expect("attach");
    assert_eq!(mtu_of(&st, "eth0").await, 1200);

    // From host 1's own namespace (the node), through the host leg, to the task on host 2.
    let server = echo_server(&st, SocketAddrV4::new(task, 7201), 2);
    let back = echo(
        &h1,
        SocketAddrV4::new(task, 7201),
        b"via host leg",
        Duration::from_secs(5),
    )
    .expect("node -> task");
    assert_eq!(back, b"via host leg");

    // A "container": a process in a namespace of its own, known only by its /proc path.
    let child = KillOnDrop(
        std::process::Command::new("unshare")
            .args(["--net", "--", "sleep", "60"])
            .spawn()
            .expect("spawn unshare"),
    );
    let path = format!("/proc/{}/ns/net", child.0.id());
    let ours = std::fs::read_link("/proc/self/ns/net").expect("own ns");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::fs::read_link(&path).map(|l| l == ours).unwrap_or(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "unshare did not enter a new namespace"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    {
        // Entered from host 1, which is where the container's namespace counts as being (no underlay needed).
        let container = Netns::open(&path).expect("open container namespace");
        assert_eq!(container.name(), None);
        dp1.sandbox_attach(&container, 4301, "eth1", foreign, 24)
            .await
            .expect("attach container");
        let back = echo(
            &container,
            SocketAddrV4::new(task, 7201),
            b"from container",
            Duration::from_secs(5),
        )
        .expect("container -> task");
        assert_eq!(back, b"from container");
        // A name already taken in the sandbox is refused, not replaced.
        let taken = dp1
            .sandbox_attach(&container, 4301, "lo", Ipv4Addr::new(10, 213, 113, 5), 24)
            .await;
        assert!(
            matches!(taken, Err(skep_overlay::network::Error::InterfaceExists { .. })),
            "{taken:?}"
        );
        dp1.sandbox_detach(4301, foreign).await.expect("detach");
        assert_eq!(
            links(&container).await.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
            ["lo"]
        );
    }
    drop(child);
    server.join().expect("server");

    dp1.remove_host_leg(4301).await.expect("remove host leg");
    assert!(!links(&h1).await.iter().any(|(n, _)| n == "skh4301"));
    dp1.teardown_all().await.expect("teardown 1");
    dp2.teardown_all().await.expect("teardown 2");
    drop(st);
    assert!(namespaces_with_prefix(&format!("{stem}-a")).is_empty());
    assert!(namespaces_with_prefix(&format!("{stem}-b")).is_empty());
    assert_eq!(
        links(&h2).await.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["lo", "u0"]
    );
}

/// Kills and reaps the child we started, also when the test panics.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
