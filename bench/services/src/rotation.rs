//! `secret-rotation`: the same secret rotation (`docker service update --secret-rm A --secret-add source=B,target=s`)
//! of a service of N replicas on this machine's Docker engine, once in Docker swarm mode (single node) and once
//! against a skep cluster (1 manager + 2 workers on loopback, `--engine docker`), timed from the command to the
//! moment every replica runs from the new spec; then every running container is checked to read the new secret.

use crate::cluster::{secs, Cluster};
use skep_api::docker::NodeRole;
use crate::http;
use crate::procs::{run, run_s, Scratch};
use crate::vs_docker::{ensure_image, median, BenchArgs, DockerSwarm, DOCKER_SOCK};
use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct RotationArgs {
    /// Replicas of the service
    #[arg(long, default_value_t = 10)]
    pub replicas: usize,
    /// Rotations on each side (A → B, B → A, …)
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// skep daemons' cluster port on 127.0.0.1-3
    #[arg(long, default_value_t = 26201)]
    pub port: u16,
    #[command(flatten)]
    pub bench: BenchArgs,
}

const SERVICE: &str = "skr";
/// The two secrets rotated between, and what each holds.
const SECRETS: [(&str, &str); 2] = [("rot_a", "rotation-secret-A"), ("rot_b", "rotation-secret-B")];

