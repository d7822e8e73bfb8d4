//! The data plane's bookkeeping against the real kernel: peers reconcile to the plan, removals are idempotent, a
//! restarted daemon finds its networks by name, and `teardown_all` removes what a crashed run left (and nothing of
//! another prefix).

mod network_support;

use std::net::Ipv4Addr;

use network_support::*;
use skep_overlay::netns::Netns;
use skep_overlay::network::{DataPlane, DataPlaneConfig, Error, NetworkPlan, Peer};

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

fn plan(vni: u32, subnet: Ipv4Addr, peers: &[Peer]) -> NetworkPlan {
    NetworkPlan {
        id: format!("net{vni}"),
        vni,
        subnet,
        prefix_len: 24,
        mtu: None,
        peers: peers.to_vec(),
    }
}

fn peer(last: u8, node: Ipv4Addr) -> Peer {
    Peer {
        addr: Ipv4Addr::new(10, 213, 121, last),
        node,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_reconciles_peers() {
    if !netns_available() {
        return;
    }
    let stem = "sko-lc1";
    let _cleanup = Cleanup::new(stem);
    let host = one_host(stem, 221).await;
    let me = Ipv4Addr::new(10, 213, 221, 1);
    let (n2, n3) = (Ipv4Addr::new(10, 213, 221, 2), Ipv4Addr::new(10, 213, 221, 3));
    let dp = dataplane(&format!("{stem}-a"), &host, me).await;
    assert_eq!(dp.underlay_mtu(), 1500, "u0's MTU");
    let subnet = Ipv4Addr::new(10, 213, 121, 0);

    // Local peers are not tunnelled; peers outside the subnet are skipped.
    let outside = Peer {
        addr: Ipv4Addr::new(192, 0, 2, 9),
        node: n2,
    };
    dp.sync_network(&plan(4401, subnet, &[peer(2, n2), peer(3, n3), peer(9, me), outside]))
        .await
        .expect("sync");
    assert_eq!(dp.peers(4401).await.expect("peers"), [peer(2, n2), peer(3, n3)]);
    assert_eq!(dp.vni_of("net4401").await, Some(4401));

    // One moves to another node, one goes, one comes.
    let next = [peer(2, n3), peer(4, n2)];
    dp.sync_network(&plan(4401, subnet, &next)).await.expect("resync");
    assert_eq!(dp.peers(4401).await.expect("peers"), next);
    dp.sync_network(&plan(4401, subnet, &next))
        .await
        .expect("same plan again");
    assert_eq!(dp.peers(4401).await.expect("peers"), next);

    dp.sync_network(&plan(4401, subnet, &[])).await.expect("no peers");
    assert_eq!(dp.peers(4401).await.expect("peers"), []);

    // Bad input is refused, not half-applied.
    for (vni, mtu) in [(0, None), (1 << 24, None), (4402, Some(20))] {
        let mut bad = plan(vni, subnet, &[]);
        bad.mtu = mtu;
        assert!(
            matches!(dp.sync_network(&bad).await, Err(Error::Invalid(_))),
            "vni {vni} mtu {mtu:?}"
        );
    }
    assert!(!Netns::exists(&format!("{stem}-a-n4402")));

    dp.teardown_all().await.expect("teardown");
    assert!(namespaces_with_prefix(&format!("{stem}-a")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removals_are_idempotent_and_restart_finds_networks() {
    if !netns_available() {
        return;
    }
    let stem = "sko-lc2";
    let _cleanup = Cleanup::new(stem);
    let host = one_host(stem, 222).await;
    let me = Ipv4Addr::new(10, 213, 222, 1);
    let prefix = format!("{stem}-a");
    let subnet = Ipv4Addr::new(10, 213, 122, 0);
    {
        let dp = dataplane(&prefix, &host, me).await;
        dp.sync_network(&plan(4501, subnet, &[])).await.expect("sync");
    }
    // A new DataPlane (a restarted daemon) attaches to the network without syncing it first.
    let dp = dataplane(&prefix, &host, me).await;
    let sb = dp.sandbox_create("restarted").await.expect("sandbox");
    dp.sandbox_attach(&sb, 4501, "eth0", Ipv4Addr::new(10, 213, 122, 2), 24)
        .await
        .expect("attach after restart");
    // Attaching the same address again replaces the attachment.
    let sb2 = dp.sandbox_create("again").await.expect("sandbox 2");
    dp.sandbox_attach(&sb2, 4501, "eth0", Ipv4Addr::new(10, 213, 122, 2), 24)
        .await
        .expect("re-attach");
    assert_eq!(links(&sb).await.into_iter().map(|(n, _)| n).collect::<Vec<_>>(), ["lo"]);
    assert!(links(&sb2).await.iter().any(|(n, _)| n == "eth0"));

    // Unknown networks are an error for attach, and nothing for removal.
    let unknown = dp
        .sandbox_attach(&sb, 4999, "eth0", Ipv4Addr::new(10, 213, 122, 3), 24)
        .await;
    assert!(matches!(unknown, Err(Error::UnknownNetwork(4999))), "{unknown:?}");
    dp.remove_network(4999).await.expect("remove unknown network");
    dp.sandbox_remove("neverexisted").await.expect("remove unknown sandbox");
    dp.sandbox_detach(4999, Ipv4Addr::new(10, 213, 122, 3))
        .await
        .expect("detach from unknown network");

    dp.sandbox_remove("restarted").await.expect("remove sandbox");
    dp.sandbox_remove("restarted").await.expect("remove sandbox twice");
    drop((sb, sb2));
    dp.sandbox_remove("again").await.expect("remove sandbox 2");
    let n = Netns::open_named(&format!("{prefix}-n4501"))
        .expect("open")
        .expect("exists");
    assert_eq!(
        links(&n).await.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["br0", "lo", "skvx4501"]
    );
    drop(n);
    dp.remove_network(4501).await.expect("remove");
    dp.remove_network(4501).await.expect("remove twice");
    assert!(namespaces_with_prefix(&prefix).is_empty());
    assert_eq!(
        links(&host).await.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["lo", "u0", "u0p"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teardown_removes_a_crashed_runs_leftovers_and_nothing_else() {
    if !netns_available() {
        return;
    }
    let stem = "sko-lc3";
    let _cleanup = Cleanup::new(stem);
    let host = one_host(stem, 223).await;
    let me = Ipv4Addr::new(10, 213, 223, 1);
    let prefix = format!("{stem}-a");
    let subnet = Ipv4Addr::new(10, 213, 123, 0);
    {
        // The "crashed" run: everything made, nothing torn down.
        let dp = dataplane(&prefix, &host, me).await;
        dp.sync_network(&plan(4601, subnet, &[peer(9, Ipv4Addr::new(10, 213, 223, 2))]))
            .await
            .expect("sync");
        dp.sync_network(&plan(4602, subnet, &[])).await.expect("sync");
        let sb = dp.sandbox_create("crashed1").await.expect("sandbox");
        dp.sandbox_attach(&sb, 4601, "eth0", Ipv4Addr::new(10, 213, 123, 2), 24)
            .await
            .expect("attach");
        dp.host_leg(4601, Ipv4Addr::new(10, 213, 123, 254), 24)
            .await
            .expect("host leg");
    }
    // A neighbour whose prefix starts with ours (its own node namespace, as every node has).
    let other_host = Netns::create(&format!("{stem}-h2")).expect("host 2");
    let other = DataPlane::new(DataPlaneConfig {
        prefix: format!("{prefix}-n1"),
        underlay: Ipv4Addr::new(10, 213, 223, 9),
        underlay_mtu: Some(1500),
        node_ns: Some(other_host.clone()),
    })
    .await
    .expect("other data plane");
    other.sync_network(&plan(4601, subnet, &[])).await.expect("other sync");
    let other_sb = other.sandbox_create("t").await.expect("other sandbox");
    drop(other_sb);

    let mut before = namespaces_with_prefix(&prefix);
    before.sort();
    assert_eq!(
        before,
        [
            format!("{prefix}-n1-n4601"),
            format!("{prefix}-n1-t-t"),
            format!("{prefix}-n4601"),
            format!("{prefix}-n4602"),
            format!("{prefix}-t-crashed1"),
        ]
    );
    assert!(links(&host).await.iter().any(|(n, _)| n == "skh4601"));

    let dp = dataplane(&prefix, &host, me).await;
    dp.teardown_all().await.expect("teardown");
    assert_eq!(
        namespaces_with_prefix(&prefix),
        [format!("{prefix}-n1-n4601"), format!("{prefix}-n1-t-t")]
    );
    assert_eq!(
        links(&host).await.into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["lo", "u0", "u0p"]
    );
    dp.teardown_all().await.expect("teardown twice");

    other.teardown_all().await.expect("other teardown");
    assert!(namespaces_with_prefix(&prefix).is_empty());
}
