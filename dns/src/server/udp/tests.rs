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
    encode_local(request, code, addrs, ra, &mut out);
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
