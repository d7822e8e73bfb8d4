//! Orchestrators: turn services into tasks. Pure: `reconcile(state, now, ids) -> ops`, run by the leader on every
//! store change and on a short tick (for restart delays).
//!
//! The task model is swarmkit's (`docs/design/task_model.md`): tasks are immutable one-shot units; a replicated
//! service owns slots 1..N, each with at most one *live* task (desired state ≤ running) plus history; a global service
//! owns one live task per eligible node. A task is never edited back into life: a restart, an update or a move creates
//! a new task in the same slot and sets the old one's desired state to shutdown.
//!
//! # Layout
//! - this file: the reconcile entry point, slot bookkeeping, restart policy and the reaper.
//! - [`proposals`]: a round's proposals: placements merged in, big task writes split into chunks.
//! - `jobs`: replicated and global jobs (runs to completion, `JobIteration`).
//! - [`update`]: the rolling updater's decisions (parallelism, delay, order, monitor, failure action, `UpdateStatus`).
//! - `tests`: behaviour tests over states built in memory.

mod jobs;
pub mod proposals;
#[cfg(test)]
mod tests;
pub mod update;

use crate::store::{ClusterState, Op};
use skep_api::docker::{
    Availability, NodeState, RestartPolicy, Service, Task, TaskState, TaskStatus, UpdateStatus, SECOND_NS,
};
use std::collections::{BTreeMap, BTreeSet};

/// Default restart delay (swarmkit: 5 s).
pub const DEFAULT_RESTART_DELAY_NS: i64 = 5 * SECOND_NS;

/// Inputs that vary: the time (Unix nanoseconds) and a source of task IDs.
pub struct Env<'a> {
    /// Now, in Unix nanoseconds (from the proposer's clock; carried into the store as status timestamps).
    pub now_ns: i64,
    /// New task IDs.
    pub new_id: &'a mut dyn FnMut() -> String,
}

/// Whether a task still holds its slot: the managers want it running (it may have failed meanwhile).
pub fn is_live(t: &Task) -> bool {
    t.desired_state <= TaskState::Running
}

/// A task made from `spec` is up to date with the service when its spec equals the template (ForceUpdate included).
pub fn is_up_to_date(t: &Task, svc: &Service) -> bool {
    t.spec == svc.spec.task_template
}

/// [`is_up_to_date`] through the store's template indexes when both are known (no spec comparison), else by
/// comparing specs.
pub fn is_current(state: &ClusterState, t: &Task, svc: &Service) -> bool {
    current_by(t, svc, state.task_template.get(&t.id).copied(), state.template_index.get(&svc.id).copied())
}

/// Whether `t`, made at template index `made`, is up to date with `svc`, whose template index is `now`.
fn current_by(t: &Task, svc: &Service, made: Option<u64>, now: Option<u64>) -> bool {
    match (made, now) {
        (Some(made), Some(now)) => made == now,
        _ => is_up_to_date(t, svc),
    }
}

/// What the store keeps beside each task (its template index, when it first ran) for one round, found by the task's
/// address in the round's state.
///
/// A round asks for them several times per task (picking a slot's main task, the updater's candidates and facts).
/// Asked of `state.task_template` and `state.running_at` by ID, a B-tree lookup comparing `String`s each time, they
/// were a sixth of the leader's CPU in a 10k-task update; the three tables are ordered by task ID, so one merged pass
/// over them finds every answer.
struct Made<'a> {
    by_task: rustc_hash::FxHashMap<usize, (Option<u64>, Option<&'a str>)>,
}

