//! Heartbeats: what the leader answers a node's heartbeat, and what the heartbeat changes in the store.
//!
//! The answer carries the heartbeat period, the managers to fail over to, the role and Raft ID the node should have
//! (how a node learns of its promotion or demotion) and whether the store wants its description. The store is
//! written only on a change: a node recorded as not ready or at another address becomes ready at the address it
//! reports (the address it was heard from when it reports none that parses), and a changed description is recorded.
//! The deadline itself is the [`Liveness`](super::Liveness)'s, which the runtime feeds with the same heartbeat.
//! A manager also says whether its Raft has caught up: one that has not (restarted, or far behind) is recorded as
//! catching up and listed as unreachable until it has, since its API cannot serve yet.

use super::heartbeat_period_ns;
use crate::store::{ClusterState, Op};
use skep_api::docker::{NodeState, Peer};
use skep_api::wire::{Heartbeat, HeartbeatReply};
use std::net::SocketAddr;

/// What the leader does with one heartbeat.
#[derive(Debug)]
pub struct Beat {
    /// The answer to the node.
    pub reply: HeartbeatReply,
    /// Store changes to propose (each on its own; the answer does not wait for them).
    pub ops: Vec<Op>,
}

/// The leader's decision on a heartbeat from `node_id`, received from `from`. `None`: the node is not in this
/// replica (answered with [`UNKNOWN_NODE`](super::UNKNOWN_NODE)).
pub fn heartbeat(state: &ClusterState, node_id: &str, hb: Heartbeat, from: SocketAddr) -> Option<Beat> {
    let rec = state.nodes.get(node_id)?;
    let addr = hb.addr.parse::<SocketAddr>().map(|a| a.ip().to_string()).unwrap_or_else(|_| from.ip().to_string());
    let mut ops = Vec::new();
    if rec.node.status.state != NodeState::Ready || rec.node.status.addr != addr {
        ops.push(Op::SetNodeStatus { id: node_id.to_string(), state: NodeState::Ready, message: String::new(), addr });
    }
    if let (Some(ready), Some(_)) = (hb.manager_ready, rec.raft_id) {
        if ready == state.catching_up.contains(node_id) {
            ops.push(Op::SetManagerCatchingUp { id: node_id.to_string(), catching_up: !ready });
        }
    }
    if let Some(d) = hb.description {
        if d != rec.node.description {
            ops.push(Op::SetNodeDescription { id: node_id.to_string(), description: Box::new(d) });
        }
    }
    let reply = HeartbeatReply {
        period_ms: (heartbeat_period_ns(state) / 1_000_000) as u64,
        managers: manager_peers(state),
        desired_role: rec.node.spec.role,
        raft_id: rec.raft_id,
        want_description: rec.node.description.hostname.is_empty(),
    };
    Some(Beat { reply, ops })
}

