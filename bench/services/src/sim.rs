//! `sim`: 3 real manager daemons, N simulated workers in this process (the real agent and task manager of
//! `skep-worker`, each on its own QUIC endpoint and loopback address, with [`FakeEngine`]), one replicated service.

use crate::cluster::{secs, Cluster};
use crate::fake::FakeEngine;
use crate::http;
use crate::procs::{Meter, Scratch};
use anyhow::Context as _;
use skep_api::docker::{Availability, EngineDescription, NodeDescription, NodeRole, NodeState, Platform, Resources};
use skep_api::wire::{self, ErrorKind, Request, Response};
use skep_pki::{JoinToken, NodeKey, NodeTls};
use skep_transport::{Endpoint, Handler, LeaderCaller, TransportConfig};
use skep_worker::join::JoinTiming;
use skep_worker::agent::{self, AgentConfig, AgentEvent};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};

#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Simulated workers
    #[arg(long, default_value_t = 1000)]
    pub workers: usize,
    /// Replicas of the service
    #[arg(long, default_value_t = 10_000)]
    pub replicas: usize,
    /// Workers to stop after convergence (0: skip the worker-loss phase)
    #[arg(long, default_value_t = 100)]
    pub kill: usize,
    /// The skep binary (release build)
    #[arg(long, default_value = "target/release/skep")]
    pub skep: PathBuf,
    /// Managers' cluster port (UDP) on 127.0.0.1-3
    #[arg(long, default_value_t = 26001)]
    pub port: u16,
    /// Workers bind 127.0.1.<1 + i/100>:<worker-port + i%100>
    #[arg(long, default_value_t = 27000)]
    pub worker_port: u16,
    /// Joins in flight at once
    #[arg(long, default_value_t = 32)]
    pub join_concurrency: usize,
    /// Bound on each wait (joins, convergence, recovery), seconds
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Manager whose `GET /services?status=true` is polled (1 = m1, the leader at the start, where the service is
    /// created)
    #[arg(long, default_value_t = 1)]
    pub poll_manager: usize,
    /// `swarm init --dispatcher-heartbeat` (empty: skep's default, 1 s)
    #[arg(long, default_value = "")]
    pub dispatcher_heartbeat: String,
    /// Keep the scratch directories (manager logs) for post-mortems
    #[arg(long)]
    pub keep: bool,
    /// The simulator's nice value (the managers run at nice 0). By default the two compete evenly: a simulator that
    /// yields (e.g. 10) is starved by any outside load, and its thousand workers, which stand for a thousand other
    /// machines, stop heartbeating.
    #[arg(long, default_value_t = 0)]
    pub nice: i32,
    /// After the create: a rolling update of the service (`--env-add ROUND=1`) with this parallelism and no delay,
    /// timed until the engines run every replica from the new spec and none from the old (0: skip)
    #[arg(long, default_value_t = 0)]
    pub update_parallelism: u64,
}

/// The same transport settings as a daemon (node/src/node/mod.rs `transport_config`).
fn transport_config() -> TransportConfig {
    TransportConfig { rpc_timeout: Duration::from_secs(5), silence_timeout: Duration::from_secs(1), ..Default::default() }
}

/// A worker answers no RPCs (like a daemon without a manager).
struct NotManager;

impl Handler<Request, Response> for NotManager {
    async fn handle(&self, _peer: skep_transport::Peer, _req: Request) -> Response {
        Response::Error(wire::WireError::new(ErrorKind::Unavailable, "this node is not a manager"))
    }
}

struct SimWorker {
    node_id: String,
    endpoint: Endpoint,
    stop: watch::Sender<bool>,
    engine: FakeEngine,
}

impl SimWorker {
    fn shutdown(&self) {
        let _ = self.stop.send(true);
        self.endpoint.close();
    }
}

