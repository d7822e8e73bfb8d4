//! The PROXY protocol v2 relay: backends that parse the header and echo the client address they were told, checked
//! against the client's real address. On loopback (no privileges needed) and across network namespaces
//! (10.213.185.0/24).

mod nft_support;

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use nft_support::{in_netns, netns_available, within, Lab};
use skep_overlay::proxy::{ProxyConfig, ProxyListener, V2_SIGNATURE};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Reads and decodes one PROXY v2 header (PROXY command, TCP4 or TCP6): (source, destination).
async fn read_v2_header(stream: &mut TcpStream) -> io::Result<(SocketAddr, SocketAddr)> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let mut fixed = [0u8; 16];
    stream.read_exact(&mut fixed).await?;
    if fixed[..12] != V2_SIGNATURE {
        return Err(bad("signature"));
    }
    if fixed[12] != 0x21 {
        return Err(bad("version/command"));
    }
    let len = u16::from_be_bytes([fixed[14], fixed[15]]) as usize;
    // Bounded: the longest address block (AF_UNIX) is 216 bytes; skep sends no TLVs.
    if len > 216 {
        return Err(bad("length"));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    let port = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
    match (fixed[13], len) {
        (0x11, 12) => {
            let src = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            let dst = Ipv4Addr::new(body[4], body[5], body[6], body[7]);
            Ok((SocketAddr::new(IpAddr::V4(src), port(8)), SocketAddr::new(IpAddr::V4(dst), port(10))))
        }
        (0x21, 36) => {
            let src = Ipv6Addr::from(<[u8; 16]>::try_from(&body[0..16]).unwrap());
            let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&body[16..32]).unwrap());
            Ok((SocketAddr::new(IpAddr::V6(src), port(32)), SocketAddr::new(IpAddr::V6(dst), port(34))))
        }
        _ => Err(bad("family/length")),
    }
}

/// A backend that expects PROXY v2, answers `"<name> <source> <destination>\n"`, then reads the client's data to
/// EOF and answers `"got <n>\n"` before closing (so the relay's half-close is exercised).
fn spawn_backend(tasks: &mut JoinSet<()>, listener: TcpListener, name: &'static str) {
    tasks.spawn(async move {
        let mut conns = JoinSet::new();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            while conns.try_join_next().is_some() {}
            conns.spawn(async move {
                let answer = match read_v2_header(&mut stream).await {
                    Ok((src, dst)) => format!("{name} {src} {dst}\n"),
                    Err(e) => format!("{name} bad-header {e}\n"),
                };
                stream.write_all(answer.as_bytes()).await.ok();
                let mut rest = Vec::new();
                // Bounded: test clients send a few bytes.
                let n = (&mut stream).take(1 << 20).read_to_end(&mut rest).await.unwrap_or(0);
                stream.write_all(format!("got {n}\n").as_bytes()).await.ok();
            });
        }
    });
}

/// What one client saw: backend name, PROXY source and destination, and the byte count the backend read.
#[derive(Debug)]
struct Seen {
    name: String,
    src: SocketAddr,
    dst: SocketAddr,
    got: usize,
}

/// Connects (the socket given, or a new one), sends `payload`, half-closes, reads everything.
async fn ask(stream: TcpStream, payload: &[u8]) -> io::Result<(SocketAddr, Seen)> {
    let mut stream = stream;
    let local = stream.local_addr()?;
    stream.write_all(payload).await?;
    stream.shutdown().await?;
    let mut out = Vec::new();
    within((&mut stream).take(4096).read_to_end(&mut out)).await?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let mut lines = text.lines();
    let first: Vec<&str> = lines.next().unwrap_or_default().split_whitespace().collect();
    let got = lines.next().and_then(|l| l.strip_prefix("got ")).and_then(|n| n.parse().ok());
    match (first.as_slice(), got) {
        ([name, src, dst], Some(got)) => {
            Ok((local, Seen { name: name.to_string(), src: src.parse().unwrap(), dst: dst.parse().unwrap(), got }))
        }
        _ => Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected answer {text:?}"))),
    }
}

async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    within(TcpStream::connect(addr)).await
}

async fn loopback_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

