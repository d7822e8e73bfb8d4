//! The `skep` binary's library: the daemon (a node) and the client commands (Docker-API clients of a daemon).
//!
//! # Layout
//! - [`daemon`]: `skep daemon`: the node supervisor, its on-disk state, and the Docker Engine API server.
//! - [`client`]: every other subcommand: an HTTP client of the daemon's API that prints tables like Docker's.
#![forbid(unsafe_code)]

pub mod client;
pub mod daemon;

/// Default API socket of the daemon and of the client.
pub const DEFAULT_HOST: &str = "unix:///run/skep/skep.sock";
