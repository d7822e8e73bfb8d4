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
//! - [`tests`]: behaviour tests over states built in memory.

#[cfg(test)]
mod tests;

use crate::store::{ClusterState, Op};
use skep_api::docker::{
    availability, node_state, RestartPolicy, Service, Task, TaskState, TaskStatus, UpdateStatus, SECOND_NS,
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
    is_current_at(state, t, svc, state.template_index.get(&svc.id).copied())
}

/// [`is_current`] with the service's template index already looked up (once per service, not per task).
fn is_current_at(state: &ClusterState, t: &Task, svc: &Service, now: Option<u64>) -> bool {
    match (state.task_template.get(&t.id), now) {
        (Some(made), Some(now)) => *made == now,
        _ => is_up_to_date(t, svc),
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
        r.node.status.state != node_state::DOWN && r.node.spec.availability == availability::ACTIVE
    })
}

/// A node's live tasks must leave it: gone, down, or drained.
fn node_lost(state: &ClusterState, node_id: &str) -> bool {
    match state.nodes.get(node_id) {
        None => true,
        Some(r) => r.node.status.state == node_state::DOWN || r.node.spec.availability == availability::DRAIN,
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
    for svc in state.services.values() {
        let tasks = by_service.remove(svc.id.as_str()).unwrap_or_default();
        if svc.spec.mode.is_global() {
            reconcile_global(state, svc, &tasks, env, &mut put, &mut ops);
        } else if let Some(n) = svc.spec.mode.replicas() {
            reconcile_replicated(state, svc, n, &tasks, env, &mut put, &mut ops);
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

fn update_parallelism(svc: &Service) -> usize {
    match svc.spec.update_config.as_ref().map(|u| u.parallelism) {
        Some(0) => usize::MAX,
        Some(n) => n as usize,
        None => 1,
    }
}

fn reconcile_replicated(
    state: &ClusterState,
    svc: &Service,
    replicas: u64,
    tasks: &[&Task],
    env: &mut Env<'_>,
    put: &mut Vec<Task>,
    ops: &mut Vec<Op>,
) {
    // live task per slot (the newest if, transiently, several)
    let mut live: BTreeMap<u64, &Task> = BTreeMap::new();
    for t in tasks.iter().filter(|t| is_live(t) && t.slot > 0) {
        match live.get(&t.slot) {
            Some(o) if o.created_at >= t.created_at => {}
            _ => {
                live.insert(t.slot, t);
            }
        }
    }
    // duplicates in a slot (a stale leader's work): keep the newest
    for t in tasks.iter().filter(|t| is_live(t) && t.slot > 0) {
        if live.get(&t.slot).is_some_and(|k| k.id != t.id) {
            put.push(shut_down(t, "duplicate task in slot", env.now_ns));
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
            let mut s = shut_down(t, "service scaled down", env.now_ns);
            s.desired_state = TaskState::Remove;
            put.push(s);
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
    let now = state.template_index.get(&svc.id).copied();
    let in_flight = live
        .values()
        .filter(|t| {
            t.status.state < TaskState::Running && !t.status.state.is_terminal() && is_current_at(state, t, svc, now)
        })
        .count();
    let mut budget = update_parallelism(svc).saturating_sub(in_flight);
    let mut dirty = 0usize;
    // what this round already made or changed (a set: `put` holds thousands of tasks during a large create or a mass
    // node loss, and scanning it per slot was quadratic), and each node's verdict once
    let touched: std::collections::HashSet<String> = put.iter().map(|p| p.id.clone()).collect();
    let mut lost: std::collections::HashMap<&str, bool> = std::collections::HashMap::new();
    for (&slot, &t) in live.iter() {
        if touched.contains(&t.id) {
            continue; // made or changed this round
        }
        let key = format!("{}/{}", svc.id, slot);
        if t.status.state.is_terminal() {
            replace_if_due(state, svc, key, &t, slot, "", env, put, ops);
        } else if !t.node_id.is_empty() && *lost.entry(t.node_id.as_str()).or_insert_with(|| node_lost(state, &t.node_id)) {
            put.push(shut_down(&t, "node is down or drained", env.now_ns));
            put.push(new_task(env, svc, slot, ""));
        } else if !is_current_at(state, t, svc, now) {
            dirty += 1;
            if budget > 0 {
                budget -= 1;
                put.push(shut_down(&t, "updating to a new spec", env.now_ns));
                put.push(new_task(env, svc, slot, ""));
            }
        }
    }
    update_status(svc, dirty, in_flight, env, ops);
}

/// `UpdateStatus` follows a spec change: `updating` while slots are out of date or new tasks not yet running,
/// `completed` after. A scale alone never starts an update (the store clears the status only on spec changes).
fn update_status(svc: &Service, dirty: usize, in_flight: usize, env: &Env<'_>, ops: &mut Vec<Op>) {
    let changed = svc.previous_spec.as_ref().is_some_and(|p| p.task_template != svc.spec.task_template);
    if !changed {
        return;
    }
    let cur = svc.update_status.as_ref().map(|u| u.state.as_str());
    if dirty > 0 || in_flight > 0 {
        if cur != Some("updating") && cur != Some("completed") {
            ops.push(Op::SetUpdateStatus {
                id: svc.id.clone(),
                status: Some(UpdateStatus {
                    state: "updating".into(),
                    started_at: ts(env.now_ns),
                    completed_at: String::new(),
                    message: "update in progress".into(),
                }),
            });
        }
    } else if cur == Some("updating") {
        let started = svc.update_status.as_ref().map(|u| u.started_at.clone()).unwrap_or_default();
        ops.push(Op::SetUpdateStatus {
            id: svc.id.clone(),
            status: Some(UpdateStatus {
                state: "completed".into(),
                started_at: started,
                completed_at: ts(env.now_ns),
                message: "update completed".into(),
            }),
        });
    }
}

fn reconcile_global(
    state: &ClusterState,
    svc: &Service,
    tasks: &[&Task],
    env: &mut Env<'_>,
    put: &mut Vec<Task>,
    ops: &mut Vec<Op>,
) {
    let eligible: BTreeSet<&str> = state
        .nodes
        .keys()
        .map(String::as_str)
        .filter(|n| node_usable(state, n) && node_satisfies(state, n, &svc.spec.task_template))
        .collect();
    let mut live: BTreeMap<&str, &Task> = BTreeMap::new();
    for t in tasks.iter().filter(|t| is_live(t)) {
        if live.contains_key(t.node_id.as_str()) {
            put.push(shut_down(t, "duplicate task on node", env.now_ns));
            continue;
        }
        live.insert(t.node_id.as_str(), t);
    }
    let mut dirty = 0;
    let mut budget = update_parallelism(svc);
    for (node, t) in &live {
        let key = format!("{}/node/{}", svc.id, node);
        if !eligible.contains(node) {
            // drained, down, gone, or no longer matching the constraints
            if node_lost(state, node) || !node_satisfies(state, node, &svc.spec.task_template) {
                put.push(shut_down(t, "node is no longer eligible", env.now_ns));
            }
        } else if t.status.state.is_terminal() {
            replace_if_due(state, svc, key, t, 0, node, env, put, ops);
        } else if !is_current(state, t, svc) {
            dirty += 1;
            if budget > 0 {
                budget -= 1;
                put.push(shut_down(t, "updating to a new spec", env.now_ns));
                put.push(new_task(env, svc, 0, node));
            }
        }
    }
    for node in eligible {
        if !live.contains_key(node) {
            put.push(new_task(env, svc, 0, node));
        }
    }
    let in_flight = live.values().filter(|t| is_current(state, t, svc) && t.status.state < TaskState::Running).count();
    update_status(svc, dirty, in_flight, env, ops);
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
