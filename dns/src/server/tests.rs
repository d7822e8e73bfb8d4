//! The server with real sockets on 127.0.0.1 ephemeral ports, a fake upstream resolver where forwarding matters.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::rdata::A;
use hickory_server::proto::rr::{DNSClass, Name, RData, Record, RecordType};
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{timeout, Instant};

use super::*;
use crate::{QueryCounters, QueryResult, RecordsBuilder};

const NET: &str = "net-front";
const OTHER: &str = "net-back";
const UPSTREAM_ANSWER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 99);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn table() -> Records {
    RecordsBuilder::new()
        .service(NET, "web", &["www"], &[ip(2)])
        .tasks(NET, "web", &[ip(3), ip(4), ip(5)])
        .task(NET, "web.1.abcdef", ip(3))
        .tasks(NET, "idle", &[])
        .service(OTHER, "db", &[], &[ip(20)])
        .build()
}

struct Fixture {
    server: DnsServer,
    records: watch::Sender<Arc<Records>>,
    counters: QueryCounters,
}

impl Fixture {
    /// The queries counted, by result, in [`QueryResult::ALL`]'s order.
    fn counted(&self) -> Vec<u64> {
        QueryResult::ALL.iter().map(|r| self.counters.get(*r)).collect()
    }
}

fn start(records: Records, upstream: Upstream) -> Fixture {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (tx, rx) = watch::channel(Arc::new(records));
    let counters = QueryCounters::default();
    let server = serve(udp, tcp, vec![NET.to_string()], rx, upstream, counters.clone()).unwrap();
    Fixture { server, records: tx, counters }
}

fn query(id: u16, name: &str, rtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(id, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message.to_vec().unwrap()
}

async fn ask_bytes(server: SocketAddr, bytes: &[u8]) -> Option<Message> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let len = timeout(Duration::from_secs(5), socket.recv(&mut buf)).await.ok()?.unwrap();
    Some(Message::from_vec(&buf[..len]).unwrap())
}

async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let id = 0x1234;
    let answer = ask_bytes(server, &query(id, name, rtype)).await.expect("an answer within 5 s");
    assert_eq!(answer.metadata.id, id);
    assert_eq!(answer.metadata.message_type, MessageType::Response);
    answer
}

async fn ask_tcp(server: SocketAddr, bytes: &[u8]) -> Message {
    let mut stream = TcpStream::connect(server).await.unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(bytes);
    stream.write_all(&framed).await.unwrap();
    let mut len = [0u8; 2];
    timeout(Duration::from_secs(5), stream.read_exact(&mut len)).await.unwrap().unwrap();
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await.unwrap();
    Message::from_vec(&buf).unwrap()
}

fn a_records(message: &Message) -> Vec<Ipv4Addr> {
    message
        .answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0,
            other => panic!("not an A record: {other:?}"),
        })
        .collect()
}

/// A resolver on 127.0.0.1 that answers every A question with [`UPSTREAM_ANSWER`] (NXDOMAIN for names under
/// `missing.`; or stays silent), and records the names and IDs it was asked.
struct FakeUpstream {
    addr: SocketAddr,
    asked: Arc<Mutex<Vec<(String, u16)>>>,
    _task: JoinHandle<()>,
}

impl FakeUpstream {
    async fn start(silent: bool) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let seen = asked.clone();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((len, from)) = socket.recv_from(&mut buf).await else { return };
                let Ok(request) = Message::from_vec(&buf[..len]) else { continue };
                let name = request.queries[0].name().to_string();
                seen.lock().unwrap().push((name.clone(), request.metadata.id));
                if silent {
                    continue;
                }
                let mut response = Message::response(request.metadata.id, OpCode::Query);
                response.metadata.recursion_available = true;
                response.add_query(request.queries[0].clone());
                if name.starts_with("missing.") {
                    response.metadata.response_code = ResponseCode::NXDomain;
                    let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
                    continue;
                }
                response.add_answer(Record::from_rdata(
                    request.queries[0].name().clone(),
                    300,
                    RData::A(A(UPSTREAM_ANSWER)),
                ));
                let _ = socket.send_to(&response.to_vec().unwrap(), from).await;
            }
        });
        Self { addr, asked, _task: task }
    }

    fn upstream(&self) -> Upstream {
        Upstream::new([self.addr])
    }

    fn asked(&self) -> Vec<(String, u16)> {
        self.asked.lock().unwrap().clone()
    }
}

