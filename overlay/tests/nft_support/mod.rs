//! Shared by `nft_*.rs` and `proxy_*.rs`: throwaway network namespaces wired with `ip`, and tiny TCP/UDP servers
//! and clients whose sockets live in those namespaces.
//!
//! A socket belongs to the namespace of the thread that created it, for its whole life. So sockets are created on a
//! short-lived thread that joined the namespace with `setns(2)` ([`in_netns`]) and then driven by the test's tokio
//! runtime like any other. No process is started per server and nothing is left running: servers are tokio tasks
//! in a [`Tasks`] set, aborted on drop; namespaces are deleted by [`Lab`]'s drop, also when a test panics.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sched::CloneFlags;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::task::JoinSet;

/// How long one client step (connect, read an answer) may take.
pub const STEP: Duration = Duration::from_secs(3);

/// Whether the test can run: root and `ip netns` work. Otherwise prints why and returns false, or panics when
/// `SKEP_TESTS_REQUIRE_NETNS=1`.
pub fn netns_available(test: &str) -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("not root".to_owned())
    } else {
        static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let probe = format!("skep-probe-{}-{n}", std::process::id());
        match Command::new("ip").args(["netns", "add", &probe]).output() {
            Ok(out) if out.status.success() => {
                let _ = Command::new("ip").args(["netns", "del", &probe]).output();
                None
            }
            Ok(out) => Some(format!("`ip netns add` failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Err(e) => Some(format!("cannot run `ip`: {e}")),
        }
    };
    match why {
        None => true,
        Some(why) if std::env::var("SKEP_TESTS_REQUIRE_NETNS").as_deref() == Ok("1") => {
            panic!("{test}: network namespaces required (SKEP_TESTS_REQUIRE_NETNS=1) but unavailable: {why}")
        }
        Some(why) => {
            eprintln!("SKIPPED {test}: network namespaces unavailable ({why})");
            false
        }
    }
}

/// Runs `ip ARGS…`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
}

/// A set of namespaces named `<prefix>-<name>`, deleted (with every interface in them) on drop.
pub struct Lab {
    prefix: String,
    names: Vec<String>,
}

impl Lab {
    /// `prefix` must be unique to the test (it names the namespaces).
    pub fn new(prefix: &str) -> Lab {
        Lab { prefix: prefix.to_owned(), names: Vec::new() }
    }

    /// Creates namespace `<prefix>-<name>` (removing a leftover of an earlier, killed run) with `lo` up.
    pub fn ns(&mut self, name: &str) -> Ns {
        let full = format!("{}-{name}", self.prefix);
        let _ = Command::new("ip").args(["netns", "del", &full]).output();
        ip(&["netns", "add", &full]);
        self.names.push(full.clone());
        ip(&["-n", &full, "link", "set", "lo", "up"]);
        Ns { name: full }
    }

    /// A bridge `br` in `switch`, up.
    pub fn bridge(&self, switch: &Ns, br: &str) {
        ip(&["-n", &switch.name, "link", "add", br, "type", "bridge"]);
        ip(&["-n", &switch.name, "link", "set", br, "up"]);
    }

    /// A veth from `ns`'s `ifname` (with `cidr`) to a port of bridge `br` in `switch`; `port` names the bridge side.
    pub fn attach(&self, switch: &Ns, br: &str, port: &str, ns: &Ns, ifname: &str, cidr: &str) {
        ip(&["-n", &switch.name, "link", "add", port, "type", "veth", "peer", "name", ifname, "netns", &ns.name]);
        ip(&["-n", &switch.name, "link", "set", port, "master", br]);
        ip(&["-n", &switch.name, "link", "set", port, "up"]);
        ns.addr(ifname, cidr);
    }

    /// A veth between two namespaces.
    pub fn veth(&self, a: &Ns, a_if: &str, a_cidr: &str, b: &Ns, b_if: &str, b_cidr: &str) {
        ip(&["-n", &a.name, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name]);
        a.addr(a_if, a_cidr);
        b.addr(b_if, b_cidr);
    }

    /// The namespaces this lab created and that still exist.
    pub fn leftovers(prefix: &str) -> Vec<String> {
        let out = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&format!("{prefix}-")))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for name in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// One namespace of a [`Lab`].
#[derive(Clone)]
pub struct Ns {
    pub name: String,
}

impl Ns {
    /// Its handle, as `nsenter --net=` and the crate's functions take it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Adds `cidr` to `ifname` and brings it up.
    pub fn addr(&self, ifname: &str, cidr: &str) {
        ip(&["-n", &self.name, "addr", "add", cidr, "dev", ifname]);
        ip(&["-n", &self.name, "link", "set", ifname, "up"]);
    }

    /// `ip route add default via GW` inside.
    pub fn default_route(&self, gw: &str) {
        ip(&["-n", &self.name, "route", "add", "default", "via", gw]);
    }
}

