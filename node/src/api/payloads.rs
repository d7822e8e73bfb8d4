//! `/secrets` and `/configs` routes: one set of handlers for both kinds, told apart by a const parameter (the
//! objects have the same shape and rules; only a secret's data is never shown).

use super::{empty_ok, json_response, ok_json, parse_body_within, Q};
use crate::error::ApiError;
use crate::node::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use skep_api::docker;
use skep_api::filters::Filters;
use skep_manager::store::PayloadKind;

/// The const parameter of the handlers for `/secrets`.
pub(super) const SECRETS: u8 = 0;
/// The const parameter of the handlers for `/configs`.
pub(super) const CONFIGS: u8 = 1;

fn kind<const K: u8>() -> PayloadKind {
    if K == SECRETS {
        PayloadKind::Secret
    } else {
        PayloadKind::Config
    }
}

pub(super) async fn create<const K: u8>(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let spec: docker::SecretSpec = parse_body_within(&body, super::MAX_PAYLOAD_BODY_BYTES)?;
    let id = node.create_payload(kind::<K>(), spec).await?;
    Ok(json_response(StatusCode::CREATED, &docker::CreateResponse { id }))
}

pub(super) async fn list<const K: u8>(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    // the keys are checked by the control operation (Docker's text differs from the other lists')
    let f = Filters::parse(q.get("filters").map(String::as_str).unwrap_or("")).map_err(|e| ApiError::invalid(e.to_string()))?;
    Ok(ok_json(&node.payloads(kind::<K>(), &f).await?))
}

pub(super) async fn inspect<const K: u8>(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.payload(kind::<K>(), &id).await?))
}

pub(super) async fn update<const K: u8>(
    State(node): State<NodeHandle>,
    Path(id): Path<String>,
    Query(q): Q,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = kind::<K>();
    let version = q
        .get("version")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::invalid(format!("invalid {} version", kind.noun())))?;
    let spec: docker::SecretSpec = parse_body_within(&body, super::MAX_PAYLOAD_BODY_BYTES)?;
    node.update_payload(kind, &id, version, spec).await?;
    Ok(empty_ok())
}

pub(super) async fn remove<const K: u8>(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    node.remove_payload(kind::<K>(), &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
