//! The node's images, as `/images/json`, `DELETE /images/{name}` and `/images/prune` serve them (`docker image
//! ls/rm/prune` against a node).
//!
//! Images are local to a node, as in Docker swarm. On the `process` engine they are skep's own store
//! ([`skep_worker::images`]), and what its tasks record keeps an image from removal; on the `docker` engine tasks
//! run the Docker engine's images, so the node answers from Docker's image API, as a Docker swarm node does.

use super::volumes::{convert, docker_error, docker_filters, flag, Volumes};
use super::NodeHandle;
use crate::error::{ApiError, ApiResult};
use skep_api::filters::Filters;
use skep_worker::images::remove::{repo_digests, repo_tags};
use skep_worker::images::{DeleteItem, ImageRecord, PruneFilter, RemoveError};

/// `image ls` filters both backends accept.
pub const LIST_FILTERS: &[&str] = &["dangling", "label", "reference"];
/// `image prune` filters.
pub const PRUNE_FILTERS: &[&str] = &["dangling", "label", "label!", "until"];

impl From<RemoveError> for ApiError {
    fn from(e: RemoveError) -> Self {
        match e.status() {
            404 => ApiError::not_found(e.to_string()),
            409 => ApiError::Conflict(e.to_string()),
            400 => ApiError::invalid(e.to_string()),
            _ => ApiError::internal(e.to_string()),
        }
    }
}

/// Go's `path.Match` for the patterns `reference=` takes (`*` and `?` within one path component; no classes).
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).take_while(|&i| i == 0 || s[i - 1] != b'/').any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => s.first().is_some_and(|&c| c != b'/') && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// `reference=` as Docker matches it: the pattern against each reference's familiar name, or name and tag.
fn reference_matches(pattern: &str, tags: &[String], digests: &[String]) -> bool {
    let names = digests.iter().filter_map(|d| d.split_once('@').map(|(n, _)| n));
    let tag_names = tags.iter().filter_map(|t| t.rsplit_once(':').map(|(n, _)| n));
    let mut candidates = tags.iter().map(String::as_str).chain(names).chain(tag_names);
    candidates.any(|c| glob(pattern.as_bytes(), c.as_bytes()))
}

fn labels_match(f: &Filters, r: &ImageRecord) -> bool {
    f.matches_labels("label", &r.config.config.labels.clone().into_iter().collect())
}

/// `until=` as Docker reads it (`timetypes.GetTimestamp`): a duration before `now` (`24h`, `90m`), Unix seconds
/// (with a fraction), or an RFC 3339 time; Unix seconds.
fn until_secs(v: &str, now: std::time::SystemTime) -> Option<i64> {
    let unix = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs() as i64);
    if let Ok(d) = humantime::parse_duration(v) {
        return unix(now.checked_sub(d)?);
    }
    if let Some(secs) = v.split('.').next().filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())) {
        return secs.parse().ok();
    }
    unix(skep_api::time::parse(v)?)
}

/// Docker's `ImageSummary` of a store image.
fn summary(r: &ImageRecord) -> serde_json::Value {
    serde_json::json!({
        "Id": r.config_digest, "ParentId": "", "RepoTags": repo_tags(r), "RepoDigests": repo_digests(r),
        "Created": r.created, "Size": r.size, "SharedSize": -1, "Labels": r.config.config.labels,
        "Containers": -1,
    })
}

impl NodeHandle {
    /// The Docker engine this node runs tasks on, if it does.
    fn docker_engine(&self) -> Option<&bollard::Docker> {
        match &self.inner.volumes {
            Volumes::Docker(d) => Some(d),
            Volumes::Local(_) => None,
        }
    }

    /// The process engine's tasks and the images they record.
    fn image_users(&self) -> Vec<skep_worker::images::ImageUser> {
        skep_worker::engine::process::image_users(&self.inner.opts.data_root.join("engine/tasks"))
    }

