//! A userspace TCP relay for a published port that tells the backend who the client is, with the PROXY protocol
//! version 2 (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>, section 2.2).
//!
//! The nftables routing mesh ([`crate::nft`]) masquerades, so a task behind it sees the node's host-leg address as
//! its peer (Docker's mesh has the same limit: moby#25526). A service whose software speaks PROXY v2 (nginx
//! `proxy_protocol`, HAProxy `accept-proxy`, Envoy, Traefik, …) can instead be published through a
//! [`ProxyListener`]: it accepts on the host port, connects to a backend, sends one PROXY v2 header with the
//! client's address and the address it connected to, and then relays bytes both ways.
//!
//! Bounds: at most [`ProxyConfig::max_connections`] connections at once (the listener stops accepting while full,
//! leaving new clients in the kernel's backlog); each backend connect gives up after
//! [`ProxyConfig::connect_timeout`] and the next backend is tried; accept errors back off.
//!
//! Shutdown: [`ProxyListener::run`] takes a `watch::Receiver<bool>`; `true` (or dropping the sender) stops the
//! accept loop and closes the connections in flight, and `run` returns once they are gone.
#![forbid(unsafe_code)]

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

/// The 12 bytes every PROXY v2 header starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 2 (high nibble), command PROXY (low nibble).
const V2_PROXY: u8 = 0x21;
/// AF_INET (high nibble), STREAM (low nibble).
const FAM_TCP4: u8 = 0x11;
/// AF_INET6 (high nibble), STREAM (low nibble).
const FAM_TCP6: u8 = 0x21;
/// Longest header [`encode_v2_header`] produces: 16 fixed bytes and 36 address bytes.
pub const V2_MAX_HEADER: usize = 16 + 36;

/// Consecutive failed `accept` calls after which [`ProxyListener::run`] gives up (about a minute of backoff).
const MAX_ACCEPT_FAILURES: u32 = 64;
/// The longest pause between two failed `accept` calls.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The PROXY v2 header for a TCP connection from `client` to `destination` (the address the client connected to).
///
/// Both addresses IPv4 (or IPv4-mapped IPv6): `TCP4`, 12 address bytes. Otherwise `TCP6`, 36 address bytes, with an
/// IPv4 address written IPv4-mapped. No TLVs.
pub fn encode_v2_header(client: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    fn as_v4(addr: &SocketAddr) -> Option<std::net::Ipv4Addr> {
        match addr.ip() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(ip) => ip.to_ipv4_mapped(),
        }
    }
    fn as_v6(addr: &SocketAddr) -> std::net::Ipv6Addr {
        match addr.ip() {
            IpAddr::V4(ip) => ip.to_ipv6_mapped(),
            IpAddr::V6(ip) => ip,
        }
    }
    let mut out = Vec::with_capacity(V2_MAX_HEADER);
    out.extend_from_slice(&V2_SIGNATURE);
    out.push(V2_PROXY);
    match (as_v4(&client), as_v4(&destination)) {
        (Some(src), Some(dst)) => {
            out.push(FAM_TCP4);
            out.extend_from_slice(&12u16.to_be_bytes());
            out.extend_from_slice(&src.octets());
            out.extend_from_slice(&dst.octets());
        }
        _ => {
            out.push(FAM_TCP6);
            out.extend_from_slice(&36u16.to_be_bytes());
            out.extend_from_slice(&as_v6(&client).octets());
            out.extend_from_slice(&as_v6(&destination).octets());
        }
    }
    out.extend_from_slice(&client.port().to_be_bytes());
    out.extend_from_slice(&destination.port().to_be_bytes());
    out
}

/// Limits of one [`ProxyListener`].
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Connections relayed at once; each holds two sockets. At least 1.
    pub max_connections: usize,
    /// How long one backend may take to accept before the next one is tried.
    pub connect_timeout: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig { max_connections: 1024, connect_timeout: Duration::from_secs(3) }
    }
}

/// Why a [`ProxyListener`] could not start or stopped on its own.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// Binding the published port failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// What the OS said.
        #[source]
        source: io::Error,
    },
    /// A given `std::net::TcpListener` could not be handed to tokio.
    #[error("cannot use the given listener")]
    Listener(#[source] io::Error),
    /// `accept` failed this many times in a row; the last error is the source.
    #[error("accept failed {failures} times in a row")]
    Accept {
        /// Consecutive failures.
        failures: u32,
        /// The last one.
        #[source]
        source: io::Error,
    },
}

