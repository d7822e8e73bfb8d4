use super::*;
use skep_api::docker::{Node, Service, Task};
use skep_manager::store::NodeRecord;
use skep_worker::network::{MeshPath, Proto};

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

/// A store of two nodes (one down), a service and seven tasks: three running and one failed on n1, three pending (one
/// not looked at yet, one held by its constraints, one that no longer should run).
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
        ("t6", "", TaskState::Pending),
        ("t7", "", TaskState::Pending),
    ] {
        st.tasks.insert(id.into(), task(id, on, state));
    }
    for t in ["t5", "t6", "t7"] {
        st.tasks.get_mut(t).unwrap().desired_state = TaskState::Running;
    }
    let t6 = st.tasks.get_mut("t6").unwrap();
    t6.status.err = "no suitable node (scheduling constraints not satisfied on 2 nodes)".into();
    st.tasks.get_mut("t7").unwrap().desired_state = TaskState::Shutdown;
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
    metrics.assignment_duration.observe(0.2);
    metrics.assignment_duration.observe(0.4);
    let beats = vec![
        ("n1".to_string(), BeatCounts { received: 40, missed: 0 }),
        ("n2".to_string(), BeatCounts { received: 12, missed: 1 }),
    ];
    let dns = QueryCounters::default();
    dns.count(QueryResult::Local);
    dns.count(QueryResult::NxDomain);
    let mesh = vec![
        MeshConnections { proto: Proto::Tcp, port: 8080, via: MeshPath::Nftables, count: 7 },
        MeshConnections { proto: Proto::Tcp, port: 9000, via: MeshPath::Proxy, count: 2 },
    ];
    Scrape {
        manager: Some(ManagerScrape {
            raft,
            voters: vec!["n1".into(), "n2".into()],
            metrics,
            beats,
            store: Arc::new(store()),
        }),
        local_tasks: Some(BTreeMap::from([(TaskState::Running, 3), (TaskState::Failed, 1)])),
        engine_start: Histogram::new([0.1, 1.0]),
        dns_queries: Some(dns),
        mesh: Some(mesh),
    }
}

