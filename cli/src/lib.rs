//! The `skep` binary's library: the daemon (a node) and the client commands (Docker-API clients of a daemon).
//!
//! # Layout
//! - [`daemon`]: `skep daemon`'s flags; the daemon itself is the `skep-node` crate.
//! - [`image`]: `skep image import`, a directory pushed to a registry as an image.
//! - [`client`]: every other subcommand: an HTTP client of the daemon's API that prints tables like Docker's.
#![forbid(unsafe_code)]

pub mod client;
pub mod daemon;
pub mod image;

/// Default API socket of the daemon and of the client.
pub const DEFAULT_HOST: &str = skep_node::DEFAULT_HOST;
