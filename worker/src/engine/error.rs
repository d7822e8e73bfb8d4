//! What can go wrong in an engine, and how the agent should read it.

/// An engine failure.
///
/// The variant says what happened; *when* it happened decides the task state: an error from
/// [`prepare`](super::Engine::prepare) or [`start`](super::Engine::start) (the task never ran) maps to `REJECTED`;
/// an error from [`wait`](super::Engine::wait), or an exit that is not 0, maps to `FAILED`; a stop the managers asked
/// for maps to `SHUTDOWN` (swarmkit's `exec.Resolve`, moby/swarmkit `agent/exec/controller.go`).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The image or the program is not there. The text is what Docker would say (`No such image: x`,
    /// `exec: "x": executable file not found in $PATH`), since it ends up in the task's `Err`.
    #[error("{0}")]
    NotFound(String),
    /// The image could not be pulled: the registry's own error (bad credentials, no such manifest, unreachable).
    #[error("{0}")]
    Pull(String),
    /// The task cannot run as specified (no container spec, an unknown user or signal, a missing work dir, …).
    #[error("{0}")]
    Invalid(String),
    /// A local operation (spawning, reading /proc, task files) failed; the text says which.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// The Docker daemon answered with an error or could not be reached.
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
}

impl EngineError {
    /// The image or program is missing (a `REJECTED` task whose spec names something this host lacks).
    pub fn is_not_found(&self) -> bool {
        matches!(self, EngineError::NotFound(_))
    }

    pub(crate) fn io(context: impl Into<String>, e: std::io::Error) -> EngineError {
        EngineError::Io(context.into(), e)
    }
}
