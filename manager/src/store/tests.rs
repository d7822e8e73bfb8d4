use super::*;
use skep_api::docker::{Availability, Service, Task, TaskState, TaskStatus};

fn node(id: &str, host: &str, r: NodeRole) -> Node {
    let mut n = Node { id: id.into(), ..Default::default() };
    n.description.hostname = host.into();
    n.spec.role = r;
    n.spec.availability = Availability::Active;
    n
}

fn cmd(op: Op) -> Command {
    Command { at: "2026-11-22T00:00:00Z".into(), op }
}

fn initialised() -> ClusterState {
    let mut s = ClusterState::default();
    let c = ClusterRecord { info: ClusterInfo { id: "c1".into(), ..Default::default() }, ..Default::default() };
    s.apply(1, &cmd(Op::Init { cluster: Box::new(c), node: Box::new(node("m1", "host-1", NodeRole::Manager)), cluster_addr: "10.0.0.1:2377".into(), ingress: None }))
        .unwrap();
    s
}

#[test]
fn init_creates_the_cluster_and_a_manager_with_raft_id_1() {
    let s = initialised();
    assert_eq!(s.index, 1);
    assert_eq!(s.nodes["m1"].raft_id, Some(1));
    assert_eq!(s.nodes["m1"].node.version.index, 1);
    assert_eq!(s.cluster.as_ref().unwrap().info.version.index, 1);
    let mut again = s.clone();
    assert!(matches!(
        again.apply(2, &cmd(Op::Init { cluster: Box::default(), node: Box::new(node("x", "x", NodeRole::Manager)), cluster_addr: String::new(), ingress: None })),
        Err(StoreError::Conflict(_))
    ));
}

#[test]
fn managers_get_distinct_raft_ids_and_workers_none() {
    let mut s = initialised();
    let a = s.apply(2, &cmd(Op::AddNode { node: Box::new(node("m2", "host-2", NodeRole::Manager)), cluster_addr: "a".into() })).unwrap();
    let b = s.apply(3, &cmd(Op::AddNode { node: Box::new(node("w1", "host-3", NodeRole::Worker)), cluster_addr: "b".into() })).unwrap();
    assert_eq!(a.raft_id, Some(2));
    assert_eq!(b.raft_id, None);
    // promotion hands out the next ID, once
    let spec = NodeSpec { role: NodeRole::Manager, ..s.nodes["w1"].node.spec.clone() };
    let p = s.apply(4, &cmd(Op::UpdateNodeSpec { id: "w1".into(), version: 3, spec: spec.clone() })).unwrap();
    assert_eq!(p.raft_id, Some(3));
    let again = s.apply(5, &cmd(Op::UpdateNodeSpec { id: "w1".into(), version: 4, spec })).unwrap();
    assert_eq!(again.raft_id, None);
    assert_eq!(s.nodes["w1"].raft_id, Some(3));
}

#[test]
fn a_reseated_manager_gets_a_fresh_raft_id_once_and_never_its_old_one() {
    let mut s = initialised();
    let a = s.apply(2, &cmd(Op::AddNode { node: Box::new(node("m2", "h2", NodeRole::Manager)), cluster_addr: "a".into() }));
    assert_eq!(a.unwrap().raft_id, Some(2));
    s.apply(3, &cmd(Op::AddNode { node: Box::new(node("w1", "h3", NodeRole::Worker)), cluster_addr: "b".into() })).unwrap();
    let r = s.apply(4, &cmd(Op::ReseatRaftId { id: "m2".into(), old: 2 })).unwrap();
    assert_eq!(r.raft_id, Some(3));
    assert_eq!(s.nodes["m2"].raft_id, Some(3));
    assert_eq!(s.nodes["m2"].node.spec.role, NodeRole::Manager);
    // a retry names the old ID: refused, nothing changes (the leader answers the node from the store instead)
    let before = s.nodes.clone();
    assert!(matches!(s.apply(5, &cmd(Op::ReseatRaftId { id: "m2".into(), old: 2 })), Err(StoreError::Invalid(_))));
    // a worker has no Raft ID to give up
    assert!(matches!(s.apply(6, &cmd(Op::ReseatRaftId { id: "w1".into(), old: 3 })), Err(StoreError::Invalid(_))));
    assert_eq!(s.nodes, before);
}

