//! The hand-written local answers, read back with hickory's decoder.

use std::net::SocketAddr;

use hickory_server::proto::op::{Edns, Message, Query};
use hickory_server::proto::rr::{Name, RData, RecordType};

use super::*;

fn request(name: &str, edns: Option<u16>) -> Request {
    let mut message = Message::new(0xbeef, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.metadata.checking_disabled = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        message.set_edns(e);
    }
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    Request::from_bytes(message.to_vec().unwrap(), src, Protocol::Udp).unwrap()
}

fn addrs(n: usize) -> Vec<Ipv4Addr> {
    (0..n).map(|i| Ipv4Addr::new(10, 0, (i / 256) as u8, (i % 256) as u8)).collect()
}

fn encode(request: &Request, code: ResponseCode, addrs: &[Ipv4Addr], ra: bool) -> (Vec<u8>, Message) {
    let mut out = Vec::new();
    Reply::to(request, ra).encode(code, addrs, &mut out);
    let message = Message::from_vec(&out).expect("hickory reads our answer");
    (out, message)
}

#[test]
fn a_local_answer_reads_back_as_hickory_would_write_it() {
    let request = request("Tasks.Web.", None);
    let (bytes, answer) = encode(&request, ResponseCode::NoError, &addrs(3), true);
    let m = &answer.metadata;
    assert_eq!(
        (m.id, m.message_type, m.op_code, m.response_code),
        (0xbeef, MessageType::Response, OpCode::Query, ResponseCode::NoError)
    );
    assert!(m.authoritative && m.recursion_desired && m.recursion_available && m.checking_disabled);
    assert!(!m.truncation && !m.authentic_data);
    assert_eq!(answer.queries.len(), 1);
    assert!(answer.queries[0].name().eq_case(&Name::from_ascii("Tasks.Web.").unwrap()), "question echoed as sent");
    assert_eq!(answer.answers.len(), 3);
    for (record, want) in answer.answers.iter().zip(addrs(3)) {
        assert!(record.name.eq_case(&Name::from_ascii("Tasks.Web.").unwrap()));
        assert_eq!(record.ttl, ANSWER_TTL);
        assert_eq!(record.data, RData::A(want.into()));
    }
    assert!(answer.edns.is_none());
    // 12 header + 15 question + 3 × 16: the owner names are compression pointers
    assert_eq!(bytes.len(), 12 + 15 + 3 * 16);
}

#[test]
fn errors_and_empty_answers() {
    let request = request("web", None);
    let (_, answer) = encode(&request, ResponseCode::NoError, &[], false);
    assert_eq!(answer.metadata.response_code, ResponseCode::NoError);
    assert!(answer.answers.is_empty() && answer.metadata.authoritative && !answer.metadata.recursion_available);
    let (_, answer) = encode(&request, ResponseCode::FormErr, &[], false);
    assert_eq!(answer.metadata.response_code, ResponseCode::FormErr);
    assert!(answer.queries.is_empty() && !answer.metadata.authoritative, "a FORMERR echoes no question");
    let (_, answer) = encode(&request, ResponseCode::NotImp, &[], false);
    assert_eq!(answer.metadata.response_code, ResponseCode::NotImp);
    assert_eq!(answer.queries.len(), 1);
}

#[test]
fn edns_answers_carry_an_opt_record_and_badvers_its_high_bits() {
    let request = request("web", Some(4096));
    let (_, answer) = encode(&request, ResponseCode::NoError, &addrs(2), false);
    let edns = answer.edns.expect("OPT in the answer");
    assert_eq!(edns.max_payload(), EDNS_PAYLOAD);
    assert_eq!(edns.version(), 0);
    assert_eq!(answer.answers.len(), 2);
    let (bytes, answer) = encode(&request, ResponseCode::BADVERS, &[], false);
    assert_eq!(u16::from(answer.metadata.response_code), 16);
    assert_eq!(bytes[3] & 0x0f, 0, "the low bits of 16 are 0");
}

#[test]
fn an_answer_larger_than_the_udp_size_is_cut_with_tc() {
    // without EDNS: 512 bytes, so (512 - 12 - 7) / 16 = 30 answers
    let request_plain = request("big", None);
    let (bytes, answer) = encode(&request_plain, ResponseCode::NoError, &addrs(100), false);
    assert!(bytes.len() <= 512);
    assert!(answer.metadata.truncation);
    assert_eq!(answer.answers.len(), 30);
    // with EDNS 1232 (ours, though the client offered more): 76 answers
    let request_edns = request("big", Some(8192));
    let (bytes, answer) = encode(&request_edns, ResponseCode::NoError, &addrs(100), false);
    assert!(bytes.len() <= usize::from(EDNS_PAYLOAD), "{}", bytes.len());
    assert!(answer.metadata.truncation);
    assert_eq!(answer.answers.len(), (1232 - 12 - 7 - 11) / 16);
    // exactly fitting: no TC
    let (_, answer) = encode(&request_plain, ResponseCode::NoError, &addrs(30), false);
    assert!(!answer.metadata.truncation);
}

