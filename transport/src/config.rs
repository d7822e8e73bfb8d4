//! [`TransportConfig`] and its translation into quinn/rustls configuration.

use std::{sync::Arc, time::Duration};

use crate::{codec::DEFAULT_MAX_FRAME, TransportError};

/// Limits and timeouts of an [`Endpoint`](crate::Endpoint).
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Largest frame payload sent or accepted. Bounds the memory one request can pin.
    pub max_frame: usize,
    /// Bound on a whole call (connect + write + read); also the server's bound on reading a
    /// request and writing its response, so a stalled peer cannot hold a stream task forever.
    pub rpc_timeout: Duration,
    /// Bound on a QUIC + TLS handshake. A down peer is reported after this, not after `rpc_timeout`.
    pub connect_timeout: Duration,
    /// Server: concurrent connections. Over it, new connections are refused.
    pub max_connections: usize,
    /// Concurrent RPCs (bidirectional streams) a peer may open on one connection.
    pub max_streams_per_connection: u32,
    /// A connection with no traffic for this long is dead. Keep-alives are sent every fifth of it
    /// (2 s by default), so a live idle connection never times out and a dead peer is noticed.
    pub idle_timeout: Duration,
    /// A call whose peer sends nothing at all (not even an acknowledgement) for this long after the request fails,
    /// and its connection is closed so the next call redials. This, not a short `idle_timeout` with keep-alives every
    /// few hundred milliseconds on every connection, is what notices a dead peer quickly: it costs nothing while
    /// connections are idle.
    pub silence_timeout: Duration,
    /// Server: a caller without a certificate (a joining node) sends frames of at most this many bytes...
    pub unauthenticated_max_frame: usize,
    /// ...on at most this many streams at once...
    pub unauthenticated_streams: usize,
    /// ...over a connection that lives at most this long...
    pub unauthenticated_lifetime: Duration,
    /// ...and holds at most this many such connections per source address at once.
    pub unauthenticated_per_source: usize,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            max_frame: DEFAULT_MAX_FRAME,
            rpc_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            max_connections: 1024,
            max_streams_per_connection: 256,
            idle_timeout: Duration::from_secs(10),
            silence_timeout: Duration::from_secs(1),
            unauthenticated_max_frame: 64 * 1024,
            unauthenticated_streams: 2,
            unauthenticated_lifetime: Duration::from_secs(30),
            unauthenticated_per_source: 32,
        }
    }
}

impl TransportConfig {
    fn quinn_transport(&self) -> Result<Arc<quinn::TransportConfig>, TransportError> {
        if self.idle_timeout.is_zero() {
            return Err(TransportError::Config("idle_timeout must be positive"));
        }
        let idle = quinn::IdleTimeout::try_from(self.idle_timeout)
            .map_err(|_| TransportError::Config("idle_timeout is too large"))?;
        let mut t = quinn::TransportConfig::default();
        t.max_concurrent_bidi_streams(quinn::VarInt::from_u32(self.max_streams_per_connection))
            .max_concurrent_uni_streams(quinn::VarInt::from_u32(0))
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(self.idle_timeout / 5));
        Ok(Arc::new(t))
    }

    pub(crate) fn quinn_server(&self, tls: rustls::ServerConfig) -> Result<quinn::ServerConfig, TransportError> {
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls)?;
        let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        cfg.transport_config(self.quinn_transport()?);
        Ok(cfg)
    }

    pub(crate) fn quinn_client(&self, tls: rustls::ClientConfig) -> Result<quinn::ClientConfig, TransportError> {
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
        let mut cfg = quinn::ClientConfig::new(Arc::new(crypto));
        cfg.transport_config(self.quinn_transport()?);
        Ok(cfg)
    }
}
