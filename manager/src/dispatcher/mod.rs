//! The dispatcher: everything about nodes' sessions with the leader. A node heartbeats, long-polls its assignments
//! and reports the status of its tasks; the leader decides from those who is alive, what each node is sent and what
//! goes into the store. This is where a change to what travels with an assignment (secrets, configs) or back from a
//! node (logs, health) belongs.
//!
//! Everything here is pure: state and facts in (a store version, a heartbeat, a report, the time as an `Instant`
//! passed in), answers and store [`Op`](crate::store::Op)s out. The async drivers are all in `runtime`:
//! `runtime/dispatch.rs` serves the session RPCs and runs the loops that publish store versions to the long polls
//! and batch status reports; `runtime/leader.rs` runs the liveness check. Nothing here locks, waits or proposes.
//!
//! # Layout
//! - [`liveness`]: heartbeat deadlines and the down verdicts ([`Liveness`]).
//! - [`heartbeat`]: the answer to a heartbeat and what it records in the store; the managers a node is told about.
//! - [`assignments`]: which tasks a node is sent, their digest, and the per-version cache the long polls answer from.
//! - [`dependencies`]: the secrets and configs a node's tasks need, and their content (templates rendered per task).
//! - `sent`: what each node was last sent, so that the next answer carries only the changes.
//! - [`status`]: task status reports: what a node may report, and how reports are gathered into one proposal.

pub mod assignments;
pub mod dependencies;
pub mod heartbeat;
pub mod liveness;
mod sent;
pub mod status;

pub use assignments::{assignments_for, digest};
pub use heartbeat::manager_peers;
pub use liveness::{BeatCounts, Liveness};
pub(crate) use sent::Sent;

use crate::store::ClusterState;

/// What a node that is not (yet) in the leader's replica is told, on any session RPC. Retryable: a node that was
/// removed is refused before this (see `rpc::authorize`); anything else is a race with its own join being applied.
pub const UNKNOWN_NODE: &str = "this node is not known to the managers yet";

/// The cluster's heartbeat period in nanoseconds; 1 s before the cluster record exists.
pub fn heartbeat_period_ns(state: &ClusterState) -> i64 {
    state.cluster.as_ref().map(|c| c.info.spec.heartbeat_period_ns()).unwrap_or(1_000_000_000)
}
