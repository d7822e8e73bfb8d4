//! Error types. Callers classify errors by variant (and by walking `source()`), never by message text.

use std::time::Duration;

/// Why a frame could not be encoded, read or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The frame's version byte is not one this build speaks.
    #[error("unsupported frame version {0} (this node speaks version {v})", v = crate::codec::VERSION)]
    Version(u8),
    /// The frame header declares a payload larger than the receiver accepts.
    #[error("frame declares a {declared}-byte payload, over the {max}-byte limit")]
    TooLarge {
        /// Payload length from the header.
        declared: usize,
        /// The receiver's limit.
        max: usize,
    },
    /// The message to send does not fit in one frame.
    #[error("message does not fit in a frame of at most {max} bytes")]
    MessageTooLarge {
        /// The sender's limit.
        max: usize,
    },
    /// The input ended before the frame did.
    #[error("truncated frame: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the frame needs (header or header + payload).
        expected: usize,
        /// Bytes that were available.
        got: usize,
    },
    /// Bytes follow the message inside the payload, or follow the frame in the buffer.
    #[error("{0} unexpected trailing bytes after the message")]
    Trailing(usize),
    /// The message could not be serialized.
    #[error("cannot encode message: {0}")]
    Encode(#[source] bincode::error::EncodeError),
    /// The payload is not a valid encoding of the expected message type.
    #[error("cannot decode message: {0}")]
    Decode(#[source] bincode::error::DecodeError),
    /// Reading the frame failed.
    #[error("cannot read frame: {0}")]
    Io(#[source] std::io::Error),
}

/// Why the server refused one request (it reset the stream with one of these codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reject {
    /// The request frame was malformed, too large, or not the message type the server expects.
    BadRequest,
    /// The request did not arrive in time.
    RequestTimeout,
    /// The server's response did not fit in a frame.
    ResponseTooLarge,
    /// The server could not encode its response.
    Internal,
    /// A code this build does not know.
    Other(u64),
}

impl Reject {
    pub(crate) const fn code(self) -> u32 {
        match self {
            Reject::BadRequest => 1,
            Reject::RequestTimeout => 2,
            Reject::ResponseTooLarge => 3,
            Reject::Internal => 4,
            // Never sent by this build; unknown codes decode to `Other`.
            Reject::Other(_) => 0,
        }
    }

    pub(crate) fn from_code(code: u64) -> Reject {
        match code {
            1 => Reject::BadRequest,
            2 => Reject::RequestTimeout,
            3 => Reject::ResponseTooLarge,
            4 => Reject::Internal,
            other => Reject::Other(other),
        }
    }
}

impl std::fmt::Display for Reject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reject::BadRequest => f.write_str("bad request frame"),
            Reject::RequestTimeout => f.write_str("request not received in time"),
            Reject::ResponseTooLarge => f.write_str("response too large"),
            Reject::Internal => f.write_str("server could not encode its response"),
            Reject::Other(code) => write!(f, "code {code}"),
        }
    }
}

/// Why an endpoint could not be created or an RPC failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The UDP socket could not be bound.
    #[error("cannot bind UDP {addr}: {source}")]
    Bind {
        /// The address we tried.
        addr: std::net::SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The rustls configuration cannot be used for QUIC (it needs TLS 1.3 with AES-128-GCM-SHA256).
    #[error("TLS configuration is not usable for QUIC: {0}")]
    TlsConfig(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// A [`TransportConfig`](crate::TransportConfig) value is out of range.
    #[error("invalid transport configuration: {0}")]
    Config(&'static str),
    /// The connection could not be started (e.g. invalid server name, address family mismatch).
    #[error("cannot connect: {0}")]
    Connect(#[source] quinn::ConnectError),
    /// The peer did not complete a handshake within the connect timeout: it is down or unreachable.
    #[error("no answer from peer within {0:?} (down or unreachable)")]
    ConnectTimeout(Duration),
    /// The TLS handshake failed: the peer refused our certificate, or we refused theirs.
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] quinn::ConnectionError),
    /// The QUIC connection failed or was closed (by the peer, idle timeout, or locally).
    #[error("connection failed: {0}")]
    Connection(#[source] quinn::ConnectionError),
    /// The server refused this request and reset the stream.
    #[error("peer rejected the request: {0}")]
    Rejected(Reject),
    /// The call did not complete within the RPC timeout.
    #[error("RPC timed out")]
    Timeout,
    /// The request could not be encoded or the response could not be read or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// This endpoint has been closed.
    #[error("endpoint closed")]
    Closed,
    /// A local I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl TransportError {
    /// Classify a connection-level error: a TLS alert (QUIC crypto error code 0x100..=0x1ff)
    /// sent or received means the handshake was refused.
    pub(crate) fn from_connection(e: quinn::ConnectionError) -> TransportError {
        let code = match &e {
            quinn::ConnectionError::TransportError(t) => Some(u64::from(t.code)),
            quinn::ConnectionError::ConnectionClosed(c) => Some(u64::from(c.error_code)),
            _ => None,
        };
        match code {
            Some(0x100..=0x1ff) => TransportError::Tls(e),
            _ => TransportError::Connection(e),
        }
    }

    pub(crate) fn from_write(e: quinn::WriteError) -> TransportError {
        match e {
            quinn::WriteError::Stopped(code) => TransportError::Rejected(Reject::from_code(code.into_inner())),
            quinn::WriteError::ConnectionLost(e) => TransportError::from_connection(e),
            quinn::WriteError::ClosedStream | quinn::WriteError::ZeroRttRejected => {
                TransportError::Io(std::io::Error::new(std::io::ErrorKind::NotConnected, e))
            }
        }
    }

    /// A response read failure arrives as `CodecError::Io` wrapping quinn's `ReadError`; surface the
    /// stream reset or connection failure it carries.
    pub(crate) fn from_read(e: CodecError) -> TransportError {
        if let CodecError::Io(io) = &e {
            if let Some(read) = io.get_ref().and_then(|inner| inner.downcast_ref::<quinn::ReadError>()) {
                match read {
                    quinn::ReadError::Reset(code) => {
                        return TransportError::Rejected(Reject::from_code(code.into_inner()))
                    }
                    quinn::ReadError::ConnectionLost(c) => return TransportError::from_connection(c.clone()),
                    _ => {}
                }
            }
        }
        TransportError::Codec(e)
    }
}
