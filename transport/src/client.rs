//! The calling side: [`Endpoint::call`], [`Endpoint::call_with`] and the connection cache.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use serde::{de::DeserializeOwned, Serialize};
use tokio::time::{timeout, timeout_at, Instant};

use crate::{
    codec,
    endpoint::{lock, ConnSlot},
    Endpoint, TransportError,
};

/// Application close code for a connection we abandon because the peer went silent.
const CLOSE_UNRESPONSIVE: u32 = 1;

impl Endpoint {
    /// One RPC to `addr`, whose certificate must be valid for `server_name`, over the cached
    /// connection (dialed on first use, redialed once it has failed). Bounded by `rpc_timeout`
    /// as a whole, the handshake also by `connect_timeout`.
    pub async fn call<Req, Resp>(&self, addr: SocketAddr, server_name: &str, req: &Req) -> Result<Resp, TransportError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        self.call_until(addr, server_name, req, Instant::now() + self.inner.cfg.rpc_timeout).await
    }

    /// [`Endpoint::call`] bounded by `deadline` (at most `rpc_timeout` from now) instead of `rpc_timeout`. Callers
    /// with a tighter bound must pass it here rather than drop the call at their own timeout: a call given up from
    /// outside cannot tell a dead peer from a slow one, so the cached connection to a peer that was killed and
    /// restarted would stay, and every later call on it time out again, until QUIC's idle timeout. Here, total
    /// silence until the deadline closes the connection (see `exchange`), and the next call redials.
    pub async fn call_until<Req, Resp>(
        &self,
        addr: SocketAddr,
        server_name: &str,
        req: &Req,
        deadline: Instant,
    ) -> Result<Resp, TransportError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let frame = codec::encode(req, self.inner.cfg.max_frame)?;
        let deadline = deadline.min(Instant::now() + self.inner.cfg.rpc_timeout);
        let conn = timeout_at(deadline, self.cached_connection(addr, server_name))
            .await
            .map_err(|_| TransportError::Timeout)??;
        // A failed connection stays in the cache with its close reason set; the next call sees
        // that and redials.
        self.exchange(&conn, deadline, &frame).await
    }

    /// One RPC over a fresh connection made with a one-off client config (e.g. a joining node's
    /// verifier that pins the CA digest from its join token). The connection is closed afterwards
    /// and never cached.
    pub async fn call_with<Req, Resp>(
        &self,
        addr: SocketAddr,
        server_name: &str,
        client: rustls::ClientConfig,
        req: &Req,
    ) -> Result<Resp, TransportError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let frame = codec::encode(req, self.inner.cfg.max_frame)?;
        let client = self.inner.cfg.quinn_client(client)?;
        let deadline = Instant::now() + self.inner.cfg.rpc_timeout;
        let conn = timeout_at(deadline, self.dial(client, addr, server_name))
            .await
            .map_err(|_| TransportError::Timeout)??;
        let res = self.exchange(&conn, deadline, &frame).await;
        conn.close(quinn::VarInt::from_u32(0), b"done");
        res
    }

    /// The cached connection for `(addr, server_name)`, dialing if there is none or it has closed.
    async fn cached_connection(&self, addr: SocketAddr, server_name: &str) -> Result<quinn::Connection, TransportError> {
        if self.is_closed() {
            return Err(TransportError::Closed);
        }
        let key = (addr, server_name.to_owned());
        let slot: ConnSlot = lock(&self.inner.conns).entry(key.clone()).or_default().clone();
        let mut cached = slot.lock().await;
        if let Some(conn) = cached.as_ref() {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
        }
        let client = self.inner.client.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        match self.dial(client, addr, server_name).await {
            Ok(conn) => {
                *cached = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                *cached = None;
                drop(cached);
                // Don't keep entries for peers we cannot reach; waiters on this slot dial themselves.
                let mut conns = lock(&self.inner.conns);
                if conns.get(&key).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                    conns.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// QUIC + TLS handshake, bounded by `connect_timeout`.
    async fn dial(&self, client: quinn::ClientConfig, addr: SocketAddr, server_name: &str) -> Result<quinn::Connection, TransportError> {
        if self.is_closed() {
            return Err(TransportError::Closed);
        }
        #[cfg(test)]
        self.inner.dials.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let connecting = self.inner.quic.connect_with(client, addr, server_name).map_err(|e| match e {
            quinn::ConnectError::EndpointStopping => TransportError::Closed,
            e => TransportError::Connect(e),
        })?;
        let limit = self.inner.cfg.connect_timeout;
        match timeout(limit, connecting).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(self.local_or(TransportError::from_connection(e))),
            // Dropping `connecting` abandons the handshake.
            Err(_) => Err(TransportError::ConnectTimeout(limit)),
        }
    }

    /// Write one request frame on a new stream and read one response frame, by `deadline`.
    async fn exchange<Resp: DeserializeOwned>(
        &self,
        conn: &quinn::Connection,
        deadline: Instant,
        frame: &[u8],
    ) -> Result<Resp, TransportError> {
        let received_before = heard_from(conn);
        self.note_heard(conn, received_before);
        let call = exchange(conn, frame, self.inner.cfg.max_frame);
        tokio::pin!(call);
        // A live peer acknowledges our request within milliseconds, even when its handler is slow. Total silence
        // (first for `silence_timeout`, or for the whole call) means it is gone, e.g. killed or restarted without
        // telling us: close the connection so the next call redials instead of waiting out the idle timeout.
        //
        // Silence is judged only when this process was able to look: if the probe fired late, or the runtime is so
        // busy that a yield takes a while to come back, what the peer sent may still sit unread in our socket or in
        // the queue of the task that reads it, so the probe is taken again shortly, up to the call's deadline. A
        // starved worker used to drop healthy connections to its managers this way, and redial them (a TLS
        // handshake each) just when the managers were busiest.
        let mut probe = first_probe(Instant::now(), self.inner.cfg.silence_timeout, deadline);
        let res = loop {
            tokio::select! {
                res = &mut call => break Some(res),
                _ = tokio::time::sleep_until(probe) => {}
            }
            let heard = || heard_from(conn) != received_before;
            if heard() {
                break timeout_at(deadline, &mut call).await.ok();
            }
            let late = Instant::now().saturating_duration_since(probe) > PROBE_SLACK;
            let t = Instant::now();
            // a yield comes back after the work queued before it, and (in tokio's scheduler since 1.24, not a
            // documented guarantee) after the runtime has polled its I/O driver once more
            tokio::task::yield_now().await;
            let busy = t.elapsed() > BUSY_YIELD;
            if heard() {
                break timeout_at(deadline, &mut call).await.ok();
            }
            if Instant::now() >= deadline {
                break None;
            }
            if !late && !busy {
                // before the deadline (a call shorter than `silence_timeout`, see `first_probe`), only a peer that has
                // said nothing on this connection for `silence_timeout` across calls is given up: one slow to
                // acknowledge (a saturated host) keeps its connection, and this call waits for its deadline
                let silent = self.note_heard(conn, heard_from(conn)).elapsed();
                if silent >= self.inner.cfg.silence_timeout {
                    break None;
                }
                probe = deadline;
                continue;
            }
            probe = (Instant::now() + PROBE_SLACK).min(deadline);
        };
        match res {
            Some(res) => res.map_err(|e| self.local_or(e)),
            None => {
                if heard_from(conn) == received_before {
                    tracing::debug!(peer = %conn.remote_address(), "peer silent; dropping connection");
                    conn.close(quinn::VarInt::from_u32(CLOSE_UNRESPONSIVE), b"peer unresponsive");
                    lock(&self.inner.heard).remove(&conn.stable_id());
                }
                Err(TransportError::Timeout)
            }
        }
    }

    /// Records that `count` (see [`heard_from`]) was heard from the peer on `conn` by now; returns since when the
    /// count has been seen unchanged (now, if it changed or the connection is new here).
    fn note_heard(&self, conn: &quinn::Connection, count: u64) -> Instant {
        let now = Instant::now();
        let mut heard = lock(&self.inner.heard);
        if heard.len() >= HEARD_PRUNE_AT && !heard.contains_key(&conn.stable_id()) {
            // connections unused for longer than any call lasts are closed or idle; forgetting one only makes the
            // next call count its silence from then
            let keep = self.inner.cfg.rpc_timeout.max(self.inner.cfg.idle_timeout);
            heard.retain(|_, h| now.saturating_duration_since(h.looked) < keep);
        }
        let h = heard.entry(conn.stable_id()).or_insert(Heard { count, since: now, looked: now });
        if h.count != count {
            *h = Heard { count, since: now, looked: now };
        }
        h.looked = now;
        h.since
    }

    /// Failures caused by our own `close` read as `Closed`.
    fn local_or(&self, e: TransportError) -> TransportError {
        if self.is_closed() {
            TransportError::Closed
        } else {
            e
        }
    }
}

/// When a call made now and bounded by `deadline` first judges the peer's silence: after `silence` (see
/// [`crate::TransportConfig::silence_timeout`]), but for a call shorter than that at 7/8 of it, not at its deadline,
/// where it gives up the connection only if the peer has said nothing on it for `silence` across calls. A caller that
/// also bounds the call with a timeout of its own drops it as the deadline passes, which can come before the check at
/// the deadline runs: openraft bounds each AppendEntries by the heartbeat interval and passes that same bound down, so
/// a connection that went silent under a network cut was never closed by those calls. It stayed cached with QUIC's
/// loss backoff grown over the cut, and the leader's replication to that follower went on timing out for seconds after
/// the cut healed (until QUIC's next probe: 5 s in docs/design/faults.md, finding 2). A call shorter than
/// [`MIN_SILENCE`] is judged at its deadline, as before: a live peer's acknowledgement may take its ACK delay.
fn first_probe(now: Instant, silence: Duration, deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let early = (left - left / 8).max(MIN_SILENCE).min(left);
    now + silence.min(early)
}

/// See [`first_probe`]: QUIC's default maximum ACK delay (25 ms) and a round trip on a busy host, with room to spare.
const MIN_SILENCE: Duration = Duration::from_millis(100);

/// What a call last saw of one connection's peer (`Inner::heard`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Heard {
    /// [`heard_from`] then.
    count: u64,
    /// Since when `count` has been seen unchanged.
    since: Instant,
    /// When a call last looked.
    looked: Instant,
}

