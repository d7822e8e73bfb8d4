//! `skep-bench-coldstart`: cold start from a registry image, skep's `process` engine beside Docker, in one run.
//!
//! The image: busybox-static and a 3 MiB file of random bytes in one layer (5 MiB; ≈ 4 MiB gzipped), pushed with
//! `skep image import`, a fresh one per round, so every round pulls and unpacks, on both sides. Each side has its
//! own Debian `docker-registry` on the same machine.
//! - **skep**: five hosts of the multi-host test harness (network namespaces, real daemons: 1 manager + 4 workers,
//!   `process` engine, `--insecure-registry` naming a registry on the fifth host). Timed: the stock
//!   `docker service create -d --replicas 10 --replicas-max-per-node 2` (the CLI resolves and pins the digest) until
//!   the managers report exactly 10 tasks running (polled every 200 ms). Every node pulls and unpacks the image once
//!   and starts two tasks from it, in parallel with the others.
//! - **Docker**: this machine's engine, registry on 127.0.0.1 (an insecure registry for Docker by default). Timed:
//!   `docker pull` + two `docker run -d` (one node's share of the service), and `docker pull` + ten `docker run -d`
//!   (the whole service on one engine).
//!
//! Goal (issue 12): skep's service ≤ 1.0× Docker's per-node share. Prints a markdown table (medians); asserts
//! nothing. Usage: `SKEP_BIN=<skep> skep-bench-coldstart [ROUNDS]` (default 3) as root.

use anyhow::{ensure, Context as _, Result};
use skep_registry::testing::LocalRegistry;
use skep_tests::Cluster;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const NODES: usize = 5;
const REPLICAS: usize = 10;

/// The image's directory for `round`: busybox-static with `sh` and `sleep` links, and 3 MiB from /dev/urandom (so
/// every round's image is new; 5 MiB in all, ≈ 4 MiB gzipped).
fn image_dir(root: &Path, round: &str) -> Result<PathBuf> {
    use std::io::Read as _;
    let dir = root.join(format!("image-{round}"));
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::create_dir_all(dir.join("data"))?;
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).context("busybox-static is needed (/bin/busybox)")?;
    for link in ["sh", "sleep"] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(link))?;
    }
    let mut pad = Vec::new();
    std::fs::File::open("/dev/urandom")?.take(3 << 20).read_to_end(&mut pad)?;
    std::fs::write(dir.join("data/pad"), pad)?;
    Ok(dir)
}

/// `skep image import --insecure` of `dir` as `reference` (run in network namespace `ns` when given: the registry's
/// address is a lab one), retried while the registry starts.
fn import(ns: Option<&str>, dir: &Path, reference: &str) -> Result<()> {
    let skep = std::env::var_os("SKEP_BIN").context("SKEP_BIN names the skep binary")?;
    let mut last = String::new();
    for _ in 0..100 {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&skep);
                c
            }
            None => Command::new(&skep),
        };
        let o = cmd.args(["image", "import", "--insecure", "--cmd", "/bin/sleep", "--cmd", "3600"]).arg(dir).arg(reference).output()?;
        if o.status.success() {
            return Ok(());
        }
        last = String::from_utf8_lossy(&o.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    anyhow::bail!("skep image import {reference}: {last}")
}

