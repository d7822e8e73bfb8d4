//! `skep-bench-scheduler`: the scheduler alone, in-process, on one thread. Builds a cluster state in memory, places
//! a batch of pending tasks with `skep_manager::scheduler::Scheduler`, and prints placements per second beside the
//! goal (50,000/s) and swarmkit's published figure (100k tasks on 1k nodes in 22.6 s, moby/swarmkit#193, which
//! includes object creation).
//!
//! Usage: `cargo run --release -p skep-bench-scheduler [-- --runs N] [--scenario K]` (K counts from 1). Each scenario runs N times (default 5); the
//! median run is reported. "place" times `Scheduler::place` only; "total" also times building the nodes and tasks
//! and `Scheduler::new` (the closest match to swarmkit's figure).

use skep_api::docker::{
    Availability, Node, NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus, Placement, PlacementPreference,
    Platform, ResourceAmounts, ResourceRequirements, Resources, SpreadOver, Task, TaskSpec, TaskState, TaskStatus,
};
use skep_manager::scheduler::{Decision, Scheduler};
use skep_manager::store::{ClusterState, NodeRecord};
use std::time::{Duration, Instant};

const GOAL: f64 = 50_000.0;
/// swarmkit: 100k tasks on 1k nodes in 22.6 s.
const SWARMKIT: f64 = 100_000.0 / 22.6;
const GIB: i64 = 1 << 30;
const MIB: i64 = 1 << 20;

/// One benchmark case.
struct Scenario {
    name: &'static str,
    nodes: usize,
    tasks: usize,
    /// Tasks are split evenly over this many services (one scheduling group each).
    services: usize,
    /// Every other node gets `zone=a` (the rest `zone=b`) and tasks carry `node.labels.zone==a`.
    constraint: bool,
    /// Memory reservation per task.
    memory: i64,
    /// Nodes get `rack=r<i % racks>` and tasks carry `spread=node.labels.rack`.
    racks: usize,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "100k tasks on 1k nodes (swarmkit's case)",
        nodes: 1_000,
        tasks: 100_000,
        services: 1,
        constraint: false,
        memory: 0,
        racks: 0,
    },
    Scenario {
        name: "100k on 10k nodes, zone==a (half) + 64 MiB",
        nodes: 10_000,
        tasks: 100_000,
        services: 1,
        constraint: true,
        memory: 64 * MIB,
        racks: 0,
    },
    Scenario {
        name: "same, as 1k services x 100 tasks",
        nodes: 10_000,
        tasks: 100_000,
        services: 1_000,
        constraint: true,
        memory: 64 * MIB,
        racks: 0,
    },
    Scenario {
        name: "100k on 10k nodes, spread over 100 racks",
        nodes: 10_000,
        tasks: 100_000,
        services: 1,
        constraint: false,
        memory: 0,
        racks: 100,
    },
];

fn build_state(s: &Scenario) -> ClusterState {
    let mut state = ClusterState::default();
    for i in 0..s.nodes {
        let id = format!("node{i:06}");
        let mut spec = NodeSpec { role: NodeRole::Worker, availability: Availability::Active, ..Default::default() };
        if s.constraint {
            spec.labels.insert("zone".into(), if i % 2 == 0 { "a" } else { "b" }.into());
        }
        if s.racks > 0 {
            spec.labels.insert("rack".into(), format!("r{}", i % s.racks));
        }
        let node = Node {
            id: id.clone(),
            spec,
            description: NodeDescription {
                hostname: format!("host{i}"),
                platform: Platform { architecture: "x86_64".into(), os: "linux".into() },
                resources: Resources { nano_cpus: 8_000_000_000, memory_bytes: 32 * GIB },
                ..Default::default()
            },
            status: NodeStatus {
                state: NodeState::Ready,
                addr: format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                ..Default::default()
            },
            ..Default::default()
        };
        state.nodes.insert(id, NodeRecord { node, ..Default::default() });
    }
    state
}

