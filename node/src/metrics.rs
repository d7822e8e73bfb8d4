//! `--metrics-addr IP:PORT`: the daemon's Prometheus endpoint, as dockerd's flag of that name serves it: `GET
//! /metrics` over plain HTTP on its own address, opt-in, and nothing else there.
//!
//! A scrape reads what the node has once ([`Scrape::read`]: Raft's figures and the store version this node's manager
//! has applied, the task manager's table, the data plane's counters) and turns it into a registry ([`registry`], a
//! pure function); the store's counts are made then, from that one version, so the store's writes carry no
//! bookkeeping for metrics. The figures that must be recorded as they happen (leader changes, heartbeats, proposal,
//! assignment and engine start latency, DNS answers, relayed connections) are recorded by their owners (the manager,
//! the task manager, the DNS servers, the relays) in atomics, and only read here; the mesh's DNAT counters are the
//! kernel's, listed from nftables. Every metric is listed in `docs/design/metrics.md`.
//!
//! The answer is OpenMetrics text when the scraper asks for it (Prometheus does), else Prometheus text 0.0.4.

use crate::node::NodeHandle;
use axum::body::Body;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use skep_api::docker::{NodeState, TaskState};
use skep_manager::dispatcher::BeatCounts;
use skep_manager::runtime::{ManagerMetrics, RaftStatus};
use skep_manager::scheduler::PendingReason;
use skep_manager::store::ClusterState;
use skep_worker::network::{MeshConnections, QueryCounters, QueryResult};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{watch, Semaphore};

/// Scrapes served at once; more wait in the kernel's backlog (a scraper or two is the expected load).
const MAX_CONNECTIONS: usize = 16;