#[tokio::test]
async fn relays_with_client_address_round_robin_failover_updates_and_shutdown() {
    let mut tasks = JoinSet::new();
    let l1 = loopback_listener().await;
    let l2 = loopback_listener().await;
    let (b1, b2) = (l1.local_addr().unwrap(), l2.local_addr().unwrap());
    spawn_backend(&mut tasks, l1, "b1");
    spawn_backend(&mut tasks, l2, "b2");
    // A backend that refuses: a port that was bound and released.
    let dead = loopback_listener().await.local_addr().unwrap();

    let (backends_tx, backends_rx) = watch::channel(vec![dead, b1, b2]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let config = ProxyConfig { max_connections: 16, connect_timeout: Duration::from_millis(500) };
    let proxy = ProxyListener::bind("127.0.0.1:0".parse().unwrap(), backends_rx, config).await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let run = tokio::spawn(proxy.run(stop_rx));

    let mut names = Vec::new();
    for i in 0..9 {
        let payload = vec![b'x'; 10 + i];
        let (local, seen) = ask(connect(proxy_addr).await.unwrap(), &payload).await.expect("relayed");
        assert_eq!(seen.src, local, "the backend must see the client's own address");
        assert_eq!(seen.dst, proxy_addr, "and the address the client connected to");
        assert_eq!(seen.got, payload.len(), "all bytes before the half-close arrive");
        names.push(seen.name);
    }
    // Round robin over [dead, b1, b2]: dead's turns fall through to the next backend, b1.
    assert_eq!(names.iter().filter(|n| *n == "b1").count(), 6, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "b2").count(), 3, "{names:?}");

    // Backends change at run time.
    backends_tx.send(vec![b2]).unwrap();
    for _ in 0..3 {
        let (_, seen) = ask(connect(proxy_addr).await.unwrap(), b"hi").await.unwrap();
        assert_eq!(seen.name, "b2");
    }

    // No backend: the client is closed at once, no answer.
    backends_tx.send(vec![]).unwrap();
    let mut stream = connect(proxy_addr).await.unwrap();
    let mut out = Vec::new();
    let read = within(stream.read_to_end(&mut out)).await;
    assert!(read.is_err() || out.is_empty(), "{read:?} {out:?}");

    // Shutdown closes the held connection and ends `run`.
    backends_tx.send(vec![b1]).unwrap();
    let mut held = connect(proxy_addr).await.unwrap();
    let mut greeting = [0u8; 2];
    within(held.read_exact(&mut greeting)).await.expect("held connection answered");
    assert_eq!(&greeting, b"b1");
    stop_tx.send(true).unwrap();
    within(async { Ok(run.await) }).await.expect("run ends").expect("no panic").expect("clean stop");
    let mut rest = Vec::new();
    // Closed by the relay (EOF or reset within the step), never reaching the backend's final answer.
    match within(held.read_to_end(&mut rest)).await {
        Ok(_) => assert!(!String::from_utf8_lossy(&rest).contains("got"), "{rest:?}"),
        Err(e) => assert_ne!(e.kind(), io::ErrorKind::TimedOut, "held connection not closed"),
    }
    assert!(connect(proxy_addr).await.is_err(), "listener closed");
}

#[tokio::test]
async fn concurrent_connections_are_bounded() {
    let mut tasks = JoinSet::new();
    let l1 = loopback_listener().await;
    let b1 = l1.local_addr().unwrap();
    spawn_backend(&mut tasks, l1, "b1");
    let (_backends_tx, backends_rx) = watch::channel(vec![b1]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let config = ProxyConfig { max_connections: 1, connect_timeout: Duration::from_millis(500) };
    let proxy = ProxyListener::bind("127.0.0.1:0".parse().unwrap(), backends_rx, config).await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let accepted = proxy.accepted();
    let run = tokio::spawn(proxy.run(stop_rx));

    let mut first = connect(proxy_addr).await.unwrap();
    let mut greeting = [0u8; 2];
    within(first.read_exact(&mut greeting)).await.unwrap();
    // The second client is in the kernel's backlog, not served while the first holds the only permit.
    let mut second = connect(proxy_addr).await.unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), second.read_exact(&mut greeting)).await;
    assert!(waited.is_err(), "second connection served beyond the limit");
    // Finishing the first frees the permit.
    first.shutdown().await.unwrap();
    let mut rest = Vec::new();
    within(first.read_to_end(&mut rest)).await.unwrap();
    drop(first);
    within(second.read_exact(&mut greeting)).await.expect("served once the first is done");
    assert_eq!(&greeting, b"b1");
    // counted as accepted: the first at once, the second once the permit let it be
    assert_eq!(accepted.load(std::sync::atomic::Ordering::Relaxed), 2);

    stop_tx.send(true).unwrap();
    within(async { Ok(run.await) }).await.unwrap().unwrap().unwrap();
}

