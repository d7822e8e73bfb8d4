//! `rolling-update`: the same rolling update (`docker service update -d --update-parallelism P --update-delay 0s
//! --env-add ROUND=<n>`) of a service of N replicas on this machine's Docker engine, once in Docker swarm mode
//! (single node) and once against a skep cluster (1 manager + 2 workers on loopback, `--engine docker`), timed from
//! the command until the update is `completed` (`UpdateStatus.State`, of this update: its `StartedAt` is new) and N
//! tasks of the new spec run.

use crate::cluster::{secs, Cluster};
use crate::http;
use crate::procs::{run, usage_table, Meter, Scratch, Usage};
use crate::vs_docker::{
    docker_argv, engine_pids, ensure_image, median, register_skep_nodes, remove_node_containers, wait_gone, BenchArgs, DockerSwarm, DOCKER_SOCK,
    SERVICE,
};
use anyhow::Context as _;
use skep_api::docker::NodeRole;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug, Clone)]
pub struct RollingArgs {
    /// Replicas of the service
    #[arg(long, default_value_t = 50)]
    pub replicas: usize,
    /// `--update-parallelism`
    #[arg(long, default_value_t = 5)]
    pub parallelism: usize,
    /// Updates on each side
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// skep daemons' cluster port on 127.0.0.1-3
    #[arg(long, default_value_t = 26301)]
    pub port: u16,
    /// Skip the Docker swarm side (to look at skep's alone)
    #[arg(long)]
    pub skip_docker: bool,
    #[command(flatten)]
    pub bench: BenchArgs,
}

/// The task: stops at once on SIGTERM (busybox `sleep` as PID 1 would ignore it and wait out the grace period).
const COMMAND: [&str; 3] = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"];

/// One update, timed from the command.
struct Update {
    /// `docker service update -d` returned.
    cli: Duration,
    /// N running tasks of the new spec (`GET /tasks`, `_up-to-date`).
    up_to_date: Duration,
    /// and `UpdateStatus.State` = `completed` for this update.
    completed: Duration,
    usage: Vec<Usage>,
}

/// Running tasks of the service made from its current spec, from `GET /tasks` (the CLI's `_up-to-date` filter).
async fn up_to_date_running(api: &Path) -> anyhow::Result<usize> {
    let f = http::enc(&format!("{{\"service\":[\"{SERVICE}\"],\"desired-state\":[\"running\"],\"_up-to-date\":[\"true\"]}}"));
    let v = http::get_json(api, &format!("/tasks?filters={f}"), Duration::from_secs(10)).await?;
    let list = v.as_array().context("/tasks is not an array")?;
    Ok(list.iter().filter(|t| t.pointer("/Status/State").and_then(|s| s.as_str()) == Some("running")).count())
}

/// The service's `UpdateStatus` as (State, StartedAt), empty strings while it has none.
async fn update_status(api: &Path) -> anyhow::Result<(String, String)> {
    let v = http::get_json(api, &format!("/services/{SERVICE}"), Duration::from_secs(10)).await?;
    let field = |k: &str| v.pointer(&format!("/UpdateStatus/{k}")).and_then(|s| s.as_str()).unwrap_or("").to_string();
    Ok((field("State"), field("StartedAt")))
}

