use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::*;

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
enum Msg {
    Ping,
    Append { term: u64, entries: Vec<Vec<u8>>, note: String },
    Vote(Option<u32>, i64),
}

fn sample() -> Msg {
    Msg::Append { term: 7, entries: vec![vec![1, 2, 3], vec![]], note: "héllo".into() }
}

/// `Vec<u8>`-shaped value that goes through serde's `deserialize_byte_buf` (like serde_bytes).
#[derive(Debug)]
struct Blob(#[allow(dead_code)] Vec<u8>);

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Blob;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Blob, E> {
                Ok(Blob(v))
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Blob, E> {
                Ok(Blob(v.to_vec()))
            }
        }
        d.deserialize_byte_buf(V)
    }
}

/// A frame around an arbitrary payload.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![VERSION];
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn round_trip() {
    for msg in [Msg::Ping, sample(), Msg::Vote(Some(3), -9), Msg::Vote(None, i64::MIN)] {
        let buf = encode(&msg, DEFAULT_MAX_FRAME).unwrap();
        assert_eq!(buf[0], VERSION);
        assert_eq!(u32::from_be_bytes(buf[1..5].try_into().unwrap()) as usize, buf.len() - HEADER_LEN);
        assert_eq!(decode::<Msg>(&buf, DEFAULT_MAX_FRAME).unwrap(), msg);
    }
}

#[test]
fn encode_refuses_oversized_message() {
    let big = vec![0u8; 1000];
    assert!(matches!(encode(&big, 100), Err(CodecError::MessageTooLarge { max: 100 })));
    // Exactly at the limit is fine.
    let exact = encode(&big, DEFAULT_MAX_FRAME).unwrap().len() - HEADER_LEN;
    assert!(encode(&big, exact).is_ok());
    assert!(matches!(encode(&big, exact - 1), Err(CodecError::MessageTooLarge { .. })));
}

#[test]
fn truncated_header() {
    for n in 0..HEADER_LEN {
        let buf = &encode(&sample(), DEFAULT_MAX_FRAME).unwrap()[..n];
        assert!(matches!(decode::<Msg>(buf, DEFAULT_MAX_FRAME), Err(CodecError::Truncated { expected: 5, got }) if got == n));
    }
}

#[test]
fn truncated_body() {
    let buf = encode(&sample(), DEFAULT_MAX_FRAME).unwrap();
    let cut = &buf[..buf.len() - 1];
    assert!(matches!(decode::<Msg>(cut, DEFAULT_MAX_FRAME), Err(CodecError::Truncated { .. })));
}

#[test]
fn declared_length_over_max() {
    let buf = encode(&sample(), DEFAULT_MAX_FRAME).unwrap();
    let declared = buf.len() - HEADER_LEN;
    let err = decode::<Msg>(&buf, declared - 1).unwrap_err();
    assert!(matches!(err, CodecError::TooLarge { declared: d, .. } if d == declared));
    // A header alone claiming 4 GiB is rejected on the header.
    let huge = [VERSION, 0xff, 0xff, 0xff, 0xff];
    assert!(matches!(decode::<Msg>(&huge, DEFAULT_MAX_FRAME), Err(CodecError::TooLarge { .. })));
}

#[test]
fn trailing_bytes() {
    let mut buf = encode(&sample(), DEFAULT_MAX_FRAME).unwrap();
    buf.push(0);
    assert!(matches!(decode::<Msg>(&buf, DEFAULT_MAX_FRAME), Err(CodecError::Trailing(1))));
    // Inside the payload: a valid message followed by junk the header counts.
    let mut payload = bincode::serde::encode_to_vec(Msg::Ping, bincode::config::standard()).unwrap();
    payload.extend_from_slice(&[9, 9]);
    assert!(matches!(decode::<Msg>(&frame(&payload), DEFAULT_MAX_FRAME), Err(CodecError::Trailing(2))));
}

#[test]
fn wrong_version() {
    let mut buf = encode(&sample(), DEFAULT_MAX_FRAME).unwrap();
    buf[0] = 2;
    assert!(matches!(decode::<Msg>(&buf, DEFAULT_MAX_FRAME), Err(CodecError::Version(2))));
}

