//! Engines: what actually runs a task on this host.
//!
//! The agent drives every task through the same steps (swarmkit's executor/controller contract,
//! `shared/reference/swarmkit.md` §1.6–1.7): [`prepare`](Engine::prepare) (PREPARING → READY),
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
//! - [`spec`]: reading a `ContainerSpec` the same way in every engine (signals, grace period, labels, names).
//! - [`error`]: the [`EngineError`] type, and how its variants map to task states.
//! - `suite` (tests, or the `test-suite` feature): the conformance suite every engine must pass.

use serde::{Deserialize, Serialize};
use skep_api::docker::Task;
use std::future::Future;

pub mod docker;
pub mod error;
pub mod process;
pub mod spec;
#[cfg(any(test, feature = "test-suite"))]
pub mod suite;
#[cfg(test)]
mod tests;

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
}

impl Exit {
    /// Exit code 0: the task is COMPLETE rather than FAILED.
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
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

    /// Run the task (not started yet) in this network namespace, with `resolv` as its `/etc/resolv.conf`. False when
    /// the engine cannot (the agent then plumbs the task's own namespace after `start`, through its PID).
    fn use_netns(&self, _task_id: &str, _netns: &std::path::Path, _resolv: &std::path::Path) -> bool {
        false
    }
}

/// One of the built-in engines, chosen at run time (the trait's methods return `impl Future`, so it is not object
/// safe; the agent holds this instead of a `dyn Engine`).
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
    async fn adopt(&self, hs: &[Handle]) -> Vec<(Handle, bool)> {
        dispatch!(self, e => e.adopt(hs).await)
    }
    async fn list(&self) -> Result<Vec<Handle>, EngineError> {
        dispatch!(self, e => e.list().await)
    }
    async fn logs(&self, task_id: &str, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
        dispatch!(self, e => e.logs(task_id, max_bytes).await)
    }
}
