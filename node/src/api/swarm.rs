//! `/swarm` routes: init, join, leave, inspect, update, the unlock key.

use super::{empty_ok, ok_json, parse_body, qbool, qversion, Q};
use crate::error::ApiError;
use crate::node::NodeHandle;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::Response;
use skep_api::docker;

pub(super) async fn swarm_init(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let req: docker::InitRequest = parse_body(&body)?;
    let id = node.init(req).await?;
    Ok(ok_json(&id))
}

pub(super) async fn swarm_join(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let req: docker::JoinRequest = parse_body(&body)?;
    node.join(req).await?;
    Ok(empty_ok())
}

pub(super) async fn swarm_leave(State(node): State<NodeHandle>, Query(q): Q) -> Result<Response, ApiError> {
    node.leave(qbool(&q, "force")).await?;
    Ok(empty_ok())
}

pub(super) async fn swarm_inspect(State(node): State<NodeHandle>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.swarm().await?))
}

pub(super) async fn swarm_update(State(node): State<NodeHandle>, Query(q): Q, body: Bytes) -> Result<Response, ApiError> {
    let version = qversion(&q, "swarm")?;
    let spec: docker::SwarmSpec = parse_body(&body)?;
    let rotate = skep_manager::control::Rotation {
        worker_token: qbool(&q, "rotateWorkerToken"),
        manager_token: qbool(&q, "rotateManagerToken"),
        unlock_key: qbool(&q, "rotateManagerUnlockKey"),
    };
    node.update_swarm(version, spec, rotate).await?;
    Ok(empty_ok())
}

/// `GET /swarm/unlockkey`: the key, empty when autolock is off (the docker CLI then says "no unlock key is set").
pub(super) async fn unlock_key(State(node): State<NodeHandle>) -> Result<Response, ApiError> {
    Ok(ok_json(&docker::UnlockKeyResponse { unlock_key: node.unlock_key().await? }))
}

/// `POST /swarm/unlock`: give a locked manager the unlock key.
pub(super) async fn swarm_unlock(State(node): State<NodeHandle>, body: Bytes) -> Result<Response, ApiError> {
    let req: docker::UnlockRequest = parse_body(&body)?;
    node.unlock(&req.unlock_key).await?;
    Ok(empty_ok())
}

/// `GET /skep/swarm/backup` (a skep extension): the manager's state and identity, see [`crate::node::Backup`].
pub(super) async fn swarm_backup(State(node): State<NodeHandle>) -> Result<Response, ApiError> {
    Ok(ok_json(&node.backup().await?))
}

/// `POST /skep/swarm/restore[?listen_addr=…&advertise_addr=…]` (a skep extension): restore a backup on a daemon outside any swarm.
pub(super) async fn swarm_restore(State(node): State<NodeHandle>, Query(q): Q, body: Bytes) -> Result<Response, ApiError> {
    let backup: crate::node::Backup =
        serde_json::from_slice(&body).map_err(|e| ApiError::invalid(format!("not a skep swarm backup: {e}")))?;
    let listen = q.get("listen_addr").map(String::as_str).unwrap_or("");
    let advertise = q.get("advertise_addr").map(String::as_str).unwrap_or("");
    Ok(ok_json(&node.restore(backup, listen, advertise).await?))
}