    /// `GET /images/json` (`all`: with intermediate images, which only a Docker engine that builds has).
    pub async fn image_list(&self, f: &Filters, all: bool) -> ApiResult<Vec<serde_json::Value>> {
        if let Some(d) = self.docker_engine() {
            let opts = bollard::query_parameters::ListImagesOptions {
                all,
                filters: Some(docker_filters(f, LIST_FILTERS)),
                ..Default::default()
            };
            return convert(d.list_images(Some(opts)).await.map_err(docker_error)?);
        }
        let dangling = flag(f, "dangling")?;
        let patterns: Vec<&str> = f.get("reference").collect();
        let store = self.inner.images.clone();
        let records =
            tokio::task::spawn_blocking(move || store.list()).await.map_err(|e| ApiError::internal(e.to_string()))?;
        let mut list: Vec<&ImageRecord> = records
            .iter()
            .filter(|r| dangling.is_none_or(|d| d == r.references.is_empty()))
            .filter(|r| labels_match(f, r))
            .filter(|r| {
                patterns.is_empty() || patterns.iter().any(|p| reference_matches(p, &repo_tags(r), &repo_digests(r)))
            })
            .collect();
        list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.config_digest.cmp(&b.config_digest)));
        Ok(list.into_iter().map(summary).collect())
    }

    /// `DELETE /images/{name}[?force=1]`.
    pub async fn image_remove(&self, name: &str, force: bool, noprune: bool) -> ApiResult<Vec<DeleteItem>> {
        if let Some(d) = self.docker_engine() {
            let opts = bollard::query_parameters::RemoveImageOptions { force, noprune, ..Default::default() };
            let items = d.remove_image(name, Some(opts), None).await.map_err(docker_error)?;
            return items
                .into_iter()
                .map(|i| match (i.untagged, i.deleted) {
                    (Some(u), _) => Ok(DeleteItem::Untagged(u)),
                    (None, Some(d)) => Ok(DeleteItem::Deleted(d)),
                    (None, None) => Err(ApiError::internal("the Docker engine answered an empty image delete item")),
                })
                .collect();
        }
        // `noprune` keeps untagged parent images: the store has none (images are not built here), so it changes
        // nothing and is taken as Docker takes it
        Ok(self.inner.images.remove(name, force, || self.image_users()).await?)
    }

    /// `POST /images/prune`.
    pub async fn image_prune(&self, f: &Filters) -> ApiResult<(Vec<DeleteItem>, u64)> {
        if let Some(d) = self.docker_engine() {
            let filters = Some(docker_filters(f, PRUNE_FILTERS));
            let opts = bollard::query_parameters::PruneImagesOptions { filters };
            let r = d.prune_images(Some(opts)).await.map_err(docker_error)?;
            let items = r
                .images_deleted
                .unwrap_or_default()
                .into_iter()
                .filter_map(|i| i.untagged.map(DeleteItem::Untagged).or(i.deleted.map(DeleteItem::Deleted)))
                .collect();
            return Ok((items, r.space_reclaimed.unwrap_or(0).max(0) as u64));
        }
        let now = std::time::SystemTime::now();
        let until = match f.get("until").next() {
            None => None,
            Some(v) => {
                Some(until_secs(v, now).ok_or_else(|| ApiError::invalid(format!("invalid filter 'until={v}'")))?)
            }
        };
        let filter = PruneFilter {
            dangling_only: flag(f, "dangling")?.unwrap_or(true),
            until,
            label: f.get("label").map(str::to_string).collect(),
            not_label: f.get("label!").map(str::to_string).collect(),
        };
        let report = self.inner.images.prune(&filter, || self.image_users()).await?;
        Ok((report.deleted, report.reclaimed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_patterns_match_like_go_path_match() {
        assert!(glob(b"busy*", b"busybox"));
        assert!(!glob(b"*", b"reg:5000/app"), "`*` stays within a component");
        assert!(glob(b"reg:5000/*", b"reg:5000/app"));
        assert!(glob(b"app:v?", b"app:v1"));
        let tags = vec!["reg:5000/app:v1".to_string()];
        let digests = vec!["reg:5000/app@sha256:aa".to_string()];
        assert!(reference_matches("reg:5000/app", &tags, &digests));
        assert!(reference_matches("reg:5000/app:v1", &tags, &digests));
        assert!(reference_matches("reg:5000/a*", &tags, &digests));
        assert!(!reference_matches("reg:5000/app:v2", &tags, &digests));
    }

    #[test]
    fn until_takes_durations_unix_seconds_and_times() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(100_000);
        assert_eq!(until_secs("24h", now), Some(100_000 - 86_400));
        assert_eq!(until_secs("1h30m", now), Some(100_000 - 5_400));
        assert_eq!(until_secs("1700000000.5", now), Some(1_700_000_000));
        assert_eq!(until_secs("2026-12-07T00:00:00Z", now), Some(1_796_601_600));
        assert_eq!(until_secs("soon", now), None);
    }
}
