//! The Docker Engine API (swarm subset, v1.50 shapes) over HTTP/1.1, as the stock `docker` CLI expects it.
//!
//! Every route is served with and without the `/v{version}` prefix; versions above 1.50 and below 1.24 get Docker's
//! 400. Every response carries `Api-Version`, `Ostype` and `Server`; JSON bodies end in a newline and errors are
//! `{"message": ...}` with `Content-Type: application/json` exactly (the CLI compares the string).
//!
//! # Layout
//! This file holds the router and what every route shares (version prefix, headers, bodies, query parameters,
//! errors); the handlers are grouped by object: [`system`], [`swarm`], [`nodes`], [`services`] (and tasks), [`logs`] (their output),
//! [`networks`], [`volumes`], [`payloads`] (secrets and configs). A handler only decodes the request and encodes the
//! answer; the operation is the node's (`crate::node`).

mod events;
pub(crate) mod guard;
mod logs;
mod images;
mod networks;
mod nodes;
mod payloads;
mod services;
mod swarm;
mod system;
mod volumes;

use crate::error::ApiError;
use crate::node::NodeHandle;
use crate::sysinfo;
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use skep_api::docker::{self, API_VERSION, MIN_API_VERSION};
use skep_api::filters::Filters;
use std::collections::HashMap;

/// Largest request body accepted.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

pub(crate) type Q = Query<HashMap<String, String>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        json_response(self.status(), &docker::ErrorResponse { message: self.to_string() })
    }
}

pub(crate) fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    let mut body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn ok_json<T: serde::Serialize>(v: &T) -> Response {
    json_response(StatusCode::OK, v)
}

pub(crate) fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

/// Largest spec body (service, node, swarm, network, volume): a service's spec is copied into each of its tasks and
/// every copy travels through Raft, so a bound here keeps every entry far below the transport's frame limit.
pub const MAX_SPEC_BYTES: usize = 1024 * 1024;

/// Largest secret or config body: the data (at most 1000 KiB, checked by the control layer) in base64, plus labels.
pub const MAX_PAYLOAD_BODY_BYTES: usize = 1400 * 1024;

/// A request body, read as Docker's daemon reads it (keys case-insensitive, `null` as zero, unknown fields ignored),
/// at most [`MAX_SPEC_BYTES`] and [`docker::decode::MAX_DEPTH`] deep.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    parse_body_within(body, MAX_SPEC_BYTES)
}

/// [`parse_body`] with another size bound.
pub(crate) fn parse_body_within<T: DeserializeOwned>(body: &Bytes, max: usize) -> Result<T, ApiError> {
    if body.len() > max {
        return Err(ApiError::invalid(format!("the spec is too large: {} bytes, at most {max}", body.len())));
    }
    docker::decode::from_slice(body).map_err(|e| ApiError::invalid(e.to_string()))
}

/// Docker's lenient query booleans: empty, 0, false, no, none are false.
pub(crate) fn qbool(q: &HashMap<String, String>, k: &str) -> bool {
    match q.get(k) {
        None => false,
        Some(v) => !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false" | "no" | "none"),
    }
}

pub(crate) fn qversion(q: &HashMap<String, String>, what: &str) -> Result<u64, ApiError> {
    let v = q.get("version").map(String::as_str).unwrap_or("");
    v.parse().map_err(|e| ApiError::invalid(format!("invalid {what} version '{v}': {e}")))
}

pub(crate) fn filters(q: &HashMap<String, String>, allowed: &[&str]) -> Result<Filters, ApiError> {
    let f = Filters::parse(q.get("filters").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    f.check_keys(allowed).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(f)
}

/// The router.
pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/_ping", get(system::ping).head(system::ping))
        .route("/version", get(system::version))
        .route("/info", get(system::info))
        .route("/swarm", get(swarm::swarm_inspect))
        .route("/swarm/init", post(swarm::swarm_init))
        .route("/swarm/join", post(swarm::swarm_join))
        .route("/swarm/leave", post(swarm::swarm_leave))
        .route("/swarm/update", post(swarm::swarm_update))
        .route("/swarm/unlockkey", get(swarm::unlock_key))
        .route("/swarm/unlock", post(swarm::swarm_unlock))
        .route("/nodes", get(nodes::node_list))
        .route("/nodes/{id}", get(nodes::node_inspect).delete(nodes::node_remove))
        .route("/nodes/{id}/update", post(nodes::node_update))
        .route("/services", get(services::service_list))
        .route("/services/create", post(services::service_create))
        .route("/services/{id}", get(services::service_inspect).delete(services::service_remove))
        .route("/services/{id}/update", post(services::service_update))
        .route("/services/{id}/logs", get(logs::service_logs))
        .route("/tasks", get(services::task_list))
        .route("/tasks/{id}", get(services::task_inspect))
        .route("/tasks/{id}/logs", get(logs::task_logs))
        .route("/networks", get(networks::network_list))
        .route("/networks/create", post(networks::network_create))
        .route("/networks/{id}", get(networks::network_inspect).delete(networks::network_remove))
        .route("/secrets", get(payloads::list::<{ payloads::SECRETS }>))
        .route("/secrets/create", post(payloads::create::<{ payloads::SECRETS }>))
        .route(
            "/secrets/{id}",
            get(payloads::inspect::<{ payloads::SECRETS }>).delete(payloads::remove::<{ payloads::SECRETS }>),
        )
        .route("/secrets/{id}/update", post(payloads::update::<{ payloads::SECRETS }>))
        .route("/configs", get(payloads::list::<{ payloads::CONFIGS }>))
        .route("/configs/create", post(payloads::create::<{ payloads::CONFIGS }>))
        .route(
            "/configs/{id}",
            get(payloads::inspect::<{ payloads::CONFIGS }>).delete(payloads::remove::<{ payloads::CONFIGS }>),
        )
        .route("/configs/{id}/update", post(payloads::update::<{ payloads::CONFIGS }>))
        .route("/events", get(events::events))
        .route("/volumes", get(volumes::volume_list))
        .route("/volumes/create", post(volumes::volume_create))
        .route("/volumes/prune", post(volumes::volume_prune))
        .route("/volumes/{name}", get(volumes::volume_inspect).delete(volumes::volume_remove))
        .route("/distribution/{*name}", get(system::distribution))
        .route("/auth", post(system::auth))
        .route("/images/json", get(images::image_list))
        .route("/images/prune", post(images::image_prune))
        .route("/images/{*name}", delete(images::image_remove))
        .route("/skep/kv/{key}", post(system::kv_put))
        .route("/skep/swarm/backup", get(swarm::swarm_backup))
        .route(
            "/skep/swarm/restore",
            post(swarm::swarm_restore).layer(axum::extract::DefaultBodyLimit::max(crate::node::MAX_BACKUP)),
        )
        .merge(crate::web::routes().with_state(node.web().clone()))
        .fallback(not_found)
        // Docker answers a known path with the wrong method as an unknown one (moby's router)
        .method_not_allowed_fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(guard::guard))
        .layer(axum::middleware::from_fn_with_state(node.clone(), headers))
        .with_state(node)
}