#[test]
fn stale_version_is_out_of_sequence_and_changes_nothing() {
    let mut s = initialised();
    let before = s.nodes["m1"].clone();
    let r = s.apply(2, &cmd(Op::UpdateNodeSpec { id: "m1".into(), version: 99, spec: NodeSpec::default() }));
    assert_eq!(r, Err(StoreError::OutOfSequence));
    assert_eq!(s.nodes["m1"], before);
    assert_eq!(StoreError::OutOfSequence.to_string(), "update out of sequence");
}

#[test]
fn removed_nodes_are_remembered_and_cannot_rejoin_with_the_same_id() {
    let mut s = initialised();
    s.apply(2, &cmd(Op::AddNode { node: Box::new(node("w1", "h", NodeRole::Worker)), cluster_addr: "b".into() })).unwrap();
    s.apply(3, &cmd(Op::RemoveNode { id: "w1".into() })).unwrap();
    assert!(s.removed.contains("w1"));
    assert!(s.apply(4, &cmd(Op::AddNode { node: Box::new(node("w1", "h", NodeRole::Worker)), cluster_addr: "b".into() })).is_err());
    assert!(matches!(s.apply(5, &cmd(Op::RemoveNode { id: "w1".into() })), Err(StoreError::NotFound(_))));
}

#[test]
fn references_resolve_by_id_then_name_then_unique_prefix() {
    let mut s = initialised();
    s.apply(2, &cmd(Op::AddNode { node: Box::new(node("m2abc", "host-2", NodeRole::Worker)), cluster_addr: String::new() })).unwrap();
    s.apply(3, &cmd(Op::AddNode { node: Box::new(node("m2abd", "host-3", NodeRole::Worker)), cluster_addr: String::new() })).unwrap();
    assert_eq!(s.resolve_node("m1").unwrap().node.id, "m1");
    assert_eq!(s.resolve_node("host-2").unwrap().node.id, "m2abc");
    assert_eq!(s.resolve_node("m2abd").unwrap().node.id, "m2abd");
    assert!(matches!(s.resolve_node("m2ab"), Err(ResolveError::Ambiguous(_))));
    assert_eq!(s.resolve_node("zz").unwrap_err().to_string(), "node zz not found");
}

#[test]
fn manager_status_is_derived_from_leadership_and_heartbeats() {
    let mut s = initialised();
    s.apply(2, &cmd(Op::SetNodeStatus { id: "m1".into(), state: NodeState::Ready, message: String::new(), addr: "10.0.0.1".into() }))
        .unwrap();
    let v = s.node_view(&s.nodes["m1"], Some(1));
    let ms = v.manager_status.unwrap();
    assert!(ms.leader);
    assert_eq!(ms.reachability, Reachability::Reachable);
    assert_eq!(ms.addr, "10.0.0.1:2377");
    s.apply(3, &cmd(Op::SetNodeStatus { id: "m1".into(), state: NodeState::Down, message: String::new(), addr: String::new() }))
        .unwrap();
    assert_eq!(s.node_view(&s.nodes["m1"], Some(7)).manager_status.unwrap().reachability, Reachability::Unreachable);
    assert_eq!(s.nodes["m1"].node.status.addr, "10.0.0.1", "an empty addr keeps the old one");
    // a manager outside the Raft membership (lost before --force-new-cluster) is listed unreachable, never leader
    s.nodes.get_mut("m1").unwrap().raft_id = None;
    let ms = s.node_view(&s.nodes["m1"], Some(1)).manager_status.unwrap();
    assert!(!ms.leader);
    assert_eq!(ms.reachability, Reachability::Unreachable);
}