impl<'a> Made<'a> {
    fn of(state: &'a ClusterState) -> Made<'a> {
        let mut by_task = rustc_hash::FxHashMap::default();
        by_task.reserve(state.task_template.len());
        let mut made = state.task_template.iter().peekable();
        let mut running = state.running_at.iter().peekable();
        for (id, t) in state.tasks.iter() {
            while made.peek().is_some_and(|(m, _)| *m < id) {
                made.next();
            }
            while running.peek().is_some_and(|(r, _)| *r < id) {
                running.next();
            }
            let at = made.peek().filter(|(m, _)| *m == id).map(|(_, at)| **at);
            let up = running.peek().filter(|(r, _)| *r == id).map(|(_, up)| up.as_str());
            if at.is_some() || up.is_some() {
                by_task.insert(t as *const Task as usize, (at, up));
            }
        }
        Made { by_task }
    }

    fn get(&self, t: &Task) -> (Option<u64>, Option<&'a str>) {
        self.by_task.get(&(t as *const Task as usize)).copied().unwrap_or_default()
    }

    /// [`is_current`] for a task of this round's state, whose service's template index is `now`.
    fn current(&self, t: &Task, svc: &Service, now: Option<u64>) -> bool {
        current_by(t, svc, self.get(t).0, now)
    }

    /// When a task of this round's state first reached `running` (`state.running_at`).
    fn running_at(&self, t: &Task) -> Option<&'a str> {
        self.get(t).1
    }
}

fn ts(now_ns: i64) -> String {
    skep_api::time::format_unix_nanos(now_ns.max(0) as u128)
}

fn parse_ns(s: &str) -> Option<i64> {
    skep_api::time::parse(s)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
}

/// A node can take tasks: ready and active.
fn node_usable(state: &ClusterState, node_id: &str) -> bool {
    state.nodes.get(node_id).is_some_and(|r| {
        r.node.status.state != NodeState::Down && r.node.spec.availability == Availability::Active
    })
}

/// A node's live tasks must leave it: gone, down, or drained.
fn node_lost(state: &ClusterState, node_id: &str) -> bool {
    match state.nodes.get(node_id) {
        None => true,
        Some(r) => r.node.status.state == NodeState::Down || r.node.spec.availability == Availability::Drain,
    }
}

fn new_task(env: &mut Env<'_>, svc: &Service, slot: u64, node_id: &str) -> Task {
    let state = if node_id.is_empty() { TaskState::Pending } else { TaskState::Assigned };
    let message = if node_id.is_empty() { "pending task scheduling" } else { "scheduler assigned task to node" };
    Task {
        id: (env.new_id)(),
        spec: svc.spec.task_template.clone(),
        service_id: svc.id.clone(),
        slot,
        node_id: node_id.to_string(),
        status: TaskStatus { timestamp: ts(env.now_ns), state, message: message.into(), ..Default::default() },
        desired_state: TaskState::Running,
        labels: [(skep_api::docker::TASK_LABEL_SERVICE_NAME.to_string(), svc.spec.name.clone())].into(),
        job_iteration: svc.job_status.as_ref().map(|j| j.job_iteration),
        ..Default::default()
    }
}

fn shut_down(t: &Task, why: &str, now_ns: i64) -> Task {
    let mut t = t.clone();
    t.desired_state = TaskState::Shutdown;
    // a task that never reached a node is simply over
    if t.node_id.is_empty() && t.status.state < TaskState::Assigned {
        t.status = TaskStatus { timestamp: ts(now_ns), state: TaskState::Shutdown, message: why.into(), ..Default::default() };
    }
    t
}

/// What the restart policy says about a terminal task.
#[derive(Debug, PartialEq, Eq)]
enum Restart {
    /// Replace it now.
    Now,
    /// Replace it after the delay.
    Later,
    /// Never (condition none/on-failure, or attempts used up).
    Never,
}

fn restart_decision(state: &ClusterState, svc: &Service, key: &str, t: &Task, now_ns: i64) -> Restart {
    let p = t.spec.restart_policy.clone().or_else(|| svc.spec.task_template.restart_policy.clone()).unwrap_or_default();
    let failed = matches!(t.status.state, TaskState::Failed | TaskState::Rejected);
    // a job's task that completed is done (swarmkit's restart supervisor)
    if svc.spec.mode.is_job() && t.status.state == TaskState::Complete {
        return Restart::Never;
    }
    let allowed = match p.condition.as_str() {
        "none" => false,
        "on-failure" => failed,
        _ => true,
    };
    if !allowed {
        return Restart::Never;
    }
    if let Some(max) = p.max_attempts.filter(|m| *m > 0) {
        let window = p.window.unwrap_or(0);
        let attempts = state
            .restarts
            .get(key)
            .map(|h| h.iter().filter_map(|s| parse_ns(s)).filter(|at| window <= 0 || now_ns - at <= window).count())
            .unwrap_or(0) as u64;
        if attempts >= max {
            return Restart::Never;
        }
    }
    let delay = restart_delay(&p);
    let since = parse_ns(&t.status.timestamp).unwrap_or(now_ns);
    if now_ns - since >= delay {
        Restart::Now
    } else {
        Restart::Later
    }
}