fn description(i: usize) -> NodeDescription {
    let mut labels = std::collections::BTreeMap::new();
    labels.insert(skep_api::docker::ENGINE_LABEL.to_string(), "fake".to_string());
    NodeDescription {
        hostname: format!("sim-{i:04}"),
        platform: Platform { architecture: std::env::consts::ARCH.into(), os: "linux".into() },
        resources: Resources { nano_cpus: 4_000_000_000, memory_bytes: 8 << 30 },
        engine: EngineDescription { engine_version: "sim".into(), labels, plugins: vec![] },
        ..Default::default()
    }
}

/// What `NodeHandle::join` does, then what `start_components` does for a worker: bind, serve, agent, task manager.
async fn join_worker(
    i: usize,
    addr: SocketAddr,
    token: &str,
    seeds: &[SocketAddr],
    dir: PathBuf,
    deadline: Instant,
) -> anyhow::Result<SimWorker> {
    let parsed = JoinToken::parse(token)?;
    let key = NodeKey::generate()?;
    let join = wire::JoinRequest {
        token: token.to_string(),
        csr_pem: key.csr_pem()?,
        description: description(i),
        advertise_addr: addr.to_string(),
        availability: Availability::Active,
    };
    let timing = JoinTiming { deadline: deadline.saturating_duration_since(Instant::now()), ..Default::default() };
    let reply = skep_worker::join::join(&parsed, seeds, join, transport_config(), timing)
        .await
        .with_context(|| format!("worker {i}: join"))?;
    let tls = NodeTls { cert_pem: reply.cert_pem.clone(), key_pem: key.to_pem(), ca_pem: reply.ca_pem.clone() };
    let endpoint = Endpoint::bind(addr, skep_pki::tls::server_config(&tls)?, skep_pki::tls::client_config(&tls)?, transport_config())
        .with_context(|| format!("binding {addr}"))?;
    let (stop, stop_rx) = watch::channel(false);
    {
        let ep = endpoint.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            ep.serve(Arc::new(NotManager), async move {
                let _ = rx.wait_for(|s| *s).await;
            })
            .await;
        });
    }
    let (ev_tx, mut ev_rx) = mpsc::channel(64);
    let leader = LeaderCaller::new(endpoint.clone(), skep_pki::NODE_SAN, reply.managers.iter().filter_map(|p| p.addr.parse().ok()).collect());
    let cfg = AgentConfig {
        addr: addr.to_string(),
        description: watch::channel(description(i)).1,
        managers: reply.managers.clone(),
        period: Duration::from_millis(reply.heartbeat_ms.clamp(100, 60_000)),
        manager_ready: None,
    };
    tokio::spawn(agent::run(leader.clone(), cfg, ev_tx, stop_rx.clone()));
    {
        // the node supervisor's part that matters here: notice a removal (the agent keeps the manager list current)
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            loop {
                let ev = tokio::select! { ev = ev_rx.recv() => ev, _ = stop.changed() => return };
                match ev {
                    Some(AgentEvent::Removed) => {
                        tracing::warn!("simulated worker {i} was removed");
                        return;
                    }
                    Some(_) => {}
                    None => return,
                }
            }
        });
    }
    let engine = FakeEngine::default();
    let tm = skep_worker::tasks::TaskManagerConfig { dir, leader, net: None, watch: Default::default() };
    tokio::spawn(skep_worker::tasks::run(engine.clone(), tm, stop_rx));
    Ok(SimWorker { node_id: reply.node_id, endpoint, stop, engine })
}

fn worker_addr(i: usize, base_port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 1, 1 + (i / 100) as u8], base_port + (i % 100) as u16))
}

/// Milestones of one convergence: when the managers' RunningTasks and the engines' count first reached fractions.
struct Progress {
    t0: Instant,
    target: usize,
    marks: Vec<(f64, Option<Duration>, Option<Duration>)>,
}

