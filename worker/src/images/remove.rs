//! `docker image rm` and `docker image prune` against a node of the embedded engine, with Docker's rules
//! (moby's `daemon/images/image_delete.go` and `image_prune.go`) so that the stock CLI's answers read as they do on
//! a Docker node:
//! - a name with a tag (`busybox` means `busybox:latest`) or a digest untags that reference; the image goes when no
//!   tag is left (its digests go with it), and its layers when no other image uses them;
//! - an image ID (or a unique prefix, with or without `sha256:`) removes the image with all its references, but only
//!   with `force` when those name more than one repository;
//! - an image a task of this node records (a task directory, running or not) is never removed: removing a reference
//!   that would remove it is refused unless forced, and then only untags; removing it by ID is refused.
//!
//! Prune removes images no task uses: only those with no reference left by default (`dangling=true`), all of them
//! with `dangling=false` (`docker image prune -a`), narrowed by `until` and `label` / `label!`.
//!
//! Removals hold the store's users lock exclusively (a task between its pull and its record waits) and the pull lock
//! (a pull's layers are in no record yet): a pull under way makes them wait, up to [`PULL_WAIT`], then fail.

use super::store::{ImageRecord, ImageStore};
use serde::Serialize;
use skep_api::docker::reference::Reference;
use std::collections::BTreeSet;
use std::time::Duration;

/// How long a removal waits for a pull under way.
pub const PULL_WAIT: Duration = Duration::from_secs(10);

/// A task of the node and the image (manifest digest) its directory records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageUser {
    /// The task's ID.
    pub task: String,
    /// The image's manifest digest.
    pub manifest: String,
}

/// One line of Docker's answer (`ImageDeleteResponseItem`): `{"Untagged": …}` or `{"Deleted": …}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DeleteItem {
    /// A reference removed.
    Untagged(String),
    /// An image (its ID) or a layer (its digest) deleted.
    Deleted(String),
}

/// What `prune` removes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneFilter {
    /// Only images with no reference left (Docker's default, `dangling=true`).
    pub dangling_only: bool,
    /// Only images first pulled before this Unix time.
    pub until: Option<i64>,
    /// `label=` filters (`key` or `key=value`), all of which must match.
    pub label: Vec<String>,
    /// `label!=` filters, none of which may match.
    pub not_label: Vec<String>,
}

/// What `prune` did: Docker's `ImagesDeleted` and `SpaceReclaimed`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Untagged references, deleted images and layers.
    pub deleted: Vec<DeleteItem>,
    /// Bytes of the deleted layers.
    pub reclaimed: u64,
}

/// Why an image was not removed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RemoveError {
    /// No image by that name (404, Docker's text).
    #[error("No such image: {0}")]
    NotFound(String),
    /// Docker's `conflict: …` (409).
    #[error("{0}")]
    Conflict(String),
    /// The name cannot name one image (400).
    #[error("{0}")]
    Invalid(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] super::ImageError),
}

impl RemoveError {
    /// The HTTP status Docker answers with.
    pub fn status(&self) -> u16 {
        match self {
            RemoveError::NotFound(_) => 404,
            RemoveError::Conflict(_) => 409,
            RemoveError::Invalid(_) => 400,
            RemoveError::Store(_) => 500,
        }
    }
}

/// A stored reference as Docker shows it: `name:tag` (if it has a tag) and `name@digest`.
struct Keys {
    name: String,
    tag: Option<String>,
    digest: String,
}

fn keys(reference: &str, record: &ImageRecord) -> Option<Keys> {
    let p = Reference::parse(reference)?;
    let name = Reference { tag: None, digest: None, ..p.clone() }.familiar();
    // a bare name was pulled as `:latest`
    let tag = p.tag.as_deref().or(p.digest.is_none().then_some("latest"));
    Some(Keys {
        tag: tag.map(|t| format!("{name}:{t}")),
        digest: format!("{name}@{}", p.digest.as_deref().unwrap_or(&record.manifest_digest)),
        name,
    })
}

