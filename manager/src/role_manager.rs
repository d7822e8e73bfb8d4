//! The role manager: carries out demotions in the Raft membership. A node whose spec says worker but who is still a
//! Raft member (`node demote`, or `node update --role worker`) leaves the membership, then its Raft ID is cleared;
//! from then on its renewed certificate says worker (see [`ca::admission`](crate::ca::admission)). Promotions are
//! driven by the promoted node itself: it learns its new role from its heartbeat, renews its certificate and asks to
//! join Raft.
//!
//! Pure: [`demotions`] reads a store snapshot and says what to do; the leader's loop (`runtime/leader.rs`) removes
//! the voters and proposes the ops, in order, stopping at the first failure (the next round tries again).

use crate::store::{ClusterState, Op};
use skep_api::docker::NodeRole;

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
}
