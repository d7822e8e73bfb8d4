//! skep's embedded DNS: service discovery for tasks, as Docker's embedded DNS server at `127.0.0.11` does it.
//!
//! Every task runs in its own network namespace and resolves through `127.0.0.11:53` there. The worker daemon makes,
//! on a thread that entered the task's namespace, a UDP socket and a TCP listener bound to that address, and hands
//! them to [`serve`], which serves them on the daemon's tokio runtime (hickory-dns parses every query and serves TCP;
//! UDP, the hot path, has a receive loop of its own: see [`server`]). Answers come from a [`Records`]
//! table that the daemon rebuilds from its live copy of the cluster store on every change and publishes through a
//! `tokio::sync::watch` channel: each query reads the current table, so an answer follows a change at once.
//!
//! A task sees the names of the overlay networks it is attached to (its *scope*): service names and aliases (the VIP,
//! or the task addresses in dnsrr mode), `tasks.<service>` (the task addresses) and task names. Everything else is
//! forwarded to the host's resolvers ([`Upstream`]) from the daemon's own namespace. See [`server`] for the table of
//! what is answered how.
//!
//! # Layout
//!
//! - [`records`]: the name table per network ([`Records`], [`RecordsBuilder`]); scoped, case-insensitive lookups.
//! - [`server`]: [`serve`] and its [`DnsServer`] handle; the decision per query (local answer, rotation, forward,
//!   errors), the UDP loop and hickory's TCP server.
//! - [`upstream`]: the host's resolvers from resolv.conf, and forwarding with its bounds (timeouts, in-flight limit).
//! - [`counters`]: [`QueryCounters`], the queries answered by how (for the daemon's `/metrics`).
//! - [`error`]: the crate's [`Error`] type.
//!
//! # Logging
//!
//! hickory-server logs every request it serves (TCP here) at `info` (target `hickory_server`). A daemon whose log
//! filter is at `info` should add `hickory_server=warn`, or every TCP query of every task becomes two log lines.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
#![warn(missing_docs, clippy::dbg_macro, clippy::print_stdout)]

pub mod counters;
pub mod error;
pub mod records;
pub mod server;
pub mod upstream;

pub use counters::{QueryCounters, QueryResult};
pub use error::Error;
pub use records::{Records, RecordsBuilder};
pub use server::{serve, DnsServer, ANSWER_TTL, TCP_IDLE_TIMEOUT};
pub use upstream::Upstream;