#[test]
fn invalid_enum_tag() {
    // Msg has variants 0..=2.
    assert!(matches!(decode::<Msg>(&frame(&[3]), DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    assert!(matches!(decode::<Msg>(&frame(&[200]), DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    // Option tag other than 0/1.
    assert!(matches!(decode::<Msg>(&frame(&[2, 7, 0]), DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
}

/// bincode varint for 2^40 (0xFD marker + u64 little-endian).
fn len_2_pow_40() -> Vec<u8> {
    let mut p = vec![0xFD];
    p.extend_from_slice(&(1u64 << 40).to_le_bytes());
    p
}

#[test]
fn huge_declared_lengths_fail_fast() {
    let start = Instant::now();
    let mut payload = len_2_pow_40();
    payload.extend_from_slice(&[1, 2, 3]);
    let f = frame(&payload);
    assert!(matches!(decode::<Vec<u64>>(&f, DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    assert!(matches!(decode::<Vec<u8>>(&f, DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    assert!(matches!(decode::<String>(&f, DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    assert!(matches!(decode::<Blob>(&f, DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    assert!(matches!(decode::<Vec<String>>(&f, DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    // Nested: a message whose second field is a huge string.
    let mut nested = vec![1, 7, 0];
    nested.extend_from_slice(&len_2_pow_40());
    assert!(matches!(decode::<Msg>(&frame(&nested), DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    // Many strings each declaring just under the payload size: the limit is cumulative.
    let mut many = vec![100];
    for _ in 0..100 {
        many.extend_from_slice(&[0xFB, 0x00, 0x10]); // 4096
    }
    assert!(matches!(decode::<Vec<String>>(&frame(&many), DEFAULT_MAX_FRAME), Err(CodecError::Decode(_))));
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
}

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let valid = encode(&sample(), DEFAULT_MAX_FRAME).unwrap();
    for i in 0..5000 {
        let len = (rng.next() % 96) as usize;
        let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        match i % 3 {
            // Raw garbage: almost always fails on the header.
            0 => {}
            // A well-formed header around a garbage payload: exercises bincode.
            1 => buf = frame(&buf),
            // A valid frame with random bytes flipped.
            _ => {
                buf = valid.clone();
                for _ in 0..1 + rng.next() % 4 {
                    let at = (rng.next() as usize) % buf.len();
                    buf[at] = rng.next() as u8;
                }
            }
        }
        let _ = decode::<Msg>(&buf, DEFAULT_MAX_FRAME);
        let _ = decode::<Vec<String>>(&buf, DEFAULT_MAX_FRAME);
        let _ = decode::<(u8, Option<Blob>, i32)>(&buf, DEFAULT_MAX_FRAME);
    }
}

#[tokio::test]
async fn read_frame_from_stream() {
    let buf = encode(&sample(), DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(read_frame::<Msg, _>(&mut &buf[..], DEFAULT_MAX_FRAME).await.unwrap(), sample());

    // The header is enough to reject an oversized frame: no body is needed (or read).
    let header = [VERSION, 0x7f, 0xff, 0xff, 0xff];
    assert!(matches!(read_frame::<Msg, _>(&mut &header[..], DEFAULT_MAX_FRAME).await, Err(CodecError::TooLarge { .. })));

    assert!(matches!(
        read_frame::<Msg, _>(&mut &buf[..3], DEFAULT_MAX_FRAME).await,
        Err(CodecError::Truncated { expected: 5, got: 3 })
    ));
    assert!(matches!(
        read_frame::<Msg, _>(&mut &buf[..buf.len() - 2], DEFAULT_MAX_FRAME).await,
        Err(CodecError::Truncated { .. })
    ));
    let mut bad = buf.clone();
    bad[0] = 0;
    assert!(matches!(read_frame::<Msg, _>(&mut &bad[..], DEFAULT_MAX_FRAME).await, Err(CodecError::Version(0))));
    // A header declaring 2^40 elements inside a small frame.
    let mut payload = len_2_pow_40();
    payload.push(1);
    assert!(matches!(read_frame::<String, _>(&mut &frame(&payload)[..], DEFAULT_MAX_FRAME).await, Err(CodecError::Decode(_))));
}

/// bincode's limit counts in-memory sizes: a batch of small integers (Raft log ids, each a few varint bytes on the
/// wire and 8 bytes in memory) claims up to 8 times its length and must still decode. A restarted follower's
/// catch-up batch was refused as a bad frame when the limit was 4 times the payload.
#[test]
fn dense_small_integers_decode() {
    let ids: Vec<(u64, u64, u64)> = (0..5000).map(|i| (i % 7, i % 3, i % 100)).collect();
    let f = encode(&ids, DEFAULT_MAX_FRAME).unwrap();
    assert!(f.len() < ids.len() * 4, "varints: {} bytes", f.len());
    assert_eq!(decode::<Vec<(u64, u64, u64)>>(&f, DEFAULT_MAX_FRAME).unwrap(), ids);
    let lens: Vec<Vec<u64>> = vec![Vec::new(); 10_000];
    let f = encode(&lens, DEFAULT_MAX_FRAME).unwrap();
    assert_eq!(decode::<Vec<Vec<u64>>>(&f, DEFAULT_MAX_FRAME).unwrap(), lens);
}
