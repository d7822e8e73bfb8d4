//! `/services` and `/tasks` routes.

use super::{empty_ok, filters, json_response, ok_json, parse_body, qbool, qversion, Q};
use crate::error::ApiError;
use crate::node::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use skep_manager::control::services::AuthFrom;
use axum::response::Response;
use skep_api::docker;

/// The request's `X-Registry-Auth` (`--with-registry-auth`), checked to decode; empty when none.
fn registry_auth(headers: &HeaderMap) -> Result<String, ApiError> {
    let v = headers.get("X-Registry-Auth").map(|v| v.to_str().map_err(|_| ApiError::invalid("invalid X-Registry-Auth header"))).transpose()?.unwrap_or("");
    let creds = skep_registry::Credentials::from_header(v).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(if creds.is_empty() { String::new() } else { v.trim().to_string() })
}

pub(super) async fn service_create(State(node): State<NodeHandle>, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let spec: docker::ServiceSpec = parse_body(&body)?;
    let id = node.create_service(spec, &registry_auth(&headers)?).await?;
    Ok(json_response(StatusCode::CREATED, &docker::ServiceCreateResponse { id, warnings: None }))
}

pub(super) async fn service_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, skep_manager::control::services::SERVICE_FILTERS)?;
    Ok(ok_json(&node.services(&f, qbool(&q, "status")).await?))
}

pub(super) async fn service_inspect(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    Ok(ok_json(&node.service(&id, qbool(&q, "insertDefaults")).await?))
}

pub(super) async fn service_update(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q, headers: HeaderMap, body: Bytes) -> Result<Response, ApiError> {
    let version = qversion(&q, "service")?;
    let spec: docker::ServiceSpec = parse_body(&body)?;
    let rollback = q.get("rollback").is_some_and(|r| r == "previous");
    let auth = AuthFrom::from_request(&registry_auth(&headers)?, q.get("registryAuthFrom").map(String::as_str))?;
    node.update_service(&id, version, spec, rollback, auth).await?;
    Ok(ok_json(&docker::ServiceCreateResponse { id: String::new(), warnings: None }))
}

pub(super) async fn service_remove(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    node.remove_service(&id).await?;
    Ok(empty_ok())
}

pub(super) async fn task_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, skep_manager::control::services::TASK_FILTERS)?;
    Ok(ok_json(&node.tasks(&f).await?))
}

pub(super) async fn task_inspect(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.task(&id).await?))
}
