//! Assignments: which tasks a node is sent, the digest it holds them by, and the cache the long polls answer from.
//!
//! A node long-polls `Assignments` with the digest of the set it holds (`known`); the leader answers when the node's
//! set (task IDs and desired states) or its network view differs from that, or after [`LONG_POLL`]. Store versions
//! reach the long polls at most every [`DISPATCH_GAP`] (the `runtime` publishes them), and each published version's
//! digests are computed once here, for every node, instead of once per poll.

use super::dependencies::task_dependencies;
use crate::store::ClusterState;
use skep_api::docker::{Task, TaskState};
use skep_api::netview::NetworkView;
use skep_api::wire::{assignment_digest, dependency_digest, DependencyKey};
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// How long an assignments long poll waits for a change before answering with the same set (below the transport's
/// 5 s call timeout).
pub const LONG_POLL: Duration = Duration::from_secs(4);

/// Least time between two store versions published to the assignment long polls.
pub const DISPATCH_GAP: Duration = Duration::from_millis(50);

/// The tasks a node must know about: those it should run, and those it should stop that have not stopped yet.
pub fn assignments_for(state: &ClusterState, node_id: &str) -> Vec<Task> {
    state.tasks.values().filter(|t| t.node_id == node_id && is_assigned(t)).cloned().collect()
}

/// Assignment digests of every node, computed once per store version and shared by all long polls, with the IDs in
/// each node's set; the tasks themselves are read from the store only when a node is answered, and only those the
/// answer carries are copied (see [`NodeAssignments::tasks`]). (Every status report makes a new version, and most
/// versions change nothing a node acts on: cloning every task at every version was the leader's main cost with
/// thousands of tasks, and copying each answered node's whole set still was a tenth of it in a 10k-task update.)
///
/// It only moves forward: a long poll still holding an older version is answered from the newest one the cache has,
/// instead of rebuilding for the old one and back again (which, with many polls in flight, rebuilt on every reply).
#[derive(Default)]
pub(crate) struct AssignmentCache {
    /// The version everything here was computed from.
    state: Option<Arc<ClusterState>>,
    /// Per node: the digest of its set and the IDs in it (table order).
    nodes: std::collections::HashMap<String, (u64, Arc<Vec<String>>)>,
    /// Per node: the secrets and configs its set needs, and their digest.
    deps: std::collections::HashMap<String, (u64, Arc<BTreeSet<DependencyKey>>)>,
    /// The network index of this version and the views cut from it so far (each with its digest).
    net: Option<crate::netview::ClusterNet>,
    views: std::collections::HashMap<String, (u64, Arc<NetworkView>)>,
}

impl AssignmentCache {
    /// Move to `state` if it is newer than what the cache holds; returns the version the cache now answers from.
    pub(crate) fn refresh(&mut self, state: &Arc<ClusterState>) -> Arc<ClusterState> {
        match &self.state {
            Some(cur) if cur.index >= state.index => return cur.clone(),
            _ => {}
        }
        let mut keys: std::collections::HashMap<&str, Vec<(&str, TaskState)>> = std::collections::HashMap::new();
        let mut deps: std::collections::HashMap<String, BTreeSet<DependencyKey>> = std::collections::HashMap::new();
        for t in state.tasks.values().filter(|t| is_assigned(t)) {
            keys.entry(t.node_id.as_str()).or_default().push((t.id.as_str(), t.desired_state));
            let c = t.spec.container_spec.as_ref();
            if c.is_some_and(|c| !c.secrets.is_empty() || !c.configs.is_empty()) {
                deps.entry(t.node_id.clone()).or_default().extend(task_dependencies(state, t));
            }
        }
        self.deps = deps.into_iter().map(|(n, d)| (n, (dependency_digest(&d), Arc::new(d)))).collect();
        // A node whose digest is unchanged keeps its list of IDs from the previous version: same digest, same IDs and
        // desired states. (Copying every ID out at every version was most of this function's cost in a 10k-task
        // update, where a version changes a few hundred tasks.)
        let mut before = std::mem::take(&mut self.nodes);
        self.nodes = keys
            .into_iter()
            .map(|(n, k)| {
                // the table is ordered by ID, so `k` is already in `digest`'s order
                let d = assignment_digest(k.iter().copied());
                let fresh = || Arc::new(k.iter().map(|(id, _)| id.to_string()).collect());
                match before.remove_entry(n) {
                    Some((name, (was, ids))) if was == d => (name, (d, ids)),
                    Some((name, _)) => (name, (d, fresh())),
                    None => (n.to_string(), (d, fresh())),
                }
            })
            .collect();
        self.net = None;
        self.views.clear();
        self.state = Some(state.clone());
        state.clone()
    }