#[test]
fn a_managers_scrape_shows_raft_and_the_stores_counts() {
    let raft = RaftStatus { term: 7, leader: true, has_leader: true, last_log: 42, applied: 41, committed: Some(42) };
    let s = manager_scrape(raft);
    s.engine_start.observe(0.05);
    let (text, content_type) = encode(&registry(&s), false);
    assert_eq!(content_type, prometheus_text::CONTENT_TYPE);
    for (name, want) in [
        ("skep_raft_term", 7.0),
        ("skep_raft_leader", 1.0),
        ("skep_raft_has_leader", 1.0),
        ("skep_raft_voter{node=\"n1\"}", 1.0),
        ("skep_raft_voter{node=\"n2\"}", 1.0),
        ("skep_raft_last_log_index", 42.0),
        ("skep_raft_applied_index", 41.0),
        ("skep_raft_leader_changes_seen_total", 1.0),
        ("skep_raft_proposal_duration_seconds_count", 1.0),
        ("skep_engine_start_duration_seconds_count", 1.0),
        ("skep_store_objects{kind=\"services\"}", 1.0),
        ("skep_store_objects{kind=\"tasks\"}", 7.0),
        ("skep_store_objects{kind=\"nodes\"}", 2.0),
        ("skep_store_objects{kind=\"secrets\"}", 0.0),
        ("skep_nodes{state=\"ready\"}", 1.0),
        ("skep_nodes{state=\"down\"}", 1.0),
        ("skep_nodes{state=\"disconnected\"}", 0.0),
        (r#"skep_node_info{node="n2",hostname="host-n2",role="worker",availability="active",state="down"}"#, 1.0),
        ("skep_tasks{state=\"running\"}", 3.0),
        ("skep_tasks{state=\"pending\"}", 3.0),
        ("skep_tasks{state=\"failed\"}", 1.0),
        ("skep_tasks{state=\"new\"}", 0.0),
        ("skep_node_tasks{node=\"n1\",state=\"running\"}", 3.0),
        ("skep_node_tasks{node=\"n1\",state=\"failed\"}", 1.0),
        ("skep_node_tasks{node=\"n2\",state=\"running\"}", 0.0),
        ("skep_local_tasks{state=\"running\"}", 3.0),
        ("skep_local_tasks{state=\"starting\"}", 0.0),
        ("skep_raft_commit_index", 42.0),
        ("skep_heartbeats_received_total{node=\"n1\"}", 40.0),
        ("skep_heartbeats_received_total{node=\"n2\"}", 12.0),
        ("skep_heartbeats_missed_total{node=\"n2\"}", 1.0),
        ("skep_assignment_duration_seconds_count", 2.0),
        ("skep_assignment_duration_seconds_sum", 0.6000000000000001),
        // t7 no longer should run: not waiting for a node
        ("skep_pending_tasks{reason=\"unscheduled\"}", 1.0),
        ("skep_pending_tasks{reason=\"constraints\"}", 1.0),
        ("skep_pending_tasks{reason=\"insufficient_memory\"}", 0.0),
        ("skep_dns_queries_total{result=\"local\"}", 1.0),
        ("skep_dns_queries_total{result=\"nxdomain\"}", 1.0),
        ("skep_dns_queries_total{result=\"servfail\"}", 0.0),
        ("skep_mesh_connections_total{proto=\"tcp\",port=\"8080\",via=\"nftables\"}", 7.0),
        ("skep_mesh_connections_total{proto=\"tcp\",port=\"9000\",via=\"proxy\"}", 2.0),
    ] {
        assert_eq!(sample(&text, name), Some(want), "{name} in\n{text}");
    }
    // a task on no node is counted by state only; a state no task of a node is in is not listed for it
    assert!(!text.contains("node=\"\""), "{text}");
    assert_eq!(sample(&text, "skep_node_tasks{node=\"n2\",state=\"failed\"}"), None);
    assert_eq!(sample(&text, "skep_tasks{state=\"remove\"}"), None, "remove is a desired state only");
    // a node never marked down has no missed series (it appears with its first)
    assert_eq!(sample(&text, "skep_heartbeats_missed_total{node=\"n1\"}"), None, "{text}");
}

#[test]
fn a_worker_outside_a_swarm_shows_only_the_engine_and_openmetrics_ends_with_eof() {
    let engine_start = Histogram::new([1.0]);
    let s = Scrape { manager: None, local_tasks: None, engine_start, dns_queries: None, mesh: None };
    let (text, content_type) = encode(&registry(&s), true);
    assert_eq!(content_type, OPENMETRICS);
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert_eq!(sample(&text, "skep_engine_start_duration_seconds_count"), Some(0.0), "{text}");
    for absent in ["skep_raft", "skep_tasks", "skep_local_tasks", "skep_dns", "skep_mesh", "skep_heartbeats"] {
        assert!(!text.contains(absent), "{absent} in\n{text}");
    }
}

#[test]
fn a_follower_is_not_the_leader() {
    let raft = RaftStatus { term: 3, leader: false, has_leader: true, last_log: 9, applied: 9, committed: None };
    let (text, _) = encode(&registry(&manager_scrape(raft)), true);
    // a commit index Raft's core did not tell in time is left out, not made up
    assert!(!text.contains("skep_raft_commit_index"), "{text}");
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

/// The metric names in a PromQL expression: its identifiers that start with `skep_`, outside quoted strings.
fn metric_names(expr: &str) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut unquoted = String::new();
    for (i, part) in expr.split('"').enumerate() {
        if i % 2 == 0 {
            unquoted.push_str(part);
        }
        unquoted.push(' ');
    }
    unquoted
        .split(|c: char| !is_ident(c))
        .filter(|w| w.starts_with("skep_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_grafana_dashboard_queries_only_what_skep_exports_and_shows_all_of_it() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/grafana/skep-dashboard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    // every series a node can export: a leader's scrape with data in every family
    let raft = RaftStatus { term: 2, leader: true, has_leader: true, last_log: 5, applied: 5, committed: Some(5) };
    let s = manager_scrape(raft);
    s.engine_start.observe(0.5);
    let (text, _) = encode(&registry(&s), false);
    let samples: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let families: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();

    // the Prometheus data source is the dashboard's variable, in every panel and query
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(vars.iter().any(|v| v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"));
    let mut ids = std::collections::BTreeSet::new();
    let mut queried = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        assert!(ids.insert(panel["id"].as_u64().unwrap()), "panel ids are unique: {panel}");
        if panel["type"] == "row" {
            continue;
        }
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{panel}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{panel}");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${datasource}", "{target}");
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for name in names {
                assert!(samples.contains(name.as_str()), "{name} (in `{expr}`) is not exported; exported: {samples:?}");
                queried.push(name);
            }
        }
    }
    for family in families {
        assert!(queried.iter().any(|q| q.starts_with(family)), "no panel shows {family}");
    }
}

#[test]
fn metric_names_are_read_from_promql() {
    let expr = "max by (x) (skep_a{state=\"skep_no\"} and on (i) skep_b_total) / my_skep_c + rate(skep_d_bucket[5m])";
    assert_eq!(metric_names(expr), ["skep_a", "skep_b_total", "skep_d_bucket"]);
}