fn restart_delay(p: &RestartPolicy) -> i64 {
    p.delay.filter(|d| *d >= 0).unwrap_or(DEFAULT_RESTART_DELAY_NS)
}

/// History entries to keep per restart key (enough for any window a user sets with a sane MaxAttempts).
const RESTART_HISTORY: usize = 64;

/// All the changes the orchestrators want now.
pub fn reconcile(state: &ClusterState, env: &mut Env<'_>) -> Vec<Op> {
    let mut put: Vec<Task> = Vec::new();
    let mut ops: Vec<Op> = Vec::new();
    let mut by_service: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values() {
        by_service.entry(t.service_id.as_str()).or_default().push(t);
    }
    let made = Made::of(state);
    for svc in state.services.values() {
        let tasks = by_service.remove(svc.id.as_str()).unwrap_or_default();
        if svc.spec.mode.is_job() {
            jobs::reconcile_job(state, svc, &tasks, env, &mut put, &mut ops);
        } else if svc.spec.mode.is_global() {
            reconcile_global(state, svc, &tasks, &made, env, &mut put, &mut ops);
        } else if let Some(n) = svc.spec.mode.replicas() {
            reconcile_replicated(state, svc, n, &tasks, &made, env, &mut put, &mut ops);
        }
    }
    // tasks of services that are gone: stop them
    for tasks in by_service.values() {
        for t in tasks {
            if t.desired_state < TaskState::Remove {
                let mut t = shut_down(t, "service removed", env.now_ns);
                t.desired_state = TaskState::Remove;
                put.push(t);
            }
        }
    }
    if !put.is_empty() {
        ops.insert(0, Op::PutTasks { tasks: put });
    }
    ops
}

#[allow(clippy::too_many_arguments)]
fn replace_if_due(
    state: &ClusterState,
    svc: &Service,
    key: String,
    t: &Task,
    slot: u64,
    node_id: &str,
    env: &mut Env<'_>,
    put: &mut Vec<Task>,
    ops: &mut Vec<Op>,
) {
    match restart_decision(state, svc, &key, t, env.now_ns) {
        Restart::Now => {
            put.push(shut_down(t, "restarting", env.now_ns));
            put.push(new_task(env, svc, slot, node_id));
            ops.push(Op::RecordRestart { key, keep: RESTART_HISTORY });
        }
        Restart::Later | Restart::Never => {}
    }
}

/// A slot's (or a global service's node's) live tasks, and the one that holds it: the newest up-to-date task, else
/// the newest. Others are shut down, except an out-of-date task beside an up-to-date one that does not run yet (a
/// start-first update keeps the old task until the new one runs).
fn pick_main<'a>(
    ts: &mut [&'a Task],
    current: &dyn Fn(&Task) -> bool,
    env: &Env<'_>,
    put: &mut Vec<Task>,
) -> (&'a Task, Vec<&'a Task>) {
    if ts.len() > 1 {
        ts.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
    }
    let main = ts.iter().rev().find(|t| current(t)).or(ts.last()).copied().expect("a slot has a task");
    let mut kept = Vec::new();
    for &mut t in ts {
        if t.id == main.id {
            continue;
        }
        let waiting = current(main) && !current(t) && main.status.state != TaskState::Running;
        if waiting {
            kept.push(t);
        } else if current(main) && !current(t) {
            put.push(shut_down(t, "replaced by an updated task", env.now_ns));
        } else {
            put.push(shut_down(t, "duplicate task in slot", env.now_ns));
        }
    }
    (main, kept)
}

/// A slot's task that ended: `None` when it is up to date (the restart policy alone decides), else whether the
/// updater replaces it (`true`: the restart policy never would) or the restart policy will, with the new spec
/// (`false`; the update is not over until it did).
fn ended_out_of_date(
    state: &ClusterState,
    svc: &Service,
    key: &str,
    t: &Task,
    current: &dyn Fn(&Task) -> bool,
    now_ns: i64,
) -> Option<bool> {
    if current(t) {
        return None;
    }
    Some(restart_decision(state, svc, key, t, now_ns) == Restart::Never)
}

