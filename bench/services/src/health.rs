//! `health-cost`: what a healthcheck costs per check. The same service of N replicas (`--health-cmd true
//! --health-interval <i>`) runs for a fixed window in Docker swarm mode (Docker's own checks), on skep's `docker`
//! engine (Docker runs the check, skep follows `State.Health`) and on skep's `process` engine (skep runs the check in
//! the task's namespaces); each beside the same service without a healthcheck. The CPU of the daemons and engine
//! processes (and of everything they started: runc, shims, check processes, reaped into their `cutime`) over the
//! window, minus the same without a check, divided by the checks made (N × window / interval), is the cost per check.

use crate::cluster::Cluster;
use crate::http;
use crate::procs::{clk_tck, machine_busy_secs, run, run_s, Scratch};
use crate::vs_docker::{
    docker_argv, ensure_image, register_skep_nodes, remove_node_containers, wait_gone, BenchArgs, DockerSwarm, DOCKER_SOCK, SERVICE,
};
use anyhow::Context as _;
use skep_api::docker::NodeRole;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct HealthArgs {
    /// Replicas of the service
    #[arg(long, default_value_t = 20)]
    pub replicas: usize,
    /// `--health-interval`, seconds
    #[arg(long, default_value_t = 1)]
    pub interval: u64,
    /// The measured window, seconds (after every replica runs, and 3 s to settle)
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// skep daemons' cluster port on 127.0.0.1-3 (the `process` engine's cluster uses port + 1)
    #[arg(long, default_value_t = 26401)]
    pub port: u16,
    /// The host program the `process` engine runs (`<program> sleep 3600`)
    #[arg(long, default_value = "/bin/busybox")]
    pub program: String,
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// One process as /proc shows it.
struct Proc {
    ppid: u32,
    comm: String,
    /// The command line, read only for `skep*` and shim processes (to tell ours from other sessions' on the machine).
    cmdline: String,
    /// utime + stime + cutime + cstime, seconds.
    cpu: f64,
}

/// Every process, keyed by (PID, start time) so that a reused PID is another process.
fn snapshot() -> HashMap<(u32, u64), Proc> {
    let mut m = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return m };
    let tck = clk_tck();
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let (Some(open), Some(close)) = (s.find('('), s.rfind(')')) else { continue };
        let comm = s[open + 1..close].to_string();
        let f: Vec<&str> = s[close + 2..].split_whitespace().collect();
        // after "pid (comm) ": ppid 1, utime 11, stime 12, cutime 13, cstime 14, starttime 19
        let num = |i: usize| f.get(i).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        let cpu = (num(11) + num(12) + num(13) + num(14)) as f64 / tck;
        let cmdline = if comm.starts_with("skep") || comm.starts_with("containerd-shim") {
            std::fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ")).unwrap_or_default()
        } else {
            String::new()
        };
        m.insert((pid, num(19)), Proc { ppid: num(1) as u32, comm, cmdline, cpu });
    }
    m
}

/// The processes that `is_root` picks, and all their descendants.
fn tree(snap: &HashMap<(u32, u64), Proc>, is_root: &dyn Fn(u32, &Proc) -> bool) -> Vec<(u32, u64)> {
    let by_pid: HashMap<u32, &Proc> = snap.iter().map(|((p, _), x)| (*p, x)).collect();
    let mut out = Vec::new();
    for (key, p) in snap {
        let mut cur: (u32, &Proc) = (key.0, p);
        // walk up to PID 1: in the tree if any ancestor (or itself) is a root
        for _ in 0..64 {
            if is_root(cur.0, cur.1) {
                out.push(*key);
                break;
            }
            match by_pid.get(&cur.1.ppid) {
                Some(parent) if cur.1.ppid > 1 => cur = (cur.1.ppid, *parent),
                _ => break,
            }
        }
    }
    out
}

/// CPU seconds of a process tree over a window.
struct TreeMeter {
    start: HashMap<(u32, u64), Proc>,
    machine0: f64,
    t0: Instant,
}

impl TreeMeter {
    fn start() -> TreeMeter {
        TreeMeter { start: snapshot(), machine0: machine_busy_secs().unwrap_or(0.0), t0: Instant::now() }
    }

    /// (CPU seconds of the tree's processes over the window, processes counted, machine busy seconds, wall seconds).
    fn finish(&self, is_root: &dyn Fn(u32, &Proc) -> bool) -> (f64, usize, f64, f64) {
        let end = snapshot();
        let keys = tree(&end, is_root);
        let cpu: f64 = keys.iter().map(|k| end[k].cpu - self.start.get(k).map(|p| p.cpu).unwrap_or(0.0)).sum();
        (cpu, keys.len(), machine_busy_secs().unwrap_or(0.0) - self.machine0, self.t0.elapsed().as_secs_f64())
    }
}

/// One measured window of one configuration.
struct Window {
    label: String,
    cpu: f64,
    procs: usize,
    machine: f64,
    wall: f64,
}