impl Progress {
    fn new(target: usize) -> Progress {
        Progress { t0: Instant::now(), target, marks: [0.01, 0.25, 0.5, 0.75, 0.9, 1.0].iter().map(|f| (*f, None, None)).collect() }
    }
    fn observe(&mut self, manager: usize, engines: usize) {
        let e = self.t0.elapsed();
        for m in self.marks.iter_mut() {
            let need = ((self.target as f64) * m.0).ceil() as usize;
            if m.1.is_none() && manager >= need {
                m.1 = Some(e);
            }
            if m.2.is_none() && engines >= need {
                m.2 = Some(e);
            }
        }
    }
    fn table(&self) -> String {
        let f = |d: Option<Duration>| d.map(secs).unwrap_or_else(|| "—".into());
        let mut s = String::from("| fraction running | managers' RunningTasks (s) | engines started (s) |\n|---|---|---|\n");
        for (p, m, e) in &self.marks {
            let _ = writeln!(s, "| {:.0}% | {} | {} |", p * 100.0, f(*m), f(*e));
        }
        s
    }
}

/// Runs the benchmark; returns the report, and the error that cut it short (the report then says how far it got).
pub async fn run(a: SimArgs) -> anyhow::Result<(String, Option<anyhow::Error>)> {
    anyhow::ensure!(a.workers >= 1 && a.workers <= 25_000, "--workers must be 1..=25000");
    anyhow::ensure!(a.kill < a.workers, "--kill must be below --workers");
    anyhow::ensure!((0..=19).contains(&a.nice), "--nice must be 0..=19");
    crate::procs::renice_self(a.nice);
    let bound = Duration::from_secs(a.timeout);
    let disk = Scratch::new("/tmp", "sim", a.keep)?;
    let shm = Scratch::new("/dev/shm", "sim-workers", a.keep)?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## sim: 3 managers (drained), {} simulated workers (nice {}), {} replicas{}\n",
        a.workers,
        a.nice,
        a.replicas,
        if a.dispatcher_heartbeat.is_empty() { String::new() } else { format!(", dispatcher heartbeat {}", a.dispatcher_heartbeat) }
    );

    // ---------------------------------------------------------------- managers
    let t = Instant::now();
    let mut extra: Vec<&str> = vec!["--availability", "drain"];
    if !a.dispatcher_heartbeat.is_empty() {
        extra.extend(["--dispatcher-heartbeat", &a.dispatcher_heartbeat]);
    }
    let mut cluster = Cluster::start(&a.skep, &disk, "m", a.port, "process", &[NodeRole::Manager; 3], &extra).await?;
    cluster.wait_ready(0, 3, Duration::from_millis(200), Duration::from_secs(30)).await?;
    eprintln!("managers up in {:.1}s", t.elapsed().as_secs_f64());
    let result = sim_body(&a, &mut cluster, &shm, bound, &mut out).await;
    let problems = cluster.problems();
    cluster.stop_all().await;
    let _ = writeln!(out, "\n### manager log warnings/errors (RUST_LOG=warn)\n");
    out.push_str(if problems.is_empty() { "none\n" } else { &problems });
    if let Err(e) = &result {
        let _ = writeln!(out, "\n**FAILED**: {e:#}");
    }
    Ok((out, result.err()))
}

