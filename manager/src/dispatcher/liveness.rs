//! Node liveness, as the leader sees it: which nodes are down for want of heartbeats. Pure: the runtime feeds
//! heartbeats and the leader's periodic check ([`Liveness::tick`]) with tokio's clock and proposes the verdicts.
//!
//! A node that has not heartbeated for `ttl` (3 heartbeat periods) is down. Only transitions are written to the store:
//! ready → down here, down/unknown → ready when a heartbeat arrives. A new leader gives every node a full `ttl` of grace
//! from the moment it took over, so a leader change never marks healthy nodes down.
//!
//! Nor does a busy leader: time the leader itself did not look (its checks, normally every few hundred milliseconds,
//! came late because its runtime was saturated) is not counted against anyone, because the heartbeats of that time
//! may be sitting unread in its own queues. Every deadline moves out by the stall.
//!
//! And when the leader hears from fewer than half of the ready nodes within a TTL, the fault is more likely its own
//! (its network, or a machine too loaded to read its sockets) than half the cluster failing at once: it holds its
//! verdicts, for one more TTL at most (in clusters of [`HOLD_MIN_NODES`] or more). Marking half the nodes down would
//! move all their tasks onto the other half, which is how an overloaded cluster collapses. A real mass failure is
//! still noticed, one TTL later.
//!
//! It also counts, per node, the heartbeats received and the times the node was marked down for silence
//! ([`BeatCounts`]): the daemon's `/metrics` reads them, and keeping them here costs no lock the heartbeat does not
//! already take.

use super::heartbeat_period_ns;
use crate::store::{ClusterState, Op};
use skep_api::docker::NodeState;
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
    /// Per node: heartbeats received and down verdicts, since this manager started (kept across its terms as leader;
    /// a node removed from the store is forgotten).
    counts: HashMap<String, BeatCounts>,
}

/// What the leader counted of one node's heartbeats (counters, for `/metrics`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BeatCounts {
    /// Heartbeats received from the node.
    pub received: u64,
    /// Times the node was marked down for missing its heartbeats (the verdict recorded in the store).
    pub missed: u64,
}

/// Verdicts are held when the leader hears from fewer than half of the ready nodes, in clusters of at least this many
/// (in a smaller one, half the nodes failing together is not unlikely enough to doubt).
pub const HOLD_MIN_NODES: usize = 8;

/// Checks further apart than this mean the leader stalled; the excess is forgiven.
pub const CHECK_SLACK: Duration = Duration::from_millis(500);