/// Polls every 50 ms (bounded) until `n` up-to-date tasks run and, from `since`, the update started after `prev`
/// (another `StartedAt`) is completed. Returns (n running, completed) times.
async fn wait_update(api: &Path, n: usize, prev: &str, since: Instant, meter: &mut Meter, timeout: Duration) -> anyhow::Result<(Duration, Duration)> {
    let mut running_at = None;
    loop {
        let got = up_to_date_running(api).await.unwrap_or(0);
        if running_at.is_none() && got == n {
            running_at = Some(since.elapsed());
        }
        let (state, started) = update_status(api).await.unwrap_or_default();
        if let Some(r) = running_at {
            if state == "completed" && started != prev && got == n {
                return Ok((r, since.elapsed()));
            }
        }
        meter.sample();
        anyhow::ensure!(since.elapsed() < timeout, "{got} of {n} up-to-date tasks running, update state `{state}` after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One side: create the service, update it `runs` times, remove it. `pids` are metered during each update.
async fn side(host: Option<&Path>, api: &Path, label_key: &str, a: &RollingArgs, pids: &[(String, u32)]) -> anyhow::Result<(Vec<Update>, String)> {
    let timeout = Duration::from_secs(a.bench.timeout);
    let (n, p) = (a.replicas.to_string(), a.parallelism.to_string());
    let mut create = vec!["service", "create", "-d", "--no-resolve-image", "--name", SERVICE, "--replicas", &n, "--stop-grace-period", "1s"];
    create.extend(["--update-parallelism", &p, "--update-delay", "0s", &a.bench.image]);
    create.extend(COMMAND);
    let id = run(&docker_argv(host, &create), Duration::from_secs(60)).await?.lines().last().unwrap_or("").trim().to_string();
    let t0 = Instant::now();
    while up_to_date_running(api).await.unwrap_or(0) != a.replicas {
        anyhow::ensure!(t0.elapsed() < timeout, "the service never converged after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let inspect = http::get_json(api, &format!("/services/{SERVICE}"), Duration::from_secs(10)).await?;
    let config = inspect.pointer("/Spec/UpdateConfig").map(|c| c.to_string()).unwrap_or_default();
    let mut updates = Vec::new();
    for r in 1..=a.runs {
        let (_, prev) = update_status(api).await?;
        let env = format!("ROUND={r}");
        let update = ["service", "update", "-d", "--update-parallelism", &p, "--update-delay", "0s", "--env-add", &env, SERVICE];
        let mut meter = Meter::start(pids.to_vec());
        let t0 = Instant::now();
        run(&docker_argv(host, &update), Duration::from_secs(60)).await?;
        let cli = t0.elapsed();
        let (up_to_date, completed) = wait_update(api, a.replicas, &prev, t0, &mut meter, timeout).await.with_context(|| format!("update {r}"))?;
        eprintln!("  update {r}: {} up to date {:.2}s, completed {:.2}s", a.replicas, up_to_date.as_secs_f64(), completed.as_secs_f64());
        updates.push(Update { cli, up_to_date, completed, usage: meter.finish() });
    }
    run(&docker_argv(host, &["service", "rm", SERVICE]), Duration::from_secs(60)).await?;
    wait_gone(&format!("{label_key}={id}"), timeout).await?;
    Ok((updates, config))
}

fn table(name: &str, us: &[Update]) -> String {
    let mut s = String::new();
    for (i, u) in us.iter().enumerate() {
        let _ = writeln!(s, "| {name} | {} | {} | {} | **{}** |", i + 1, secs(u.cli), secs(u.up_to_date), secs(u.completed));
    }
    s
}

/// Runs the comparison; returns the report, and the error that cut it short.
pub async fn run_rolling(a: RollingArgs) -> anyhow::Result<(String, Option<anyhow::Error>)> {
    anyhow::ensure!(a.parallelism >= 1 && a.replicas >= 1 && a.runs >= 1, "--replicas, --parallelism and --runs must be ≥ 1");
    let mut out = String::new();
    let _ = writeln!(out, "## rolling-update: {} replicas, parallelism {}, no delay\n", a.replicas, a.parallelism);
    let img = ensure_image(&a.bench.image).await?;
    let scratch = Scratch::new("/tmp", "roll", a.bench.keep)?;
    let _ = writeln!(
        out,
        "Image: {img}. Service (both sides): `service create -d --no-resolve-image --name {SERVICE} --replicas {} --stop-grace-period 1s --update-parallelism {} --update-delay 0s {} {} {} \"{}\"`. \
         Each update: `docker [-H unix://<skep.sock>] service update -d --update-parallelism {} --update-delay 0s --env-add ROUND=<n> {SERVICE}`, \
         timed until `GET /tasks` (`_up-to-date`, desired running) shows {} running tasks and `GET /services/{SERVICE}` shows `UpdateStatus.State` = `completed` \
         with a new `StartedAt`, polled every 50 ms.\n",
        a.replicas, a.parallelism, a.bench.image, COMMAND[0], COMMAND[1], COMMAND[2], a.parallelism, a.replicas
    );

    // Docker swarm mode
    let mut docker = Vec::new();
    let mut note = String::new();
    let mut configs = Vec::new();
    let swarm = if a.skip_docker { Err("Docker side skipped (--skip-docker).".to_string()) } else { DockerSwarm::init().await? };
    match swarm {
        Err(n) => note = n,
        Ok(swarm) => {
            let r = side(None, Path::new(DOCKER_SOCK), "com.docker.swarm.service.id", &a, &engine_pids()).await;
            let left = swarm.leave_after(SERVICE).await;
            match r {
                Ok((u, c)) => {
                    docker = u;
                    configs.push(format!("Docker: `{c}`"));
                }
                Err(e) => note = format!("Docker side failed: {e:#}"),
            }
            if let Err(e) = left {
                let _ = write!(note, " `docker swarm leave --force` failed: {e:#}");
            }
        }
    }

    // skep
    eprintln!("skep: 1 manager + 2 workers, --engine docker");
    let mut cluster =
        Cluster::start(&a.bench.skep, &scratch, "u", a.port, "docker", &[NodeRole::Manager, NodeRole::Worker, NodeRole::Worker], &[]).await?;
    let node_ids = register_skep_nodes(&cluster).await;
    let skep = async {
        cluster.wait_ready(0, 3, Duration::from_millis(200), Duration::from_secs(30)).await?;
        let mut pids: Vec<(String, u32)> = cluster.daemons.iter().map(|d| (format!("skep {}", d.name), d.pid)).collect();
        pids.extend(engine_pids());
        let sock = cluster.sock(0).to_path_buf();
        side(Some(&sock), &sock, "com.skep.service.id", &a, &pids).await
    }
    .await;
    let _ = run(&docker_argv(Some(cluster.sock(0)), &["service", "rm", SERVICE]), Duration::from_secs(30)).await;
    let problems = cluster.problems();
    cluster.stop_all().await;
    remove_node_containers(&node_ids).await;

    let _ = writeln!(
        out,
        "| side | update | `service update -d` returned (s) | {} new tasks running (s) | `completed` (s) |\n|---|---|---|---|---|",
        a.replicas
    );
    out.push_str(&table("Docker 20.10 swarm mode (1 node)", &docker));
    let skep = match skep {
        Ok((u, c)) => {
            configs.push(format!("skep: `{c}`"));
            u
        }
        Err(e) => {
            let _ = writeln!(out, "\n{note}\n\n**skep side FAILED**: {e:#}\n\n{problems}");
            return Ok((out, Some(e)));
        }
    };
    out.push_str(&table("skep (1 manager + 2 workers)", &skep));
    if !note.is_empty() {
        let _ = writeln!(out, "\n{note}");
    }
    let _ = writeln!(out, "\nStored `Spec.UpdateConfig`: {}.", configs.join("; "));
    if !docker.is_empty() {
        let dm = median(docker.iter().map(|u| u.completed.as_secs_f64()).collect());
        let sm = median(skep.iter().map(|u| u.completed.as_secs_f64()).collect());
        let dr = median(docker.iter().map(|u| u.up_to_date.as_secs_f64()).collect());
        let sr = median(skep.iter().map(|u| u.up_to_date.as_secs_f64()).collect());
        let ratio = sm / dm;
        let verdict = if ratio <= 0.5 { "met" } else { "missed" };
        let _ = writeln!(
            out,
            "\nMedian until `completed`: Docker {dm:.2} s, skep {sm:.2} s; **skep/Docker = {ratio:.2}** (goal ≤ 0.5: {verdict}). \
             Until {} new tasks run: Docker {dr:.2} s, skep {sr:.2} s ({:.2}).",
            a.replicas,
            sr / dr
        );
    }
    if let Some(u) = docker.last() {
        let _ = writeln!(out, "\nDocker, last update:\n\n{}", usage_table(&u.usage));
    }
    if let Some(u) = skep.last() {
        let _ = writeln!(out, "skep, last update:\n\n{}", usage_table(&u.usage));
    }
    let _ = writeln!(out, "\n### skep daemon log warnings/errors\n");
    out.push_str(if problems.is_empty() { "none\n" } else { &problems });
    Ok((out, None))
}
