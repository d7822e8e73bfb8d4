//! Why a control request was refused: [`ControlError`], one HTTP status per variant, with Docker's texts (scripts
//! grep for them), and the conversions from the store's refusals.

use crate::store::{NetworkUser, ResolveError, StoreError};

/// Why a control request was refused; each maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400.
    #[error("{0}")]
    InvalidArgument(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// A network removal refused while something uses it (400, as every `FailedPrecondition` here; Docker's text).
    /// Typed so that a caller can tell a task still stopping ([`NetworkUser::Task`], worth a wait) from a service
    /// naming the network.
    #[error("rpc error: code = FailedPrecondition desc = network {network} is in use by {by}")]
    InUse {
        /// The network's ID.
        network: String,
        /// What uses it.
        by: NetworkUser,
    },
    /// Stale `version` (500 in Docker; scripts grep for the text).
    #[error("rpc error: code = Unknown desc = update out of sequence")]
    OutOfSequence,
    /// 503: no leader, no quorum, not a manager.
    #[error("{0}")]
    Unavailable(String),
    /// 501.
    #[error("{0}")]
    NotImplemented(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    /// The HTTP status Docker uses for this error.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::NotFound(_) => 404,
            ControlError::InvalidArgument(_) | ControlError::InUse { .. } => 400,
            ControlError::Conflict(_) => 409,
            ControlError::OutOfSequence | ControlError::Internal(_) => 500,
            ControlError::Unavailable(_) => 503,
            ControlError::NotImplemented(_) => 501,
        }
    }
}

impl From<ResolveError> for ControlError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NotFound(m) => ControlError::NotFound(m),
            ResolveError::Ambiguous(m) => ControlError::InvalidArgument(m),
        }
    }
}

/// A word that is not one of the node vocabulary's (`invalid role 'boss'`): 400.
impl From<skep_api::docker::InvalidValue> for ControlError {
    fn from(e: skep_api::docker::InvalidValue) -> Self {
        ControlError::InvalidArgument(e.to_string())
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ControlError::NotFound(m),
            StoreError::OutOfSequence => ControlError::OutOfSequence,
            StoreError::Conflict(m) => ControlError::Conflict(m),
            StoreError::Invalid(m) => ControlError::InvalidArgument(m),
            StoreError::InUse { network, by } => ControlError::InUse { network, by },
        }
    }
}

/// Docker's text (swarmkit's `ErrCannotRemoveMember`, as `FailedPrecondition`) when removing a Raft member would
/// leave fewer reachable members than a quorum of the rest.
pub const LOSS_OF_QUORUM: &str = "can't remove member from the raft: this would result in a loss of quorum";

/// [`LOSS_OF_QUORUM`] as the error the API answers (400), naming what was asked.
pub fn loss_of_quorum(what: &str) -> ControlError {
    precondition(format!("{LOSS_OF_QUORUM} ({what})"))
}

/// Docker's message when no leader is elected (too few managers for a quorum, or an election that did not end in
/// time).
pub const NO_LEADER: &str =
    "The swarm does not have a leader. It's possible that too few managers are online. Make sure more than half of the managers are online.";

/// Docker's message when this manager cannot serve yet: its store is not initialised, or it has not caught up with
/// the leader in time.
pub const MANAGER_NOT_READY: &str =
    "This node is not a swarm manager. Manager is being prepared or has trouble connecting to the cluster.";

pub(super) fn precondition(msg: String) -> ControlError {
    ControlError::InvalidArgument(format!("rpc error: code = FailedPrecondition desc = {msg}"))
}

pub(super) fn invalid(msg: impl std::fmt::Display) -> ControlError {
    ControlError::InvalidArgument(format!("rpc error: code = InvalidArgument desc = {msg}"))
}