/// Commands with node vocabulary as this build's predecessor wrote them into the Raft log.
const LOGGED: [&str; 2] = [
    r#"{"at":"2025-01-02T03:04:05Z","op":{"UpdateNodeSpec":{"id":"n1","version":7,"spec":{"Labels":{"zone":"a"},"Role":"manager","Availability":"pause"}}}}"#,
    r#"{"at":"2025-01-02T03:04:05Z","op":{"SetNodeStatus":{"id":"n1","state":"down","message":"heartbeat failure","addr":"10.0.0.1"}}}"#,
];

#[test]
fn commands_logged_before_the_vocabulary_was_typed_apply_and_encode_the_same() {
    let mut s = initialised();
    // added at index 7: the version the logged update read
    s.apply(7, &cmd(Op::AddNode { node: Box::new(node("n1", "h1", NodeRole::Worker)), cluster_addr: "x".into() })).unwrap();
    for (i, json) in LOGGED.iter().enumerate() {
        let c: Command = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), *json);
        s.apply(i as u64 + 8, &c).unwrap();
    }
    let n = &s.nodes["n1"].node;
    assert_eq!((n.spec.role, n.spec.availability, n.status.state), (NodeRole::Manager, Availability::Pause, NodeState::Down));
    // and the snapshot of that state reads back the same
    let snapshot = serde_json::to_vec(&s).unwrap();
    assert_eq!(serde_json::from_slice::<ClusterState>(&snapshot).unwrap(), s);
}

#[test]
fn apply_is_deterministic() {
    let ops = vec![
        Op::AddNode { node: Box::new(node("w1", "h1", NodeRole::Worker)), cluster_addr: "x".into() },
        Op::KvPut { key: "k".into(), value: vec![1, 2, 3] },
        Op::SetNodeStatus { id: "w1".into(), state: NodeState::Ready, message: String::new(), addr: "1.2.3.4".into() },
    ];
    let mut a = initialised();
    let mut b = initialised();
    for (i, op) in ops.into_iter().enumerate() {
        let c = cmd(op);
        assert_eq!(a.apply(i as u64 + 2, &c), b.apply(i as u64 + 2, &c));
    }
    assert_eq!(a, b);
}

fn task(id: &str, state: TaskState, desired: TaskState) -> Task {
    Task { id: id.into(), service_id: "s1".into(), slot: 1, desired_state: desired, status: TaskStatus { state, ..Default::default() }, ..Default::default() }
}

#[test]
fn task_state_never_moves_backwards_through_any_op() {
    let mut s = initialised();
    s.apply(2, &cmd(Op::PutTasks { tasks: vec![task("t1", TaskState::Running, TaskState::Running)] })).unwrap();
    // an orchestrator's stale copy cannot rewind the observed state
    s.apply(3, &cmd(Op::PutTasks { tasks: vec![task("t1", TaskState::Assigned, TaskState::Shutdown)] })).unwrap();
    assert_eq!(s.tasks["t1"].status.state, TaskState::Running);
    assert_eq!(s.tasks["t1"].desired_state, TaskState::Shutdown);
    // nor can it bring the desired state back
    s.apply(4, &cmd(Op::PutTasks { tasks: vec![task("t1", TaskState::Running, TaskState::Running)] })).unwrap();
    assert_eq!(s.tasks["t1"].desired_state, TaskState::Shutdown);
    // a worker's late report of an earlier state is ignored; a later one lands
    let st = |state| TaskStatus { state, ..Default::default() };
    s.apply(5, &cmd(Op::ReportTaskStatus { updates: vec![("t1".into(), st(TaskState::Starting))] })).unwrap();
    assert_eq!(s.tasks["t1"].status.state, TaskState::Running);
    s.apply(6, &cmd(Op::ReportTaskStatus { updates: vec![("t1".into(), st(TaskState::Shutdown)), ("nope".into(), st(TaskState::Failed))] })).unwrap();
    assert_eq!(s.tasks["t1"].status.state, TaskState::Shutdown);
}

