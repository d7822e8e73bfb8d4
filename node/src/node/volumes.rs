//! The node's volumes, as `/volumes` serves them (`docker volume ls/inspect/create/rm/prune` against a node).
//!
//! Volumes are local to a node, as in Docker swarm: each node's API answers for its own. On the `process` engine
//! they are skep's own ([`VolumeStore`] under the data root, the store the engine mounts into tasks); on the `docker`
//! engine tasks' volumes are the Docker engine's, so the node answers from Docker's volume API.

use super::NodeHandle;
use crate::error::{ApiError, ApiResult};
use skep_api::docker::{Volume, VolumeCreateRequest, VolumeListResponse, VolumePruneResponse};
use skep_api::filters::Filters;
use skep_worker::volumes::{ListFilter, VolumeError, VolumeStore};
use std::collections::HashMap;

/// Where this node's volumes are.
#[derive(Clone)]
pub(crate) enum Volumes {
    /// skep's own store (the `process` engine).
    Local(VolumeStore),
    /// The local Docker engine's (the `docker` engine).
    Docker(bollard::Docker),
}

/// `volume ls` filters both backends accept.
pub const LIST_FILTERS: &[&str] = &["name", "label", "dangling", "driver"];
/// `volume prune` filters.
pub const PRUNE_FILTERS: &[&str] = &["label", "all"];

impl From<VolumeError> for ApiError {
    fn from(e: VolumeError) -> Self {
        match e.status() {
            404 => ApiError::not_found(e.to_string()),
            409 => ApiError::Conflict(e.to_string()),
            400 => ApiError::invalid(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// Docker's answer, with its status, as this API's error.
pub(super) fn docker_error(e: bollard::errors::Error) -> ApiError {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, message } => match status_code {
            404 => ApiError::not_found(message),
            409 => ApiError::Conflict(message),
            400 => ApiError::invalid(message),
            _ => ApiError::internal(message),
        },
        other => ApiError::internal(format!("the Docker engine: {other}")),
    }
}

/// A value of one of Docker's types as the API's own (the same JSON shape).
pub(super) fn convert<T: serde::Serialize, U: serde::de::DeserializeOwned>(v: T) -> ApiResult<U> {
    serde_json::to_value(v)
        .and_then(serde_json::from_value)
        .map_err(|e| ApiError::internal(format!("reading the Docker engine's answer: {e}")))
}

pub(super) fn docker_filters(f: &Filters, keys: &[&str]) -> HashMap<String, Vec<String>> {
    keys.iter()
        .map(|k| (k.to_string(), f.get(k).map(str::to_string).collect::<Vec<_>>()))
        .filter(|(_, v)| !v.is_empty())
        .collect()
}

pub(super) fn flag(f: &Filters, key: &str) -> ApiResult<Option<bool>> {
    match f.get(key).next() {
        None => Ok(None),
        Some(v) => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Some(true)),
            "false" | "0" => Ok(Some(false)),
            _ => Err(ApiError::invalid(format!("invalid filter '{key}={v}'"))),
        },
    }
}

impl NodeHandle {
    /// `GET /volumes`.
    pub async fn volumes(&self, f: &Filters) -> ApiResult<VolumeListResponse> {
        match &self.inner.volumes {
            Volumes::Local(store) => {
                let filter = ListFilter {
                    name: f.get("name").map(str::to_string).collect(),
                    label: f.get("label").map(str::to_string).collect(),
                    dangling: flag(f, "dangling")?,
                    driver: f.get("driver").map(str::to_string).collect(),
                };
                Ok(VolumeListResponse { volumes: store.list(&filter).await?, warnings: Vec::new() })
            }
            Volumes::Docker(d) => {
                let opts = bollard::query_parameters::ListVolumesOptions { filters: Some(docker_filters(f, LIST_FILTERS)) };
                convert(d.list_volumes(Some(opts)).await.map_err(docker_error)?)
            }
        }
    }

    /// `GET /volumes/{name}`.
    pub async fn volume(&self, name: &str) -> ApiResult<Volume> {
        match &self.inner.volumes {
            Volumes::Local(store) => Ok(store.inspect(name).await?),
            Volumes::Docker(d) => convert(d.inspect_volume(name).await.map_err(docker_error)?),
        }
    }

    /// `POST /volumes/create`.
    pub async fn create_volume(&self, req: VolumeCreateRequest) -> ApiResult<Volume> {
        match &self.inner.volumes {
            Volumes::Local(store) => Ok(store.create(&req).await?),
            Volumes::Docker(d) => {
                let body: bollard::models::VolumeCreateRequest = convert(req)?;
                convert(d.create_volume(body).await.map_err(docker_error)?)
            }
        }
    }

    /// `DELETE /volumes/{name}[?force=1]`; refused (409) while a task uses it.
    pub async fn remove_volume(&self, name: &str, force: bool) -> ApiResult<()> {
        match &self.inner.volumes {
            Volumes::Local(store) => Ok(store.remove(name, force).await?),
            Volumes::Docker(d) => {
                let opts = bollard::query_parameters::RemoveVolumeOptions { force };
                d.remove_volume(name, Some(opts)).await.map_err(docker_error)
            }
        }
    }

    /// `POST /volumes/prune`: volumes no task uses (only anonymous ones unless `all=true`, as Docker ≥ 23).
    pub async fn prune_volumes(&self, f: &Filters) -> ApiResult<VolumePruneResponse> {
        match &self.inner.volumes {
            Volumes::Local(store) => {
                let labels: Vec<String> = f.get("label").map(str::to_string).collect();
                Ok(store.prune(flag(f, "all")?.unwrap_or(false), &labels).await?)
            }
            Volumes::Docker(d) => {
                let opts = bollard::query_parameters::PruneVolumesOptions { filters: Some(docker_filters(f, PRUNE_FILTERS)) };
                convert(d.prune_volumes(Some(opts)).await.map_err(docker_error)?)
            }
        }
    }
}
