//! The skep manager: the replicated cluster store and what runs on top of it. Managers keep the store in Raft; the
//! leader turns services into tasks, places them, hands them to nodes and follows their status. Everything that
//! decides is a pure function of a store snapshot (state in, store ops out); only [`runtime`] touches the network,
//! the disk and the clock, and proposes what the others decide.
//!
//! The way a request travels: API handler → [`control`] (validated into an op) → [`runtime`] (proposed through
//! [`raft`]) → [`store`] (applied) → the leader's watchers: [`orchestrator`], [`scheduler`], [`allocator`] (inside
//! the store's apply) → [`dispatcher`] (assignments to nodes) → the node's agent → status back through the
//! [`dispatcher`].
//!
//! # Layout
//! - [`store`]: cluster state and commands; `apply` is pure and deterministic.
//! - [`raft`]: openraft's type config, the segment log store, the state machine and the Raft network over QUIC.
//! - [`control`]: swarm, node, service and network operations: a request checked against a state, as a store op.
//! - [`orchestrator`]: services into tasks (replicated, global, restarts, updates, the reaper), and the shape of a
//!   round's proposals.
//! - [`scheduler`]: a node for each pending task (filters, spread, preferences), and a round of it as store ops.
//! - [`allocator`]: subnets, VXLAN IDs, addresses and VIPs for networks, services and tasks; published ports.
//! - [`template`]: templated secrets and configs: the subset of Go's templates skep parses (at create) and
//!   renders (for each task, in the dispatcher).
//! - [`netview`]: each node's view of the networks it takes part in, sent with its assignments.
//! - [`dispatcher`]: nodes' sessions with the leader: liveness, assignments (cache, incremental answers), heartbeats
//!   and status reports.
//! - [`events`]: what changed between two versions of the store, as Docker's `/events` reports it.
//! - [`ca`]: admission: who gets a node certificate for which ID and role (join and renewal).
//! - [`role_manager`]: demotions carried out in the Raft membership.
//! - [`rpc`]: the entry of node-to-manager RPCs: the caller's identity, what it may call, the transport handler.
//! - [`runtime`]: the [`Manager`](runtime::Manager): the Raft shell (start, reads, proposals, forwarding,
//!   membership) and the async drivers of everything above.
//! - `testing` (test builds only): builders the unit tests of several modules share.
#![forbid(unsafe_code)]

pub mod allocator;
pub mod ca;
pub mod control;
pub mod dispatcher;
pub mod events;
pub mod netview;
pub mod orchestrator;
pub mod raft;
pub mod role_manager;
pub mod rpc;
pub mod runtime;
pub mod scheduler;
pub mod store;
pub mod template;
#[cfg(test)]
mod testing;