#[test]
fn service_names_are_unique_and_updates_keep_the_previous_spec() {
    let mut s = initialised();
    let mk = |id: &str, name: &str| {
        let mut svc = Service { id: id.into(), ..Default::default() };
        svc.spec.name = name.into();
        Box::new(svc)
    };
    s.apply(2, &cmd(Op::CreateService { service: mk("a", "web") })).unwrap();
    let e = s.apply(3, &cmd(Op::CreateService { service: mk("b", "web") })).unwrap_err();
    assert!(e.to_string().contains("name conflicts with an existing object: service web already exists"), "{e}");
    let mut spec = s.services["a"].spec.clone();
    spec.labels.insert("x".into(), "1".into());
    assert_eq!(s.apply(4, &cmd(Op::UpdateService { id: "a".into(), version: 1, spec: Box::new(spec.clone()), spec_changed: true })), Err(StoreError::OutOfSequence));
    s.apply(5, &cmd(Op::UpdateService { id: "a".into(), version: 2, spec: Box::new(spec), spec_changed: true })).unwrap();
    assert_eq!(s.services["a"].previous_spec.as_ref().unwrap().labels.len(), 0);
    assert_eq!(s.services["a"].version.index, 5);
    assert_eq!(s.resolve_service("web").unwrap().id, "a");
    s.apply(6, &cmd(Op::RecordRestart { key: "a/1".into(), keep: 2 })).unwrap();
    s.apply(7, &cmd(Op::RecordRestart { key: "a/1".into(), keep: 2 })).unwrap();
    s.apply(8, &cmd(Op::RecordRestart { key: "a/1".into(), keep: 2 })).unwrap();
    assert_eq!(s.restarts["a/1"].len(), 2);
    s.apply(9, &cmd(Op::RemoveService { id: "a".into() })).unwrap();
    assert!(s.restarts.is_empty());
}

mod networks {
    use super::*;
    use skep_api::docker::{EndpointSpec, Ipam, IpamConfig, Network, NetworkAttachmentConfig, PortConfig};

    fn net(id: &str, name: &str, subnet: &str, ingress: bool) -> Op {
        Op::CreateNetwork {
            network: Box::new(Network {
                id: id.into(),
                name: name.into(),
                ingress,
                ipam: Ipam { config: vec![IpamConfig { subnet: subnet.into(), ..Default::default() }], ..Default::default() },
                ..Default::default()
            }),
        }
    }

    fn svc(id: &str, name: &str, nets: &[&str], ports: &[(u32, u32)]) -> Service {
        let mut s = Service { id: id.into(), ..Default::default() };
        s.spec.name = name.into();
        s.spec.task_template.networks =
            nets.iter().map(|n| NetworkAttachmentConfig { target: n.to_string(), ..Default::default() }).collect();
        if !ports.is_empty() {
            s.spec.endpoint_spec = Some(EndpointSpec {
                mode: String::new(),
                ports: ports.iter().map(|(p, t)| PortConfig { published_port: *p, target_port: *t, ..Default::default() }).collect(),
            });
        }
        s
    }

    fn with_nets() -> ClusterState {
        let mut s = initialised();
        s.apply(2, &cmd(net("ing", "ingress", "10.255.0.0/24", true))).unwrap();
        s.apply(3, &cmd(net("app", "app", "10.9.0.0/29", false))).unwrap();
        s
    }

    fn task_of(id: &str, service: &str, nets: &[&str]) -> Task {
        let mut t = task(id, TaskState::New, TaskState::Running);
        t.service_id = service.into();
        t.spec.networks = nets.iter().map(|n| NetworkAttachmentConfig { target: n.to_string(), ..Default::default() }).collect();
        t
    }

