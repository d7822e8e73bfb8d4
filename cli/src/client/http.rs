//! The API client: HTTP/1.1 requests to a daemon's Docker Engine API over a unix or TCP socket.
//!
//! One connection per request (the commands make a handful of calls), every call bounded by a timeout and every
//! response body by a size limit. Non-2xx answers become [`ApiError::Daemon`] carrying the daemon's message, which
//! prints as docker prints it: `Error response from daemon: <message>`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{header, Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{de::DeserializeOwned, Serialize};
use skep_api::docker::{ErrorResponse, API_VERSION};
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Longest response body read (`GET /nodes` of a large cluster is far below this).
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Per-request timeout: `swarm join` blocks on the daemon for about 20 s, so leave room.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Port used for `tcp://host` without a port (docker's default for plain TCP).
const DEFAULT_TCP_PORT: u16 = 2375;

/// What went wrong talking to the daemon.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The socket could not be reached (no daemon, wrong path, refused).
    #[error("Cannot connect to the skep daemon at {host}. Is the skep daemon running?")]
    Connect {
        /// The host as given (`unix:///run/skep/skep.sock`).
        host: String,
        /// The connect error.
        source: std::io::Error,
    },
    /// The socket exists but this user may not open it.
    #[error(
        "permission denied while trying to connect to the skep daemon socket at {host}: {source}"
    )]
    PermissionDenied {
        /// The host as given.
        host: String,
        /// The connect error.
        source: std::io::Error,
    },
    /// The daemon answered with a non-2xx status.
    #[error("Error response from daemon: {message}")]
    Daemon {
        /// HTTP status code.
        status: u16,
        /// The daemon's `message` (or the raw body when it is not the JSON error shape).
        message: String,
    },
    /// No complete answer within the timeout.
    #[error("timed out after {}s waiting for the skep daemon at {host}", .after.as_secs())]
    Timeout {
        /// The host as given.
        host: String,
        /// The timeout.
        after: Duration,
    },
    /// The response body exceeded [`MAX_RESPONSE_BYTES`].
    #[error("response from the skep daemon is larger than {0} bytes")]
    TooLarge(usize),
    /// HTTP-level failure (connection reset, malformed response).
    #[error("error during connect: {0}")]
    Http(#[from] hyper::Error),
    /// The TLS handshake with the daemon failed (unknown CA, name mismatch, certificate refused).
    #[error("error during connect: TLS: {0}")]
    Tls(String),
    /// A 2xx body that is not the expected JSON.
    #[error("error decoding response from daemon: {0}")]
    Decode(#[from] serde_json::Error),
    /// `-H` is not a host the client can use.
    #[error("invalid host {host:?}: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// Why.
        reason: String,
    },
}

impl ApiError {
    /// The HTTP status of a daemon error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Daemon { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the daemon said 404 (the only status docker's CLI branches on).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Where the daemon listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// A unix socket path.
    Unix(PathBuf),
    /// `host:port` for TCP.
    Tcp(String),
}

/// A client of one daemon's API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    /// The `-H` value, kept for error messages.
    host: String,
    endpoint: Endpoint,
    /// TLS for a TCP endpoint (`--tlsverify`).
    tls: Option<std::sync::Arc<tokio_rustls::rustls::ClientConfig>>,
    timeout: Duration,
    max_body: usize,
}

