//! `/volumes` routes: this node's own volumes (list, inspect, create, remove, prune), as `docker volume` uses them.

use super::{filters, json_response, ok_json, parse_body, qbool, Q};
use crate::error::ApiError;
use crate::node::{NodeHandle, VOLUME_LIST_FILTERS, VOLUME_PRUNE_FILTERS};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use skep_api::docker;

pub(super) async fn volume_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, VOLUME_LIST_FILTERS)?;
    Ok(ok_json(&node.volumes(&f).await?))
}

pub(super) async fn volume_create(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let req: docker::VolumeCreateRequest = parse_body(&body)?;
    Ok(json_response(StatusCode::CREATED, &node.create_volume(req).await?))
}

pub(super) async fn volume_inspect(State(node): State<NodeHandle>, Path(name): Path<String>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.volume(&name).await?))
}

pub(super) async fn volume_remove(State(node): State<NodeHandle>, Path(name): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    node.remove_volume(&name, qbool(&q, "force")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn volume_prune(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, VOLUME_PRUNE_FILTERS)?;
    Ok(ok_json(&node.prune_volumes(&f).await?))
}