async fn sim_body(a: &SimArgs, cluster: &mut Cluster, shm: &Scratch, bound: Duration, out: &mut String) -> anyhow::Result<()> {
    let mgr_pids: Vec<(String, u32)> = cluster.daemons.iter().map(|d| (d.name.clone(), d.pid)).collect();
    let mut all_pids = mgr_pids.clone();
    all_pids.push(("simulator (all workers)".into(), std::process::id()));
    let seeds: Vec<SocketAddr> = cluster.daemons.iter().map(|d| d.addr.parse().expect("addr")).collect();
    let token = cluster.tokens.0.clone();
    let _ = writeln!(out, "| phase | time (s) | goal |\n|---|---|---|");
    let mut usages = String::new();

    // ---------------------------------------------------------------- joins
    let mut meter = Meter::start(all_pids.clone());
    let t0 = Instant::now();
    let deadline = t0 + bound;
    let sem = Arc::new(Semaphore::new(a.join_concurrency.max(1)));
    let mut joins = Vec::new();
    for i in 0..a.workers {
        let sem = sem.clone();
        let token = token.clone();
        let seeds = seeds.clone();
        let dir = shm.path.join(format!("w{i:04}"));
        let addr = worker_addr(i, a.worker_port);
        joins.push(tokio::spawn(async move {
            let _p = sem.acquire_owned().await;
            join_worker(i, addr, &token, &seeds, dir, deadline).await
        }));
    }
    let mut workers = Vec::new();
    let mut failures = Vec::new();
    for (i, j) in joins.into_iter().enumerate() {
        match j.await {
            Ok(Ok(w)) => workers.push(w),
            Ok(Err(e)) => failures.push(format!("{e:#}")),
            Err(e) => failures.push(format!("worker {i}: {e}")),
        }
    }
    let t_joined = t0.elapsed();
    let stop_workers = |ws: &[SimWorker]| ws.iter().for_each(|w| w.shutdown());
    if !failures.is_empty() {
        stop_workers(&workers);
        anyhow::bail!("{} of {} joins failed; first: {}", failures.len(), a.workers, failures[0]);
    }
    eprintln!("{} join RPCs done in {:.1}s", a.workers, t_joined.as_secs_f64());
    let _ = writeln!(out, "| {} workers: Join RPCs done ({} at a time) | {} | |", a.workers, a.join_concurrency, secs(t_joined));
    let r = cluster.wait_ready(0, a.workers + 3, Duration::from_millis(250), bound.saturating_sub(t0.elapsed())).await;
    if let Err(e) = r {
        stop_workers(&workers);
        return Err(e);
    }
    let t_ready = t0.elapsed();
    let _ = writeln!(out, "| {} workers: all `ready` in `GET /nodes` | {} | |", a.workers, secs(t_ready));
    let _ = writeln!(usages, "Managers during the joins ({} s):\n\n{}", secs(t_ready), meter.report());
    eprintln!("all {} workers ready in {:.1}s", a.workers, t_ready.as_secs_f64());

    let body = async {
        // ------------------------------------------------------------ idle: heartbeats only
        let mut idle = Meter::start(all_pids.clone());
        tokio::time::sleep(Duration::from_secs(5)).await;
        let _ = writeln!(usages, "Idle, {} workers heartbeating (5 s):\n\n{}", a.workers, idle.report());

        // ------------------------------------------------------------ create → all running
        let spec = serde_json::json!({
            "Name": "sim",
            "TaskTemplate": {"ContainerSpec": {"Image": "skep-bench-fake:latest", "Command": ["sleep", "3600"]}},
            "Mode": {"Replicated": {"Replicas": a.replicas}}
        });
        let poll_sock = cluster.sock(a.poll_manager.clamp(1, 3) - 1).to_path_buf();
        let mut meter = Meter::start(all_pids.clone());
        let mut prog = Progress::new(a.replicas);
        let (st, body) = http::request(cluster.sock(0), "POST", "/services/create", Some(&spec), Duration::from_secs(30)).await?;
        let t_post = prog.t0.elapsed();
        anyhow::ensure!(st == 201 || st == 200, "POST /services/create: {st} {}", String::from_utf8_lossy(&body));
        let _ = writeln!(out, "| `POST /services/create` answered | {} | |", secs(t_post));
        let converged = poll_until(&poll_sock, "sim", a.replicas, &workers, &mut prog, &mut meter, bound).await;
        let t_conv = prog.t0.elapsed();
        let _ = writeln!(usages, "Create → converged or given up ({} s):\n\n{}", secs(t_conv), meter.report());
        let poll_errs = match converged {
            Ok(n) => n,
            Err(e) => {
                let _ = writeln!(out, "| create → RunningTasks = {} | **not reached** | ≤ 5 s: missed |\n\n{}", a.replicas, prog.table());
                return Err(e);
            }
        };
        eprintln!("create → {} running in {:.2}s", a.replicas, t_conv.as_secs_f64());
        let per_worker: Vec<usize> = workers.iter().map(|w| w.engine.running()).collect();
        let min = per_worker.iter().min().copied().unwrap_or(0);
        let max = per_worker.iter().max().copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "| create → RunningTasks = {} (`GET /services?status=true` on m{} every 100 ms) | **{}** | ≤ 5 s: {} |",
            a.replicas,
            a.poll_manager,
            secs(t_conv),
            if t_conv <= Duration::from_secs(5) { "met" } else { "missed" }
        );
        let mut hist = std::collections::BTreeMap::new();
        for n in &per_worker {
            *hist.entry(*n).or_insert(0usize) += 1;
        }
        let hist: Vec<String> = hist.iter().map(|(tasks, ws)| format!("{ws}×{tasks}")).collect();
        let started: usize = workers.iter().map(|w| w.engine.started()).sum();
        let _ = writeln!(
            out,
            "\nTasks started by the engines in total: {started} (more than {} means tasks were replaced meanwhile).",
            a.replicas
        );
        let _ = writeln!(
            out,
            "\nSpread: {min}–{max} tasks per worker (workers×tasks: {}; even would be {}). Failed polls during convergence: {poll_errs}.\n",
            hist.join(", "),
            a.replicas as f64 / a.workers as f64
        );
        let _ = writeln!(out, "{}", prog.table());

        // ------------------------------------------------------------ rolling update
        if a.update_parallelism > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let mut meter = Meter::start(all_pids.clone());
            let r = rolling_update(cluster, &poll_sock, a, &workers, &mut meter, bound).await;
            let usage = meter.report();
            let _ = writeln!(usages, "Rolling update ({}):\n\n{}", if r.is_ok() { "until completed" } else { "until given up" }, usage);
            out.push_str(&r?);
        }

        // ------------------------------------------------------------ lose `kill` workers
        if a.kill > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            let victims: Vec<usize> = (a.workers - a.kill..a.workers).collect();
            let lost: usize = victims.iter().map(|&v| workers[v].engine.running()).sum();
            let mut meter = Meter::start(all_pids.clone());
            for &v in &victims {
                workers[v].shutdown();
            }
            let rec = recover(&poll_sock, "sim", a.replicas, &workers, &victims, &mut meter, bound).await;
            let usage = meter.report();
            let rec = match rec {
                Ok(r) => r,
                Err(e) => {
                    let _ = writeln!(usages, "Worker loss, until given up:\n\n{}", usage);
                    return Err(e);
                }
            };
            let victim_ids: std::collections::BTreeSet<&str> = victims.iter().map(|&v| workers[v].node_id.as_str()).collect();
            let down = cluster
                .nodes(0)
                .await
                .map(|ns| ns.iter().filter(|n| victim_ids.contains(n.id.as_str()) && n.status.state == NodeState::Down).count())
                .unwrap_or(0);
            let _ = writeln!(
                out,
                "### worker loss: stop {} workers (agents and endpoints; {} tasks) → {} running again\n\n\
                 | step | time after the stop (s) |\n|---|---|\n\
                 | managers' RunningTasks first below {} (dead nodes noticed, tasks shut down) | {} |\n\
                 | survivors' engines run {} tasks | {} |\n\
                 | managers' RunningTasks = {} again | **{}** |\n\n\
                 Node detection is 3 missed heartbeats by design. {down} of the {} stopped nodes are \
                 `down` in `GET /nodes` afterwards.\n",
                a.kill,
                lost,
                a.replicas,
                a.replicas,
                rec.0.map(secs).unwrap_or_else(|| "not seen".into()),
                a.replicas,
                secs(rec.1),
                a.replicas,
                secs(rec.2),
                a.kill
            );
            let _ = writeln!(usages, "Worker loss → recovered ({} s):\n\n{}", secs(rec.2), usage);
            eprintln!("lost {} workers → {} running again in {:.2}s", a.kill, a.replicas, rec.2.as_secs_f64());
        }
        anyhow::Ok(())
    }
    .await;
    stop_workers(&workers);
    let _ = writeln!(out, "\n### CPU and memory (CPU % is of one core; the machine has 2)\n\n{usages}");
    // let the task managers see the stop before the managers go away
    tokio::time::sleep(Duration::from_millis(200)).await;
    body
}

