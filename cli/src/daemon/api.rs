//! The Docker Engine API (swarm subset, v1.50 shapes) over HTTP/1.1, as the stock `docker` CLI expects it.
//!
//! Every route is served with and without the `/v{version}` prefix; versions above 1.50 and below 1.24 get Docker's
//! 400. Every response carries `Api-Version`, `Ostype` and `Server`; JSON bodies end in a newline and errors are
//! `{"message": ...}` with `Content-Type: application/json` exactly (the CLI compares the string).

use super::node::{ApiError, NodeHandle};
use super::sysinfo;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use skep_api::docker::{self, API_VERSION, MIN_API_VERSION};
use skep_api::filters::Filters;
use std::collections::HashMap;

/// Largest request body accepted.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

type Q = Query<HashMap<String, String>>;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &docker::ErrorResponse { message: self.message })
    }
}

fn json_response<T: serde::Serialize>(status: StatusCode, v: &T) -> Response {
    let mut body = serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn ok_json<T: serde::Serialize>(v: &T) -> Response {
    json_response(StatusCode::OK, v)
}

fn empty_ok() -> Response {
    StatusCode::OK.into_response()
}

fn parse_body<T: DeserializeOwned + Default>(body: &Bytes) -> Result<T, ApiError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ApiError::new(400, format!("invalid JSON: {e}")))
}

/// Docker's lenient query booleans: empty, 0, false, no, none are false.
fn qbool(q: &HashMap<String, String>, k: &str) -> bool {
    match q.get(k) {
        None => false,
        Some(v) => !matches!(v.to_ascii_lowercase().as_str(), "" | "0" | "false" | "no" | "none"),
    }
}

fn qversion(q: &HashMap<String, String>, what: &str) -> Result<u64, ApiError> {
    let v = q.get("version").map(String::as_str).unwrap_or("");
    v.parse().map_err(|e| ApiError::new(400, format!("invalid {what} version '{v}': {e}")))
}

fn filters(q: &HashMap<String, String>, allowed: &[&str]) -> Result<Filters, ApiError> {
    let f = Filters::parse(q.get("filters").map(String::as_str).unwrap_or(""))
        .map_err(|e| ApiError::new(400, e.to_string()))?;
    f.check_keys(allowed).map_err(|e| ApiError::new(400, e.to_string()))?;
    Ok(f)
}

/// The router.
pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/swarm", get(swarm_inspect))
        .route("/swarm/init", post(swarm_init))
        .route("/swarm/join", post(swarm_join))
        .route("/swarm/leave", post(swarm_leave))
        .route("/swarm/update", post(swarm_update))
        .route("/swarm/unlockkey", get(unlock_key))
        .route("/nodes", get(node_list))
        .route("/nodes/{id}", get(node_inspect).delete(node_remove))
        .route("/nodes/{id}/update", post(node_update))
        .route("/services", get(service_list))
        .route("/services/create", post(service_create))
        .route("/services/{id}", get(service_inspect).delete(service_remove))
        .route("/services/{id}/update", post(service_update))
        .route("/tasks", get(task_list))
        .route("/tasks/{id}", get(task_inspect))
        .route("/networks", get(network_list))
        .route("/networks/create", post(network_create))
        .route("/networks/{id}", get(network_inspect).delete(network_remove))
        .route("/distribution/{*name}", get(distribution))
        .route("/skep/kv/{key}", post(kv_put))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
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
                return Err(ApiError::new(400, format!("client version {ver} is too new. Maximum supported API version is {API_VERSION}")).into_response());
            }
            if version_cmp(ver, MIN_API_VERSION) == std::cmp::Ordering::Less {
                return Err(ApiError::new(400, format!("client version {ver} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version")).into_response());
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

fn version_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let p = |s: &str| s.split('.').map(|x| x.parse::<u64>().unwrap_or(0)).collect::<Vec<_>>();
    p(a).cmp(&p(b))
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
    ApiError::new(404, "page not found").into_response()
}

