//! Engines: what actually runs a task on this host.
//!
//! The agent drives every task through the same steps (swarmkit's executor/controller contract,
//! moby/swarmkit `agent/exec/controller.go`): [`prepare`](Engine::prepare) (PREPARING → READY),
//! [`start`](Engine::start) (STARTING → RUNNING), [`wait`](Engine::wait) (→ COMPLETE on exit 0, FAILED otherwise),
//! [`stop`](Engine::stop) (→ SHUTDOWN when the desired state says so) and [`remove`](Engine::remove). An error before
//! the task started maps to REJECTED, at or after it to FAILED (see [`EngineError`]).
//!
//! Tasks outlive the agent: after a daemon restart the agent [`adopt`](Engine::adopt)s the [`Handle`]s it persisted,
//! and [`list`](Engine::list) tells it what else this engine is running so it can stop orphans.
//!
//! # Layout
//! - [`process`]: the embedded default; a supervised host process in its own PID, mount and network namespaces.
//! - [`docker`]: containers through the local Docker daemon (bollard).
//! - [`spec`]: reading a `ContainerSpec` the same way in every engine (signals, grace period, labels, names, mounts,
//!   limits, security settings).
//! - [`template`]: swarm templates (`{{.Task.Slot}}`) in hostnames, environment and mounts.
//! - [`task_runtime`]: the design notes (what a task gets, step by step).
//! - [`error`]: the [`EngineError`] type, and how its variants map to task states.
//! - `suite` (tests, or the `test-suite` feature): the conformance suite every engine must pass.

use serde::{Deserialize, Serialize};
use skep_api::docker::health::Health;
use skep_api::docker::Task;
use skep_api::logs::{LogsBatch, LogsRequest};
use std::future::Future;
use tokio::sync::watch;

pub mod docker;
mod docker_logs;
pub mod error;
pub mod process;
pub mod spec;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;
pub mod template;
#[cfg(test)]
mod image_tests;
#[cfg(test)]
mod tests;

/// Design notes (`docs/design/task_runtime.md`): how a task is set up, cgroups, what is isolated and what is shared
/// with the host, mounts and volumes, limits, daemon restarts.
#[doc = include_str!("../../../docs/design/task_runtime.md")]
pub mod task_runtime {}

pub use docker::DockerEngine;
pub use error::EngineError;
pub use process::ProcessEngine;

/// A started task, as far as its engine is concerned: enough to find it again after an agent restart, so the agent
/// persists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handle {
    /// The task.
    pub task_id: String,
    /// [`Engine::name`] of the engine that started it.
    pub engine: String,
    /// The container ID (`docker`), or `pid:<pid>:<start time>` (`process`: the start time from `/proc/<pid>/stat`
    /// tells a reused PID from ours). Empty for something prepared but never started.
    pub id: String,
    /// The host PID (the container's main process, or the process engine's supervisor); 0 when not running.
    pub pid: i64,
}

/// How a task's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Exit {
    /// It exited with this code. Like Docker, a program killed by a signal while its supervisor lived on reports
    /// `128 + signal` here (137 for SIGKILL); `-1` means the code is unknown (the process vanished while the agent
    /// was down and left no record).
    Code(i64),
    /// The task was killed by this signal as a whole (the process engine's SIGKILL after the grace period).
    Signal(i32),
    /// The kernel's OOM killer killed a process of the task (it reached its memory limit) and the task ended with
    /// this code (137 when its main program was the one killed).
    OomKilled {
        /// Exit code, as in [`Exit::Code`].
        code: i64,
        /// The memory limit the task had, in bytes (0 when unknown).
        memory_limit: u64,
    },
}

impl Exit {
    /// Exit code 0: the task is COMPLETE rather than FAILED.
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }
}

/// A file a task gets in memory only (a secret's or a config's content): written to a tmpfs, never to the node's
/// disk, and mounted read-only at `target` in the task.
#[derive(Clone, PartialEq, Eq)]
pub struct TaskFile {
    /// Absolute path in the task.
    pub target: std::path::PathBuf,
    /// Content.
    pub data: Vec<u8>,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Permission bits (`0o444`).
    pub mode: u32,
}

impl std::fmt::Debug for TaskFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // the content may be a secret: never in a log
        f.debug_struct("TaskFile")
            .field("target", &self.target)
            .field("bytes", &self.data.len())
            .field("uid", &self.uid)
            .field("gid", &self.gid)
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// Most files one task may get, and their total size.
pub const MAX_TASK_FILES: usize = 1024;
/// See [`MAX_TASK_FILES`].
pub const MAX_TASK_FILES_BYTES: usize = 64 << 20;