impl ApiClient {
    /// A client for `unix:///path`, `tcp://host:port` or `http://host:port` (a bare `/path` is a unix socket).
    pub fn new(host: &str) -> Result<ApiClient, ApiError> {
        let invalid = |reason: &str| ApiError::InvalidHost {
            host: host.to_string(),
            reason: reason.to_string(),
        };
        let endpoint = if let Some(path) = host.strip_prefix("unix://") {
            if path.is_empty() {
                return Err(invalid("empty socket path"));
            }
            Endpoint::Unix(PathBuf::from(path))
        } else if host.starts_with('/') {
            Endpoint::Unix(PathBuf::from(host))
        } else if let Some(rest) = host
            .strip_prefix("tcp://")
            .or_else(|| host.strip_prefix("http://"))
        {
            let authority = rest.split('/').next().unwrap_or_default();
            if authority.is_empty() {
                return Err(invalid("missing address"));
            }
            let has_port = match authority.rsplit_once(':') {
                Some((h, p)) => (!h.contains(':') || h.ends_with(']')) && p.parse::<u16>().is_ok(),
                None => false,
            };
            if has_port {
                Endpoint::Tcp(authority.to_string())
            } else if authority.starts_with('[') || !authority.contains(':') {
                Endpoint::Tcp(format!("{authority}:{DEFAULT_TCP_PORT}"))
            } else {
                return Err(invalid("invalid address"));
            }
        } else if host.starts_with("https://") {
            return Err(invalid("use tcp://host:port with --tlsverify for TLS"));
        } else {
            return Err(invalid("expected unix:///path or tcp://host:port"));
        };
        Ok(ApiClient {
            host: host.to_string(),
            endpoint,
            tls: None,
            timeout: REQUEST_TIMEOUT,
            max_body: MAX_RESPONSE_BYTES,
        })
    }

