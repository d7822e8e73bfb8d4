//! Node liveness, as the leader sees it. Pure: the runtime feeds heartbeats and ticks with tokio's clock.
//!
//! A node that has not heartbeated for `ttl` (3 heartbeat periods) is down. Only transitions are written to the store:
//! ready → down here, down/unknown → ready when a heartbeat arrives. A new leader gives every node a full `ttl` of grace
//! from the moment it took over, so a leader change never marks healthy nodes down.

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
}

impl Liveness {
    /// Nodes are down after `ttl` without a heartbeat.
    pub fn new(ttl: Duration) -> Liveness {
        Liveness { ttl, deadlines: HashMap::new() }
    }

    /// Change the TTL (the heartbeat period changed).
    pub fn set_ttl(&mut self, ttl: Duration) {
        self.ttl = ttl;
    }

    /// Start over as a new leader: everyone known gets a full TTL from `now`.
    pub fn reset(&mut self, nodes: impl IntoIterator<Item = String>, now: Instant) {
        self.deadlines = nodes.into_iter().map(|n| (n, now + self.ttl)).collect();
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
    pub fn expired(&mut self, state: &ClusterState, now: Instant) -> Vec<Op> {
        let mut ops = Vec::new();
        for (id, rec) in &state.nodes {
            let deadline = *self.deadlines.entry(id.clone()).or_insert(now + self.ttl);
            if deadline <= now && rec.node.status.state != node_state::DOWN {
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
        assert!(l.expired(&s, t0 + Duration::from_secs(2)).is_empty());
        l.heartbeat("a", t0 + Duration::from_secs(2));
        let ops = l.expired(&s, t0 + Duration::from_millis(3001));
        assert_eq!(ops.len(), 1);
        assert!(matches!(&ops[0], Op::SetNodeStatus { id, state, .. } if id == "b" && state == "down"));
        // once the store says down, nothing more is proposed
        let s2 = st(&[("a", "ready"), ("b", "down")]);
        assert!(l.expired(&s2, t0 + Duration::from_secs(4)).is_empty());
    }

    #[test]
    fn a_new_leader_gives_everyone_grace() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(3));
        let s = st(&[("a", "ready")]);
        // never heard of "a": grace from the first look, not an immediate verdict
        assert!(l.expired(&s, t0).is_empty());
        assert!(l.expired(&s, t0 + Duration::from_secs(2)).is_empty());
        assert_eq!(l.expired(&s, t0 + Duration::from_secs(3)).len(), 1);
        l.reset(["a".to_string()], t0 + Duration::from_secs(10));
        assert!(l.alive("a", t0 + Duration::from_secs(12)));
        assert!(l.expired(&s, t0 + Duration::from_secs(12)).is_empty());
    }
}
