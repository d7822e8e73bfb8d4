//! The leader's task machinery: assignments to nodes (long poll), status reports (batched into one proposal), and the
//! reconcile loop that runs the orchestrators, the scheduler and the reaper.

use super::{werr, Manager};
use crate::orchestrator::{self, Env};
use crate::store::{ClusterState, Op};
use skep_api::docker::{Task, TaskState, TaskStatus};
use skep_api::netview::NetworkView;
use skep_api::wire::{assignment_digest, ErrorKind, Response};
use skep_pki::PeerIdentity;
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// How long an assignments long poll waits for a change before answering with the same set (below the transport's
/// 5 s call timeout).
const LONG_POLL: Duration = Duration::from_secs(4);
/// Tasks per proposal: keeps Raft entries around 100-200 KB, so a batch of them replicates within a heartbeat.
const CHUNK: usize = 100;
/// Status reports are gathered this long before one proposal carries them all.
const STATUS_BATCH: Duration = Duration::from_millis(20);

/// The tasks a node must know about: those it should run, and those it should stop that have not stopped yet.
pub fn assignments_for(state: &ClusterState, node_id: &str) -> Vec<Task> {
    state.tasks.values().filter(|t| t.node_id == node_id && is_assigned(t)).cloned().collect()
}

/// Assignment digests of every node, computed once per store version and shared by all long polls; the sets
/// themselves are copied out of the store only for a node that is about to be answered. (Every status report makes a
/// new version, and most versions change nothing a node acts on: cloning every task at every version was the
/// leader's main cost with thousands of tasks.)
///
/// It only moves forward: a long poll still holding an older version is answered from the newest one the cache has,
/// instead of rebuilding for the old one and back again (which, with many polls in flight, rebuilt on every reply).
#[derive(Default)]
pub(super) struct AssignmentCache {
    /// The version everything here was computed from.
    state: Option<Arc<ClusterState>>,
    /// Per node: the digest of its set and the IDs in it (table order).
    nodes: std::collections::HashMap<String, (u64, Vec<String>)>,
    /// Sets copied out at this version so far.
    sets: std::collections::HashMap<String, Arc<Vec<Task>>>,
    /// The network index of this version and the views cut from it so far (each with its digest).
    net: Option<crate::netview::ClusterNet>,
    views: std::collections::HashMap<String, (u64, Arc<NetworkView>)>,
}

impl AssignmentCache {
    /// Move to `state` if it is newer than what the cache holds; returns the version the cache now answers from.
    fn refresh(&mut self, state: &Arc<ClusterState>) -> Arc<ClusterState> {
        match &self.state {
            Some(cur) if cur.index >= state.index => return cur.clone(),
            _ => {}
        }
        let mut keys: std::collections::HashMap<&str, Vec<(&str, TaskState)>> = std::collections::HashMap::new();
        for t in state.tasks.values().filter(|t| is_assigned(t)) {
            keys.entry(t.node_id.as_str()).or_default().push((t.id.as_str(), t.desired_state));
        }
        self.nodes = keys
            .into_iter()
            .map(|(n, k)| {
                // the table is ordered by ID, so `k` is already in `digest`'s order
                let d = assignment_digest(k.iter().copied());
                (n.to_string(), (d, k.into_iter().map(|(id, _)| id.to_string()).collect()))
            })
            .collect();
        self.sets.clear();
        self.net = None;
        self.views.clear();
        self.state = Some(state.clone());
        state.clone()
    }

    /// The node's set and its digest, at `state` or the newer version the cache holds.
    fn get(&mut self, state: &Arc<ClusterState>, node_id: &str) -> (u64, Arc<Vec<Task>>) {
        let state = self.refresh(state);
        let Some((d, ids)) = self.nodes.get(node_id) else { return (digest(&[]), Arc::new(Vec::new())) };
        let set = self
            .sets
            .entry(node_id.to_string())
            .or_insert_with(|| Arc::new(ids.iter().filter_map(|id| state.tasks.get(id).cloned()).collect()))
            .clone();
        (*d, set)
    }

