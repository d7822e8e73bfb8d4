//! Frames: one message per frame, size-bounded on both ends.
//!
//! ```text
//! [u8 version = 1][u32 big-endian payload length][payload = bincode::serde, config::standard()]
//! ```
//!
//! Decoding never trusts a length before checking it: the header length against `max` (before any
//! body is read), the payload against the bytes actually present, and every string or byte buffer
//! inside the payload against a bincode byte limit (so a 5-byte payload claiming a 2^40-byte string
//! fails instead of allocating).

use serde::{de::DeserializeOwned, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

pub use crate::error::CodecError;

/// Default maximum payload size: 16 MiB.
pub const DEFAULT_MAX_FRAME: usize = 16 * 1024 * 1024;

/// The frame format version written by this build.
pub const VERSION: u8 = 1;

/// Header size: version byte + u32 length.
pub const HEADER_LEN: usize = 5;

/// Initial body buffer when reading from a stream; it grows only as bytes actually arrive, so a
/// header declaring `max` bytes costs nothing until the peer sends them.
const READ_CHUNK: usize = 64 * 1024;

/// `max` can never exceed what the u32 length field can carry.
fn effective_max(max: usize) -> usize {
    max.min(u32::MAX as usize)
}

/// Encode `msg` as one frame. Fails with [`CodecError::MessageTooLarge`] as soon as the payload
/// would exceed `max` bytes (the message is not serialized past that point).
pub fn encode<T: Serialize + ?Sized>(msg: &T, max: usize) -> Result<Vec<u8>, CodecError> {
    let max = effective_max(max);
    let mut w = FrameWriter { buf: Vec::with_capacity(64), max, overflow: false };
    w.buf.push(VERSION);
    w.buf.extend_from_slice(&[0; 4]);
    match bincode::serde::encode_into_writer(msg, &mut w, bincode::config::standard()) {
        Ok(()) => {}
        Err(_) if w.overflow => return Err(CodecError::MessageTooLarge { max }),
        Err(e) => return Err(CodecError::Encode(e)),
    }
    let len = w.buf.len() - HEADER_LEN;
    // `len <= max <= u32::MAX`, checked by the writer.
    let len = u32::try_from(len).map_err(|_| CodecError::MessageTooLarge { max })?;
    w.buf[1..HEADER_LEN].copy_from_slice(&len.to_be_bytes());
    Ok(w.buf)
}

/// A bincode writer that refuses to grow the payload past `max`.
struct FrameWriter {
    buf: Vec<u8>,
    max: usize,
    overflow: bool,
}

impl bincode::enc::write::Writer for FrameWriter {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        let payload = self.buf.len() - HEADER_LEN;
        if bytes.len() > self.max - payload {
            self.overflow = true;
            return Err(bincode::error::EncodeError::Other("frame size limit exceeded"));
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }
}

/// Parse a header: version and declared payload length, checked against `max`.
fn parse_header(header: [u8; HEADER_LEN], max: usize) -> Result<usize, CodecError> {
    if header[0] != VERSION {
        return Err(CodecError::Version(header[0]));
    }
    let declared = u32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
    if declared > effective_max(max) {
        return Err(CodecError::TooLarge { declared, max });
    }
    Ok(declared)
}

/// Decode one whole frame from `buf`: checks the version, that the declared length is at most
/// `max`, that `buf` holds exactly one frame (no trailing bytes), and decodes with a byte limit.
/// Never panics.
pub fn decode<T: DeserializeOwned>(buf: &[u8], max: usize) -> Result<T, CodecError> {
    let Some((header, payload)) = buf.split_first_chunk::<HEADER_LEN>() else {
        return Err(CodecError::Truncated { expected: HEADER_LEN, got: buf.len() });
    };
    let declared = parse_header(*header, max)?;
    match payload.len().cmp(&declared) {
        std::cmp::Ordering::Less => Err(CodecError::Truncated {
            expected: HEADER_LEN + declared,
            got: buf.len(),
        }),
        std::cmp::Ordering::Greater => Err(CodecError::Trailing(payload.len() - declared)),
        std::cmp::Ordering::Equal => decode_payload(payload),
    }
}

/// Read one frame from `r`: the 5-byte header first (rejecting a length over `max` before reading
/// any body), then exactly the declared payload. Does not time out by itself: wrap it in
/// `tokio::time::timeout`.
///
/// The body buffer grows as bytes arrive (instead of allocating the declared length up front), so
/// a peer pays in bandwidth for every byte of memory it makes us hold.
pub async fn read_frame<T, R>(r: &mut R, max: usize) -> Result<T, CodecError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    let mut header = [0u8; HEADER_LEN];
    let mut got = 0;
    while got < HEADER_LEN {
        match r.read(&mut header[got..]).await.map_err(CodecError::Io)? {
            0 => return Err(CodecError::Truncated { expected: HEADER_LEN, got }),
            n => got += n,
        }
    }
    let declared = parse_header(header, max)?;
    let mut body = Vec::with_capacity(declared.min(READ_CHUNK));
    r.take(declared as u64).read_to_end(&mut body).await.map_err(CodecError::Io)?;
    if body.len() < declared {
        return Err(CodecError::Truncated {
            expected: HEADER_LEN + declared,
            got: HEADER_LEN + body.len(),
        });
    }
    decode_payload(&body)
}

