//! [`Endpoint`]: one QUIC endpoint per node, serving and calling on the same UDP socket.

use std::{
    collections::HashMap,
    net::{Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, PoisonError, RwLock,
    },
};

use crate::{TransportConfig, TransportError};

/// A node's QUIC endpoint: the server side ([`serve`](Endpoint::serve)) and the client side
/// ([`call`](Endpoint::call)) share one UDP socket. Cheap to clone; all clones are the same
/// endpoint.
#[derive(Clone)]
pub struct Endpoint {
    pub(crate) inner: Arc<Inner>,
}

/// Key of the connection cache: the same address under another server name is another identity
/// check, hence another connection.
pub(crate) type ConnKey = (SocketAddr, String);

/// One cache entry. The async mutex is held while dialing so that concurrent first calls to a peer
/// share one connection instead of racing to open many.
pub(crate) type ConnSlot = Arc<tokio::sync::Mutex<Option<quinn::Connection>>>;

pub(crate) struct Inner {
    /// The QUIC endpoint; its server config is swapped in place by `set_tls`.
    pub(crate) quic: quinn::Endpoint,
    /// Client identity for `call`. Swapped by `set_tls`; a dial reads it once, when it starts.
    pub(crate) client: RwLock<quinn::ClientConfig>,
    /// Reused connections to peers. A closed connection found here is replaced on the next call;
    /// `set_tls` empties the map so the new certificate is used from the next call on.
    pub(crate) conns: Mutex<HashMap<ConnKey, ConnSlot>>,
    pub(crate) cfg: TransportConfig,
    /// Set by `close`, so that failures caused by our own shutdown read as `Closed`.
    pub(crate) closed: AtomicBool,
    /// Connections `serve` holds open, with their callers, so that [`Endpoint::close_callers`] can end some.
    pub(crate) served: Mutex<HashMap<u64, (crate::Peer, quinn::Connection)>>,
    /// Key of the next entry of `served`.
    pub(crate) next_served: std::sync::atomic::AtomicU64,
    /// Per connection a call was made on (by `stable_id`): what had been heard from the peer when a call last looked,
    /// and since when that count was seen unchanged (see `client::Heard`).
    pub(crate) heard: Mutex<HashMap<usize, crate::client::Heard>>,
    /// Handshakes started by `call`/`call_with` (tests check connection reuse with it).
    #[cfg(test)]
    pub(crate) dials: std::sync::atomic::AtomicUsize,
}

/// Application close code of a connection ended by [`Endpoint::close_callers`].
const CLOSE_CALLER: u32 = 3;

/// Poisoning only means another thread panicked mid-update of a plain map or config value; the
/// value itself is still consistent, so keep going.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The UDP receive buffer an endpoint asks for (the kernel caps it at `net.core.rmem_max` for an unprivileged
/// process).
///
/// One socket takes every node's heartbeats, status reports and long polls. The kernel's default buffer (208 KiB on
/// Linux) holds a few hundred packets: a leader of 1000 nodes that stalled for a moment dropped a fifth of its
/// incoming packets (the host's `RcvbufErrors` in /proc/net/snmp, in the 10k-task simulation of bench/services). A
/// dropped packet is unacknowledged, so the callers judged the leader silent, closed their connections and redialed,
/// each redial a TLS handshake the saturated leader had to make: their heartbeats failed and nodes were marked down.
/// quic-go asks for 7 MiB for the same reason.
pub const RECV_BUFFER: usize = 8 << 20;

/// Set once the cap below [`RECV_BUFFER`] has been reported (it is the host's, the same for every endpoint).
static BUFFER_CAPPED_SAID: AtomicBool = AtomicBool::new(false);

/// A QUIC endpoint on a UDP socket bound to `addr` whose receive buffer is [`RECV_BUFFER`] where the host allows.
fn quic_endpoint(addr: SocketAddr, server: Option<quinn::ServerConfig>) -> std::io::Result<quinn::Endpoint> {
    let socket = udp_socket(addr)?;
    let runtime = quinn::default_runtime().ok_or_else(|| std::io::Error::other("no async runtime found"))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), server, socket, runtime)
}

/// A UDP socket bound to `addr` with a receive buffer of [`RECV_BUFFER`] where the host allows.
fn udp_socket(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    let state = quinn::udp::UdpSocketState::new((&socket).into())?;
    // as root, SO_RCVBUFFORCE passes the host's cap; otherwise SO_RCVBUF, up to the cap
    let forced = force_recv_buffer(&socket, RECV_BUFFER);
    if !forced {
        let _ = state.set_recv_buffer_size((&socket).into(), RECV_BUFFER);
    }
    // Linux reports twice what was set (it counts its own bookkeeping): a buffer that took reads as twice the size
    let reads_as = if cfg!(target_os = "linux") { 2 * RECV_BUFFER } else { RECV_BUFFER };
    let got = state.recv_buffer_size((&socket).into()).unwrap_or(0);
    if got < reads_as && !BUFFER_CAPPED_SAID.swap(true, Ordering::Relaxed) {
        tracing::info!(
            wanted = RECV_BUFFER,
            got,
            "the host caps UDP receive buffers below what a busy manager needs; raise net.core.rmem_max"
        );
    }
    Ok(socket)
}

