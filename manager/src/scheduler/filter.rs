//! The filters a node must pass to take a task, and the pipeline that runs them.
//!
//! Each filter is a tiny struct with `check()` (does this node pass?) and `explain()` (what to tell the user when
//! `n` nodes failed it), as in swarmkit's `manager/scheduler/filter.go`. The `Pipeline` runs them in order, stops at
//! the first failure for a node and counts failures per filter; `Pipeline::explain` lists the failing filters from
//! most to fewest failures: `no suitable node (insufficient memory on 2 nodes; 1 node not available for new tasks)`.
//!
//! That text is what the store keeps (`Status.Err`, as Docker shows it). [`PendingReason`] is its bounded form, for
//! `/metrics`: the reason of the first phrase (the filter most nodes failed), read back from the text by
//! [`PendingReason::of`]; each filter names its reason, and a test holds every filter's phrase to it.

use super::constraint::{self, eq_fold, normalize_arch, Constraint};
use super::nodeinfo::NodeInfo;
use skep_api::docker::TaskSpec;

/// Why a task waits for a node: the bounded form of the scheduler's `no suitable node (…)` verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum PendingReason {
    /// No verdict yet: the scheduler has not looked at the task (it does within a round).
    Unscheduled,
    /// There is no node at all.
    NoNodes,
    /// The nodes are down or not active (paused, drained).
    NodesUnavailable,
    /// The placement constraints hold on no node.
    Constraints,
    /// The memory reservation fits on no node.
    InsufficientMemory,
    /// The CPU reservation fits on no node.
    InsufficientCpu,
    /// No node has one of the placement's platforms.
    Platform,
    /// Every node has the service's maximum of replicas.
    MaxReplicas,
    /// The node the task is bound to (a global service's) has left the swarm.
    NodeGone,
    /// Any other verdict (a constraint that does not parse, which the API refuses before it is stored).
    Other,
}

impl PendingReason {
    /// Every reason, in order.
    pub const ALL: [PendingReason; 10] = [
        PendingReason::Unscheduled,
        PendingReason::NoNodes,
        PendingReason::NodesUnavailable,
        PendingReason::Constraints,
        PendingReason::InsufficientMemory,
        PendingReason::InsufficientCpu,
        PendingReason::Platform,
        PendingReason::MaxReplicas,
        PendingReason::NodeGone,
        PendingReason::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            PendingReason::Unscheduled => "unscheduled",
            PendingReason::NoNodes => "no_nodes",
            PendingReason::NodesUnavailable => "nodes_unavailable",
            PendingReason::Constraints => "constraints",
            PendingReason::InsufficientMemory => "insufficient_memory",
            PendingReason::InsufficientCpu => "insufficient_cpu",
            PendingReason::Platform => "platform",
            PendingReason::MaxReplicas => "max_replicas",
            PendingReason::NodeGone => "node_gone",
            PendingReason::Other => "other",
        }
    }

    /// The reason of a pending task's `Status.Err` as the scheduler writes it: its first phrase's.
    pub fn of(err: &str) -> PendingReason {
        if err.is_empty() {
            return PendingReason::Unscheduled;
        }
        let Some(rest) = err.strip_prefix(NO_SUITABLE_NODE) else { return PendingReason::Other };
        let Some(first) = rest.strip_prefix(" (") else {
            return if rest.is_empty() { PendingReason::NoNodes } else { PendingReason::Other };
        };
        let first = first.split([';', ')']).next().unwrap_or_default();
        let phrases = [
            (UNAVAILABLE_PHRASE, PendingReason::NodesUnavailable),
            (CONSTRAINTS_PHRASE, PendingReason::Constraints),
            (MEMORY_PHRASE, PendingReason::InsufficientMemory),
            (CPU_PHRASE, PendingReason::InsufficientCpu),
            (PLATFORM_PHRASE, PendingReason::Platform),
            (MAX_REPLICAS_PHRASE, PendingReason::MaxReplicas),
            (NOT_IN_SWARM, PendingReason::NodeGone),
        ];
        phrases.iter().find(|(p, _)| first.contains(p)).map_or(PendingReason::Other, |(_, r)| *r)
    }
}

/// How every verdict of a task that fits nowhere starts.
pub(crate) const NO_SUITABLE_NODE: &str = "no suitable node";
/// The filters' phrases, which [`PendingReason::of`] reads back.
const UNAVAILABLE_PHRASE: &str = "not available for new tasks";
const CONSTRAINTS_PHRASE: &str = "scheduling constraints not satisfied";
const MEMORY_PHRASE: &str = "insufficient memory";
const CPU_PHRASE: &str = "insufficient CPU";
const PLATFORM_PHRASE: &str = "unsupported platform";
const MAX_REPLICAS_PHRASE: &str = "max replicas per node limit exceed";
/// A pinned task's node is gone (`no suitable node (node ID is not in the swarm)`).
pub(crate) const NOT_IN_SWARM: &str = "is not in the swarm";

