//! The three figures, run side by side in one lab: each round runs every path of a figure once, in the same order,
//! so slow drifts of the shared machine hit all of them alike.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use skep_overlay::netns::Netns;

use crate::http;
use crate::lab::{self, Lab};
use crate::peers;
use crate::procs::{self, in_ns, Daemon};
use crate::report::{Cpu, Iperf, Results, Run, Target};

/// A measurement may not run longer than this (the brief's bound).
const MAX_MEASUREMENT_S: u32 = 10;

#[derive(clap::Args, Debug, Clone)]
pub struct Opts {
    /// Rounds of the HTTP figures (b, c); medians are reported
    #[arg(long, default_value_t = 2)]
    rounds: u32,
    /// Rounds of the throughput figure (a): single-stream throughput varies most from run to run
    #[arg(long, default_value_t = 3)]
    iperf_rounds: u32,
    /// Which figures: a (overlay throughput), b (mesh keep-alive), c (connection churn)
    #[arg(long, default_value = "a,b,c", value_delimiter = ',')]
    parts: Vec<String>,
    /// iperf3 -t
    #[arg(long, default_value_t = 5)]
    iperf_seconds: u32,
    /// iperf3 -P values, each run for both paths
    #[arg(long, default_value = "1,2", value_delimiter = ',')]
    streams: Vec<u32>,
    /// wrk -d
    #[arg(long, default_value_t = 8)]
    wrk_seconds: u32,
    /// Connections of wrk and of the churn client
    #[arg(long, default_value_t = 32)]
    conns: u32,
    /// Duration of one churn run
    #[arg(long, default_value_t = 8)]
    churn_seconds: u32,
    /// Duration of one serial-latency run (0: skip)
    #[arg(long, default_value_t = 5)]
    serial_seconds: u32,
    /// HAProxy nbthread (default: HAProxy's own, one thread per CPU)
    #[arg(long)]
    haproxy_threads: Option<u32>,
    /// Scratch directory for configs and logs (default: a new /tmp/skbn-PID, removed at the end)
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

impl Opts {
    fn part(&self, p: &str) -> bool {
        self.parts.iter().any(|x| x.trim() == p)
    }
}

/// Builds the lab, measures, tears down (on every path, including SIGINT/SIGTERM), prints the report.
pub async fn run_all(opts: Opts) -> Result<()> {
    for (what, s) in [
        ("iperf", opts.iperf_seconds),
        ("wrk", opts.wrk_seconds),
        ("churn", opts.churn_seconds),
        ("serial", opts.serial_seconds),
    ] {
        if s > MAX_MEASUREMENT_S {
            bail!("--{what}-seconds {s}: each measurement is bounded to {MAX_MEASUREMENT_S} s");
        }
    }
    let work = opts
        .work_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/skbn-{}", std::process::id())));
    std::fs::create_dir_all(&work).with_context(|| format!("create {}", work.display()))?;
    let load_start = loadavg();
    eprintln!("building the lab (namespaces skbn-*, 10.213.200-202.x)");
    let lab = match Lab::build().await {
        Ok(lab) => lab,
        Err(e) => {
            lab::cleanup();
            return Err(e);
        }
    };
    eprintln!(
        "lab up: overlay VNI {} (tasks {} on A, {} on B); ingress VNI {}, host leg {} {} on A, nft {} :{} -> {}, {} :{}",
        lab::VNI_BENCH, lab::TASK_A, lab::TASK_B, lab::VNI_INGRESS, lab.leg, lab::LEG_A,
        skep_overlay::nft::INGRESS_TABLE, lab::MESH_PORT, lab::WEB_B, lab::WEB_C, lab::BACKEND_PORT
    );
    let measured = tokio::select! {
        r = measure(&lab, &opts, &work) => r,
        s = interrupted() => Err(anyhow::anyhow!("interrupted by {s}")),
    };
    // Children were killed when `measure` was dropped; now the data plane and the namespaces.
    let down = lab.teardown().await;
    if opts.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work);
    }
    let results = measured?;
    down?;
    let header = format!(
        "# skep network data plane — {}\n\nMachine: {} cores ({}), kernel {}; load average at start {}, at end {}.\n{}.",
        date(),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        cpu_model(),
        kernel(),
        load_start,
        loadavg(),
        versions().await
    );
    println!("{}", results.render(&header));
    Ok(())
}

