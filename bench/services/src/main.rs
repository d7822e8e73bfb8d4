//! `skep-bench-services`: service benchmarks (see bench/services/README.md).
//!
//! - `sim`: 3 real manager daemons and N simulated workers in this process, a service with M replicas.
//! - `vs-docker`: the same `docker service create` against Docker swarm mode and a skep cluster on the local engine.
//! - `secret-rotation`: the same secret rotation of a service against Docker swarm mode and a skep cluster.
//! - `rolling-update`: the same rolling update (parallelism P) against Docker swarm mode and a skep cluster.
//! - `health-cost`: CPU per healthcheck, Docker swarm mode's own against skep's `docker` and `process` engines.
//!
//! Nothing here asserts a timing: the figures are reported, with the goal each one is compared to.

mod cluster;
mod fake;
mod health;
mod http;
mod procs;
mod rolling;
mod rotation;
mod sim;
mod vs_docker;

use clap::{Parser, Subcommand};
use std::io::Write as _;

#[derive(Parser)]
#[command(name = "skep-bench-services", about = "skep service benchmarks")]
struct Cli {
    /// Append the markdown report to this file too
    #[arg(long, global = true)]
    out: Option<std::path::PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// 3 managers + N simulated workers (fake engine): join, create M replicas → all running, lose workers
    Sim(sim::SimArgs),
    /// docker service create against Docker swarm mode and against skep (--engine docker), same engine
    VsDocker(vs_docker::VsArgs),
    /// docker service update --secret-rm/--secret-add against Docker swarm mode and against skep, same engine
    SecretRotation(rotation::RotationArgs),
    /// docker service update --update-parallelism P --env-add against Docker swarm mode and against skep, same engine
    RollingUpdate(rolling::RollingArgs),
    /// CPU per healthcheck: Docker swarm mode's own checks vs skep's docker and process engines, same engine
    HealthCost(health::HealthArgs),
}

fn main() {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    // the simulated workers hold one UDP socket each, plus files
    raise_nofile(65_536);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let is_vs = matches!(cli.cmd, Cmd::VsDocker(_) | Cmd::SecretRotation(_) | Cmd::RollingUpdate(_) | Cmd::HealthCost(_));
    let report = rt.block_on(async {
        let body = async {
            match cli.cmd {
                Cmd::Sim(a) => sim::run(a).await,
                Cmd::VsDocker(a) => vs_docker::run_vs(a).await,
                Cmd::SecretRotation(a) => rotation::run_rotation(a).await,
                Cmd::RollingUpdate(a) => rolling::run_rolling(a).await,
                Cmd::HealthCost(a) => health::run_health(a).await,
            }
        };
        // on Ctrl-C the body is dropped: daemons are killed on drop, scratch directories removed
        let r = tokio::select! {
            r = body => r,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        };
        if r.is_err() && is_vs {
            vs_docker::emergency_cleanup().await;
        }
        r
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    procs::final_cleanup();
    match report {
        Ok((r, err)) => {
            println!("{r}");
            if let Some(p) = cli.out {
                if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(&p) {
                    let _ = writeln!(f, "{r}");
                }
            }
            if let Some(e) = err {
                eprintln!("skep-bench-services: {e:#}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("skep-bench-services: {e:#}");
            std::process::exit(1);
        }
    }
}

fn raise_nofile(want: u64) {
    #[allow(unsafe_code)]
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut r = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < want {
            r.rlim_cur = want.min(r.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}
