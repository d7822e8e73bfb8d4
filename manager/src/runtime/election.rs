//! A follower's election timer, checked every [`CHECK`], in place of openraft's own.
//!
//! openraft 0.9 looks at its election timer only on its tick, every 1.5 heartbeat intervals (375 ms at skep's 250 ms
//! heartbeat: `Raft::new` spawns `Tick` with `heartbeat_interval * 3 / 2`), and draws the random part of the timeout
//! once per node, at start (`EngineConfig::new`). So a follower of a killed leader campaigned up to one tick after
//! its timeout had passed: 0.85–1.375 s after the leader's last heartbeat instead of 0.85–1.0 s. Two survivors
//! that split a vote retried after their own fixed timeouts, when a fresh draw per round is what separates them (the
//! Raft paper, §5.2). And a voter once refused by a longer log (openraft's `seen_greater_log`) kept the penalty for
//! that (one more second) until its next election, however much later: a manager restarted on its data and refused
//! once carried it to the next failover.
//!
//! This task checks the condition openraft's timer checks (`RaftCore::handle_tick_election`: a voter that is not the
//! leader; the time since its vote last changed or was refreshed by the leader, against the leader lease plus the
//! random timeout, or the timeout alone when the vote is not committed; longer after a voter with a longer log
//! refused it) every [`CHECK`]. openraft's own timer is off (`enable_elect: false`): this task is the only one that
//! starts elections, through `Raft::trigger().elect()`, and only after a pre-vote won ([`super::prevote`]), so a
//! manager that cannot win never raises its term and never deposes a live leader when it comes back. It differs from
//! openraft's timer in three more ways: the random part is drawn afresh for each vote refresh; a candidate retrying
//! after a failed round (its own uncommitted vote: no leader's lease to respect) draws from a wider range,
//! [`RETRY_MIN`] up; and the longer-log penalty counts only for a refusal seen since the vote was last refreshed.
//! It never campaigns while a leader's lease could still hold (the same lease and range as openraft's timer). A
//! manager restarted on its data counts its timeout from its start, so that the leader has time to reach it first;
//! a lost pre-vote is asked again after a fresh random timeout. A lone voter elects itself at once.

use super::Manager;
use crate::raft::network::GreaterLog;
use crate::raft::RaftTiming;
use openraft::ServerState;
use rand::Rng as _;
use std::time::Duration;
use tokio::time::Instant;

/// How often the timer is checked (one `with_raft_state` round trip to the Raft core each time).
const CHECK: Duration = Duration::from_millis(20);

/// Lower bound of a candidate's retry timeout after a failed round (split vote, refusal). Low, so that a second round
/// starts soon and two candidates' draws spread over more than the usual range; above a round trip on a busy host,
/// so that a round's answers arrive first.
const RETRY_MIN: Duration = Duration::from_millis(150);

/// The state of this manager's vote, as the timer reads it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VoteKind {
    /// Committed: a leader is (or was) known; its lease comes first.
    Committed,
    /// Granted to another candidate, not yet committed.
    Granted,
    /// This manager's own candidacy, not (yet) won.
    Candidate,
}

/// When a voter whose vote was last changed or refreshed at `utime` may campaign, as openraft's timer decides it:
/// `random` after the leader's lease (the whole of `election_max`) if the vote is committed, `random` after `utime`
/// if not, and twice `election_max` more after a voter with a longer log refused this one's vote request since
/// then (`smaller_log_timeout`).
pub fn election_due(utime: Instant, kind: VoteKind, refused_by_longer_log: bool, timing: &RaftTiming, random: Duration) -> Instant {
    let mut wait = random;
    if kind == VoteKind::Committed {
        wait += timing.election_max;
    }
    if refused_by_longer_log {
        wait += timing.election_max * 2;
    }
    utime + wait
}

/// A random timeout: in `[election_min, election_max)` as openraft draws its own, or from [`RETRY_MIN`] for a
/// candidate's retry.
fn draw(timing: &RaftTiming, kind: VoteKind) -> Duration {
    let lo = match kind {
        VoteKind::Candidate => RETRY_MIN.min(timing.election_min),
        _ => timing.election_min,
    };
    let (lo, hi) = (lo.as_millis() as u64, timing.election_max.as_millis() as u64);
    Duration::from_millis(if hi > lo { rand::thread_rng().gen_range(lo..hi) } else { lo })
}

