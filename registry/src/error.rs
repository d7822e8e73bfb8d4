//! What can go wrong talking to a registry, split by what the caller does about it: a task is rejected with the
//! message either way, but `Unreachable` is the one case the manager's pinning only warns about.

/// A registry operation's failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The reference is not one (or names no registry image).
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    /// No connection (refused, timed out, DNS, TLS handshake).
    #[error("registry {host} is unreachable: {reason}")]
    Unreachable {
        /// `host:port`.
        host: String,
        /// What failed.
        reason: String,
    },
    /// 401/403 after trying the credentials given (or none).
    #[error("unauthorized: authentication required for {what}: {message}")]
    Unauthorized {
        /// The repository.
        what: String,
        /// The registry's own words.
        message: String,
    },
    /// 404: no such repository, tag, manifest or blob.
    #[error("manifest unknown: {what} not found: {message}")]
    NotFound {
        /// `repository:tag`, `repository@digest`.
        what: String,
        /// The registry's own words.
        message: String,
    },
    /// Content whose digest is not the one asked for.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was fetched.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what came.
        actual: String,
    },
    /// Content past the size it was announced with, or past a limit.
    #[error("{what} is too large: more than {limit} bytes")]
    TooLarge {
        /// What was fetched.
        what: String,
        /// The bound.
        limit: u64,
    },
    /// The image has no manifest for this node's platform.
    #[error("no matching manifest for {platform} in the manifest list entries of {what}")]
    NoPlatform {
        /// The image.
        what: String,
        /// `linux/amd64`.
        platform: String,
    },
    /// Anything else the registry answered that is not the protocol (bad JSON, an unknown media type, a 5xx).
    #[error("{0}")]
    Protocol(String),
    /// A local file could not be written.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl RegistryError {
    /// Could not reach the registry at all (the manager then keeps the tag and warns, as Docker does).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RegistryError::Unreachable { .. })
    }
}
