//! A skep node: what `skep daemon` runs. It serves the Docker Engine API (swarm subset) on its sockets and runs
//! whatever its swarm role needs: the QUIC endpoint, the agent and the task manager on every node, Raft and the store
//! on managers.
//!
//! The `skep` binary (crate `skep-cli`) only parses the daemon's flags and calls [`daemon::main`].
//!
//! # Layout
//! - [`daemon`]: the process: options, logging, the runtime, API listeners, signals.
//! - [`api`]: the HTTP routes (Docker Engine API v1.50 shapes), one file per kind of object.
//! - [`node`]: the node supervisor: lifecycle (init, join, leave, resume), role changes and renewal, and the control
//!   facade the routes call.
//! - [`metrics`]: `--metrics-addr`: the Prometheus endpoint (`GET /metrics`), what a scrape reads and shows.
//! - [`web`]: the web view (`/ui/` and `--web-addr`): the embedded page and the stream it follows.
//! - [`listen`]: the API's listeners: the unix socket's mode and group, TLS on TCP, connection limits and timeouts.
//! - [`error`]: the API's one error type and its mapping to HTTP statuses.
//! - [`addr`]: cluster addresses as init and join take them.
//! - [`state`]: what the node keeps on disk; [`keys`]: its keys at rest (the Raft data key, autolock's sealing).
//! - [`sysinfo`]: host facts for `/info` and the node description.
#![forbid(unsafe_code)]

pub mod addr;
pub mod api;
pub mod daemon;
pub mod error;
pub mod keys;
pub mod listen;
pub mod metrics;
pub mod node;
pub mod state;
pub mod sysinfo;
pub mod web;

/// Default API socket of the daemon (and of the client).
pub const DEFAULT_HOST: &str = "unix:///run/skep/skep.sock";
