//! Jobs: services whose tasks run to completion (swarmkit's `manager/orchestrator/jobs`).
//!
//! A job runs in *iterations*: the service's `JobStatus.JobIteration` (the store version of its creation or of its
//! last update, so `service update --force` runs it again), which every task made for it carries. Only the current
//! iteration's tasks count; older ones still live are removed.
//! - `replicated-job`: slots `0..TotalCompletions` (0-based, as swarmkit numbers them and the docker CLI's job
//!   progress display counts them), at most `MaxConcurrent` running at once; a slot whose task
//!   completed is done; a failed task is replaced by the restart policy (a completed one never is).
//! - `global-job`: one task per eligible node, run once.
//!
//! A completed task's desired state becomes `complete` (what `service ps` shows for it in Docker).

use super::{is_live, new_task, node_satisfies, node_usable, replace_if_due, shut_down, Env};
use crate::store::{ClusterState, Op};
use skep_api::docker::{Service, Task, TaskState};
use std::collections::{BTreeMap, BTreeSet};

/// The changes one job wants now.
pub(super) fn reconcile_job(
    state: &ClusterState,
    svc: &Service,
    tasks: &[&Task],
    env: &mut Env<'_>,
    put: &mut Vec<Task>,
    ops: &mut Vec<Op>,
) {
    let run = svc.job_status.as_ref().map(|j| j.job_iteration);
    let mut current: Vec<&Task> = Vec::new();
    for t in tasks {
        if t.job_iteration == run {
            current.push(t);
        } else if is_live(t) && !t.status.state.is_terminal() {
            let mut gone = shut_down(t, "a newer run of the job started", env.now_ns);
            gone.desired_state = TaskState::Remove;
            put.push(gone);
        }
    }
    // completed: done for good
    for t in current.iter().filter(|t| t.status.state == TaskState::Complete && t.desired_state < TaskState::Complete) {
        let mut done = (*t).clone();
        done.desired_state = TaskState::Complete;
        put.push(done);
    }
    if let Some((max, total)) = svc.spec.mode.job_limits() {
        replicated(state, svc, &current, max, total, env, put, ops);
    } else {
        global(state, svc, &current, env, put, ops);
    }
}

#[allow(clippy::too_many_arguments)]
fn replicated(
    state: &ClusterState,
    svc: &Service,
    current: &[&Task],
    max: u64,
    total: u64,
    env: &mut Env<'_>,
    put: &mut Vec<Task>,
    ops: &mut Vec<Op>,
) {
    let mut done: BTreeSet<u64> = BTreeSet::new();
    let mut live: BTreeMap<u64, &Task> = BTreeMap::new();
    for t in current {
        if t.status.state == TaskState::Complete {
            done.insert(t.slot);
        } else if is_live(t) {
            live.insert(t.slot, t);
        }
    }
    // live tasks that ended (failed, rejected): the restart policy decides; they still count as running
    for (&slot, t) in &live {
        if t.status.state.is_terminal() {
            let key = format!("{}/{}", svc.id, slot);
            replace_if_due(state, svc, key, t, slot, "", env, put, ops);
        }
    }
    let running = live.len() as u64;
    let completed = done.len() as u64;
    let room = max.saturating_sub(running).min(total.saturating_sub(completed).saturating_sub(running));
    let mut made = 0;
    let mut slot = 0u64;
    while made < room && slot < total {
        if !done.contains(&slot) && !live.contains_key(&slot) {
            put.push(new_task(env, svc, slot, ""));
            made += 1;
        }
        slot += 1;
    }
}

fn global(state: &ClusterState, svc: &Service, current: &[&Task], env: &mut Env<'_>, put: &mut Vec<Task>, ops: &mut Vec<Op>) {
    let mut by_node: BTreeMap<&str, Vec<&Task>> = BTreeMap::new();
    for t in current {
        by_node.entry(t.node_id.as_str()).or_default().push(t);
    }
    for node in state.nodes.keys() {
        if !node_usable(state, node) || !node_satisfies(state, node, &svc.spec.task_template) {
            continue;
        }
        let mine = by_node.get(node.as_str()).map(Vec::as_slice).unwrap_or_default();
        if mine.iter().any(|t| t.status.state == TaskState::Complete) {
            continue;
        }
        match mine.iter().find(|t| is_live(t)) {
            Some(t) if t.status.state.is_terminal() => {
                let key = format!("{}/node/{}", svc.id, node);
                replace_if_due(state, svc, key, t, 0, node, env, put, ops);
            }
            Some(_) => {}
            None => put.push(new_task(env, svc, 0, node)),
        }
    }
}