    /// The digest over the node's assignments and network view (a network change wakes the long poll too).
    fn digest_with_view(&mut self, state: &Arc<ClusterState>, node_id: &str) -> u64 {
        let state = self.refresh(state);
        let d = self.nodes.get(node_id).map(|(d, _)| *d).unwrap_or_else(|| digest(&[]));
        let (vd, _) = self.view(&state, node_id);
        (d ^ vd.rotate_left(1)) | 1
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

    /// The node's assignments and network view, with one digest over both.
    /// Also the digest of the task set alone (what a node checks changes against).
    fn get_with_view(&mut self, state: &Arc<ClusterState>, node_id: &str) -> (u64, u64, Arc<Vec<Task>>, Arc<NetworkView>) {
        let d = self.digest_with_view(state, node_id);
        let (set_digest, tasks) = self.get(state, node_id);
        let current = self.refresh(state);
        let (_, view) = self.view(&current, node_id);
        (d, set_digest, tasks, view)
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

/// What the leader last sent a node: the digest the node will send back as `known`, and the set's
/// `(ID, desired state)` pairs, so that the next answer can be the changes alone.
#[derive(Default)]
pub(super) struct Sent {
    by_node: std::collections::HashMap<String, (u64, BTreeMap<String, TaskState>)>,
}

impl Sent {
    /// The answer to a long poll from `node_id` holding `known`: the changes since the set last sent, when `known`
    /// is that set's digest, else the whole set. `digest` covers the set and the view, `set_digest` the set alone
    /// (both from the [`AssignmentCache`]). Records what is sent.
    fn answer(
        &mut self,
        node_id: &str,
        known: u64,
        (digest, set_digest): (u64, u64),
        tasks: &[Task],
        network: NetworkView,
    ) -> Response {
        let now: BTreeMap<String, TaskState> = tasks.iter().map(|t| (t.id.clone(), t.desired_state)).collect();
        let prev = self.by_node.remove(node_id).filter(|(d, _)| known != 0 && *d == known).map(|(_, p)| p);
        let reply = match prev {
            Some(prev) => Response::AssignmentChanges {
                digest,
                base: known,
                set_digest,
                updated: tasks.iter().filter(|t| prev.get(&t.id) != Some(&t.desired_state)).cloned().collect(),
                removed: prev.into_keys().filter(|id| !now.contains_key(id)).collect(),
                network,
            },
            None => Response::Assignments { digest, tasks: tasks.to_vec(), network },
        };
        self.by_node.insert(node_id.to_string(), (digest, now));
        reply
    }

    /// Forget nodes no longer in the store, and everything when leadership was lost and regained.
    pub(super) fn retain(&mut self, state: &ClusterState) {
        self.by_node.retain(|n, _| state.nodes.contains_key(n));
    }
}

/// Pending status reports and who waits for them.
pub(super) type StatusBatch = (Vec<(String, TaskStatus)>, oneshot::Sender<bool>);

impl Manager {
    /// Publish store versions to the long polls, at most one per `DISPATCH_GAP`, with the assignment digests already
    /// computed. Every version used to wake every long poll and rebuild the digests (a scan of every task) at once;
    /// with a thousand nodes and a version per status batch, that was a third of the leader's CPU.
    pub(super) async fn dispatch_loop(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut changes = self.subscribe();
        loop {
            tokio::select! {
                r = changes.changed() => { if r.is_err() { return; } }
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let state = changes.borrow_and_update().clone();
            if self.is_leader() {
                self.inner.assignments.lock().unwrap_or_else(|p| p.into_inner()).refresh(&state);
                self.inner.sent.lock().unwrap_or_else(|p| p.into_inner()).retain(&state);
            } else {
                *self.inner.sent.lock().unwrap_or_else(|p| p.into_inner()) = Sent::default();
            }
            self.inner.dispatched.send_replace(state);
            tokio::time::sleep(super::DISPATCH_GAP).await;
        }
    }

    pub(super) async fn handle_assignments(&self, id: PeerIdentity, known: u64) -> Response {
        if !self.is_leader() {
            return self.not_leader();
        }
        let mut rx = self.inner.dispatched.subscribe();
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            let state = rx.borrow_and_update().clone();
            if !state.nodes.contains_key(&id.node_id) {
                return werr(ErrorKind::Unavailable, "this node is not known to the managers yet");
            }
            let reply = |state: &Arc<ClusterState>| {
                let (d, set_d, tasks, view) =
                    self.inner.assignments.lock().unwrap_or_else(|p| p.into_inner()).get_with_view(state, &id.node_id);
                let mut sent = self.inner.sent.lock().unwrap_or_else(|p| p.into_inner());
                sent.answer(&id.node_id, known, (d, set_d), &tasks, (*view).clone())
            };
            let d = self.inner.assignments.lock().unwrap_or_else(|p| p.into_inner()).digest_with_view(&state, &id.node_id);
            if d != known {
                return reply(&state);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) if self.is_leader() => continue,
                Ok(Ok(())) => return self.not_leader(),
                _ => return reply(&state),
            }
        }
    }

    pub(super) async fn handle_task_status(&self, id: PeerIdentity, updates: Vec<(String, TaskStatus)>) -> Response {
        if !self.is_leader() {
            return self.not_leader();
        }
        // a node may only report on its own tasks
        let state = self.local_state();
        let mine: Vec<(String, TaskStatus)> = updates
            .into_iter()
            .filter(|(t, _)| state.tasks.get(t).is_some_and(|t| t.node_id == id.node_id))
            .collect();
        if mine.is_empty() {
            return Response::Ok;
        }
        let (tx, rx) = oneshot::channel();
        if self.inner.status_tx.send((mine, tx)).await.is_err() {
            return werr(ErrorKind::Unavailable, "shutting down");
        }
        match rx.await {
            Ok(true) => Response::Ok,
            _ => werr(ErrorKind::Unavailable, "status not recorded; retry"),
        }
    }

    /// Gather status reports for `STATUS_BATCH` and propose them as one command.
    pub(super) async fn status_loop(self, mut rx: mpsc::Receiver<StatusBatch>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            let until = tokio::time::Instant::now() + STATUS_BATCH;
            while let Ok(Some(more)) = tokio::time::timeout_at(until, rx.recv()).await {
                batch.push(more);
                if batch.len() >= 1000 {
                    break;
                }
            }
            let mut updates = Vec::new();
            let mut waiters = Vec::new();
            for (u, w) in batch {
                updates.extend(u);
                waiters.push(w);
            }
            let ok = self.propose(Op::ReportTaskStatus { updates }).await.is_ok();
            for w in waiters {
                let _ = w.send(ok);
            }
        }
    }

    /// One round of orchestration, scheduling and reaping on the leader. Returns whether it changed anything.
    ///
    /// New tasks are placed in the same round: the orchestrators' changes are applied to a scratch copy of the
    /// state, the scheduler runs on it, and each task is proposed once, already assigned. The chunks of a round go
    /// to Raft a few at a time (they are independent), so a large create is not one commit round trip per chunk.
    pub(super) async fn reconcile_tasks(&self, reap: bool) -> bool {
        let state = self.local_state();
        let now_ns = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        let mut new_id = || skep_api::id::new_id(&mut rand::thread_rng());
        let ops = orchestrator::reconcile(&state, &mut Env { now_ns, new_id: &mut new_id });
        let ops = if ops.is_empty() {
            schedule(&state, now_ns)
        } else {
            let mut scratch = (*state).clone();
            let at = skep_api::time::format_unix_nanos(now_ns.max(0) as u128);
            for op in &ops {
                let _ = scratch.apply(scratch.index, &crate::store::Command { at: at.clone(), op: op.clone() });
            }
            merge_placements(ops, schedule(&scratch, now_ns))
        };
        let mut changed = !ops.is_empty();
        if !self.propose_pipelined(split(ops)).await {
            return changed;
        }
        if reap {
            let state = self.local_state();
            let retention = state
                .cluster
                .as_ref()
                .and_then(|c| c.info.spec.orchestration.task_history_retention_limit)
                .unwrap_or(5)
                .max(0) as usize;
            let dead = orchestrator::reap(&state, retention);
            for ids in dead.chunks(CHUNK) {
                changed = true;
                if let Err(e) = self.propose_local(Op::DeleteTasks { ids: ids.to_vec() }).await {
                    tracing::debug!("reaper proposal: {e}");
                }
            }
        }
        changed
    }
}

impl Manager {
    /// Propose `ops` in order of submission, up to [`IN_FLIGHT`] at once; false after the first refusal.
    async fn propose_pipelined(&self, ops: Vec<Op>) -> bool {
        use futures::StreamExt;
        let mut results = futures::stream::iter(ops.into_iter().map(|op| self.propose_local(op))).buffered(IN_FLIGHT);
        while let Some(r) = results.next().await {
            if let Err(e) = r {
                tracing::debug!("orchestrator/scheduler proposal: {e}");
                return false;
            }
        }
        true
    }
}

/// Proposals of one reconcile round in flight at once.
const IN_FLIGHT: usize = 4;

/// The orchestrators' ops with the scheduler's placements folded in: a task both touched is proposed once, in the
/// scheduler's (later) version; the scheduler's other changes follow.
fn merge_placements(mut ops: Vec<Op>, placed: Vec<Op>) -> Vec<Op> {
    let mut later: std::collections::HashMap<String, Task> = std::collections::HashMap::new();
    for op in placed {
        if let Op::PutTasks { tasks } = op {
            later.extend(tasks.into_iter().map(|t| (t.id.clone(), t)));
        }
    }
    for op in &mut ops {
        if let Op::PutTasks { tasks } = op {
            for t in tasks.iter_mut() {
                if let Some(l) = later.remove(&t.id) {
                    *t = l;
                }
            }
        }
    }
    if !later.is_empty() {
        let mut rest: Vec<Task> = later.into_values().collect();
        rest.sort_by(|a, b| a.id.cmp(&b.id));
        ops.push(Op::PutTasks { tasks: rest });
    }
    ops
}

/// Split big `PutTasks` into chunks.
///
/// When nothing in the op is being stopped (a create or a scale up), its tasks are grouped by node first, so that a
/// node's new tasks come in one chunk: the tasks of one service are spread over every node, and in slot order each
/// chunk touched a hundred nodes, so every node was sent its growing set once per chunk (about ten times for ten
/// tasks). With stops in the op the order is kept, because it may be the order of a stop-first update.
fn split(ops: Vec<Op>) -> Vec<Op> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::PutTasks { mut tasks } if tasks.len() > CHUNK => {
                if tasks.iter().all(|t| t.desired_state <= TaskState::Running) {
                    tasks.sort_by(|a, b| a.node_id.cmp(&b.node_id));
                }
                // move the tasks out chunk by chunk (`split_off` would copy the whole remainder every time)
                let mut it = tasks.into_iter();
                loop {
                    let chunk: Vec<Task> = it.by_ref().take(CHUNK).collect();
                    if chunk.is_empty() {
                        break;
                    }
                    out.push(Op::PutTasks { tasks: chunk });
                }
            }
            other => out.push(other),
        }
    }
    out
}

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
    let mut s = crate::scheduler::Scheduler::new(state);
    let decisions = s.place(&pending);
    let ts = skep_api::time::format_unix_nanos(now_ns.max(0) as u128);
    let mut put = Vec::new();
    for (t, d) in pending.iter().zip(decisions) {
        match d {
            crate::scheduler::Decision::Assign { node_id, .. } => {
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
            crate::scheduler::Decision::NoFit { reason, .. } => {
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
    use skep_api::docker::TaskStatus;

    fn task(id: &str, node: &str, state: TaskState, desired: TaskState) -> Task {
        Task { id: id.into(), node_id: node.into(), desired_state: desired, status: TaskStatus { state, ..Default::default() }, ..Default::default() }
    }

    #[test]
    fn big_put_tasks_are_split_in_order() {
        let tasks: Vec<Task> = (0..250).map(|i| task(&format!("t{i:03}"), "n1", TaskState::New, TaskState::Running)).collect();
        let ops = split(vec![Op::PutTasks { tasks }]);
        let sizes: Vec<usize> = ops.iter().map(|o| match o { Op::PutTasks { tasks } => tasks.len(), _ => 0 }).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
        let Op::PutTasks { tasks } = &ops[2] else { panic!() };
        assert_eq!(tasks[0].id, "t200");
    }

    #[test]
    fn new_tasks_are_chunked_by_node_but_an_op_with_stops_keeps_its_order() {
        let node = |i: usize| format!("n{}", i % 25);
        let tasks: Vec<Task> =
            (0..250).map(|i| task(&format!("t{i:03}"), &node(i), TaskState::Assigned, TaskState::Running)).collect();
        let ops = split(vec![Op::PutTasks { tasks: tasks.clone() }]);
        // 25 nodes x 10 tasks: every node's tasks sit in one chunk
        let mut chunks_of: std::collections::HashMap<String, std::collections::HashSet<usize>> = Default::default();
        for (i, op) in ops.iter().enumerate() {
            let Op::PutTasks { tasks } = op else { panic!() };
            for t in tasks {
                chunks_of.entry(t.node_id.clone()).or_default().insert(i);
            }
        }
        assert_eq!(chunks_of.len(), 25);
        assert!(chunks_of.values().all(|c| c.len() == 1), "{chunks_of:?}");
        let mut with_stop = tasks;
        with_stop[0].desired_state = TaskState::Shutdown;
        let ops = split(vec![Op::PutTasks { tasks: with_stop }]);
        let Op::PutTasks { tasks } = &ops[0] else { panic!() };
        assert_eq!(tasks[1].id, "t001");
    }

    #[test]
    fn a_node_holding_the_last_set_sent_gets_only_the_changes() {
        let mut sent = Sent::default();
        let net = NetworkView::default();
        let a = task("a", "n1", TaskState::Running, TaskState::Running);
        let b = task("b", "n1", TaskState::Assigned, TaskState::Running);
        // first poll (known 0): the whole set
        let r = sent.answer("n1", 0, (11, digest(&[a.clone(), b.clone()])), &[a.clone(), b.clone()], net.clone());
        assert!(matches!(&r, Response::Assignments { digest: 11, tasks, .. } if tasks.len() == 2), "{r:?}");
        // b is stopped, c is new, a unchanged: only b and c go out, nothing removed yet
        let mut b2 = b.clone();
        b2.desired_state = TaskState::Shutdown;
        let c = task("c", "n1", TaskState::Assigned, TaskState::Running);
        let set = [a.clone(), b2.clone(), c.clone()];
        let r = sent.answer("n1", 11, (12, digest(&set)), &set, net.clone());
        let Response::AssignmentChanges { digest: d, base, set_digest, updated, removed, .. } = r else { panic!("{r:?}") };
        assert_eq!((d, base), (12, 11));
        assert_eq!(updated.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert!(removed.is_empty());
        assert_eq!(set_digest, digest(&set));
        // b is done and leaves the set
        let set = [a.clone(), c.clone()];
        let r = sent.answer("n1", 12, (13, digest(&set)), &set, net.clone());
        let Response::AssignmentChanges { updated, removed, .. } = r else { panic!("{r:?}") };
        assert!(updated.is_empty());
        assert_eq!(removed, ["b"]);
        // a node holding something else (say, an answer it never got) is sent the whole set
        let r = sent.answer("n1", 12, (13, digest(&set)), &set, net);
        assert!(matches!(&r, Response::Assignments { tasks, .. } if tasks.len() == 2), "{r:?}");
    }

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
            let (d, set) = cache.get(&at(&st), n);
            let scan = assignments_for(&st, n);
            assert_eq!(*set, scan, "{n}");
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
}