/// Why one relayed connection ended badly (logged, never returned: one client's trouble is not the listener's).
#[derive(Debug, thiserror::Error)]
enum ConnError {
    #[error("no backends")]
    NoBackends,
    #[error("none of the {0} backends accepted")]
    AllBackendsFailed(usize),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// A published port relayed in userspace with PROXY v2; see the [module docs](self).
pub struct ProxyListener {
    /// The published port.
    listener: TcpListener,
    /// The backends, changed at run time by the caller; each connection uses the list as it is when accepted.
    backends: watch::Receiver<Vec<SocketAddr>>,
    /// One permit per relayed connection: when none is left the loop stops accepting (backpressure into the
    /// kernel's backlog) instead of growing without bound.
    limit: Arc<Semaphore>,
    /// How long one backend may take to accept.
    connect_timeout: Duration,
    /// Connections accepted so far (for metrics: [`ProxyListener::accepted`]).
    accepted: Arc<AtomicU64>,
}

impl ProxyListener {
    /// Listens on `addr`.
    pub async fn bind(
        addr: SocketAddr,
        backends: watch::Receiver<Vec<SocketAddr>>,
        config: ProxyConfig,
    ) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind(addr).await.map_err(|source| ProxyError::Bind { addr, source })?;
        Ok(Self::new(listener, backends, config))
    }

    /// Uses an already bound listener (e.g. one created inside another network namespace). Must be called inside
    /// a tokio runtime.
    pub fn from_std(
        listener: std::net::TcpListener,
        backends: watch::Receiver<Vec<SocketAddr>>,
        config: ProxyConfig,
    ) -> Result<Self, ProxyError> {
        listener.set_nonblocking(true).map_err(ProxyError::Listener)?;
        let listener = TcpListener::from_std(listener).map_err(ProxyError::Listener)?;
        Ok(Self::new(listener, backends, config))
    }

    fn new(listener: TcpListener, backends: watch::Receiver<Vec<SocketAddr>>, config: ProxyConfig) -> Self {
        ProxyListener {
            listener,
            backends,
            limit: Arc::new(Semaphore::new(config.max_connections.max(1))),
            connect_timeout: config.connect_timeout,
            accepted: Arc::default(),
        }
    }

    /// The count of connections this listener accepts (each relayed or tried: one whose backends all fail counts
    /// too), shared: read it while [`ProxyListener::run`] goes on.
    pub fn accepted(&self) -> Arc<AtomicU64> {
        self.accepted.clone()
    }

    /// The address clients connect to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Accepts and relays until `shutdown` turns `true` or its sender is dropped, then closes every relayed
    /// connection and returns. Errors only if `accept` keeps failing.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), ProxyError> {
        let mut conns = JoinSet::new();
        // Round robin: each accepted connection starts at the next backend.
        let mut next: usize = 0;
        let mut failures: u32 = 0;
        let result = loop {
            while let Some(done) = conns.try_join_next() {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "proxy connection task panicked");
                    }
                }
            }
            let permit = tokio::select! {
                biased;
                _ = stop_requested(&mut shutdown) => break Ok(()),
                permit = self.limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            };
            let accepted = tokio::select! {
                biased;
                _ = stop_requested(&mut shutdown) => break Ok(()),
                accepted = self.listener.accept() => accepted,
            };
            let (client, peer) = match accepted {
                Ok(conn) => {
                    failures = 0;
                    self.accepted.fetch_add(1, Ordering::Relaxed);
                    conn
                }
                Err(source) => {
                    failures += 1;
                    if failures >= MAX_ACCEPT_FAILURES {
                        break Err(ProxyError::Accept { failures, source });
                    }
                    // 10 ms, 20 ms, … up to 1 s: running out of file descriptors passes as connections end.
                    let pause = Duration::from_millis(10u64 << failures.min(7)).min(MAX_ACCEPT_BACKOFF);
                    tracing::warn!(error = %source, failures, ?pause, "proxy accept failed");
                    tokio::select! {
                        biased;
                        _ = stop_requested(&mut shutdown) => break Ok(()),
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            };
            let backends = self.backends.borrow().clone();
            let start = next;
            next = next.wrapping_add(1);
            let connect_timeout = self.connect_timeout;
            conns.spawn(async move {
                let _permit = permit;
                match relay(client, peer, &backends, start, connect_timeout).await {
                    Ok((up, down)) => tracing::debug!(%peer, up, down, "proxy connection closed"),
                    Err(e) => tracing::warn!(%peer, error = %e, "proxy connection failed"),
                }
            });
        };
        // Aborts what is still relaying and waits until every task has dropped its sockets.
        conns.shutdown().await;
        result
    }
}