    #[test]
    fn ingress_gives_every_node_a_leg_and_a_removed_node_frees_it() {
        let mut s = with_nets();
        assert!(s.ingress().unwrap().node_ips.contains_key("m1"));
        s.apply(4, &cmd(Op::AddNode { node: Box::new(node("w1", "h", NodeRole::Worker)), cluster_addr: String::new() })).unwrap();
        let ip = s.ingress().unwrap().node_ips["w1"];
        assert_ne!(ip, s.ingress().unwrap().node_ips["m1"]);
        s.apply(5, &cmd(Op::RemoveNode { id: "w1".into() })).unwrap();
        assert!(!s.ingress().unwrap().pool.used.contains(&u32::from(ip)));
    }

    #[test]
    fn services_get_vips_and_ports_and_clashes_are_refused() {
        let mut s = with_nets();
        let a = svc("s1", "web", &["app"], &[(8080, 80), (0, 81)]);
        s.apply(4, &cmd(Op::CreateService { service: Box::new(a) })).unwrap();
        let ep = s.services["s1"].endpoint.clone().unwrap();
        assert_eq!(ep.ports[0].published_port, 8080);
        assert_eq!(ep.ports[1].published_port, 30000);
        assert_eq!(ep.ports[0].protocol, "tcp");
        assert_eq!(ep.virtual_ips.len(), 2, "app and ingress: {ep:?}");
        let b = svc("s2", "api", &[], &[(8080, 80)]);
        let e = s.apply(5, &cmd(Op::CreateService { service: Box::new(b) })).unwrap_err();
        assert_eq!(e.to_string(), "port '8080' is already in use by service 'web' (s1) as an ingress port");
        assert!(!s.services.contains_key("s2"));
        // an update keeps the auto port and the VIPs
        let mut spec = s.services["s1"].spec.clone();
        spec.labels.insert("x".into(), "y".into());
        s.apply(6, &cmd(Op::UpdateService { id: "s1".into(), version: 4, spec: Box::new(spec), spec_changed: true })).unwrap();
        assert_eq!(s.services["s1"].endpoint.as_ref().unwrap(), &ep);
        // removal frees the VIPs
        let before = s.networks["app"].pool.free();
        s.apply(7, &cmd(Op::RemoveService { id: "s1".into() })).unwrap();
        assert_eq!(s.networks["app"].pool.free(), before + 1);
    }

    #[test]
    fn tasks_get_addresses_keep_them_and_exhaustion_rejects_with_a_reason() {
        let mut s = with_nets();
        s.apply(4, &cmd(Op::CreateService { service: Box::new(svc("s1", "web", &["app"], &[])) })).unwrap();
        // /29: 6 hosts, gateway and VIP taken → 4 left
        let tasks: Vec<Task> = (0..5).map(|i| task_of(&format!("t{i}"), "s1", &["app"])).collect();
        s.apply(5, &cmd(Op::PutTasks { tasks })).unwrap();
        let mut addrs = std::collections::BTreeSet::new();
        for i in 0..4 {
            let t = &s.tasks[&format!("t{i}")];
            assert_eq!(t.networks_attachments.len(), 1);
            assert!(addrs.insert(t.networks_attachments[0].addresses[0].clone()), "address handed out twice");
        }
        let t4 = &s.tasks["t4"];
        assert_eq!(t4.status.state, TaskState::Rejected);
        assert!(t4.status.err.contains("no IP address left in network app"), "{}", t4.status.err);
        // a proposer's copy without attachments does not drop them
        let mut copy = s.tasks["t0"].clone();
        copy.networks_attachments.clear();
        copy.desired_state = TaskState::Shutdown;
        s.apply(6, &cmd(Op::PutTasks { tasks: vec![copy] })).unwrap();
        assert_eq!(s.tasks["t0"].networks_attachments.len(), 1);
        // the network is in use
        let e = s.apply(7, &cmd(Op::RemoveNetwork { id: "app".into() })).unwrap_err();
        assert_eq!(e, StoreError::InUse { network: "app".into(), by: NetworkUser::Service("s1".into()) });
        assert_eq!(e.to_string(), "rpc error: code = FailedPrecondition desc = network app is in use by service s1");
        // a terminal report frees the address for a new task
        let st = TaskStatus { state: TaskState::Shutdown, ..Default::default() };
        s.apply(8, &cmd(Op::ReportTaskStatus { updates: vec![("t0".into(), st)] })).unwrap();
        s.apply(9, &cmd(Op::PutTasks { tasks: vec![task_of("t9", "s1", &["app"])] })).unwrap();
        assert_eq!(s.tasks["t9"].networks_attachments.len(), 1);
        assert_eq!(s.tasks["t9"].networks_attachments[0].addresses, s.tasks["t0"].networks_attachments[0].addresses);
        // with the service gone, the tasks that have not stopped yet keep the network in use
        s.apply(10, &cmd(Op::RemoveService { id: "s1".into() })).unwrap();
        let e = s.apply(11, &cmd(Op::RemoveNetwork { id: "app".into() })).unwrap_err();
        assert_eq!(e, StoreError::InUse { network: "app".into(), by: NetworkUser::Task("t1".into()) });
        assert_eq!(e.to_string(), "rpc error: code = FailedPrecondition desc = network app is in use by task t1");
        assert!(s.networks.contains_key("app"));
    }
}

