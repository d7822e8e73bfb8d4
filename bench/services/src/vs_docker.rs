//! `vs-docker`: the same `docker service create` on this machine's Docker engine, once in Docker swarm mode (single
//! node) and once against a skep cluster (1 manager + 2 workers on loopback, `--engine docker`), timed the same way.

use crate::cluster::{secs, Cluster};
use skep_api::docker::NodeRole;
use crate::http;
use crate::procs::{pid_of, run, run_s, usage_table, Meter, Scratch, Usage};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct VsArgs {
    /// Replicas of the service
    #[arg(long, default_value_t = 50)]
    pub replicas: usize,
    /// Create → converged → remove rounds on each side
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// skep daemons' cluster port on 127.0.0.1-3
    #[arg(long, default_value_t = 26101)]
    pub port: u16,
    /// Skip the Docker swarm side
    #[arg(long)]
    pub skip_docker: bool,
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// What the benchmarks beside Docker swarm share: the binary, the image, the bound on waits, the scratch directory.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    /// The skep binary (release build)
    #[arg(long, default_value = "target/release/skep")]
    pub skep: PathBuf,
    /// Image (built from Debian's busybox-static if missing)
    #[arg(long, default_value = "skep-bench-busybox:latest")]
    pub image: String,
    /// Bound on each wait, seconds
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
    /// Keep the scratch directory (daemon logs)
    #[arg(long)]
    pub keep: bool,
}

pub(crate) const SERVICE: &str = "skb";

/// Set while the local engine is in a swarm that we created (so an interrupted run can still leave it).
static SWARM_OURS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
/// Node IDs of our skep daemons (their containers carry `com.skep.node.id`).
static SKEP_NODES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// After an interrupt: remove what an unfinished run left on the Docker engine.
pub async fn emergency_cleanup() {
    if SWARM_OURS.swap(false, std::sync::atomic::Ordering::SeqCst) {
        let _ = run_s(&["docker", "service", "rm", SERVICE], Duration::from_secs(30)).await;
        force_remove(&format!("com.docker.swarm.service.name={SERVICE}")).await;
        let _ = run_s(&["docker", "swarm", "leave", "--force"], Duration::from_secs(60)).await;
    }
    let nodes = SKEP_NODES.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for id in nodes {
        force_remove(&format!("com.skep.node.id={id}")).await;
    }
}
pub(crate) const DOCKER_SOCK: &str = "/var/run/docker.sock";

/// Remembers the cluster's nodes, whose containers an interrupted run must remove (`com.skep.node.id`); returns
/// their IDs for [`remove_node_containers`].
pub(crate) async fn register_skep_nodes(cluster: &Cluster) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..cluster.daemons.len() {
        if let Ok(id) = cluster.node_id(i).await {
            SKEP_NODES.lock().unwrap_or_else(|p| p.into_inner()).push(id.clone());
            ids.push(id);
        }
    }
    ids
}

/// Force-removes whatever containers these skep nodes left (a killed worker's, or after a failure).
pub(crate) async fn remove_node_containers(ids: &[String]) {
    for id in ids {
        force_remove(&format!("com.skep.node.id={id}")).await;
    }
}

/// A single-node Docker swarm this run created on the local engine (left by [`DockerSwarm::leave`]).
pub(crate) struct DockerSwarm {
    /// `docker_gwbridge` existed before `swarm init` (so it is not ours to remove).
    gw_before: bool,
}

