//! The scheduler: picks a node for each pending task. Pure: a snapshot of the store in, decisions out; no I/O, no
//! clock, no runtime. Whoever drives it (the leader's runtime) turns [`Decision::Assign`] into a task update
//! (`NodeID` set, state ASSIGNED) and [`Decision::NoFit`] into the task's `Status.Err`.
//!
//! For each task, every node runs the [`filter`] pipeline (ready, availability, constraints, memory, CPU, platform,
//! max replicas per node; the first failure stops the node and is counted), then the strategy picks among the nodes
//! that pass: spread over the placement-preference tree, fewest tasks of the service, then fewest tasks, then node
//! ID (see [`spread`]). Tasks of one service whose scheduling-relevant spec (placement and reservations) is the
//! same form a group that is filtered once: O(nodes) per group plus O(log nodes) per task, as in swarmkit. The
//! filters that read only the node's own facts (ready, availability, constraints, platform) run once per distinct
//! constraint/platform set in a `place` call and are shared by the groups that have it; only the reservation and
//! max-replicas checks run per group.
//!
//! # Layout
//! - [`constraint`]: constraint syntax, validation ([`validate_constraints`]) and matching; [`normalize_arch`].
//! - `nodeinfo`: the flattened per-node view with its reservation and task counters.
//! - [`filter`]: the filters (`check()` + `explain()`) and the pipeline that counts failures.
//! - [`spread`]: the preference tree and the spread heap.
//! - [`pending`]: [`schedule`], one round over the store's pending tasks, as store ops.

pub mod constraint;
pub mod filter;
mod nodeinfo;
pub mod pending;
pub mod spread;

#[cfg(test)]
mod tests;

pub use constraint::{check_constraints, node_matches, normalize_arch, validate_constraints, ConstraintError};
pub use pending::schedule;

use crate::store::ClusterState;
pub use filter::PendingReason;
use filter::{reservations, static_key, Pipeline, StaticKey, StaticPass, NOT_IN_SWARM, NO_SUITABLE_NODE};
use nodeinfo::NodeInfo;
use skep_api::docker::{Placement, Task, TaskSpec, TaskState};
use spread::{Branch, Preference};
use std::collections::HashMap;

/// What the scheduler decided for one task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Run the task on this node.
    Assign {
        /// The task.
        task_id: String,
        /// The chosen node.
        node_id: String,
    },
    /// No node can take the task now; `reason` is for `Status.Err` (`no suitable node (…)`).
    NoFit {
        /// The task.
        task_id: String,
        /// Why, in swarmkit's words.
        reason: String,
    },
}

impl Decision {
    /// The task this decision is about.
    pub fn task_id(&self) -> &str {
        match self {
            Decision::Assign { task_id, .. } | Decision::NoFit { task_id, .. } => task_id,
        }
    }
}

/// The nodes as the scheduler sees them, with what the tasks on them already hold.
pub struct Scheduler {
    /// Every node, sorted by ID (the position is the last key of the spread order).
    nodes: Vec<NodeInfo>,
    /// Node ID → position in `nodes`.
    positions: HashMap<String, u32>,
    /// Service ID → small integer, so per-node counters are cheap to look up.
    services: HashMap<String, u32>,
}

/// Whether a stored task holds resources on its node: placed (ASSIGNED or later), not finished, and meant to run.
/// Tasks still waiting for the scheduler are not counted, even when their node is preset (global services):
/// [`Scheduler::place`] validates and counts those.
fn holds_resources(t: &Task) -> bool {
    !t.node_id.is_empty()
        && t.status.state >= TaskState::Assigned
        && !t.status.state.is_terminal()
        && t.desired_state <= TaskState::Running
}

/// Whether two tasks of one service schedule identically (same placement and reservations).
fn same_scheduling(a: &TaskSpec, b: &TaskSpec) -> bool {
    fn placement(s: &TaskSpec) -> Option<&Placement> {
        s.placement.as_ref().filter(|p| **p != Placement::default())
    }
    reservations(a) == reservations(b) && placement(a) == placement(b)
}

impl Scheduler {
    /// Builds the view from the store: every node, and the reservations and task counts of the tasks that hold
    /// resources (assigned to a node, not terminal, desired state at most running).
    pub fn new(state: &ClusterState) -> Scheduler {
        let mut s = Scheduler {
            nodes: state.nodes.values().map(|r| NodeInfo::new(&r.node)).collect(),
            positions: HashMap::with_capacity(state.nodes.len()),
            services: HashMap::new(),
        };
        // `state.nodes` is a BTreeMap, so `nodes` is already in ID order.
        for (i, n) in s.nodes.iter().enumerate() {
            s.positions.insert(n.id.clone(), i as u32);
        }
        for t in state.tasks.values().filter(|t| holds_resources(t)) {
            if let Some(&ix) = s.positions.get(&t.node_id) {
                let service = s.intern(&t.service_id);
                let (cpus, memory) = reservations(&t.spec);
                s.nodes[ix as usize].add_task(service, cpus, memory);
            }
        }
        s
    }

