//! The UDP side: skep's own receive loop in place of hickory's `Server::register_socket`.
//!
//! Why not hickory's: it spawns a tokio task per datagram and passes every answer through a channel to a writer, and
//! the profile of the benchmark (bench/dns) put that machinery at a fifth of the server's CPU time. Here a query is
//! decided by the same [`Handler`] as over TCP, and a local answer (the hot path: service names) is written into a
//! reused buffer and sent from the loop itself, with no task, channel or per-answer record. The usual stub query
//! (one question, no EDNS, see [`PlainQuery`]) for one of our names is read straight from the datagram; every other
//! datagram is parsed by hickory ([`Request::from_bytes`]) and goes through [`Handler::plan`]. Only forwards get a
//! task each (they wait on the upstream resolver), tracked in a `JoinSet` so that shutdown ends them; their answers
//! go through hickory's encoder ([`UdpResponder`]).
//!
//! A local answer has at most a question (the client's bytes, echoed), A records whose owner is a compression pointer
//! to that question, and an OPT record when the query had one. It never exceeds the client's UDP size: the answers
//! that do not fit are left out and TC is set, and the client asks again over TCP.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::{Record, RecordType};
use hickory_server::proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::server::{Request, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::MessageResponse;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use super::handler::{Handler, Plan};
use super::{ANSWER_TTL, EDNS_PAYLOAD};
use crate::records::{MAX_LABEL_LEN, MAX_NAME_LEN};

/// The largest query read: bigger datagrams are cut to this and then fail to parse (FORMERR). A stub's query is well
/// under 512 bytes; EDNS options could make one longer, but not this long.
const MAX_QUERY: usize = 4096;
/// The UDP size without EDNS (RFC 1035).
const PLAIN_UDP: usize = 512;
/// An OPT record with no options: root name, type, class (size), extended rcode, version, flags, rdata length.
const OPT_LEN: usize = 11;
/// An A answer: pointer to the question name, type, class, TTL, rdata length, address.
const A_LEN: usize = 16;

/// Serves `socket` until `stop` fires (or its sender is dropped), then ends the forwards in flight, so the socket is
/// closed when this returns.
pub(super) async fn serve_udp(socket: UdpSocket, handler: Arc<Handler>, mut stop: oneshot::Receiver<()>) {
    let socket = Arc::new(socket);
    let mut forwards = JoinSet::new();
    let mut buf = vec![0u8; MAX_QUERY];
    let mut out = Vec::with_capacity(PLAIN_UDP);
    loop {
        let received = tokio::select! {
            biased;
            _ = &mut stop => break,
            received = socket.recv_from(&mut buf) => received,
        };
        while forwards.try_join_next().is_some() {}
        let (len, src) = match received {
            Ok(received) => received,
            Err(error) if matches!(error.kind(), io::ErrorKind::NotConnected | io::ErrorKind::ConnectionAborted) => {
                tracing::warn!(%error, "DNS UDP socket failed; UDP service stopped");
                break;
            }
            Err(error) => {
                tracing::debug!(%error, "DNS UDP receive error");
                continue;
            }
        };
        if !answerable(src) {
            continue;
        }
        let datagram = &buf[..len];
        // the usual stub query for one of our names: answered without building a hickory request
        if let Some(query) = PlainQuery::parse(datagram) {
            if let Some(addrs) = query.local_answer(&handler) {
                handler.count_local(ResponseCode::NoError);
                let reply = Reply::plain(&query, handler.recursion_available());
                reply.encode(ResponseCode::NoError, &addrs, &mut out);
                send(&socket, &out, src).await;
                continue;
            }
        }
        let request = match Request::from_bytes(datagram.to_vec(), src, Protocol::Udp) {
            Ok(request) => request,
            Err(_) => {
                // hickory's server does the same: no answer without a header, FORMERR when the header is readable
                if encode_formerr(datagram, &mut out) {
                    handler.count_local(ResponseCode::FormErr);
                    send(&socket, &out, src).await;
                }
                continue;
            }
        };
        if request.metadata.message_type != MessageType::Query {
            continue; // never answer a response: no reflection loops
        }
        match handler.plan(&request) {
            Plan::Local(code, addrs) => {
                handler.count_local(code);
                Reply::to(&request, handler.recursion_available()).encode(code, &addrs, &mut out);
                send(&socket, &out, src).await;
            }
            Plan::Forward => {
                let handler = handler.clone();
                let responder = UdpResponder { socket: socket.clone(), dst: src };
                forwards.spawn(async move {
                    if let Err(error) = handler.respond(&request, Plan::Forward, responder).await {
                        tracing::debug!(%error, %src, "DNS response not sent");
                    }
                });
            }
        }
    }
    forwards.shutdown().await;
}

async fn send(socket: &UdpSocket, bytes: &[u8], dst: SocketAddr) {
    if let Err(error) = socket.send_to(bytes, dst).await {
        tracing::debug!(%error, %dst, "DNS UDP send failed");
    }
}

/// hickory's rule: no answer to port 0, or to an unspecified or broadcast address.
fn answerable(src: SocketAddr) -> bool {
    src.port() != 0
        && match src.ip() {
            IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_broadcast(),
            IpAddr::V6(ip) => !ip.is_unspecified(),
        }
}

/// A query as stub resolvers send it (glibc and musl without `edns0`): opcode QUERY, one question, nothing else, the
/// name as plain labels. Read straight from the datagram; anything else (EDNS, compression, trailing bytes, several
/// sections) is left to hickory's parser.
struct PlainQuery<'a> {
    /// The query's header (12 bytes).
    header: &'a [u8],
    /// The question section: the name's labels, the root label, type and class.
    question: &'a [u8],
}

