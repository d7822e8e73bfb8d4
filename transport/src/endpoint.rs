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
        let quic = quinn::Endpoint::server(server, addr).map_err(|source| TransportError::Bind { addr, source })?;
        Ok(Endpoint::from_parts(quic, client, cfg))
    }

    /// A client-only endpoint on an ephemeral port (dual-stack `[::]:0` where the host allows it,
    /// else `0.0.0.0:0`), e.g. for a node that is joining. Must be called inside a Tokio runtime.
    pub fn client(client: rustls::ClientConfig, cfg: TransportConfig) -> Result<Endpoint, TransportError> {
        let client = cfg.quinn_client(client)?;
        let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0));
        let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
        let quic = quinn::Endpoint::client(v6)
            .or_else(|_| quinn::Endpoint::client(v4))
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
