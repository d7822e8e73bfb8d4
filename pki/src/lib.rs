//! skep's cluster PKI: the root CA that every node trusts, the node certificates it signs (which carry
//! node ID, role and cluster ID), the join tokens that bootstrap trust in both directions, and the
//! rustls configurations of the cluster port built from all of it. Pure library: no I/O besides the
//! operating system's random source; the current time is taken from the system clock unless given
//! (`*_at` variants). See [`docs`] for the design.
//!
//! # Layout
//! - [`ca`]: [`RootCa`]: generate or load the CA, its digest, [`RootCa::sign_csr`].
//! - [`node`]: [`NodeKey`] (a node's private key and CSRs) and [`NodeTls`] (its PEM bundle for TLS).
//! - [`identity`]: [`PeerIdentity`] read from a certificate (its role is the API's `NodeRole`), the role's OU
//!   ([`role_ou`], [`role_from_ou`]), [`renewal_at`].
//! - [`token`]: [`JoinToken`] (`SWMTKN-1-<digest>-<secret>`).
//! - [`tls`]: rustls server, client and join-client configurations.
//! - [`api_tls`]: rustls configurations of the daemon's Docker API over TCP (`--tlsverify`), from the operator's files.
//! - [`rotation`]: root CA rotation: [`RootCa::cross_sign`], the `TLSInfo` of a cluster and of a node.
//! - [`seal`]: [`SecretKey`]: encryption at rest (the Raft data key, the autolock unlock key `SWMKEY-1-…`).
//! - [`error`] holds [`PkiError`].
//! - `base36`, `pem`: encodings (private).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms, clippy::disallowed_methods, clippy::disallowed_types)]
#![warn(missing_docs, clippy::dbg_macro, clippy::print_stdout)]

pub mod api_tls;
mod base36;
pub mod ca;
pub mod error;
pub mod identity;
pub mod node;
mod pem;
pub mod rotation;
pub mod seal;
pub mod tls;
pub mod token;

pub mod docs {
    #![doc = include_str!("../docs/pki.md")]
}

pub use ca::RootCa;
pub use error::PkiError;
pub use identity::{
    cert_not_after_unix, identity_from_cert_der, identity_from_cert_pem, renewal_at, role_from_ou,
    role_ou, PeerIdentity,
};
pub use node::{NodeKey, NodeTls};
pub use rotation::{node_tls_info, same_root_cert};
pub use seal::SecretKey;
pub use tls::JoinTrust;
pub use token::JoinToken;

/// The DNS name in every node certificate, and the server name every peer verifies.
pub const NODE_SAN: &str = "skep-node";
/// Certificate OU of managers.
pub const ROLE_MANAGER_OU: &str = "swarm-manager";
/// Certificate OU of workers.
pub const ROLE_WORKER_OU: &str = "swarm-worker";
