//! `service logs` throughput, skep beside Docker swarm: a service of 10 tasks, each printing `LINES / 10` lines
//! and exiting, then `docker service logs <service>` (the stock CLI, stdout counted) timed to its end, a few rounds.
//! skep runs on five hosts (network namespaces with real daemons, the multi-host test harness), two tasks per node;
//! Docker on this machine's engine as a single-node swarm (the comparison the issue asks for). Prints a markdown
//! table; asserts nothing.
//!
//! `skep-bench-logs [LINES] [ROUNDS]` (default 100000, 3), as root, with `SKEP_BIN` naming the skep binary.

use anyhow::{bail, ensure, Context as _, Result};
use skep_tests::Cluster;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TASKS: usize = 10;
const IMAGE: &str = "skep-bench-logs-bb:latest";

fn arg(i: usize, default: usize) -> Result<usize> {
    std::env::args().nth(i).map_or(Ok(default), |a| a.parse().context("LINES and ROUNDS are numbers"))
}

/// One timed `service logs`: the lines it printed, the seconds until the last expected line arrived (or until it
/// stopped), and whether it exited by itself within [`EXIT_GRACE`] after that (Docker's sometimes does not).
struct Round {
    lines: usize,
    secs: f64,
    exited: bool,
}

/// How long a `service logs` may take after its last expected line before it is killed and said to hang.
const EXIT_GRACE: Duration = Duration::from_secs(10);
/// Longest round.
const ROUND_LIMIT: Duration = Duration::from_secs(300);

fn timed(mut cmd: Command, expected: usize) -> Result<Round> {
    use std::io::Read as _;
    let t = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let mut out = child.stdout.take().context("stdout")?;
    let (tx, rx) = std::sync::mpsc::channel::<(usize, Instant)>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut n = 0;
        while let Ok(k) = out.read(&mut buf) {
            if k == 0 {
                break;
            }
            n += buf[..k].iter().filter(|&&b| b == b'\n').count();
            if tx.send((n, Instant::now())).is_err() {
                return;
            }
        }
    });
    let (mut lines, mut last) = (0, t);
    let deadline = t + ROUND_LIMIT;
    while lines < expected {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok((n, at)) => (lines, last) = (n, at),
            Err(_) => break,
        }
    }
    let exit_by = Instant::now() + EXIT_GRACE;
    let exited = loop {
        if child.try_wait()?.is_some() {
            break true;
        }
        if Instant::now() >= exit_by {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    while let Ok((n, at)) = rx.try_recv() {
        (lines, last) = (n, at);
    }
    Ok(Round { lines, secs: last.duration_since(t).as_secs_f64(), exited })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn skep_side(lines: usize, rounds: usize) -> Result<Vec<Round>> {
    let mut c = Cluster::new(5)?;
    c.set_client_timeout(Duration::from_secs(600));
    c.form(1, 4)?;
    let per = (lines / TASKS).to_string();
    c.docker(
        0,
        &["service", "create", "-d", "--name", "lb", "--replicas", "10", "--replicas-max-per-node", "2", "--restart-condition", "none", "busybox", "seq", "1", &per],
    )?
    .ok()?;
    c.wait_tasks(0, "lb", Duration::from_secs(120), "10 tasks complete", |t| {
        t.len() == TASKS && t.iter().all(|t| skep_tests::services::state(t) == "complete")
    })?;
    let mut out = Vec::new();
    for _ in 0..rounds {
        let mut cmd = Command::new(skep_tests::docker_bin());
        cmd.arg("-H").arg(c.host_arg(0)).args(["service", "logs", "lb"]).env("DOCKER_CONFIG", c.root().join("docker-config"));
        out.push(timed(cmd, lines)?);
    }
    c.pass();
    Ok(out)
}

fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

fn docker_ok(args: &[&str]) -> Result<String> {
    let o = docker(args).output()?;
    ensure!(o.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// A busybox image with `seq`, imported from the host's static busybox.
fn ensure_image() -> Result<bool> {
    if docker(&["image", "inspect", IMAGE]).output()?.status.success() {
        return Ok(false);
    }
    let dir = std::env::temp_dir().join(format!("skep-bench-logs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::copy("/usr/bin/busybox", dir.join("bin/busybox")).context("a static busybox at /usr/bin/busybox")?;
    std::os::unix::fs::symlink("busybox", dir.join("bin/seq"))?;
    let ok = Command::new("sh").arg("-c").arg(format!("tar -C {} -c . | docker import - {IMAGE} >/dev/null", dir.display())).status()?.success();
    std::fs::remove_dir_all(&dir)?;
    ensure!(ok, "docker import of {IMAGE} failed");
    Ok(true)
}

fn docker_side(lines: usize, rounds: usize) -> Result<Vec<Round>> {
    let state = docker_ok(&["info", "--format", "{{.Swarm.LocalNodeState}}"])?;
    if state.trim() != "inactive" {
        bail!("this machine's Docker engine is already in a swarm ({}): not touching it", state.trim());
    }
    docker_ok(&["swarm", "init", "--advertise-addr", "127.0.0.1"])?;
    let made_image = ensure_image();
    let run = (|| -> Result<Vec<Round>> {
        made_image.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
        let per = (lines / TASKS).to_string();
        docker_ok(&["service", "create", "-d", "--name", "lb", "--replicas", "10", "--restart-condition", "none", IMAGE, "seq", "1", &per])?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let states = docker_ok(&["service", "ps", "lb", "--format", "{{.CurrentState}}"])?;
            if states.lines().filter(|l| l.starts_with("Complete")).count() == TASKS {
                break;
            }
            ensure!(Instant::now() < deadline, "tasks not complete: {states}");
            std::thread::sleep(Duration::from_millis(500));
        }
        (0..rounds).map(|_| timed(docker(&["service", "logs", "lb"]), lines)).collect()
    })();
    let _ = docker_ok(&["service", "rm", "lb"]);
    let _ = docker_ok(&["swarm", "leave", "--force"]);
    if matches!(made_image, Ok(true)) {
        let _ = docker_ok(&["image", "rm", IMAGE]);
    }
    run
}

fn row(name: &str, rs: &[Round]) -> f64 {
    let secs: Vec<String> =
        rs.iter().map(|r| format!("{:.2}{}", r.secs, if r.exited { "" } else { " (hung after its last line)" })).collect();
    let rate = median(rs.iter().map(|r| r.lines as f64 / r.secs.max(1e-9)).collect());
    let lines: Vec<String> = rs.iter().map(|r| r.lines.to_string()).collect();
    println!("| {name} | {} | {} | {rate:.0} |", lines.join(", "), secs.join(", "));
    rate
}

fn main() -> Result<()> {
    let lines = arg(1, 100_000)?;
    let rounds = arg(2, 3)?.max(1);
    println!("| system | lines per round | seconds to the last line | median lines/s |");
    println!("|---|---|---|---|");
    let skep = row("skep (5 hosts, 10 tasks)", &skep_side(lines, rounds)?);
    let docker = row("Docker swarm (1 node, 10 tasks)", &docker_side(lines, rounds)?);
    println!("\nskep / Docker: {:.2}×", skep / docker);
    Ok(())
}
