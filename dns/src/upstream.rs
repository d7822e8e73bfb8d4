//! Forwarding of the names skep does not own to the host's resolvers.
//!
//! A task's query for a name that is not in its scope of the [`crate::Records`] (an internet name, a name on a network
//! the task is not attached to) is sent on to the resolvers of the *host*: the `nameserver` lines of its
//! `/etc/resolv.conf`. The forwarding sockets are made by the server's tokio tasks, which run on the daemon's own
//! threads, so they live in the daemon's (the host's) network namespace, not in the task's: the task itself may have
//! no route out at all. Loopback resolvers (`127.0.0.0/8`, `::1`) are left out for that reason too: what listens on
//! the host's loopback is often a local cache (systemd-resolved's `127.0.0.53`, a dnsmasq) that is reachable from
//! the daemon but whose presence a task should not depend on; [`Upstream::from_host`] then looks at
//! systemd-resolved's own list of upstream servers, as Docker does.
//!
//! Each forward sends the client's query bytes unchanged except for a fresh random ID, on a fresh socket (so a fresh
//! random source port) connected to the resolver, and accepts only a response with that ID and the same question.
//! Bounds: at most [`MAX_UPSTREAMS`] resolvers, tried in order, [`ATTEMPT_TIMEOUT`] each; at most
//! [`MAX_IN_FLIGHT`] forwards at once over every server that shares this [`Upstream`] (the daemon makes one and
//! clones it into every task's server), beyond which a query is answered SERVFAIL at once rather than queued.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, ResponseCode};
use hickory_server::zone_handler::Queries;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::Semaphore;

use crate::error::Error;

/// At most this many resolvers are used (glibc's `MAXNS`): the first ones listed.
pub const MAX_UPSTREAMS: usize = 3;
/// How long one resolver is given to answer (UDP, and the TCP retry after a truncated answer, together). glibc's
/// stub resolver retries after 5 s, so a dead first resolver still leaves time for the second within one try of the
/// client.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Forwards in flight at once, over all the servers sharing one [`Upstream`]. Each holds a socket and a buffer for
/// at most [`ATTEMPT_TIMEOUT`] × [`MAX_UPSTREAMS`].
pub const MAX_IN_FLIGHT: usize = 1024;

/// The host's resolvers, where queries for names skep does not own are sent. A cheap `Clone` handle: clones share the
/// limit on forwards in flight.
#[derive(Clone, Debug)]
pub struct Upstream {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Tried in order for every forward; empty = every forward is answered SERVFAIL at once.
    servers: Vec<SocketAddr>,
    /// Per resolver, see [`ATTEMPT_TIMEOUT`].
    attempt_timeout: Duration,
    /// One permit per forward in flight; `try_acquire` so that a flood of unanswerable names costs a SERVFAIL each
    /// instead of a growing queue of waiting tasks.
    in_flight: Semaphore,
}

/// Why a forward produced no answer (the client gets SERVFAIL).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ForwardError {
    #[error("no upstream resolver")]
    NoUpstream,
    #[error("{MAX_IN_FLIGHT} forwards already in flight")]
    Busy,
    #[error("no upstream resolver answered: {0}")]
    Failed(#[source] io::Error),
}

impl Upstream {
    /// Forward to `servers` (the first [`MAX_UPSTREAMS`] of them, kept as given: loopback addresses too, which is what
    /// tests use), with the default limits.
    pub fn new(servers: impl IntoIterator<Item = SocketAddr>) -> Self {
        Self::with_limits(servers, ATTEMPT_TIMEOUT, MAX_IN_FLIGHT)
    }

    /// [`Upstream::new`] with other limits than [`ATTEMPT_TIMEOUT`] and [`MAX_IN_FLIGHT`].
    pub fn with_limits(
        servers: impl IntoIterator<Item = SocketAddr>,
        attempt_timeout: Duration,
        max_in_flight: usize,
    ) -> Self {
        let mut list: Vec<SocketAddr> = Vec::new();
        for server in servers {
            if list.len() == MAX_UPSTREAMS {
                break;
            }
            if !list.contains(&server) {
                list.push(server);
            }
        }
        Self {
            inner: Arc::new(Inner {
                servers: list,
                attempt_timeout,
                in_flight: Semaphore::new(max_in_flight.min(Semaphore::MAX_PERMITS)),
            }),
        }
    }

    /// No resolver: names skep does not own get SERVFAIL at once.
    pub fn none() -> Self {
        Self::new([])
    }

    /// The resolvers of `text` in resolv.conf(5) format: its `nameserver` lines, port 53, loopback and unspecified
    /// addresses left out (see the module doc), at most [`MAX_UPSTREAMS`]. Lines that do not parse are skipped
    /// (among them IPv6 link-local addresses with a `%zone`, which a socket outside that zone could not use).
    pub fn parse_resolv_conf(text: &str) -> Self {
        Self::new(resolv_conf_servers(text))
    }

