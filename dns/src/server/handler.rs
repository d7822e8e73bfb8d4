//! What to answer: the decision per query ([`Handler::plan`]), shared by the UDP loop and hickory's TCP server, and the
//! answer sent through a hickory [`ResponseHandler`] ([`Handler::respond`]).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::net::NetError;
use hickory_server::proto::op::{Edns, Header, HeaderCounts, Metadata, OpCode, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{DNSClass, RData, Record, RecordType};
use hickory_server::proto::serialize::binary::BinDecoder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use tokio::sync::watch;

use super::{ANSWER_TTL, EDNS_PAYLOAD};
use crate::counters::{QueryCounters, QueryResult};
use crate::records::Records;
use crate::upstream::Upstream;

/// Answers one task's queries; shared (in an `Arc`) by its UDP loop, its forwards in flight and hickory's TCP server.
pub(super) struct Handler {
    /// The networks the task is attached to: the part of the records it may see.
    pub(super) scope: Vec<String>,
    /// The daemon's current table; read (not cached) by every query.
    pub(super) records: watch::Receiver<Arc<Records>>,
    pub(super) upstream: Upstream,
    /// Advanced by one per local answer with addresses: the first address of the answer, so clients that take the
    /// first address spread over all of them in turn (round robin).
    pub(super) rotation: AtomicUsize,
    /// How the queries were answered (the daemon's, shared by every server).
    pub(super) counters: QueryCounters,
}

/// What to do with a query, decided without awaiting (the records' read lock is held only while deciding).
#[derive(Debug, PartialEq)]
pub(super) enum Plan {
    /// Answer with this code and these A records (possibly none), already in their rotated order.
    Local(ResponseCode, Vec<Ipv4Addr>),
    /// Not ours: ask upstream.
    Forward,
}

impl Handler {
    /// Decides how `request` is answered (see the table in [`crate::server`]).
    pub(super) fn plan(&self, request: &Request) -> Plan {
        if request.metadata.op_code != OpCode::Query {
            return Plan::Local(ResponseCode::NotImp, Vec::new());
        }
        if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
            return Plan::Local(ResponseCode::BADVERS, Vec::new());
        }
        let [query] = request.queries.queries() else {
            return Plan::Local(ResponseCode::FormErr, Vec::new());
        };
        if query.query_class() != DNSClass::IN {
            return Plan::Forward;
        }
        match self.local_answer(query.name().iter(), query.query_type()) {
            Some(addrs) => Plan::Local(ResponseCode::NoError, addrs),
            None => Plan::Forward,
        }
    }

    /// The A records answering `qtype` for the name of `labels` (class IN), rotated, or `None` when the name is not
    /// ours for this task. A name of ours with no address or asked for another type has an empty answer.
    pub(super) fn local_answer<'a>(
        &self,
        labels: impl IntoIterator<Item = &'a [u8]>,
        qtype: RecordType,
    ) -> Option<Vec<Ipv4Addr>> {
        let records = self.records.borrow();
        let addrs = records.lookup_labels(&self.scope, labels)?;
        if addrs.is_empty() || !matches!(qtype, RecordType::A | RecordType::ANY) {
            return Some(Vec::new());
        }
        let start = self.rotation.fetch_add(1, Ordering::Relaxed) % addrs.len();
        let mut rotated = Vec::with_capacity(addrs.len());
        rotated.extend_from_slice(&addrs[start..]);
        rotated.extend_from_slice(&addrs[..start]);
        Some(rotated)
    }

    /// Counts a query answered locally with `code`: from the records, or refused (FORMERR, NOTIMP, BADVERS).
    pub(super) fn count_local(&self, code: ResponseCode) {
        self.counters.count(if code == ResponseCode::NoError { QueryResult::Local } else { QueryResult::Error });
    }

    /// Whether answers say "recursion available": only when there is somewhere to forward to.
    pub(super) fn recursion_available(&self) -> bool {
        !self.upstream.servers().is_empty()
    }

    /// Sends the answer `plan` gives for `request` through `response` (hickory's encoder). Used for every TCP query
    /// and for UDP forwards; local UDP answers take the shorter path in `udp.rs`.
    pub(super) async fn respond<R: ResponseHandler>(
        &self,
        request: &Request,
        plan: Plan,
        mut response: R,
    ) -> Result<ResponseInfo, NetError> {
        let edns = response_edns(request);
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.recursion_available = self.recursion_available();
        match plan {
            Plan::Local(code, addrs) => {
                metadata.response_code = code;
                metadata.authoritative = code == ResponseCode::NoError;
                // the owner name as the client spelt it (the lowercased name is for lookups)
                let name = request.queries.queries().first().map(|q| q.original().name().clone()).unwrap_or_default();
                let answers: Vec<Record> =
                    addrs.iter().map(|addr| Record::from_rdata(name.clone(), ANSWER_TTL, RData::A(A(*addr)))).collect();
                // a FORMERR for a wrong number of questions does not echo them: 200 questions would not fit in 512
                // bytes, and hickory would turn the failed encoding into a SERVFAIL
                let no_questions;
                let questions = if code == ResponseCode::FormErr {
                    no_questions = empty_queries();
                    &no_questions
                } else {
                    &request.queries
                };
                let builder = MessageResponseBuilder::new(questions, edns.as_ref());
                response.send_response(builder.build(metadata, &answers, [], [], [])).await
            }
            // boxed: the forward's future (sockets, timeouts) is large, and would otherwise be part of every query's
            // future, allocated and moved for each local answer too
            Plan::Forward => Box::pin(self.forward(request, response, metadata, edns)).await,
        }
    }

    /// Asks upstream and relays the answer with the client's ID, or answers SERVFAIL.
    async fn forward<R: ResponseHandler>(
        &self,
        request: &Request,
        mut response: R,
        mut metadata: Metadata,
        edns: Option<Edns>,
    ) -> Result<ResponseInfo, NetError> {
        let client_tcp = request.protocol() == Protocol::Tcp;
        let max_udp = usize::from(request.max_payload());
        match self.upstream.forward(request.as_slice(), &request.queries, client_tcp, max_udp).await {
            Ok(answer) => {
                let nxdomain = answer.metadata.response_code == ResponseCode::NXDomain;
                self.counters.count(if nxdomain { QueryResult::NxDomain } else { QueryResult::Forwarded });
                let mut relayed = answer.metadata;
                relayed.id = request.metadata.id;
                // the client's size, not the resolver's, bounds what goes back over UDP
                let edns = answer.edns.clone().filter(|_| request.edns.is_some()).map(|mut e| {
                    if !client_tcp {
                        e.set_max_payload(e.max_payload().min(request.max_payload()));
                    }
                    e
                });
                let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
                let message = builder.build(relayed, &answer.answers, &answer.authorities, [], &answer.additionals);
                response.send_response(message).await
            }
            Err(error) => {
                tracing::debug!(%error, "DNS forward failed");
                self.counters.count(QueryResult::ServFail);
                metadata.response_code = ResponseCode::ServFail;
                let builder = MessageResponseBuilder::new(&request.queries, edns.as_ref());
                response.send_response(builder.build_no_records(metadata)).await
            }
        }
    }
}

