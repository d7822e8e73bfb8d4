//! Routes about this daemon itself: `/_ping`, `/version`, `/info`, `/distribution`, and the benchmarks' KV write.

use super::ok_json;
use crate::error::ApiError;
use crate::node::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use skep_api::docker;
use crate::sysinfo;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use serde::Deserialize;
use skep_api::docker::{API_VERSION, MIN_API_VERSION};

pub(super) async fn ping(State(node): State<NodeHandle>, method: Method) -> Response {
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

pub(super) async fn version() -> Response {
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

pub(super) async fn info(State(node): State<NodeHandle>) -> Response {
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
        plugins: serde_json::json!({"Volume": ["local"], "Network": ["overlay"], "Authorization": null, "Log": []}),
        security_options: vec![],
        swarm,
        containers: 0,
        driver: node.engine().into(),
    })
}

/// `GET /distribution/{name}/json`: asks the image's registry (with the caller's `X-Registry-Auth`) what the
/// reference names: the manifest or index descriptor, whose digest the CLI pins services to, and its platforms
/// (moby's `distribution_routes.go` answers the same shape). Errors keep Docker's statuses; the CLI only warns.
pub(super) async fn distribution(State(node): State<NodeHandle>, Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let Some(image) = name.strip_suffix("/json") else {
        return Err(ApiError::not_found("page not found"));
    };
    if node.engine() != "docker" && skep_worker::engine::process::image::is_host_program(image, node.host_programs()) {
        // a host program has no registry: an empty digest makes the CLI keep the reference as written, with no
        // warning (`cli/command/service/trust.go`, github.com/docker/cli)
        return Ok(ok_json(&serde_json::json!({"Descriptor": {"mediaType": "", "digest": "", "size": 0}, "Platforms": null})));
    }
    let auth = headers.get("X-Registry-Auth").and_then(|v| v.to_str().ok()).unwrap_or("");
    let creds = skep_registry::Credentials::from_header(auth).map_err(|e| ApiError::invalid(e.to_string()))?;
    let resolved = node.registry().session(image, creds)?.resolve().await?;
    let d = &resolved.descriptor;
    Ok(ok_json(&serde_json::json!({
        "Descriptor": {"mediaType": d.media_type, "digest": d.digest, "size": d.size},
        "Platforms": resolved.platforms,
    })))
}

/// The part of Docker's `AuthConfig` that names the registry; the credentials are read as `X-Registry-Auth` is.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LoginTarget {
    serveraddress: String,
}

/// `POST /auth` (`docker login`): checks the credentials against the registry, as dockerd does (`GET /v2/`, its
/// challenge answered); nothing is stored on the daemon (the CLI keeps them, for `--with-registry-auth`).
pub(super) async fn auth(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    use base64::Engine as _;
    let target: LoginTarget = super::parse_body(&body)?;
    let creds = skep_registry::Credentials::from_header(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&body))
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    match node.registry().login(&target.serveraddress, creds).await {
        Ok(_) => Ok(ok_json(&serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}))),
        // Docker's words (`registry/auth.go`, github.com/moby/moby)
        Err(skep_registry::RegistryError::Unauthorized { .. }) => {
            let scheme = if node.registry().is_insecure(target.serveraddress.trim()) { "http" } else { "https" };
            let host = target.serveraddress.trim().trim_start_matches("https://").trim_start_matches("http://");
            let host = host.split('/').next().unwrap_or_default();
            let status = "401 Unauthorized";
            Err(ApiError::Unauthorized(format!("login attempt to {scheme}://{host}/v2/ failed with status: {status}")))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize, serde::Serialize)]
struct KvReply {
    index: u64,
}

pub(super) async fn kv_put(State(node): State<NodeHandle>, Path(key): Path<String>, _h: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    if body.len() > 64 * 1024 {
        return Err(ApiError::invalid("value too large (64 KiB at most)"));
    }
    let index = node.kv_put(key, body.to_vec()).await?;
    Ok(ok_json(&KvReply { index }))
}
