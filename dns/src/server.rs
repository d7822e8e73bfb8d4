//! One task's DNS server: a UDP loop of ours and hickory's [`Server`] for TCP, both answering from the current
//! [`Records`] or forwarding through the [`Upstream`].
//!
//! - `handler`: the decision per query (shared by both transports) and answers through hickory's encoder.
//! - `udp`: the UDP receive loop, with local answers written straight into the datagram (see its doc for why it is
//!   not hickory's `register_socket`).
//!
//! What is answered how:
//!
//! | question | answer |
//! |---|---|
//! | a name in the task's scope of the records, type A (or ANY) | its addresses, rotated by one per query, TTL [`ANSWER_TTL`], AA |
//! | a name in scope, any other type (AAAA, MX, …) | NOERROR with no records: the name exists, it has no such data |
//! | any other name, or class other than IN | forwarded upstream; the answer relayed with the client's ID; SERVFAIL when no resolver answers |
//! | several questions, or none | FORMERR |
//! | an opcode other than QUERY | NOTIMP |
//! | EDNS version above 0 | BADVERS |
//! | not a DNS message | dropped when shorter than a header, else FORMERR |
//! | a response (QR set) | dropped: never answered, so no reflection loops |
//! | an answer too long for the client's UDP size | cut, with TC set: the client asks again over TCP |

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::counters::QueryCounters;
use crate::error::Error;
use crate::records::Records;
use crate::upstream::Upstream;

mod handler;
mod udp;

use handler::{Handler, TcpHandler};

/// TTL of every answer skep gives from its records: 1 second. The records follow the cluster store at once (a task
/// stops, a service is removed or changes its endpoint mode), and an answer cached for longer by a client would keep
/// sending it to an address that is gone: dnsrr and `tasks.<service>` answers change with every task replacement.
/// The VIP is stable, but one TTL for all keeps it simple. Docker uses 600 s; caches inside tasks (nscd, a JVM, a
/// local dnsmasq) would then serve dead task addresses for ten minutes. Clients re-ask at most once a second per name,
/// which this server answers from memory.
pub const ANSWER_TTL: u32 = 1;
/// A TCP connection that sends no complete query for this long is closed (hickory's per-connection timeout, re-armed
/// after each query). DNS over TCP from a stub resolver is one query, or a few pipelined ones, right after connecting.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(5);
/// Responses queued per TCP connection before hickory's writer applies back-pressure.
const TCP_RESPONSE_QUEUE: usize = 32;
/// The UDP payload size skep advertises in its EDNS answers (the DNS flag day 2020 value, no IP fragmentation).
const EDNS_PAYLOAD: u16 = 1232;

/// Serves DNS on `udp` and `tcp` (bound sockets, normally 127.0.0.11:53 inside a task's network namespace, made by a
/// thread that entered it) for a task attached to the networks `scope`. Each query reads the table current in
/// `records` (so a `send` on its `watch::Sender` is seen by the next query, with no caching of answers); names not
/// found there go to `upstream`. Every query answered is counted in `counters` (shared by the daemon's servers).
///
/// Must be called from within the tokio runtime (with IO enabled) that is to run the server: the server's tasks run
/// there, and the forwarding sockets are made by them, in the namespace of that runtime's threads (the daemon's).
/// The server stops when the returned [`DnsServer`] is shut down or dropped (a dropped `watch::Sender` only freezes
/// the table at its last value).
pub fn serve(
    udp: std::net::UdpSocket,
    tcp: std::net::TcpListener,
    scope: Vec<String>,
    records: watch::Receiver<Arc<Records>>,
    upstream: Upstream,
    counters: QueryCounters,
) -> Result<DnsServer, Error> {
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(Error::NoRuntime);
    }
    let socket_err = |what| move |source| Error::Socket { what, source };
    udp.set_nonblocking(true).map_err(socket_err("udp"))?;
    tcp.set_nonblocking(true).map_err(socket_err("tcp"))?;
    let udp = tokio::net::UdpSocket::from_std(udp).map_err(socket_err("udp"))?;
    let tcp = tokio::net::TcpListener::from_std(tcp).map_err(socket_err("tcp"))?;
    let udp_addr = udp.local_addr().map_err(socket_err("udp"))?;
    let tcp_addr = tcp.local_addr().map_err(socket_err("tcp"))?;

    let handler = Arc::new(Handler { scope, records, upstream, rotation: AtomicUsize::new(0), counters });
    let mut tcp_server = Server::new(TcpHandler(handler.clone()));
    tcp_server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_QUEUE);
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(run(udp, handler, tcp_server, stopped));
    Ok(DnsServer { stop: Some(stop), task: Some(task), udp_addr, tcp_addr })
}

/// Runs both transports until `stop` fires (or its sender is dropped), or one of them fails, then stops both: the
/// UDP loop ends its forwards, hickory stops accepting and aborts its connections.
async fn run(
    udp: tokio::net::UdpSocket,
    handler: Arc<Handler>,
    mut tcp_server: Server<TcpHandler>,
    mut stop: oneshot::Receiver<()>,
) {
    let (stop_udp, udp_stopped) = oneshot::channel();
    let udp = udp::serve_udp(udp, handler, udp_stopped);
    tokio::pin!(udp);
    let mut udp_done = false;
    tokio::select! {
        _ = &mut stop => {}
        result = tcp_server.block_until_done() => {
            if let Err(error) = result {
                tracing::warn!(%error, "embedded DNS server (TCP) stopped");
            }
        }
        () = &mut udp => udp_done = true,
    }
    let _ = stop_udp.send(());
    if !udp_done {
        udp.await;
    }
    if let Err(error) = tcp_server.shutdown_gracefully().await {
        tracing::debug!(%error, "embedded DNS server shut down with an error");
    }
}

/// The handle of a running server ([`serve`]). Dropping it stops the server (without waiting);
/// [`DnsServer::shutdown`] stops it and waits until its sockets are closed.
#[derive(Debug)]
pub struct DnsServer {
    /// Fired (or dropped) to stop the server task.
    stop: Option<oneshot::Sender<()>>,
    /// The server task; awaited by `shutdown` so that the caller knows the sockets are closed.
    task: Option<JoinHandle<()>>,
    udp_addr: SocketAddr,
    tcp_addr: SocketAddr,
}

impl DnsServer {
    /// The address the UDP socket is bound to.
    pub fn udp_addr(&self) -> SocketAddr {
        self.udp_addr
    }

    /// The address the TCP listener is bound to.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
    }

    /// Stops the server and returns once its tasks have ended and its sockets are closed. Queries being answered or
    /// forwarded are dropped unanswered.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

#[cfg(test)]
mod tests;
