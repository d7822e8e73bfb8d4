//! `/networks` routes.

use super::{filters, json_response, ok_json, parse_body, Q};
use crate::error::ApiError;
use crate::node::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use skep_api::docker;

pub(super) async fn network_create(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let req: docker::NetworkCreateRequest = parse_body(&body)?;
    let id = node.create_network(req).await?;
    Ok(json_response(StatusCode::CREATED, &docker::NetworkCreateResponse { id, warning: String::new() }))
}

pub(super) async fn network_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, &["name", "id", "driver", "scope", "type", "label", "dangling"])?;
    Ok(ok_json(&node.networks(&f).await?))
}

pub(super) async fn network_inspect(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.network(&id).await?))
}

pub(super) async fn network_remove(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    node.remove_network(&id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