impl<'a> PlainQuery<'a> {
    fn parse(datagram: &'a [u8]) -> Option<Self> {
        let (header, rest) = datagram.split_at_checked(12)?;
        // QR = 0 and opcode = QUERY; qdcount 1, an/ns/ar counts 0
        if header[2] & 0xf8 != 0 || header[4..12] != [0, 1, 0, 0, 0, 0, 0, 0] {
            return None;
        }
        let mut at = 0;
        loop {
            let len = usize::from(*rest.get(at)?);
            if len == 0 {
                break;
            }
            // a compression pointer (or a reserved label type) is hickory's to read
            if len > MAX_LABEL_LEN {
                return None;
            }
            at += 1 + len;
            if at + 1 > MAX_NAME_LEN {
                return None;
            }
        }
        // root label, then type and class, then the end of the datagram
        let question_len = at + 1 + 4;
        if rest.len() != question_len {
            return None;
        }
        Some(Self { header, question: rest })
    }

    /// The name's labels (without the root).
    fn labels(&self) -> impl Iterator<Item = &'a [u8]> {
        let question = self.question;
        let mut at = 0;
        std::iter::from_fn(move || {
            let len = usize::from(question[at]);
            let label = question.get(at + 1..at + 1 + len).filter(|_| len > 0)?;
            at += 1 + len;
            Some(label)
        })
    }

    fn qtype(&self) -> RecordType {
        let at = self.question.len() - 4;
        RecordType::from(u16::from_be_bytes([self.question[at], self.question[at + 1]]))
    }

    fn qclass_is_in(&self) -> bool {
        self.question[self.question.len() - 2..] == [0, 1]
    }

    /// The answer when the name is ours (see [`Handler::local_answer`]); `None` sends the query down the general path.
    fn local_answer(&self, handler: &Handler) -> Option<Vec<Ipv4Addr>> {
        if !self.qclass_is_in() {
            return None;
        }
        handler.local_answer(self.labels(), self.qtype())
    }
}

/// What a local answer echoes of its query, and how big it may be.
struct Reply<'a> {
    id: u16,
    /// The opcode, already in its place in the flags' high byte.
    opcode_bits: u8,
    recursion_desired: bool,
    checking_disabled: bool,
    recursion_available: bool,
    /// The question section as the client sent it, and how many questions it holds.
    questions: &'a [u8],
    qdcount: u16,
    /// The most the answer may take: the client's EDNS size (at most ours) or 512.
    max: usize,
    /// Whether the query had EDNS, so the answer carries an OPT record.
    edns: bool,
}

impl<'a> Reply<'a> {
    fn to(request: &'a Request, recursion_available: bool) -> Self {
        let meta = &request.metadata;
        let edns = request.edns.is_some();
        Self {
            id: meta.id,
            opcode_bits: (u8::from(meta.op_code) & 0x0f) << 3,
            recursion_desired: meta.recursion_desired,
            checking_disabled: meta.checking_disabled,
            recursion_available,
            questions: request.queries.as_bytes(),
            qdcount: request.queries.len() as u16,
            max: if edns { usize::from(request.max_payload().min(EDNS_PAYLOAD)) } else { PLAIN_UDP },
            edns,
        }
    }