/// One node check.
pub(crate) trait Filter {
    /// Whether `node` can take the task.
    fn check(&self, node: &NodeInfo) -> bool;
    /// The phrase for the "no suitable node (…)" message when `nodes` nodes failed this filter.
    fn explain(&self, nodes: usize) -> String;
    /// The reason a task waits when this filter is the one most nodes failed.
    #[cfg_attr(not(test), allow(dead_code))]
    fn reason(&self) -> PendingReason;
}

/// `1 node` / `3 nodes`.
fn nodes_phrase(n: usize) -> String {
    if n == 1 {
        "1 node".to_string()
    } else {
        format!("{n} nodes")
    }
}

/// The node heartbeats (`Status.State == ready`).
pub(crate) struct ReadyFilter;

impl Filter for ReadyFilter {
    fn check(&self, node: &NodeInfo) -> bool {
        node.ready
    }
    fn explain(&self, nodes: usize) -> String {
        format!("{} {UNAVAILABLE_PHRASE}", nodes_phrase(nodes))
    }
    fn reason(&self) -> PendingReason {
        PendingReason::NodesUnavailable
    }
}

/// The operator lets the node take new tasks (`Spec.Availability == active`).
pub(crate) struct AvailabilityFilter;

impl Filter for AvailabilityFilter {
    fn check(&self, node: &NodeInfo) -> bool {
        node.active
    }
    fn explain(&self, nodes: usize) -> String {
        format!("{} {UNAVAILABLE_PHRASE}", nodes_phrase(nodes))
    }
    fn reason(&self) -> PendingReason {
        PendingReason::NodesUnavailable
    }
}

/// `Placement.Constraints`, all of which must hold.
pub(crate) struct ConstraintFilter {
    pub(crate) constraints: Vec<Constraint>,
}

impl Filter for ConstraintFilter {
    fn check(&self, node: &NodeInfo) -> bool {
        self.constraints.iter().all(|c| c.matches(node))
    }
    fn explain(&self, nodes: usize) -> String {
        format!("{CONSTRAINTS_PHRASE} on {}", nodes_phrase(nodes))
    }
    fn reason(&self) -> PendingReason {
        PendingReason::Constraints
    }
}

/// Memory reservation fits in what the node has left.
pub(crate) struct MemoryFilter {
    pub(crate) bytes: i64,
}

impl Filter for MemoryFilter {
    fn check(&self, node: &NodeInfo) -> bool {
        self.bytes <= node.free_memory()
    }
    fn explain(&self, nodes: usize) -> String {
        format!("{MEMORY_PHRASE} on {}", nodes_phrase(nodes))
    }
    fn reason(&self) -> PendingReason {
        PendingReason::InsufficientMemory
    }
}

/// CPU reservation fits in what the node has left.
pub(crate) struct CpuFilter {
    pub(crate) nano_cpus: i64,
}

impl Filter for CpuFilter {
    fn check(&self, node: &NodeInfo) -> bool {
        self.nano_cpus <= node.free_cpus()
    }
    fn explain(&self, nodes: usize) -> String {
        format!("{CPU_PHRASE} on {}", nodes_phrase(nodes))
    }
    fn reason(&self) -> PendingReason {
        PendingReason::InsufficientCpu
    }
}

/// One of `Placement.Platforms` matches the node; an empty OS or architecture means any.
pub(crate) struct PlatformFilter {
    /// `(os, normalised arch)`.
    pub(crate) platforms: Vec<(String, String)>,
}

impl Filter for PlatformFilter {
    fn check(&self, node: &NodeInfo) -> bool {
        self.platforms
            .iter()
            .any(|(os, arch)| (arch.is_empty() || *arch == node.arch) && (os.is_empty() || eq_fold(os, &node.os)))
    }
    fn explain(&self, nodes: usize) -> String {
        format!("{PLATFORM_PHRASE} on {}", nodes_phrase(nodes))
    }
    fn reason(&self) -> PendingReason {
        PendingReason::Platform
    }
}

/// At most `max` active tasks of the service per node (`Placement.MaxReplicas`).
pub(crate) struct MaxReplicasFilter {
    pub(crate) service: u32,
    pub(crate) max: u64,
}

impl Filter for MaxReplicasFilter {
    fn check(&self, node: &NodeInfo) -> bool {
        u64::from(node.service_tasks(self.service)) < self.max
    }
    fn explain(&self, _nodes: usize) -> String {
        // swarmkit's wording, which carries no count.
        MAX_REPLICAS_PHRASE.to_string()
    }
    fn reason(&self) -> PendingReason {
        PendingReason::MaxReplicas
    }
}