/// The image ID's short form, as Docker's messages show it.
fn short(record: &ImageRecord) -> String {
    record.config_digest.trim_start_matches("sha256:").chars().take(12).collect()
}

/// Every tag, then every digest, of `references`, each once.
fn untag_all(references: &[String], record: &ImageRecord) -> Vec<DeleteItem> {
    let all: Vec<Keys> = references.iter().filter_map(|r| keys(r, record)).collect();
    let tags: BTreeSet<&String> = all.iter().filter_map(|k| k.tag.as_ref()).collect();
    let digests: BTreeSet<&String> = all.iter().map(|k| &k.digest).collect();
    tags.into_iter().chain(digests).map(|k| DeleteItem::Untagged(k.clone())).collect()
}

/// Docker's `RepoTags` of an image: `name:tag` of each reference with a tag (a bare name is `:latest`), sorted.
pub fn repo_tags(record: &ImageRecord) -> Vec<String> {
    let tags: BTreeSet<String> = record.references.iter().filter_map(|r| keys(r, record)?.tag).collect();
    tags.into_iter().collect()
}

/// Docker's `RepoDigests`: `name@digest` of each reference (the digest it was pinned to, else the manifest's).
pub fn repo_digests(record: &ImageRecord) -> Vec<String> {
    let digests: BTreeSet<String> = record.references.iter().filter_map(|r| Some(keys(r, record)?.digest)).collect();
    digests.into_iter().collect()
}

/// How a name found its image.
enum Found {
    /// By `name:tag`.
    Tag(String),
    /// By `name@digest`.
    Digest { name: String, digest: String },
    /// By ID.
    Id,
}

