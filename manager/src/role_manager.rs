//! The role manager: carries out demotions in the Raft membership. A node whose spec says worker but who is still a
//! Raft member (`node demote`, or `node update --role worker`) leaves the membership, then its Raft ID is cleared;
//! from then on its renewed certificate says worker (see [`ca::admission`](crate::ca::admission)). Promotions are
//! driven by the promoted node itself: it learns its new role from its heartbeat, renews its certificate and asks to
//! join Raft.
//!
//! Pure: [`demotions`] reads a store snapshot and says what to do; the leader's loop (`runtime/leader.rs`) removes
//! the voters and proposes the ops, in order, stopping at the first failure (the next round tries again).
//!
//! A voter is removed only while the others keep a reachable quorum ([`removal_keeps_quorum`]), as swarmkit's
//! `CanRemoveMember`: openraft changes membership through a joint configuration that must commit in the new
//! configuration too, so removing a healthy voter while another is cut off would stop every write until the cut
//! heals, and a leader waiting for that change would wait as long. The leader checks it with what its Raft calls
//! saw (not the nodes' heartbeats, which mark a manager down only after 3 s) both when a demotion is proposed
//! ([`demoted_voter`]: refused then, with Docker's text) and before each removal.

use crate::control::quorum;
use crate::store::{ClusterState, Op};
use skep_api::docker::NodeRole;
use std::collections::BTreeSet;

/// One demotion to carry out, in this order: remove `raft_id` from the Raft membership, then propose `clear`.
#[derive(Clone, Debug, PartialEq)]
pub struct Demotion {
    /// The demoted node.
    pub node_id: String,
    /// Its Raft ID, to remove from the membership.
    pub raft_id: u64,
    /// Clears the node's Raft ID in the store, once it is out of the membership.
    pub clear: Op,
}

/// The demotions `state` calls for, in node ID order.
pub fn demotions(state: &ClusterState) -> Vec<Demotion> {
    state
        .nodes
        .values()
        .filter(|rec| rec.node.spec.role == NodeRole::Worker)
        .filter_map(|rec| {
            let raft_id = rec.raft_id?;
            Some(Demotion { node_id: rec.node.id.clone(), raft_id, clear: Op::ClearRaftId { id: rec.node.id.clone() } })
        })
        .collect()
}

/// The node ID and Raft ID of the voter `op` demotes (a manager's spec set to worker, possibly inside an
/// [`Op::Once`]), if it demotes one that `voters` holds.
pub fn demoted_voter(state: &ClusterState, op: &Op, voters: &BTreeSet<u64>) -> Option<(String, u64)> {
    match op {
        Op::Once { op, .. } => demoted_voter(state, op, voters),
        Op::UpdateNodeSpec { id, spec, .. } if spec.role == NodeRole::Worker => {
            let rec = state.nodes.get(id)?;
            let raft_id = rec.raft_id.filter(|r| voters.contains(r))?;
            (rec.node.spec.role == NodeRole::Manager).then(|| (id.clone(), raft_id))
        }
        _ => None,
    }
}

/// Whether removing `removing` from `voters` leaves a quorum of the remaining voters among those `reachable` says
/// are reachable. Removing a Raft ID that is not a voter changes nothing, so it keeps whatever quorum there is.
pub fn removal_keeps_quorum(voters: &BTreeSet<u64>, removing: u64, reachable: impl Fn(u64) -> bool) -> bool {
    if !voters.contains(&removing) {
        return true;
    }
    let rest: Vec<u64> = voters.iter().copied().filter(|&v| v != removing).collect();
    rest.iter().filter(|&&v| reachable(v)).count() >= quorum(rest.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use skep_api::docker::Node;

    #[test]
    fn only_workers_still_in_raft_leave_it() {
        let mut s = ClusterState::default();
        for (id, r, raft_id) in [
            ("m1", NodeRole::Manager, Some(1)), // a manager: stays
            ("d2", NodeRole::Worker, Some(2)),  // demoted, still a member: leaves
            ("p3", NodeRole::Manager, None),    // promoted, not yet a member: its own business
            ("w4", NodeRole::Worker, None),     // a worker: nothing to do
            ("d5", NodeRole::Worker, Some(5)),
        ] {
            let mut node = Node { id: id.into(), ..Default::default() };
            node.spec.role = r;
            s.nodes.insert(id.into(), NodeRecord { node, raft_id, cluster_addr: String::new() });
        }
        let d = demotions(&s);
        assert_eq!(d.iter().map(|d| (d.node_id.as_str(), d.raft_id)).collect::<Vec<_>>(), [("d2", 2), ("d5", 5)]);
        assert_eq!(d[0].clear, Op::ClearRaftId { id: "d2".into() });
    }

    #[test]
    fn a_voter_is_removed_only_while_the_rest_keep_a_reachable_quorum() {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        // all reachable: any one may go
        assert!(removal_keeps_quorum(&voters, 2, |_| true));
        // 3 cut off: removing 2 leaves {1, 3} with one reachable, below a quorum of 2
        assert!(!removal_keeps_quorum(&voters, 2, |v| v != 3));
        // removing the cut-off one itself leaves {1, 2}, both reachable
        assert!(removal_keeps_quorum(&voters, 3, |v| v != 3));
        // four voters, one down: removing a healthy one leaves 2 of 3 reachable, a quorum
        assert!(removal_keeps_quorum(&[1, 2, 3, 4].into(), 1, |v| v != 4));
        // not a voter: nothing changes
        assert!(removal_keeps_quorum(&voters, 9, |_| false));
        // the last voter: no quorum remains without it (the API refuses demoting the last manager before this)
        assert!(!removal_keeps_quorum(&[1].into(), 1, |_| true));
    }

    #[test]
    fn a_demotion_of_a_voter_is_recognised_inside_a_request() {
        use skep_api::docker::NodeSpec;
        let mut s = ClusterState::default();
        for (id, role, raft_id) in [("m1", NodeRole::Manager, Some(1)), ("m2", NodeRole::Manager, Some(2))] {
            let mut node = Node { id: id.into(), ..Default::default() };
            node.spec.role = role;
            s.nodes.insert(id.into(), NodeRecord { node, raft_id, cluster_addr: String::new() });
        }
        let voters: BTreeSet<u64> = [1, 2].into();
        let update = |id: &str, role| Op::UpdateNodeSpec {
            id: id.into(),
            version: 0,
            spec: NodeSpec { role, ..Default::default() },
        };
        let once = Op::Once { request: 7, op: Box::new(update("m2", NodeRole::Worker)) };
        assert_eq!(demoted_voter(&s, &once, &voters), Some(("m2".into(), 2)));
        // keeping the role, an unknown node, a manager outside the membership: no demotion of a voter
        assert_eq!(demoted_voter(&s, &update("m2", NodeRole::Manager), &voters), None);
        assert_eq!(demoted_voter(&s, &update("x", NodeRole::Worker), &voters), None);
        assert_eq!(demoted_voter(&s, &update("m1", NodeRole::Worker), &[2].into()), None);
    }
}