impl TaskFile {
    /// Checks a task's files: absolute targets without `..`, one file per target, permission bits only, bounded.
    pub fn check_all(files: &[TaskFile]) -> Result<(), EngineError> {
        let total: usize = files.iter().map(|f| f.data.len()).sum();
        if files.len() > MAX_TASK_FILES || total > MAX_TASK_FILES_BYTES {
            return Err(EngineError::Invalid(format!(
                "too many files for one task: {} files, {total} bytes (at most {MAX_TASK_FILES}, {MAX_TASK_FILES_BYTES})",
                files.len()
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in files {
            let t = &f.target;
            if !t.is_absolute() || t.parent().is_none() || t.components().any(|c| c == std::path::Component::ParentDir) {
                return Err(EngineError::Invalid(format!("invalid file target {}: an absolute path is needed", t.display())));
            }
            if f.mode > 0o7777 {
                return Err(EngineError::Invalid(format!("invalid mode {:o} for {}", f.mode, t.display())));
            }
            if !seen.insert(t.clone()) {
                return Err(EngineError::Invalid(format!("two files for {}", t.display())));
            }
        }
        Ok(())
    }
}

/// Something that runs tasks. Every method may be called again after an agent restart (they are idempotent where it
/// matters: `stop`, `remove`), and concurrently for different tasks.
pub trait Engine: Send + Sync + 'static {
    /// `process` or `docker`.
    fn name(&self) -> &'static str;

    /// Checks the image or binary and creates (but does not start) what the task needs, labelled with the task,
    /// service and node IDs and the slot. A missing image or program is [`EngineError::NotFound`] (→ REJECTED).
    fn prepare(&self, task: &Task) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Starts a prepared task (errors → REJECTED).
    fn start(&self, task: &Task) -> impl Future<Output = Result<Handle, EngineError>> + Send;

    /// Resolves when the task's process or container exits; works for adopted handles too.
    fn wait(&self, h: &Handle) -> impl Future<Output = Result<Exit, EngineError>> + Send;

    /// Sends `StopSignal` (default SIGTERM), then SIGKILL after `StopGracePeriod` (default 10 s); returns once the
    /// task is gone. Stopping a task that is not running is not an error.
    fn stop(&self, h: &Handle, task: &Task) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// Removes what `prepare` made (container, task directory). Removing what is not there is not an error.
    fn remove(&self, task_id: &str) -> impl Future<Output = Result<(), EngineError>> + Send;

    /// After an agent restart: which of these handles still run (the same process incarnation or container).
    fn adopt(&self, hs: &[Handle]) -> impl Future<Output = Vec<(Handle, bool)>> + Send;

    /// Every task this engine knows on this host, running or not, so the agent can stop and remove orphans.
    fn list(&self) -> impl Future<Output = Result<Vec<Handle>, EngineError>> + Send;

    /// The tail (at most `max_bytes`) of the task's captured stdout and stderr.
    fn logs(&self, task_id: &str, max_bytes: usize) -> impl Future<Output = Result<Vec<u8>, EngineError>> + Send;

    /// One batch of the task's log records for `req` (see [`skep_api::logs`]): when following, waits up to
    /// [`crate::logs::LONG_POLL`] for records to come. A task this engine does not know is [`EngineError::NotFound`].
    fn read_logs(&self, req: &LogsRequest) -> impl Future<Output = Result<LogsBatch, EngineError>> + Send;

    /// Run the task (not started yet) in this network namespace, with `resolv` as its `/etc/resolv.conf`. False when
    /// the engine cannot (the agent then plumbs the task's own namespace after `start`, through its PID).
    fn use_netns(&self, _task_id: &str, _netns: &std::path::Path, _resolv: &std::path::Path) -> bool {
        false
    }

    /// Follows the health of a started task: its `Healthcheck` (for the `docker` engine also its image's
    /// `HEALTHCHECK`, through Docker's own health state). Returns `false` at once when the task has no check;
    /// otherwise sends every change of [`Health`] to `tx` (it starts as [`Health::Starting`]) and runs until dropped.
    fn watch_health(&self, _h: &Handle, _task: &Task, _tx: watch::Sender<Health>) -> impl Future<Output = bool> + Send {
        async { false }
    }

    /// Give the task (not prepared yet: the `docker` engine binds them when it creates the container) these files in
    /// memory only (secrets, configs; see [`TaskFile`]). An engine that cannot refuses, so the task is rejected
    /// rather than run without them.
    fn use_files(&self, _task_id: &str, _files: Vec<TaskFile>) -> Result<(), EngineError> {
        Err(EngineError::Invalid(format!("the {} engine cannot give tasks files (secrets, configs) yet", self.name())))
    }
}

/// One of the built-in engines, chosen at run time (the trait's methods return `impl Future`, so it is not object
/// safe; the agent holds this instead of a `dyn Engine`).
// One per node: the size of the variants does not matter, and boxing would change every constructor's caller.
#[allow(clippy::large_enum_variant)]
pub enum AnyEngine {
    /// [`ProcessEngine`].
    Process(ProcessEngine),
    /// [`DockerEngine`].
    Docker(DockerEngine),
}

macro_rules! dispatch {
    ($self:ident, $e:ident => $body:expr) => {
        match $self {
            AnyEngine::Process($e) => $body,
            AnyEngine::Docker($e) => $body,
        }
    };
}

impl Engine for AnyEngine {
    fn name(&self) -> &'static str {
        dispatch!(self, e => e.name())
    }
    async fn prepare(&self, task: &Task) -> Result<(), EngineError> {
        dispatch!(self, e => e.prepare(task).await)
    }
    async fn start(&self, task: &Task) -> Result<Handle, EngineError> {
        dispatch!(self, e => e.start(task).await)
    }
    async fn wait(&self, h: &Handle) -> Result<Exit, EngineError> {
        dispatch!(self, e => e.wait(h).await)
    }
    async fn stop(&self, h: &Handle, task: &Task) -> Result<(), EngineError> {
        dispatch!(self, e => e.stop(h, task).await)
    }
    async fn remove(&self, task_id: &str) -> Result<(), EngineError> {
        dispatch!(self, e => e.remove(task_id).await)
    }
    fn use_netns(&self, task_id: &str, netns: &std::path::Path, resolv: &std::path::Path) -> bool {
        dispatch!(self, e => e.use_netns(task_id, netns, resolv))
    }
    fn use_files(&self, task_id: &str, files: Vec<TaskFile>) -> Result<(), EngineError> {
        dispatch!(self, e => e.use_files(task_id, files))
    }
    async fn watch_health(&self, h: &Handle, task: &Task, tx: watch::Sender<Health>) -> bool {
        dispatch!(self, e => e.watch_health(h, task, tx).await)
    }
    async fn adopt(&self, hs: &[Handle]) -> Vec<(Handle, bool)> {
        dispatch!(self, e => e.adopt(hs).await)
    }
    async fn list(&self) -> Result<Vec<Handle>, EngineError> {
        dispatch!(self, e => e.list().await)
    }
    async fn logs(&self, task_id: &str, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
        dispatch!(self, e => e.logs(task_id, max_bytes).await)
    }
    async fn read_logs(&self, req: &LogsRequest) -> Result<LogsBatch, EngineError> {
        dispatch!(self, e => e.read_logs(req).await)
    }
}

/// An engine shared by the task manager and the node's other users of it (the logs it serves to managers).
impl<E: Engine> Engine for std::sync::Arc<E> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    async fn prepare(&self, task: &Task) -> Result<(), EngineError> {
        (**self).prepare(task).await
    }
    async fn start(&self, task: &Task) -> Result<Handle, EngineError> {
        (**self).start(task).await
    }
    async fn wait(&self, h: &Handle) -> Result<Exit, EngineError> {
        (**self).wait(h).await
    }
    async fn stop(&self, h: &Handle, task: &Task) -> Result<(), EngineError> {
        (**self).stop(h, task).await
    }
    async fn remove(&self, task_id: &str) -> Result<(), EngineError> {
        (**self).remove(task_id).await
    }
    fn use_netns(&self, task_id: &str, netns: &std::path::Path, resolv: &std::path::Path) -> bool {
        (**self).use_netns(task_id, netns, resolv)
    }
    fn use_files(&self, task_id: &str, files: Vec<TaskFile>) -> Result<(), EngineError> {
        (**self).use_files(task_id, files)
    }
    // every method, the defaulted ones too: a missing one here silently takes the trait's default (no healthcheck)
    async fn watch_health(&self, h: &Handle, task: &Task, tx: watch::Sender<Health>) -> bool {
        (**self).watch_health(h, task, tx).await
    }
    async fn adopt(&self, hs: &[Handle]) -> Vec<(Handle, bool)> {
        (**self).adopt(hs).await
    }
    async fn list(&self) -> Result<Vec<Handle>, EngineError> {
        (**self).list().await
    }
    async fn logs(&self, task_id: &str, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
        (**self).logs(task_id, max_bytes).await
    }
    async fn read_logs(&self, req: &LogsRequest) -> Result<LogsBatch, EngineError> {
        (**self).read_logs(req).await
    }
}