impl ImageStore {
    fn find(&self, name: &str) -> Result<(ImageRecord, Found), RemoveError> {
        let records = self.list();
        if let Some(p) = Reference::parse(name) {
            let familiar = Reference { tag: None, digest: None, ..p.clone() }.familiar();
            if let Some(d) = &p.digest {
                let named = |r: &ImageRecord| {
                    r.references.iter().filter_map(|x| keys(x, r)).any(|k| k.name == familiar)
                        && (r.manifest_digest == *d || r.references.iter().any(|x| x.ends_with(&format!("@{d}"))))
                };
                if let Some(r) = records.iter().find(|r| named(r)) {
                    return Ok((r.clone(), Found::Digest { name: familiar, digest: d.clone() }));
                }
            } else {
                let tag = format!("{familiar}:{}", p.tag.as_deref().unwrap_or("latest"));
                let tagged = |r: &ImageRecord| {
                    r.references.iter().filter_map(|x| keys(x, r)).any(|k| k.tag.as_ref() == Some(&tag))
                };
                if let Some(r) = records.iter().find(|r| tagged(r)) {
                    return Ok((r.clone(), Found::Tag(tag)));
                }
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let by_id: Vec<&ImageRecord> =
                records.iter().filter(|r| r.config_digest.trim_start_matches("sha256:").starts_with(hex)).collect();
            match by_id.as_slice() {
                [one] => return Ok(((*one).clone(), Found::Id)),
                [] => {}
                many => {
                    let n = many.len();
                    let why = format!("{name}: the ID prefix names {n} images; give more of it");
                    return Err(RemoveError::Invalid(why));
                }
            }
        }
        Err(RemoveError::NotFound(name.to_string()))
    }

    /// `DELETE /images/{name}`: see the module doc. `users` lists the node's tasks and their images; it is called
    /// with removals excluded, so what it says holds until this returns.
    pub async fn remove(
        &self,
        name: &str,
        force: bool,
        users: impl FnOnce() -> Vec<ImageUser>,
    ) -> Result<Vec<DeleteItem>, RemoveError> {
        let _no_user = self.users.write().await;
        let _no_pull = self.pulls_quiet(PULL_WAIT).await.ok_or_else(|| {
            let why = "an image is being pulled on this node; try again";
            RemoveError::Conflict(format!("conflict: unable to remove {name}: {why}"))
        })?;
        let (record, found) = self.find(name)?;
        let user = users().into_iter().find(|u| u.manifest == record.manifest_digest);
        let (remaining, untagged) = match &found {
            Found::Id => {
                let repos: BTreeSet<String> =
                    record.references.iter().filter_map(|r| keys(r, &record)).map(|k| k.name).collect();
                if let Some(u) = &user {
                    return Err(RemoveError::Conflict(format!(
                        "conflict: unable to delete {} (cannot be forced) - image is being used by task {}",
                        short(&record),
                        u.task
                    )));
                }
                if repos.len() > 1 && !force {
                    return Err(RemoveError::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short(&record)
                    )));
                }
                (Vec::new(), untag_all(&record.references, &record))
            }
            Found::Tag(tag) => {
                let (gone, kept): (Vec<String>, Vec<String>) = record
                    .references
                    .iter()
                    .cloned()
                    .partition(|r| keys(r, &record).and_then(|k| k.tag).as_ref() == Some(tag));
                let digests: Vec<DeleteItem> = untag_all(&gone, &record).into_iter().skip(1).collect();
                let mut untagged = vec![DeleteItem::Untagged(tag.clone())];
                // a tag's digest goes with it when no other reference keeps that digest
                let still_named = untag_all(&kept, &record);
                untagged.extend(digests.into_iter().filter(|d| !still_named.contains(d)));
                (kept, untagged)
            }
            Found::Digest { name: repo, digest } => {
                let mut kept = Vec::new();
                for r in &record.references {
                    match keys(r, &record) {
                        Some(k) if k.name == *repo && k.digest.ends_with(digest.as_str()) => {
                            // `name:tag@digest` keeps its tag
                            if let Some(t) = k.tag {
                                kept.push(t);
                            }
                        }
                        _ => kept.push(r.clone()),
                    }
                }
                (kept, vec![DeleteItem::Untagged(format!("{repo}@{digest}"))])
            }
        };
        let tags_left = remaining.iter().any(|r| keys(r, &record).is_some_and(|k| k.tag.is_some()));
        let whole = match found {
            Found::Id => true,
            Found::Tag(_) => !tags_left,
            Found::Digest { .. } => remaining.is_empty(),
        };
        if whole {
            if let Some(u) = &user {
                if !force {
                    let (task, image) = (&u.task, short(&record));
                    return Err(RemoveError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - task {task} \
                         is using its referenced image {image}"
                    )));
                }
                // forced: the references go, the image stays for its task (dangling, as Docker leaves it)
                return self.rewrite(&record, Vec::new(), untag_all(&record.references, &record)).await;
            }
            let mut items = untag_all(&record.references, &record);
            if let Found::Tag(tag) = &found {
                // the name asked for comes first, as in Docker's answer
                items.retain(|i| *i != DeleteItem::Untagged(tag.clone()));
                items.insert(0, DeleteItem::Untagged(tag.clone()));
            }
            self.forget(&record);
            items.push(DeleteItem::Deleted(record.config_digest.clone()));
            items.extend(self.remove_unused_layers().into_iter().map(|(d, _)| DeleteItem::Deleted(d)));
            return Ok(items);
        }
        self.rewrite(&record, remaining, untagged).await
    }

    /// Keeps `record` with only `remaining` references (what the dropped ones resolved to is forgotten).
    async fn rewrite(
        &self,
        record: &ImageRecord,
        remaining: Vec<String>,
        untagged: Vec<DeleteItem>,
    ) -> Result<Vec<DeleteItem>, RemoveError> {
        for r in record.references.iter().filter(|r| !remaining.contains(r)) {
            let _ = std::fs::remove_file(self.ref_path(r));
        }
        let kept = ImageRecord { references: remaining, ..record.clone() };
        self.write_record(&kept).await?;
        Ok(untagged)
    }

    /// `POST /images/prune`: see the module doc.
    pub async fn prune(
        &self,
        filter: &PruneFilter,
        users: impl FnOnce() -> Vec<ImageUser>,
    ) -> Result<PruneReport, RemoveError> {
        let _no_user = self.users.write().await;
        let _no_pull = self
            .pulls_quiet(PULL_WAIT)
            .await
            .ok_or_else(|| RemoveError::Conflict("conflict: an image is being pulled on this node; try again".into()))?;
        let used: BTreeSet<String> = users().into_iter().map(|u| u.manifest).collect();
        let mut report = PruneReport::default();
        for r in self.list() {
            let labels = &r.config.config.labels;
            let has = |f: &String| match f.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                None => labels.contains_key(f.as_str()),
            };
            let chosen = !used.contains(&r.manifest_digest)
                && (!filter.dangling_only || r.references.is_empty())
                && filter.until.is_none_or(|t| r.created < t)
                && filter.label.iter().all(has)
                && !filter.not_label.iter().any(has);
            if chosen {
                report.deleted.extend(untag_all(&r.references, &r));
                self.forget(&r);
                report.deleted.push(DeleteItem::Deleted(r.config_digest.clone()));
            }
        }
        for (digest, size) in self.remove_unused_layers() {
            report.deleted.push(DeleteItem::Deleted(digest));
            report.reclaimed += size;
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_registry::Client;

    const M: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

    fn digest(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    /// An image with manifest `m`, config `c`, one layer `l` of 10 bytes, pulled as `references`.
    fn image(store: &ImageStore, m: char, c: char, l: char, references: &[&str]) -> ImageRecord {
        let r = ImageRecord {
            manifest_digest: digest(m),
            config: Default::default(),
            config_digest: digest(c),
            layers: vec![digest(l)],
            size: 10,
            references: references.iter().map(|s| s.to_string()).collect(),
            created: 100,
        };
        for d in ["images", "refs", "tmp"] {
            std::fs::create_dir_all(store.root().join(d)).unwrap();
        }
        std::fs::write(store.record_path(&r.manifest_digest), serde_json::to_vec(&r).unwrap()).unwrap();
        std::fs::create_dir_all(store.layer_dir(&r.layers[0])).unwrap();
        std::fs::write(store.layer_dir(&r.layers[0]).join("f"), "0123456789").unwrap();
        r
    }

    fn store() -> (tempfile::TempDir, ImageStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().to_path_buf(), Client::default());
        (dir, store)
    }

    fn untagged(s: &str) -> DeleteItem {
        DeleteItem::Untagged(s.into())
    }

    #[tokio::test]
    async fn a_tag_is_untagged_and_the_last_one_takes_the_image_and_its_layers() {
        let (_d, store) = store();
        let pinned = format!("reg:5000/app:v1@{M}");
        image(&store, '1', 'c', 'a', &[&pinned, "reg:5000/app:v2"]);
        let none = Vec::new;
        assert_eq!(store.remove("reg:5000/app:v2", false, none).await.unwrap(), vec![untagged("reg:5000/app:v2")]);
        assert_eq!(store.list()[0].references, vec![pinned.clone()]);
        let items = store.remove("reg:5000/app:v1", false, none).await.unwrap();
        assert_eq!(
            items,
            vec![
                untagged("reg:5000/app:v1"),
                untagged(&format!("reg:5000/app@{M}")),
                DeleteItem::Deleted(digest('c')),
                DeleteItem::Deleted(digest('a')),
            ]
        );
        assert!(store.list().is_empty());
        assert!(!store.layer_dir(&digest('a')).exists());
        let err = store.remove("reg:5000/app:v1", false, none).await.unwrap_err();
        assert_eq!((err.status(), err.to_string()), (404, "No such image: reg:5000/app:v1".into()));
    }

    #[tokio::test]
    async fn a_shared_layer_stays_while_another_image_uses_it() {
        let (_d, store) = store();
        image(&store, '1', 'c', 'a', &["one"]);
        image(&store, '2', 'e', 'a', &["two"]);
        let items = store.remove("one", false, Vec::new).await.unwrap();
        let digest_ref = format!("one@{}", digest('1'));
        assert_eq!(items, vec![untagged("one:latest"), untagged(&digest_ref), DeleteItem::Deleted(digest('c'))]);
        assert!(store.layer_dir(&digest('a')).is_dir());
    }

    #[tokio::test]
    async fn an_id_removes_everything_but_only_forced_across_repositories() {
        let (_d, store) = store();
        image(&store, '1', 'c', 'a', &["one:1", "two:1"]);
        let err = store.remove("ccc", false, Vec::new).await.unwrap_err();
        assert_eq!(err.status(), 409);
        assert!(err.to_string().contains("(must be forced) - image is referenced in multiple repositories"), "{err}");
        let items = store.remove(&format!("sha256:{}", "c".repeat(20)), true, Vec::new).await.unwrap();
        assert_eq!(items.len(), 6, "{items:?}"); // two tags, two digests, the image, its layer
        assert!(store.list().is_empty());
    }

    #[tokio::test]
    async fn an_image_a_task_records_is_never_deleted() {
        let (_d, store) = store();
        image(&store, '1', 'c', 'a', &["app:1"]);
        let users = || vec![ImageUser { task: "t1".into(), manifest: digest('1') }];
        let err = store.remove("app:1", false, users).await.unwrap_err();
        assert_eq!(err.status(), 409);
        assert!(err.to_string().contains("(must force) - task t1 is using its referenced image cccccccccccc"), "{err}");
        let err = store.remove("cccc", true, users).await.unwrap_err();
        assert!(err.to_string().contains("(cannot be forced) - image is being used by task t1"), "{err}");
        // forced by name: untagged, kept for the task (dangling); prune leaves it while the task is there
        let items = store.remove("app:1", true, users).await.unwrap();
        assert_eq!(items, vec![untagged("app:1"), untagged(&format!("app@{}", digest('1')))]);
        assert!(store.list()[0].references.is_empty());
        let all = PruneFilter::default();
        assert_eq!(store.prune(&all, users).await.unwrap(), PruneReport::default());
        let report = store.prune(&PruneFilter { dangling_only: true, ..all }, Vec::new).await.unwrap();
        assert_eq!(report.deleted, vec![DeleteItem::Deleted(digest('c')), DeleteItem::Deleted(digest('a'))]);
        assert_eq!(report.reclaimed, 10);
    }

    #[tokio::test]
    async fn prune_takes_dangling_images_by_default_and_every_unused_one_when_asked() {
        let (_d, store) = store();
        image(&store, '1', 'c', 'a', &["app:1"]);
        image(&store, '2', 'e', 'b', &[]);
        let dangling = PruneFilter { dangling_only: true, ..Default::default() };
        let report = store.prune(&dangling, Vec::new).await.unwrap();
        assert_eq!(report.deleted, vec![DeleteItem::Deleted(digest('e')), DeleteItem::Deleted(digest('b'))]);
        let old = PruneFilter { until: Some(50), ..Default::default() };
        assert!(store.prune(&old, Vec::new).await.unwrap().deleted.is_empty(), "pulled at 100, after 50");
        let labelled = PruneFilter { label: vec!["x".into()], ..Default::default() };
        assert!(store.prune(&labelled, Vec::new).await.unwrap().deleted.is_empty(), "no label x");
        let report = store.prune(&PruneFilter::default(), Vec::new).await.unwrap();
        assert_eq!(report.deleted.len(), 4, "{:?}", report.deleted);
        assert_eq!(report.reclaimed, 10);
        assert!(store.list().is_empty());
    }

    #[tokio::test]
    async fn a_digest_untags_that_digest_and_keeps_the_tag() {
        let (_d, store) = store();
        image(&store, '1', 'c', 'a', &[&format!("app:1@{}", digest('1'))]);
        let items = store.remove(&format!("app@{}", digest('1')), false, Vec::new).await.unwrap();
        assert_eq!(items, vec![untagged(&format!("app@{}", digest('1')))]);
        assert_eq!(store.list()[0].references, vec!["app:1".to_string()]);
    }
}
