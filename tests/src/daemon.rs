//! One `skep daemon` inside a host namespace: started, killed, stopped and restarted on the same data root.

use crate::process::Proc;
use anyhow::Context as _;
use std::io::Write as _;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A skep daemon of one host. Holds the child process (so the test can `SIGKILL` it) and knows its data
/// root, socket and log. Killed on drop.
#[derive(Debug)]
pub struct Daemon {
    /// Host name, for messages (`h1`).
    name: String,
    /// Namespace it runs in.
    netns: String,
    /// `--data-root`; kept across restarts so the node keeps its identity and raft state.
    data_root: PathBuf,
    /// The skep binary.
    bin: PathBuf,
    /// The running process, if any.
    proc: Option<Proc>,
    /// How many times it was started (log markers count them).
    starts: u32,
    /// `--engine` value (`auto`, `process`, `docker`); `None` leaves the daemon's default (`auto`).
    engine: Option<String>,
    /// Further flags for the next starts ([`DEFAULT_EXTRA_ARGS`] unless set; e.g. a `-H tcp://…` with
    /// `--tlsverify …`).
    extra_args: Vec<String>,
    /// More environment for the next starts.
    extra_env: Vec<(String, String)>,
}

/// Flags every test daemon gets unless a test says otherwise: the process engine runs `busybox`, `sleep`, … as the
/// host's programs (`--host-programs names`), which most tests rely on; the image tests run real images instead.
pub const DEFAULT_EXTRA_ARGS: [&str; 2] = ["--host-programs", "names"];

impl Daemon {
    /// A daemon of host `name` in namespace `netns` with data root `data_root` (not started).
    pub fn new(name: &str, netns: &str, data_root: &Path, bin: &Path) -> Daemon {
        Daemon {
            name: name.to_owned(),
            netns: netns.to_owned(),
            data_root: data_root.to_owned(),
            bin: bin.to_owned(),
            proc: None,
            starts: 0,
            engine: None,
            extra_args: DEFAULT_EXTRA_ARGS.iter().map(|s| s.to_string()).collect(),
            extra_env: Vec::new(),
        }
    }

    /// Sets the further flags of the next starts (replacing [`DEFAULT_EXTRA_ARGS`]).
    pub fn set_extra_args(&mut self, args: &[String]) {
        self.extra_args = args.to_vec();
    }

    /// Sets more environment variables for the next starts.
    pub fn set_extra_env(&mut self, env: &[(&str, &str)]) {
        self.extra_env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    }

    /// Sets the skep binary of the next starts (an upgrade: the same data root, another program).
    pub fn set_bin(&mut self, bin: &Path) {
        self.bin = bin.to_owned();
    }

    /// The skep binary it starts (or started last).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Sets the `--engine` flag of the next starts (`None`: the daemon's default, `auto`).
    pub fn set_engine(&mut self, engine: Option<&str>) {
        self.engine = engine.map(str::to_owned);
    }

    /// The `--engine` flag it starts with, if any.
    pub fn engine(&self) -> Option<&str> {
        self.engine.as_deref()
    }

    /// The API socket: `<data root>/skep.sock`.
    pub fn socket(&self) -> PathBuf {
        self.data_root.join("skep.sock")
    }

    /// The `-H` value for clients: `unix://<data root>/skep.sock`.
    pub fn host_arg(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// stdout and stderr of every start, appended: `<data root>/daemon.log`.
    pub fn log_path(&self) -> PathBuf {
        self.data_root.join("daemon.log")
    }

    /// Data root.
    pub fn data_root(&self) -> &Path {
        &self.data_root
    }

    /// How many times it has been started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Pid of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// Whether the process is running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Starts `ip netns exec <ns> skep daemon --data-root <dir> -H unix://<dir>/skep.sock [--engine E]` with
    /// `RUST_LOG=info` (or env `SKEP_TEST_RUST_LOG`), output appended to [`Daemon::log_path`].
    /// Does not wait for the socket: see [`Daemon::wait_socket`].
    pub fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.is_running(), "daemon {} is already running (pid {:?})", self.name, self.pid());
        std::fs::create_dir_all(&self.data_root)?;
        self.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .with_context(|| format!("opening {}", self.log_path().display()))?;
        writeln!(
            log,
            "==== harness: start #{} of daemon {} in netns {} (engine {}, binary {}) ====",
            self.starts,
            self.name,
            self.netns,
            self.engine.as_deref().unwrap_or("default"),
            self.bin.display()
        )?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(&self.bin)
            .arg("daemon")
            .arg("--data-root")
            .arg(&self.data_root)
            .arg("-H")
            .arg(self.host_arg())
            .arg("--net-prefix")
            .arg(format!("{}-x", self.netns))
            .args(self.engine.iter().flat_map(|e| ["--engine", e.as_str()]))
            .args(&self.extra_args)
            .envs(self.extra_env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", std::env::var("SKEP_TEST_RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env_remove("SKEP_HOST")
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log));
        self.proc = Some(Proc::spawn(format!("daemon {}", self.name), cmd)?);
        Ok(())
    }

    /// Waits (bounded) until the socket accepts connections. Fails early, with the log tail, if the
    /// process exits.
    pub fn wait_socket(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let start = Instant::now();
        let sock = self.socket();
        let mut last = String::from("socket file absent");
        for _ in 0..(timeout.as_millis() / 50 + 2) {
            if let Some(st) = self.proc.as_mut().and_then(Proc::try_wait) {
                anyhow::bail!("daemon {} exited ({st}) before its socket was ready; log tail:\n{}", self.name, self.log_tail(50));
            }
            anyhow::ensure!(self.proc.is_some(), "daemon {} is not started", self.name);
            match UnixStream::connect(&sock) {
                Ok(_) => return Ok(()),
                Err(e) => last = e.to_string(),
            }
            if start.elapsed() >= timeout {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        anyhow::bail!(
            "timed out after {:?} waiting for daemon {} to accept on {}; last error: {last}; log tail:\n{}",
            timeout,
            self.name,
            sock.display(),
            self.log_tail(50)
        )
    }

    /// `SIGKILL` (no chance to clean up, like a crash). Returns once the process is reaped.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let mut p = self.proc.take().with_context(|| format!("daemon {} is not running", self.name))?;
        p.kill()?;
        Ok(())
    }

    /// `SIGTERM`, then `SIGKILL` after `grace`. Returns whether the `SIGKILL` was needed.
    pub fn stop(&mut self, grace: Duration) -> anyhow::Result<bool> {
        let mut p = self.proc.take().with_context(|| format!("daemon {} is not running", self.name))?;
        let (_, killed) = p.terminate(grace)?;
        if killed {
            eprintln!("harness: daemon {} ignored SIGTERM for {grace:?}; killed", self.name);
        }
        Ok(killed)
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        match std::fs::read(self.log_path()) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(n)..].join("\n")
            }
            Err(e) => format!("(no log at {}: {e})", self.log_path().display()),
        }
    }
}