async fn interrupted() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

async fn measure(lab: &Lab, opts: &Opts, work: &Path) -> Result<Results> {
    let mut res = Results {
        conns: opts.conns,
        ..Results::default()
    };
    if opts.part("a") {
        overlay_throughput(lab, opts, work, &mut res).await?;
    }
    if opts.part("b") || opts.part("c") {
        http_figures(lab, opts, work, &mut res).await?;
    }
    Ok(res)
}

/// (a) iperf3 between two task sandboxes through network "bench" vs between the two hosts over the underlay.
async fn overlay_throughput(lab: &Lab, opts: &Opts, work: &Path, res: &mut Results) -> Result<()> {
    let log = work.join("iperf3-server.log");
    for round in 1..=opts.iperf_rounds {
        for &streams in &opts.streams {
            for overlay in [false, true] {
                let (server, ip, client) = if overlay {
                    (&lab.task_b, lab::TASK_B, &lab.task_a)
                } else {
                    (&lab.b.ns, lab::HOST_B, &lab.a.ns)
                };
                let cpu = CpuMeter::start();
                let r = peers::iperf3(server, ip, client, streams, opts.iperf_seconds, &log)
                    .await
                    .with_context(|| format!("iperf3 {} -P {streams}", if overlay { "overlay" } else { "underlay" }))?;
                let it = Iperf::new(r, cpu.read());
                eprintln!(
                    "round {round}: iperf3 {} -P {streams}: {:.2} Gbit/s, {} retransmits, CPU {}",
                    if overlay { "overlay " } else { "underlay" },
                    it.gbps,
                    it.retransmits,
                    it.cpu
                );
                res.iperf.push((overlay, streams, it));
            }
        }
    }
    Ok(())
}

/// Where the client sends requests for target `t`; `two_clients`: the two-client churn run, whose mesh target is a
/// published port of its own (see [`lab::MESH2_PORT`]).
fn target_addr(t: Target, two_clients: bool) -> SocketAddr {
    SocketAddr::V4(match t {
        Target::Direct => SocketAddrV4::new(lab::HOST_B, lab::DIRECT_PORT),
        Target::Mesh if two_clients => SocketAddrV4::new(lab::HOST_A, lab::MESH2_PORT),
        Target::Mesh => SocketAddrV4::new(lab::HOST_A, lab::MESH_PORT),
        Target::Mesh1 => SocketAddrV4::new(lab::HOST_A, lab::MESH1_PORT),
        Target::Haproxy => SocketAddrV4::new(lab::HOST_A, lab::HAPROXY_PORT),
    })
}