fn skep_side(rounds: usize) -> Result<Vec<f64>> {
    let mut c = Cluster::new(NODES)?;
    let reg = format!("{}:5000", c.host(NODES - 1).ip);
    c.set_daemon_args(&["--host-programs", "paths", "--insecure-registry", &reg]);
    c.set_client_timeout(Duration::from_secs(600));
    let ns = c.host(NODES - 1).ns.name().to_string();
    let _registry = LocalRegistry::start(&c.root().join("registry"), &reg, None, &["ip", "netns", "exec", &ns])?;
    c.form(1, NODES - 1)?;
    let mut out = Vec::new();
    for r in 0..rounds {
        let reference = format!("{reg}/cold/s{r}:1");
        import(Some(&ns), &image_dir(c.root(), &format!("s{r}"))?, &reference)?;
        let name = format!("cold{r}");
        let t = Instant::now();
        c.docker(0, &["service", "create", "-d", "--name", &name, "--replicas", "10", "--replicas-max-per-node", "2", &reference])?
            .ok()?;
        c.wait_running(0, &name, REPLICAS, Duration::from_secs(300))?;
        let secs = t.elapsed().as_secs_f64();
        eprintln!("skep round {r}: {secs:.2} s");
        out.push(secs);
        c.docker(0, &["service", "rm", &name])?.ok()?;
        skep_tests::wait_until("the tasks gone", Duration::from_secs(60), || -> Result<()> {
            let left: usize = (0..NODES).map(|i| c.task_processes(i).len()).sum();
            ensure!(left == 0, "{left} task processes left");
            Ok(())
        })?;
    }
    c.pass();
    Ok(out)
}

fn docker(args: &[&str]) -> Result<String> {
    let o = Command::new("docker").args(args).output()?;
    ensure!(o.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// `docker pull` then `runs` × `docker run -d`, timed; everything removed after.
fn docker_round(reference: &str, runs: usize) -> Result<f64> {
    let t = Instant::now();
    docker(&["pull", "-q", reference])?;
    let ids: Vec<String> =
        (0..runs).map(|_| docker(&["run", "-d", reference]).map(|s| s.trim().to_string())).collect::<Result<_>>()?;
    let secs = t.elapsed().as_secs_f64();
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.iter().map(String::as_str));
    docker(&rm)?;
    docker(&["image", "rm", reference])?;
    Ok(secs)
}

fn docker_side(rounds: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let dir = std::env::temp_dir().join(format!("skep-bench-coldstart-{}", std::process::id()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let registry = LocalRegistry::start(&dir, &addr, None, &[]);
    let run = (|| -> Result<(Vec<f64>, Vec<f64>)> {
        let _registry = registry?;
        let (mut share, mut whole) = (Vec::new(), Vec::new());
        for r in 0..rounds {
            for (runs, out) in [(REPLICAS / NODES, &mut share), (REPLICAS, &mut whole)] {
                let reference = format!("{addr}/cold/d{r}x{runs}:1");
                import(None, &image_dir(&dir, &format!("d{r}x{runs}"))?, &reference)?;
                let secs = docker_round(&reference, runs)?;
                eprintln!("docker round {r}, pull + {runs} runs: {secs:.2} s");
                out.push(secs);
            }
        }
        Ok((share, whole))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    run
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn list(v: &[f64]) -> String {
    v.iter().map(|s| format!("{s:.2}")).collect::<Vec<_>>().join(", ")
}

fn main() -> Result<()> {
    let rounds: usize = std::env::args().nth(1).map_or(Ok(3), |a| a.parse()).context("ROUNDS is a number")?;
    ensure!(rounds > 0, "ROUNDS must be at least 1");
    let skep = skep_side(rounds)?;
    let (share, whole) = docker_side(rounds)?;
    println!("| system | what is timed | seconds per round | median |");
    println!("|---|---|---|---|");
    println!("| skep, 5 hosts, process engine | service create → 10 running (2 per host, each host pulls) | {} | {:.2} |", list(&skep), median(skep.clone()));
    println!("| Docker engine | pull + 2 × run -d (one host's share) | {} | {:.2} |", list(&share), median(share.clone()));
    println!("| Docker engine | pull + 10 × run -d (the whole service on one engine) | {} | {:.2} |", list(&whole), median(whole.clone()));
    println!("\nskep / Docker's per-host share: {:.2}×; skep / Docker's whole service: {:.2}×", median(skep.clone()) / median(share), median(skep) / median(whole));
    Ok(())
}
