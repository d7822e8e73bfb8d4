//! `--tlsverify` for the client, as the docker CLI takes it: the daemon's certificate is verified against a CA and
//! a client certificate is presented. The files default to `ca.pem`, `cert.pem` and `key.pem` in `SKEP_CERT_PATH`
//! (else `~/.skep`), the layout of the docker CLI's `DOCKER_CERT_PATH`, so one directory serves both CLIs;
//! `SKEP_TLS_VERIFY` (any non-empty value) turns it on as `DOCKER_TLS_VERIFY` does.

use super::http::{ApiClient, ApiError};
use std::path::PathBuf;

/// The client's TLS flags.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Use TLS and verify the daemon (and present a client certificate)
    #[arg(long = "tlsverify")]
    pub tlsverify: bool,
    /// Trust certificates signed by this CA only (default: $SKEP_CERT_PATH/ca.pem)
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// Path to the client's TLS certificate (default: $SKEP_CERT_PATH/cert.pem)
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// Path to the client's TLS key (default: $SKEP_CERT_PATH/key.pem)
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
}

impl TlsArgs {
    /// Whether TLS is asked for, by flag or by `SKEP_TLS_VERIFY`.
    fn enabled(&self) -> bool {
        self.tlsverify || std::env::var("SKEP_TLS_VERIFY").is_ok_and(|v| !v.is_empty())
    }

    /// The directory the files default to.
    fn cert_dir() -> PathBuf {
        match std::env::var_os("SKEP_CERT_PATH") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default().join(".skep"),
        }
    }

    /// `client` with TLS when asked for.
    pub fn apply(&self, client: ApiClient) -> Result<ApiClient, ApiError> {
        if !self.enabled() {
            return Ok(client);
        }
        let dir = Self::cert_dir();
        let path = |given: &Option<PathBuf>, name: &str| given.clone().unwrap_or_else(|| dir.join(name));
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).map_err(|e| ApiError::InvalidHost {
                host: client.host().to_string(),
                reason: format!("could not read {}: {e}", p.display()),
            })
        };
        let files = skep_pki::api_tls::ApiTlsFiles {
            ca_pem: read(path(&self.tlscacert, "ca.pem"))?,
            cert_pem: read(path(&self.tlscert, "cert.pem"))?,
            key_pem: read(path(&self.tlskey, "key.pem"))?,
        };
        client.with_tls(&files)
    }
}
