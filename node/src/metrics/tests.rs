use super::*;
use skep_api::docker::{Node, Service, Task};
use skep_manager::store::NodeRecord;

fn node(id: &str, state: NodeState) -> NodeRecord {
    let mut n = Node { id: id.into(), ..Default::default() };
    n.description.hostname = format!("host-{id}");
    n.status.state = state;
    NodeRecord { node: n, raft_id: None, cluster_addr: String::new() }
}

fn task(id: &str, node: &str, state: TaskState) -> Task {
    let mut t = Task { id: id.into(), node_id: node.into(), ..Default::default() };
    t.status.state = state;
    t
}

/// A store of two nodes (one down), a service and five tasks: three running and one failed on n1, one pending.
fn store() -> ClusterState {
    let mut st = ClusterState::default();
    st.nodes.insert("n1".into(), node("n1", NodeState::Ready));
    st.nodes.insert("n2".into(), node("n2", NodeState::Down));
    st.services.insert("s1".into(), Service { id: "s1".into(), ..Default::default() });
    for (id, on, state) in [
        ("t1", "n1", TaskState::Running),
        ("t2", "n1", TaskState::Running),
        ("t3", "n1", TaskState::Running),
        ("t4", "n1", TaskState::Failed),
        ("t5", "", TaskState::Pending),
    ] {
        st.tasks.insert(id.into(), task(id, on, state));
    }
    st
}

/// The value of the sample `name` (with its labels, as written) in Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn manager_scrape(raft: RaftStatus) -> Scrape {
    let metrics = ManagerMetrics::default();
    metrics.leader_changes.inc();
    metrics.proposal_duration.observe(0.003);
    Scrape {
        manager: Some(ManagerScrape { raft, metrics, store: Arc::new(store()) }),
        local_tasks: Some(BTreeMap::from([(TaskState::Running, 3), (TaskState::Failed, 1)])),
        engine_start: Histogram::new([0.1, 1.0]),
    }
}

#[test]
fn a_managers_scrape_shows_raft_and_the_stores_counts() {
    let raft = RaftStatus { term: 7, leader: true, has_leader: true, last_log: 42, applied: 41 };
    let s = manager_scrape(raft);
    s.engine_start.observe(0.05);
    let (text, content_type) = encode(&registry(&s), false);
    assert_eq!(content_type, prometheus_text::CONTENT_TYPE);
    for (name, want) in [
        ("skep_raft_term", 7.0),
        ("skep_raft_leader", 1.0),
        ("skep_raft_has_leader", 1.0),
        ("skep_raft_last_log_index", 42.0),
        ("skep_raft_applied_index", 41.0),
        ("skep_raft_leader_changes_seen_total", 1.0),
        ("skep_raft_proposal_duration_seconds_count", 1.0),
        ("skep_engine_start_duration_seconds_count", 1.0),
        ("skep_store_objects{kind=\"services\"}", 1.0),
        ("skep_store_objects{kind=\"tasks\"}", 5.0),
        ("skep_store_objects{kind=\"nodes\"}", 2.0),
        ("skep_store_objects{kind=\"secrets\"}", 0.0),
        ("skep_nodes{state=\"ready\"}", 1.0),
        ("skep_nodes{state=\"down\"}", 1.0),
        ("skep_nodes{state=\"disconnected\"}", 0.0),
        (r#"skep_node_info{node="n2",hostname="host-n2",role="worker",availability="active",state="down"}"#, 1.0),
        ("skep_tasks{state=\"running\"}", 3.0),
        ("skep_tasks{state=\"pending\"}", 1.0),
        ("skep_tasks{state=\"failed\"}", 1.0),
        ("skep_tasks{state=\"new\"}", 0.0),
        ("skep_node_tasks{node=\"n1\",state=\"running\"}", 3.0),
        ("skep_node_tasks{node=\"n1\",state=\"failed\"}", 1.0),
        ("skep_node_tasks{node=\"n2\",state=\"running\"}", 0.0),
        ("skep_local_tasks{state=\"running\"}", 3.0),
        ("skep_local_tasks{state=\"starting\"}", 0.0),
    ] {
        assert_eq!(sample(&text, name), Some(want), "{name} in\n{text}");
    }
    // a task on no node is counted by state only; a state no task of a node is in is not listed for it
    assert!(!text.contains("node=\"\""), "{text}");
    assert_eq!(sample(&text, "skep_node_tasks{node=\"n2\",state=\"failed\"}"), None);
    assert_eq!(sample(&text, "skep_tasks{state=\"remove\"}"), None, "remove is a desired state only");
}

#[test]
fn a_worker_outside_a_swarm_shows_only_the_engine_and_openmetrics_ends_with_eof() {
    let s = Scrape { manager: None, local_tasks: None, engine_start: Histogram::new([1.0]) };
    let (text, content_type) = encode(&registry(&s), true);
    assert_eq!(content_type, OPENMETRICS);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(sample(&text, "skep_engine_start_duration_seconds_count"), Some(0.0), "{text}");
    for absent in ["skep_raft", "skep_tasks", "skep_local_tasks"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
}

#[test]
fn a_follower_is_not_the_leader() {
    let raft = RaftStatus { term: 3, leader: false, has_leader: true, last_log: 9, applied: 9 };
    let (text, _) = encode(&registry(&manager_scrape(raft)), true);
    assert_eq!(sample(&text, "skep_raft_leader"), Some(0.0), "{text}");
    assert_eq!(sample(&text, "skep_raft_has_leader"), Some(1.0), "{text}");
}

#[tokio::test]
async fn a_taken_address_is_an_error_naming_it() {
    let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = first.local_addr().unwrap();
    let e = bind(addr).unwrap_err();
    assert!(matches!(e, MetricsError::Bind { addr: a, .. } if a == addr), "{e:?}");
    assert!(e.to_string().contains(&addr.to_string()), "{e}");
}
