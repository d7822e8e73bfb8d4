//! What the leader last sent each node, so that the next answer to its long poll can be the changes alone.
//!
//! Assignments are incremental, as swarmkit's: when the node's `known` digest is that of the set last sent to it,
//! the answer is `AssignmentChanges` (tasks new to the set or whose desired state changed, IDs that left it, and
//! likewise the secrets and configs the set needs); otherwise (a restart, a leader change, a lost answer) it is the
//! whole set. Secret and config contents are bounded per answer ([`MAX_DEPENDENCY_BYTES`]).

use super::assignments::NodeAssignments;
use super::dependencies::{content, task_dependencies};
use crate::store::ClusterState;
use skep_api::docker::{Task, TaskState};
use skep_api::wire::{assignment_digest, dependency_digest, Dependency, DependencyContent, DependencyKey, Response};
use std::collections::{BTreeMap, BTreeSet};

/// Most bytes of secret and config content one answer carries, well below the transport's frame limit: what does
/// not fit goes with the next answer, and so do the tasks that need it.
pub(crate) const MAX_DEPENDENCY_BYTES: usize = 32 << 20;

/// What the leader last sent a node: the digest the node will send back as `known`, the set's `(ID, desired
/// state)` pairs and the dependencies it holds, so that the next answer can be the changes alone.
#[derive(Default)]
struct Record {
    digest: u64,
    tasks: BTreeMap<String, TaskState>,
    deps: BTreeSet<DependencyKey>,
}

/// What the leader last sent each node.
#[derive(Default)]
pub(crate) struct Sent {
    by_node: std::collections::HashMap<String, Record>,
}

impl Sent {
    /// The answer to a long poll from `node_id` holding `known`: the changes since the set last sent, when `known`
    /// is that set's digest, else the whole set; `now` is what the node should hold (from the
    /// [`AssignmentCache`](super::assignments::AssignmentCache)). Records what is sent.
    pub(crate) fn answer(&mut self, node_id: &str, known: u64, now: &NodeAssignments) -> Response {
        self.answer_within(node_id, known, now, MAX_DEPENDENCY_BYTES)
    }

    fn answer_within(&mut self, node_id: &str, known: u64, now: &NodeAssignments, budget: usize) -> Response {
        let prev = self.by_node.remove(node_id).filter(|r| known != 0 && r.digest == known);
        let whole = prev.is_none();
        let prev = prev.unwrap_or_default();
        // dependencies: keep what the node holds and still needs; add what is new, within the byte budget
        let mut held: BTreeSet<DependencyKey> = prev.deps.intersection(&now.deps).cloned().collect();
        let (mut added, mut withheld, mut bytes) = (Vec::<Dependency>::new(), BTreeSet::new(), 0usize);
        for key in now.deps.difference(&prev.deps) {
            let Some(dep) = content(&now.state, key) else { continue };
            let size = match &dep.content {
                DependencyContent::Data(d) => d.len(),
                DependencyContent::Error(e) => e.len(),
            };
            if bytes + size > budget && !added.is_empty() {
                withheld.insert(key.clone());
                continue;
            }
            bytes += size;
            held.insert(key.clone());
            added.push(dep);
        }
        // a task new to the node that needs something withheld waits for the next answer
        let sendable = |t: &&Task| {
            withheld.is_empty()
                || prev.tasks.contains_key(&t.id)
                || !task_dependencies(&now.state, t).iter().any(|k| withheld.contains(k))
        };
        let tasks: Vec<&Task> = now.tasks().filter(sendable).collect();
        let record: BTreeMap<String, TaskState> = tasks.iter().map(|t| (t.id.clone(), t.desired_state)).collect();
        // an answer that left something out must not carry the digest of the whole: the node's next poll comes back
        // at once for the rest
        let digest = if withheld.is_empty() { now.digest } else { (now.digest ^ 0x9e37_79b9_7f4a_7c15) | 1 };
        let network = (*now.view).clone();
        let reply = if whole {
            Response::Assignments { digest, tasks: tasks.into_iter().cloned().collect(), network, dependencies: added }
        } else {
            Response::AssignmentChanges {
                digest,
                base: known,
                set_digest: assignment_digest(record.iter().map(|(id, d)| (id.as_str(), *d))),
                updated: tasks.into_iter().filter(|t| prev.tasks.get(&t.id) != Some(&t.desired_state)).cloned().collect(),
                removed: prev.tasks.keys().filter(|id| !record.contains_key(*id)).cloned().collect(),
                network,
                dependencies: added,
                removed_dependencies: prev.deps.difference(&now.deps).cloned().collect(),
                dependency_digest: dependency_digest(&held),
            }
        };
        self.by_node.insert(node_id.to_string(), Record { digest, tasks: record, deps: held });
        reply
    }

