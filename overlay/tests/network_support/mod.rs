//! Shared scaffolding of the overlay's kernel tests: a skip-or-fail check for namespace support, "hosts" made of
//! network namespaces joined by a veth (the underlay), TCP echo helpers that run inside namespaces, and a guard that
//! removes every namespace of a test on drop, also when the test fails.
//!
//! Every name a test makes starts with its own stem (`sko-<test>-`), so tests run in parallel and a guard removes
//! exactly its test's leftovers.

#![allow(dead_code)] // each test binary uses a different part of this

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use rtnetlink::packet_route::link::{InfoData, InfoVeth, LinkAttribute};
use rtnetlink::{LinkUnspec, LinkVeth};
use skep_overlay::netns::Netns;

/// Whether this process can make network namespaces (root and a working nsfs bind mount). Prints a notice and
/// returns `false` when not, unless `SKEP_TESTS_REQUIRE_NETNS=1`, which turns the skip into a failure.
pub fn netns_available() -> bool {
    static OK: OnceLock<Result<(), String>> = OnceLock::new();
    let ok = OK.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            return Err("not root".into());
        }
        let probe = format!("sko-probe-{}", std::process::id());
        Netns::create(&probe).map_err(|e| e.to_string())?;
        Netns::delete(&probe).map_err(|e| e.to_string())
    });
    match ok {
        Ok(()) => true,
        Err(why) => {
            if std::env::var("SKEP_TESTS_REQUIRE_NETNS").as_deref() == Ok("1") {
                panic!("SKEP_TESTS_REQUIRE_NETNS=1 but network namespaces are unavailable: {why}");
            }
            eprintln!("skipped: needs root and network namespaces ({why})");
            false
        }
    }
}

/// Removes every named namespace whose name starts with `<stem>-` when dropped (and when made, for leftovers of an
/// earlier failed run). Links inside go with their namespaces; sockets in the hosts' namespaces (the VXLAN ports)
/// go when the last handle is dropped.
pub struct Cleanup {
    stem: String,
}

impl Cleanup {
    pub fn new(stem: &str) -> Cleanup {
        let guard = Cleanup { stem: stem.to_string() };
        guard.sweep();
        guard
    }