#[tokio::test]
async fn ipv6_clients_get_a_tcp6_header() {
    let Ok(l1) = TcpListener::bind("[::1]:0").await else {
        eprintln!("SKIPPED ipv6_clients_get_a_tcp6_header: no IPv6 loopback");
        return;
    };
    let mut tasks = JoinSet::new();
    let b1 = l1.local_addr().unwrap();
    spawn_backend(&mut tasks, l1, "b1");
    let (_backends_tx, backends_rx) = watch::channel(vec![b1]);
    let (stop_tx, stop_rx) = watch::channel(false);
    let proxy = ProxyListener::bind("[::1]:0".parse().unwrap(), backends_rx, ProxyConfig::default()).await.unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let run = tokio::spawn(proxy.run(stop_rx));
    let (local, seen) = ask(connect(proxy_addr).await.unwrap(), b"six").await.unwrap();
    assert_eq!((seen.src, seen.dst, seen.got), (local, proxy_addr, 3));
    drop(stop_tx); // Dropping the sender stops the relay too.
    within(async { Ok(run.await) }).await.unwrap().unwrap().unwrap();
}

/// The client in its own namespace (10.213.185.1) reaches the relay running inside the node's namespace
/// (10.213.185.2:7000); the backend, on the node's loopback, must be told 10.213.185.1 and the client's port.
#[tokio::test]
async fn client_address_across_namespaces() {
    if !netns_available("proxy_v2") {
        return;
    }
    const PREFIX: &str = "skt185";
    let mut lab = Lab::new(PREFIX);
    let node = lab.ns("node");
    let client = lab.ns("client");
    lab.veth(&client, "eth0", "10.213.185.1/24", &node, "eth0", "10.213.185.2/24");

    // The relay and its backend run on a runtime of their own, on a thread inside the node's namespace, so that
    // the relay's outgoing connections are made there too.
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let node_thread = {
        let path = node.path();
        std::thread::spawn(move || {
            let handle = std::fs::File::open(&path).unwrap();
            nix::sched::setns(handle, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let mut tasks = JoinSet::new();
                let backend = loopback_listener().await;
                let backend_addr = backend.local_addr().unwrap();
                spawn_backend(&mut tasks, backend, "b1");
                let (_backends_tx, backends_rx) = watch::channel(vec![backend_addr]);
                let proxy =
                    ProxyListener::bind("10.213.185.2:7000".parse().unwrap(), backends_rx, ProxyConfig::default())
                        .await
                        .unwrap();
                ready_tx.send(proxy.local_addr().unwrap()).unwrap();
                proxy.run(stop_rx).await
            })
        })
    };
    let proxy_addr = within(async { Ok(ready_rx.await.expect("relay started")) }).await.unwrap();

    for _ in 0..3 {
        let socket = in_netns(&client, tokio::net::TcpSocket::new_v4).unwrap();
        let stream = within(socket.connect(proxy_addr)).await.expect("client → relay");
        let (local, seen) = ask(stream, b"from afar").await.expect("relayed");
        assert_eq!(local.ip().to_string(), "10.213.185.1");
        assert_eq!(seen.src, local, "backend told the client's real address");
        assert_eq!(seen.dst, "10.213.185.2:7000".parse().unwrap());
        assert_eq!(seen.got, 9);
    }

    stop_tx.send(true).unwrap();
    let joined = tokio::task::spawn_blocking(move || node_thread.join());
    within(async { Ok(joined.await) }).await.unwrap().unwrap().expect("node thread").expect("relay stopped cleanly");
    drop(lab);
    assert!(Lab::leftovers(PREFIX).is_empty());
}