/// Decode a payload that must be exactly one message.
///
/// bincode's serde path allocates a `String` or byte buffer of the declared length *before*
/// checking the input holds that many bytes; its only guard is the config's byte limit, which is a
/// const generic. That limit counts *in-memory* sizes, not wire bytes: a `u64`, `i64`, `usize`
/// (every sequence length) or `f64` claims 8 bytes even when the varint encoding wrote it in one,
/// an enum tag claims 4. Valid input therefore claims at most 8 times its own length (skep's
/// messages carry no 128-bit integers), so we pick the smallest limit from a fixed ladder (powers
/// of 2) that is at least 8 times the payload length. A batch of Raft entries full of small log
/// ids claims about that much; with a tighter limit it was refused as "bad request frame" and a
/// restarted follower could never catch up. Hostile input can make us allocate at most 16 times
/// its own size (minimum 32 KiB) before failing.
///
/// Not covered: a sequence of zero-sized elements (`Vec<()>`) declaring 2^40 entries costs time,
/// not memory; skep messages contain no such types.
fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let claim = payload.len().saturating_mul(CLAIM_PER_BYTE);
    macro_rules! ladder {
        ($($limit:expr),+ $(,)?) => {
            $(
                if claim <= $limit {
                    return finish(
                        bincode::serde::decode_from_slice(payload, bincode::config::standard().with_limit::<{ $limit }>()),
                        payload.len(),
                    );
                }
            )+
        };
    }
    ladder!(
        1 << 15, 1 << 16, 1 << 17, 1 << 18, 1 << 19, 1 << 20, 1 << 21, 1 << 22, 1 << 23, 1 << 24, 1 << 25, 1 << 26,
        1 << 27, 1 << 28, 1 << 29, 1 << 30, 1 << 31, 1 << 32, 1 << 33, 1 << 34, 1 << 35
    );
    finish(
        bincode::serde::decode_from_slice(payload, bincode::config::standard().with_limit::<{ 1usize << 36 }>()),
        payload.len(),
    )
}

/// The most bytes bincode's limit counts for one byte of valid input (a varint `u64` of one byte
/// counts as 8).
const CLAIM_PER_BYTE: usize = 8;

fn finish<T>(res: Result<(T, usize), bincode::error::DecodeError>, len: usize) -> Result<T, CodecError> {
    let (msg, used) = res.map_err(CodecError::Decode)?;
    if used != len {
        return Err(CodecError::Trailing(len - used));
    }
    Ok(msg)
}

#[cfg(test)]
mod tests;
