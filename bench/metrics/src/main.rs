//! Issue 17's goal "metrics scrape with 10k tasks ≤ 50 ms": the work of one `/metrics` scrape on a manager
//! ([`skep_node::metrics::registry`] from a store version, then [`skep_node::metrics::encode`] as Prometheus text), on
//! a store of TASKS tasks (default 10000) in a mix of states over NODES nodes (default 100) and 100 services, with
//! heartbeat counts for every node, DNS counters and ten mesh ports, timed over ROUNDS rounds (default 50). The HTTP
//! exchange around it is not included, nor are the reads before it (Raft's commit index, the `nft list` of the
//! mesh's counters): see bench/README.md.
//!
//! `skep-bench-metrics [TASKS] [NODES] [ROUNDS]`

use prometheus_client::metrics::histogram::Histogram;
use skep_api::docker::{Node, NodeState, Service, Task, TaskState};
use skep_manager::dispatcher::BeatCounts;
use skep_manager::runtime::{ManagerMetrics, RaftStatus};
use skep_manager::store::{ClusterState, NodeRecord};
use skep_node::metrics::{encode, registry, ManagerScrape, Scrape};
use skep_worker::network::{MeshConnections, MeshPath, Proto, QueryCounters};
use std::sync::Arc;
use std::time::Instant;

fn arg(i: usize, default: usize) -> usize {
    std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// A store of `tasks` tasks over `nodes` nodes: 90 % running, the rest shut down, failed or pending (half of those
/// with a scheduler's verdict).
fn store(tasks: usize, nodes: usize) -> ClusterState {
    let mut st = ClusterState::default();
    for n in 0..nodes {
        let mut node = Node { id: format!("node{n:05}"), ..Default::default() };
        node.description.hostname = format!("host{n}");
        node.status.state = NodeState::Ready;
        st.nodes.insert(node.id.clone(), NodeRecord { node, raft_id: None, cluster_addr: String::new() });
    }
    for s in 0..100 {
        st.services.insert(format!("svc{s:03}"), Service { id: format!("svc{s:03}"), ..Default::default() });
    }
    for t in 0..tasks {
        let state = match t % 10 {
            0 if t % 30 == 0 => TaskState::Pending,
            0 if t % 20 == 0 => TaskState::Failed,
            0 => TaskState::Shutdown,
            _ => TaskState::Running,
        };
        let node = if state == TaskState::Pending { String::new() } else { format!("node{:05}", t % nodes) };
        let service_id = format!("svc{:03}", t % 100);
        let mut task = Task { id: format!("task{t:06}"), node_id: node, service_id, ..Default::default() };
        task.status.state = state;
        if state == TaskState::Pending && t % 60 == 0 {
            task.status.err = "no suitable node (insufficient memory on 3 nodes; 1 node not available)".into();
        }
        st.tasks.insert(task.id.clone(), task);
    }
    st
}

fn main() {
    let (tasks, nodes, rounds) = (arg(1, 10_000), arg(2, 100), arg(3, 50).max(1));
    let scrape = Scrape {
        manager: Some(ManagerScrape {
            raft: RaftStatus {
                term: 3,
                leader: true,
                has_leader: true,
                last_log: 20_000,
                applied: 20_000,
                committed: Some(20_000),
            },
            voters: (0..3).map(|n| format!("node{n:05}")).collect(),
            metrics: ManagerMetrics::default(),
            beats: (0..nodes)
                .map(|n| (format!("node{n:05}"), BeatCounts { received: 1000, missed: n as u64 % 2 }))
                .collect(),
            store: Arc::new(store(tasks, nodes)),
        }),
        local_tasks: None,
        engine_start: Histogram::new([0.01, 0.1, 1.0]),
        dns_queries: Some(QueryCounters::default()),
        mesh: Some(
            (0..10)
                .map(|i| MeshConnections {
                    proto: Proto::Tcp,
                    port: 8000 + i,
                    via: MeshPath::Nftables,
                    count: 100,
                })
                .collect(),
        ),
    };
    let mut ms = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t0 = Instant::now();
        let (text, _) = encode(&registry(&scrape), false);
        ms.push(t0.elapsed().as_secs_f64() * 1e3);
        bytes = text.len();
    }
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    println!(
        "{tasks} tasks, {nodes} nodes, {rounds} rounds: scrape p50 {:.2} ms, p90 {:.2} ms, max {:.2} ms \
         ({bytes} bytes)",
        p(0.5),
        p(0.9),
        p(1.0)
    );
}
