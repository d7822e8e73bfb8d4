//! Scheduler behaviour, asserted on the decisions it returns (no runtime).

use super::*;
use crate::store::NodeRecord;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use skep_api::docker::{
    Availability, Node, NodeDescription, NodeRole, NodeSpec, NodeState, NodeStatus, Placement, PlacementPreference, Platform, ResourceAmounts,
    ResourceRequirements, Resources, SpreadOver, TaskStatus,
};
use std::collections::BTreeMap;

const GIB: i64 = 1 << 30;
const CPU: i64 = 1_000_000_000;

/// A ready, active worker `id` (hostname = id) on linux/x86_64 with 4 CPUs and 8 GiB.
fn node(id: &str) -> Node {
    Node {
        id: id.into(),
        spec: NodeSpec { role: NodeRole::Worker, availability: Availability::Active, ..Default::default() },
        description: NodeDescription {
            hostname: id.into(),
            platform: Platform { architecture: "x86_64".into(), os: "linux".into() },
            resources: Resources { nano_cpus: 4 * CPU, memory_bytes: 8 * GIB },
            ..Default::default()
        },
        status: NodeStatus { state: NodeState::Ready, addr: "10.0.0.1".into(), ..Default::default() },
        ..Default::default()
    }
}

fn with_label(mut n: Node, k: &str, v: &str) -> Node {
    n.spec.labels.insert(k.into(), v.into());
    n
}

fn state(nodes: Vec<Node>, tasks: Vec<Task>) -> ClusterState {
    let mut s = ClusterState::default();
    for n in nodes {
        s.nodes.insert(n.id.clone(), NodeRecord { node: n, ..Default::default() });
    }
    for t in tasks {
        s.tasks.insert(t.id.clone(), t);
    }
    s
}

/// A pending task of `service`.
fn task(id: &str, service: &str) -> Task {
    Task {
        id: id.into(),
        service_id: service.into(),
        status: TaskStatus { state: TaskState::Pending, ..Default::default() },
        desired_state: TaskState::Running,
        ..Default::default()
    }
}

/// A running task of `service` on `node`.
fn running(id: &str, service: &str, node: &str) -> Task {
    let mut t = task(id, service);
    t.node_id = node.into();
    t.status.state = TaskState::Running;
    t
}

fn placement(t: &mut Task) -> &mut Placement {
    t.spec.placement.get_or_insert_with(Default::default)
}

fn reserve(mut t: Task, cpus: i64, memory: i64) -> Task {
    t.spec.resources = Some(ResourceRequirements {
        reservations: Some(ResourceAmounts { nano_cpus: cpus, memory_bytes: memory, ..Default::default() }),
        ..Default::default()
    });
    t
}

fn constrained(mut t: Task, c: &[&str]) -> Task {
    placement(&mut t).constraints = c.iter().map(|s| s.to_string()).collect();
    t
}

/// `n` identical pending tasks `<prefix>0..`, customised by `f`.
fn tasks(prefix: &str, service: &str, n: usize, f: impl Fn(Task) -> Task) -> Vec<Task> {
    (0..n).map(|i| f(task(&format!("{prefix}{i}"), service))).collect()
}

fn place(s: &ClusterState, ts: &[Task]) -> Vec<Decision> {
    let refs: Vec<&Task> = ts.iter().collect();
    Scheduler::new(s).place(&refs)
}

/// Node chosen per task (`None` for no fit), in order.
fn nodes_of(ds: &[Decision]) -> Vec<Option<&str>> {
    ds.iter()
        .map(|d| match d {
            Decision::Assign { node_id, .. } => Some(node_id.as_str()),
            Decision::NoFit { .. } => None,
        })
        .collect()
}

fn per_node(ds: &[Decision]) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for n in nodes_of(ds).into_iter().flatten() {
        *m.entry(n).or_insert(0) += 1;
    }
    m
}

fn reason(d: &Decision) -> &str {
    match d {
        Decision::NoFit { reason, .. } => reason,
        Decision::Assign { .. } => panic!("expected no fit, got {d:?}"),
    }
}

