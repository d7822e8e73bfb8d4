//! `skep-bench-tasks`: how long starting a task takes, side by side in one run.
//!
//! 1. **Process engine, plain vs full**: `Engine::start` (the task's init spawned → the program exec'd, which is when
//!    a task is reported running) of `sleep 3600` with nothing vs with everything this bench's issue added: its own
//!    cgroup with memory, CPU and pids limits, a read-only bind mount, a named volume, a tmpfs mount and one file
//!    in memory (a secret's shape). The two variants alternate, so drift hits both; `prepare`, stop and removal
//!    are not timed. Goal: ≤ 10 ms added at p50.
//! 2. **Docker engine vs Docker**: the docker engine's `prepare` + `start` (inspect the image, look for the task's
//!    container, create, start, inspect) beside `docker run -d` of the same image and command (the stock CLI) and
//!    beside the bare API calls (create + start). Goal: ≤ 1.1× `docker run`.
//!
//! 3. **Warm start** (`--warm`, on its own): a task of an image already in the node's image store beside the same
//!    program as a host program, `prepare` + `start` each (see [`warm`]). Goal: ≤ 20 ms added at p50.
//!
//! Usage: `cargo run --release -p skep-bench-tasks [-- --runs N] [--no-docker | --warm]` as root (namespaces, cgroups,
//! mounts). The bench binary is its own task init (its `main` starts with `run_if_requested`). Markdown tables on
//! stdout, progress on stderr. Everything it makes (tasks, cgroups, the volume, containers, the image it built, the
//! registry and image store of `--warm`) is removed at the end.

use bollard::models::ContainerCreateBody;
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions, StartContainerOptions};
use skep_api::docker::{ContainerSpec, Limit, ResourceRequirements, Task, TaskSpec};
use skep_worker::engine::docker::DockerEngine;
use skep_worker::engine::process::{Isolation, ProcessEngine};
use skep_worker::engine::{Engine, TaskFile};
use skep_worker::volumes::VolumeStore;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod warm;

const IMAGE: &str = "skep-bench-busybox:latest";
const SOCKET: &str = "/var/run/docker.sock";
const WARMUP: usize = 5;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    if let Some(code) = skep_worker::engine::process::run_if_requested() {
        std::process::exit(code);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok());
    let docker = !args.iter().any(|a| a == "--no-docker");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let done = if args.iter().any(|a| a == "--warm") {
        rt.block_on(warm::run(runs.unwrap_or(50)))
    } else {
        rt.block_on(run(runs.unwrap_or(200), docker))
    };
    if let Err(e) = done {
        eprintln!("skep-bench-tasks: {e}");
        std::process::exit(1);
    }
}

/// Latencies of one variant.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn at(&self, q: f64) -> f64 {
        let mut v: Vec<f64> = self.0.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        v.sort_by(f64::total_cmp);
        v[((v.len() as f64 - 1.0) * q).round() as usize]
    }
    fn mean(&self) -> f64 {
        self.0.iter().map(|d| d.as_secs_f64() * 1e3).sum::<f64>() / self.0.len() as f64
    }
    fn row(&self, name: &str) -> String {
        format!("| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} |", self.0.len(), self.at(0.5), self.at(0.99), self.mean(), self.at(1.0))
    }
}

const HEADER: &str = "| variant | runs | p50 ms | p99 ms | mean ms | max ms |\n|---|---:|---:|---:|---:|---:|";