#[test]
fn template_indexes_tell_up_to_date_tasks_without_comparing_specs() {
    use crate::orchestrator::is_current;
    let mut s = initialised();
    let mut svc = Service { id: "s1".into(), ..Default::default() };
    svc.spec.name = "web".into();
    s.apply(2, &cmd(Op::CreateService { service: Box::new(svc) })).unwrap();
    let mut t = task("t1", TaskState::New, TaskState::Running);
    t.service_id = "s1".into();
    t.spec = s.services["s1"].spec.task_template.clone();
    s.apply(3, &cmd(Op::PutTasks { tasks: vec![t] })).unwrap();
    assert_eq!(s.task_template.get("t1"), Some(&2));
    assert!(is_current(&s, &s.tasks["t1"], &s.services["s1"]));
    // a scale or a label change keeps the template: still current
    let mut spec = s.services["s1"].spec.clone();
    spec.labels.insert("a".into(), "b".into());
    s.apply(4, &cmd(Op::UpdateService { id: "s1".into(), version: 2, spec: Box::new(spec.clone()), spec_changed: true })).unwrap();
    assert!(is_current(&s, &s.tasks["t1"], &s.services["s1"]));
    // a template change makes it out of date
    spec.task_template.force_update += 1;
    s.apply(5, &cmd(Op::UpdateService { id: "s1".into(), version: 4, spec: Box::new(spec), spec_changed: true })).unwrap();
    assert!(!is_current(&s, &s.tasks["t1"], &s.services["s1"]));
    s.apply(6, &cmd(Op::DeleteTasks { ids: vec!["t1".into()] })).unwrap();
    assert!(s.task_template.get("t1").is_none());
}

#[test]
fn refusals_keep_their_wire_encoding_and_in_use_is_added_after_them() {
    // a forwarded proposal's result crosses the wire bincode-encoded: the variant index is the format
    let enc = |e: StoreError| crate::raft::encode(&Err::<Applied, _>(e)).unwrap();
    assert_eq!(enc(StoreError::NotFound("x".into())), [1, 0, 1, b'x']);
    assert_eq!(enc(StoreError::OutOfSequence), [1, 1]);
    assert_eq!(enc(StoreError::Conflict("x".into())), [1, 2, 1, b'x']);
    assert_eq!(enc(StoreError::Invalid("x".into())), [1, 3, 1, b'x']);
    let in_use = StoreError::InUse { network: "n".into(), by: NetworkUser::Task("t".into()) };
    assert_eq!(enc(in_use.clone()), [1, 4, 1, b'n', 1, 1, b't']);
    let back: ApplyResult = crate::raft::decode(&enc(in_use.clone())).unwrap();
    assert_eq!(back, Err(in_use));
}

