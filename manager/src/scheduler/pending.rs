//! One scheduling round over the store: the scheduler's adapter from a state to the store ops that record its
//! decisions. Pending tasks (not placed, meant to run) go to [`Scheduler::place`]; a placement becomes the task
//! assigned to its node (`NodeID` set, state ASSIGNED), a task that fits nowhere gets the reason in `Status.Err`
//! (only when the reason changed, so that a task that keeps not fitting does not make a proposal every round).
//!
//! Pure: the time is passed in (`now_ns`, for the status timestamps). The leader's reconcile loop
//! (`runtime/reconcile.rs`) proposes what [`schedule`] returns.

use super::{Decision, Scheduler};
use crate::store::{ClusterState, Op};
use skep_api::docker::{Task, TaskState, TaskStatus};

/// Place pending tasks; record "no suitable node" reasons on those that fit nowhere (only when the reason changed).
pub fn schedule(state: &ClusterState, now_ns: i64) -> Vec<Op> {
    let pending: Vec<&Task> = state
        .tasks
        .values()
        .filter(|t| t.status.state == TaskState::Pending && t.node_id.is_empty() && t.desired_state <= TaskState::Running)
        .collect();
    if pending.is_empty() {
        return vec![];
    }
    let mut s = Scheduler::new(state);
    let decisions = s.place(&pending);
    let ts = skep_api::time::format_unix_nanos(now_ns.max(0) as u128);
    let mut put = Vec::new();
    for (t, d) in pending.iter().zip(decisions) {
        match d {
            Decision::Assign { node_id, .. } => {
                let mut t = (*t).clone();
                t.node_id = node_id;
                t.status = TaskStatus {
                    timestamp: ts.clone(),
                    state: TaskState::Assigned,
                    message: "scheduler assigned task to node".into(),
                    ..Default::default()
                };
                put.push(t);
            }
            Decision::NoFit { reason, .. } => {
                if t.status.err != reason {
                    let mut t = (*t).clone();
                    t.status.err = reason;
                    t.status.timestamp = ts.clone();
                    put.push(t);
                }
            }
        }
    }
    if put.is_empty() {
        vec![]
    } else {
        vec![Op::PutTasks { tasks: put }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use skep_api::docker::{Availability, Node, NodeState};

    const NOW: i64 = 1_700_000_000_000_000_000;

    fn state(nodes: &[&str], tasks: &[(&str, &str, TaskState, TaskState)]) -> ClusterState {
        let mut s = ClusterState::default();
        for id in nodes {
            let mut node = Node { id: id.to_string(), ..Default::default() };
            node.spec.availability = Availability::Active;
            node.status.state = NodeState::Ready;
            s.nodes.insert(id.to_string(), NodeRecord { node, ..Default::default() });
        }
        for (id, node, state, desired) in tasks {
            let t = Task {
                id: id.to_string(),
                service_id: "s1".into(),
                node_id: node.to_string(),
                desired_state: *desired,
                status: TaskStatus { state: *state, ..Default::default() },
                ..Default::default()
            };
            s.tasks.insert(id.to_string(), t);
        }
        s
    }

    #[test]
    fn pending_tasks_are_assigned_in_one_op_and_others_left_alone() {
        let s = state(
            &["n1"],
            &[
                ("a", "", TaskState::Pending, TaskState::Running),
                ("b", "n1", TaskState::Running, TaskState::Running), // placed already
                ("c", "", TaskState::Pending, TaskState::Shutdown), // no longer meant to run
            ],
        );
        let ops = schedule(&s, NOW);
        let [Op::PutTasks { tasks }] = &ops[..] else { panic!("{ops:?}") };
        assert_eq!(tasks.len(), 1);
        assert_eq!((tasks[0].id.as_str(), tasks[0].node_id.as_str(), tasks[0].status.state), ("a", "n1", TaskState::Assigned));
        assert_eq!(tasks[0].status.message, "scheduler assigned task to node");
        assert_eq!(tasks[0].status.timestamp, skep_api::time::format_unix_nanos(NOW as u128));
        // nothing pending: nothing to propose
        assert!(schedule(&state(&["n1"], &[("b", "n1", TaskState::Running, TaskState::Running)]), NOW).is_empty());
    }

    #[test]
    fn a_task_that_fits_nowhere_gets_its_reason_once() {
        let mut s = state(&[], &[("a", "", TaskState::Pending, TaskState::Running)]);
        let ops = schedule(&s, NOW);
        let [Op::PutTasks { tasks }] = &ops[..] else { panic!("{ops:?}") };
        assert!(tasks[0].node_id.is_empty());
        assert_eq!(tasks[0].status.state, TaskState::Pending);
        assert!(tasks[0].status.err.starts_with("no suitable node"), "{}", tasks[0].status.err);
        // recorded: the same reason again proposes nothing
        s.tasks.insert("a".into(), tasks[0].clone());
        assert!(schedule(&s, NOW).is_empty());
    }
}