    /// The same client speaking TLS with `files` (a CA to verify the daemon against, a client certificate and key),
    /// as `docker --tlsverify`. Only for tcp:// hosts.
    pub fn with_tls(mut self, files: &skep_pki::api_tls::ApiTlsFiles) -> Result<ApiClient, ApiError> {
        if !matches!(self.endpoint, Endpoint::Tcp(_)) {
            return Err(ApiError::InvalidHost { host: self.host.clone(), reason: "--tlsverify needs a tcp:// host".into() });
        }
        let config = skep_pki::api_tls::api_client_config(files)
            .map_err(|e| ApiError::InvalidHost { host: self.host.clone(), reason: e.to_string() })?;
        self.tls = Some(std::sync::Arc::new(config));
        Ok(self)
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> ApiClient {
        self.timeout = timeout;
        self
    }

    /// A copy of this client that accepts answers of up to `max` bytes.
    pub(crate) fn with_max_body(&self, max: usize) -> ApiClient {
        ApiClient { max_body: max, ..self.clone() }
    }

    /// Lower the response size limit (tests).
    #[cfg(test)]
    pub(crate) fn max_body_for_tests(&mut self, max: usize) {
        self.max_body = max;
    }

    /// The host as given.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `GET /v1.50<path>`, decoding the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        let body = self.request(Method::GET, path, None).await?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// `POST` a JSON body, decoding the JSON answer.
    pub async fn post<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ApiError> {
        let body = self
            .request(Method::POST, path, Some(serde_json::to_vec(body)?))
            .await?;
        Ok(serde_json::from_slice(&body)?)
    }

    /// `POST` with an optional JSON body, ignoring the answer's body (update, leave, join answer 200 with none).
    pub async fn post_no_reply<B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<(), ApiError> {
        let body = body.map(serde_json::to_vec).transpose()?;
        self.request(Method::POST, path, body).await.map(drop)
    }

    /// `DELETE`, ignoring the answer's body.
    pub async fn delete(&self, path: &str) -> Result<(), ApiError> {
        self.request(Method::DELETE, path, None).await.map(drop)
    }

    /// Send one request to `/v1.50<path>` (path includes the query) and return the 2xx body.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ApiError> {
        let uri = format!("/v{API_VERSION}{path}");
        let host_header = match &self.endpoint {
            Endpoint::Unix(_) => "localhost".to_string(),
            Endpoint::Tcp(a) => a.clone(),
        };
        let mut req = Request::builder()
            .method(method)
            .uri(&uri)
            .header(header::HOST, host_header)
            .header(
                header::USER_AGENT,
                concat!("skep/", env!("CARGO_PKG_VERSION")),
            );
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ApiError::InvalidHost {
                host: self.host.clone(),
                reason: e.to_string(),
            })?;
        let exchange = async {
            match &self.endpoint {
                Endpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p)
                        .await
                        .map_err(|e| self.connect_error(e))?;
                    exchange(TokioIo::new(s), req, self.max_body).await
                }
                Endpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a.as_str())
                        .await
                        .map_err(|e| self.connect_error(e))?;
                    match &self.tls {
                        None => exchange(TokioIo::new(s), req, self.max_body).await,
                        Some(config) => {
                            let name = server_name(a).map_err(|reason| ApiError::InvalidHost {
                                host: self.host.clone(),
                                reason,
                            })?;
                            let tls = tokio_rustls::TlsConnector::from(config.clone())
                                .connect(name, s)
                                .await
                                .map_err(|e| ApiError::Tls(e.to_string()))?;
                            exchange(TokioIo::new(tls), req, self.max_body).await
                        }
                    }
                }
            }
        };
        let (status, content_type, body) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ApiError::Timeout {
                host: self.host.clone(),
                after: self.timeout,
            })??;
        if status.is_success() {
            return Ok(body);
        }
        Err(ApiError::Daemon {
            status: status.as_u16(),
            message: error_message(status, content_type, &body, &uri),
        })
    }

    /// `GET` an answer that streams (`service logs --follow`): `on_data` gets the body's bytes as they arrive and
    /// returns false to stop reading. Connecting and the answer's head are bounded by the timeout; the body is not
    /// (it lasts as long as the daemon streams). An error status is read as [`ApiClient::request`] reads it.
    pub async fn get_stream(&self, path: &str, mut on_data: impl FnMut(&[u8]) -> bool + Send) -> Result<(), ApiError> {
        let uri = format!("/v{API_VERSION}{path}");
        let host_header = match &self.endpoint {
            Endpoint::Unix(_) => "localhost".to_string(),
            Endpoint::Tcp(a) => a.clone(),
        };
        let req = Request::builder()
            .method(Method::GET)
            .uri(&uri)
            .header(header::HOST, host_header)
            .header(header::USER_AGENT, concat!("skep/", env!("CARGO_PKG_VERSION")))
            .body(Full::new(Bytes::new()))
            .map_err(|e| ApiError::InvalidHost { host: self.host.clone(), reason: e.to_string() })?;
        let timeout = |e| ApiError::Timeout { host: self.host.clone(), after: e };
        let head = async {
            let (mut sender, conn) = match &self.endpoint {
                Endpoint::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await.map_err(|e| self.connect_error(e))?;
                    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
                    (sender, tokio::spawn(async move { conn.await.map(drop) }))
                }
                Endpoint::Tcp(a) => {
                    let s = tokio::net::TcpStream::connect(a.as_str()).await.map_err(|e| self.connect_error(e))?;
                    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
                    (sender, tokio::spawn(async move { conn.await.map(drop) }))
                }
            };
            let resp = sender.send_request(req).await?;
            Ok::<_, ApiError>((resp, sender, conn))
        };
        let (resp, _sender, conn) = tokio::time::timeout(self.timeout, head).await.map_err(|_| timeout(self.timeout))??;
        let (parts, mut body) = resp.into_parts();
        let result = if parts.status.is_success() {
            loop {
                match body.frame().await {
                    None => break Ok(()),
                    Some(Err(e)) => break Err(ApiError::Http(e)),
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            if !on_data(data) {
                                break Ok(());
                            }
                        }
                    }
                }
            }
        } else {
            let content_type = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_string);
            let collected = tokio::time::timeout(self.timeout, Limited::new(body, self.max_body).collect()).await;
            let bytes = match collected {
                Ok(Ok(c)) => c.to_bytes(),
                _ => Bytes::new(),
            };
            Err(ApiError::Daemon { status: parts.status.as_u16(), message: error_message(parts.status, content_type, &bytes, &uri) })
        };
        conn.abort();
        result
    }

    fn connect_error(&self, source: std::io::Error) -> ApiError {
        if source.kind() == std::io::ErrorKind::PermissionDenied {
            ApiError::PermissionDenied {
                host: self.host.clone(),
                source,
            }
        } else {
            ApiError::Connect {
                host: self.host.clone(),
                source,
            }
        }
    }
}

/// The name the daemon's certificate must carry: the host of `host:port` (an IP address or a DNS name).
fn server_name(authority: &str) -> Result<tokio_rustls::rustls::pki_types::ServerName<'static>, String> {
    let host = match authority.rsplit_once(':') {
        Some((h, _)) => h,
        None => authority,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("not a TLS server name: {e}"))
}

