//! The cluster CA's decisions: who may have a node certificate, for which node ID and role, and what a node that is
//! admitted adds to the store. The certificate mechanics (keys, CSRs, signing, join tokens) are the `skep-pki`
//! crate's; this module holds the policy, as swarmkit's `ca/server.go` (`IssueNodeCertificate`) does.
//!
//! Pure: a store snapshot, the request and the time in; a certificate and store ops out. The runtime serves the
//! `Join` and `RenewCert` RPCs by calling [`admit`] and proposing what it returns (`runtime/admission.rs`).
//!
//! # Layout
//! - [`admission`]: [`admit`] for joins and renewals, its request and error types.
//! - [`rotation`]: root CA rotation: what `swarm update` asks, the new root, who signs, when it is finished.
//! - `tests`: every refusal and both roles, against a real CA.

pub mod admission;
pub mod rotation;
#[cfg(test)]
mod tests;

pub use admission::{admit, Admitted, AdmissionError, AdmissionRequest, BAD_TOKEN};