/// Starts the backends (sandboxes on B and C), the direct-path server (host B) and HAProxy (host A), checks each
/// path answers (the mesh and HAProxy from both backends), then runs (b) and (c).
async fn http_figures(lab: &Lab, opts: &Opts, work: &Path, res: &mut Results) -> Result<()> {
    let exe = std::env::current_exe().context("own executable")?;
    let exe = exe.to_string_lossy();
    let serve = |ns: &Netns, ip: Ipv4Addr, ports: &[u16], name: &str| -> Result<Daemon> {
        let mut args = vec!["serve".to_string(), "--name".into(), name.into()];
        for port in ports {
            args.extend(["--listen".into(), format!("{ip}:{port}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        Daemon::spawn(
            in_ns(ns, None, &exe, &args),
            &format!("backend {name}"),
            &work.join(format!("serve-{name}.log")),
        )
    };
    let backend_ports = [
        lab::BACKEND_PORT,
        lab::HAPROXY_BACKEND_PORT,
        lab::MESH1_BACKEND_PORT,
        lab::MESH2_BACKEND_PORT,
    ];
    let mut daemons = vec![
        serve(&lab.web_b, lab::WEB_B, &backend_ports, "webb")?,
        serve(&lab.web_c, lab::WEB_C, &backend_ports, "webc")?,
        serve(&lab.b.ns, lab::HOST_B, &[lab::DIRECT_PORT], "direct")?,
        peers::haproxy(&lab.a.ns, work, opts.haproxy_threads)?,
    ];
    for t in Target::ALL {
        let want: &[&str] = match t {
            Target::Direct => &["direct"],
            Target::Mesh1 => &["webb"],
            Target::Mesh | Target::Haproxy => &["webb", "webc"],
        };
        let mut seen = Vec::new();
        let mut last_err = None;
        for _ in 0..100 {
            match http::probe(&lab.client, target_addr(t, false)) {
                Ok(name) => {
                    if !seen.contains(&name) {
                        seen.push(name);
                    }
                    if want.iter().all(|w| seen.iter().any(|s| s == w)) {
                        break;
                    }
                }
                Err(e) => last_err = Some(e),
            }
            for d in daemons.iter_mut() {
                d.check_alive()?;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if !want.iter().all(|w| seen.iter().any(|s| s == w)) {
            bail!(
                "{} answers from {seen:?}, want {want:?} (last error: {last_err:?})",
                t.label()
            );
        }
        eprintln!("{} answers from {}", t.label(), seen.join(" and "));
    }

    if opts.part("b") {
        let script = peers::write_wrk_script(work)?;
        for round in 1..=opts.rounds {
            for t in Target::ALL {
                let url = format!("http://{}/", target_addr(t, false));
                let cpu = CpuMeter::start();
                let mut r = peers::wrk(&lab.client, &url, opts.conns, opts.wrk_seconds, &script)
                    .await
                    .with_context(|| format!("wrk against {}", t.label()))?;
                r.cpu = Some(cpu.read());
                eprintln!("round {round}: wrk {}: {}", t.label(), line(&r));
                res.wrk.push((t, r));
                alive(&mut daemons)?;
            }
        }
        if opts.serial_seconds > 0 {
            for t in Target::ALL {
                let r = client(lab, &exe, t, "serial", 1, opts.serial_seconds, false).await?;
                eprintln!("serial {}: {}", t.label(), line(&r));
                res.serial.push((t, r));
            }
        }
    }
    if opts.part("c") {
        // One client (the namespace's first address), then two (both addresses, the workers alternating), every
        // round of the first before the second, so the two-client runs leave nothing behind for the one-client ones.
        for two_clients in [false, true] {
            for round in 1..=opts.rounds {
                for t in CHURN_TARGETS {
                    let syn0 = [syn_retransmits(&lab.client), syn_retransmits(&lab.a.ns)];
                    let mut r = client(lab, &exe, t, "close", opts.conns, opts.churn_seconds, two_clients).await?;
                    r.syn_retrans = Some((
                        syn_retransmits(&lab.client) - syn0[0],
                        syn_retransmits(&lab.a.ns) - syn0[1],
                    ));
                    eprintln!(
                        "round {round}: churn, {} client(s), {}: {}, SYN retransmits (client, host A) {:?}",
                        if two_clients { 2 } else { 1 },
                        t.label(),
                        line(&r),
                        r.syn_retrans.unwrap_or_default()
                    );
                    if two_clients {
                        res.churn2.push((t, r));
                    } else {
                        res.churn.push((t, r));
                    }
                    alive(&mut daemons)?;
                }
            }
        }
    }
    drop(daemons);
    Ok(())
}

/// The churn figure compares the mesh with HAProxy and the direct path (the one-backend mesh is for latency only).
const CHURN_TARGETS: [Target; 3] = [Target::Direct, Target::Mesh, Target::Haproxy];

fn alive(daemons: &mut [Daemon]) -> Result<()> {
    daemons.iter_mut().try_for_each(Daemon::check_alive)
}

fn line(r: &Run) -> String {
    format!(
        "{:.0} req/s, p50 {} µs, p99 {} µs, max {} µs, {} errors, {} stalled ≥ 1 s, CPU {}",
        r.rps(),
        r.p50_us,
        r.p99_us,
        r.max_us,
        r.errors,
        r.stalls.unwrap_or(0),
        r.cpu.as_ref().map(ToString::to_string).unwrap_or_default()
    )
}

/// Runs this binary's `load` client in the client namespace (a process of its own, one thread, like wrk -t1);
/// `two_clients`: its workers connect from the namespace's two addresses in turn.
async fn client(
    lab: &Lab,
    exe: &str,
    t: Target,
    mode: &str,
    conns: u32,
    seconds: u32,
    two_clients: bool,
) -> Result<Run> {
    let (target, c, s) = (
        target_addr(t, two_clients).to_string(),
        conns.to_string(),
        seconds.to_string(),
    );
    let (c1, c2) = (lab::CLIENT.to_string(), lab::CLIENT2.to_string());
    let mut args = vec![
        "load",
        "--target",
        &target,
        "--mode",
        mode,
        "--conns",
        &c,
        "--seconds",
        &s,
    ];
    if two_clients {
        args.extend(["--source", &c1, "--source", &c2]);
    }
    let cpu = CpuMeter::start();
    let out = procs::run(
        in_ns(&lab.client, None, exe, &args),
        "bench client",
        Duration::from_secs(u64::from(seconds) + 20),
    )
    .await
    .with_context(|| format!("{mode} client against {}", t.label()))?;
    let mut r = Run::from_json(&out)?;
    r.cpu = Some(cpu.read());
    Ok(r)
}

/// CPU use between `start` and `read`, from /proc/stat (busy = everything but idle and iowait; softirq work, where
/// the mesh's forwarding and VXLAN run, counts) and from the ksoftirqd threads' own CPU time (softirq work the kernel
/// deferred to a thread that competes with the processes).
struct CpuMeter {
    cores: Vec<(u64, u64, u64)>,
    ksoftirqd: u64,
}

impl CpuMeter {
    fn start() -> CpuMeter {
        CpuMeter {
            cores: core_ticks(),
            ksoftirqd: ksoftirqd_ticks(),
        }
    }

    fn read(&self) -> Cpu {
        let now = core_ticks();
        let ksoft = ksoftirqd_ticks().saturating_sub(self.ksoftirqd);
        let mut per_core = Vec::new();
        let (mut busy, mut soft, mut total) = (0, 0, 0);
        for ((b1, s1, t1), (b0, s0, t0)) in now.iter().zip(&self.cores) {
            let (db, ds, dt) = (b1.saturating_sub(*b0), s1.saturating_sub(*s0), t1.saturating_sub(*t0));
            per_core.push(if dt > 0 { db as f64 * 100.0 / dt as f64 } else { 0.0 });
            (busy, soft, total) = (busy + db, soft + ds, total + dt);
        }
        let pct = |x: u64| {
            if total > 0 {
                x as f64 * 100.0 / total as f64
            } else {
                0.0
            }
        };
        Cpu {
            busy: pct(busy),
            per_core,
            softirq: pct(soft),
            ksoftirqd: pct(ksoft),
        }
    }
}

/// (busy, softirq, total) ticks of each core, from the `cpuN` lines of /proc/stat.
fn core_ticks() -> Vec<(u64, u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    stat.lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .map(|l| {
            let v: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|x| x.parse().ok())
                .collect();
            let total: u64 = v.iter().sum();
            let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
            (total - idle, v.get(6).copied().unwrap_or(0), total)
        })
        .collect()
}

/// User + system ticks of every `ksoftirqd/N` thread.
fn ksoftirqd_ticks() -> u64 {
    let mut sum = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let path = entry.path();
        if !std::fs::read_to_string(path.join("comm")).is_ok_and(|c| c.starts_with("ksoftirqd/")) {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("stat")).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let v: Vec<u64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
        // After the comm the numeric fields start at ppid (field 4); utime and stime are fields 14 and 15.
        sum += v.get(10).copied().unwrap_or(0) + v.get(11).copied().unwrap_or(0);
    }
    sum
}

/// `TcpExt: TCPSynRetrans` of namespace `ns` (SYNs sent again: a connect that waited ≥ 1 s for its answer).
fn syn_retransmits(ns: &Netns) -> i64 {
    let text = ns
        .run(|| std::fs::read_to_string("/proc/thread-self/net/netstat"))
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPSynRetrans")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default()
}

fn date() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// The first line of each tool's version output.
async fn versions() -> String {
    let mut out = Vec::new();
    for (prog, arg) in [
        ("iperf3", "--version"),
        ("wrk", "--version"),
        ("haproxy", "-v"),
        ("nft", "--version"),
    ] {
        let v = std::process::Command::new(prog)
            .arg(arg)
            .output()
            .map(|o| {
                let text = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                text.lines().next().unwrap_or("").trim().to_string()
            })
            .unwrap_or_else(|_| format!("{prog}: not found"));
        out.push(v);
    }
    out.join("; ")
}