/// The filters for one task (group), in order, with per-filter failure counts.
///
/// Filters a task does not need (no constraints, no reservations...) are `None` and cost nothing.
pub(crate) struct Pipeline {
    ready: ReadyFilter,
    availability: AvailabilityFilter,
    constraints: Option<ConstraintFilter>,
    memory: Option<MemoryFilter>,
    cpu: Option<CpuFilter>,
    platform: Option<PlatformFilter>,
    max_replicas: Option<MaxReplicasFilter>,
    /// Failures per stage, in the order above.
    failures: [usize; STAGES],
}

const STAGES: usize = 7;
const READY: usize = 0;
const AVAILABILITY: usize = 1;
const CONSTRAINTS: usize = 2;
const MEMORY: usize = 3;
const CPU: usize = 4;
const PLATFORM: usize = 5;
const MAX_REPLICAS: usize = 6;

/// The static filters' verdict on every node (see [`Pipeline::static_pass`]). Failures are not kept: a group that
/// does not fit is explained by running the whole pipeline again against the state after its placements.
pub(crate) struct StaticPass {
    /// Nodes that passed those, with the platform filter's result.
    pub(crate) passing: Vec<(u32, bool)>,
}

/// What the static filters depend on: constraints and platforms as written.
pub(crate) type StaticKey = (Vec<String>, Vec<(String, String)>);

/// The [`StaticKey`] of a spec.
pub(crate) fn static_key(spec: &TaskSpec) -> StaticKey {
    match &spec.placement {
        None => Default::default(),
        Some(p) => {
            (p.constraints.clone(), p.platforms.iter().map(|pl| (pl.os.clone(), pl.architecture.clone())).collect())
        }
    }
}

/// A task's reservations `(nano CPUs, memory bytes)`; negative values count as zero.
pub(crate) fn reservations(spec: &TaskSpec) -> (i64, i64) {
    spec.resources
        .as_ref()
        .and_then(|r| r.reservations.as_ref())
        .map(|r| (r.nano_cpus.max(0), r.memory_bytes.max(0)))
        .unwrap_or((0, 0))
}

impl Pipeline {
    /// The pipeline for a task of the (interned) `service` with `spec`. Fails only on a bad constraint, which the API
    /// should have refused before the spec was stored.
    pub(crate) fn new(spec: &TaskSpec, service: u32) -> Result<Pipeline, String> {
        let placement = spec.placement.as_ref();
        let constraints = match placement.map(|p| p.constraints.as_slice()).unwrap_or(&[]) {
            [] => None,
            raw => Some(ConstraintFilter { constraints: constraint::parse_all(raw).map_err(|e| e.to_string())? }),
        };
        let (cpus, memory) = reservations(spec);
        let platform = placement.filter(|p| !p.platforms.is_empty()).map(|p| PlatformFilter {
            platforms: p
                .platforms
                .iter()
                .map(|pl| (pl.os.trim().to_string(), normalize_arch(&pl.architecture)))
                .collect(),
        });
        let max_replicas =
            placement.filter(|p| p.max_replicas > 0).map(|p| MaxReplicasFilter { service, max: p.max_replicas });
        Ok(Pipeline {
            ready: ReadyFilter,
            availability: AvailabilityFilter,
            constraints,
            memory: (memory > 0).then_some(MemoryFilter { bytes: memory }),
            cpu: (cpus > 0).then_some(CpuFilter { nano_cpus: cpus }),
            platform,
            max_replicas,
            failures: [0; STAGES],
        })
    }

    /// The filters in order; `None` where a filter is off for this task.
    fn stages(&self) -> [Option<&dyn Filter>; STAGES] {
        [
            Some(&self.ready),
            Some(&self.availability),
            self.constraints.as_ref().map(|f| f as &dyn Filter),
            self.memory.as_ref().map(|f| f as &dyn Filter),
            self.cpu.as_ref().map(|f| f as &dyn Filter),
            self.platform.as_ref().map(|f| f as &dyn Filter),
            self.max_replicas.as_ref().map(|f| f as &dyn Filter),
        ]
    }

    /// Runs the filters on `node`, stopping at the first failure, which is counted.
    pub(crate) fn process(&mut self, node: &NodeInfo) -> bool {
        match self.check_static(node) {
            Err(stage) => {
                self.failures[stage] += 1;
                false
            }
            Ok(platform_ok) => self.process_dynamic(node, platform_ok),
        }
    }

