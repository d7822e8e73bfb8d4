//! Task status reports from nodes: which updates of a report the leader takes, and how reports arriving together are
//! gathered into one proposal.
//!
//! A node may only report on tasks assigned to it. Reports are gathered for [`STATUS_BATCH`] (at most
//! [`MAX_REPORTS`] of them) and proposed as one `ReportTaskStatus`: with thousands of tasks starting, a proposal per
//! report would be a Raft entry per task. Each reporter waits for the proposal and is told whether it was recorded
//! (the waiter is generic here; the runtime's is a oneshot channel).
//!
//! A node's first report on a task it was assigned also measures how long the assignment took to reach it
//! ([`assignment_delays`], for `/metrics`).

use crate::store::{ClusterState, Op};
use skep_api::docker::{TaskState, TaskStatus};
use std::time::{Duration, SystemTime};

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

/// How long each task of a report took to reach its node: for every task the store still has `assigned` and the
/// report moves on (accepted, or anything later: the node has it), the seconds from its `assigned` status timestamp
/// (written by the manager that placed it, with its clock) to `now` (the report's arrival at the leader). The
/// node's long poll and its agent's first step are in it; the proposal recording the report is not. A timestamp
/// that does not parse is skipped, one in the future (clocks of two managers apart) counts as 0. Each task once.
pub fn assignment_delays(state: &ClusterState, updates: &[Update], now: SystemTime) -> Vec<f64> {
    let mut seen: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for (id, status) in updates {
        let Some(t) = state.tasks.get(id) else { continue };
        if t.status.state != TaskState::Assigned || status.state <= TaskState::Assigned || seen.contains(&id.as_str())
        {
            continue;
        }
        seen.push(id);
        if let Some(placed) = skep_api::time::parse(&t.status.timestamp) {
            out.push(now.duration_since(placed).map_or(0.0, |d| d.as_secs_f64()));
        }
    }
    out
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
    fn a_nodes_first_report_on_an_assigned_task_measures_its_assignment_once() {
        let placed = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut st = ClusterState::default();
        for (id, state) in [("a", TaskState::Assigned), ("b", TaskState::Running), ("c", TaskState::Assigned)] {
            let mut t = Task { id: id.into(), node_id: "n1".into(), ..Default::default() };
            t.status = TaskStatus { state, timestamp: skep_api::time::format(placed), ..Default::default() };
            st.tasks.insert(id.into(), t);
        }
        st.tasks.get_mut("c").unwrap().status.timestamp = "garbage".into();
        let report = [
            ("a".to_string(), status(TaskState::Accepted)),
            ("a".to_string(), status(TaskState::Preparing)), // the same task again: once
            ("b".to_string(), status(TaskState::Failed)),    // not assigned any more: taken long ago
            ("c".to_string(), status(TaskState::Accepted)),  // no readable placement time
            ("ghost".to_string(), status(TaskState::Accepted)),
        ];
        let delays = assignment_delays(&st, &report, placed + Duration::from_millis(250));
        assert_eq!(delays, [0.25]);
        // a report that does not move the task on measures nothing; a placement in the future counts as 0
        assert!(assignment_delays(&st, &[("a".into(), status(TaskState::Assigned))], placed).is_empty());
        assert_eq!(assignment_delays(&st, &report[..1], placed - Duration::from_secs(1)), [0.0]);
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