/// The OPT record of an answer to `request`: present when the query had one, advertising the smaller of the client's
/// size and ours (hickory's encoder takes it as the limit of a UDP answer).
pub(super) fn response_edns(request: &Request) -> Option<Edns> {
    request.edns.as_ref().map(|_| {
        let mut edns = Edns::new();
        edns.set_max_payload(request.max_payload().min(EDNS_PAYLOAD));
        edns
    })
}

/// The SERVFAIL header reported to hickory for a response that could not be sent.
pub(super) fn servfail_info(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::response_from_request(&request.metadata);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header { metadata, counts: HeaderCounts::default() })
}

/// An empty question section (hickory has no public constructor for one).
fn empty_queries() -> Queries {
    Queries::read(&mut BinDecoder::new(&[]), 0).unwrap_or_else(|_| unreachable!("reading no question reads nothing"))
}

/// The handler as hickory's TCP server holds it.
pub(super) struct TcpHandler(pub(super) Arc<Handler>);

#[async_trait::async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(&self, request: &Request, response: R) -> ResponseInfo {
        let plan = self.0.plan(request);
        if let Plan::Local(code, _) = &plan {
            self.0.count_local(*code);
        }
        match self.0.respond(request, plan, response).await {
            Ok(info) => info,
            Err(error) => {
                tracing::debug!(%error, src = %request.src(), "DNS response not sent");
                servfail_info(request)
            }
        }
    }
}
