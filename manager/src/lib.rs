//! The skep manager: the replicated cluster store and what runs on top of it.
//!
//! # Layout
//! - [`store`]: cluster state and commands; `apply` is pure and deterministic.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod control;
pub mod dispatcher;
pub mod netview;
pub mod orchestrator;
pub mod raft;
pub mod runtime;
pub mod scheduler;
pub mod store;