    fn plain(query: &PlainQuery<'a>, recursion_available: bool) -> Self {
        let h = query.header;
        Self {
            id: u16::from_be_bytes([h[0], h[1]]),
            opcode_bits: 0,
            recursion_desired: h[2] & 0x01 != 0,
            checking_disabled: h[3] & 0x10 != 0,
            recursion_available,
            questions: query.question,
            qdcount: 1,
            max: PLAIN_UDP,
            edns: false,
        }
    }

    /// Writes into `out` the answer with `code` and the A records `addrs` (see the module doc).
    fn encode(&self, code: ResponseCode, addrs: &[Ipv4Addr], out: &mut Vec<u8>) {
        let opt_len = if self.edns { OPT_LEN } else { 0 };
        // the question is echoed unless it is the problem (FORMERR) or would not fit
        let echo = code != ResponseCode::FormErr && 12 + self.questions.len() + opt_len <= self.max;
        let code = u16::from(code);

        out.clear();
        out.extend_from_slice(&self.id.to_be_bytes());
        let mut flags = 0x80 | self.opcode_bits; // QR
        if code == 0 {
            flags |= 0x04; // AA: the name is ours
        }
        if self.recursion_desired {
            flags |= 0x01;
        }
        out.push(flags);
        let mut flags = (code & 0x0f) as u8;
        if self.recursion_available {
            flags |= 0x80;
        }
        if self.checking_disabled {
            flags |= 0x10;
        }
        out.push(flags);
        let qdcount = if echo { self.qdcount } else { 0 };
        out.extend_from_slice(&qdcount.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // an, ns, ar: filled in below
        if echo {
            out.extend_from_slice(self.questions);
        }

        let mut answers: u16 = 0;
        // answers exist only for a single question, whose name starts right after the header, at offset 12
        if echo && self.qdcount == 1 {
            for addr in addrs {
                if out.len() + A_LEN + opt_len > self.max {
                    out[2] |= 0x02; // TC: the client asks again over TCP for the whole answer
                    break;
                }
                out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]); // name → offset 12, type A, class IN
                out.extend_from_slice(&ANSWER_TTL.to_be_bytes());
                out.extend_from_slice(&[0, 4]);
                out.extend_from_slice(&addr.octets());
                answers += 1;
            }
        }
        out[6..8].copy_from_slice(&answers.to_be_bytes());

        if self.edns {
            out.push(0); // root
            out.extend_from_slice(&41u16.to_be_bytes()); // OPT
            out.extend_from_slice(&(self.max as u16).to_be_bytes());
            out.push((code >> 4) as u8); // extended rcode (BADVERS = 16)
            out.extend_from_slice(&[0, 0, 0, 0, 0]); // version 0, flags (DO clear: no DNSSEC here), no options
            out[10..12].copy_from_slice(&1u16.to_be_bytes());
        }
    }
}

/// For a datagram that did not parse: a FORMERR echoing its ID and opcode when it has a header and is a query.
fn encode_formerr(datagram: &[u8], out: &mut Vec<u8>) -> bool {
    if datagram.len() < 12 || datagram[2] & 0x80 != 0 {
        return false;
    }
    out.clear();
    out.extend_from_slice(&datagram[..2]);
    // QR, the query's opcode and RD; rcode 1
    out.push(0x80 | (datagram[2] & 0x79));
    out.push(0x01);
    out.extend_from_slice(&[0; 8]);
    true
}

/// Sends a hickory-encoded answer (a forwarded answer, or a SERVFAIL) on the shared UDP socket.
#[derive(Clone)]
struct UdpResponder {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

#[async_trait::async_trait]
impl ResponseHandler for UdpResponder {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
            impl Iterator<Item = &'a Record> + Send + 'a,
        >,
    ) -> Result<ResponseInfo, NetError> {
        // as hickory's own UDP responder: the answer's EDNS size (512 without) bounds it; what does not fit is cut
        // with TC set; an answer that cannot be encoded at all becomes a bare SERVFAIL
        let id = response.metadata().id;
        let max = response.edns().map_or(PLAIN_UDP as u16, |e| e.max_payload().max(PLAIN_UDP as u16));
        let mut bytes = Vec::with_capacity(PLAIN_UDP);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, "DNS answer could not be encoded; SERVFAIL instead");
                bytes.clear();
                let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
                metadata.response_code = ResponseCode::ServFail;
                let header = Header { metadata, counts: HeaderCounts::default() };
                header.emit(&mut BinEncoder::new(&mut bytes))?;
                ResponseInfo::from(header)
            }
        };
        self.socket.send_to(&bytes, self.dst).await?;
        Ok(info)
    }
}

#[cfg(test)]
mod tests;