/// Which of `nodes` a single task with constraint `c` may land on.
fn eligible(nodes: Vec<Node>, c: &str) -> Vec<String> {
    let ids: Vec<String> = nodes.iter().map(|n| n.id.clone()).collect();
    let s = state(nodes, vec![]);
    let t = constrained(task("t", "svc"), &[c]);
    // Pinning the task to each node in turn asks the filters about that node alone.
    ids.into_iter()
        .filter(|id| {
            let mut t = t.clone();
            t.node_id = id.clone();
            matches!(place(&s, &[t])[0], Decision::Assign { .. })
        })
        .collect()
}

#[test]
fn three_tasks_spread_one_per_equal_node() {
    let s = state(vec![node("n1"), node("n2"), node("n3")], vec![]);
    let ds = place(&s, &tasks("t", "svc", 3, |t| t));
    assert_eq!(nodes_of(&ds), vec![Some("n1"), Some("n2"), Some("n3")]);
    assert_eq!(ds[0].task_id(), "t0");
}

#[test]
fn spread_counts_this_service_first_then_all_tasks() {
    // n1 runs one task of svc; n2 runs two tasks of another service; n3 runs one of each.
    let existing = vec![
        running("e1", "svc", "n1"),
        running("e2", "other", "n2"),
        running("e3", "other", "n2"),
        running("e4", "svc", "n3"),
        running("e5", "other", "n3"),
    ];
    let s = state(vec![node("n1"), node("n2"), node("n3")], existing);
    let ds = place(&s, &tasks("t", "svc", 4, |t| t));
    // n2 has no svc task: first. Then all have one svc task: n1 (1 task) before n2 (3) and n3 (2), then n3, n2.
    assert_eq!(nodes_of(&ds), vec![Some("n2"), Some("n1"), Some("n3"), Some("n2")]);
}

#[test]
fn finished_and_unplaced_tasks_hold_nothing() {
    let mut done = running("e1", "svc", "n1");
    done.status.state = TaskState::Failed;
    let mut stopping = running("e2", "svc", "n1");
    stopping.desired_state = TaskState::Shutdown;
    let mut waiting = running("e3", "svc", "n1");
    waiting.status.state = TaskState::Pending;
    let s = state(vec![node("n1"), node("n2")], vec![done, stopping, waiting, running("e4", "svc", "n2")]);
    assert_eq!(nodes_of(&place(&s, &tasks("t", "svc", 1, |t| t))), vec![Some("n1")]);
}

#[test]
fn drained_paused_down_and_unknown_nodes_are_skipped() {
    let mut drained = node("n1");
    drained.spec.availability = Availability::Drain;
    let mut paused = node("n2");
    paused.spec.availability = Availability::Pause;
    let mut down = node("n3");
    down.status.state = NodeState::Down;
    let mut unknown = node("n4");
    unknown.status.state = NodeState::Unknown;
    let s = state(vec![drained, paused, down, unknown, node("n5")], vec![]);
    let ds = place(&s, &tasks("t", "svc", 3, |t| t));
    assert_eq!(nodes_of(&ds), vec![Some("n5"); 3]);

    let s = state(
        vec![node("n5")]
            .into_iter()
            .map(|mut n| {
                n.spec.availability = Availability::Drain;
                n
            })
            .collect(),
        vec![],
    );
    assert_eq!(reason(&place(&s, &[task("t", "svc")])[0]), "no suitable node (1 node not available for new tasks)");
}