    /// The IDs in the node's set and its digest, at `state` or the newer version the cache holds.
    fn get(&mut self, state: &Arc<ClusterState>, node_id: &str) -> (u64, Arc<Vec<String>>) {
        self.refresh(state);
        match self.nodes.get(node_id) {
            Some((d, ids)) => (*d, ids.clone()),
            None => (digest(&[]), Arc::default()),
        }
    }

    /// The digest over the node's assignments, dependencies and network view (a change to any of them wakes the
    /// long poll).
    pub(crate) fn digest_with_view(&mut self, state: &Arc<ClusterState>, node_id: &str) -> u64 {
        let state = self.refresh(state);
        let d = self.nodes.get(node_id).map(|(d, _)| *d).unwrap_or_else(|| digest(&[]));
        let dd = self.deps(node_id).0;
        let (vd, _) = self.view(&state, node_id);
        (d ^ vd.rotate_left(1) ^ dd.rotate_left(2)) | 1
    }

    /// The node's dependencies at the cache's version, and their digest.
    fn deps(&self, node_id: &str) -> (u64, Arc<BTreeSet<DependencyKey>>) {
        self.deps.get(node_id).cloned().unwrap_or_else(|| (dependency_digest([]), Arc::default()))
    }

    /// The node's view at the cache's version (`state` must be it).
    fn view(&mut self, state: &ClusterState, node_id: &str) -> (u64, Arc<NetworkView>) {
        if let Some(v) = self.views.get(node_id) {
            return v.clone();
        }
        let net = self.net.get_or_insert_with(|| crate::netview::ClusterNet::new(state));
        let view = net.view(state, node_id);
        let mut h = DefaultHasher::new();
        view.hash(&mut h);
        let v = (h.finish(), Arc::new(view));
        self.views.insert(node_id.to_string(), v.clone());
        v
    }

    /// The node's assignments, dependencies and network view, with one digest over all three.
    pub(crate) fn get_with_view(&mut self, state: &Arc<ClusterState>, node_id: &str) -> NodeAssignments {
        let digest = self.digest_with_view(state, node_id);
        let (_, ids) = self.get(state, node_id);
        let state = self.refresh(state);
        let (_, view) = self.view(&state, node_id);
        let (_, deps) = self.deps(node_id);
        NodeAssignments { state, digest, ids, view, deps }
    }
}

/// What a node should hold at one store version, as the cache computed it.
pub(crate) struct NodeAssignments {
    /// The version it was computed from (dependency contents are read from it).
    pub(crate) state: Arc<ClusterState>,
    /// The digest over the set, the dependencies and the view.
    pub(crate) digest: u64,
    /// The IDs of the tasks, in ID order (the tasks are in `state`).
    pub(crate) ids: Arc<Vec<String>>,
    /// The network view.
    pub(crate) view: Arc<NetworkView>,
    /// The secrets and configs the tasks need.
    pub(crate) deps: Arc<BTreeSet<DependencyKey>>,
}

impl NodeAssignments {
    /// The tasks, in ID order, as `state` holds them.
    pub(crate) fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.ids.iter().filter_map(|id| self.state.tasks.get(id))
    }
}

fn is_assigned(t: &Task) -> bool {
    !t.node_id.is_empty()
        && t.status.state >= TaskState::Assigned
        && (t.desired_state <= TaskState::Running || !t.status.state.is_terminal())
}