#[test]
fn a_request_sent_twice_is_applied_once_and_both_copies_get_the_first_result() {
    let mut s = ClusterState::default();
    let put = |v: u8| Op::Once { request: 7, op: Box::new(Op::KvPut { key: "k".into(), value: vec![v] }) };
    let first = s.apply(1, &cmd(put(1))).unwrap();
    assert_eq!(first.index, 1);
    // the copy (say, resent to a new leader) changes nothing and answers like the first
    let again = s.apply(2, &cmd(put(2))).unwrap();
    assert_eq!(again, first);
    assert_eq!(s.kv.get("k"), Some(&vec![1]));
    assert_eq!(s.index, 2);
    // a refusal is remembered too
    let bad = Op::Once { request: 8, op: Box::new(Op::RemoveNetwork { id: "nope".into() }) };
    let e1 = s.apply(3, &cmd(bad.clone())).unwrap_err();
    assert_eq!(s.apply(4, &cmd(bad)).unwrap_err(), e1);
    // another request is applied
    let other = Op::Once { request: 9, op: Box::new(Op::KvPut { key: "k".into(), value: vec![3] }) };
    assert_eq!(s.apply(5, &cmd(other)).unwrap().index, 5);
    assert_eq!(s.kv.get("k"), Some(&vec![3]));
}

#[test]
fn remembered_requests_are_bounded_and_survive_a_snapshot() {
    let mut s = ClusterState::default();
    let n = Requests::KEPT as u64 + 10;
    for i in 0..n {
        s.apply(i + 1, &cmd(Op::Once { request: i, op: Box::new(Op::KvPut { key: "k".into(), value: vec![] }) })).unwrap();
    }
    assert!(s.requests.get(0).is_none(), "the oldest are forgotten");
    assert!(s.requests.get(n - 1).is_some());
    let back: ClusterState = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(back.requests, s.requests);
}

#[test]
fn secrets_and_configs_survive_a_snapshot_and_their_ops_a_log_entry() {
    let mut s = initialised();
    let secret = Secret {
        id: "s1".into(),
        spec: skep_api::docker::SecretSpec { name: "db".into(), data: Some(b"pw\x00\xff".to_vec()), ..Default::default() },
        ..Default::default()
    };
    let op = Op::CreatePayload { kind: PayloadKind::Secret, object: Box::new(secret) };
    // commands travel as JSON in log entries (raft.md, Encoding)
    let entry: Command = serde_json::from_slice(&serde_json::to_vec(&cmd(op)).unwrap()).unwrap();
    s.apply(2, &entry).unwrap();
    let config = Secret { id: "c1".into(), spec: skep_api::docker::SecretSpec { name: "db".into(), data: Some(b"x".to_vec()), ..Default::default() }, ..Default::default() };
    s.apply(3, &cmd(Op::CreatePayload { kind: PayloadKind::Config, object: Box::new(config) })).unwrap();
    // snapshots are the state as JSON
    let back: ClusterState = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.secrets["s1"].spec.data.as_deref(), Some(&b"pw\x00\xff"[..]));
    assert_eq!((back.secrets["s1"].version.index, back.configs["c1"].version.index), (2, 3));
    let e = s.apply(4, &cmd(Op::UpdatePayloadLabels { kind: PayloadKind::Secret, id: "s1".into(), version: 1, labels: Default::default() }));
    assert_eq!(e, Err(StoreError::OutOfSequence));
    s.apply(5, &cmd(Op::RemovePayload { kind: PayloadKind::Secret, id: "s1".into() })).unwrap();
    assert!(s.secrets.is_empty() && s.configs.len() == 1);
}
