//! `/nodes` routes: list (with Docker's filters), inspect, update, remove.

use super::{empty_ok, filters, ok_json, parse_body, qbool, qversion, Q};
use crate::error::ApiError;
use crate::node::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use skep_api::docker;

pub(super) async fn node_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, &["id", "label", "name", "node.label", "membership", "role"])?;
    let roles = f
        .get("role")
        .map(|r| r.parse::<docker::NodeRole>().map_err(|_| ApiError::invalid(format!("Invalid role '{r}', expected manager or worker"))))
        .collect::<Result<Vec<_>, _>>()?;
    for m in f.get("membership") {
        if m != "accepted" && m != "pending" {
            return Err(ApiError::invalid(format!("Invalid membership '{m}', expected accepted or pending")));
        }
    }
    let nodes: Vec<docker::Node> = node
        .nodes()
        .await?
        .into_iter()
        .filter(|n| f.matches_any("id", |v| n.id.starts_with(v)))
        .filter(|n| f.matches_any("name", |v| n.name().starts_with(v) || n.description.hostname.starts_with(v)))
        .filter(|n| roles.is_empty() || roles.contains(&n.spec.role))
        .filter(|_| f.matches_any("membership", |v| v == "accepted"))
        .filter(|n| f.matches_labels("node.label", &n.spec.labels))
        .filter(|n| f.matches_labels("label", &n.description.engine.labels))
        .collect();
    Ok(ok_json(&nodes))
}

pub(super) async fn node_inspect(State(node): State<NodeHandle>, Path(id): Path<String>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.node(&id).await?))
}

pub(super) async fn node_update(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q, body: Bytes) -> Result<Response, ApiError> {
    let version = qversion(&q, "node")?;
    let spec: docker::NodeSpecUpdate = parse_body(&body)?;
    node.update_node(&id, version, spec).await?;
    Ok(empty_ok())
}

pub(super) async fn node_remove(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    node.remove_node(&id, qbool(&q, "force")).await?;
    Ok(empty_ok())
}
