//! What every request passes before a handler, and what every refusal looks like after one.
//!
//! - On TCP (`crate::listen::ApiTransport`), a request carrying `Origin` is refused: only browsers send it, and the
//!   API is not for pages to call (a page could otherwise forge requests to a daemon it can reach). `Host` must
//!   name the daemon: an IP literal or `localhost`, or on TLS one of the server certificate's DNS names; on the
//!   plain loopback listener only loopback names. A rebound DNS name is thereby refused.
//! - The body is read here, whole, within [`BODY_READ_TIMEOUT`] and up to [`super::MAX_BODY`] (413 beyond), before
//!   anything is decided, so that even a refused request (unknown route, wrong method, wrong content type) has
//!   its body consumed and the client reads the answer instead of "broken pipe".
//! - A non-empty body must be `application/json`, with Docker's message (`CheckForJSON` in moby's httputils).
//! - `/skep/…` (the benchmarks' store endpoint) is served on the unix socket only.
//! - Any error answer that is not already JSON (the framework's own 4xx for a bad query or path) is rewritten to
//!   Docker's `{"message": …}` shape.

use super::{json_response, MAX_BODY};
use crate::error::ApiError;
use crate::listen::ApiTransport;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use skep_api::docker::ErrorResponse;
use std::net::IpAddr;
use std::time::Duration;

/// Longest time to receive a request body.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest framework error body rewritten into JSON.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Docker's `Host` the CLI sends over unix sockets; accepted everywhere.
const DOCKER_DUMMY_HOST: &str = "api.moby.localhost";

/// The middleware.
pub(crate) async fn guard(req: Request, next: axum::middleware::Next) -> Response {
    let transport = req.extensions().get::<ApiTransport>().cloned().unwrap_or(ApiTransport::Unix);
    if let Err(e) = check_origin_and_host(&transport, req.headers()) {
        return drain_then(req, e).await;
    }
    if !matches!(transport, ApiTransport::Unix) && req.uri().path().starts_with("/skep/") {
        return drain_then(req, ApiError::not_found("page not found")).await;
    }
    let (parts, body) = req.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let bytes = match tokio::time::timeout(BODY_READ_TIMEOUT, http_body_util::Limited::new(body, MAX_BODY).collect()).await {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
        Ok(Err(e)) => return ApiError::invalid(format!("reading the request body: {e}")).into_response(),
        Err(_) => {
            return json_response(
                StatusCode::REQUEST_TIMEOUT,
                &ErrorResponse { message: format!("request body not received within {}s", BODY_READ_TIMEOUT.as_secs()) },
            )
        }
    };
    if !bytes.is_empty() && !parts.uri.path().starts_with("/skep/") && parts.method != Method::GET {
        if let Err(e) = check_json(&parts.headers) {
            return e.into_response();
        }
    }
    let resp = next.run(Request::from_parts(parts, Body::from(bytes))).await;
    json_errors(resp).await
}

fn too_large() -> Response {
    json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &ErrorResponse { message: format!("request body is larger than the limit of {MAX_BODY} bytes") },
    )
}

/// Answer `e` after reading (and dropping) what the client sends, up to the body limit and time limit.
async fn drain_then(req: Request, e: ApiError) -> Response {
    let body = req.into_body();
    let _ = tokio::time::timeout(BODY_READ_TIMEOUT, http_body_util::Limited::new(body, MAX_BODY).collect()).await;
    e.into_response()
}

/// The `Origin` and `Host` rules of TCP listeners (the unix socket's file mode is its access control).
pub(crate) fn check_origin_and_host(transport: &ApiTransport, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(transport, ApiTransport::Unix) {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = String::from_utf8_lossy(origin.as_bytes());
        return Err(ApiError::forbidden(format!(
            "requests with an Origin header ({origin}) are refused: the API does not serve web pages"
        )));
    }
    let host = headers.get(header::HOST).map(|h| String::from_utf8_lossy(h.as_bytes()).to_ascii_lowercase());
    let Some(host) = host else { return Ok(()) }; // HTTP/1.0 without Host: no name to rebind
    let name = host_name(&host);
    let allowed = match transport {
        ApiTransport::Unix => true,
        ApiTransport::InsecureLoopback => {
            name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        ApiTransport::Tls { names } => {
            name == "localhost"
                || name == DOCKER_DUMMY_HOST
                || name.parse::<IpAddr>().is_ok()
                || names.iter().any(|n| n == name)
        }
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("Host {host} is not a name of this daemon")))
    }
}

/// The name in a `Host` value: without the port, IPv6 brackets removed.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Docker's `CheckForJSON`: a body's media type must be `application/json`.
pub(crate) fn check_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default();
    let media = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if media.is_empty() {
        return Err(ApiError::invalid(format!("malformed Content-Type header ({ct}): mime: no media type")));
    }
    if media != "application/json" {
        return Err(ApiError::invalid(format!("unsupported Content-Type header ({ct}): must be 'application/json'")));
    }
    Ok(())
}

/// An error answer in Docker's JSON shape, whatever produced it.
async fn json_errors(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (_, body) = resp.into_parts();
    let text = match http_body_util::Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(c) => String::from_utf8_lossy(&c.to_bytes()).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() { status.canonical_reason().unwrap_or("error").to_lowercase() } else { text };
    json_response(status, &ErrorResponse { message })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn tcp_refuses_origins_and_foreign_hosts() {
        let tls = ApiTransport::Tls { names: Arc::new(vec!["manager1.example".into()]) };
        let ok = |t: &ApiTransport, h: &str| check_origin_and_host(t, &headers(&[("host", h)])).is_ok();
        assert!(ok(&tls, "10.0.0.1:2376"));
        assert!(ok(&tls, "[::1]:2376"));
        assert!(ok(&tls, "Manager1.example:2376"));
        assert!(ok(&tls, "localhost"));
        assert!(!ok(&tls, "evil.example:2376"));
        let lo = ApiTransport::InsecureLoopback;
        assert!(ok(&lo, "127.0.0.1:2375"));
        assert!(ok(&lo, "localhost:2375"));
        assert!(ok(&lo, "[::1]:2375"));
        assert!(!ok(&lo, "10.0.0.1:2375"));
        assert!(!ok(&lo, "rebind.example:2375"));
        let origin = headers(&[("host", "127.0.0.1:2375"), ("origin", "http://evil.example")]);
        let e = check_origin_and_host(&lo, &origin).unwrap_err();
        assert_eq!(e.status(), StatusCode::FORBIDDEN);
        assert!(check_origin_and_host(&ApiTransport::Unix, &origin).is_ok());
    }

    #[test]
    fn bodies_must_be_json_with_dockers_messages() {
        assert!(check_json(&headers(&[("content-type", "application/json")])).is_ok());
        assert!(check_json(&headers(&[("content-type", "application/json; charset=utf-8")])).is_ok());
        assert_eq!(
            check_json(&headers(&[("content-type", "text/plain")])).unwrap_err().to_string(),
            "unsupported Content-Type header (text/plain): must be 'application/json'"
        );
        assert_eq!(
            check_json(&HeaderMap::new()).unwrap_err().to_string(),
            "malformed Content-Type header (): mime: no media type"
        );
    }
}