/// The stock CLI against `host` (skep's socket) or the local engine.
fn docker(host: Option<&Path>, args: &[&str]) -> Vec<String> {
    let mut v = vec!["docker".to_string()];
    if let Some(h) = host {
        v.extend(["-H".to_string(), format!("unix://{}", h.display())]);
    }
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// Running tasks of the service made from its current spec, from `GET /tasks` (the CLI's `_up-to-date` filter).
async fn up_to_date_running(api: &Path) -> anyhow::Result<usize> {
    let f = http::enc(&format!("{{\"service\":[\"{SERVICE}\"],\"desired-state\":[\"running\"],\"_up-to-date\":[\"true\"]}}"));
    let v = http::get_json(api, &format!("/tasks?filters={f}"), Duration::from_secs(10)).await?;
    let list = v.as_array().context("/tasks is not an array")?;
    Ok(list.iter().filter(|t| t.pointer("/Status/State").and_then(|s| s.as_str()) == Some("running")).count())
}

/// Waits (bounded) until `n` tasks of the current spec run.
async fn wait_converged(api: &Path, n: usize, timeout: Duration) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    loop {
        let got = up_to_date_running(api).await.unwrap_or(0);
        if got == n {
            return Ok(t0.elapsed());
        }
        anyhow::ensure!(t0.elapsed() < timeout, "{got} of {n} up-to-date tasks running after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What every running container of the service (found by `label=<key>=<service ID>`) reads at /run/secrets/s.
async fn contents(label: &str) -> anyhow::Result<Vec<String>> {
    let ids = run_s(&["docker", "ps", "-q", "--filter", &format!("label={label}"), "--filter", "status=running"], Duration::from_secs(30)).await?;
    let mut out = Vec::new();
    for id in ids.lines().map(str::trim).filter(|l| !l.is_empty()) {
        out.push(run_s(&["docker", "exec", id, "cat", "/run/secrets/s"], Duration::from_secs(30)).await.unwrap_or_else(|e| format!("{e:#}")));
    }
    Ok(out)
}

/// One side: create the secrets and the service, rotate `runs` times, remove everything. Returns the rotation times.
async fn side(host: Option<&Path>, api: &Path, label_key: &str, a: &RotationArgs, scratch: &Path) -> anyhow::Result<Vec<Duration>> {
    let timeout = Duration::from_secs(a.bench.timeout);
    for (name, data) in SECRETS {
        let f = scratch.join(name);
        std::fs::write(&f, data)?;
        run(&docker(host, &["secret", "create", name, &f.display().to_string()]), Duration::from_secs(30)).await?;
    }
    let n = a.replicas.to_string();
    let first = format!("source={},target=s", SECRETS[0].0);
    let create = [
        "service", "create", "-d", "--no-resolve-image", "--name", SERVICE, "--replicas", &n, "--stop-grace-period", "1s",
        "--secret", &first, &a.bench.image, "sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait",
    ];
    let id = run(&docker(host, &create), Duration::from_secs(60)).await?.lines().last().unwrap_or("").trim().to_string();
    wait_converged(api, a.replicas, timeout).await.context("the service never converged")?;
    let label = format!("{label_key}={id}");
    let mut times = Vec::new();
    for r in 0..a.runs {
        let (from, to) = (SECRETS[r % 2], SECRETS[(r + 1) % 2]);
        let add = format!("source={},target=s", to.0);
        let t0 = Instant::now();
        run(&docker(host, &["service", "update", "-d", "--secret-rm", from.0, "--secret-add", &add, SERVICE]), Duration::from_secs(60)).await?;
        // the old tasks' spec is no longer current: wait for all new ones
        loop {
            let got = up_to_date_running(api).await.unwrap_or(0);
            if got == a.replicas {
                break;
            }
            anyhow::ensure!(t0.elapsed() < timeout, "rotation {}: {got} of {} new tasks running after {timeout:?}", r + 1, a.replicas);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = t0.elapsed();
        let read = contents(&label).await?;
        anyhow::ensure!(
            read.len() == a.replicas && read.iter().all(|c| c == to.1),
            "rotation {}: the running containers read {read:?}, not {:?}",
            r + 1,
            to.1
        );
        eprintln!("  rotation {}: {:.2}s, {} containers read the new secret", r + 1, took.as_secs_f64(), read.len());
        times.push(took);
    }
    run(&docker(host, &["service", "rm", SERVICE]), Duration::from_secs(60)).await?;
    let t0 = Instant::now();
    while !run_s(&["docker", "ps", "-aq", "--filter", &format!("label={label}")], Duration::from_secs(30)).await?.trim().is_empty() {
        anyhow::ensure!(t0.elapsed() < timeout, "containers of {SERVICE} still there after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for (name, _) in SECRETS {
        run(&docker(host, &["secret", "rm", name]), Duration::from_secs(30)).await?;
    }
    Ok(times)
}

/// Runs the comparison; returns the report, and the error that cut it short.
pub async fn run_rotation(a: RotationArgs) -> anyhow::Result<(String, Option<anyhow::Error>)> {
    let mut out = String::new();
    let _ = writeln!(out, "## secret-rotation: `docker service update --secret-rm A --secret-add source=B,target=s` of {} replicas\n", a.replicas);
    let img = ensure_image(&a.bench.image).await?;
    let scratch = Scratch::new("/tmp", "rot", a.bench.keep)?;
    let _ = writeln!(
        out,
        "Image: {img}. Service (both sides): `--replicas {} --stop-grace-period 1s --secret source=rot_a,target=s {} sh -c \"trap 'exit 0' TERM; sleep 3600 & wait\"`, default update config (parallelism 1, stop-first). Timed from the update command to `GET /tasks` (`_up-to-date`, desired running) showing {} running tasks, polled every 50 ms; then `docker exec … cat /run/secrets/s` in every running container must give the new secret.\n",
        a.replicas, a.bench.image, a.replicas
    );

    // Docker swarm mode
    let mut docker_times = Vec::new();
    let mut note = String::new();
    match DockerSwarm::init().await? {
        Err(n) => note = n,
        Ok(swarm) => {
            let r = side(None, Path::new(DOCKER_SOCK), "com.docker.swarm.service.id", &a, &scratch.path).await;
            let left = swarm.leave_after(SERVICE).await;
            match r {
                Ok(t) => docker_times = t,
                Err(e) => note = format!("Docker side failed: {e:#}"),
            }
            if let Err(e) = left {
                let _ = write!(note, " `docker swarm leave --force` failed: {e:#}");
            }
        }
    }

    // skep
    eprintln!("skep: 1 manager + 2 workers, --engine docker");
    let mut cluster = Cluster::start(&a.bench.skep, &scratch, "r", a.port, "docker", &[NodeRole::Manager, NodeRole::Worker, NodeRole::Worker], &[]).await?;
    let skep = async {
        cluster.wait_ready(0, 3, Duration::from_millis(200), Duration::from_secs(30)).await?;
        let sock = cluster.sock(0).to_path_buf();
        side(Some(&sock), &sock, "com.skep.service.id", &a, &scratch.path).await
    }
    .await;
    let _ = run(&docker(Some(cluster.sock(0)), &["service", "rm", SERVICE]), Duration::from_secs(30)).await;
    let problems = cluster.problems();
    cluster.stop_all().await;

    let _ = writeln!(out, "| side | rotation | all {} replicas on the new secret (s) |\n|---|---|---|", a.replicas);
    for (i, t) in docker_times.iter().enumerate() {
        let _ = writeln!(out, "| Docker 20.10 swarm mode (1 node) | {} | {} |", i + 1, secs(*t));
    }
    let skep_times = match skep {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(out, "\n{note}\n\n**skep side FAILED**: {e:#}\n\n{problems}");
            return Ok((out, Some(e)));
        }
    };
    for (i, t) in skep_times.iter().enumerate() {
        let _ = writeln!(out, "| skep (1 manager + 2 workers) | {} | **{}** |", i + 1, secs(*t));
    }
    if !note.is_empty() {
        let _ = writeln!(out, "\n{note}");
    }
    if !docker_times.is_empty() {
        let dm = median(docker_times.iter().map(Duration::as_secs_f64).collect());
        let sm = median(skep_times.iter().map(Duration::as_secs_f64).collect());
        let ratio = sm / dm;
        let verdict = if ratio <= 0.5 { "met" } else { "missed" };
        let _ = writeln!(out, "\nMedian rotation: Docker {dm:.2} s, skep {sm:.2} s; **skep/Docker = {ratio:.2}** (goal ≤ 0.5: {verdict}).");
    }
    let _ = writeln!(out, "\n### skep daemon log warnings/errors (RUST_LOG=warn)\n");
    out.push_str(if problems.is_empty() { "none\n" } else { &problems });
    Ok((out, None))
}
