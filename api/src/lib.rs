//! The skep object model as the Docker Engine API spells it, and the messages nodes send each other.
//!
//! skep's daemon API *is* the Docker Engine API (swarm subset, v1.50 shapes), so the objects the store keeps are the
//! JSON shapes the stock `docker` CLI reads: one set of types serves the HTTP API, the `skep` CLI and the Raft store.
//! This crate does no I/O and knows nothing of tokio: it is shared by every other crate.
//!
//! # Layout
//! - [`docker`]: JSON shapes (swarm, nodes, info, version, errors) with Go's field names, and their defaults; the
//!   node vocabulary (`NodeRole`, `Availability`, `NodeState`, `Reachability`) as enums spelled as Docker spells them.
//! - [`filters`]: the `filters=` query parameter (both JSON forms) and its matching rules.
//! - [`id`]: swarmkit-style 25-character base36 IDs.
//! - [`netview`]: what a node must know about the networks (sent with its assignments).
//! - [`time`]: RFC 3339 timestamps with nanoseconds, as Go writes them.
//! - [`wire`]: requests and responses between nodes over the QUIC transport.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod docker;
pub mod filters;
pub mod id;
pub mod logs;
pub mod netview;
pub mod time;
pub mod wire;