/// The updater's facts about a service this round (see [`update`]): `slot_of` names a task's slot (its number, or
/// its node for global services).
fn update_facts(
    svc: &Service,
    tasks: &[&Task],
    made: &Made<'_>,
    current: &dyn Fn(&Task) -> bool,
    slots: usize,
    dirty: usize,
    now_ns: i64,
) -> update::Facts {
    let phase = update::Phase::of(svc);
    let mut facts = update::Facts { slots, dirty, ..Default::default() };
    let since = match (phase, svc.update_status.as_ref()) {
        (update::Phase::Updating | update::Phase::RollbackStarted, Some(u)) => parse_ns(&u.started_at),
        _ => None,
    };
    let Some(since) = since else { return facts };
    let settings = update::Settings::of(svc, phase);
    // a slot: its number, or (global services) its node
    let mut busy: BTreeSet<(u64, &str)> = BTreeSet::new();
    let mut in_flight: BTreeSet<(u64, &str)> = BTreeSet::new();
    let mut failures: Vec<(i64, &str)> = Vec::new();
    for t in tasks.iter().filter(|t| current(t) && parse_ns(&t.created_at).is_some_and(|c| c >= since)) {
        let slot = if t.slot > 0 { (t.slot, "") } else { (0, t.node_id.as_str()) };
        let up = made.running_at(t).and_then(parse_ns);
        if let Some(up) = up {
            facts.last_up_ns = Some(facts.last_up_ns.map_or(up, |l| l.max(up)));
        }
        let st = t.status.state;
        if !st.is_terminal() && st < TaskState::Running {
            if is_live(t) {
                in_flight.insert(slot);
                busy.insert(slot);
            }
            continue;
        }
        let ended = st.is_terminal().then(|| parse_ns(&t.status.timestamp)).flatten();
        let reached = up.or(ended).unwrap_or(now_ns);
        if now_ns < reached.saturating_add(settings.delay_ns) {
            busy.insert(slot);
        }
        // ended on its own before it ran, or within the monitor period after it came up
        if matches!(st, TaskState::Failed | TaskState::Rejected | TaskState::Complete | TaskState::Orphaned) {
            let end = ended.unwrap_or(now_ns);
            if up.is_none_or(|up| end - up <= settings.monitor_ns) {
                failures.push((end, t.id.as_str()));
            }
        }
    }
    failures.sort();
    facts.failures = failures.into_iter().map(|(_, id)| id.to_string()).collect();
    facts.busy = busy.len();
    facts.in_flight = in_flight.len();
    facts
}

/// Carry out the updater's decision: the status, a rollback, and up to `budget` out-of-date slots replaced (the old
/// task shut down at once, or with start-first once the new one runs: [`pick_main`]).
fn carry_out(
    svc: &Service,
    decision: update::Decision,
    candidates: Vec<(&Task, u64, String)>,
    env: &mut Env<'_>,
    put: &mut Vec<Task>,
    ops: &mut Vec<Op>,
) {
    if let Some(status) = decision.status {
        ops.push(Op::SetUpdateStatus { id: svc.id.clone(), status: Some(status) });
    }
    if let Some(message) = decision.rollback {
        if svc.previous_spec.is_some() {
            ops.push(Op::RollbackService { id: svc.id.clone(), version: None, message });
        } else {
            let started = svc.update_status.as_ref().map(|u| u.started_at.clone()).unwrap_or_default();
            ops.push(Op::SetUpdateStatus {
                id: svc.id.clone(),
                status: Some(UpdateStatus {
                    state: "paused".into(),
                    started_at: started,
                    completed_at: String::new(),
                    message: format!("{message}: no previous spec to roll back to; update paused"),
                }),
            });
        }
        return;
    }
    let order = update::Settings::of(svc, update::Phase::of(svc)).order;
    for (t, slot, node) in candidates.into_iter().take(decision.budget) {
        if order == update::Order::StopFirst {
            put.push(shut_down(t, "updating to a new spec", env.now_ns));
        }
        put.push(new_task(env, svc, slot, &node));
    }
}