impl DockerSwarm {
    /// `docker swarm init` on loopback, unless the engine is already in a swarm: then `Ok(Err(note))` saying why the
    /// Docker side is skipped (another session's swarm is not ours to change).
    pub(crate) async fn init() -> anyhow::Result<Result<DockerSwarm, String>> {
        let state = run_s(&["docker", "info", "--format", "{{.Swarm.LocalNodeState}}"], Duration::from_secs(30)).await?;
        if state != "inactive" {
            return Ok(Err(format!("Docker side skipped: the engine is already in swarm state `{state}` (not ours to change).")));
        }
        let gw_before = run_s(&["docker", "network", "inspect", "docker_gwbridge"], Duration::from_secs(30)).await.is_ok();
        eprintln!("docker swarm: init");
        // set first: an interrupt during init must still leave
        SWARM_OURS.store(true, std::sync::atomic::Ordering::SeqCst);
        let me = DockerSwarm { gw_before };
        if let Err(e) = run_s(&["docker", "swarm", "init", "--advertise-addr", "127.0.0.1", "--listen-addr", "127.0.0.1:2377"], Duration::from_secs(60)).await {
            let _ = me.leave().await;
            return Err(e.context("docker swarm init"));
        }
        Ok(Ok(me))
    }

    /// Removes the service `name` and its containers, then `docker swarm leave --force` (and the gateway bridge if
    /// the init made it).
    pub(crate) async fn leave_after(self, name: &str) -> anyhow::Result<()> {
        let _ = run_s(&["docker", "service", "rm", name], Duration::from_secs(60)).await;
        let label = format!("com.docker.swarm.service.name={name}");
        let _ = wait_gone(&label, Duration::from_secs(60)).await;
        force_remove(&label).await;
        self.leave().await
    }

    async fn leave(self) -> anyhow::Result<()> {
        let left = run_s(&["docker", "swarm", "leave", "--force"], Duration::from_secs(60)).await;
        if left.is_ok() {
            SWARM_OURS.store(false, std::sync::atomic::Ordering::SeqCst);
        }
        if !self.gw_before {
            let _ = run_s(&["docker", "network", "rm", "docker_gwbridge"], Duration::from_secs(30)).await;
        }
        eprintln!("docker swarm: left ({})", if left.is_ok() { "ok" } else { "FAILED" });
        left.map(|_| ())
    }
}