async fn ping(State(node): State<NodeHandle>, method: Method) -> Response {
    let swarm = match (node.state().await, node.manager().await) {
        (None, _) => "inactive",
        (Some(_), Some(_)) => "active/manager",
        (Some(_), None) => "active/worker",
    };
    let body = if method == Method::HEAD { "" } else { "OK" };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert("Swarm", HeaderValue::from_static(swarm));
    h.insert("Builder-Version", HeaderValue::from_static("2"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store, must-revalidate"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

async fn version() -> Response {
    ok_json(&docker::VersionResponse {
        platform: serde_json::json!({"Name": "skep"}),
        components: serde_json::json!([{"Name": "Engine", "Version": sysinfo::VERSION, "Details": {"ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": sysinfo::goarch()}}]),
        version: sysinfo::VERSION.into(),
        api_version: API_VERSION.into(),
        min_api_version: MIN_API_VERSION.into(),
        git_commit: option_env!("SKEP_GIT_COMMIT").unwrap_or("unknown").into(),
        go_version: "rust".into(),
        os: "linux".into(),
        arch: sysinfo::goarch(),
        kernel_version: sysinfo::kernel(),
        build_time: skep_api::time::ZERO_TIME.into(),
    })
}

async fn info(State(node): State<NodeHandle>) -> Response {
    let swarm = node.swarm_info().await;
    let id = if swarm.node_id.is_empty() { "skep".to_string() } else { swarm.node_id.clone() };
    ok_json(&docker::Info {
        id,
        name: sysinfo::hostname(),
        server_version: sysinfo::VERSION.into(),
        operating_system: sysinfo::os_name(),
        os_type: "linux".into(),
        architecture: sysinfo::arch(),
        kernel_version: sysinfo::kernel(),
        ncpu: sysinfo::ncpu(),
        mem_total: sysinfo::mem_total(),
        docker_root_dir: node.data_root().display().to_string(),
        labels: vec![format!("{}={}", docker::ENGINE_LABEL, node.engine())],
        plugins: serde_json::json!({"Volume": [], "Network": ["overlay"], "Authorization": null, "Log": []}),
        security_options: vec![],
        swarm,
        containers: 0,
        driver: node.engine().into(),
    })
}

async fn swarm_init(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let req: docker::InitRequest = parse_body(&body)?;
    let id = node.init(req).await?;
    Ok(ok_json(&id))
}

async fn swarm_join(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let req: docker::JoinRequest = parse_body(&body)?;
    node.join(req).await?;
    Ok(empty_ok())
}

async fn swarm_leave(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    node.leave(qbool(&q, "force")).await?;
    Ok(empty_ok())
}

async fn swarm_inspect(State(node): State<NodeHandle>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.swarm().await?))
}

async fn swarm_update(State(node): State<NodeHandle>, Query(q): Q, body: Bytes) -> Result<Response, ApiError> {
    let version = qversion(&q, "swarm")?;
    let spec: docker::SwarmSpec = parse_body(&body)?;
    if qbool(&q, "rotateManagerUnlockKey") {
        return Err(ApiError::new(501, "autolock is not supported by skep yet"));
    }
    node.update_swarm(version, spec, qbool(&q, "rotateWorkerToken"), qbool(&q, "rotateManagerToken")).await?;
    Ok(empty_ok())
}

async fn unlock_key(State(node): State<NodeHandle>) -> Result<Response, ApiError> {
    node.require_manager().await?;
    Ok(ok_json(&docker::UnlockKeyResponse { unlock_key: String::new() }))
}

async fn node_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, &["id", "label", "name", "node.label", "membership", "role"])?;
    for r in f.get("role") {
        if r != docker::role::MANAGER && r != docker::role::WORKER {
            return Err(ApiError::new(400, format!("Invalid role '{r}', expected manager or worker")));
        }
    }
    for m in f.get("membership") {
        if m != "accepted" && m != "pending" {
            return Err(ApiError::new(400, format!("Invalid membership '{m}', expected accepted or pending")));
        }
    }
    let nodes: Vec<docker::Node> = node
        .nodes()
        .await?
        .into_iter()
        .filter(|n| f.matches_any("id", |v| n.id.starts_with(v)))
        .filter(|n| f.matches_any("name", |v| n.name().starts_with(v) || n.description.hostname.starts_with(v)))
        .filter(|n| f.matches_any("role", |v| n.spec.role == v))
        .filter(|_| f.matches_any("membership", |v| v == "accepted"))
        .filter(|n| f.matches_labels("node.label", &n.spec.labels))
        .filter(|n| f.matches_labels("label", &n.description.engine.labels))
        .collect();
    Ok(ok_json(&nodes))
}