#[allow(clippy::too_many_arguments)]
fn reconcile_replicated(
    state: &ClusterState,
    svc: &Service,
    replicas: u64,
    tasks: &[&Task],
    made: &Made<'_>,
    env: &mut Env<'_>,
    put: &mut Vec<Task>,
    ops: &mut Vec<Op>,
) {
    let now = state.template_index.get(&svc.id).copied();
    let current = &|t: &Task| made.current(t, svc, now);
    // live tasks per slot, and the one holding each slot (one sorted list cut by slot: a map of lists cost an
    // allocation per slot and round)
    let mut by_slot: Vec<&Task> = tasks.iter().copied().filter(|t| is_live(t) && t.slot > 0).collect();
    by_slot.sort_unstable_by(|a, b| a.slot.cmp(&b.slot).then(a.created_at.cmp(&b.created_at)).then(a.id.cmp(&b.id)));
    let mut live: BTreeMap<u64, &Task> = BTreeMap::new();
    let mut beside: BTreeMap<u64, Vec<&Task>> = BTreeMap::new();
    for ts in by_slot.chunk_by_mut(|a, b| a.slot == b.slot) {
        let slot = ts[0].slot;
        let (main, kept) = pick_main(ts, current, env, put);
        live.insert(slot, main);
        if !kept.is_empty() {
            beside.insert(slot, kept);
        }
    }
    // scale down: remove slots from the most loaded nodes, non-running first, highest slot first
    if live.len() as u64 > replicas {
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        for t in live.values() {
            *load.entry(t.node_id.as_str()).or_default() += 1;
        }
        let mut order: Vec<&Task> = live.values().copied().collect();
        order.sort_by_key(|t| {
            (
                t.status.state == TaskState::Running,
                std::cmp::Reverse(load.get(t.node_id.as_str()).copied().unwrap_or(0)),
                std::cmp::Reverse(t.slot),
            )
        });
        let excess = live.len() - replicas as usize;
        for t in order.into_iter().take(excess) {
            for x in std::iter::once(t).chain(beside.remove(&t.slot).unwrap_or_default()) {
                let mut s = shut_down(x, "service scaled down", env.now_ns);
                s.desired_state = TaskState::Remove;
                put.push(s);
            }
            live.remove(&t.slot);
        }
    }
    // scale up: the lowest free slot numbers
    let mut fresh: BTreeSet<u64> = BTreeSet::new();
    let mut next = 1u64;
    while ((live.len() + fresh.len()) as u64) < replicas {
        while live.contains_key(&next) || fresh.contains(&next) {
            next += 1;
        }
        put.push(new_task(env, svc, next, ""));
        fresh.insert(next);
        next += 1;
    }
    // live tasks that stopped, sit on lost nodes, or are out of date
    let mut candidates: Vec<(&Task, u64, String)> = Vec::new();
    let mut waiting = 0usize;
    // what this round already made or changed (a set: `put` holds thousands of tasks during a large create or a mass
    // node loss, and scanning it per slot was quadratic), and each node's verdict once
    let touched: std::collections::HashSet<String> = put.iter().map(|p| p.id.clone()).collect();
    let mut lost: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for (&slot, &t) in live.iter() {
        if touched.contains(&t.id) {
            continue; // made or changed this round
        }
        if t.status.state.is_terminal() {
            let key = format!("{}/{}", svc.id, slot);
            match ended_out_of_date(state, svc, &key, t, current, env.now_ns) {
                Some(true) => candidates.push((t, slot, String::new())),
                Some(false) => {
                    waiting += 1;
                    replace_if_due(state, svc, key, t, slot, "", env, put, ops);
                }
                None => replace_if_due(state, svc, key, t, slot, "", env, put, ops),
            }
        } else if !t.node_id.is_empty() && *lost.entry(t.node_id.as_str()).or_insert_with(|| node_lost(state, &t.node_id)) {
            put.push(shut_down(t, "node is down or drained", env.now_ns));
            put.push(new_task(env, svc, slot, ""));
        } else if !current(t) {
            candidates.push((t, slot, String::new()));
        }
    }
    let facts = update_facts(svc, tasks, made, current, replicas as usize, candidates.len() + waiting, env.now_ns);
    let decision = update::decide(svc, &facts, env.now_ns);
    carry_out(svc, decision, candidates, env, put, ops);
}