/// The managers a node is told about (heartbeat and join replies): those in the Raft membership, with their cluster
/// addresses.
pub fn manager_peers(state: &ClusterState) -> Vec<Peer> {
    state
        .managers()
        .filter(|r| r.raft_id.is_some())
        .map(|r| Peer { node_id: r.node.id.clone(), addr: r.cluster_addr.clone() })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use skep_api::docker::{Node, NodeRole, Reachability};

    fn state() -> ClusterState {
        let mut s = ClusterState::default();
        for (id, r, raft_id) in [("m1", NodeRole::Manager, Some(1)), ("m2", NodeRole::Manager, None), ("w1", NodeRole::Worker, None)] {
            let mut node = Node { id: id.into(), ..Default::default() };
            node.spec.role = r;
            node.status.state = NodeState::Ready;
            node.status.addr = "10.0.0.1".into();
            node.description.hostname = format!("host-{id}");
            s.nodes.insert(id.into(), NodeRecord { node, raft_id, cluster_addr: format!("10.0.0.1:{}", 2377) });
        }
        s
    }

    fn hb(addr: &str) -> Heartbeat {
        Heartbeat { description: None, addr: addr.into(), manager_ready: None }
    }

    const FROM: &str = "10.0.0.9:40000";

    #[test]
    fn a_steady_heartbeat_writes_nothing_and_gets_the_period_role_and_managers() {
        let b = heartbeat(&state(), "w1", hb("10.0.0.1:2377"), FROM.parse().unwrap()).unwrap();
        assert!(b.ops.is_empty(), "{:?}", b.ops);
        assert_eq!(b.reply.period_ms, 1000);
        assert_eq!(b.reply.desired_role, NodeRole::Worker);
        assert_eq!(b.reply.raft_id, None);
        assert!(!b.reply.want_description);
        // only managers in the Raft membership are peers
        assert_eq!(b.reply.managers.iter().map(|p| p.node_id.as_str()).collect::<Vec<_>>(), ["m1"]);
    }

    #[test]
    fn a_node_that_was_down_or_moved_becomes_ready_at_its_new_address() {
        let mut s = state();
        s.nodes.get_mut("w1").unwrap().node.status.state = NodeState::Down;
        let b = heartbeat(&s, "w1", hb("10.0.0.1:2377"), FROM.parse().unwrap()).unwrap();
        assert!(
            matches!(&b.ops[..], [Op::SetNodeStatus { id, state, addr, .. }] if id == "w1" && *state == NodeState::Ready && addr == "10.0.0.1"),
            "{:?}",
            b.ops
        );
        // no parsable address: the one it was heard from
        let b = heartbeat(&state(), "w1", hb(""), FROM.parse().unwrap()).unwrap();
        assert!(matches!(&b.ops[..], [Op::SetNodeStatus { addr, .. }] if addr == "10.0.0.9"), "{:?}", b.ops);
    }

    #[test]
    fn a_changed_description_is_recorded_and_a_missing_one_asked_for() {
        let mut s = state();
        let mut with = hb("10.0.0.1:2377");
        let mut d = s.nodes["w1"].node.description.clone();
        with.description = Some(d.clone());
        assert!(heartbeat(&s, "w1", with.clone(), FROM.parse().unwrap()).unwrap().ops.is_empty());
        d.hostname = "renamed".into();
        with.description = Some(d);
        let b = heartbeat(&s, "w1", with, FROM.parse().unwrap()).unwrap();
        assert!(matches!(&b.ops[..], [Op::SetNodeDescription { description, .. }] if description.hostname == "renamed"));
        s.nodes.get_mut("w1").unwrap().node.description.hostname.clear();
        assert!(heartbeat(&s, "w1", hb("10.0.0.1:2377"), FROM.parse().unwrap()).unwrap().reply.want_description);
    }

    #[test]
    fn an_unknown_node_gets_no_decision() {
        assert!(heartbeat(&state(), "ghost", hb(""), FROM.parse().unwrap()).is_none());
    }

    #[test]
    fn a_manager_that_has_not_caught_up_is_listed_unreachable_until_it_has() {
        let mut s = state();
        let beat = |s: &ClusterState, ready: Option<bool>| {
            let h = Heartbeat { manager_ready: ready, ..hb("10.0.0.1:2377") };
            heartbeat(s, "m1", h, FROM.parse().unwrap()).unwrap().ops
        };
        let reach = |s: &ClusterState| s.node_view(&s.nodes["m1"], Some(9)).manager_status.unwrap().reachability;
        assert_eq!(reach(&s), Reachability::Reachable);
        // restarted: not caught up yet
        let ops = beat(&s, Some(false));
        assert!(matches!(ops.as_slice(), [Op::SetManagerCatchingUp { catching_up: true, .. }]), "{ops:?}");
        for (i, op) in ops.into_iter().enumerate() {
            s.apply(i as u64 + 1, &crate::store::Command { at: "t".into(), op }).unwrap();
        }
        assert_eq!(reach(&s), Reachability::Unreachable);
        assert!(beat(&s, Some(false)).is_empty(), "only changes are written");
        // caught up
        let ops = beat(&s, Some(true));
        assert!(matches!(ops.as_slice(), [Op::SetManagerCatchingUp { catching_up: false, .. }]), "{ops:?}");
        for op in ops {
            s.apply(9, &crate::store::Command { at: "t".into(), op }).unwrap();
        }
        assert_eq!(reach(&s), Reachability::Reachable);
        // a worker's heartbeat says nothing about it, nor does a manager's that does not report
        assert!(heartbeat(&s, "w1", Heartbeat { manager_ready: Some(false), ..hb("10.0.0.1:2377") }, FROM.parse().unwrap())
            .unwrap()
            .ops
            .is_empty());
        assert!(beat(&s, None).is_empty());
    }
}