/// SO_RCVBUFFORCE (Linux, needs CAP_NET_ADMIN): whether it took.
#[cfg(target_os = "linux")]
fn force_recv_buffer(socket: &std::net::UdpSocket, bytes: usize) -> bool {
    nix::sys::socket::setsockopt(socket, nix::sys::socket::sockopt::RcvBufForce, &bytes).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn force_recv_buffer(_: &std::net::UdpSocket, _: usize) -> bool {
    false
}

impl Endpoint {
    /// Bind UDP `addr`, serving with `server` and calling with `client`. The rustls configs carry
    /// the ALPN (`b"skep/1"`) and must allow TLS 1.3. Must be called inside a Tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
        cfg: TransportConfig,
    ) -> Result<Endpoint, TransportError> {
        let server = cfg.quinn_server(server)?;
        let client = cfg.quinn_client(client)?;
        let quic = quic_endpoint(addr, Some(server)).map_err(|source| TransportError::Bind { addr, source })?;
        Ok(Endpoint::from_parts(quic, client, cfg))
    }

    /// A client-only endpoint on an ephemeral port (dual-stack `[::]:0` where the host allows it,
    /// else `0.0.0.0:0`), e.g. for a node that is joining. Must be called inside a Tokio runtime.
    pub fn client(client: rustls::ClientConfig, cfg: TransportConfig) -> Result<Endpoint, TransportError> {
        let client = cfg.quinn_client(client)?;
        let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
        let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let quic = quic_endpoint(v6, None)
            .or_else(|_| quic_endpoint(v4, None))
            .map_err(|source| TransportError::Bind { addr: v4, source })?;
        Ok(Endpoint::from_parts(quic, client, cfg))
    }

    fn from_parts(quic: quinn::Endpoint, client: quinn::ClientConfig, cfg: TransportConfig) -> Endpoint {
        Endpoint {
            inner: Arc::new(Inner {
                quic,
                client: RwLock::new(client),
                conns: Mutex::new(HashMap::new()),
                cfg,
                closed: AtomicBool::new(false),
                served: Mutex::new(HashMap::new()),
                next_served: Default::default(),
                heard: Mutex::new(HashMap::new()),
                #[cfg(test)]
                dials: Default::default(),
            }),
        }
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        Ok(self.inner.quic.local_addr()?)
    }

    /// This endpoint's limits and timeouts.
    pub fn config(&self) -> &TransportConfig {
        &self.inner.cfg
    }

    /// Replace the TLS identity (certificate renewal, role change): `server` (if given) applies to
    /// new incoming connections, `client` to new outgoing ones. Cached client connections are
    /// dropped, so the next call dials again with the new certificate; calls in flight finish on
    /// their old connection. Both configs are validated before anything changes.
    pub fn set_tls(&self, server: Option<rustls::ServerConfig>, client: rustls::ClientConfig) -> Result<(), TransportError> {
        let server = server.map(|s| self.inner.cfg.quinn_server(s)).transpose()?;
        let client = self.inner.cfg.quinn_client(client)?;
        if let Some(server) = server {
            self.inner.quic.set_server_config(Some(server));
        }
        // Config first, then the cache: a dial racing with us either read the new config or
        // lands in a slot that is no longer in the map.
        *self.inner.client.write().unwrap_or_else(PoisonError::into_inner) = client;
        lock(&self.inner.conns).clear();
        Ok(())
    }

    /// Close the endpoint: every connection (both directions) is closed at once, `serve` returns,
    /// and later calls fail with [`TransportError::Closed`]. The UDP port is released once all
    /// clones are dropped and the peers have been told.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.quic.close(quinn::VarInt::from_u32(0), b"endpoint closed");
        lock(&self.inner.conns).clear();
    }

    /// Close every connection `serve` holds from a caller `which` picks (a node removed from the swarm must not keep
    /// the connections it opened while it was a member); returns how many were closed.
    pub fn close_callers(&self, which: impl Fn(&crate::Peer) -> bool, reason: &str) -> usize {
        let served = lock(&self.inner.served);
        let mut n = 0;
        for (peer, conn) in served.values() {
            if which(peer) {
                conn.close(quinn::VarInt::from_u32(CLOSE_CALLER), reason.as_bytes());
                n += 1;
            }
        }
        n
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addr", &self.inner.quic.local_addr().ok())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoints_socket_gets_the_receive_buffer_the_host_allows() {
        let socket = udp_socket(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let state = quinn::udp::UdpSocketState::new((&socket).into()).unwrap();
        let got = state.recv_buffer_size((&socket).into()).unwrap();
        // with CAP_NET_ADMIN the host's cap does not apply; otherwise the cap is what can be had
        let cap = std::fs::read_to_string("/proc/sys/net/core/rmem_max")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let probe = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
        let may_force = force_recv_buffer(&probe, RECV_BUFFER);
        let want = if may_force { RECV_BUFFER } else { RECV_BUFFER.min(cap) };
        assert!(got >= want, "receive buffer {got} bytes, wanted at least {want} (forced: {may_force}, rmem_max {cap})");
        // far above the kernel's default of 208 KiB that dropped packets under load
        if may_force {
            assert!(got > 4 * 212_992, "{got}");
        }
    }
}
