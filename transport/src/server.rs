//! The serving side: [`Handler`], [`Peer`] and [`Endpoint::serve`].

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use rustls_pki_types::CertificateDer;
use serde::{de::DeserializeOwned, Serialize};
use tokio::{
    sync::{watch, OwnedSemaphorePermit, Semaphore},
    task::JoinSet,
    time::timeout,
};

use crate::{codec, error::Reject, Endpoint, TransportError};

/// What the server knows about a caller.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The caller's UDP address.
    pub addr: SocketAddr,
    /// The certificate chain the caller presented (leaf first), already verified by the server's
    /// rustls client verifier; `None` if it presented none.
    pub certs: Option<Vec<CertificateDer<'static>>>,
}

/// Server-side request handler: one request in, one response out.
///
/// The future is dropped if the caller goes away first (stream stopped or connection lost), so
/// it must not leave shared state half-updated at an `.await`.
pub trait Handler<Req, Resp>: Send + Sync + 'static {
    /// Answer `req` from `peer`.
    fn handle(&self, peer: Peer, req: Req) -> impl Future<Output = Resp> + Send;
}

/// What a stream task needs from the config.
#[derive(Clone, Copy)]
struct Limits {
    max_frame: usize,
    rpc_timeout: Duration,
    connect_timeout: Duration,
    /// For callers without a certificate: see [`Unauthenticated`].
    unauthenticated: Unauthenticated,
}

/// What a caller that presented no certificate gets (it can only be joining: the handler refuses it anything else),
/// so that unauthenticated peers cannot pin the memory and tasks that the cluster's own nodes are allowed.
#[derive(Clone, Copy)]
struct Unauthenticated {
    max_frame: usize,
    streams: usize,
    lifetime: Duration,
    per_source: usize,
}

/// Unauthenticated connections per source address, released on drop.
#[derive(Clone, Default)]
struct SourceCount(Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>);

/// One unauthenticated connection counted against its source.
struct SourceSlot {
    count: SourceCount,
    ip: std::net::IpAddr,
}

impl SourceCount {
    fn take(&self, ip: std::net::IpAddr, max: usize) -> Option<SourceSlot> {
        let mut m = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(SourceSlot { count: self.clone(), ip })
    }
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut m = self.count.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A served connection listed in the endpoint (for [`Endpoint::close_callers`]) while it lives.
struct Registered {
    endpoint: Endpoint,
    key: u64,
}

impl Registered {
    fn new(endpoint: &Endpoint, peer: Peer, conn: quinn::Connection) -> Registered {
        let key = endpoint.inner.next_served.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        crate::endpoint::lock(&endpoint.inner.served).insert(key, (peer, conn));
        Registered { endpoint: endpoint.clone(), key }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        crate::endpoint::lock(&self.endpoint.inner.served).remove(&self.key);
    }
}

/// Application close code for an unauthenticated connection over its source's cap or past its lifetime.
const CLOSE_UNAUTHENTICATED_LIMIT: u32 = 2;

/// Application close code sent to connected callers when `serve` stops.
const CLOSE_SHUTDOWN: u32 = 0;

impl Endpoint {
    /// Accept connections and answer requests with `handler` until `shutdown` resolves or the
    /// endpoint is closed.
    ///
    /// Each connection holds a permit of a `max_connections` semaphore (over it, new connections
    /// are refused); each request stream runs in its own task. A request frame that is malformed
    /// or not complete within `rpc_timeout` gets its stream reset with a [`Reject`] code and is
    /// logged at debug level; the connection and the server carry on.
    ///
    /// On `shutdown`: stop accepting, let requests in flight finish (at most `rpc_timeout`), then
    /// close the connections.
    pub async fn serve<Req, Resp, H>(&self, handler: Arc<H>, shutdown: impl Future<Output = ()> + Send)
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
        H: Handler<Req, Resp>,
    {
        let cfg = &self.inner.cfg;
        let limits = Limits {
            max_frame: cfg.max_frame,
            rpc_timeout: cfg.rpc_timeout,
            connect_timeout: cfg.connect_timeout,
            unauthenticated: Unauthenticated {
                max_frame: cfg.unauthenticated_max_frame.min(cfg.max_frame),
                streams: cfg.unauthenticated_streams.max(1),
                lifetime: cfg.unauthenticated_lifetime,
                per_source: cfg.unauthenticated_per_source,
            },
        };
        let sources = SourceCount::default();
        let permits = Arc::new(Semaphore::new(cfg.max_connections));
        // One signal for all connection tasks; they drain and close when it flips.
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = connections.join_next(), if !connections.is_empty() => log_join(done),
                incoming = self.inner.quic.accept() => {
                    // `None`: the endpoint was closed.
                    let Some(incoming) = incoming else { break };
                    match permits.clone().try_acquire_owned() {
                        Ok(permit) => {
                            connections.spawn(serve_connection(
                                incoming,
                                permit,
                                sources.clone(),
                                self.clone(),
                                handler.clone(),
                                limits,
                                stop_rx.clone(),
                            ));
                        }
                        Err(_) => {
                            tracing::debug!(remote = %incoming.remote_address(), "connection limit reached; refusing");
                            incoming.refuse();
                        }
                    }
                }
            }
        }
        let _ = stop_tx.send(true);
        let drain = async {
            while let Some(done) = connections.join_next().await {
                log_join(done);
            }
        };
        if timeout(limits.rpc_timeout, drain).await.is_err() {
            tracing::debug!("requests still running after shutdown grace period; aborting them");
            connections.shutdown().await;
        }
    }
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done {
        if e.is_panic() {
            tracing::error!(error = %e, "transport task panicked");
        }
    }
}