    /// [`Upstream::parse_resolv_conf`] of the file at `path`.
    pub fn from_resolv_conf(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| Error::ResolvConf { path: path.into(), source })?;
        Ok(Self::parse_resolv_conf(&text))
    }

    /// The host's resolvers: `/etc/resolv.conf`, or when that names only loopback resolvers (systemd-resolved's stub
    /// at `127.0.0.53`), the servers systemd-resolved itself uses, from `/run/systemd/resolve/resolv.conf`. No
    /// resolver at all (or neither file readable) gives [`Upstream::none`], with a warning.
    pub fn from_host() -> Self {
        const FILES: [&str; 2] = ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"];
        let mut errors = Vec::new();
        for path in FILES {
            match Self::from_resolv_conf(path) {
                Ok(upstream) if !upstream.servers().is_empty() => return upstream,
                Ok(_) => errors.push(format!("{path}: no usable nameserver")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        tracing::warn!(tried = ?errors, "no upstream DNS resolver: only cluster names will resolve in tasks");
        Self::none()
    }

    /// The resolvers used, in the order they are tried.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.inner.servers
    }

    /// Sends the query `query` (the client's bytes; its ID is replaced) to the resolvers in turn and returns the first
    /// answer that is not SERVFAIL or REFUSED (or the last such answer when every resolver gives one). `client_tcp`:
    /// the client asked over TCP, so a truncated UDP answer is asked again over TCP. `max_udp`: the client's UDP
    /// payload size, the most a UDP answer can be (the query carries the client's EDNS size unchanged).
    pub(crate) async fn forward(
        &self,
        query: &[u8],
        questions: &Queries,
        client_tcp: bool,
        max_udp: usize,
    ) -> Result<Message, ForwardError> {
        let inner = &*self.inner;
        if inner.servers.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let _permit = inner.in_flight.try_acquire().map_err(|_| ForwardError::Busy)?;
        if query.len() < 12 {
            return Err(ForwardError::Failed(io::Error::new(
                io::ErrorKind::InvalidInput,
                "query shorter than a header",
            )));
        }
        let id: u16 = rand::random();
        let mut query = query.to_vec();
        query[..2].copy_from_slice(&id.to_be_bytes());
        let expect = Expect { id, questions };

        let mut failed_answer = None;
        let mut last_error = io::Error::new(io::ErrorKind::TimedOut, "no attempt");
        for &server in &inner.servers {
            let attempt = exchange(server, &query, &expect, client_tcp, max_udp);
            match tokio::time::timeout(inner.attempt_timeout, attempt).await {
                Ok(Ok(answer))
                    if matches!(answer.metadata.response_code, ResponseCode::ServFail | ResponseCode::Refused) =>
                {
                    failed_answer = Some(answer);
                }
                Ok(Ok(answer)) => return Ok(answer),
                Ok(Err(e)) => {
                    tracing::debug!(%server, error = %e, "upstream DNS resolver failed");
                    last_error = e;
                }
                Err(_) => {
                    tracing::debug!(%server, "upstream DNS resolver timed out");
                    last_error = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("{server} gave no answer in {:?}", inner.attempt_timeout),
                    );
                }
            }
        }
        failed_answer.ok_or(ForwardError::Failed(last_error))
    }
}

/// What an upstream answer must match to be taken.
struct Expect<'a> {
    id: u16,
    questions: &'a Queries,
}

impl Expect<'_> {
    fn matches(&self, answer: &Message) -> bool {
        let asked = self.questions.queries();
        answer.metadata.id == self.id
            && answer.metadata.message_type == MessageType::Response
            && answer.queries.len() == asked.len()
            && answer.queries.iter().zip(asked).all(|(got, asked)| {
                // `Name`'s equality ignores case, so a resolver that changes the case (0x20) still matches
                got.name() == asked.original().name()
                    && got.query_type() == asked.query_type()
                    && got.query_class() == asked.query_class()
            })
    }
}

/// One resolver: UDP, then TCP when the answer was truncated and the client can take a long answer.
async fn exchange(
    server: SocketAddr,
    query: &[u8],
    expect: &Expect<'_>,
    client_tcp: bool,
    max_udp: usize,
) -> io::Result<Message> {
    let answer = exchange_udp(server, query, expect, max_udp).await?;
    if answer.metadata.truncation && client_tcp {
        return exchange_tcp(server, query, expect).await;
    }
    Ok(answer)
}

async fn exchange_udp(server: SocketAddr, query: &[u8], expect: &Expect<'_>, max_udp: usize) -> io::Result<Message> {
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await?;
    // connected: the kernel drops datagrams from any other address, and an ICMP "port unreachable" fails the
    // receive at once instead of waiting out the timeout
    socket.connect(server).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; max_udp.clamp(512, u16::MAX as usize)];
    loop {
        let len = socket.recv(&mut buf).await?;
        match Message::from_vec(&buf[..len]) {
            Ok(answer) if expect.matches(&answer) => return Ok(answer),
            // a stray or forged datagram: keep waiting for the real answer (the caller's timeout bounds this)
            _ => continue,
        }
    }
}

async fn exchange_tcp(server: SocketAddr, query: &[u8], expect: &Expect<'_>) -> io::Result<Message> {
    let mut stream = TcpStream::connect(server).await?;
    let len = u16::try_from(query.len()).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "query too long"))?;
    let mut framed = Vec::with_capacity(2 + query.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(query);
    stream.write_all(&framed).await?;
    loop {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await?;
        // the u16 length prefix is the bound: at most 64 KiB per message
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut buf).await?;
        match Message::from_vec(&buf) {
            Ok(answer) if expect.matches(&answer) => return Ok(answer),
            _ => continue,
        }
    }
}

/// The usable `nameserver` addresses of a resolv.conf text, in order, before the [`MAX_UPSTREAMS`] cut.
fn resolv_conf_servers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = words.next()?.parse().ok()?;
            (!ip.is_loopback() && !ip.is_unspecified()).then(|| SocketAddr::new(ip, 53))
        })
        .collect()
}

#[cfg(test)]
mod tests;
