//! The leader's reconcile rounds: the orchestrators, the scheduler and the reaper, run on the store and their
//! decisions proposed. The decisions are theirs ([`orchestrator::reconcile`], [`scheduler::schedule`],
//! [`orchestrator::reap`], [`proposals`](crate::orchestrator::proposals)); this decides when a round runs, and proposes.

use super::Manager;
use crate::orchestrator::proposals::{merge_placements, split, CHUNK};
use crate::orchestrator::{self, Env};
use crate::scheduler;
use crate::store::Op;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;

/// Least time between the starts of two reconcile rounds (see `task_loop`).
const ROUND_GAP: Duration = Duration::from_millis(100);

/// Proposals of one reconcile round in flight at once.
const IN_FLIGHT: usize = 4;

impl Manager {
    /// Orchestrate, schedule and reap whenever the store changes (and every 100 ms, for restart delays), while leader.
    /// Rounds start at least `ROUND_GAP` apart: each scans every task, and under a stream of status reports a round
    /// per store version kept the leader's CPU busy with rounds that found nothing to do; changes in between are
    /// taken together by the next round.
    pub(super) async fn task_loop(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut changes = self.subscribe();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_reap = Instant::now();
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                r = changes.changed() => { if r.is_err() { return; } }
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            if !self.leader_ready() {
                continue;
            }
            let reap = last_reap.elapsed() >= Duration::from_secs(1);
            if reap {
                last_reap = Instant::now();
            }
            let started = Instant::now();
            self.reconcile_tasks(reap).await;
            changes.borrow_and_update();
            tokio::time::sleep_until(started + ROUND_GAP).await;
        }
    }

    /// One round of orchestration, scheduling and reaping on the leader. Returns whether it changed anything.
    ///
    /// New tasks are placed in the same round: the orchestrators' changes are applied to a scratch copy of the
    /// state, the scheduler runs on it, and each task is proposed once, already assigned. The chunks of a round go
    /// to Raft a few at a time (they are independent), so a large create is not one commit round trip per chunk.
    async fn reconcile_tasks(&self, reap: bool) -> bool {
        let state = self.local_state();
        let now_ns = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        let mut new_id = || skep_api::id::new_id(&mut rand::thread_rng());
        let ops = orchestrator::reconcile(&state, &mut Env { now_ns, new_id: &mut new_id });
        let ops = if ops.is_empty() {
            scheduler::schedule(&state, now_ns)
        } else {
            let mut scratch = (*state).clone();
            let at = skep_api::time::format_unix_nanos(now_ns.max(0) as u128);
            for op in &ops {
                let _ = scratch.apply(scratch.index, &crate::store::Command { at: at.clone(), op: op.clone() });
            }
            merge_placements(ops, scheduler::schedule(&scratch, now_ns))
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
                .unwrap_or(5);
            // negative: never clean up (swarmkit's meaning)
            let retention = usize::try_from(retention).unwrap_or(usize::MAX);
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
