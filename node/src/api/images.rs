//! `/images` routes: this node's own images (list, remove, prune), as `docker image ls/rm/prune` use them; the
//! process engine's store or the Docker engine's images (see `node::images`).

use super::{filters, ok_json, qbool, Q};
use crate::error::ApiError;
use crate::node::{NodeHandle, IMAGE_LIST_FILTERS, IMAGE_PRUNE_FILTERS};
use axum::extract::{Path, Query, State};
use axum::response::Response;

/// Query parameters of `GET /images/json` that ask for something skep does not compute: refused, not ignored.
const UNSUPPORTED_LIST_FLAGS: &[&str] = &["shared-size", "manifests"];

/// `GET /images/json`.
pub(super) async fn image_list(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    if let Some(k) = UNSUPPORTED_LIST_FLAGS.iter().find(|k| qbool(&q, k)) {
        return Err(ApiError::not_implemented(format!("image list: {k}=1 is not supported by skep")));
    }
    // `all` adds intermediate images (of builds): a docker node's engine is asked for them; a process node's store
    // has none, so its list is the same either way
    let f = filters(&q, IMAGE_LIST_FILTERS)?;
    Ok(ok_json(&node.image_list(&f, qbool(&q, "all")).await?))
}

/// `DELETE /images/{name}`.
pub(super) async fn image_remove(
    State(node): State<NodeHandle>,
    Path(name): Path<String>,
    Query(q): Q,
) -> Result<Response, ApiError> {
    Ok(ok_json(&node.image_remove(&name, qbool(&q, "force"), qbool(&q, "noprune")).await?))
}

/// `POST /images/prune`.
pub(super) async fn image_prune(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    let f = filters(&q, IMAGE_PRUNE_FILTERS)?;
    let (deleted, reclaimed) = node.image_prune(&f).await?;
    let deleted = if deleted.is_empty() { serde_json::Value::Null } else { serde_json::json!(deleted) };
    Ok(ok_json(&serde_json::json!({ "ImagesDeleted": deleted, "SpaceReclaimed": reclaimed })))
}