#[test]
fn constraint_on_each_key_and_operator() {
    let mut m = node("mgr");
    m.spec.role = NodeRole::Manager;
    m.description.engine.labels.insert("storage".into(), "ssd".into());
    m.status.addr = "192.168.1.7".into();
    let mut arm = with_label(node("arm"), "zone", "a");
    arm.description.platform = Platform { architecture: "aarch64".into(), os: "linux".into() };
    let mut win = with_label(node("win"), "zone", "B");
    win.description.platform.os = "windows".into();
    let all = || vec![m.clone(), arm.clone(), win.clone()];

    assert_eq!(eligible(all(), "node.id==arm"), ["arm"]);
    assert_eq!(eligible(all(), "node.id!=arm"), ["mgr", "win"]);
    assert_eq!(eligible(all(), "node.hostname == WIN"), ["win"]);
    assert_eq!(eligible(all(), "node.role==manager"), ["mgr"]);
    assert_eq!(eligible(all(), "node.role!=manager"), ["arm", "win"]);
    assert_eq!(eligible(all(), "node.labels.zone==b"), ["win"], "values compare case-insensitively");
    assert_eq!(eligible(all(), "node.labels.zone!=a"), ["mgr", "win"], "a missing label is never equal");
    assert_eq!(eligible(all(), "node.labels.zone==a"), ["arm"], "a missing label never matches ==");
    assert!(eligible(all(), "node.labels.Zone==a").is_empty(), "label names are case-sensitive");
    assert_eq!(eligible(all(), "engine.labels.storage==ssd"), ["mgr"]);
    assert_eq!(eligible(all(), "engine.labels.storage!=ssd"), ["arm", "win"]);
    assert_eq!(eligible(all(), "node.platform.os==windows"), ["win"]);
    assert_eq!(eligible(all(), "node.platform.os!=windows"), ["mgr", "arm"]);
    assert_eq!(eligible(all(), "node.platform.arch==arm64"), ["arm"]);
    assert_eq!(eligible(all(), "node.platform.arch==x86_64"), ["mgr", "win"]);
    assert_eq!(eligible(all(), "node.platform.arch!=amd64"), ["arm"]);
    assert_eq!(eligible(all(), "node.ip==192.168.1.0/24"), ["mgr"]);
    assert_eq!(eligible(all(), "node.ip==10.0.0.1"), ["arm", "win"]);
    assert_eq!(eligible(all(), "node.ip!=10.0.0.0/8"), ["mgr"]);
    assert_eq!(eligible(all(), "NODE.LABELS.zone==a"), ["arm"], "key words are case-insensitive");
}

#[test]
fn all_constraints_must_hold() {
    let s = state(
        vec![with_label(with_label(node("n1"), "zone", "a"), "disk", "ssd"), with_label(node("n2"), "zone", "a")],
        vec![],
    );
    let ds = place(&s, &tasks("t", "svc", 2, |t| constrained(t, &["node.labels.zone==a", "node.labels.disk==ssd"])));
    assert_eq!(nodes_of(&ds), vec![Some("n1"), Some("n1")]);
}

#[test]
fn memory_reservation_fills_a_node_then_goes_elsewhere() {
    let mut small = node("a-small");
    small.description.resources.memory_bytes = 3 * GIB;
    let mut tiny = node("b-tiny");
    tiny.description.resources.memory_bytes = GIB / 2;
    // big already has 4 GiB reserved by a running task.
    let big_task = reserve(running("e1", "other", "c-big"), 0, 4 * GIB);
    let s = state(vec![small, tiny, node("c-big")], vec![big_task]);
    let ds = place(&s, &tasks("t", "svc", 8, |t| reserve(t, 0, GIB)));
    let counts = per_node(&ds);
    assert_eq!(counts.get("a-small"), Some(&3));
    assert_eq!(counts.get("c-big"), Some(&4));
    assert_eq!(counts.get("b-tiny"), None);
    assert_eq!(reason(&ds[7]), "no suitable node (insufficient memory on 3 nodes)");
}

#[test]
fn cpu_reservation_is_enforced() {
    let s = state(vec![node("n1"), node("n2")], vec![]);
    let ds = place(&s, &tasks("t", "svc", 5, |t| reserve(t, 2 * CPU, 0)));
    assert_eq!(per_node(&ds), BTreeMap::from([("n1", 2), ("n2", 2)]));
    assert_eq!(reason(&ds[4]), "no suitable node (insufficient CPU on 2 nodes)");
}

