//! skep's registry client: from an image reference to the node's platform manifest, its config and its layers,
//! from OCI and Docker v2 registries, with token and basic auth; every blob checked against its digest and every
//! answer bounded. Hand-written over hyper (already in the tree) rather than through `oci-client`, whose reqwest
//! stack would double the node's dependency tree for the five endpoints used here.
//!
//! Used by the manager's `GET /distribution/{name}/json` (pinning services to digests), and by the embedded engine
//! pulling images.
//!
//! # Layout
//! - [`client`]: a [`Session`] with one repository: manifests, blobs, resolve, pull, push.
//! - [`manifest`]: manifests, indexes, configs, platform choice (pure).
//! - [`build`]: small images made and pushed (the import command, tests).
//! - [`auth`]: `X-Registry-Auth` credentials and `WWW-Authenticate` challenges.
//! - [`digest`]: sha256 digests.
//! - `http`: the HTTP/1.1 client under it (TLS, redirects, timeouts).
//! - `error`: the error type, [`RegistryError`].
//! - [`testing`]: a real registry (Debian's `docker-registry`) for tests; std only.

#![forbid(unsafe_code)]

pub mod auth;
pub mod build;
pub mod client;
pub mod digest;
pub mod error;
mod http;
pub mod manifest;
pub mod testing;

pub use auth::Credentials;
pub use client::{Client, Image, Resolved, Session};
pub use digest::{Digest, Hasher};
pub use error::RegistryError;