/// The `Content-Type` of OpenMetrics text.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every state a task is observed in (`remove` is a desired state only), so that a state's gauge reads 0 instead of
/// vanishing when its last task leaves it.
const TASK_STATES: [TaskState; 14] = [
    TaskState::New,
    TaskState::Allocated,
    TaskState::Pending,
    TaskState::Assigned,
    TaskState::Accepted,
    TaskState::Preparing,
    TaskState::Ready,
    TaskState::Starting,
    TaskState::Running,
    TaskState::Complete,
    TaskState::Shutdown,
    TaskState::Failed,
    TaskState::Rejected,
    TaskState::Orphaned,
];

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsError {
    /// The address cannot be bound.
    #[error("binding the metrics address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// What one scrape shows, read from the node at once.
pub struct Scrape {
    /// This node's manager, if it runs one.
    pub manager: Option<ManagerScrape>,
    /// How many of this node's tasks are in each state (`None`: not in a swarm).
    pub local_tasks: Option<BTreeMap<TaskState, usize>>,
    /// Seconds the engine took to start each task (kept across role changes).
    pub engine_start: Histogram,
    /// The tasks' DNS servers' answers (`None`: no networking agent runs).
    pub dns_queries: Option<QueryCounters>,
    /// New connections through the routing mesh on this node, per port (`None`: no networking agent runs).
    pub mesh: Option<Vec<MeshConnections>>,
}

/// A manager's part of a scrape.
pub struct ManagerScrape {
    /// Raft's figures.
    pub raft: RaftStatus,
    /// The node IDs of the Raft voters this manager knows (see [`skep_manager::runtime::Manager::raft_voters`]).
    pub voters: Vec<String>,
    /// What the manager records as it runs.
    pub metrics: ManagerMetrics,
    /// Heartbeats received and missed per node, as the manager counted them as leader.
    pub beats: Vec<(String, BeatCounts)>,
    /// The store version the manager has applied (a follower's may lag the leader's by a few entries).
    pub store: Arc<ClusterState>,
}

impl Scrape {
    /// Read the node: one look at its manager (Raft's figures, then its applied store version) and its task table.
    pub async fn read(node: &NodeHandle) -> Scrape {
        let manager = match node.manager().await {
            None => None,
            Some(m) => Some(ManagerScrape {
                raft: m.raft_status().await,
                voters: m.raft_voters(),
                metrics: m.metrics().clone(),
                beats: m.heartbeat_counts(),
                store: m.local_state(),
            }),
        };
        let watch = node.task_watch();
        let local_tasks = if node.state().await.is_some() { watch.states() } else { None };
        let (dns, net) = node.net_watch().await;
        let mesh = match &net {
            Some(net) => Some(net.mesh_connections().await),
            None => None,
        };
        let dns_queries = net.is_some().then(|| dns.clone());
        Scrape { manager, local_tasks, engine_start: watch.start_duration.clone(), dns_queries, mesh }
    }
}

/// A series' labels.
type Labels = Vec<(&'static str, String)>;

/// A family of gauges by one or more labels.
type Gauges = Family<Labels, Gauge>;

fn gauges(points: impl IntoIterator<Item = (Labels, usize)>) -> Gauges {
    let f = Gauges::default();
    for (labels, n) in points {
        f.get_or_create(&labels).set(n as i64);
    }
    f
}

/// A family of counters by one or more labels, with the values their owners counted.
fn counters(points: impl IntoIterator<Item = (Labels, u64)>) -> Family<Labels, Counter> {
    let f = Family::<Labels, Counter>::default();
    for (labels, n) in points {
        f.get_or_create(&labels).inc_by(n);
    }
    f
}

fn label(key: &'static str, value: impl Into<String>) -> Labels {
    vec![(key, value.into())]
}

fn flag(b: bool) -> ConstGauge {
    ConstGauge::new(i64::from(b))
}

/// The registry of one scrape (every name prefixed `skep_`).
pub fn registry(s: &Scrape) -> Registry {
    let mut r = Registry::with_prefix("skep");
    r.register_with_unit(
        "engine_start_duration",
        "Time from the engine's start call to the task started (health checks not included)",
        Unit::Seconds,
        s.engine_start.clone(),
    );
    if let Some(local) = &s.local_tasks {
        let points = TASK_STATES.iter().map(|st| (label("state", st.as_str()), local.get(st).copied().unwrap_or(0)));
        r.register("local_tasks", "Tasks this node runs, by the state it last observed", gauges(points));
    }
    if let Some(dns) = &s.dns_queries {
        let points = QueryResult::ALL.map(|q| (label("result", q.as_str()), dns.get(q)));
        r.register("dns_queries", "Queries the tasks' embedded DNS servers answered, by how", counters(points));
    }
    if let Some(mesh) = &s.mesh {
        let points = mesh.iter().map(|c| {
            let labels = vec![("proto", c.proto.as_str().to_string()), ("port", c.port.to_string())];
            ([labels, label("via", c.via.as_str())].concat(), c.count)
        });
        let help = "New connections through the routing mesh on this node, by port";
        r.register("mesh_connections", help, counters(points));
    }
    if let Some(m) = &s.manager {
        register_raft(&mut r, m);
        register_dispatcher(&mut r, m);
        register_store(&mut r, &m.store);
    }
    r
}

/// What the leader counted of the nodes' sessions: heartbeats, down verdicts, assignment latency.
fn register_dispatcher(r: &mut Registry, m: &ManagerScrape) {
    let received = m.beats.iter().map(|(node, c)| (label("node", node.as_str()), c.received));
    r.register("heartbeats_received", "Heartbeats the leader received from each node", counters(received));
    let missed = m.beats.iter().filter(|(_, c)| c.missed > 0).map(|(node, c)| (label("node", node.as_str()), c.missed));
    let help = "Times the leader marked each node down for missing its heartbeats";
    r.register("heartbeats_missed", help, counters(missed));
    r.register_with_unit(
        "assignment_duration",
        "Time from a task's placement on a node to the node's first report on it reaching the leader",
        Unit::Seconds,
        m.metrics.assignment_duration.clone(),
    );
}

fn register_raft(r: &mut Registry, m: &ManagerScrape) {
    let raft = &m.raft;
    r.register("raft_term", "The current Raft term", ConstGauge::new(raft.term as i64));
    r.register("raft_leader", "1 if this manager is the Raft leader", flag(raft.leader));
    r.register("raft_has_leader", "1 if this manager knows a Raft leader", flag(raft.has_leader));
    let voters = m.voters.iter().map(|node| (label("node", node.as_str()), 1));
    let help = "1 for each Raft voter (by node ID) in the membership this manager knows";
    r.register("raft_voter", help, gauges(voters));
    let (last_log, applied) = (ConstGauge::new(raft.last_log as i64), ConstGauge::new(raft.applied as i64));
    r.register("raft_last_log_index", "Index of the last entry in this manager's Raft log", last_log);
    r.register("raft_applied_index", "Index of the last Raft entry applied to this manager's store", applied);
    if let Some(committed) = raft.committed {
        let committed = ConstGauge::new(committed as i64);
        r.register("raft_commit_index", "Index of the last Raft entry this manager knows committed", committed);
    }
    r.register(
        "raft_leader_changes_seen",
        "Times the Raft leader known to this manager became another manager",
        ConstCounter::new(m.metrics.leader_changes.get()),
    );
    r.register_with_unit(
        "raft_proposal_duration",
        "Time from a proposal's arrival at the leader to its entry applied",
        Unit::Seconds,
        m.metrics.proposal_duration.clone(),
    );
}

/// The store's counts, from one version: objects by kind, nodes by state (and who they are), tasks by state and by
/// node and state.
fn register_store(r: &mut Registry, st: &ClusterState) {
    let kinds = [
        ("services", st.services.len()),
        ("tasks", st.tasks.len()),
        ("nodes", st.nodes.len()),
        ("networks", st.networks.len()),
        ("secrets", st.secrets.len()),
        ("configs", st.configs.len()),
    ];
    r.register("store_objects", "Objects in the store, by kind", gauges(kinds.map(|(k, n)| (label("kind", k), n))));

    let mut node_states: BTreeMap<&str, usize> = NodeState::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    let info = Gauges::default();
    for n in st.nodes.values().map(|r| &r.node) {
        *node_states.entry(n.status.state.as_str()).or_default() += 1;
        info.get_or_create(&vec![
            ("node", n.id.clone()),
            ("hostname", n.description.hostname.clone()),
            ("role", n.spec.role.as_str().to_string()),
            ("availability", n.spec.availability.as_str().to_string()),
            ("state", n.status.state.as_str().to_string()),
        ])
        .set(1);
    }
    r.register("nodes", "Nodes, by state", gauges(node_states.into_iter().map(|(s, n)| (label("state", s), n))));
    r.register("node_info", "Each node, with its hostname, role, availability and state as labels; always 1", info);

    let mut by_state: BTreeMap<TaskState, usize> = TASK_STATES.iter().map(|s| (*s, 0)).collect();
    // every node gets its `running` count, 0 included; other states only where some task is in them
    let mut by_node: BTreeMap<(&str, TaskState), usize> =
        st.nodes.keys().map(|id| ((id.as_str(), TaskState::Running), 0)).collect();
    let mut pending: BTreeMap<PendingReason, usize> = PendingReason::ALL.iter().map(|r| (*r, 0)).collect();
    for t in st.tasks.values() {
        *by_state.entry(t.status.state).or_default() += 1;
        // waiting for a node, as the scheduler sees it: pending and meant to run
        if t.status.state == TaskState::Pending && t.desired_state <= TaskState::Running {
            *pending.entry(PendingReason::of(&t.status.err)).or_default() += 1;
        }
        if !t.node_id.is_empty() {
            *by_node.entry((t.node_id.as_str(), t.status.state)).or_default() += 1;
        }
    }
    let points = by_state.into_iter().map(|(s, n)| (label("state", s.as_str()), n));
    r.register("tasks", "Tasks in the store, by state", gauges(points));
    let labels = |node: &str, s: TaskState| vec![("node", node.to_string()), ("state", s.as_str().to_string())];
    let points = by_node.into_iter().map(|((node, s), n)| (labels(node, s), n));
    r.register("node_tasks", "Tasks in the store assigned to each node, by state", gauges(points));
    let points = pending.into_iter().map(|(reason, n)| (label("reason", reason.as_str()), n));
    r.register("pending_tasks", "Tasks waiting for a node, by the scheduler's reason", gauges(points));
}

/// The registry as text: OpenMetrics when `openmetrics`, else Prometheus text 0.0.4; with its `Content-Type`.
pub fn encode(r: &Registry, openmetrics: bool) -> (String, &'static str) {
    let mut out = String::new();
    // writing into a String cannot fail; an encoder error would be a bug in a metric's encoding, shown as such
    let written = if openmetrics { text::encode(&mut out, r) } else { prometheus_text::encode(&mut out, r) };
    if written.is_err() {
        tracing::warn!("encoding the metrics failed; the answer is cut short");
    }
    (out, if openmetrics { OPENMETRICS } else { prometheus_text::CONTENT_TYPE })
}

/// Bind `addr` for [`serve`] (before the node starts: a bad address stops the daemon before anything is up).
pub fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, MetricsError> {
    let bind = || {
        let l = std::net::TcpListener::bind(addr)?;
        l.set_nonblocking(true)?;
        tokio::net::TcpListener::from_std(l)
    };
    bind().map_err(|source| MetricsError::Bind { addr, source })
}

/// Serve `GET /metrics` on `listener` until `stop` turns true.
pub fn serve(
    listener: tokio::net::TcpListener,
    node: NodeHandle,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut stopping = stop.clone();
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            let accepted = tokio::select! {
                a = listener.accept() => a,
                _ = stopping.wait_for(|s| *s) => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    // out of file descriptors or the like: pause instead of spinning
                    tracing::warn!("metrics accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let node = node.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| answer(node.clone(), req));
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(crate::listen::HEADER_READ_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), svc);
                if let Err(e) = conn.await {
                    tracing::debug!(%peer, "metrics connection: {e}");
                }
                drop(permit);
            });
        }
    })
}

/// One request: the metrics for `GET /metrics`, 405 for another method there, 404 anywhere else.
async fn answer<B>(node: NodeHandle, req: Request<B>) -> Result<Response<Body>, std::convert::Infallible> {
    let status = |code: StatusCode| {
        let mut resp = Response::new(Body::from(code.canonical_reason().unwrap_or_default()));
        *resp.status_mut() = code;
        Ok(resp)
    };
    if req.uri().path() != "/metrics" {
        return status(StatusCode::NOT_FOUND);
    }
    if req.method() != Method::GET {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let openmetrics = req
        .headers()
        .get_all(hyper::header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains("application/openmetrics-text")));
    let (body, content_type) = encode(&registry(&Scrape::read(&node).await), openmetrics);
    let mut resp = Response::new(Body::from(body));
    resp.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static(content_type));
    Ok(resp)
}

#[cfg(test)]
mod tests;
