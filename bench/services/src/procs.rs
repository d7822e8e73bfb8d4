//! Scratch directories, `skep daemon` processes, command runs, and /proc CPU and memory readings.

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// A directory removed on drop (unless kept).
pub struct Scratch {
    pub path: PathBuf,
    pub keep: bool,
}

impl Scratch {
    /// `<base>/skep-bench-services-<pid>-<name>`, emptied first.
    pub fn new(base: &str, name: &str, keep: bool) -> anyhow::Result<Scratch> {
        let path = PathBuf::from(base).join(format!("skep-bench-services-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path, keep })
    }
}

/// Scratch directories to remove once more after the runtime has stopped (a simulated worker's task manager may
/// still be writing its `tasks.json`, and recreating its directory, while the first removal runs).
static LEFT: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
            LEFT.lock().unwrap_or_else(|p| p.into_inner()).push(self.path.clone());
        }
    }
}

/// Removes what [`Scratch`] removed before, again; call after the runtime has shut down.
pub fn final_cleanup() {
    for p in LEFT.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
        let _ = std::fs::remove_dir_all(&p);
    }
}

/// Runs a command to completion (bounded), returning trimmed stdout; a non-zero exit is an error with stderr.
pub async fn run(argv: &[String], timeout: Duration) -> anyhow::Result<String> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("`{}` timed out after {timeout:?}", argv.join(" ")))?
        .with_context(|| format!("running {}", argv[0]))?;
    anyhow::ensure!(
        out.status.success(),
        "`{}` failed ({}): {}{}",
        argv.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `run` with `&str` arguments.
pub async fn run_s(argv: &[&str], timeout: Duration) -> anyhow::Result<String> {
    run(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>(), timeout).await
}

/// One `skep daemon`: its data root holds `skep.sock` and `daemon.log`. SIGKILLed on drop.
pub struct Daemon {
    pub name: String,
    pub bin: PathBuf,
    pub dir: PathBuf,
    pub sock: PathBuf,
    pub log: PathBuf,
    /// `IP:port` of its cluster endpoint.
    pub addr: String,
    engine: String,
    child: Option<Child>,
    pub pid: u32,
}

impl Daemon {
    /// Starts `skep daemon --engine <engine> --data-root <dir> -H unix://<dir>/skep.sock` (RUST_LOG=warn).
    pub fn start(bin: &Path, name: &str, dir: PathBuf, addr: &str, engine: &str) -> anyhow::Result<Daemon> {
        std::fs::create_dir_all(&dir)?;
        let mut d = Daemon {
            name: name.into(),
            bin: bin.into(),
            sock: dir.join("skep.sock"),
            log: dir.join("daemon.log"),
            dir,
            addr: addr.into(),
            engine: engine.into(),
            child: None,
            pid: 0,
        };
        d.spawn()?;
        Ok(d)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(&self.bin);
        cmd.args(["daemon", "--engine", &self.engine, "--data-root"])
            .arg(&self.dir)
            .arg("-H")
            .arg(format!("unix://{}", self.sock.display()))
            .env("RUST_LOG", std::env::var("SKEP_BENCH_DAEMON_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        #[allow(unsafe_code)]
        // SAFETY: setpriority is async-signal-safe; the daemons under test run at nice 0 whatever the bench runs at
        unsafe {
            cmd.pre_exec(|| {
                libc::setpriority(libc::PRIO_PROCESS, 0, 0);
                Ok(())
            });
        }
        let child = cmd.spawn().with_context(|| format!("starting {} ({})", self.name, self.bin.display()))?;
        self.pid = child.id().unwrap_or(0);
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `GET /_ping` answers (bounded).
    pub async fn wait_api(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Some(st) = c.try_wait()? {
                    anyhow::bail!("{} exited ({st}); see {}", self.name, self.log.display());
                }
            }
            if let Ok((200, _)) = crate::http::request(&self.sock, "GET", "/_ping", None, Duration::from_secs(1)).await {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{} API not up after {timeout:?}", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `skep -H unix://<sock> <args>`.
    pub async fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut argv = vec![self.bin.display().to_string(), "-H".into(), format!("unix://{}", self.sock.display())];
        argv.extend(args.iter().map(|s| s.to_string()));
        run(&argv, Duration::from_secs(60)).await.with_context(|| self.name.clone())
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?;
            tokio::time::timeout(Duration::from_secs(10), c.wait()).await.context("reaping after SIGKILL")??;
        }
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(&mut self, grace: Duration) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                #[allow(unsafe_code)]
                // SAFETY: plain kill(2) on our own child's PID (not yet reaped, so not reused).
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(grace, c.wait()).await.is_err() {
                let _ = c.start_kill();
                let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
            }
        }
    }

    /// Distinct WARN/ERROR lines of its log (timestamps and span fields stripped), with counts, most frequent first.
    pub fn log_problems(&self, max: usize) -> Vec<(usize, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
        for l in text.lines().filter(|l| l.contains(" WARN") || l.contains("ERROR") || l.contains("panicked")) {
            // drop the timestamp (first field) and shorten IDs so that repeats group together
            let clean = strip_ansi(l);
            let rest = clean.split_once(' ').map(|(_, r)| r).unwrap_or(&clean).trim();
            let key: String = rest
                .split_whitespace()
                .map(|w| if w.len() >= 20 && w.chars().filter(|c| c.is_ascii_alphanumeric()).count() >= 20 { "<id>".to_string() } else { w.to_string() })
                .collect::<Vec<_>>()
                .join(" ");
            // numbers (log indexes, terms, ports) vary between repeats of the same problem
            let mut key_n = String::new();
            for ch in key.chars() {
                if ch.is_ascii_digit() {
                    if !key_n.ends_with('#') {
                        key_n.push('#');
                    }
                } else {
                    key_n.push(ch);
                }
            }
            let key = key_n;
            let key: String = key.chars().take(220).collect();
            *counts.entry(key).or_default() += 1;
        }
        let mut v: Vec<(usize, String)> = counts.into_iter().map(|(k, n)| (n, k)).collect();
        v.sort_by_key(|x| std::cmp::Reverse(x.0));
        v.truncate(max);
        v
    }
}

/// Clock ticks per second for /proc/<pid>/stat.
pub fn clk_tck() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process (all threads), in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // after "pid (comm) ": state is field 3, utime 14, stime 15 → indices 11, 12 here
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some((ut + st) as f64 / clk_tck())
}

/// A `Vm*:` line of /proc/<pid>/status, in MiB.
pub fn vm_mib(pid: u32, key: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let l = s.lines().find(|l| l.starts_with(key))?;
    let kb: f64 = l.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// The PID of the oldest process with this exact name (`dockerd`, `containerd`).
pub fn pid_of(name: &str) -> Option<u32> {
    let mut best: Option<(u64, u32)> = None;
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(comm) = std::fs::read_to_string(format!("/proc/{pid}/comm")) else { continue };
        if comm.trim() != name {
            continue;
        }
        let start = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s[s.rfind(')')? + 2..].split_whitespace().nth(19)?.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        if best.is_none_or(|(b, _)| start < b) {
            best = Some((start, pid));
        }
    }
    best.map(|(_, p)| p)
}

/// CPU time and peak RSS of a set of processes over a phase.
pub struct Meter {
    pids: Vec<(String, u32)>,
    cpu0: Vec<f64>,
    /// Busy seconds of the whole machine (all cores) at the start.
    machine0: f64,
    t0: Instant,
    /// Highest VmRSS seen by `sample`, MiB.
    pub rss_max: Vec<f64>,
    /// The host's UDP receive-buffer drops at the start (see [`udp_rcvbuf_errors`]).
    udp0: Option<u64>,
}

/// One process's figures over a phase.
#[derive(Clone, Debug)]
pub struct Usage {
    pub name: String,
    /// CPU seconds used.
    pub cpu_s: f64,
    /// Of one core, over the phase.
    pub cpu_pct: f64,
    /// VmRSS at the end, MiB.
    pub rss_end: f64,
    /// Highest VmRSS sampled during the phase, MiB.
    pub rss_max: f64,
}

impl Meter {
    pub fn start(pids: Vec<(String, u32)>) -> Meter {
        let cpu0 = pids.iter().map(|(_, p)| cpu_secs(*p).unwrap_or(0.0)).collect();
        let rss_max = pids.iter().map(|(_, p)| vm_mib(*p, "VmRSS:").unwrap_or(0.0)).collect();
        let udp0 = udp_rcvbuf_errors();
        Meter { pids, cpu0, machine0: machine_busy_secs().unwrap_or(0.0), t0: Instant::now(), rss_max, udp0 }
    }

    /// [`usage_table`] of [`Meter::finish`], and the UDP packets the host dropped meanwhile for want of room in a
    /// socket's receive buffer (a saturated manager's callers see them as silence).
    pub fn report(&mut self) -> String {
        let mut s = usage_table(&self.finish());
        if let (Some(a), Some(b)) = (self.udp0, udp_rcvbuf_errors()) {
            s.push_str(&format!(
                "
UDP packets dropped by the host for full receive buffers (`RcvbufErrors`, /proc/net/snmp): {}\n",
                b.saturating_sub(a)
            ));
        }
        s
    }

    pub fn sample(&mut self) {
        for (i, (_, p)) in self.pids.iter().enumerate() {
            if let Some(r) = vm_mib(*p, "VmRSS:") {
                self.rss_max[i] = self.rss_max[i].max(r);
            }
        }
    }

    pub fn finish(&mut self) -> Vec<Usage> {
        self.sample();
        let wall = self.t0.elapsed().as_secs_f64().max(1e-9);
        let mut v: Vec<Usage> = self
            .pids
            .iter()
            .enumerate()
            .map(|(i, (n, p))| {
                let cpu = cpu_secs(*p).map(|c| c - self.cpu0[i]).unwrap_or(f64::NAN);
                Usage {
                    name: n.clone(),
                    cpu_s: cpu,
                    cpu_pct: 100.0 * cpu / wall,
                    rss_end: vm_mib(*p, "VmRSS:").unwrap_or(f64::NAN),
                    rss_max: self.rss_max[i],
                }
            })
            .collect();
        // what the rest of the machine (other sessions' builds and tests, the engine...) used meanwhile
        if let Some(m) = machine_busy_secs() {
            let ours: f64 = v.iter().map(|u| u.cpu_s).filter(|c| c.is_finite()).sum();
            let rest = (m - self.machine0 - ours).max(0.0);
            v.push(Usage { name: "(rest of the machine: runc, shims, other sessions)".into(), cpu_s: rest, cpu_pct: 100.0 * rest / wall, rss_end: f64::NAN, rss_max: f64::NAN });
        }
        v
    }
}

/// Busy CPU seconds of the whole machine (user, nice, system, irq, softirq, steal of all cores) from /proc/stat.
pub fn machine_busy_secs() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/stat").ok()?;
    let l = s.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = l.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal
    let busy = f.first()? + f.get(1)? + f.get(2)? + f.get(5)? + f.get(6)? + f.get(7).copied().unwrap_or(0);
    Some(busy as f64 / clk_tck())
}