/// Digest of an assignment set: what the node must act on (IDs and desired states), not status details.
pub fn digest(tasks: &[Task]) -> u64 {
    let mut keys: Vec<(&str, TaskState)> = tasks.iter().map(|t| (t.id.as_str(), t.desired_state)).collect();
    keys.sort();
    assignment_digest(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::task;

    #[test]
    fn the_cache_gives_each_node_the_same_set_as_a_scan_and_follows_new_versions() {
        let mut st = ClusterState::default();
        for (id, node, state, desired) in [
            ("a", "n1", TaskState::Running, TaskState::Running),
            ("b", "n1", TaskState::Running, TaskState::Shutdown), // still to be stopped
            ("c", "n1", TaskState::Shutdown, TaskState::Shutdown), // done: not sent
            ("d", "n2", TaskState::Assigned, TaskState::Running),
            ("e", "", TaskState::Pending, TaskState::Running), // not placed
        ] {
            st.tasks.insert(id.into(), task(id, node, state, desired));
        }
        st.index = 7;
        let mut cache = AssignmentCache::default();
        let at = |st: &ClusterState| Arc::new(st.clone());
        for n in ["n1", "n2", "n3"] {
            let (d, ids) = cache.get(&at(&st), n);
            let scan = assignments_for(&st, n);
            assert_eq!(*ids, scan.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), "{n}");
            assert_eq!(d, digest(&scan));
        }
        assert_eq!(cache.get(&at(&st), "n1").1.len(), 2);
        // a status change alone keeps the digest: nothing for the node to act on
        let before = cache.get(&at(&st), "n2").0;
        st.tasks.get_mut("d").unwrap().status.state = TaskState::Running;
        st.index = 8;
        assert_eq!(cache.get(&at(&st), "n2").0, before);
        let old = at(&st);
        st.tasks.get_mut("d").unwrap().desired_state = TaskState::Shutdown;
        st.index = 9;
        assert_ne!(cache.get(&at(&st), "n2").0, before);
        // an older version is answered from the newer one the cache holds, not rebuilt
        assert_ne!(cache.get(&old, "n2").0, before);
    }

    #[test]
    fn a_set_unchanged_keeps_its_ids_across_versions_and_its_tasks_are_read_at_the_new_one() {
        let mut st = ClusterState::default();
        st.tasks.insert("a".into(), task("a", "n1", TaskState::Assigned, TaskState::Running));
        st.index = 1;
        let mut cache = AssignmentCache::default();
        let first = cache.get_with_view(&Arc::new(st.clone()), "n1");
        // a status change alone: same IDs (not copied again), the task as the new version has it
        st.tasks.get_mut("a").unwrap().status.state = TaskState::Running;
        st.index = 2;
        let second = cache.get_with_view(&Arc::new(st.clone()), "n1");
        assert!(Arc::ptr_eq(&first.ids, &second.ids));
        assert_eq!(second.tasks().map(|t| t.status.state).collect::<Vec<_>>(), [TaskState::Running]);
        // a task joins the set: a new list
        st.tasks.insert("b".into(), task("b", "n1", TaskState::Assigned, TaskState::Running));
        st.index = 3;
        let third = cache.get_with_view(&Arc::new(st), "n1");
        assert!(!Arc::ptr_eq(&second.ids, &third.ids));
        assert_eq!(third.tasks().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn a_change_of_dependencies_alone_wakes_the_long_poll() {
        use crate::dispatcher::dependencies::tests::{state, using};
        let mut st = state();
        st.tasks.insert("a".into(), using("a", TaskState::Running));
        st.index = 1;
        let mut cache = AssignmentCache::default();
        let before = cache.digest_with_view(&Arc::new(st.clone()), "n1");
        assert_eq!(cache.get_with_view(&Arc::new(st.clone()), "n1").deps.len(), 3);
        // the task fails on its own: same ID and desired state, but it needs its secret no more
        st.tasks.get_mut("a").unwrap().status.state = TaskState::Failed;
        st.index = 2;
        let after = cache.digest_with_view(&Arc::new(st.clone()), "n1");
        assert_ne!(before, after);
        assert!(cache.get_with_view(&Arc::new(st), "n1").deps.is_empty());
    }
}
