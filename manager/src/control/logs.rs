//! `docker service logs` and `docker logs <task>`: which tasks to read, on which nodes, from the store. Pure: the
//! node's API reads the records from the nodes (`skep_node::api::logs`).
//!
//! A service's logs are those of its tasks that were placed on a node and got as far as starting (history
//! included: a task that exited keeps its output on its node until the node removes it). A task's node is
//! [`LogTarget::down`] when the managers see it down or it left the swarm: the reader then writes one error line
//! for each of its tasks instead of waiting on it, as Docker does not (moby/moby#33183).

use super::ControlError;
use crate::store::ClusterState;
use skep_api::docker::{NodeState, Task, TaskState};

/// One task whose logs to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogTarget {
    /// The task.
    pub task_id: String,
    /// Its service.
    pub service_id: String,
    /// Its node.
    pub node_id: String,
    /// The node's cluster address (`IP:port`).
    pub node_addr: String,
    /// Why the node cannot be asked (down, gone), if it cannot.
    pub down: Option<String>,
    /// The task may still write (its desired state is running and it has not ended): followers keep reading.
    pub live: bool,
}

/// Whether a task in `state` may have run, so may have output.
fn may_have_run(state: TaskState) -> bool {
    matches!(state, TaskState::Starting | TaskState::Running | TaskState::Complete | TaskState::Shutdown | TaskState::Failed)
}

fn target(st: &ClusterState, t: &Task) -> LogTarget {
    let node = st.nodes.get(&t.node_id);
    let down = match node {
        None => Some(format!("node {} is not in the swarm", t.node_id)),
        Some(n) if n.node.status.state == NodeState::Down => Some(format!("node {} is down", n.node.name())),
        Some(_) => None,
    };
    LogTarget {
        task_id: t.id.clone(),
        service_id: t.service_id.clone(),
        node_id: t.node_id.clone(),
        node_addr: node.map(|n| n.cluster_addr.clone()).unwrap_or_default(),
        down,
        live: t.status.state <= TaskState::Running && t.desired_state <= TaskState::Running,
    }
}

/// The tasks of service `reference` with output to read, oldest first, and whether the service has a TTY (raw
/// output, not multiplexed).
pub fn service_targets(st: &ClusterState, reference: &str) -> Result<(String, bool, Vec<LogTarget>), ControlError> {
    let svc = st.resolve_service(reference)?;
    let tty = svc.spec.task_template.container_spec.as_ref().is_some_and(|c| c.tty);
    let mut tasks: Vec<&Task> =
        st.tasks.values().filter(|t| t.service_id == svc.id && !t.node_id.is_empty() && may_have_run(t.status.state)).collect();
    tasks.sort_by(|a, b| (a.slot, &a.created_at, &a.id).cmp(&(b.slot, &b.created_at, &b.id)));
    Ok((svc.id.clone(), tty, tasks.into_iter().map(|t| target(st, t)).collect()))
}

/// Task `reference`, and whether it has a TTY. A task that never got to a node has no logs (Docker answers the same
/// way, with an empty stream).
pub fn task_target(st: &ClusterState, reference: &str) -> Result<(bool, Option<LogTarget>), ControlError> {
    let t = st.resolve_task(reference)?;
    let tty = t.spec.container_spec.as_ref().is_some_and(|c| c.tty);
    Ok((tty, (!t.node_id.is_empty() && may_have_run(t.status.state)).then(|| target(st, t))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use skep_api::docker::{Node, Service};

    fn state() -> ClusterState {
        let mut st = ClusterState::default();
        let mut svc = Service { id: "s1".into(), ..Default::default() };
        svc.spec.name = "web".into();
        st.services.insert("s1".into(), svc);
        for (id, down) in [("n1", false), ("n2", true)] {
            let mut node = Node { id: id.into(), ..Default::default() };
            node.status.state = if down { NodeState::Down } else { NodeState::Ready };
            st.nodes.insert(id.into(), NodeRecord { node, raft_id: None, cluster_addr: format!("{id}:2377") });
        }
        let task = |id: &str, slot, node: &str, state, desired| {
            let mut t = Task { id: id.into(), service_id: "s1".into(), slot, node_id: node.into(), desired_state: desired, ..Default::default() };
            t.status.state = state;
            t
        };
        for t in [
            task("t1", 1, "n1", TaskState::Running, TaskState::Running),
            task("t0", 1, "n1", TaskState::Failed, TaskState::Shutdown),
            task("t2", 2, "n2", TaskState::Running, TaskState::Running),
            task("t3", 3, "gone", TaskState::Complete, TaskState::Shutdown),
            task("t4", 4, "", TaskState::Pending, TaskState::Running),
            task("t5", 5, "n1", TaskState::Assigned, TaskState::Running),
        ] {
            st.tasks.insert(t.id.clone(), t);
        }
        st
    }

    #[test]
    fn a_service_reads_every_task_that_ran_and_names_down_nodes() {
        let st = state();
        let (id, tty, ts) = service_targets(&st, "web").unwrap();
        assert_eq!((id.as_str(), tty), ("s1", false));
        let seen: Vec<(&str, bool, bool)> = ts.iter().map(|t| (t.task_id.as_str(), t.down.is_some(), t.live)).collect();
        assert_eq!(seen, vec![("t0", false, false), ("t1", false, true), ("t2", true, true), ("t3", true, false)]);
        assert_eq!(ts[1].node_addr, "n1:2377");
        assert_eq!(ts[3].down.as_deref(), Some("node gone is not in the swarm"));
        assert!(matches!(service_targets(&st, "nope"), Err(ControlError::NotFound(m)) if m == "service nope not found"));
    }

    #[test]
    fn a_task_without_a_node_has_no_logs() {
        let st = state();
        assert_eq!(task_target(&st, "t4").unwrap().1, None);
        assert_eq!(task_target(&st, "t1").unwrap().1.unwrap().node_id, "n1");
        assert!(matches!(task_target(&st, "zz"), Err(ControlError::NotFound(_))));
    }
}