impl Liveness {
    /// Nodes are down after `ttl` without a heartbeat.
    pub fn new(ttl: Duration) -> Liveness {
        Liveness { ttl, deadlines: HashMap::new(), last_check: None, counts: HashMap::new() }
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

    /// A heartbeat from `node` (counted).
    pub fn heartbeat(&mut self, node: &str, now: Instant) {
        self.deadlines.insert(node.to_string(), now + self.ttl);
        self.count(node).received += 1;
    }

    /// `node` was marked down for silence: the verdict of [`Liveness::tick`] is in the store (counted).
    pub fn marked_down(&mut self, node: &str) {
        self.count(node).missed += 1;
    }

    /// `node`'s counts, made on first use (no allocation once the node is known).
    fn count(&mut self, node: &str) -> &mut BeatCounts {
        if !self.counts.contains_key(node) {
            self.counts.insert(node.to_string(), BeatCounts::default());
        }
        self.counts.get_mut(node).unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// The counts of every node heard from or marked down since this manager started.
    pub fn counts(&self) -> impl Iterator<Item = (&str, BeatCounts)> {
        self.counts.iter().map(|(id, c)| (id.as_str(), *c))
    }

    /// A node just joined: it has yet to start its agent and dial the leader with its new certificate, which on a
    /// leader busy with other joins can take longer than a heartbeat period, so its first deadline is two TTLs away.
    pub fn joined(&mut self, node: &str, now: Instant) {
        self.deadlines.insert(node.to_string(), now + self.ttl * 2);
    }

    /// Stop tracking a node (removed).
    pub fn forget(&mut self, node: &str) {
        self.deadlines.remove(node);
    }

    /// Whether `node` heartbeated within the TTL.
    pub fn alive(&self, node: &str, now: Instant) -> bool {
        self.deadlines.get(node).is_some_and(|d| *d > now)
    }

    /// The leader's periodic check: the TTL follows the cluster's heartbeat period (3 periods), then the verdicts of
    /// [`Liveness::expired`]. The leader (`leader`, its own node ID) does not heartbeat itself over the network: its
    /// check counts as its heartbeat, and it never marks itself down.
    pub fn tick(&mut self, state: &ClusterState, leader: &str, now: Instant) -> Vec<Op> {
        self.set_ttl(Duration::from_nanos(3 * heartbeat_period_ns(state).max(1) as u64));
        let mut ops = self.expired(state, now);
        // the leader's own check: a deadline, not a heartbeat received
        self.deadlines.insert(leader.to_string(), now + self.ttl);
        ops.retain(|op| !matches!(op, Op::SetNodeStatus { id, .. } if id == leader));
        ops
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
        let ready = state.nodes.values().filter(|r| r.node.status.state != NodeState::Down).count();
        let heard = state
            .nodes
            .iter()
            .filter(|(id, r)| r.node.status.state != NodeState::Down && self.alive(id, now))
            .count();
        // hearing from fewer than half: hold verdicts on nodes silent for less than two TTLs (see the module docs)
        let hold = ready >= HOLD_MIN_NODES && heard * 2 < ready;
        let mut held = 0usize;
        for (id, rec) in &state.nodes {
            let deadline = *self.deadlines.entry(id.clone()).or_insert(now + self.ttl);
            if deadline <= now && rec.node.status.state != NodeState::Down {
                let silent = now.saturating_duration_since(deadline) + self.ttl;
                if hold && silent < self.ttl * 2 {
                    held += 1;
                    continue;
                }
                tracing::warn!(node = %id, silent_ms = silent.as_millis() as u64, "node marked down: no heartbeat");
                ops.push(Op::SetNodeStatus {
                    id: id.clone(),
                    state: NodeState::Down,
                    message: "heartbeat failure".into(),
                    addr: String::new(),
                });
            }
        }
        if held > 0 {
            tracing::warn!(heard, ready, held, "heard from fewer than half of the ready nodes; verdicts held for one more TTL");
        }
        self.deadlines.retain(|id, _| state.nodes.contains_key(id));
        self.counts.retain(|id, _| state.nodes.contains_key(id));
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use skep_api::docker::{Node, NodeState};

    fn st(nodes: &[(&str, &str)]) -> ClusterState {
        let mut s = ClusterState::default();
        for (id, state) in nodes {
            let mut n = Node { id: id.to_string(), ..Default::default() };
            n.status.state = state.parse().unwrap();
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
        assert!(matches!(&ops[0], Op::SetNodeStatus { id, state, .. } if id == "b" && *state == NodeState::Down));
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
    fn hearing_from_fewer_than_half_holds_verdicts_for_one_more_ttl() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let ids: Vec<String> = (0..10).map(|i| format!("n{i}")).collect();
        let s = st(&ids.iter().map(|i| (i.as_str(), "ready")).collect::<Vec<_>>());
        // every node heartbeats at 0, then the first `silent` stop; checks every 200 ms until `until_ms`: when each
        // silent node was marked down
        let down_at = |silent: usize, until_ms: u64| {
            let mut l = Liveness::new(Duration::from_secs(3));
            let mut down_at = std::collections::BTreeMap::new();
            for ms in (0..=until_ms).step_by(200) {
                let talking = if ms == 0 { &ids[..] } else { &ids[silent..] };
                for id in talking {
                    l.heartbeat(id, at(ms));
                }
                for op in l.expired(&s, at(ms)) {
                    let Op::SetNodeStatus { id, .. } = op else { panic!() };
                    down_at.entry(id).or_insert(ms);
                }
            }
            down_at
        };
        // 3 of 10 go silent: a minority, marked down on time
        let down = down_at(3, 8000);
        assert_eq!(down.len(), 3);
        assert!(down.values().all(|ms| *ms == 3000), "{down:?}");
        // 6 of 10 go silent at once: held for one more TTL, then marked down all the same
        let down = down_at(6, 10000);
        assert_eq!(down.len(), 6);
        assert!(down.values().all(|ms| *ms == 6000), "{down:?}");
    }

    #[test]
    fn a_node_that_just_joined_has_two_ttls_to_send_its_first_heartbeat() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(3));
        let s = st(&[("a", "ready")]);
        l.joined("a", t0);
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        for ms in (200..6000).step_by(200) {
            assert!(l.expired(&s, at(ms)).is_empty(), "{ms}");
        }
        assert_eq!(l.expired(&s, at(6000)).len(), 1);
        // once it heartbeats, the usual TTL applies
        let mut l = Liveness::new(Duration::from_secs(3));
        l.joined("a", t0);
        l.heartbeat("a", at(1000));
        for ms in (1200..4000).step_by(200) {
            assert!(l.expired(&s, at(ms)).is_empty(), "{ms}");
        }
        assert_eq!(l.expired(&s, at(4000)).len(), 1);
    }

    #[test]
    fn the_leaders_check_follows_the_heartbeat_period_and_never_marks_the_leader_down() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut s = st(&[("leader", "ready"), ("a", "ready")]);
        // no cluster record yet: a 1 s period, so a 3 s TTL
        let mut l = Liveness::new(Duration::from_secs(60));
        assert!(l.tick(&s, "leader", t0).is_empty());
        let mut down = Vec::new();
        for ms in (200..=3000).step_by(200) {
            down.extend(l.tick(&s, "leader", at(ms)));
        }
        assert_eq!(down.len(), 1, "{down:?}");
        assert!(matches!(&down[0], Op::SetNodeStatus { id, .. } if id == "a"));
        // a 2 s period in the spec: a 6 s TTL; the leader, silent on the network all along, is never down
        let mut c = crate::store::ClusterRecord::default();
        c.info.spec.dispatcher.heartbeat_period = Some(2_000_000_000);
        s.cluster = Some(c);
        let mut l = Liveness::new(Duration::from_secs(1));
        let mut down = Vec::new();
        for ms in (0..=5800).step_by(200) {
            down.extend(l.tick(&s, "leader", at(ms)));
        }
        assert!(down.is_empty(), "{down:?}");
        assert_eq!(l.tick(&s, "leader", at(6000)).len(), 1);
    }

    #[test]
    fn heartbeats_and_down_verdicts_are_counted_per_node_and_forgotten_with_the_node() {
        let t0 = Instant::now();
        let mut l = Liveness::new(Duration::from_secs(3));
        let s = st(&[("leader", "ready"), ("a", "ready")]);
        l.heartbeat("a", t0);
        l.heartbeat("a", t0);
        l.marked_down("a");
        // the leader's own check is no heartbeat received
        l.tick(&s, "leader", t0);
        let counts: HashMap<&str, BeatCounts> = l.counts().collect();
        assert_eq!(counts, HashMap::from([("a", BeatCounts { received: 2, missed: 1 })]));
        // removed from the store: forgotten
        l.expired(&st(&[("leader", "ready")]), t0);
        assert_eq!(l.counts().count(), 0);
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
