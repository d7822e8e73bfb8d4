//! Child processes with bounds: [`run`] runs a command to completion or kills it after a timeout;
//! [`Proc`] is a long-running process (a daemon) whose whole process group is killed on drop.
//!
//! Every child gets its own process group (so a kill reaches whatever it forked) and
//! `PR_SET_PDEATHSIG = SIGKILL` (so it dies with the test process even when the test is killed and
//! no destructor runs; the signal fires when the *thread* that spawned it exits, which for a test is
//! the end of the test).

use anyhow::Context as _;
use std::io::Read;
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long [`run`] waits for the output pipes to close after the process has exited.
const PIPE_DRAIN: Duration = Duration::from_secs(2);
/// How long a `SIGKILL`ed process may take to be reaped before we give up on it.
const REAP_BOUND: Duration = Duration::from_secs(10);

/// What a finished command did.
#[derive(Debug, Clone)]
pub struct Output {
    /// The command line, for error messages.
    pub cmd: String,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// Signal that ended the process, if any.
    pub signal: Option<i32>,
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// Wall time from spawn to exit.
    pub elapsed: Duration,
}

impl Output {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// Stdout if the command succeeded, else an error with the command, exit code, stderr and stdout.
    pub fn ok(&self) -> anyhow::Result<&str> {
        anyhow::ensure!(self.success(), "{}", self.describe_failure());
        Ok(&self.stdout)
    }

    /// An error if the command *succeeded*: for commands that must be refused. Returns stdout+stderr.
    pub fn refused(&self) -> anyhow::Result<String> {
        anyhow::ensure!(
            !self.success(),
            "`{}` succeeded but should have been refused; stdout: {}",
            self.cmd,
            self.stdout.trim()
        );
        Ok(format!("{}{}", self.stdout, self.stderr))
    }

    /// Stdout parsed as one JSON value (the command must have succeeded).
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        crate::json::parse(self.ok()?).with_context(|| format!("output of `{}`", self.cmd))
    }

    /// Stdout parsed as one JSON value per non-empty line (the command must have succeeded).
    pub fn json_lines(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        crate::json::lines(self.ok()?).with_context(|| format!("output of `{}`", self.cmd))
    }

    /// One-line description of a failed run.
    pub fn describe_failure(&self) -> String {
        let how = match (self.code, self.signal) {
            (Some(c), _) => format!("exit code {c}"),
            (None, Some(s)) => format!("signal {s}"),
            _ => "unknown status".into(),
        };
        format!(
            "`{}` failed ({how}) after {} ms; stderr: {}; stdout: {}",
            self.cmd,
            self.elapsed.as_millis(),
            self.stderr.trim(),
            self.stdout.trim()
        )
    }
}

/// Renders a command line for messages.
pub fn command_line(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Puts the child in its own process group and makes it die with its parent thread.
pub(crate) fn harden(cmd: &mut Command) {
    cmd.process_group(0);
    #[allow(unsafe_code)]
    // SAFETY: prctl is async-signal-safe; the closure touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `sig` to the process group `pgid` (ignores "no such process").
pub fn signal_group(pgid: u32, sig: i32) {
    #[allow(unsafe_code)]
    // SAFETY: plain syscall on a pid we own; a negative pid addresses the group.
    unsafe {
        libc::kill(-(pgid as libc::pid_t), sig);
    }
}

/// Whether a process with this pid exists (zombies included).
pub fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Runs `cmd` to completion, killing its process group if it runs longer than `timeout`.
///
/// Stdin is `/dev/null`; stdout and stderr are captured. A non-zero exit is *not* an error here (see
/// [`Output::ok`]); a timeout is, and the error includes what the command printed so far.
pub fn run(mut cmd: Command, timeout: Duration) -> anyhow::Result<Output> {
    let line = command_line(&cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    harden(&mut cmd);
    let start = Instant::now();
    let mut child = cmd.spawn().with_context(|| format!("spawning `{line}`"))?;
    let pgid = child.id();
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait()? {
            break Some(st);
        }
        if start.elapsed() >= timeout {
            timed_out = true;
            signal_group(pgid, libc::SIGKILL);
            break reap(&mut child, REAP_BOUND);
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // A grandchild that outlived the child could hold the pipes open: draining is bounded too. (No group
    // kill here: the child is reaped, so its pid could in principle already belong to someone else.)
    let stdout = out.recv_timeout(PIPE_DRAIN).unwrap_or_default();
    let stderr = err.recv_timeout(PIPE_DRAIN).unwrap_or_default();
    let o = Output {
        cmd: line,
        code: status.and_then(|s| s.code()),
        signal: status.and_then(|s| s.signal()),
        stdout,
        stderr,
        elapsed: start.elapsed(),
    };
    anyhow::ensure!(
        !timed_out,
        "`{}` timed out after {} ms and was killed; stderr so far: {}; stdout so far: {}",
        o.cmd,
        timeout.as_millis(),
        o.stderr.trim(),
        o.stdout.trim()
    );
    anyhow::ensure!(status.is_some(), "`{}` could not be reaped after SIGKILL", o.cmd);
    Ok(o)
}

/// Reads a pipe to its end on a thread; the result arrives on the returned channel.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

/// Waits (bounded) for an already signalled child to exit.
fn reap(child: &mut Child, bound: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < bound {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// A long-running child process in its own process group; the group is `SIGKILL`ed on drop.
#[derive(Debug)]
pub struct Proc {
    /// What it is, for messages (e.g. `daemon h2`).
    name: String,
    /// The child; its pid is also the process group id.
    child: Child,
    /// Set once the child has been reaped, so drop does not signal a recycled pid.
    exited: Option<ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` (stdin `/dev/null`; stdout and stderr as configured by the caller, e.g. to a log file).
    pub fn spawn(name: impl Into<String>, mut cmd: Command) -> anyhow::Result<Proc> {
        let name = name.into();
        cmd.stdin(Stdio::null());
        harden(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("spawning {name}: `{}`", command_line(&cmd)))?;
        Ok(Proc { name, child, exited: None })
    }

    /// Process id (also the process group id).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Name given at spawn.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The exit status if it has exited (reaps it), `None` while it runs.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            if let Ok(Some(st)) = self.child.try_wait() {
                self.exited = Some(st);
            }
        }
        self.exited
    }

    /// Still running.
    pub fn is_running(&mut self) -> bool {
        self.try_wait().is_none()
    }

    /// Sends `sig` to the whole process group (no-op once exited).
    pub fn signal(&mut self, sig: i32) {
        if self.is_running() {
            signal_group(self.pid(), sig);
        }
    }

    /// `SIGKILL`s the process group and reaps the child (bounded).
    pub fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(libc::SIGKILL);
        if let Some(st) = self.exited {
            return Ok(st);
        }
        let st = reap(&mut self.child, REAP_BOUND)
            .with_context(|| format!("{} (pid {}) not reaped {:?} after SIGKILL", self.name, self.pid(), REAP_BOUND))?;
        self.exited = Some(st);
        Ok(st)
    }

    /// `SIGTERM`, then `SIGKILL` if it has not exited within `grace`. Returns the exit status and whether
    /// the `SIGKILL` was needed.
    pub fn terminate(&mut self, grace: Duration) -> anyhow::Result<(ExitStatus, bool)> {
        self.signal(libc::SIGTERM);
        if let Some(st) = self.exited {
            return Ok((st, false));
        }
        if let Some(st) = reap(&mut self.child, grace) {
            self.exited = Some(st);
            return Ok((st, false));
        }
        Ok((self.kill()?, true))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.kill();
        }
    }
}