async fn run(runs: usize, docker: bool) -> Result<(), Error> {
    if !skep_worker_is_root() {
        return Err("run as root: tasks get namespaces, cgroups and mounts".into());
    }
    let (plain, full) = process_bench(runs).await?;
    println!("## Process engine: start → running ({runs} runs each, alternating)\n\n{HEADER}");
    println!("{}\n{}", plain.row("plain (no limits, no mounts)"), full.row("cgroup + 3 limits + bind + volume + tmpfs + file"));
    println!(
        "\nadded by the cgroup, mounts and file: p50 {:+.2} ms, p99 {:+.2} ms (full/plain p50 {:.2}×)\n",
        full.at(0.5) - plain.at(0.5),
        full.at(0.99) - plain.at(0.99),
        full.at(0.5) / plain.at(0.5)
    );
    if docker {
        match docker_bench(runs.min(100)).await {
            Ok((engine, cli, api)) => {
                println!("## Docker engine beside Docker ({} runs each, alternating)\n\n{HEADER}", engine.0.len());
                println!("{}\n{}\n{}", engine.row("skep docker engine: prepare + start"), cli.row("docker run -d (stock CLI)"), api.row("bare API: create + start"));
                println!(
                    "\nskep/docker run: p50 {:.2}×, p99 {:.2}×; skep/bare API: p50 {:.2}×, p99 {:.2}×",
                    engine.at(0.5) / cli.at(0.5),
                    engine.at(0.99) / cli.at(0.99),
                    engine.at(0.5) / api.at(0.5),
                    engine.at(0.99) / api.at(0.99)
                );
            }
            Err(e) => println!("## Docker engine\n\nskipped: {e}"),
        }
    }
    Ok(())
}

fn skep_worker_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
}