/// Runs `f` on a fresh thread inside `ns`; sockets `f` creates stay in `ns`.
pub fn in_netns<T: Send>(ns: &Ns, f: impl FnOnce() -> T + Send) -> T {
    let path = ns.path();
    std::thread::scope(|s| {
        s.spawn(move || {
            let handle = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
            nix::sched::setns(handle, CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("netns thread panicked")
    })
}

/// Background servers of one test; dropping aborts them all.
#[derive(Default)]
pub struct Tasks(JoinSet<()>);

impl Tasks {
    /// A TCP server in `ns` on `addr`: on accept, and then for every line received, it answers
    /// `"<name> <peer address>\n"`; so a client learns which backend it reached and what source that backend saw.
    pub fn tcp_name_server(&mut self, ns: &Ns, addr: &str, name: &str) {
        let addr: SocketAddr = addr.parse().unwrap();
        let listener = in_netns(ns, || std::net::TcpListener::bind(addr)).expect("bind tcp server");
        self.tcp_name_server_on(listener, name);
    }

    /// As [`Self::tcp_name_server`], on a listener bound already.
    pub fn tcp_name_server_on(&mut self, listener: std::net::TcpListener, name: &str) {
        listener.set_nonblocking(true).unwrap();
        let listener = TcpListener::from_std(listener).unwrap();
        let name = name.to_owned();
        self.0.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, peer)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                while conns.try_join_next().is_some() {}
                let answer = format!("{name} {peer}\n");
                conns.spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    if write.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                    while let Ok(Some(_)) = lines.next_line().await {
                        if write.write_all(answer.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
    }

    /// A UDP server in `ns` on `addr` answering every datagram with `"<name> <peer address>"`.
    pub fn udp_name_server(&mut self, ns: &Ns, addr: &str, name: &str) {
        let addr: SocketAddr = addr.parse().unwrap();
        let socket = in_netns(ns, || std::net::UdpSocket::bind(addr)).expect("bind udp server");
        socket.set_nonblocking(true).unwrap();
        let socket = UdpSocket::from_std(socket).unwrap();
        let name = name.to_owned();
        self.0.spawn(async move {
            let mut buf = [0u8; 512];
            loop {
                let Ok((_, peer)) = socket.recv_from(&mut buf).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = socket.send_to(format!("{name} {peer}").as_bytes(), peer).await;
            }
        });
    }

    /// Spawns any other background future.
    pub fn spawn(&mut self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.spawn(fut);
    }
}

/// A TCP connection made from inside a namespace to a name server, kept open.
pub struct Conn {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
    /// The client's own address (what the server should see unless NAT rewrote it).
    pub local: SocketAddr,
    /// The first answer: `"<name> <peer>"`.
    pub first: String,
}

impl Conn {
    /// Connects from `ns` to `addr` and reads the greeting, each within [`STEP`].
    pub async fn open(ns: &Ns, addr: &str) -> io::Result<Conn> {
        let addr: SocketAddr = addr.parse().unwrap();
        let socket = in_netns(ns, TcpSocket::new_v4)?;
        let stream: TcpStream = within(socket.connect(addr)).await?;
        let local = stream.local_addr()?;
        let (read, write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let first = within(lines.next_line())
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed before answering"))?;
        Ok(Conn { lines, write, local, first })
    }

    /// Asks again on the same connection.
    pub async fn ask(&mut self) -> io::Result<String> {
        self.write.write_all(b"again\n").await?;
        within(self.lines.next_line()).await?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed"))
    }
}

/// One TCP question from `ns` to `addr`: the backend's name (first word of its answer).
pub async fn tcp_name(ns: &Ns, addr: &str) -> io::Result<String> {
    let conn = Conn::open(ns, addr).await?;
    Ok(conn.first.split_whitespace().next().unwrap_or_default().to_owned())
}

/// One UDP question from a fresh socket (so a fresh conntrack entry) in `ns` to `addr`: the whole answer.
pub async fn udp_ask(ns: &Ns, addr: &str) -> io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let socket = in_netns(ns, || std::net::UdpSocket::bind("0.0.0.0:0"))?;
    socket.set_nonblocking(true)?;
    let socket = UdpSocket::from_std(socket)?;
    socket.connect(addr).await?;
    socket.send(b"who").await?;
    let mut buf = [0u8; 512];
    let n = within(socket.recv(&mut buf)).await?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// `fut` within [`STEP`], a timeout being an `io::ErrorKind::TimedOut`.
pub async fn within<T>(fut: impl std::future::Future<Output = io::Result<T>>) -> io::Result<T> {
    tokio::time::timeout(STEP, fut).await.map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "step timed out"))?
}

/// Counts answers per backend name.
pub fn tally(names: &[String]) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for n in names {
        *counts.entry(n.clone()).or_insert(0) += 1;
    }
    counts
}

/// skep's tables in `ns`.
pub async fn skep_tables(ns: &Path) -> Vec<String> {
    skep_overlay::nft::list_tables(Some(ns))
        .await
        .expect("list tables")
        .into_iter()
        .filter(|t| t.name.starts_with("skep_"))
        .map(|t| format!("{} {}", t.family, t.name))
        .collect()
}