#[test]
fn nothing_fits_anywhere_mentions_memory() {
    let s = state(vec![node("n1"), node("n2")], vec![]);
    let ds = place(&s, &[reserve(task("t", "svc"), 0, 64 * GIB)]);
    assert!(reason(&ds[0]).contains("insufficient memory on 2 nodes"), "{ds:?}");
}

#[test]
fn max_replicas_per_node() {
    let s = state(vec![node("n1"), node("n2")], vec![running("e1", "svc", "n1")]);
    let ds = place(
        &s,
        &tasks("t", "svc", 4, |mut t| {
            placement(&mut t).max_replicas = 2;
            t
        }),
    );
    assert_eq!(nodes_of(&ds), vec![Some("n2"), Some("n1"), Some("n2"), None]);
    assert_eq!(reason(&ds[3]), "no suitable node (max replicas per node limit exceed)");
}

#[test]
fn platforms_match_with_normalised_architectures() {
    let mut arm = node("arm");
    arm.description.platform.architecture = "aarch64".into();
    let mut win = node("win");
    win.description.platform.os = "windows".into();
    let s = state(vec![node("amd"), arm, win], vec![]);
    let with = |platforms: Vec<(&str, &str)>| {
        let mut t = task("t", "svc");
        placement(&mut t).platforms =
            platforms.into_iter().map(|(os, arch)| Platform { os: os.into(), architecture: arch.into() }).collect();
        per_node(&place(&s, &vec![t; 1])).into_keys().map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(with(vec![("linux", "arm64")]), ["arm"]);
    assert_eq!(with(vec![("linux", "x86_64")]), ["amd"]);
    assert_eq!(with(vec![("", "amd64")]), ["amd"], "amd (0 tasks) before win by ID");
    assert_eq!(with(vec![("windows", "")]), ["win"]);
    let mut t = task("t", "svc");
    placement(&mut t).platforms = vec![Platform { os: "linux".into(), architecture: "s390x".into() }];
    assert_eq!(reason(&place(&s, &[t])[0]), "no suitable node (unsupported platform on 3 nodes)");
}

#[test]
fn preference_spreads_over_zones_first() {
    let s = state(
        vec![
            with_label(node("a1"), "zone", "a"),
            with_label(node("a2"), "zone", "a"),
            with_label(node("a3"), "zone", "a"),
            with_label(node("b1"), "zone", "b"),
        ],
        vec![],
    );
    let spread = |mut t: Task| {
        placement(&mut t).preferences =
            vec![PlacementPreference { spread: Some(SpreadOver { spread_descriptor: "node.labels.zone".into() }) }];
        t
    };
    let ds = place(&s, &tasks("t", "svc", 4, spread));
    let counts = per_node(&ds);
    assert_eq!(counts.get("b1"), Some(&2));
    assert_eq!(counts.get("a1").unwrap() + counts.get("a2").unwrap_or(&0) + counts.get("a3").unwrap_or(&0), 2);
    assert!(counts.values().filter(|&&c| c == 1).count() == 2, "within zone a, plain spread: {counts:?}");

    // Existing tasks count: zone b already has 3, so 3 new ones all go to zone a.
    let existing = (0..3).map(|i| running(&format!("e{i}"), "svc", "b1")).collect();
    let s2 = state(s.nodes.values().map(|r| r.node.clone()).collect(), existing);
    let ds = place(&s2, &tasks("t", "svc", 3, spread));
    assert_eq!(nodes_of(&ds), vec![Some("a1"), Some("a2"), Some("a3")]);

    // Nodes without the label form their own branch: zone a, zone b, unlabelled get 2 each out of 6.
    let s3 = state(s.nodes.values().map(|r| r.node.clone()).chain([node("x1"), node("x2")]).collect(), vec![]);
    let ds = place(&s3, &tasks("t", "svc", 6, spread));
    let c = per_node(&ds);
    assert_eq!(c.get("x1").unwrap_or(&0) + c.get("x2").unwrap_or(&0), 2);
    assert_eq!(c.get("b1"), Some(&2));
}

#[test]
fn preference_branch_that_fills_up_hands_its_share_back() {
    let mut b1 = with_label(node("b1"), "zone", "b");
    b1.description.resources.memory_bytes = GIB;
    let s = state(vec![with_label(node("a1"), "zone", "a"), with_label(node("a2"), "zone", "a"), b1], vec![]);
    let ds = place(
        &s,
        &tasks("t", "svc", 6, |mut t| {
            placement(&mut t).preferences =
                vec![PlacementPreference { spread: Some(SpreadOver { spread_descriptor: "node.labels.zone".into() }) }];
            reserve(t, 0, GIB)
        }),
    );
    assert_eq!(per_node(&ds), BTreeMap::from([("a1", 3), ("a2", 2), ("b1", 1)]));
}

#[test]
fn reason_lists_filters_from_most_to_fewest_failures() {
    let mut down = node("n1");
    down.status.state = NodeState::Down;
    let mut full1 = with_label(node("n2"), "zone", "a");
    full1.description.resources.memory_bytes = GIB;
    let mut full2 = with_label(node("n3"), "zone", "a");
    full2.description.resources.memory_bytes = GIB;
    let elsewhere = with_label(node("n4"), "zone", "b");
    let s = state(vec![down, full1, full2, elsewhere], vec![]);
    let t = reserve(constrained(task("t", "svc"), &["node.labels.zone==a"]), 0, 2 * GIB);
    assert_eq!(
        reason(&place(&s, &[t])[0]),
        "no suitable node (insufficient memory on 2 nodes; 1 node not available for new tasks; \
         scheduling constraints not satisfied on 1 node)"
    );
}

#[test]
fn no_nodes_at_all() {
    let ds = place(&ClusterState::default(), &[task("t", "svc")]);
    assert_eq!(ds, vec![Decision::NoFit { task_id: "t".into(), reason: "no suitable node".into() }]);
}

#[test]
fn pinned_tasks_are_only_checked_against_their_node() {
    let mut drained = node("n2");
    drained.spec.availability = Availability::Drain;
    let s = state(vec![node("n1"), drained, node("n3")], vec![]);
    let mut ok = task("g1", "glob");
    ok.node_id = "n1".into();
    let mut bad = task("g2", "glob");
    bad.node_id = "n2".into();
    let mut gone = task("g3", "glob");
    gone.node_id = "n9".into();
    let ds = place(&s, &[ok, bad, gone, task("r1", "rep")]);
    assert_eq!(ds[0], Decision::Assign { task_id: "g1".into(), node_id: "n1".into() });
    assert_eq!(reason(&ds[1]), "no suitable node (1 node not available for new tasks)");
    assert!(reason(&ds[2]).contains("n9"));
    assert_eq!(nodes_of(&ds)[3], Some("n3"), "pinned placements count for the others");
}

#[test]
fn bad_constraint_in_a_stored_spec_is_a_no_fit() {
    let s = state(vec![node("n1")], vec![]);
    let ds = place(&s, &[constrained(task("t", "svc"), &["zone=a"])]);
    assert!(reason(&ds[0]).contains("expected one operator"), "{ds:?}");
}

#[test]
fn groups_of_different_specs_account_for_each_other() {
    let s = state(vec![node("n1"), node("n2")], vec![]);
    let mut ts = tasks("a", "svc", 1, |t| reserve(t, 0, 6 * GIB));
    ts.extend(tasks("b", "svc", 2, |t| reserve(t, 0, 5 * GIB)));
    ts.extend(tasks("c", "other", 1, |t| t));
    let ds = place(&s, &ts);
    assert_eq!(nodes_of(&ds), vec![Some("n1"), Some("n2"), None, Some("n1")]);
}

#[test]
fn validate_constraints_accepts_good_and_names_the_bad() {
    let ok = |c: &[&str]| validate_constraints(&c.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        ok(&[
            "node.role==manager",
            " node.labels.zone != a ",
            "engine.labels.os==linux",
            "node.id==abc",
            "node.hostname==web-1.example",
            "node.platform.os==linux",
            "node.platform.arch==x86_64",
            "node.ip==10.0.0.0/8",
            "node.ip!=fe80::1",
            "node.labels.com.example.tier==front end",
        ]),
        Ok(())
    );
    assert_eq!(ok(&[]), Ok(()));
    let err = |c: &str| ok(&[c]).unwrap_err();
    assert_eq!(
        err("node.labels.zone"),
        r#"invalid constraint syntax "node.labels.zone": expected one operator from ==, !="#
    );
    assert_eq!(err("==a"), r#"invalid constraint syntax "==a": key '' is invalid"#);
    assert_eq!(
        err("node.role===manager"),
        r#"invalid constraint syntax "node.role===manager": value '=manager' is invalid"#
    );
    assert_eq!(err("node.role=="), r#"invalid constraint syntax "node.role==": value '' is invalid"#);
    assert_eq!(
        err("node.role ~ manager"),
        r#"invalid constraint syntax "node.role ~ manager": expected one operator from ==, !="#
    );
    assert_eq!(
        err("node.role>=manager"),
        r#"invalid constraint syntax "node.role>=manager": expected one operator from ==, !="#
    );
    assert_eq!(err("no de==x"), r#"invalid constraint syntax "no de==x": key 'no de' is invalid"#);
    assert!(err("foo.bar==x")
        .starts_with(r#"invalid constraint "foo.bar==x": unknown key 'foo.bar' (expected one of node.id"#));
    assert!(err("node.labels.==x").contains("has no label name"));
    assert!(err("node.ip==10.0.0.0/40").contains("not an IP address or CIDR block"));
    assert!(ok(&["node.role==manager", "bad"]).is_err(), "one bad constraint fails the list");
}

#[test]
fn normalize_arch_spellings() {
    assert_eq!(normalize_arch("x86_64"), "amd64");
    assert_eq!(normalize_arch("AMD64"), "amd64");
    assert_eq!(normalize_arch("aarch64"), "arm64");
    assert_eq!(normalize_arch("armv7l"), "arm");
    assert_eq!(normalize_arch("i686"), "386");
    assert_eq!(normalize_arch("riscv64"), "riscv64");
    assert_eq!(normalize_arch(""), "");
}

#[test]
fn same_input_same_decisions() {
    let nodes: Vec<Node> =
        (0..20).map(|i| with_label(node(&format!("n{i:02}")), "zone", ["a", "b", "c"][i % 3])).collect();
    let mut ts = tasks("x", "svc1", 30, |mut t| {
        placement(&mut t).preferences =
            vec![PlacementPreference { spread: Some(SpreadOver { spread_descriptor: "node.labels.zone".into() }) }];
        reserve(t, CPU / 2, GIB)
    });
    ts.extend(tasks("y", "svc2", 25, |t| constrained(t, &["node.labels.zone!=c"])));
    let s = state(nodes, vec![running("e", "svc1", "n05")]);
    let first = place(&s, &ts);
    for _ in 0..5 {
        assert_eq!(place(&s, &ts), first);
    }
    // Equal nodes: ties broken by node ID.
    let s = state(vec![node("zz"), node("aa"), node("mm")], vec![]);
    assert_eq!(nodes_of(&place(&s, &tasks("t", "svc", 1, |t| t))), vec![Some("aa")]);
}

/// Random clusters and batches: whatever the mix, an assignment never goes to a node that is not ready and active,
/// breaks a constraint or max-replicas, or pushes a node's reservations past its resources.
#[test]
fn random_batches_respect_the_invariants() {
    let mut rng = StdRng::seed_from_u64(0x5ce9);
    let (mut assigned, mut refused) = (0, 0);
    for round in 0..200 {
        let nodes: Vec<Node> = (0..rng.gen_range(0..12))
            .map(|i| {
                let mut n = with_label(node(&format!("n{i}")), "zone", ["a", "b"][rng.gen_range(0..2)]);
                n.status.state = [NodeState::Ready, NodeState::Ready, NodeState::Ready, NodeState::Down, NodeState::Unknown][rng.gen_range(0..5)];
                n.spec.availability = [Availability::Active, Availability::Active, Availability::Active, Availability::Pause, Availability::Drain][rng.gen_range(0..5)];
                n.description.resources = Resources {
                    nano_cpus: rng.gen_range(0..8) * CPU / 2,
                    memory_bytes: rng.gen_range(0..16) * GIB / 2,
                };
                n
            })
            .collect();
        let services = ["s1", "s2", "s3"];
        let mut batch = Vec::new();
        // Groups are placed in order of first appearance: (service, variant) → rank.
        let mut group_rank: BTreeMap<(&str, u32), usize> = BTreeMap::new();
        let mut group_of = Vec::new();
        for i in 0..rng.gen_range(0..60) {
            let service = services[rng.gen_range(0..3)];
            let mut t = task(&format!("t{i}"), service);
            // A few specs per service so groups split and interleave.
            let variant = rng.gen_range(0..4u32);
            let next = group_rank.len();
            group_of.push(*group_rank.entry((service, variant)).or_insert(next));
            if variant & 1 == 1 {
                t = reserve(t, (variant as i64) * CPU / 4, (variant as i64) * GIB / 2);
            }
            if variant == 2 {
                t = constrained(t, &["node.labels.zone==a"]);
            }
            if variant >= 2 {
                placement(&mut t).max_replicas = 2;
            }
            batch.push(t);
        }
        let s = state(nodes.clone(), vec![]);
        let ds = place(&s, &batch);
        assert_eq!(ds.len(), batch.len());
        let placed = ds.iter().filter(|d| matches!(d, Decision::Assign { .. })).count();
        assigned += placed;
        refused += ds.len() - placed;

        let by_id: BTreeMap<&str, &Node> = nodes.iter().map(|n| (n.id.as_str(), n)).collect();
        let mut used: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
        for (d, t) in ds.iter().zip(&batch) {
            assert_eq!(d.task_id(), t.id, "round {round}: decisions in input order");
            let Decision::Assign { node_id, .. } = d else { continue };
            let n = by_id[node_id.as_str()];
            assert_eq!(n.status.state, NodeState::Ready, "round {round}: {d:?}");
            assert_eq!(n.spec.availability, Availability::Active, "round {round}: {d:?}");
            if t.spec.placement.as_ref().is_some_and(|p| !p.constraints.is_empty()) {
                assert_eq!(n.spec.labels["zone"], "a", "round {round}: {d:?}");
            }
            let (cpus, mem) = reservations(&t.spec);
            let u = used.entry(node_id).or_default();
            u.0 += cpus;
            u.1 += mem;
            assert!(u.0 <= n.description.resources.nano_cpus, "round {round}: CPU overcommitted on {node_id}");
            assert!(u.1 <= n.description.resources.memory_bytes, "round {round}: memory overcommitted on {node_id}");
        }
        // Max replicas: when a group with a limit was placed, the node held at most `max` tasks of the service
        // (its own and those of the groups placed before it).
        for (i, (d, t)) in ds.iter().zip(&batch).enumerate() {
            let (Decision::Assign { node_id, .. }, Some(max)) =
                (d, t.spec.placement.as_ref().map(|p| p.max_replicas).filter(|&m| m > 0))
            else {
                continue;
            };
            let held = (0..batch.len())
                .filter(|&j| batch[j].service_id == t.service_id && group_of[j] <= group_of[i])
                .filter(|&j| matches!(&ds[j], Decision::Assign { node_id: n, .. } if n == node_id))
                .count() as u64;
            assert!(held <= max, "round {round}: max replicas broken on {node_id}");
        }
        // A task with no reservations and no placement lands somewhere whenever some node is ready and active.
        let open = nodes.iter().any(|n| n.status.state == NodeState::Ready && n.spec.availability == Availability::Active);
        for (d, t) in ds.iter().zip(&batch) {
            if open && t.spec == TaskSpec::default() {
                assert!(matches!(d, Decision::Assign { .. }), "round {round}: {d:?}");
            }
        }
    }
    // The random mix exercises both outcomes.
    assert!(assigned > 1000 && refused > 500, "assigned {assigned}, refused {refused}");
}