/// Entries of `Inner::heard` at which unused ones are dropped (a leader holds a connection per node: thousands).
const HEARD_PRUNE_AT: usize = 4096;

/// A silence probe that fires later than this was late because this process was busy: it is taken again this much
/// later.
const PROBE_SLACK: Duration = Duration::from_millis(100);
/// A yield that takes longer than this to come back means the runtime has a queue of work (which may hold the
/// peer's reply).
const BUSY_YIELD: Duration = Duration::from_millis(5);

/// What the peer has said on this connection, counted only from packets that decrypted: acknowledgements (a live
/// peer acknowledges our request within its ACK delay), stream data and pings. Raw datagrams do not do: a peer
/// restarted on the same address answers our packets with stateless resets made with its new key, which this
/// connection drops as not its own but would still count as received.
fn heard_from(conn: &quinn::Connection) -> u64 {
    let frames = conn.stats().frame_rx;
    frames.acks + frames.stream + frames.ping
}

async fn exchange<Resp: DeserializeOwned>(conn: &quinn::Connection, frame: &[u8], max: usize) -> Result<Resp, TransportError> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(TransportError::from_connection)?;
    send.write_all(frame).await.map_err(TransportError::from_write)?;
    // Fails only if the stream is already reset; the read below reports why.
    let _ = send.finish();
    codec::read_frame(&mut recv, max).await.map_err(TransportError::from_read)
}

#[cfg(test)]
mod probe_tests {
    use super::*;

    #[test]
    fn silence_is_judged_before_a_short_calls_deadline_and_after_the_silence_timeout_of_a_long_one() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        // openraft's AppendEntries: 250 ms, judged at 7/8 of it, before the caller's own timeout drops the call
        assert_eq!(first_probe(now, ms(1000), now + ms(250)) - now, ms(218) + Duration::from_micros(750));
        // a long call: after the silence timeout
        assert_eq!(first_probe(now, ms(1000), now + ms(5000)) - now, ms(1000));
        // a short one: no earlier than MIN_SILENCE, and never past its deadline
        assert_eq!(first_probe(now, ms(1000), now + ms(110)) - now, MIN_SILENCE);
        assert_eq!(first_probe(now, ms(1000), now + ms(60)) - now, ms(60));
        assert_eq!(first_probe(now, ms(1000), now) - now, Duration::ZERO);
    }
}
