//! Node-to-node RPC for the cluster (Raft messages, worker heartbeats, joins) over QUIC with
//! mutual TLS.
//!
//! One [`Endpoint`] per node serves and calls on the same UDP socket. Each RPC is one
//! bidirectional stream: the caller writes one request frame and finishes its side, the server
//! reads exactly one frame, runs the [`Handler`], writes one response frame and finishes.
//! Connections to a peer are cached and reused; a failed one is redialed on the next call.
//! Every input is bounded: frame size ([`TransportConfig::max_frame`]), connections
//! ([`TransportConfig::max_connections`]), streams per connection, and time (read, handshake,
//! whole call).
//!
//! TLS policy (which CA, which roles may call what) belongs to the caller: it passes ready rustls
//! configs, and handlers see the verified chain in [`Peer::certs`].
//!
//! # Layout
//! - [`codec`]: the frame format (`[version][u32 length][bincode]`), bounded encode/decode/read.
//! - `config`: [`TransportConfig`] and its mapping to quinn settings.
//! - `endpoint`: [`Endpoint`] construction, TLS swap, close.
//! - `client`: [`Endpoint::call`], [`Endpoint::call_with`], the connection cache.
//! - `server`: [`Handler`], [`Peer`], [`Endpoint::serve`] (accept loop, per-stream tasks).
//! - `error`: [`TransportError`], [`CodecError`], [`Reject`].
//! - [`leader`]: [`LeaderCaller`]: reaching the leader through the known managers (skep's wire messages).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms, clippy::disallowed_methods, clippy::disallowed_types)]
#![warn(missing_docs, clippy::dbg_macro, clippy::print_stdout)]

pub mod codec;
pub mod leader;
mod client;
mod config;
mod endpoint;
mod error;
mod server;

pub use config::TransportConfig;
pub use endpoint::Endpoint;
pub use error::{CodecError, Reject, TransportError};
pub use leader::{LeaderCaller, LeaderError, Policy};
pub use server::{Handler, Peer};

#[cfg(test)]
mod tests;
