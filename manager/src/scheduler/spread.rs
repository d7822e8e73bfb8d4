//! Choosing among the nodes that passed the filters: the spread strategy and placement preferences.
//!
//! Spread ranks nodes by (tasks of this service, tasks in total, node ID) and always takes the lowest; placing a task
//! raises the node's rank by one in both counts, so a binary heap hands out a group of `k` tasks in O(k log n).
//! Only the `k` best nodes can ever be picked for `k` tasks, so each heap is capped at the group size (swarmkit
//! caps its heap the same way).
//!
//! Placement preferences (`spread=node.labels.zone`) build a tree, one level per preference in order: at each level
//! the tasks are split so the branches (label values; nodes without the label form their own branch) end up with
//! as even a count of this service's tasks as possible, and a branch that runs out of room hands its share back
//! (swarmkit `design/topology.md`, `scheduleNTasksOnSubtree`). The leaves use the plain spread.

use super::nodeinfo::NodeInfo;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

/// Spread rank: (tasks of this service, tasks in total, node position in ID order). Lowest wins.
type Rank = (u32, u32, u32);

/// One `Spread.SpreadDescriptor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Preference {
    /// `node.labels.<name>`.
    NodeLabel(String),
    /// `engine.labels.<name>`.
    EngineLabel(String),
    /// Anything else: every node falls in the same branch, so it has no effect (as in swarmkit).
    Ignored,
}

impl Preference {
    /// Reads a descriptor; the prefixes are case-insensitive, the label name is not.
    pub(crate) fn parse(descriptor: &str) -> Preference {
        let d = descriptor.trim();
        for (prefix, engine) in [("node.labels.", false), ("engine.labels.", true)] {
            if d.len() > prefix.len() && d[..prefix.len()].eq_ignore_ascii_case(prefix) {
                let name = d[prefix.len()..].to_string();
                return if engine { Preference::EngineLabel(name) } else { Preference::NodeLabel(name) };
            }
        }
        Preference::Ignored
    }

    /// The branch `node` belongs to.
    fn value<'a>(&self, node: &'a NodeInfo) -> Option<&'a str> {
        match self {
            Preference::NodeLabel(name) => node.labels.get(name).map(String::as_str),
            Preference::EngineLabel(name) => node.engine_labels.get(name).map(String::as_str),
            Preference::Ignored => None,
        }
    }
}

/// A subtree of the preference tree (the whole tree is one leaf when there are no preferences).
pub(crate) struct Branch {
    /// Active tasks of this service on the branch's nodes, including those placed so far.
    tasks: u64,
    kind: Kind,
}

enum Kind {
    /// Candidate nodes by spread rank.
    Leaf(BinaryHeap<Reverse<Rank>>),
    /// One child per label value, in value order (missing label first).
    Split(Vec<Branch>),
}

impl Branch {
    /// The tree over `candidates` (positions in `nodes`) for `service`, with leaves capped at `cap` nodes.
    pub(crate) fn build(
        nodes: &[NodeInfo],
        candidates: Vec<u32>,
        prefs: &[Preference],
        service: u32,
        cap: usize,
    ) -> Branch {
        match prefs.split_first() {
            None => {
                let mut ranks: Vec<Rank> = candidates
                    .into_iter()
                    .map(|ix| {
                        let n = &nodes[ix as usize];
                        (n.service_tasks(service), n.tasks, ix)
                    })
                    .collect();
                let tasks = ranks.iter().map(|r| u64::from(r.0)).sum();
                if cap == 0 {
                    ranks.clear();
                } else if ranks.len() > cap {
                    ranks.select_nth_unstable(cap - 1);
                    ranks.truncate(cap);
                }
                Branch { tasks, kind: Kind::Leaf(ranks.into_iter().map(Reverse).collect()) }
            }
            Some((pref, rest)) => {
                let mut groups: BTreeMap<Option<&str>, Vec<u32>> = BTreeMap::new();
                for ix in candidates {
                    groups.entry(pref.value(&nodes[ix as usize])).or_default().push(ix);
                }
                let children: Vec<Branch> =
                    groups.into_values().map(|g| Branch::build(nodes, g, rest, service, cap)).collect();
                Branch { tasks: children.iter().map(|c| c.tasks).sum(), kind: Kind::Split(children) }
            }
        }
    }

    /// Places up to `n` tasks in this subtree and returns how many it placed. `place(node)` commits one task on the
    /// node at that position and says whether the node can still take another task of the group.
    pub(crate) fn schedule(&mut self, n: usize, place: &mut dyn FnMut(u32) -> bool) -> usize {
        let placed = match &mut self.kind {
            Kind::Leaf(heap) => {
                let mut placed = 0;
                while placed < n {
                    let Some(Reverse((service_tasks, tasks, ix))) = heap.pop() else { break };
                    placed += 1;
                    if place(ix) {
                        heap.push(Reverse((service_tasks + 1, tasks + 1, ix)));
                    }
                }
                placed
            }
            Kind::Split(children) => split(children, n, place),
        };
        self.tasks += placed as u64;
        placed
    }
}

/// Spreads `n` tasks over `children` so their task counts even out; a child that cannot take its share is left out
/// of the next round and the rest is shared among the others.
fn split(children: &mut [Branch], n: usize, place: &mut dyn FnMut(u32) -> bool) -> usize {
    let mut scheduled = 0;
    let mut no_room = vec![false; children.len()];
    while scheduled < n && no_room.iter().any(|full| !full) {
        // Least loaded first, so the remainder goes to them; ties in label order for determinism.
        let mut usable: Vec<usize> = (0..children.len()).filter(|&i| !no_room[i]).collect();
        usable.sort_by_key(|&i| (children[i].tasks, i));
        let total: u64 = usable.iter().map(|&i| children[i].tasks).sum::<u64>() + (n - scheduled) as u64;
        let desired = total / usable.len() as u64;
        let mut remainder = total % usable.len() as u64;
        for i in usable {
            if scheduled == n {
                break;
            }
            let child = &mut children[i];
            if child.tasks < desired || (child.tasks == desired && remainder > 0) {
                let extra = u64::from(remainder > 0);
                let want = ((desired - child.tasks + extra) as usize).min(n - scheduled);
                let got = child.schedule(want, place);
                scheduled += got;
                if got < want {
                    no_room[i] = true;
                } else {
                    remainder = remainder.saturating_sub(1);
                }
            }
        }
    }
    scheduled
}