    fn sweep(&self) {
        let mine = format!("{}-", self.stem);
        for name in Netns::list().unwrap_or_default() {
            if name.starts_with(&mine) {
                let _ = Netns::delete(&name);
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.sweep();
    }
}

/// Names in `/run/netns` that start with `prefix-`.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    let mine = format!("{prefix}-");
    Netns::list()
        .expect("list /run/netns")
        .into_iter()
        .filter(|n| n.starts_with(&mine))
        .collect()
}

/// Two hosts `<stem>-h1`, `<stem>-h2` joined by a veth `u0` with `10.213.<octet>.1/24` and `.2/24` and `mtu`.
pub async fn two_hosts(stem: &str, octet: u8, mtu: u32) -> (Netns, Netns) {
    let h1 = Netns::create(&format!("{stem}-h1")).expect("create host 1");
    let h2 = Netns::create(&format!("{stem}-h2")).expect("create host 2");
    let nl1 = h1.netlink().await.expect("netlink in host 1");
    let peer = LinkUnspec::new_with_name("u0")
        .mtu(mtu)
        .setns_by_fd(h2.raw_fd())
        .build();
    let veth = LinkVeth::new("u0", "u0")
        .mtu(mtu)
        .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
        .build();
    nl1.link().add(veth).execute().await.expect("add underlay veth");
    for (ns, host) in [(&h1, 1), (&h2, 2)] {
        let nl = ns.netlink().await.expect("netlink");
        let addr = Ipv4Addr::new(10, 213, octet, host);
        let u0 = index(&nl, "u0").await;
        nl.address()
            .add(u0, addr.into(), 24)
            .execute()
            .await
            .expect("underlay address");
        nl.link()
            .set(LinkUnspec::new_with_index(u0).up().build())
            .execute()
            .await
            .expect("u0 up");
        let lo = index(&nl, "lo").await;
        nl.link()
            .set(LinkUnspec::new_with_index(lo).up().build())
            .execute()
            .await
            .expect("lo up");
    }
    (h1, h2)
}

/// One host `<stem>-h1` whose underlay `u0` (`10.213.<octet>.1/24`, MTU 1500) is one end of a veth pair whose other
/// end `u0p` is in the same namespace (a stand-in for a NIC; some kernels lack the dummy driver).
pub async fn one_host(stem: &str, octet: u8) -> Netns {
    let h = Netns::create(&format!("{stem}-h1")).expect("create host");
    let nl = h.netlink().await.expect("netlink in host");
    nl.link()
        .add(LinkVeth::new("u0", "u0p").mtu(1500).build())
        .execute()
        .await
        .expect("add veth");
    let u0 = index(&nl, "u0").await;
    nl.address()
        .add(u0, Ipv4Addr::new(10, 213, octet, 1).into(), 24)
        .execute()
        .await
        .expect("address");
    for name in ["u0", "u0p", "lo"] {
        let i = index(&nl, name).await;
        nl.link()
            .set(LinkUnspec::new_with_index(i).up().build())
            .execute()
            .await
            .expect("up");
    }
    h
}

pub async fn index(nl: &rtnetlink::Handle, name: &str) -> u32 {
    nl.link()
        .get()
        .match_name(name)
        .execute()
        .try_next()
        .await
        .expect("get link")
        .expect("link exists")
        .header
        .index
}

/// `(name, mtu)` of every link in `ns`, sorted by name.
pub async fn links(ns: &Netns) -> Vec<(String, u32)> {
    let nl = ns.netlink().await.expect("netlink");
    let links: Vec<_> = nl.link().get().execute().try_collect().await.expect("list links");
    let mut out: Vec<(String, u32)> = links
        .iter()
        .map(|l| {
            let name = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            let mtu = l.attributes.iter().find_map(|a| match a {
                LinkAttribute::Mtu(m) => Some(*m),
                _ => None,
            });
            (name.unwrap_or_default(), mtu.unwrap_or(0))
        })
        .collect();
    out.sort();
    out
}

/// The MTU of `name` in `ns`.
pub async fn mtu_of(ns: &Netns, name: &str) -> u32 {
    links(ns)
        .await
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no link {name}"))
        .1
}

/// An echo server bound to `addr` inside `ns`: answers up to `conns` connections (each: read to EOF, echo back),
/// then ends; gives up after 30 s so a failed test leaves no thread waiting forever.
pub fn echo_server(ns: &Netns, addr: SocketAddrV4, conns: usize) -> std::thread::JoinHandle<()> {
    let listener = ns
        .run(move || TcpListener::bind(addr))
        .expect("enter namespace")
        .expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut served = 0;
        while served < conns && Instant::now() < deadline {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    served += 1;
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                    let mut buf = Vec::new();
                    if stream.read_to_end(&mut buf).is_ok() {
                        let _ = stream.write_all(&buf);
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    })
}

/// Connects from inside `ns` to `to` and sends `payload`, returning what comes back.
pub fn echo(ns: &Netns, to: SocketAddrV4, payload: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    let stream = ns
        .run(move || TcpStream::connect_timeout(&SocketAddr::V4(to), timeout))
        .expect("enter namespace")?;
    exchange(stream, payload, timeout)
}

fn exchange(mut stream: TcpStream, payload: &[u8], timeout: Duration) -> std::io::Result<Vec<u8>> {
    stream.set_read_timeout(Some(timeout * 4))?;
    stream.set_write_timeout(Some(timeout * 4))?;
    let mut writer = stream.try_clone()?;
    let payload = payload.to_vec();
    // Write on a thread: with payloads larger than the socket buffers, writing all before reading would deadlock.
    let writing = std::thread::spawn(move || {
        let r = writer.write_all(&payload);
        let _ = writer.shutdown(std::net::Shutdown::Write);
        r
    });
    let mut back = Vec::new();
    let read = stream.read_to_end(&mut back);
    writing.join().expect("writer thread")?;
    read?;
    Ok(back)
}

/// A payload that detects reordering and corruption.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}