/// Builds the image if it is not there: `FROM scratch`, busybox-static as /bin/busybox and /bin/sh, applet links.
pub(crate) async fn ensure_image(image: &str) -> anyhow::Result<String> {
    if run_s(&["docker", "image", "inspect", "--format", "{{.Id}}", image], Duration::from_secs(30)).await.is_ok() {
        return Ok(format!("`{image}` was present"));
    }
    let bb = ["/bin/busybox", "/usr/bin/busybox"].into_iter().find(|p| Path::new(p).exists());
    let bb = match bb {
        Some(p) => p,
        None => {
            run_s(&["apt-get", "install", "-y", "busybox-static"], Duration::from_secs(300)).await?;
            "/bin/busybox"
        }
    };
    let file = run_s(&["file", "-L", bb], Duration::from_secs(10)).await.unwrap_or_default();
    anyhow::ensure!(file.is_empty() || file.contains("statically linked"), "{bb} is not static ({file}); apt-get install busybox-static");
    let dir = Scratch::new("/tmp", "image", false)?;
    std::fs::copy(bb, dir.path.join("busybox"))?;
    std::fs::write(
        dir.path.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nRUN [\"/bin/busybox\", \"--install\", \"-s\", \"/bin\"]\n",
    )?;
    run_s(&["docker", "build", "-q", "-t", image, &dir.path.display().to_string()], Duration::from_secs(300)).await?;
    Ok(format!("`{image}` built from {bb}"))
}

/// One create → converged measurement.
struct Round {
    /// `docker service create -d` returned.
    cli: Duration,
    /// RunningTasks = replicas.
    converged: Duration,
    /// `docker service rm` → no container of the service left on the engine.
    removed: Option<Duration>,
    usage: Vec<Usage>,
}

pub(crate) fn docker_argv(host: Option<&Path>, args: &[&str]) -> Vec<String> {
    let mut v = vec!["docker".to_string()];
    if let Some(h) = host {
        v.push("-H".into());
        v.push(format!("unix://{}", h.display()));
    }
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// `docker [-H host] service create -d ...`, then poll `GET /services?status=true` on `api` every 100 ms.
async fn create_and_converge(
    host: Option<&Path>,
    api: &Path,
    a: &VsArgs,
    pids: &[(String, u32)],
    created: &Arc<Mutex<Vec<String>>>,
) -> anyhow::Result<(String, Duration, Duration, Vec<Usage>)> {
    let n = a.replicas.to_string();
    let argv = docker_argv(
        host,
        &["service", "create", "-d", "--no-resolve-image", "--name", SERVICE, "--replicas", &n, "--stop-grace-period", "1s", &a.bench.image, "sleep", "3600"],
    );
    let mut meter = Meter::start(pids.to_vec());
    let t0 = Instant::now();
    let id = run(&argv, Duration::from_secs(60)).await?;
    let cli = t0.elapsed();
    let id = id.lines().last().unwrap_or("").trim().to_string();
    created.lock().unwrap_or_else(|p| p.into_inner()).push(id.clone());
    let mut last;
    loop {
        match http::running_tasks(api, SERVICE, Duration::from_secs(5)).await {
            Ok(Some((r, _))) if r as usize == a.replicas => break,
            Ok(x) => last = format!("{x:?}"),
            Err(e) => last = format!("{e:#}"),
        }
        meter.sample();
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(a.bench.timeout), "not converged after {}s: {last}", a.bench.timeout);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let conv = t0.elapsed();
    Ok((id, cli, conv, meter.finish()))
}

/// Containers on the engine carrying `label`.
async fn containers(label: &str) -> anyhow::Result<Vec<String>> {
    let out = run_s(&["docker", "ps", "-aq", "--filter", &format!("label={label}")], Duration::from_secs(30)).await?;
    Ok(out.lines().map(|l| l.trim().to_string()).filter(|l| !l.is_empty()).collect())
}

/// Waits until no container carries `label` (bounded); returns how long it took.
pub(crate) async fn wait_gone(label: &str, bound: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let left = containers(label).await?;
        if left.is_empty() {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(t0.elapsed() < bound, "{} containers with {label} still there after {bound:?}", left.len());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Force-removes every container carrying `label`.
pub(crate) async fn force_remove(label: &str) {
    if let Ok(ids) = containers(label).await {
        for chunk in ids.chunks(50) {
            let mut argv = vec!["docker".to_string(), "rm".into(), "-f".into()];
            argv.extend(chunk.iter().cloned());
            let _ = run(&argv, Duration::from_secs(120)).await;
        }
    }
}

pub(crate) fn engine_pids() -> Vec<(String, u32)> {
    ["dockerd", "containerd"].iter().filter_map(|n| pid_of(n).map(|p| (n.to_string(), p))).collect()
}

async fn rounds(
    host: Option<&Path>,
    api: &Path,
    label_key: &str,
    a: &VsArgs,
    pids: &[(String, u32)],
    created: &Arc<Mutex<Vec<String>>>,
    keep_last: bool,
) -> anyhow::Result<Vec<Round>> {
    let mut out = Vec::new();
    for r in 0..a.runs {
        let (id, cli, converged, usage) = create_and_converge(host, api, a, pids, created).await?;
        eprintln!("  round {}: cli {:.2}s, converged {:.2}s", r + 1, cli.as_secs_f64(), converged.as_secs_f64());
        let mut removed = None;
        if !(keep_last && r + 1 == a.runs) {
            let t0 = Instant::now();
            run(&docker_argv(host, &["service", "rm", SERVICE]), Duration::from_secs(60)).await?;
            wait_gone(&format!("{label_key}={id}"), Duration::from_secs(90)).await?;
            removed = Some(t0.elapsed());
            // let the engine settle between rounds
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        out.push(Round { cli, converged, removed, usage });
    }
    Ok(out)
}

fn rounds_table(name: &str, rs: &[Round]) -> String {
    let mut s = String::new();
    for (i, r) in rs.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {name} | {} | {} | **{}** | {} |",
            i + 1,
            secs(r.cli),
            secs(r.converged),
            r.removed.map(secs).unwrap_or_else(|| "(kept for the kill test)".into())
        );
    }
    s
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// Runs the comparison; returns the report, and the error that cut it short (the report then says how far it got).
pub async fn run_vs(a: VsArgs) -> anyhow::Result<(String, Option<anyhow::Error>)> {
    let mut out = String::new();
    let _ = writeln!(out, "## vs-docker: `docker service create --replicas {}` of `{}` on the local Docker engine\n", a.replicas, a.bench.image);
    let img = ensure_image(&a.bench.image).await?;
    let _ = writeln!(out, "Image: {img}. Command (both sides): `docker [-H unix://<skep.sock>] service create -d --no-resolve-image --name {SERVICE} --replicas {} --stop-grace-period 1s {} sleep 3600`, then `GET /services?status=true` every 100 ms until RunningTasks = {}.\n", a.replicas, a.bench.image, a.replicas);
    let created = Arc::new(Mutex::new(Vec::new()));

    // ------------------------------------------------------------------ Docker swarm mode
    let mut docker_rounds = Vec::new();
    let mut docker_note = String::new();
    if a.skip_docker {
        docker_note = "Docker side skipped (--skip-docker).".into();
    } else {
        match DockerSwarm::init().await? {
            Err(note) => docker_note = note,
            Ok(swarm) => {
                let r = rounds(None, Path::new(DOCKER_SOCK), "com.docker.swarm.service.id", &a, &engine_pids(), &created, false).await;
                // always: remove the service, wait for its containers, leave the swarm
                let left = swarm.leave_after(SERVICE).await;
                match r {
                    Ok(rs) => docker_rounds = rs,
                    Err(e) => docker_note = format!("Docker side failed: {e:#}"),
                }
                if let Err(e) = left {
                    let _ = writeln!(docker_note, " `docker swarm leave --force` failed: {e:#}");
                }
            }
        }
    }

    // ------------------------------------------------------------------ skep
    let scratch = Scratch::new("/tmp", "vs", a.bench.keep)?;
    eprintln!("skep: 1 manager + 2 workers, --engine docker");
    let mut cluster = Cluster::start(&a.bench.skep, &scratch, "d", a.port, "docker", &[NodeRole::Manager, NodeRole::Worker, NodeRole::Worker], &[]).await?;
    let node_ids = register_skep_nodes(&cluster).await;
    let skep_body = skep_side(&a, &mut cluster, &created).await;
    let problems = cluster.problems();
    // cleanup: service, daemons, then whatever containers our nodes left (the killed worker's)
    let _ = run(&docker_argv(Some(cluster.sock(0)), &["service", "rm", SERVICE]), Duration::from_secs(30)).await;
    let ids = created.lock().unwrap_or_else(|p| p.into_inner()).clone();
    for id in ids {
        let _ = wait_gone(&format!("com.skep.service.id={id}"), Duration::from_secs(20)).await;
    }
    cluster.stop_all().await;
    remove_node_containers(&node_ids).await;

    // ------------------------------------------------------------------ report
    let _ = writeln!(out, "| side | round | `service create -d` returned (s) | RunningTasks = {} (s) | `service rm` → containers gone (s) |\n|---|---|---|---|---|", a.replicas);
    out.push_str(&rounds_table("Docker 20.10 swarm mode (1 node)", &docker_rounds));
    let (skep_rounds, kill) = match skep_body {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(out, "\n{docker_note}\n\n**skep side FAILED**: {e:#}\n\n### skep daemon log warnings/errors\n\n{problems}");
            return Ok((out, Some(e)));
        }
    };
    out.push_str(&rounds_table("skep (1 manager + 2 workers)", &skep_rounds));
    if !docker_note.is_empty() {
        let _ = writeln!(out, "\n{docker_note}");
    }
    let dm = median(docker_rounds.iter().map(|r| r.converged.as_secs_f64()).collect());
    let sm = median(skep_rounds.iter().map(|r| r.converged.as_secs_f64()).collect());
    if !docker_rounds.is_empty() {
        let ratio = sm / dm;
        let _ = writeln!(
            out,
            "\nMedian create → converged: Docker {dm:.2} s, skep {sm:.2} s; **skep/Docker = {ratio:.2}** (goal ≤ 0.5: {}).",
            if ratio <= 0.5 { "met" } else { "missed" }
        );
    }
    if let Some(r) = docker_rounds.last() {
        let _ = writeln!(out, "\nDocker, last round (create → converged):\n\n{}", usage_table(&r.usage));
    }
    if let Some(r) = skep_rounds.last() {
        let _ = writeln!(out, "skep, last round (create → converged):\n\n{}", usage_table(&r.usage));
    }
    out.push_str(&kill);
    let _ = writeln!(out, "\n### skep daemon log warnings/errors (RUST_LOG=warn)\n");
    out.push_str(if problems.is_empty() { "none\n" } else { &problems });
    Ok((out, None))
}

async fn skep_side(a: &VsArgs, cluster: &mut Cluster, created: &Arc<Mutex<Vec<String>>>) -> anyhow::Result<(Vec<Round>, String)> {
    cluster.wait_ready(0, 3, Duration::from_millis(200), Duration::from_secs(30)).await?;
    let mut pids: Vec<(String, u32)> = cluster.daemons.iter().map(|d| (format!("skep {}", d.name), d.pid)).collect();
    pids.extend(engine_pids());
    let sock = cluster.sock(0).to_path_buf();
    let rs = rounds(Some(&sock), &sock, "com.skep.service.id", a, &pids, created, true).await?;

    // worker death: SIGKILL the daemon with the most tasks among the workers
    let victim_idx = 2;
    let victim = cluster.node_id(victim_idx).await?;
    let filters = http::enc(&format!("{{\"service\":[\"{SERVICE}\"],\"desired-state\":[\"running\"]}}"));
    let path = format!("/tasks?filters={filters}");
    let count = |v: &serde_json::Value, victim: &str| -> (usize, usize) {
        let list = v.as_array().cloned().unwrap_or_default();
        let running = |t: &serde_json::Value| t.pointer("/Status/State").and_then(|s| s.as_str()) == Some("running");
        let on_victim = list.iter().filter(|t| running(t) && t.get("NodeID").and_then(|n| n.as_str()) == Some(victim)).count();
        let elsewhere = list.iter().filter(|t| running(t) && t.get("NodeID").and_then(|n| n.as_str()) != Some(victim)).count();
        (on_victim, elsewhere)
    };
    let before = http::get_json(&sock, &path, Duration::from_secs(10)).await?;
    let (moved, _) = count(&before, &victim);
    let mut meter = Meter::start(pids.iter().filter(|(n, _)| !n.ends_with(&cluster.daemons[victim_idx].name)).cloned().collect());
    let t0 = Instant::now();
    cluster.daemons[victim_idx].kill().await?;
    let mut last;
    let t_rec = loop {
        match http::get_json(&sock, &path, Duration::from_secs(5)).await {
            Ok(v) => {
                let (_, elsewhere) = count(&v, &victim);
                if elsewhere == a.replicas {
                    break t0.elapsed();
                }
                last = format!("{elsewhere} running elsewhere");
            }
            Err(e) => last = format!("{e:#}"),
        }
        meter.sample();
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(a.bench.timeout), "not recovered after {}s: {last}", a.bench.timeout);
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let usage = meter.finish();
    eprintln!("  worker killed: {moved} tasks running elsewhere after {:.2}s", t_rec.as_secs_f64());
    let mut kill = String::new();
    let _ = writeln!(
        kill,
        "### worker death (skep only)\n\nSIGKILL of worker daemon d3, which ran {moved} of the {} tasks → all {} running on the other nodes \
         (`GET /tasks`, desired running, state running, not on d3; polled every 100 ms): **{} s** \
         (of which ≥ 3 s is dead-node detection: 3 missed 1 s heartbeats).\n\n\
         Docker: not measured — a single-node swarm cannot lose a worker, and a second Docker node needs a second \
         engine (dind or another host), which this machine does not provide.\n\n{}",
        a.replicas,
        a.replicas,
        secs(t_rec),
        usage_table(&usage)
    );
    Ok((rs, kill))
}