    /// Forget nodes no longer in the store. (When leadership is lost, the runtime forgets everything.)
    pub(crate) fn retain(&mut self, state: &ClusterState) {
        self.by_node.retain(|n, _| state.nodes.contains_key(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dispatcher::dependencies::{dependency_keys, tests::{state, using}};
    use crate::dispatcher::digest;
    use crate::testing::task;
    use skep_api::wire::DependencyKind;
    use std::sync::Arc;

    /// What the cache would give for `tasks` at `st` (the digest is given: the tests pick them).
    fn at(st: &ClusterState, digest: u64, tasks: &[Task]) -> NodeAssignments {
        let mut st = st.clone();
        for t in tasks {
            st.tasks.insert(t.id.clone(), t.clone());
        }
        let deps = dependency_keys(&st, tasks);
        let ids = Arc::new(tasks.iter().map(|t| t.id.clone()).collect());
        NodeAssignments { state: Arc::new(st), digest, ids, view: Arc::default(), deps: Arc::new(deps) }
    }

    fn ids(deps: &[Dependency]) -> Vec<(DependencyKind, &str, Option<&str>)> {
        deps.iter().map(|d| (d.key.kind, d.key.id.as_str(), d.key.task.as_deref())).collect()
    }

    #[test]
    fn a_node_holding_the_last_set_sent_gets_only_the_changes() {
        let st = ClusterState::default();
        let mut sent = Sent::default();
        let a = task("a", "n1", TaskState::Running, TaskState::Running);
        let b = task("b", "n1", TaskState::Assigned, TaskState::Running);
        // first poll (known 0): the whole set
        let r = sent.answer("n1", 0, &at(&st, 11, &[a.clone(), b.clone()]));
        assert!(matches!(&r, Response::Assignments { digest: 11, tasks, .. } if tasks.len() == 2), "{r:?}");
        // b is stopped, c is new, a unchanged: only b and c go out, nothing removed yet
        let mut b2 = b.clone();
        b2.desired_state = TaskState::Shutdown;
        let c = task("c", "n1", TaskState::Assigned, TaskState::Running);
        let set = [a.clone(), b2.clone(), c.clone()];
        let r = sent.answer("n1", 11, &at(&st, 12, &set));
        let Response::AssignmentChanges { digest: d, base, set_digest, updated, removed, .. } = r else { panic!("{r:?}") };
        assert_eq!((d, base), (12, 11));
        assert_eq!(updated.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert!(removed.is_empty());
        assert_eq!(set_digest, digest(&set));
        // b is done and leaves the set
        let set = [a.clone(), c.clone()];
        let r = sent.answer("n1", 12, &at(&st, 13, &set));
        let Response::AssignmentChanges { updated, removed, .. } = r else { panic!("{r:?}") };
        assert!(updated.is_empty());
        assert_eq!(removed, ["b"]);
        // a node holding something else (say, an answer it never got) is sent the whole set
        let r = sent.answer("n1", 12, &at(&st, 13, &set));
        assert!(matches!(&r, Response::Assignments { tasks, .. } if tasks.len() == 2), "{r:?}");
    }

    #[test]
    fn secrets_come_with_the_first_task_using_them_and_go_when_the_last_one_is_over() {
        let st = state();
        let mut sent = Sent::default();
        // a node whose tasks use no secret never receives one
        let plain = task("p", "n2", TaskState::Running, TaskState::Running);
        let r = sent.answer("n2", 0, &at(&st, 5, std::slice::from_ref(&plain)));
        assert!(matches!(&r, Response::Assignments { dependencies, .. } if dependencies.is_empty()), "{r:?}");
        // n1 gets task a, and with it the secret, the plain config and the template rendered for a
        let a = using("a", TaskState::Assigned);
        let r = sent.answer("n1", 0, &at(&st, 11, std::slice::from_ref(&a)));
        let Response::Assignments { dependencies, .. } = &r else { panic!("{r:?}") };
        assert_eq!(
            ids(dependencies),
            [(DependencyKind::Secret, "s1", None), (DependencyKind::Config, "c1", None), (DependencyKind::Config, "t1", Some("a"))]
        );
        // rotation: a is told to stop while b (same secret and configs) starts: only b's template is new
        let mut a2 = a.clone();
        a2.desired_state = TaskState::Shutdown;
        let b = using("b", TaskState::Assigned);
        let r = sent.answer("n1", 11, &at(&st, 12, &[a2.clone(), b.clone()]));
        let Response::AssignmentChanges { dependencies, removed_dependencies, dependency_digest: dd, .. } = &r else { panic!("{r:?}") };
        assert_eq!(ids(dependencies), [(DependencyKind::Config, "t1", Some("b"))]);
        assert!(removed_dependencies.is_empty(), "a still runs: it keeps what it uses");
        let held = dependency_keys(&at(&st, 0, &[a2.clone(), b.clone()]).state, [&a2, &b]);
        assert_eq!(*dd, skep_api::wire::dependency_digest(&held));
        // a is over: its template goes; then b is over too: everything goes
        let mut a3 = a2.clone();
        a3.status.state = TaskState::Shutdown;
        let r = sent.answer("n1", 12, &at(&st, 13, &[a3, b.clone()]));
        let Response::AssignmentChanges { dependencies, removed_dependencies, .. } = &r else { panic!("{r:?}") };
        assert!(dependencies.is_empty());
        assert_eq!(removed_dependencies.iter().map(|k| k.task.as_deref()).collect::<Vec<_>>(), [Some("a")]);
        let mut b2 = b.clone();
        b2.status.state = TaskState::Failed;
        let r = sent.answer("n1", 13, &at(&st, 14, &[b2]));
        let Response::AssignmentChanges { removed_dependencies, dependency_digest: dd, .. } = &r else { panic!("{r:?}") };
        assert_eq!(removed_dependencies.len(), 3);
        assert_eq!(*dd, skep_api::wire::dependency_digest([]));
    }

    #[test]
    fn what_does_not_fit_one_answer_comes_with_the_next_and_so_do_the_tasks_needing_it() {
        let st = state();
        let mut sent = Sent::default();
        let a = using("a", TaskState::Assigned);
        let b = using("b", TaskState::Assigned);
        let plain = task("p", "n1", TaskState::Assigned, TaskState::Running);
        let now = at(&st, 21, &[a.clone(), b.clone(), plain.clone()]);
        // room for one payload per answer
        let r = sent.answer_within("n1", 0, &now, 2);
        let Response::Assignments { digest, tasks, dependencies, .. } = &r else { panic!("{r:?}") };
        assert_eq!(dependencies.len(), 1);
        assert_eq!(tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["p"], "a and b wait for what they need");
        assert_ne!(*digest, 21, "the node must come back at once for the rest");
        let mut known = *digest;
        let mut got = dependencies.len();
        let mut tasks_got = 1;
        for _ in 0..10 {
            let r = sent.answer_within("n1", known, &now, 2);
            let Response::AssignmentChanges { digest, updated, dependencies, removed, .. } = &r else { panic!("{r:?}") };
            assert!(removed.is_empty());
            got += dependencies.len();
            tasks_got += updated.len();
            known = *digest;
            if known == 21 {
                break;
            }
        }
        assert_eq!((known, got, tasks_got), (21, 4, 3));
    }
}