fn task(prefix: &str, image: &str, command: &[&str]) -> Task {
    Task {
        id: format!("{prefix}{:016x}", rand::random::<u64>()),
        service_id: "bench".into(),
        node_id: "benchnode".into(),
        slot: 1,
        spec: TaskSpec {
            container_spec: Some(ContainerSpec {
                image: image.into(),
                command: command.iter().map(|s| s.to_string()).collect(),
                stop_signal: "SIGKILL".into(),
                stop_grace_period: Some(0),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// The full variant: limits, a read-only bind, a volume, a tmpfs (and a file, given at start).
fn full_task(dir: &Path) -> Task {
    let mut t = task("benchfull", "", &["sleep", "3600"]);
    let mnt = dir.join("mnt");
    t.spec.container_spec.as_mut().unwrap().set_field("Mounts", serde_json::json!([
            {"Type": "bind", "Source": dir.join("src"), "Target": mnt.join("host"), "ReadOnly": true},
            {"Type": "volume", "Source": "skepbench", "Target": mnt.join("data")},
            {"Type": "tmpfs", "Target": mnt.join("scratch"), "TmpfsOptions": {"SizeBytes": 1 << 20}},
        ]),
    ).unwrap();
    let mut limits = Limit { nano_cpus: 500_000_000, memory_bytes: 64 << 20, ..Default::default() };
    limits.pids = 100;
    t.spec.resources = Some(ResourceRequirements { limits: Some(limits), reservations: None });
    t
}

async fn process_bench(runs: usize) -> Result<(Samples, Samples), Error> {
    let dir = std::env::temp_dir().join(format!("skep-bench-tasks-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src"))?;
    let engine = ProcessEngine::new(dir.join("engine"))
        .with_isolation(Isolation::Namespaces)
        .with_volumes(VolumeStore::new(dir.join("volumes")));
    let secret = dir.join("mnt/secret");
    let result = async {
        let (mut plain, mut full) = (Samples::default(), Samples::default());
        for i in 0..runs + WARMUP {
            // alternate which goes first
            for variant in if i % 2 == 0 { [false, true] } else { [true, false] } {
                let t = if variant { full_task(&dir) } else { task("benchplain", "", &["sleep", "3600"]) };
                let files = variant.then(|| {
                    vec![TaskFile { target: secret.clone(), data: vec![b's'; 32], uid: 0, gid: 0, mode: 0o400 }]
                });
                let took = start_once(&engine, &t, files, false).await?;
                if i >= WARMUP {
                    if variant { &mut full } else { &mut plain }.0.push(took);
                }
            }
            if i % 50 == 0 {
                eprintln!("process engine: {i}/{}", runs + WARMUP);
            }
        }
        Ok::<_, Error>((plain, full))
    }
    .await;
    let _ = engine.volumes().remove("skepbench", true).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Prepares `t` (and gives it `files`), starts, stops and removes it; how long `start` took (with `prepare` when
/// `with_prepare`).
async fn start_once(
    engine: &ProcessEngine,
    t: &Task,
    files: Option<Vec<TaskFile>>,
    with_prepare: bool,
) -> Result<Duration, Error> {
    let timed = async {
        let t0 = Instant::now();
        engine.prepare(t).await?;
        if let Some(files) = files {
            engine.use_files(&t.id, files)?;
        }
        let t1 = Instant::now();
        let h = engine.start(t).await?;
        let took = if with_prepare { t0.elapsed() } else { t1.elapsed() };
        engine.stop(&h, t).await?;
        engine.wait(&h).await?;
        Ok::<_, Error>(took)
    }
    .await;
    engine.remove(&t.id).await?;
    timed
}

fn docker_cli(args: &[&str]) -> Result<String, Error> {
    let out = Command::new("docker").args(["-H", &format!("unix://{SOCKET}")]).args(args).env_remove("DOCKER_HOST").output()?;
    if !out.status.success() {
        return Err(format!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Builds the bench image (`FROM scratch` + a static busybox as /bin/sh); true if it was built here.
fn ensure_image() -> Result<bool, Error> {
    if docker_cli(&["image", "inspect", IMAGE]).is_ok() {
        return Ok(false);
    }
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or("no busybox (apt-get install busybox-static) to build the image from")?;
    let ctx = std::env::temp_dir().join(format!("skep-bench-image-{}", std::process::id()));
    std::fs::create_dir_all(&ctx)?;
    std::fs::copy(busybox, ctx.join("busybox"))?;
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY busybox /bin/busybox\nCOPY busybox /bin/sh\nENV PATH=/bin\n")?;
    let built = Command::new("docker")
        .args(["-H", &format!("unix://{SOCKET}"), "build", "-q", "-t", IMAGE])
        .arg(&ctx)
        .env("DOCKER_BUILDKIT", "0")
        .output();
    let _ = std::fs::remove_dir_all(&ctx);
    let out = built?;
    if !out.status.success() {
        return Err(format!("docker build: {}", String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(true)
}

async fn docker_bench(runs: usize) -> Result<(Samples, Samples, Samples), Error> {
    if !Path::new(SOCKET).exists() {
        return Err(format!("{SOCKET} does not exist").into());
    }
    let engine = DockerEngine::connect(SOCKET).await?;
    let built = ensure_image()?;
    let docker = engine.client().clone();
    let result = async {
        let (mut ours, mut cli, mut api) = (Samples::default(), Samples::default(), Samples::default());
        for i in 0..runs + WARMUP {
            let keep = i >= WARMUP;
            // the docker engine
            let t = task("benchdocker", IMAGE, &["busybox", "sleep", "3600"]);
            let timed = async {
                let t0 = Instant::now();
                engine.prepare(&t).await?;
                engine.start(&t).await?;
                Ok::<_, Error>(t0.elapsed())
            }
            .await;
            engine.remove(&t.id).await?;
            if keep {
                ours.0.push(timed?);
            }
            // docker run -d
            let t0 = Instant::now();
            let id = tokio::task::spawn_blocking(|| docker_cli(&["run", "-d", IMAGE, "busybox", "sleep", "3600"])).await??;
            let took = t0.elapsed();
            docker_cli(&["rm", "-f", &id])?;
            if keep {
                cli.0.push(took);
            }
            // the bare API
            let body = bollard_body();
            let t0 = Instant::now();
            let created = docker.create_container(None::<CreateContainerOptions>, body).await?;
            docker.start_container(&created.id, None::<StartContainerOptions>).await?;
            let took = t0.elapsed();
            let rm = RemoveContainerOptions { force: true, ..Default::default() };
            docker.remove_container(&created.id, Some(rm)).await?;
            if keep {
                api.0.push(took);
            }
            if i % 25 == 0 {
                eprintln!("docker: {i}/{}", runs + WARMUP);
            }
        }
        Ok::<_, Error>((ours, cli, api))
    }
    .await;
    if built {
        let _ = docker_cli(&["image", "rm", IMAGE]);
    }
    result
}

fn bollard_body() -> ContainerCreateBody {
    ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["busybox".into(), "sleep".into(), "3600".into()]),
        ..Default::default()
    }
}