/// The host's count of UDP packets dropped because a socket's receive buffer was full (`Udp: RcvbufErrors` in
/// /proc/net/snmp; host-wide, so other sessions' traffic counts too).
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = s.lines().filter(|l| l.starts_with("Udp: "));
    let (names, values) = (udp.next()?, udp.next()?);
    let at = names.split_whitespace().position(|n| n == "RcvbufErrors")?;
    values.split_whitespace().nth(at)?.parse().ok()
}

/// Markdown table of usages.
pub fn usage_table(u: &[Usage]) -> String {
    let mut s = String::from("| process | CPU s | CPU % of one core | RSS end MiB | RSS max MiB |\n|---|---|---|---|---|\n");
    for x in u {
        let mib = |m: f64| if m.is_finite() { format!("{m:.1}") } else { "".into() };
        s.push_str(&format!("| {} | {:.2} | {:.0} | {} | {} |\n", x.name, x.cpu_s, x.cpu_pct, mib(x.rss_end), mib(x.rss_max)));
    }
    s
}

/// Removes ANSI colour escapes (`ESC [ ... m`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\u{1b}' {
            for d in it.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Set the nice value of every thread of this process (Linux keeps it per thread; threads made later inherit it from
/// the thread that makes them).
pub fn renice_self(nice: i32) {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return };
    for t in tasks.flatten() {
        if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<libc::id_t>().ok()) {
            #[allow(unsafe_code)]
            // SAFETY: plain syscall on one of our own thread IDs.
            unsafe {
                libc::setpriority(libc::PRIO_PROCESS, tid, nice);
            }
        }
    }
}