#[test]
fn formerr_for_unparsable_queries_only() {
    let mut out = Vec::new();
    assert!(!encode_formerr(b"short", &mut out));
    let mut response_header = [0u8; 12];
    response_header[2] = 0x80;
    assert!(!encode_formerr(&response_header, &mut out), "a response is never answered");
    let garbage = [0x12, 0x34, 0x01, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 1, 2, 3];
    assert!(encode_formerr(&garbage, &mut out));
    let answer = Message::from_vec(&out).unwrap();
    assert_eq!((answer.metadata.id, answer.metadata.response_code), (0x1234, ResponseCode::FormErr));
    assert!(answer.metadata.recursion_desired && answer.metadata.message_type == MessageType::Response);
}

#[test]
fn answerable_sources() {
    assert!(answerable("127.0.0.1:1234".parse().unwrap()));
    assert!(!answerable("127.0.0.1:0".parse().unwrap()));
    assert!(!answerable("0.0.0.0:53".parse().unwrap()));
    assert!(!answerable("255.255.255.255:53".parse().unwrap()));
    assert!(!answerable("[::]:53".parse().unwrap()));
}

fn plain_query(name: &str, rtype: RecordType) -> Vec<u8> {
    let mut message = Message::new(0x0102, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    message.to_vec().unwrap()
}

#[test]
fn plain_queries_are_read_from_the_datagram() {
    let bytes = plain_query("Tasks.web.", RecordType::AAAA);
    let query = PlainQuery::parse(&bytes).expect("a stub's query is plain");
    let labels: Vec<&[u8]> = query.labels().collect();
    assert_eq!(labels, [&b"Tasks"[..], &b"web"[..]]);
    assert_eq!(query.qtype(), RecordType::AAAA);
    assert!(query.qclass_is_in());
    assert_eq!(query.header, &bytes[..12]);
    assert_eq!(query.question, &bytes[12..]);
}

#[test]
fn anything_unusual_is_left_to_hickory() {
    let plain = plain_query("web", RecordType::A);
    let with_edns = request("web", Some(1232));
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("EDNS", with_edns.as_slice().to_vec()),
        ("trailing byte", [&plain[..], &[0]].concat()),
        ("cut short", plain[..plain.len() - 1].to_vec()),
        ("header only", plain[..12].to_vec()),
        ("empty", Vec::new()),
    ];
    let mut response = plain.clone();
    response[2] |= 0x80;
    cases.push(("a response", response));
    let mut notify = plain.clone();
    notify[2] |= 4 << 3;
    cases.push(("opcode NOTIFY", notify));
    let mut two = plain.clone();
    two[5] = 2;
    cases.push(("two questions", two));
    let mut answer_count = plain.clone();
    answer_count[7] = 1;
    cases.push(("an answer section", answer_count));
    // a compression pointer as the name
    let mut pointer = plain[..12].to_vec();
    pointer.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
    cases.push(("compression pointer", pointer));
    // 128 labels of 1 byte: 257 bytes of name
    let mut long = plain[..12].to_vec();
    for _ in 0..128 {
        long.extend_from_slice(&[1, b'a']);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    cases.push(("name over 255 bytes", long));
    for (what, bytes) in cases {
        assert!(PlainQuery::parse(&bytes).is_none(), "{what}");
    }
    // 127 labels of 1 byte + root = 255: still plain
    let mut longest = plain[..12].to_vec();
    for _ in 0..127 {
        longest.extend_from_slice(&[1, b'a']);
    }
    longest.extend_from_slice(&[0, 0, 1, 0, 1]);
    assert!(PlainQuery::parse(&longest).is_some());
}

#[test]
fn the_plain_path_writes_the_same_bytes_as_the_general_path() {
    for rtype in [RecordType::A, RecordType::AAAA] {
        let bytes = plain_query("Tasks.Web", rtype);
        let plain = PlainQuery::parse(&bytes).unwrap();
        let request = Request::from_bytes(bytes.clone(), "127.0.0.1:5353".parse().unwrap(), Protocol::Udp).unwrap();
        for (code, n) in [(ResponseCode::NoError, 3), (ResponseCode::NoError, 0), (ResponseCode::NoError, 100)] {
            for ra in [false, true] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                Reply::plain(&plain, ra).encode(code, &addrs(n), &mut a);
                Reply::to(&request, ra).encode(code, &addrs(n), &mut b);
                assert_eq!(a, b, "{rtype} {n} answers, ra {ra}");
            }
        }
    }
}