/// Strip `/v1.50` from the path (before routing), refusing versions out of range.
#[allow(clippy::result_large_err)] // the error is the response itself
pub fn rewrite_version(mut req: Request) -> Result<Request, Response> {
    let path = req.uri().path();
    if let Some(rest) = path.strip_prefix("/v") {
        let (ver, tail) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if !ver.is_empty() && ver.chars().all(|c| c.is_ascii_digit() || c == '.') {
            if version_cmp(ver, API_VERSION) == std::cmp::Ordering::Greater {
                return Err(ApiError::invalid(format!("client version {ver} is too new. Maximum supported API version is {API_VERSION}")).into_response());
            }
            if version_cmp(ver, MIN_API_VERSION) == std::cmp::Ordering::Less {
                return Err(ApiError::invalid(format!("client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version")).into_response());
            }
            let pq = match req.uri().query() {
                Some(q) => format!("{tail}?{q}"),
                None => tail.to_string(),
            };
            if let Ok(uri) = pq.parse::<Uri>() {
                *req.uri_mut() = uri;
            }
        }
    }
    Ok(req)
}

/// Compare dotted versions part by part as numbers of any size (Docker's `versions.compare` clamps a huge part to
/// the largest int, so `/v99999999999999999999.1` is "too new" there too; a missing part is 0).
fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..a.len().max(b.len()) {
        let part = |v: &[&str]| {
            let p = v.get(i).copied().unwrap_or("0").trim_start_matches('0');
            p.to_string()
        };
        let (x, y) = (part(&a), part(&b));
        let o = x.len().cmp(&y.len()).then_with(|| x.cmp(&y));
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    std::cmp::Ordering::Equal
}

async fn headers(State(node): State<NodeHandle>, req: Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    if let Ok(v) = HeaderValue::from_str(&format!("skep/{} (linux)", sysinfo::VERSION)) {
        h.insert(header::SERVER, v);
    }
    let _ = node;
    r
}

async fn not_found() -> Response {
    ApiError::not_found("page not found").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str) -> Request {
        Request::builder().uri(uri).body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn version_prefix_is_stripped_and_bounded() {
        let r = rewrite_version(req("/v1.50/nodes?filters=x")).unwrap();
        assert_eq!(r.uri().to_string(), "/nodes?filters=x");
        let r = rewrite_version(req("/v1.41/swarm")).unwrap();
        assert_eq!(r.uri().path(), "/swarm");
        assert!(rewrite_version(req("/v1.51/nodes")).is_err());
        assert!(rewrite_version(req("/v1.12/nodes")).is_err());
        assert_eq!(rewrite_version(req("/nodes")).unwrap().uri().path(), "/nodes");
        assert_eq!(rewrite_version(req("/volumes")).unwrap().uri().path(), "/volumes");
        for absurd in ["/v99999999999.1/_ping", "/v999999999999999999999999999999.1/_ping", "/v1.500000/x"] {
            let r = rewrite_version(req(absurd)).unwrap_err();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        }
        assert_eq!(version_cmp("1.050", "1.50"), std::cmp::Ordering::Equal);
        assert_eq!(version_cmp("1.9", "1.50"), std::cmp::Ordering::Less);
        assert_eq!(version_cmp("2", "1.50"), std::cmp::Ordering::Greater);
    }

    #[test]
    fn query_booleans_are_lenient() {
        let mut q = HashMap::new();
        q.insert("force".to_string(), "1".to_string());
        q.insert("no".to_string(), "false".to_string());
        q.insert("empty".to_string(), String::new());
        assert!(qbool(&q, "force"));
        assert!(!qbool(&q, "no"));
        assert!(!qbool(&q, "empty"));
        assert!(!qbool(&q, "missing"));
    }
}

