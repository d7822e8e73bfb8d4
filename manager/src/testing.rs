//! Builders the unit tests of several modules share (test builds only).

use skep_api::docker::{Task, TaskState, TaskStatus};

/// A task on `node` (empty: not placed) in `state`, meant to be in `desired`.
pub(crate) fn task(id: &str, node: &str, state: TaskState, desired: TaskState) -> Task {
    Task { id: id.into(), node_id: node.into(), desired_state: desired, status: TaskStatus { state, ..Default::default() }, ..Default::default() }
}