impl Manager {
    /// See the module docs. `greater_log` is when the network last saw a voter with a longer log refuse a vote
    /// request of this manager's.
    pub(super) async fn election_loop(self, greater_log: GreaterLog) {
        let timing = self.inner.cfg.timing;
        let me = self.inner.cfg.raft_id;
        let started = Instant::now();
        let mut stop = self.inner.stop.subscribe();
        let mut tick = tokio::time::interval(CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // the vote refresh seen first (at start: not yet a sign that a leader reached this manager)
        let mut first: Option<Option<Instant>> = None;
        // the time the timeout counts from that the random part was drawn for, and the draw
        let mut drawn: Option<(Instant, Duration)> = None;
        // after a lost pre-vote: the time the timeout counted from, and when to ask again
        let mut retry: Option<(Instant, Instant)> = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            {
                let m = self.inner.raft.metrics().borrow().clone();
                let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
                // a leader does not campaign; a leader handing over has elections switched off
                // (`hand_over_leadership`), and so does this timer
                if matches!(m.state, ServerState::Leader | ServerState::Shutdown)
                    || !voters.contains(&me)
                    || self.handing_over()
                {
                    continue;
                }
                // a lone voter elects itself at once, as openraft's timer did (one round, no pre-vote to ask)
                if voters.len() == 1 {
                    if m.state != ServerState::Candidate && !self.campaign().await {
                        return;
                    }
                    continue;
                }
            }
            let seen = self.inner.raft.with_raft_state(move |st| {
                let v = st.vote_ref();
                let kind = if v.is_committed() {
                    VoteKind::Committed
                } else if v.leader_id().voted_for() == Some(me) {
                    VoteKind::Candidate
                } else {
                    VoteKind::Granted
                };
                (st.vote_last_modified(), kind)
            });
            let (utime, kind) = match seen.await {
                Ok(s) => s,
                Err(_) => return,
            };
            // not refreshed since this manager started: count from the start, so that a leader has time to reach
            // a manager restarted on its data (and if it has not, the pre-vote finds out whether one lives)
            let since = match utime {
                Some(u) if *first.get_or_insert(utime) != utime => u,
                u => u.map_or(started, |u| u.max(started)),
            };
            let random = match drawn {
                Some((at, r)) if at == since => r,
                _ => {
                    let r = draw(&timing, kind);
                    drawn = Some((since, r));
                    r
                }
            };
            let refused = greater_log.lock().unwrap_or_else(|p| p.into_inner()).is_some_and(|at| at >= since);
            if Instant::now() < election_due(since, kind, refused, &timing, random) {
                continue;
            }
            if retry.is_some_and(|(at, next)| at == since && Instant::now() < next) {
                continue;
            }
            if !self.pre_vote(timing.election_max).await {
                retry = Some((since, Instant::now() + draw(&timing, kind)));
                continue;
            }
            tracing::debug!(
                silent_ms = since.elapsed().as_millis() as u64,
                ?kind,
                refused,
                "election timeout passed, pre-vote won: campaigning"
            );
            if !self.campaign().await {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_of_a_known_leader_waits_out_the_lease_and_its_random_timeout() {
        let t = RaftTiming::default();
        let u = Instant::now();
        let r = Duration::from_millis(400);
        assert_eq!(election_due(u, VoteKind::Committed, false, &t, r), u + t.election_max + r);
        // a candidate, or a voter for one, waits its random timeout only
        assert_eq!(election_due(u, VoteKind::Candidate, false, &t, r), u + r);
        assert_eq!(election_due(u, VoteKind::Granted, false, &t, r), u + r);
        // after a refusal by a longer log, twice election_max more (openraft's smaller_log_timeout)
        assert_eq!(election_due(u, VoteKind::Committed, true, &t, r), u + t.election_max * 3 + r);
    }

    #[test]
    fn draws_stay_within_openrafts_range_but_a_candidates_retry_may_come_sooner() {
        let t = RaftTiming::default();
        for _ in 0..1000 {
            for kind in [VoteKind::Committed, VoteKind::Granted] {
                let d = draw(&t, kind);
                assert!(d >= t.election_min && d < t.election_max, "{d:?}");
            }
            let d = draw(&t, VoteKind::Candidate);
            assert!(d >= RETRY_MIN && d < t.election_max, "{d:?}");
        }
    }
}
