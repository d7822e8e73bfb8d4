//! Task status reports from nodes: which updates of a report the leader takes, and how reports arriving together are
//! gathered into one proposal.
//!
//! A node may only report on tasks assigned to it. Reports are gathered for [`STATUS_BATCH`] (at most
//! [`MAX_REPORTS`] of them) and proposed as one `ReportTaskStatus`: with thousands of tasks starting, a proposal per
//! report would be a Raft entry per task. Each reporter waits for the proposal and is told whether it was recorded
//! (the waiter is generic here; the runtime's is a oneshot channel).

use crate::store::{ClusterState, Op};
use skep_api::docker::TaskStatus;
use std::time::Duration;

/// Status reports are gathered this long before one proposal carries them all.
pub const STATUS_BATCH: Duration = Duration::from_millis(20);

/// Reports (RPCs, not updates) one proposal carries at most.
pub const MAX_REPORTS: usize = 1000;

/// One task's new status, by task ID.
pub type Update = (String, TaskStatus);

/// The updates of `node_id`'s report that are about its own tasks; the others are dropped.
pub fn own_updates(state: &ClusterState, node_id: &str, updates: Vec<Update>) -> Vec<Update> {
    updates.into_iter().filter(|(t, _)| state.tasks.get(t).is_some_and(|t| t.node_id == node_id)).collect()
}

/// Reports gathered for one proposal, and who waits for each.
#[derive(Debug)]
pub struct StatusBatch<W> {
    updates: Vec<Update>,
    waiters: Vec<W>,
}

impl<W> StatusBatch<W> {
    /// A batch opened by its first report.
    pub fn new(updates: Vec<Update>, waiter: W) -> StatusBatch<W> {
        StatusBatch { updates, waiters: vec![waiter] }
    }

    /// Add a report; its updates follow the earlier ones (a task's later status wins when applied in order).
    pub fn push(&mut self, updates: Vec<Update>, waiter: W) {
        self.updates.extend(updates);
        self.waiters.push(waiter);
    }

    /// Whether the batch holds [`MAX_REPORTS`] and must go now.
    pub fn is_full(&self) -> bool {
        self.waiters.len() >= MAX_REPORTS
    }

    /// The proposal carrying every update, and the waiters to tell its outcome.
    pub fn into_op(self) -> (Op, Vec<W>) {
        (Op::ReportTaskStatus { updates: self.updates }, self.waiters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_api::docker::{Task, TaskState};

    fn status(state: TaskState) -> TaskStatus {
        TaskStatus { state, ..Default::default() }
    }

    #[test]
    fn a_node_may_only_report_on_its_own_tasks() {
        let mut st = ClusterState::default();
        for (id, node) in [("a", "n1"), ("b", "n2")] {
            st.tasks.insert(id.into(), Task { id: id.into(), node_id: node.into(), ..Default::default() });
        }
        let report = vec![
            ("a".to_string(), status(TaskState::Running)),
            ("b".to_string(), status(TaskState::Failed)),
            ("ghost".to_string(), status(TaskState::Running)),
        ];
        let mine = own_updates(&st, "n1", report);
        assert_eq!(mine.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn reports_go_out_in_arrival_order_in_one_op_and_a_full_batch_says_so() {
        let mut b = StatusBatch::new(vec![("a".into(), status(TaskState::Starting))], 1);
        b.push(vec![("b".into(), status(TaskState::Running)), ("a".into(), status(TaskState::Running))], 2);
        assert!(!b.is_full());
        let (op, waiters) = b.into_op();
        assert_eq!(waiters, [1, 2]);
        let Op::ReportTaskStatus { updates } = op else { panic!("{op:?}") };
        let order: Vec<_> = updates.iter().map(|(t, s)| (t.as_str(), s.state)).collect();
        assert_eq!(order, [("a", TaskState::Starting), ("b", TaskState::Running), ("a", TaskState::Running)]);
        let mut b = StatusBatch::new(vec![], 0);
        for w in 1..MAX_REPORTS {
            assert!(!b.is_full());
            b.push(vec![], w);
        }
        assert!(b.is_full());
    }
}