/// `POST /services/sim/update` with `ROUND=1` added to the environment and `UpdateConfig` {parallelism, no delay},
/// then polls every 100 ms (bounded): the engines' tasks of the new spec and of the old, the service's
/// `UpdateStatus`. Done when every replica runs from the new spec, none from the old, and the update is `completed`.
/// Returns the report section.
async fn rolling_update(cluster: &Cluster, poll: &Path, a: &SimArgs, workers: &[SimWorker], meter: &mut Meter, bound: Duration) -> anyhow::Result<String> {
    const VAR: &str = "ROUND=1";
    let started0: usize = workers.iter().map(|w| w.engine.started()).sum();
    let v = http::get_json(cluster.sock(0), "/services/sim", Duration::from_secs(10)).await?;
    let version = v.pointer("/Version/Index").and_then(|x| x.as_u64()).context("no Version.Index")?;
    let mut spec = v.get("Spec").cloned().context("no Spec")?;
    spec["TaskTemplate"]["ContainerSpec"]["Env"] = serde_json::json!([VAR]);
    spec["UpdateConfig"] = serde_json::json!({"Parallelism": a.update_parallelism, "Delay": 0});
    let t0 = Instant::now();
    let (st, body) = http::request(cluster.sock(0), "POST", &format!("/services/sim/update?version={version}"), Some(&spec), Duration::from_secs(30)).await?;
    anyhow::ensure!(st == 200, "POST /services/sim/update: {st} {}", String::from_utf8_lossy(&body));
    let t_post = t0.elapsed();
    let n = a.replicas;
    let mut marks: Vec<(f64, Option<Duration>)> = [0.01, 0.25, 0.5, 0.75, 0.9, 1.0].iter().map(|f| (*f, None)).collect();
    let (mut all_new, mut completed, mut state) = (None, None, String::new());
    loop {
        let (new, old) = workers.iter().map(|w| w.engine.running_with_env(VAR)).fold((0, 0), |s, x| (s.0 + x.0, s.1 + x.1));
        let now = t0.elapsed();
        for m in marks.iter_mut().filter(|m| m.1.is_none()) {
            if new >= ((n as f64) * m.0).ceil() as usize {
                m.1 = Some(now);
            }
        }
        if all_new.is_none() && new == n && old == 0 {
            all_new = Some(now);
        }
        if let Ok(v) = http::get_json(poll, "/services/sim", Duration::from_secs(5)).await {
            state = v.pointer("/UpdateStatus/State").and_then(|s| s.as_str()).unwrap_or("").to_string();
        }
        if completed.is_none() && state == "completed" {
            completed = Some(t0.elapsed());
        }
        meter.sample();
        if all_new.is_some() && completed.is_some() {
            break;
        }
        if now >= bound {
            let reached: Vec<String> = marks.iter().filter_map(|(f, t)| t.map(|t| format!("{:.0} % at {} s", f * 100.0, secs(t)))).collect();
            let down = cluster.nodes(0).await.map(|ns| ns.iter().filter(|n| n.status.state == NodeState::Down).count());
            anyhow::bail!(
                "update not done after {bound:?}: engines run {new} new and {old} old tasks, UpdateStatus `{state}`; new-spec fractions reached: [{}]; nodes down now: {down:?}",
                reached.join(", ")
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (all_new, completed) = (all_new.unwrap_or_default(), completed.unwrap_or_default());
    let started = workers.iter().map(|w| w.engine.started()).sum::<usize>() - started0;
    let down = cluster.nodes(0).await.map(|ns| ns.iter().filter(|n| n.status.state == NodeState::Down).count()).unwrap_or(usize::MAX);
    eprintln!("update → {n} new running in {:.2}s, completed at {:.2}s; {started} tasks started; {down} nodes down", all_new.as_secs_f64(), completed.as_secs_f64());
    let mut s = format!(
        "### rolling update: `ROUND=1` added to the environment, `UpdateConfig` {{Parallelism: {}, Delay: 0}} → every replica on the new spec\n\n\
         | step | time after the `POST` (s) | goal |\n|---|---|---|\n\
         | `POST /services/sim/update` answered | {} | |\n\
         | engines run {n} tasks of the new spec and none of the old | **{}** | ≤ 10 s: {} |\n\
         | `UpdateStatus.State` = `completed` (m{}) | {} | |\n\n\
         Tasks started by the engines during the update: {started} (new task IDs; {n} means each replica was replaced once). \
         Nodes `down` in `GET /nodes` afterwards: **{down}** (none were stopped).\n\n\
         | fraction of replicas on the new spec (engines) | s |\n|---|---|\n",
        a.update_parallelism,
        secs(t_post),
        secs(all_new),
        if all_new <= Duration::from_secs(10) { "met" } else { "missed" },
        a.poll_manager,
        secs(completed),
    );
    for (f, t) in marks {
        let _ = writeln!(s, "| {:.0}% | {} |", f * 100.0, t.map(secs).unwrap_or_else(|| "—".into()));
    }
    s.push('\n');
    Ok(s)
}

/// Polls RunningTasks every 100 ms (bounded) until it equals `target` and the engines run `target` tasks between
/// them. Returns the number of failed polls.
#[allow(clippy::too_many_arguments)]
async fn poll_until(
    sock: &Path,
    name: &str,
    target: usize,
    workers: &[SimWorker],
    prog: &mut Progress,
    meter: &mut Meter,
    bound: Duration,
) -> anyhow::Result<usize> {
    let mut errors = 0;
    let mut last = String::new();
    let mut engines_done = false;
    loop {
        let engines: usize = workers.iter().map(|w| w.engine.running()).sum();
        let manager = match http::running_tasks(sock, name, Duration::from_secs(5)).await {
            Ok(Some((r, _))) => r.max(0) as usize,
            Ok(None) => 0,
            Err(e) => {
                errors += 1;
                last = format!("{e:#}");
                0
            }
        };
        if engines >= target {
            engines_done = true;
        }
        prog.observe(manager, engines);
        meter.sample();
        if engines_done && manager == target {
            return Ok(errors);
        }
        if prog.t0.elapsed() > bound {
            anyhow::bail!(
                "not converged after {bound:?}: managers report {manager}/{target} running, engines run {engines} ({} poll errors, last: {last})",
                errors
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// After stopping the `dead` workers: polls every 100 ms (bounded) until the survivors' engines run `target` tasks
/// and then the managers report RunningTasks = `target`. Returns (first time RunningTasks < target, engines done,
/// managers done).
async fn recover(
    sock: &Path,
    name: &str,
    target: usize,
    workers: &[SimWorker],
    dead: &[usize],
    meter: &mut Meter,
    bound: Duration,
) -> anyhow::Result<(Option<Duration>, Duration, Duration)> {
    let t0 = Instant::now();
    let mut dip = None;
    let mut engines_at = None;
    let mut last = String::new();
    loop {
        let engines: usize = workers.iter().enumerate().filter(|(i, _)| !dead.contains(i)).map(|(_, w)| w.engine.running()).sum();
        let manager = match http::running_tasks(sock, name, Duration::from_secs(5)).await {
            Ok(Some((r, _))) => Some(r.max(0) as usize),
            Ok(None) => Some(0),
            Err(e) => {
                last = format!("{e:#}");
                None
            }
        };
        let now = t0.elapsed();
        if dip.is_none() && manager.is_some_and(|m| m < target) {
            dip = Some(now);
        }
        if engines_at.is_none() && engines >= target {
            engines_at = Some(now);
        }
        meter.sample();
        if let (Some(e), Some(m)) = (engines_at, manager) {
            // RunningTasks counts the dead workers' tasks until the managers shut them down, so only an answer
            // after the survivors run everything counts
            if m == target && e <= now {
                return Ok((dip, e, now));
            }
        }
        anyhow::ensure!(
            now < bound,
            "not recovered after {bound:?}: managers report {manager:?}/{target}, survivors run {engines} (last error: {last})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
