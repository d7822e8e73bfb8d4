//! Child processes inside the lab's namespaces: long-running ones (servers) killed when their handle drops, and
//! bounded runs (clients) whose output is returned.
//!
//! A command enters its namespace through [`Netns::command`] (`nsenter --net=PATH -- …`), which execs, so the PID
//! of the child is the PID of the program itself and killing it ends it.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use skep_overlay::netns::Netns;

/// `program args…` inside `ns`, optionally pinned to `cpus` with taskset.
pub fn in_ns(ns: &Netns, cpus: Option<&str>, program: &str, args: &[&str]) -> std::process::Command {
    match cpus {
        Some(cpus) => {
            let mut cmd = ns.command("taskset");
            cmd.args(["-c", cpus, program]).args(args);
            cmd
        }
        None => {
            let mut cmd = ns.command(program);
            cmd.args(args);
            cmd
        }
    }
}

/// A server process; SIGKILLed when dropped (tokio's `kill_on_drop`, reaped by its runtime).
pub struct Daemon {
    child: tokio::process::Child,
    what: String,
    log: std::path::PathBuf,
}

impl Daemon {
    /// Starts `cmd` with stdout and stderr into `log`.
    pub fn spawn(cmd: std::process::Command, what: &str, log: &Path) -> Result<Daemon> {
        let file = std::fs::File::create(log).with_context(|| format!("log {}", log.display()))?;
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .kill_on_drop(true);
        let child = cmd.spawn().with_context(|| format!("start {what}"))?;
        Ok(Daemon {
            child,
            what: what.into(),
            log: log.into(),
        })
    }

    /// Fails (with the end of its log) if the process has already exited.
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited ({status}): {}", self.what, tail(&self.log));
        }
        Ok(())
    }

    /// Waits up to `limit` for the process to exit on its own; kills it otherwise.
    pub async fn finish(mut self, limit: Duration) {
        if tokio::time::timeout(limit, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// Runs `cmd` to completion, bounded by `limit` (killed after it), and returns its stdout. A non-zero exit is an
/// error carrying stderr.
pub async fn run(cmd: std::process::Command, what: &str, limit: Duration) -> Result<String> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().with_context(|| format!("start {what}"))?;
    let out = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(out) => out.with_context(|| format!("wait for {what}"))?,
        Err(_) => bail!("{what} did not finish within {limit:?}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        bail!(
            "{what} failed ({}): {} {}",
            out.status,
            stderr.trim(),
            last_chars(&stdout, 400)
        );
    }
    Ok(stdout)
}

/// The last lines of a log file, for error messages.
pub fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    last_chars(&text, 600).to_string()
}

fn last_chars(s: &str, n: usize) -> &str {
    let start = s.len().saturating_sub(n);
    let start = (start..s.len()).find(|i| s.is_char_boundary(*i)).unwrap_or(s.len());
    s[start..].trim()
}