async fn serve_connection<Req, Resp, H>(
    incoming: quinn::Incoming,
    // Held for the connection's lifetime.
    _permit: OwnedSemaphorePermit,
    sources: SourceCount,
    endpoint: Endpoint,
    handler: Arc<H>,
    mut limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let remote = incoming.remote_address();
    let connecting = match incoming.accept() {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(%remote, error = %e, "cannot accept connection");
            return;
        }
    };
    let conn = match timeout(limits.connect_timeout, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            tracing::debug!(%remote, error = %TransportError::from_connection(e), "handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "handshake timed out");
            return;
        }
    };
    let peer = Peer {
        addr: conn.remote_address(),
        certs: conn
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
            .map(|certs| *certs),
    };
    // a caller without a certificate: small frames, few streams, a bounded life, a few connections per source
    let (_slot, max_streams, deadline) = if peer.certs.is_none() {
        let u = limits.unauthenticated;
        let Some(slot) = sources.take(remote.ip(), u.per_source) else {
            tracing::debug!(%remote, "too many unauthenticated connections from this source; closing");
            conn.close(quinn::VarInt::from_u32(CLOSE_UNAUTHENTICATED_LIMIT), b"too many connections without a certificate");
            return;
        };
        conn.set_max_concurrent_bi_streams(quinn::VarInt::from_u32(u32::try_from(u.streams).unwrap_or(u32::MAX)));
        limits.max_frame = u.max_frame;
        (Some(slot), u.streams, Some(tokio::time::Instant::now() + u.lifetime))
    } else {
        (None, usize::MAX, None)
    };
    let expired = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(expired);
    let _registered = Registered::new(&endpoint, peer.clone(), conn.clone());
    let mut streams = JoinSet::new();
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => {
                stopping = true;
                break;
            }
            () = &mut expired => {
                tracing::debug!(%remote, "unauthenticated connection reached its lifetime; closing");
                streams.abort_all();
                conn.close(quinn::VarInt::from_u32(CLOSE_UNAUTHENTICATED_LIMIT), b"connection without a certificate expired");
                return;
            }
            Some(done) = streams.join_next(), if !streams.is_empty() => log_join(done),
            accepted = conn.accept_bi() => match accepted {
                Ok((mut send, mut recv)) if streams.len() >= max_streams => {
                    // the initial stream credit may exceed the unauthenticated bound: refuse the extra ones here
                    tracing::debug!(%remote, "too many streams without a certificate; refusing one");
                    reject(&mut send, &mut recv, Reject::BadRequest);
                }
                Ok((send, recv)) => {
                    streams.spawn(serve_stream(send, recv, peer.clone(), handler.clone(), limits));
                }
                Err(e) => {
                    tracing::debug!(%remote, reason = %e, "connection ended");
                    break;
                }
            },
        }
    }
    while let Some(done) = streams.join_next().await {
        log_join(done);
    }
    if stopping {
        conn.close(quinn::VarInt::from_u32(CLOSE_SHUTDOWN), b"server shutting down");
    }
}

async fn serve_stream<Req, Resp, H>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    peer: Peer,
    handler: Arc<H>,
    limits: Limits,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
    H: Handler<Req, Resp>,
{
    let remote = peer.addr;
    let req = match timeout(limits.rpc_timeout, codec::read_frame::<Req, _>(&mut recv, limits.max_frame)).await {
        Ok(Ok(req)) => req,
        Ok(Err(e)) => {
            tracing::warn!(%remote, error = %e, "rejecting a request frame that does not decode");
            reject(&mut send, &mut recv, Reject::BadRequest);
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, after = ?limits.rpc_timeout, "request frame not received in time");
            reject(&mut send, &mut recv, Reject::RequestTimeout);
            return;
        }
    };
    // Resolves if the caller stops the stream or the connection dies; nobody would read the answer.
    let caller_gone = send.stopped();
    let resp = tokio::select! {
        resp = handler.handle(peer, req) => resp,
        _ = caller_gone => {
            tracing::debug!(%remote, "caller went away before the response was ready");
            return;
        }
    };
    let frame = match codec::encode(&resp, limits.max_frame) {
        Ok(frame) => frame,
        Err(e) => {
            tracing::warn!(%remote, error = %e, "cannot encode response");
            let why = match e {
                codec::CodecError::MessageTooLarge { .. } => Reject::ResponseTooLarge,
                _ => Reject::Internal,
            };
            reject(&mut send, &mut recv, why);
            return;
        }
    };
    let respond = async {
        send.write_all(&frame).await?;
        let _ = send.finish();
        // Wait until the caller has the whole response, so closing the connection right after
        // (on shutdown) cannot cut it off.
        let _ = send.stopped().await;
        Ok::<_, quinn::WriteError>(())
    };
    match timeout(limits.rpc_timeout, respond).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!(%remote, error = %TransportError::from_write(e), "cannot send response"),
        Err(_) => tracing::debug!(%remote, "response not delivered in time"),
    }
}

fn reject(send: &mut quinn::SendStream, recv: &mut quinn::RecvStream, why: Reject) {
    let code = quinn::VarInt::from_u32(why.code());
    // Either fails only if that side is already closed, which is the goal anyway.
    let _ = send.reset(code);
    let _ = recv.stop(code);
}