/// One request/response on a fresh connection; the body is read up to `max_body` bytes.
async fn exchange<I>(
    io: I,
    req: Request<Full<Bytes>>,
    max_body: usize,
) -> Result<(StatusCode, Option<String>, Bytes), ApiError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let conn = tokio::spawn(conn);
    let resp = sender.send_request(req).await?;
    let (parts, body) = resp.into_parts();
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let collected = Limited::new(body, max_body)
        .collect()
        .await
        .map_err(|e| match e.downcast::<hyper::Error>() {
            Ok(e) => ApiError::Http(*e),
            Err(_) => ApiError::TooLarge(max_body),
        })?;
    drop(sender);
    conn.abort();
    Ok((parts.status, content_type, collected.to_bytes()))
}

/// The message of an error response, following docker's client: the JSON `message`, else a note about the missing
/// message, else the raw text.
fn error_message(
    status: StatusCode,
    content_type: Option<String>,
    body: &[u8],
    uri: &str,
) -> String {
    let reason = status.canonical_reason().unwrap_or("");
    if body.iter().all(u8::is_ascii_whitespace) {
        return format!(
            "request returned {} {reason} for API route and version {uri}, check if the server supports the \
             requested API version",
            status.as_u16()
        );
    }
    let json = content_type
        .as_deref()
        .is_none_or(|ct| ct.starts_with("application/json"));
    if json {
        if let Ok(ErrorResponse { message }) = serde_json::from_slice::<ErrorResponse>(body) {
            if !message.is_empty() {
                return message;
            }
            return format!(
                "API returned a {} ({reason}) but provided no error-message",
                status.as_u16()
            );
        }
    }
    String::from_utf8_lossy(body).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse() {
        let c = ApiClient::new("unix:///run/skep/skep.sock").unwrap();
        assert_eq!(c.endpoint, Endpoint::Unix("/run/skep/skep.sock".into()));
        assert_eq!(
            ApiClient::new("tcp://10.0.0.1:2375").unwrap().endpoint,
            Endpoint::Tcp("10.0.0.1:2375".into())
        );
        assert_eq!(
            ApiClient::new("http://localhost:80/").unwrap().endpoint,
            Endpoint::Tcp("localhost:80".into())
        );
        assert_eq!(
            ApiClient::new("tcp://10.0.0.1").unwrap().endpoint,
            Endpoint::Tcp("10.0.0.1:2375".into())
        );
        assert_eq!(
            ApiClient::new("tcp://[::1]:99").unwrap().endpoint,
            Endpoint::Tcp("[::1]:99".into())
        );
        assert_eq!(
            ApiClient::new("tcp://[::1]").unwrap().endpoint,
            Endpoint::Tcp("[::1]:2375".into())
        );
        assert!(ApiClient::new("unix://").is_err());
        assert!(ApiClient::new("https://x:1").is_err());
        assert_eq!(
            server_name("10.0.0.1:2376").unwrap(),
            tokio_rustls::rustls::pki_types::ServerName::try_from("10.0.0.1").unwrap()
        );
        assert!(server_name("[::1]:2376").is_ok());
        assert!(server_name("manager1.example:2376").is_ok());
        assert!(ApiClient::new("ssh://x").is_err());
    }

    #[test]
    fn error_messages_follow_docker() {
        let s = StatusCode::SERVICE_UNAVAILABLE;
        let ct = Some("application/json".to_string());
        assert_eq!(
            error_message(
                s,
                ct.clone(),
                br#"{"message":"not a manager"}"#,
                "/v1.50/swarm"
            ),
            "not a manager"
        );
        assert_eq!(
            error_message(s, ct, b"{}", "/v1.50/swarm"),
            "API returned a 503 (Service Unavailable) but provided no error-message"
        );
        assert_eq!(
            error_message(s, Some("text/plain".into()), b"boom\n", "/x"),
            "boom"
        );
        assert!(error_message(StatusCode::NOT_FOUND, None, b"", "/v1.50/x")
            .starts_with("request returned 404 Not Found"));
        let e = ApiError::Daemon {
            status: 404,
            message: "node x not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "Error response from daemon: node x not found"
        );
        assert!(e.is_not_found());
    }
}