    fn intern(&mut self, service: &str) -> u32 {
        if let Some(&ix) = self.services.get(service) {
            return ix;
        }
        let ix = self.services.len() as u32;
        self.services.insert(service.to_string(), ix);
        ix
    }

    /// Places pending tasks and returns one decision per task, in input order.
    ///
    /// Tasks with a preset node (global services) are only checked against that node, first. The others are
    /// grouped by service and scheduling spec, groups in order of first appearance, tasks within a group in input
    /// order. Every placement updates the node's reservations and counts, so decisions account for each other.
    pub fn place(&mut self, tasks: &[&Task]) -> Vec<Decision> {
        let mut out: Vec<Option<Decision>> = (0..tasks.len()).map(|_| None).collect();

        for (i, t) in tasks.iter().enumerate().filter(|(_, t)| !t.node_id.is_empty()) {
            out[i] = Some(self.place_pinned(t));
        }

        // Groups: (representative task, members), found by service then by spec comparison.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_service: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, t) in tasks.iter().enumerate().filter(|(_, t)| t.node_id.is_empty()) {
            let candidates = by_service.entry(t.service_id.as_str()).or_default();
            match candidates.iter().find(|&&g| same_scheduling(&tasks[groups[g][0]].spec, &t.spec)) {
                Some(&g) => groups[g].push(i),
                None => {
                    candidates.push(groups.len());
                    groups.push(vec![i]);
                }
            }
        }
        let mut static_passes: HashMap<StaticKey, StaticPass> = HashMap::new();
        for members in &groups {
            self.place_group(tasks, members, &mut static_passes, &mut out);
        }

        out.into_iter().map(|d| d.expect("every task gets a decision")).collect()
    }

    /// A task whose node is already chosen: accept it if that node passes the filters.
    fn place_pinned(&mut self, task: &Task) -> Decision {
        let no_fit = |reason: String| Decision::NoFit { task_id: task.id.clone(), reason };
        let service = self.intern(&task.service_id);
        let mut pipeline = match Pipeline::new(&task.spec, service) {
            Ok(p) => p,
            Err(e) => return no_fit(e),
        };
        let Some(&ix) = self.positions.get(&task.node_id) else {
            return no_fit(format!("{NO_SUITABLE_NODE} (node {} {NOT_IN_SWARM})", task.node_id));
        };
        let node = &mut self.nodes[ix as usize];
        if !pipeline.process(node) {
            return no_fit(pipeline.explain());
        }
        let (cpus, memory) = reservations(&task.spec);
        node.add_task(service, cpus, memory);
        Decision::Assign { task_id: task.id.clone(), node_id: node.id.clone() }
    }

    /// One group: filter every node once, spread the tasks over the passing nodes, explain the rest.
    fn place_group(
        &mut self,
        tasks: &[&Task],
        members: &[usize],
        static_passes: &mut HashMap<StaticKey, StaticPass>,
        out: &mut [Option<Decision>],
    ) {
        let first = tasks[members[0]];
        let service = self.intern(&first.service_id);
        let mut pipeline = match Pipeline::new(&first.spec, service) {
            Ok(p) => p,
            Err(reason) => {
                for &i in members {
                    out[i] = Some(Decision::NoFit { task_id: tasks[i].id.clone(), reason: reason.clone() });
                }
                return;
            }
        };
        // Static filters once per distinct (constraints, platforms) in this call; the dynamic ones per group.
        let pass = static_passes.entry(static_key(&first.spec)).or_insert_with(|| pipeline.static_pass(&self.nodes));
        let candidates: Vec<u32> = pass
            .passing
            .iter()
            .filter(|&&(ix, platform_ok)| pipeline.process_dynamic(&self.nodes[ix as usize], platform_ok))
            .map(|&(ix, _)| ix)
            .collect();
        let prefs: Vec<Preference> = first
            .spec
            .placement
            .as_ref()
            .map(|p| {
                p.preferences
                    .iter()
                    .map(|pr| pr.spread.as_ref().map_or(Preference::Ignored, |s| Preference::parse(&s.spread_descriptor)))
                    .collect()
            })
            .unwrap_or_default();
        let mut tree = Branch::build(&self.nodes, candidates, &prefs, service, members.len());

        let (cpus, memory) = reservations(&first.spec);
        let nodes = &mut self.nodes;
        let mut next = members.iter();
        let placed = tree.schedule(members.len(), &mut |ix| {
            let i = *next.next().expect("the tree places at most the group size");
            let node = &mut nodes[ix as usize];
            node.add_task(service, cpus, memory);
            out[i] = Some(Decision::Assign { task_id: tasks[i].id.clone(), node_id: node.id.clone() });
            pipeline.still_fits(node)
        });

        if placed < members.len() {
            // Explain against the state after this group's placements, as swarmkit does for the leftovers.
            pipeline.reset();
            for node in &self.nodes {
                pipeline.process(node);
            }
            let reason = pipeline.explain();
            for &i in &members[placed..] {
                out[i] = Some(Decision::NoFit { task_id: tasks[i].id.clone(), reason: reason.clone() });
            }
        }
    }
}
