//! Scratch directories and member processes, both cleaned up on drop (also on error or panic).

use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// A temp directory removed on drop (unless `keep`).
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    /// Keep it for post-mortems (`--keep`).
    keep: bool,
}

impl Scratch {
    /// Creates `<base>/skep-bench-<pid>-<name>`, removing a leftover of the same name first.
    pub fn new(base: &Path, name: &str, keep: bool) -> anyhow::Result<Scratch> {
        let path = base.join(format!("skep-bench-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path, keep })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A cluster member's process: started with its output appended to a log file, `SIGKILL`ed on drop.
#[derive(Debug)]
pub struct Member {
    /// For messages (`skep-2`, `etcd-1`).
    pub name: String,
    /// The program and arguments, reused by [`Member::restart`] (same data directory).
    argv: Vec<String>,
    env: Vec<(String, String)>,
    /// stdout + stderr of every start.
    pub log: PathBuf,
    child: Option<Child>,
}

impl Member {
    pub fn new(name: &str, argv: Vec<String>, env: Vec<(String, String)>, log: PathBuf) -> Member {
        Member { name: name.into(), argv, env, log, child: None }
    }

    /// Starts the process (does not wait for readiness).
    pub fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(&self.argv[0]);
        cmd.args(&self.argv[1..])
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        self.child = Some(cmd.spawn().with_context(|| format!("starting {} ({})", self.name, self.argv[0]))?);
        Ok(())
    }

    /// `SIGKILL` and reap. Returns once the process is gone.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            c.start_kill()?;
            tokio::time::timeout(Duration::from_secs(10), c.wait()).await.context("reaping after SIGKILL")??;
        }
        Ok(())
    }

    /// Whether the process is still running (an exit is an error with the log tail).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        let Some(c) = self.child.as_mut() else { anyhow::bail!("{} is not started", self.name) };
        if let Some(st) = c.try_wait()? {
            self.child = None;
            anyhow::bail!("{} exited ({st}); log tail:\n{}", self.name, self.log_tail(30));
        }
        Ok(())
    }

    pub fn is_started(&self) -> bool {
        self.child.is_some()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Runs a short command to completion (bounded by `timeout`) and returns its trimmed stdout.
pub async fn run(argv: &[String], timeout: Duration) -> anyhow::Result<String> {
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .with_context(|| format!("{argv:?} timed out after {timeout:?}"))??;
    anyhow::ensure!(
        out.status.success(),
        "{argv:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}
