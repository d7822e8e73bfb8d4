//! rustls configurations for the daemon's Docker Engine API over TCP, as dockerd's `--tlsverify`.
//!
//! Unlike the cluster port these are built from files the operator gives (`--tlscacert`, `--tlscert`, `--tlskey`,
//! the same files the docker CLI takes with `DOCKER_CERT_PATH`), not from the cluster CA: the API's clients are
//! people and tools, not nodes. The server *requires* a client certificate chaining to the given CA (dockerd's
//! `tls.RequireAndVerifyClientCert`), speaks TLS 1.2 and 1.3 (the docker CLI's Go TLS offers both) and HTTP/1.1.
//! Keys may be ECDSA, RSA or Ed25519, in PKCS#8, PKCS#1 or SEC1 PEM (what `openssl` and Docker's docs make).

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use x509_parser::extensions::GeneralName;

use crate::{pem, PkiError};

/// The ALPN protocol of the API (HTTP/1.1 only; the docker CLI offers `http/1.1`, or nothing).
pub const API_ALPN: &[u8] = b"http/1.1";

/// PEM text of a CA bundle, a certificate chain and its key, as read from the operator's files.
#[derive(Clone)]
pub struct ApiTlsFiles {
    /// The CA certificate(s) the peer's certificate must chain to.
    pub ca_pem: String,
    /// Our certificate, optionally followed by intermediates.
    pub cert_pem: String,
    /// Our private key.
    pub key_pem: String,
}

impl std::fmt::Debug for ApiTlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTlsFiles").finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn material(
    files: &ApiTlsFiles,
) -> Result<(Arc<RootCertStore>, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
    let mut roots = RootCertStore::empty();
    for ca in pem::certs(&files.ca_pem)? {
        roots.add(ca)?;
    }
    let chain = pem::certs(&files.cert_pem)?;
    let key = pem::private_key(&files.key_pem)?;
    Ok((Arc::new(roots), chain, key))
}

/// The API server: presents `cert`, requires a client certificate chaining to `ca`.
pub fn api_server_config(files: &ApiTlsFiles) -> Result<ServerConfig, PkiError> {
    let provider = provider();
    let (roots, chain, key) = material(files)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone()).build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![API_ALPN.to_vec()];
    Ok(config)
}

/// An API client (`skep --tlsverify`): verifies the server against `ca` and presents `cert`.
pub fn api_client_config(files: &ApiTlsFiles) -> Result<ClientConfig, PkiError> {
    let provider = provider();
    let (roots, chain, key) = material(files)?;
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone()).build().map_err(|e| {
        PkiError::InvalidCertificate(format!("server certificate verifier: {e}"))
    })?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_webpki_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![API_ALPN.to_vec()];
    Ok(config)
}

/// The DNS names (subject alternative names) of the first certificate in `cert_pem`, lower-cased: the names a
/// client may reach the API by, which the server accepts in `Host`.
pub fn cert_dns_names(cert_pem: &str) -> Result<Vec<String>, PkiError> {
    let certs = pem::certs(cert_pem)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&certs[0])
        .map_err(|e| PkiError::InvalidCertificate(e.to_string()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

    fn files() -> (ApiTlsFiles, ApiTlsFiles) {
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = |names: Vec<String>, eku| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(names).unwrap();
            p.extended_key_usages = vec![eku];
            let cert = p.signed_by(&key, &issuer).unwrap();
            ApiTlsFiles { ca_pem: ca_cert.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() }
        };
        (
            leaf(vec!["manager1.example".into(), "127.0.0.1".into()], ExtendedKeyUsagePurpose::ServerAuth),
            leaf(vec![], ExtendedKeyUsagePurpose::ClientAuth),
        )
    }

    #[test]
    fn server_and_client_configs_build_from_pem_files() {
        let (server, client) = files();
        let s = api_server_config(&server).unwrap();
        assert_eq!(s.alpn_protocols, vec![API_ALPN.to_vec()]);
        api_client_config(&client).unwrap();
        assert_eq!(cert_dns_names(&server.cert_pem).unwrap(), vec!["manager1.example".to_string()]);
    }

    #[test]
    fn a_key_that_is_not_pem_is_refused() {
        let (mut server, _) = files();
        server.key_pem = "not a key".into();
        assert!(api_server_config(&server).is_err());
    }
}
