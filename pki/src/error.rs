//! The one error type of this crate.

/// Everything that can go wrong in the cluster PKI.
///
/// Callers classify by variant (or by walking [`std::error::Error::source`]), never by message text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// PEM text could not be decoded, or held no item of the expected kind.
    #[error("invalid PEM ({what}): {source}")]
    Pem {
        /// What we were looking for ("certificate", "private key", ...).
        what: &'static str,
        /// Why the PEM decoder gave up.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// A certificate could not be parsed or is not what it must be (e.g. a root CA that is not a CA).
    #[error("invalid certificate: {0}")]
    InvalidCertificate(String),
    /// A certificate signing request could not be parsed or its self-signature does not verify.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    /// A key of a type other than ECDSA P-256.
    #[error("unsupported key: {0} (only ECDSA P-256 is accepted)")]
    UnsupportedKey(String),
    /// A private key could not be parsed, or does not belong to its certificate.
    #[error("invalid private key: {0}")]
    InvalidKey(String),
    /// Signing was asked of a root CA held without its private key (workers hold only the certificate).
    #[error("the root CA has no private key: only managers can sign certificates")]
    NoSigningKey,
    /// A certificate subject (or the node ID / cluster ID meant for one) is missing or malformed.
    #[error("invalid certificate subject: {0}")]
    InvalidSubject(String),
    /// A validity period that cannot be written into a certificate (before 1970, after 9999, ...).
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),
    /// A join token that does not have the shape `SWMTKN-1-<digest>-<secret>`.
    #[error("invalid join token: {0}")]
    InvalidJoinToken(String),
    /// The operating system's random source failed.
    #[error("the system random number generator failed")]
    Random,
    /// Encryption at rest: a key of the wrong shape, or a sealed value that does not open with the key given.
    #[error("{0}")]
    Crypto(String),
    /// rcgen refused to build a certificate or request.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused a configuration (bad key for the certificate, unsupported protocol, ...).
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
    /// The client certificate verifier could not be built (e.g. no usable trust anchor).
    #[error("client certificate verifier: {0}")]
    ClientVerifier(#[from] rustls::server::VerifierBuilderError),
}