#[tokio::test]
async fn service_name_is_answered_with_its_vip() {
    let f = start(table(), Upstream::none());
    for name in ["web", "WWW.", "web.1.abcdef"] {
        let answer = ask(f.server.udp_addr(), name, RecordType::A).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(answer.metadata.authoritative);
        assert_eq!(answer.answers.len(), 1, "{name}");
        assert_eq!(answer.answers[0].ttl, ANSWER_TTL);
        // the owner name is the question's, spelt as the client spelt it
        let mut asked = Name::from_ascii(name).unwrap();
        asked.set_fqdn(true);
        assert!(answer.answers[0].name.eq_case(&asked), "{name}: {:?}", answer.answers[0].name);
    }
    let answer = ask(f.server.udp_addr(), "web", RecordType::A).await;
    assert_eq!(a_records(&answer), [ip(2)]);
    // and over TCP
    let answer = ask_tcp(f.server.tcp_addr(), &query(7, "tasks.web", RecordType::A)).await;
    assert_eq!(answer.metadata.id, 7);
    assert_eq!(a_records(&answer).into_iter().collect::<HashSet<_>>(), HashSet::from([ip(3), ip(4), ip(5)]));
    // five answers from the records, counted as local (UDP and TCP alike)
    assert_eq!(f.counted(), [5, 0, 0, 0, 0]);
}

#[tokio::test]
async fn several_addresses_are_rotated_per_query() {
    let f = start(table(), Upstream::none());
    let mut orders = Vec::new();
    for _ in 0..6 {
        let answer = ask(f.server.udp_addr(), "tasks.web", RecordType::A).await;
        let addrs = a_records(&answer);
        assert_eq!(addrs.iter().collect::<HashSet<_>>().len(), 3, "every task, once: {addrs:?}");
        orders.push(addrs);
    }
    let distinct: HashSet<_> = orders.iter().cloned().collect();
    assert!(distinct.len() >= 3, "answers came in {} orders only: {orders:?}", distinct.len());
    let firsts: HashSet<_> = orders.iter().map(|o| o[0]).collect();
    assert_eq!(firsts.len(), 3, "each address comes first in turn: {orders:?}");
}

#[tokio::test]
async fn other_types_of_a_known_name_are_empty_not_nxdomain() {
    let upstream = FakeUpstream::start(false).await;
    let f = start(table(), upstream.upstream());
    for rtype in [RecordType::AAAA, RecordType::MX, RecordType::TXT, RecordType::SRV] {
        let answer = ask(f.server.udp_addr(), "web", rtype).await;
        assert_eq!(answer.metadata.response_code, ResponseCode::NoError, "{rtype}");
        assert!(answer.answers.is_empty(), "{rtype}");
    }
    // a name of ours without addresses (a dnsrr service with no task yet) is also ours
    let answer = ask(f.server.udp_addr(), "tasks.idle", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty());
    assert!(upstream.asked().is_empty(), "nothing of ours is forwarded: {:?}", upstream.asked());
}