    /// The filters that read only the node's own facts, which placing tasks does not change: the first of ready,
    /// availability and constraints that fails, else whether the platform filter passes.
    fn check_static(&self, node: &NodeInfo) -> Result<bool, usize> {
        if !self.ready.check(node) {
            Err(READY)
        } else if !self.availability.check(node) {
            Err(AVAILABILITY)
        } else if self.constraints.as_ref().is_some_and(|f| !f.check(node)) {
            Err(CONSTRAINTS)
        } else {
            Ok(self.platform.as_ref().is_none_or(|f| f.check(node)))
        }
    }

    /// The rest of the pipeline, in order, for a node that passed the static filters up to the constraints;
    /// `platform_ok` is the platform filter's (static) result. The first failure is counted.
    pub(crate) fn process_dynamic(&mut self, node: &NodeInfo, platform_ok: bool) -> bool {
        let failed = if self.memory.as_ref().is_some_and(|f| !f.check(node)) {
            MEMORY
        } else if self.cpu.as_ref().is_some_and(|f| !f.check(node)) {
            CPU
        } else if !platform_ok {
            PLATFORM
        } else if self.max_replicas.as_ref().is_some_and(|f| !f.check(node)) {
            MAX_REPLICAS
        } else {
            return true;
        };
        self.failures[failed] += 1;
        false
    }

    /// Runs the static filters over every node once. The result holds for a whole `place` call and is shared by
    /// every group with the same constraints and platforms (see [`static_key`]), so many small groups cost
    /// O(nodes) in static checks once, not once per group.
    pub(crate) fn static_pass(&self, nodes: &[NodeInfo]) -> StaticPass {
        let passing = nodes
            .iter()
            .enumerate()
            .filter_map(|(ix, node)| self.check_static(node).ok().map(|platform_ok| (ix as u32, platform_ok)))
            .collect();
        StaticPass { passing }
    }

    /// After a task was placed on `node`: does it still take another one of the group? Only the filters that
    /// placing a task can change are run (resources, max replicas); nothing is counted.
    pub(crate) fn still_fits(&self, node: &NodeInfo) -> bool {
        self.memory.as_ref().is_none_or(|f| f.check(node))
            && self.cpu.as_ref().is_none_or(|f| f.check(node))
            && self.max_replicas.as_ref().is_none_or(|f| f.check(node))
    }

    /// Forgets the counts (before explaining against the current state).
    pub(crate) fn reset(&mut self) {
        self.failures = [0; STAGES];
    }

    /// `no suitable node (…)`, the failing filters from most to fewest failures (ties in pipeline order). The ready
    /// and availability filters say the same thing, so their counts are reported together.
    pub(crate) fn explain(&self) -> String {
        let mut counts = self.failures;
        counts[0] += counts[1];
        counts[1] = 0;
        let stages = self.stages();
        let mut failing: Vec<(usize, usize)> = (0..STAGES).filter(|&s| counts[s] > 0).map(|s| (s, counts[s])).collect();
        failing.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        let parts: Vec<String> =
            failing.into_iter().filter_map(|(stage, n)| stages[stage].map(|f| f.explain(n))).collect();
        if parts.is_empty() {
            NO_SUITABLE_NODE.to_string()
        } else {
            format!("{NO_SUITABLE_NODE} ({})", parts.join("; "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filters_verdict_reads_back_as_its_reason() {
        let filters: [&dyn Filter; 7] = [
            &ReadyFilter,
            &AvailabilityFilter,
            &ConstraintFilter { constraints: vec![] },
            &MemoryFilter { bytes: 1 },
            &CpuFilter { nano_cpus: 1 },
            &PlatformFilter { platforms: vec![] },
            &MaxReplicasFilter { service: 0, max: 1 },
        ];
        for f in filters {
            for n in [1, 3] {
                let alone = format!("{NO_SUITABLE_NODE} ({})", f.explain(n));
                assert_eq!(PendingReason::of(&alone), f.reason(), "{alone}");
                // the first phrase decides
                let first = format!("{NO_SUITABLE_NODE} ({}; {})", f.explain(n), MemoryFilter { bytes: 1 }.explain(1));
                assert_eq!(PendingReason::of(&first), f.reason(), "{first}");
            }
        }
        assert_eq!(PendingReason::of(""), PendingReason::Unscheduled);
        assert_eq!(PendingReason::of(NO_SUITABLE_NODE), PendingReason::NoNodes);
        let gone = format!("{NO_SUITABLE_NODE} (node abc {NOT_IN_SWARM})");
        assert_eq!(PendingReason::of(&gone), PendingReason::NodeGone);
        assert_eq!(PendingReason::of("constraint expression 'x' is not valid"), PendingReason::Other);
        assert_eq!(PendingReason::of("no suitable nodes anywhere"), PendingReason::Other);
        let labels: std::collections::BTreeSet<_> = PendingReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), PendingReason::ALL.len());
    }
}
