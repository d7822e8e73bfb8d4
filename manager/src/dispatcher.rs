//! Node liveness, as the leader sees it. Pure: the runtime feeds heartbeats and ticks with tokio's clock.
//!
//! A node that has not heartbeated for `ttl` (3 heartbeat periods) is down. Only transitions are written to the store:
//! ready → down here, down/unknown → ready when a heartbeat arrives. A new leader gives every node a full `ttl` of grace
//! from the moment it took over, so a leader change never marks healthy nodes down.
//!
//! Nor does a busy leader: time the leader itself did not look (its checks, normally every few hundred milliseconds,
//! came late because its runtime was saturated) is not counted against anyone, because the heartbeats of that time
//! may be sitting unread in its own queues. Every deadline moves out by the stall.

use crate::store::{ClusterState, Op};
use skep_api::docker::node_state;
use std::collections::HashMap;
use std::time::Duration;
use tokio::time::Instant;

/// Heartbeat deadlines.
#[derive(Debug)]
pub struct Liveness {
    ttl: Duration,
    deadlines: HashMap<String, Instant>,
    /// When `expired` last ran.
    last_check: Option<Instant>,
}

/// Checks further apart than this mean the leader stalled; the excess is forgiven.
pub const CHECK_SLACK: Duration = Duration::from_millis(500);

impl Liveness {
    /// Nodes are down after `ttl` without a heartbeat.
    pub fn new(ttl: Duration) -> Liveness {
        Liveness { ttl, deadlines: HashMap::new(), last_check: None }
    }

    /// Change the TTL (the heartbeat period changed).
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    /// Start over as a new leader: everyone known gets a full TTL from `now`.
    pub fn reset(&mut self, nodes: impl IntoIterator<Item = String>, now: Instant) {
        self.deadlines = nodes.into_iter().map(|n| (n, now + self.ttl)).collect();
        self.last_check = Some(now);
    }

    /// A heartbeat from `node`.
    pub fn heartbeat(&mut self, node: &str, now: Instant) {
        self.deadlines.insert(node.to_string(), now + self.ttl);
    }

    /// Stop tracking a node (removed).
    pub fn forget(&mut self, node: &str) {
        self.deadlines.remove(node);
    }

    /// Whether `node` heartbeated within the TTL.
    pub fn alive(&self, node: &str, now: Instant) -> bool {
        self.deadlines.get(node).is_some_and(|d| *d > now)
    }

    /// Store changes the leader should propose now: nodes recorded as ready whose deadline passed go down.
    /// A node the leader has never heard of since it took over gets a deadline now (grace), not a verdict.
    /// Checks more than [`CHECK_SLACK`] apart move every deadline out by the excess (see the module docs).
    pub fn expired(&mut self, state: &ClusterState, now: Instant) -> Vec<Op> {
        if let Some(stall) = self.last_check.and_then(|l| now.checked_duration_since(l)).and_then(|g| g.checked_sub(CHECK_SLACK)) {
            if !stall.is_zero() {
                tracing::info!(stall_ms = stall.as_millis() as u64, "liveness checks came late; deadlines moved out");
                for d in self.deadlines.values_mut() {
                    *d += stall;
                }
            }
        }
        self.last_check = Some(now);
        let mut ops = Vec::new();
        for (id, rec) in &state.nodes {
            let deadline = *self.deadlines.entry(id.clone()).or_insert(now + self.ttl);
            if deadline <= now && rec.node.status.state != node_state::DOWN {
                let silent = now.saturating_duration_since(deadline) + self.ttl;
                tracing::warn!(node = %id, silent_ms = silent.as_millis() as u64, "node marked down: no heartbeat");
                ops.push(Op::SetNodeStatus {
                    id: id.clone(),
                    state: node_state::DOWN.into(),
                    message: "heartbeat failure".into(),
                    addr: String::new(),
                });
            }
        }
        self.deadlines.retain(|id, _| state.nodes.contains_key(id));
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use skep_api::docker::Node;

    fn st(nodes: &[(&str, &str)]) -> ClusterState {
        let mut s = ClusterState::default();
        for (id, state) in nodes {
            let mut n = Node { id: id.to_string(), ..Default::default() };
            n.status.state = state.to_string();
            s.nodes.insert(id.to_string(), NodeRecord { node: n, ..Default::default() });
        }
        s
    }

    #[test]
    fn a_silent_node_goes_down_after_the_ttl_and_only_once() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(3));
        let s = st(&[("a", "ready"), ("b", "ready")]);
        l.heartbeat("a", t0);
        l.heartbeat("b", t0);
        // checks every 500 ms, as a leader on time makes them
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for ms in [500, 1000, 1500, 2000] {
            assert!(l.expired(&s, at(ms)).is_empty());
        }
        l.heartbeat("a", at(2000));
        assert!(l.expired(&s, at(2500)).is_empty());
        let ops = l.expired(&s, at(3000));
        assert_eq!(ops.len(), 1);
        assert!(matches!(&ops[0], Op::SetNodeStatus { id, state, .. } if id == "b" && state == "down"));
        // once the store says down, nothing more is proposed
        let s2 = st(&[("a", "ready"), ("b", "down")]);
        assert!(l.expired(&s2, at(3500)).is_empty());
    }

    #[test]
    fn time_the_leader_did_not_look_is_not_held_against_anyone() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(3));
        let s = st(&[("a", "ready")]);
        l.heartbeat("a", t0);
        assert!(l.expired(&s, t0 + Duration::from_millis(200)).is_empty());
        // the leader stalls for 4 s: its next check comes at 4.2 s, past a's deadline, but the stall is forgiven
        assert!(l.expired(&s, t0 + Duration::from_millis(4200)).is_empty());
        // checks on time again: a's silence counts from here, and a is down once the ttl has truly run out
        let mut t = t0 + Duration::from_millis(4200);
        let mut down_at = None;
        while t < t0 + Duration::from_secs(10) && down_at.is_none() {
            t += Duration::from_millis(200);
            if !l.expired(&s, t).is_empty() {
                down_at = Some(t);
            }
        }
        assert_eq!(down_at, Some(t0 + Duration::from_millis(6600)));
    }

    #[test]
    fn a_new_leader_gives_everyone_grace() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(3));
        let s = st(&[("a", "ready")]);
        // never heard of "a": grace from the first look, not an immediate verdict
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for ms in [0, 500, 1000, 1500, 2000, 2500] {
            assert!(l.expired(&s, at(ms)).is_empty());
        }
        assert_eq!(l.expired(&s, at(3000)).len(), 1);
        l.reset(["a".to_string()], at(10_000));
        assert!(l.alive("a", at(12_000)));
        assert!(l.expired(&s, at(12_000)).is_empty());
    }
}