#[tokio::test]
async fn names_outside_the_scope_go_upstream_and_come_back_with_the_clients_id() {
    let upstream = FakeUpstream::start(false).await;
    let f = start(table(), upstream.upstream());
    // db exists, but only on a network this task is not attached to
    let answer = ask(f.server.udp_addr(), "db", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(!answer.metadata.authoritative);
    assert!(answer.metadata.recursion_available);
    assert_eq!(a_records(&answer), [UPSTREAM_ANSWER]);
    let answer = ask(f.server.udp_addr(), "example.org.", RecordType::A).await;
    assert_eq!(a_records(&answer), [UPSTREAM_ANSWER]);
    // a TCP client is forwarded too
    let answer = ask_tcp(f.server.tcp_addr(), &query(99, "example.net", RecordType::A)).await;
    assert_eq!((answer.metadata.id, a_records(&answer)), (99, vec![UPSTREAM_ANSWER]));
    let answer = ask(f.server.udp_addr(), "missing.example.org.", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::NXDomain);
    let asked: Vec<String> = upstream.asked().into_iter().map(|(name, _)| name).collect();
    assert_eq!(asked, ["db.", "example.org.", "example.net.", "missing.example.org."]);
    // counted as forwarded (3) and nxdomain (1)
    assert_eq!(f.counted(), [0, 3, 1, 0, 0]);
}

/// A resolver whose UDP answers are truncated (TC, no records) and whose TCP answers are whole.
async fn truncating_upstream() -> (SocketAddr, JoinHandle<()>) {
    // the same port for both: take a free UDP port, then the TCP one beside it (retried if taken)
    let (udp, tcp) = loop {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = tokio::net::TcpListener::bind(udp.local_addr().unwrap()).await {
            break (udp, tcp);
        }
    };
    let addr = udp.local_addr().unwrap();
    fn answer(request: &Message, truncated: bool) -> Vec<u8> {
        let mut response = Message::response(request.metadata.id, OpCode::Query);
        response.add_query(request.queries[0].clone());
        response.metadata.truncation = truncated;
        if !truncated {
            for last in 1..=3 {
                let data = RData::A(A(Ipv4Addr::new(192, 0, 2, last)));
                response.add_answer(Record::from_rdata(request.queries[0].name().clone(), 60, data));
            }
        }
        response.to_vec().unwrap()
    }
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            tokio::select! {
                Ok((len, from)) = udp.recv_from(&mut buf) => {
                    if let Ok(request) = Message::from_vec(&buf[..len]) {
                        let _ = udp.send_to(&answer(&request, true), from).await;
                    }
                }
                Ok((mut stream, _)) = tcp.accept() => {
                    let mut len = [0u8; 2];
                    if stream.read_exact(&mut len).await.is_err() { continue }
                    let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                    if stream.read_exact(&mut query).await.is_err() { continue }
                    let Ok(request) = Message::from_vec(&query) else { continue };
                    let bytes = answer(&request, false);
                    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&bytes);
                    let _ = stream.write_all(&framed).await;
                }
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_truncated_upstream_answer_is_relayed_to_udp_and_asked_again_over_tcp_for_tcp() {
    let (upstream, _task) = truncating_upstream().await;
    let f = start(table(), Upstream::new([upstream]));
    let answer = ask(f.server.udp_addr(), "big.example", RecordType::A).await;
    assert!(answer.metadata.truncation, "UDP client: TC relayed, so it retries over TCP");
    assert!(answer.answers.is_empty());
    let answer = ask_tcp(f.server.tcp_addr(), &query(77, "big.example", RecordType::A)).await;
    assert_eq!(answer.metadata.id, 77);
    assert!(!answer.metadata.truncation);
    assert_eq!(answer.answers.len(), 3, "TCP client: the whole answer, fetched over TCP");
}

#[tokio::test]
async fn a_records_change_is_answered_at_once() {
    let f = start(table(), Upstream::none());
    assert_eq!(a_records(&ask(f.server.udp_addr(), "web", RecordType::A).await), [ip(2)]);
    let moved = RecordsBuilder::new().service(NET, "web", &[], &[ip(42)]).build();
    f.records.send(Arc::new(moved)).unwrap();
    assert_eq!(a_records(&ask(f.server.udp_addr(), "web", RecordType::A).await), [ip(42)]);
    // removed: no longer ours, and with no upstream that is SERVFAIL
    f.records.send(Arc::new(Records::empty())).unwrap();
    let answer = ask(f.server.udp_addr(), "web", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    // a dropped sender leaves the last table serving
    let Fixture { server, records, .. } = f;
    records.send(Arc::new(table())).unwrap();
    drop(records);
    assert_eq!(a_records(&ask(server.udp_addr(), "web", RecordType::A).await), [ip(2)]);
}

#[tokio::test]
async fn no_upstream_is_servfail_at_once() {
    let f = start(table(), Upstream::none());
    let started = Instant::now();
    let answer = ask(f.server.udp_addr(), "example.org", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(!answer.metadata.recursion_available);
    assert_eq!(f.counted(), [0, 0, 0, 1, 0], "counted as servfail");
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_silent_upstream_is_servfail_after_the_attempt_timeout() {
    let silent = FakeUpstream::start(true).await;
    let upstream = Upstream::with_limits([silent.addr], Duration::from_millis(300), 16);
    let f = start(table(), upstream);
    let started = Instant::now();
    let answer = ask(f.server.udp_addr(), "example.org", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(2), "{took:?}");
    // the resolver saw our random ID, not necessarily the client's; it saw exactly one query
    assert_eq!(silent.asked().len(), 1);
}

#[tokio::test]
async fn an_unreachable_upstream_is_skipped_for_the_next() {
    // a port nobody listens on: ICMP port unreachable fails the first attempt at once
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let good = FakeUpstream::start(false).await;
    let f = start(table(), Upstream::new([closed, good.addr]));
    let started = Instant::now();
    let answer = ask(f.server.udp_addr(), "example.org", RecordType::A).await;
    assert_eq!(a_records(&answer), [UPSTREAM_ANSWER]);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test]
async fn forwards_beyond_the_in_flight_limit_are_servfail_at_once() {
    let silent = FakeUpstream::start(true).await;
    let upstream = Upstream::with_limits([silent.addr], Duration::from_secs(3), 1);
    let f = start(table(), upstream);
    // the first forward holds the only permit for 3 s
    let addr = f.server.udp_addr();
    let pending = tokio::spawn(async move { ask(addr, "first.example", RecordType::A).await });
    while silent.asked().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let answer = ask(addr, "second.example", RecordType::A).await;
    assert_eq!(answer.metadata.response_code, ResponseCode::ServFail);
    assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    // our own names are not limited by it
    assert_eq!(a_records(&ask(addr, "web", RecordType::A).await), [ip(2)]);
    pending.abort();
}

#[tokio::test]
async fn malformed_queries_do_not_stop_the_server() {
    let upstream = FakeUpstream::start(false).await;
    let f = start(table(), upstream.upstream());
    let addr = f.server.udp_addr();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();

    // random garbage of every small length, and some long
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    for len in (0..64).chain([300, 512, 1500, 4000]) {
        let bytes: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        socket.send_to(&bytes, addr).await.unwrap();
    }
    // every truncation of a valid query
    let valid = query(1, "tasks.web", RecordType::A);
    for len in 0..valid.len() {
        socket.send_to(&valid[..len], addr).await.unwrap();
    }
    // a header claiming many questions, with one
    let mut many = valid.clone();
    many[4..6].copy_from_slice(&500u16.to_be_bytes());
    let answer = ask_bytes(addr, &many).await.expect("FORMERR for a short question section");
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
    // really many questions
    let mut message = Message::new(2, MessageType::Query, OpCode::Query);
    for i in 0..200 {
        message.add_query(Query::query(Name::from_ascii(format!("n{i}.example")).unwrap(), RecordType::A));
    }
    let answer = ask_bytes(addr, &message.to_vec().unwrap()).await.expect("an answer to 200 questions");
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
    // no question
    let empty = Message::new(3, MessageType::Query, OpCode::Query).to_vec().unwrap();
    let answer = ask_bytes(addr, &empty).await.expect("an answer to no question");
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
    // an opcode we do not do
    let mut notify = Message::new(4, MessageType::Query, OpCode::Notify);
    notify.add_query(Query::query(Name::from_ascii("web").unwrap(), RecordType::SOA));
    let answer = ask_bytes(addr, &notify.to_vec().unwrap()).await.expect("an answer to NOTIFY");
    assert_eq!(answer.metadata.response_code, ResponseCode::NotImp);
    // EDNS version 1
    let mut v1 = Message::new(5, MessageType::Query, OpCode::Query);
    v1.add_query(Query::query(Name::from_ascii("web").unwrap(), RecordType::A));
    let mut edns = Edns::new();
    edns.set_version(1);
    v1.set_edns(edns);
    let answer = ask_bytes(addr, &v1.to_vec().unwrap()).await.expect("an answer to EDNS 1");
    // BADVERS and BADSIG share the code 16, which decodes as BADSIG
    assert_eq!(u16::from(answer.metadata.response_code), u16::from(ResponseCode::BADVERS));
    // a response sent to us is dropped, not answered (no reflection)
    let mut response = Message::response(6, OpCode::Query);
    response.add_query(Query::query(Name::from_ascii("web").unwrap(), RecordType::A));
    socket.send_to(&response.to_vec().unwrap(), addr).await.unwrap();

    // TCP: garbage, a length prefix with nothing behind it, a half-sent message
    for bytes in [&b"\x00\x05hello"[..], &b"\xff\xff"[..], &valid[..valid.len() / 2], &b""[..]] {
        let mut stream = TcpStream::connect(f.server.tcp_addr()).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        drop(stream);
    }

    // still serving, over both
    assert_eq!(a_records(&ask(addr, "web", RecordType::A).await), [ip(2)]);
    assert_eq!(a_records(&ask_tcp(f.server.tcp_addr(), &query(8, "web", RecordType::A)).await), [ip(2)]);
    assert!(upstream.asked().is_empty(), "nothing malformed was forwarded: {:?}", upstream.asked());
    // the two good ones are local answers; the refusals are counted as errors (the UDP garbage answered with FORMERR
    // among them: how many of the random datagrams have a readable header is the seed's business)
    let counted = f.counted();
    assert_eq!(counted[..4], [2, 0, 0, 0], "{counted:?}");
    assert!(counted[4] >= 5, "{counted:?}");
}

#[tokio::test]
async fn edns_queries_get_an_edns_answer_and_other_classes_go_upstream() {
    let upstream = FakeUpstream::start(false).await;
    let f = start(table(), upstream.upstream());
    let mut message = Message::new(9, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii("tasks.web").unwrap(), RecordType::A));
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    message.set_edns(edns);
    let answer = ask_bytes(f.server.udp_addr(), &message.to_vec().unwrap()).await.unwrap();
    assert_eq!(answer.answers.len(), 3);
    assert_eq!(answer.edns.as_ref().map(Edns::max_payload), Some(EDNS_PAYLOAD));

    let mut chaos = Message::new(10, MessageType::Query, OpCode::Query);
    let mut q = Query::query(Name::from_ascii("web").unwrap(), RecordType::A);
    q.set_query_class(DNSClass::CH);
    chaos.add_query(q);
    let answer = ask_bytes(f.server.udp_addr(), &chaos.to_vec().unwrap()).await.unwrap();
    assert_eq!(answer.metadata.id, 10);
    assert_eq!(upstream.asked().len(), 1);
}

#[tokio::test]
async fn shutdown_closes_the_sockets_and_drop_stops_the_server() {
    let f = start(table(), Upstream::none());
    let (udp, tcp) = (f.server.udp_addr(), f.server.tcp_addr());
    f.server.shutdown().await;
    // the addresses are free again
    std::net::UdpSocket::bind(udp).expect("UDP socket closed by shutdown");
    std::net::TcpListener::bind(tcp).expect("TCP listener closed by shutdown");

    let f = start(table(), Upstream::none());
    let udp = f.server.udp_addr();
    drop(f);
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::UdpSocket::bind(udp).is_err() {
        assert!(Instant::now() < deadline, "UDP socket still open 5 s after the handle was dropped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn serve_outside_a_runtime_is_an_error() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let (_tx, rx) = watch::channel(Arc::new(Records::empty()));
    let err = serve(udp, tcp, vec![], rx, Upstream::none(), QueryCounters::default()).unwrap_err();
    assert!(matches!(err, Error::NoRuntime), "{err}");
}

#[tokio::test]
async fn many_concurrent_clients_are_all_answered() {
    let f = start(table(), Upstream::none());
    let addr = f.server.udp_addr();
    let answered = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for _ in 0..32 {
        let answered = answered.clone();
        clients.push(tokio::spawn(async move {
            for _ in 0..20 {
                if ask(addr, "tasks.web", RecordType::A).await.answers.len() == 3 {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    assert_eq!(answered.load(Ordering::Relaxed), 32 * 20);
}
