//! `/images/json`: the images a node's embedded engine holds (its store, `skep_worker::images`), in Docker's
//! `ImageSummary` shape. On a node running the docker engine, images are that engine's: ask it directly.

use super::ok_json;
use crate::error::ApiError;
use crate::node::NodeHandle;
use axum::extract::State;
use axum::response::Response;
use skep_api::docker::reference::Reference;

/// `GET /images/json`.
pub(super) async fn image_list(State(node): State<NodeHandle>) -> Result<Response, ApiError> {
    if node.engine() == "docker" {
        return Err(ApiError::not_implemented(
            "this node runs tasks on its Docker engine: list that engine's images with docker against its own socket",
        ));
    }
    let store = node.images().clone();
    let records = tokio::task::spawn_blocking(move || store.list()).await.map_err(|e| ApiError::internal(e.to_string()))?;
    let list: Vec<serde_json::Value> = records
        .iter()
        .map(|r| {
            let mut tags = Vec::new();
            let mut digests = Vec::new();
            for reference in &r.references {
                if let Some(p) = Reference::parse(reference) {
                    let name = Reference { tag: None, digest: None, ..p.clone() }.familiar();
                    if let Some(t) = &p.tag {
                        tags.push(format!("{name}:{t}"));
                    }
                    digests.push(format!("{name}@{}", r.manifest_digest));
                }
            }
            tags.sort();
            tags.dedup();
            digests.sort();
            digests.dedup();
            serde_json::json!({
                "Id": r.config_digest, "ParentId": "", "RepoTags": tags, "RepoDigests": digests,
                "Created": r.created, "Size": r.size, "SharedSize": -1, "Labels": r.config.config.labels,
                "Containers": -1,
            })
        })
        .collect();
    Ok(ok_json(&list))
}
