//! `Netns` against the real kernel: named namespaces are created idempotently and deleted cleanly, code and
//! commands run inside them, and sockets made there stay there.

mod network_support;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::time::Duration;

use network_support::*;
use skep_overlay::netns::{self, Netns};

fn own_ns_inode() -> std::path::PathBuf {
    std::fs::read_link("/proc/thread-self/ns/net").expect("own namespace")
}

#[test]
fn create_open_delete() {
    if !netns_available() {
        return;
    }
    let stem = "sko-ns1";
    let _cleanup = Cleanup::new(stem);
    let name = format!("{stem}-x");
    let ns = Netns::create(&name).expect("create");
    assert_eq!(ns.name(), Some(name.as_str()));
    assert_eq!(ns.path(), Netns::path_for(&name));
    assert!(Netns::exists(&name));
    assert!(Netns::list().expect("list").contains(&name));

    // Idempotent: the same namespace again.
    let again = Netns::create(&name).expect("create again");
    let inode = |ns: &Netns| ns.run(own_ns_inode).expect("run");
    assert_eq!(inode(&ns), inode(&again));
    assert_ne!(inode(&ns), own_ns_inode(), "run happens in the namespace, not ours");
    let by_path = Netns::open(Netns::path_for(&name)).expect("open by path");
    assert_eq!(by_path.name(), Some(name.as_str()));
    assert_eq!(inode(&by_path), inode(&ns));

    // Our own thread never moved.
    let before = own_ns_inode();
    ns.run(|| ()).expect("run");
    assert_eq!(own_ns_inode(), before);

    Netns::delete(&name).expect("delete");
    assert!(!Netns::exists(&name));
    assert!(!Netns::path_for(&name).exists());
    Netns::delete(&name).expect("deleting what is not there is fine");
    // A handle keeps the namespace usable after its name is gone.
    assert_eq!(inode(&ns), inode(&again));

    assert!(matches!(
        Netns::open("/etc/hostname"),
        Err(netns::Error::NotANamespace(_))
    ));
    assert!(Netns::open("/run/netns/sko-ns1-never").is_err());
    assert!(matches!(Netns::create("a/b"), Err(netns::Error::InvalidName(_))));
    assert!(Netns::open_named(&format!("{stem}-never"))
        .expect("open_named")
        .is_none());
}

#[test]
fn sockets_stay_in_their_namespace() {
    if !netns_available() {
        return;
    }
    let stem = "sko-ns2";
    let _cleanup = Cleanup::new(stem);
    let ns = Netns::create(&format!("{stem}-x")).expect("create");

    // command(): bring loopback up with iproute2, run inside the namespace.
    let status = ns
        .command("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("run ip");
    assert!(status.success());
    let out = ns.command("ip").args(["-o", "link", "show"]).output().expect("run ip");
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(shown.lines().count(), 1, "a new namespace has only lo: {shown}");

    // A listener made inside keeps serving from there after the thread that made it ended.
    let listener = ns
        .run(|| TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)))
        .expect("run")
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let to = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
    let accepting = std::thread::spawn(move || listener.accept().map(|_| ()));
    ns.run(move || TcpStream::connect_timeout(&to.into(), Duration::from_secs(2)))
        .expect("run")
        .expect("connect inside the namespace");
    accepting.join().expect("accept thread").expect("accept");

    // The 127.0.0.11 a DNS server binds in a sandbox.
    ns.run(|| std::net::UdpSocket::bind("127.0.0.11:53"))
        .expect("run")
        .expect("bind 127.0.0.11:53 in the namespace");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn netlink_and_run_async_are_inside() {
    if !netns_available() {
        return;
    }
    let stem = "sko-ns3";
    let _cleanup = Cleanup::new(stem);
    let ns = Netns::create(&format!("{stem}-x")).expect("create");
    let names: Vec<String> = links(&ns).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["lo"], "netlink sees the namespace's links, not ours");
    let inside = ns.run_async(own_ns_inode).await.expect("run_async");
    assert_eq!(inside, ns.run(own_ns_inode).expect("run"));
    assert_ne!(inside, own_ns_inode());
    let current = Netns::current().expect("current");
    assert_eq!(current.name(), None);
    assert_eq!(current.run(own_ns_inode).expect("run"), own_ns_inode());
}