/// The engine's daemons, and `pids` (skep's daemons, if any). The shims of the service's containers are added by
/// [`window`]: other sessions' containers on the same engine have theirs.
fn docker_roots(pids: &[u32]) -> impl Fn(u32, &Proc) -> bool + '_ {
    move |pid, p| pids.contains(&pid) || p.comm == "dockerd" || p.comm == "containerd"
}

/// Create the service (with or without the check), wait until every replica runs, settle, measure, remove it.
#[allow(clippy::too_many_arguments)]
async fn window(
    host: Option<&Path>,
    api: &Path,
    label_key: &str,
    a: &HealthArgs,
    image_and_args: &[&str],
    check: bool,
    label: &str,
    is_root: &dyn Fn(u32, &Proc) -> bool,
) -> anyhow::Result<Window> {
    let timeout = Duration::from_secs(a.bench.timeout);
    let n = a.replicas.to_string();
    let interval = format!("{}s", a.interval);
    let mut create = vec!["service", "create", "-d", "--no-resolve-image", "--name", SERVICE, "--replicas", &n, "--stop-grace-period", "1s"];
    if check {
        create.extend(["--health-cmd", "true", "--health-interval", &interval, "--health-retries", "3"]);
    }
    create.extend(image_and_args);
    let id = run(&docker_argv(host, &create), Duration::from_secs(60)).await?.lines().last().unwrap_or("").trim().to_string();
    let t0 = Instant::now();
    loop {
        match http::running_tasks(api, SERVICE, Duration::from_secs(5)).await {
            Ok(Some((r, _))) if r as usize == a.replicas => break,
            _ => {}
        }
        anyhow::ensure!(t0.elapsed() < timeout, "{label}: {} replicas not running after {timeout:?}", a.replicas);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    // the service's containers, whose shims (`-id <container ID>`) run the checks Docker makes
    let containers: Vec<String> = if label_key.is_empty() {
        Vec::new()
    } else {
        let ids = run_s(&["docker", "ps", "-q", "--no-trunc", "--filter", &format!("label={label_key}={id}")], Duration::from_secs(30)).await?;
        ids.lines().map(|l| format!("-id {}", l.trim())).filter(|l| l.len() > 4).collect()
    };
    let ours =
        |pid: u32, p: &Proc| is_root(pid, p) || (p.comm.starts_with("containerd-shim") && containers.iter().any(|c| p.cmdline.contains(c.as_str())));
    let m = TreeMeter::start();
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let (cpu, procs, machine, wall) = m.finish(&ours);
    // every replica must still be running (a failing check would have replaced tasks)
    let still = http::running_tasks(api, SERVICE, Duration::from_secs(5)).await?.map(|x| x.0).unwrap_or(0);
    anyhow::ensure!(still as usize == a.replicas, "{label}: {still} of {} replicas running after the window", a.replicas);
    eprintln!("  {label}: {cpu:.2} CPU-s over {wall:.1} s ({procs} processes)");
    run(&docker_argv(host, &["service", "rm", SERVICE]), Duration::from_secs(60)).await?;
    if !label_key.is_empty() {
        wait_gone(&format!("{label_key}={id}"), timeout).await?;
    }
    // the removals' own work is not in the next window
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(Window { label: label.to_string(), cpu, procs, machine, wall })
}

/// A skep cluster (1 manager + 2 workers) on `engine`: the baseline window, then the window with the check.
async fn skep_side(a: &HealthArgs, scratch: &Scratch, engine: &str, port: u16) -> anyhow::Result<Vec<Window>> {
    let prefix = &engine[..1];
    let mut cluster =
        Cluster::start(&a.bench.skep, scratch, prefix, port, engine, &[NodeRole::Manager, NodeRole::Worker, NodeRole::Worker], &[]).await?;
    let node_ids = register_skep_nodes(&cluster).await;
    let body = async {
        cluster.wait_ready(0, 3, Duration::from_millis(200), Duration::from_secs(30)).await?;
        let sock = cluster.sock(0).to_path_buf();
        let daemons: Vec<u32> = cluster.daemons.iter().map(|d| d.pid).collect();
        let mut out = Vec::new();
        if engine == "docker" {
            let is_root = docker_roots(&daemons);
            for check in [false, true] {
                let label = format!("skep, docker engine, {}", if check { "check" } else { "no check" });
                out.push(window(Some(&sock), &sock, "com.skep.service.id", a, &[&a.bench.image, "sleep", "3600"], check, &label, &is_root).await?);
            }
        } else {
            // the daemons and their descendants (task inits, supervisors, programs, checks), and any task init or
            // supervisor of theirs that was reparented (they outlive a daemon by design); not other clusters' skeps
            let root = scratch.path.display().to_string();
            let is_root = |pid: u32, p: &Proc| daemons.contains(&pid) || (p.comm.starts_with("skep") && p.cmdline.contains(&root));
            for check in [false, true] {
                let label = format!("skep, process engine, {}", if check { "check" } else { "no check" });
                out.push(window(Some(&sock), &sock, "", a, &[&a.program, "sleep", "3600"], check, &label, &is_root).await?);
            }
        }
        anyhow::Ok(out)
    }
    .await;
    let _ = run(&docker_argv(Some(cluster.sock(0)), &["service", "rm", SERVICE]), Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.stop_all().await;
    remove_node_containers(&node_ids).await;
    body.with_context(|| format!("skep, {engine} engine"))
}

/// Runs the comparison; returns the report, and the error that cut it short.
pub async fn run_health(a: HealthArgs) -> anyhow::Result<(String, Option<anyhow::Error>)> {
    anyhow::ensure!(a.replicas >= 1 && a.interval >= 1 && a.seconds >= 5, "--replicas ≥ 1, --interval ≥ 1, --seconds ≥ 5");
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## health-cost: {} replicas with `--health-cmd true --health-interval {}s`, {} s windows\n",
        a.replicas, a.interval, a.seconds
    );
    let img = ensure_image(&a.bench.image).await?;
    let scratch = Scratch::new("/tmp", "health", a.bench.keep)?;
    let _ = writeln!(
        out,
        "Image: {img}. Each configuration: `docker [-H unix://<skep.sock>] service create -d --no-resolve-image --name {SERVICE} --replicas {} --stop-grace-period 1s \
         [--health-cmd true --health-interval {}s --health-retries 3] <image> sleep 3600` (the `process` engine: `{} sleep 3600`), \
         wait until {} run, 3 s to settle, then a {} s window: CPU (utime+stime+cutime+cstime from /proc) of the daemons and engine processes and all \
         their descendants (Docker: dockerd, containerd, the shims of the service's containers; skep `docker` engine: the skep daemons and the same; skep `process` engine: the skep daemons, \
         and any task init or supervisor under their data roots). Cost per check = (with check − without) / ({} × window / interval) checks.\n",
        a.replicas, a.interval, a.program, a.replicas, a.seconds, a.replicas
    );
    let mut windows: Vec<Window> = Vec::new();
    let mut notes = Vec::new();

    match DockerSwarm::init().await? {
        Err(n) => notes.push(n),
        Ok(swarm) => {
            let is_root = docker_roots(&[]);
            let r = async {
                for check in [false, true] {
                    let label = format!("Docker swarm mode, {}", if check { "check" } else { "no check" });
                    let w = window(
                        None,
                        Path::new(DOCKER_SOCK),
                        "com.docker.swarm.service.id",
                        &a,
                        &[&a.bench.image, "sleep", "3600"],
                        check,
                        &label,
                        &is_root,
                    )
                    .await?;
                    windows.push(w);
                }
                anyhow::Ok(())
            }
            .await;
            let left = swarm.leave_after(SERVICE).await;
            if let Err(e) = r {
                notes.push(format!("Docker side failed: {e:#}"));
            }
            if let Err(e) = left {
                notes.push(format!("`docker swarm leave --force` failed: {e:#}"));
            }
        }
    }
    eprintln!("skep: 1 manager + 2 workers, --engine docker");
    let mut err = None;
    match skep_side(&a, &scratch, "docker", a.port).await {
        Ok(w) => windows.extend(w),
        Err(e) => err = Some(e),
    }
    eprintln!("skep: 1 manager + 2 workers, --engine process");
    if err.is_none() {
        match skep_side(&a, &scratch, "process", a.port + 1).await {
            Ok(w) => windows.extend(w),
            Err(e) => err = Some(e),
        }
    }

    let _ = writeln!(
        out,
        "| configuration | CPU s in the window | processes counted | machine busy s (all cores, others included) | window s |\n|---|---|---|---|---|"
    );
    for w in &windows {
        let _ = writeln!(out, "| {} | {:.2} | {} | {:.2} | {:.1} |", w.label, w.cpu, w.procs, w.machine, w.wall);
    }
    let checks = (a.replicas as f64) * (a.seconds as f64) / (a.interval as f64);
    let _ = writeln!(out, "\n| side | CPU ms per check (≈ {checks:.0} checks per window) |\n|---|---|");
    let mut per_check = Vec::new();
    for pair in windows.chunks(2) {
        if let [base, with] = pair {
            let ms = 1000.0 * (with.cpu - base.cpu) / checks;
            let side = with.label.trim_end_matches(", check").to_string();
            let _ = writeln!(out, "| {side} | **{ms:.2}** |");
            per_check.push((side, ms));
        }
    }
    if let Some((_, docker)) = per_check.iter().find(|(s, _)| s.starts_with("Docker")) {
        for (s, ms) in per_check.iter().filter(|(s, _)| s.starts_with("skep")) {
            let ratio = ms / docker;
            let _ = writeln!(out, "\n{s}: **{ratio:.2}× Docker's** per check (goal ≤ 1: {}).", if ratio <= 1.0 { "met" } else { "missed" });
        }
    }
    for n in &notes {
        let _ = writeln!(out, "\n{n}");
    }
    if let Some(e) = &err {
        let _ = writeln!(out, "\n**FAILED**: {e:#}");
    }
    Ok((out, err))
}