fn reconcile_global(
    state: &ClusterState,
    svc: &Service,
    tasks: &[&Task],
    made: &Made<'_>,
    env: &mut Env<'_>,
    put: &mut Vec<Task>,
    ops: &mut Vec<Op>,
) {
    let now = state.template_index.get(&svc.id).copied();
    let current = &|t: &Task| made.current(t, svc, now);
    let eligible: BTreeSet<&str> = state
        .nodes
        .keys()
        .map(String::as_str)
        .filter(|n| node_usable(state, n) && node_satisfies(state, n, &svc.spec.task_template))
        .collect();
    let mut by_node: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in tasks.iter().filter(|t| is_live(t)) {
        by_node.entry(t.node_id.as_str()).or_default().push(t);
    }
    let mut live: BTreeMap<&str, (&Task, Vec<&Task>)> = BTreeMap::new();
    for (node, mut ts) in by_node {
        live.insert(node, pick_main(&mut ts, current, env, put));
    }
    let mut candidates: Vec<(&Task, u64, String)> = Vec::new();
    let mut waiting = 0usize;
    for (node, (t, kept)) in &live {
        let key = format!("{}/node/{}", svc.id, node);
        if !eligible.contains(node) {
            // drained, down, gone, or no longer matching the constraints
            if node_lost(state, node) || !node_satisfies(state, node, &svc.spec.task_template) {
                for x in std::iter::once(t).chain(kept.iter()) {
                    put.push(shut_down(x, "node is no longer eligible", env.now_ns));
                }
            }
        } else if t.status.state.is_terminal() {
            match ended_out_of_date(state, svc, &key, t, current, env.now_ns) {
                Some(true) => candidates.push((t, 0, node.to_string())),
                Some(false) => {
                    waiting += 1;
                    replace_if_due(state, svc, key, t, 0, node, env, put, ops);
                }
                None => replace_if_due(state, svc, key, t, 0, node, env, put, ops),
            }
        } else if !current(t) {
            candidates.push((t, 0, node.to_string()));
        }
    }
    for node in &eligible {
        if !live.contains_key(node) {
            put.push(new_task(env, svc, 0, node));
        }
    }
    let facts = update_facts(svc, tasks, made, current, eligible.len(), candidates.len() + waiting, env.now_ns);
    let decision = update::decide(svc, &facts, env.now_ns);
    carry_out(svc, decision, candidates, env, put, ops);
}

/// The reaper: delete history beyond the retention limit per slot (or node, for global services), tasks of removed
/// services once they stopped (or their node is gone), and tasks on removed nodes.
pub fn reap(state: &ClusterState, retention: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut groups: BTreeMap<(String, u64, String), Vec<&Task>> = BTreeMap::new();
    for t in state.tasks.values() {
        let stopped = t.status.state.is_terminal() || node_lost(state, &t.node_id) && !t.node_id.is_empty();
        if !state.services.contains_key(&t.service_id) || t.desired_state == TaskState::Remove {
            if stopped || t.node_id.is_empty() {
                out.push(t.id.clone());
            }
            continue;
        }
        if !t.node_id.is_empty() && !state.nodes.contains_key(&t.node_id) {
            out.push(t.id.clone());
            continue;
        }
        if !is_live(t) && t.status.state.is_terminal() {
            let node = if t.slot == 0 { t.node_id.clone() } else { String::new() };
            groups.entry((t.service_id.clone(), t.slot, node)).or_default().push(t);
        }
    }
    for (_, mut hist) in groups {
        if hist.len() > retention {
            hist.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
            out.extend(hist[retention..].iter().map(|t| t.id.clone()));
        }
    }
    out
}

/// Whether a node satisfies a task's placement constraints (global services place by node, not through the
/// scheduler's spread). Constraints were validated at service creation; one that does not parse matches nothing.
fn node_satisfies(state: &ClusterState, node_id: &str, spec: &skep_api::docker::TaskSpec) -> bool {
    let constraints = spec.placement.as_ref().map(|p| p.constraints.as_slice()).unwrap_or(&[]);
    state.nodes.get(node_id).is_some_and(|r| crate::scheduler::node_matches(&r.node, constraints))
}