/// Resolves when a stop is asked for, or when nobody can ask any more (sender dropped).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One connection: pick a backend (round robin from `start`, skipping those that fail), send the header, relay.
async fn relay(
    mut client: TcpStream,
    peer: SocketAddr,
    backends: &[SocketAddr],
    start: usize,
    connect_timeout: Duration,
) -> Result<(u64, u64), ConnError> {
    if backends.is_empty() {
        return Err(ConnError::NoBackends);
    }
    // The destination the client used: with a wildcard listener, the node address it reached.
    let destination = client.local_addr()?;
    let mut upstream = None;
    for i in 0..backends.len() {
        let backend = backends[(start + i) % backends.len()];
        match tokio::time::timeout(connect_timeout, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => {
                upstream = Some(stream);
                break;
            }
            Ok(Err(e)) => tracing::debug!(%backend, error = %e, "proxy backend refused; trying the next"),
            Err(_) => tracing::debug!(%backend, ?connect_timeout, "proxy backend timed out; trying the next"),
        }
    }
    let mut upstream = upstream.ok_or(ConnError::AllBackendsFailed(backends.len()))?;
    // The relay forwards what it has at once; Nagle on its side would only add latency.
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    upstream.write_all(&encode_v2_header(peer, destination)).await?;
    // Half-closes each direction when its reader sees EOF; ends when both have.
    Ok(tokio::io::copy_bidirectional(&mut client, &mut upstream).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp4_header_matches_the_spec_bytes() {
        let header = encode_v2_header("192.0.2.1:56324".parse().unwrap(), "198.51.100.7:443".parse().unwrap());
        let expected: Vec<u8> = vec![
            0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, // signature
            0x21, // version 2, PROXY
            0x11, // AF_INET, STREAM
            0x00, 0x0C, // 12 address bytes
            192, 0, 2, 1, // source address
            198, 51, 100, 7, // destination address
            0xDC, 0x04, // source port 56324
            0x01, 0xBB, // destination port 443
        ];
        assert_eq!(header, expected);
    }

    #[test]
    fn tcp6_header_matches_the_spec_bytes() {
        let header = encode_v2_header("[2001:db8::1]:1024".parse().unwrap(), "[2001:db8::2:3]:8080".parse().unwrap());
        let mut expected = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        expected.extend_from_slice(&[0x21, 0x21, 0x00, 0x24]);
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        expected.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 3]);
        expected.extend_from_slice(&[0x04, 0x00, 0x1F, 0x90]);
        assert_eq!(header.len(), V2_MAX_HEADER);
        assert_eq!(header, expected);
    }

    #[test]
    fn mapped_addresses_are_tcp4_and_mixed_families_are_tcp6() {
        // A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d; the backend should see plain IPv4.
        let mapped = encode_v2_header("[::ffff:10.0.0.1]:1".parse().unwrap(), "[::ffff:10.0.0.2]:2".parse().unwrap());
        assert_eq!(mapped, encode_v2_header("10.0.0.1:1".parse().unwrap(), "10.0.0.2:2".parse().unwrap()));
        assert_eq!(mapped[13], FAM_TCP4);

        let mixed = encode_v2_header("10.0.0.1:1".parse().unwrap(), "[2001:db8::2]:2".parse().unwrap());
        assert_eq!(mixed[13], FAM_TCP6);
        assert_eq!(&mixed[16..32], &"::ffff:10.0.0.1".parse::<std::net::Ipv6Addr>().unwrap().octets());
    }
}