fn build_tasks(s: &Scenario) -> Vec<Task> {
    let mut placement = Placement::default();
    if s.constraint {
        placement.constraints = vec!["node.labels.zone==a".into()];
    }
    if s.racks > 0 {
        placement.preferences =
            vec![PlacementPreference { spread: Some(SpreadOver { spread_descriptor: "node.labels.rack".into() }) }];
    }
    let spec = TaskSpec {
        placement: Some(placement),
        resources: (s.memory > 0).then(|| ResourceRequirements {
            reservations: Some(ResourceAmounts { memory_bytes: s.memory, ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let per_service = s.tasks / s.services;
    (0..s.tasks)
        .map(|i| Task {
            id: format!("task{i:07}"),
            service_id: format!("service{:05}", i / per_service),
            slot: (i % per_service) as u64 + 1,
            spec: spec.clone(),
            status: TaskStatus { state: TaskState::Pending, ..Default::default() },
            desired_state: TaskState::Running,
            ..Default::default()
        })
        .collect()
}

/// One run: (placement time, total time, assigned count, checks passed).
fn run(s: &Scenario) -> (Duration, Duration, usize) {
    let start = Instant::now();
    let state = build_state(s);
    let tasks = build_tasks(s);
    let refs: Vec<&Task> = tasks.iter().collect();
    let mut scheduler = Scheduler::new(&state);
    let placing = Instant::now();
    let decisions = scheduler.place(&refs);
    let end = Instant::now();

    // Sanity: every task placed, on a node that satisfies the constraint, spread evenly.
    let mut per_node = std::collections::HashMap::<&str, usize>::new();
    for d in &decisions {
        match d {
            Decision::Assign { node_id, .. } => *per_node.entry(node_id.as_str()).or_default() += 1,
            Decision::NoFit { reason, .. } => panic!("{}: unexpected no fit: {reason}", s.name),
        }
    }
    for id in per_node.keys() {
        let labels = &state.nodes[*id].node.spec.labels;
        assert!(!s.constraint || labels["zone"] == "a", "{}: constraint broken on {id}", s.name);
    }
    let eligible = if s.constraint { s.nodes / 2 } else { s.nodes };
    let (lo, hi) = (per_node.values().min().copied(), per_node.values().max().copied());
    assert_eq!(per_node.len(), eligible.min(s.tasks), "{}: not spread over every eligible node", s.name);
    assert!(hi.unwrap_or(0) - lo.unwrap_or(0) <= 1, "{}: uneven spread {lo:?}..{hi:?}", s.name);
    (end - placing, end - start, decisions.len())
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    let mut runs = 5usize;
    let mut only: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).expect("--runs N"),
            "--scenario" => only = args.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).map(|n: usize| n - 1),
            other => panic!("unknown argument {other} (usage: skep-bench-scheduler [--runs N] [--scenario K])"),
        }
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; run with --release for meaningful figures");
    }
    println!(
        "scheduler alone, in-process, 1 thread; median of {runs} runs; goal {GOAL:.0}/s; swarmkit {SWARMKIT:.0}/s"
    );
    println!();
    println!(
        "| {:<44} | {:>6} | {:>7} | {:>9} | {:>12} | {:>7} | {:>10} | {:>9} | {:>12} | {:>10} |",
        "scenario",
        "nodes",
        "tasks",
        "place ms",
        "placements/s",
        "x goal",
        "x swarmkit",
        "total ms",
        "total/s",
        "x swarmkit"
    );
    println!(
        "|{:-<46}|{:-<8}|{:-<9}|{:-<11}|{:-<14}|{:-<9}|{:-<12}|{:-<11}|{:-<14}|{:-<12}|",
        "", "", "", "", "", "", "", "", "", ""
    );
    for (_, s) in SCENARIOS.iter().enumerate().filter(|(i, _)| only.is_none_or(|k| k == *i)) {
        let mut samples: Vec<(Duration, Duration, usize)> = (0..runs).map(|_| run(s)).collect();
        samples.sort_by_key(|r| r.0);
        let (place, _, n) = samples[runs / 2];
        let mut totals: Vec<Duration> = samples.iter().map(|r| r.1).collect();
        totals.sort();
        let total = totals[runs / 2];
        let (pr, tr) = (rate(n, place), rate(n, total));
        println!(
            "| {:<44} | {:>6} | {:>7} | {:>9.1} | {:>12.0} | {:>7.1} | {:>10.0} | {:>9.1} | {:>12.0} | {:>10.0} |",
            s.name,
            s.nodes,
            s.tasks,
            place.as_secs_f64() * 1e3,
            pr,
            pr / GOAL,
            pr / SWARMKIT,
            total.as_secs_f64() * 1e3,
            tr,
            tr / SWARMKIT
        );
    }
}