async fn node_inspect(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.node(&id).await?))
}

async fn node_update(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q, body: Bytes) -> Result<Response, ApiError> {
    let version = qversion(&q, "node")?;
    let spec: docker::NodeSpec = parse_body(&body)?;
    node.update_node(&id, version, spec).await?;
    Ok(empty_ok())
}

async fn node_remove(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    node.remove_node(&id, qbool(&q, "force")).await?;
    Ok(empty_ok())
}

async fn service_create(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let spec: docker::ServiceSpec = parse_body(&body)?;
    let id = node.create_service(spec).await?;
    Ok(json_response(StatusCode::CREATED, &docker::ServiceCreateResponse { id, warnings: None }))
}

async fn service_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, skep_manager::control::services::SERVICE_FILTERS)?;
    Ok(ok_json(&node.services(&f, qbool(&q, "status")).await?))
}

async fn service_inspect(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    Ok(ok_json(&node.service(&id, qbool(&q, "insertDefaults")).await?))
}

async fn service_update(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q, body: Bytes) -> Result<Response, ApiError> {
    let version = qversion(&q, "service")?;
    let spec: docker::ServiceSpec = parse_body(&body)?;
    let rollback = q.get("rollback").is_some_and(|r| r == "previous");
    node.update_service(&id, version, spec, rollback).await?;
    Ok(ok_json(&docker::ServiceCreateResponse { id: String::new(), warnings: None }))
}

async fn service_remove(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    node.remove_service(&id).await?;
    Ok(empty_ok())
}

async fn task_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, skep_manager::control::services::TASK_FILTERS)?;
    Ok(ok_json(&node.tasks(&f).await?))
}

async fn task_inspect(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.task(&id).await?))
}

async fn network_create(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let req: docker::NetworkCreateRequest = parse_body(&body)?;
    let id = node.create_network(req).await?;
    Ok(json_response(StatusCode::CREATED, &docker::NetworkCreateResponse { id, warning: String::new() }))
}

async fn network_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, &["name", "id", "driver", "scope", "type", "label", "dangling"])?;
    Ok(ok_json(&node.networks(&f).await?))
}

async fn network_inspect(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.network(&id).await?))
}

async fn network_remove(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    node.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /distribution/{name}/json`: skep does not contact registries; an empty digest makes the CLI keep the image
/// reference as written, with no warning (docker-api.md §5.1, case 3).
async fn distribution(Path(name): Path<String>) -> Result<Response, ApiError> {
    if !name.ends_with("/json") {
        return Err(ApiError::new(404, "page not found"));
    }
    Ok(ok_json(&serde_json::json!({"Descriptor": {"mediaType": "", "digest": "", "size": 0}, "Platforms": null})))
}

#[derive(Deserialize, serde::Serialize)]
struct KvReply {
    index: u64,
}

async fn kv_put(State(node): State<NodeHandle>, Path(key): Path<String>, _h: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    if body.len() > 64 * 1024 {
        return Err(ApiError::new(400, "value too large (64 KiB at most)"));
    }
    let index = node.kv_put(key, body.to_vec()).await?;
    Ok(ok_json(&KvReply { index }))
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
