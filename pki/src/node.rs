//! What a node keeps: its private key (which never leaves it) and the PEM bundle it needs for TLS.

use std::fmt;

use rcgen::{CertificateParams, DistinguishedName, KeyPair, PKCS_ECDSA_P256_SHA256};

use crate::{pem, PkiError};

/// A node's private key (ECDSA P-256). It stays on the node; the CA only ever sees CSRs made with it.
pub struct NodeKey {
    key: KeyPair,
}

impl fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeKey").finish_non_exhaustive()
    }
}

impl NodeKey {
    /// A fresh ECDSA P-256 key from the operating system's random source.
    pub fn generate() -> Result<NodeKey, PkiError> {
        Ok(NodeKey {
            key: KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?,
        })
    }

    /// Load a PKCS#8 PEM key (as written by [`NodeKey::to_pem`]); it must be ECDSA P-256.
    pub fn from_pem(pem_text: &str) -> Result<NodeKey, PkiError> {
        pem::private_key(pem_text)?;
        let key = KeyPair::from_pem(pem_text).map_err(|e| PkiError::InvalidKey(e.to_string()))?;
        if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(PkiError::UnsupportedKey(format!(
                "node key is {:?}",
                key.algorithm()
            )));
        }
        Ok(NodeKey { key })
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn to_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A certificate signing request for this key. Its subject is empty: the CA ignores it anyway.
    pub fn csr_pem(&self) -> Result<String, PkiError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        Ok(params.serialize_request(&self.key)?.pem()?)
    }
}

/// Material a node needs for TLS: its certificate (chain), its key and the trusted root.
#[derive(Clone)]
pub struct NodeTls {
    /// The node certificate, optionally followed by intermediates (not the root).
    pub cert_pem: String,
    /// The node's private key, PKCS#8 PEM.
    pub key_pem: String,
    /// The cluster root CA certificate: the only trust anchor.
    pub ca_pem: String,
}

impl fmt::Debug for NodeTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeTls")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"[elided]")
            .field("ca_pem", &self.ca_pem)
            .finish()
    }
}
