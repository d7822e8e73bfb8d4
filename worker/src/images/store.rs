//! The node's image store for the embedded engine, under `<engine dir>/images/`:
//!
//! ```text
//! layers/<blob hex>/      one unpacked layer (an overlayfs lower directory), named by its compressed digest
//! images/<manifest hex>.json  an image: its config, its layers bottom first, the references it was pulled as
//! refs/<sha256 of reference>  the manifest a digest-pinned reference resolved to (pinned content never changes)
//! tmp/                        downloads and unpacks in progress (renamed into place when whole and verified)
//! ```
//!
//! A layer is downloaded once, verified against its digest while it streams to `tmp/`, unpacked (see
//! [`super::unpack`]) into `tmp/` and renamed into `layers/`: a layer directory that exists is whole. Pulls are
//! serialised per node (one lock), which keeps two tasks of one image from fetching it twice.

use super::unpack::{self, UnpackLimits};
use skep_registry::manifest::{self, ImageConfig, Platform};
use skep_registry::{Client, Credentials, Digest, RegistryError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why an image could not be made ready.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The registry's answer (unauthorized, not found, unreachable, digest mismatch).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A layer was refused.
    #[error("{layer}: {source}")]
    Unpack {
        /// The layer's digest.
        layer: String,
        /// Why.
        #[source]
        source: unpack::UnpackError,
    },
    /// The local store.
    #[error("image store: {0}: {1}")]
    Io(String, #[source] std::io::Error),
}

/// An image in the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The platform manifest's digest (the image ID the node shows).
    pub manifest_digest: String,
    /// Its config.
    pub config: ImageConfig,
    /// The config blob's digest (Docker's image ID).
    pub config_digest: String,
    /// Layer blob digests, bottom first.
    pub layers: Vec<String>,
    /// Sum of the unpacked layers' uncompressed sizes.
    pub size: u64,
    /// References it was pulled as.
    pub references: Vec<String>,
    /// Unix time of the first pull.
    pub created: i64,
}

/// Images pulled this recently are never collected.
pub const GC_GRACE_SECS: i64 = 600;

/// The store.
pub struct ImageStore {
    root: PathBuf,
    client: Client,
    limits: UnpackLimits,
    platform: Platform,
    pulls: tokio::sync::Mutex<()>,
    /// Shared by a task's prepare from its pull's end until its task directory records the image
    /// ([`ImageStore::pull_for_task`]), exclusive for removals (`docker image rm/prune`), so no image is removed in
    /// between, when no task records it yet.
    pub(super) users: tokio::sync::RwLock<()>,
}

fn io(what: impl std::fmt::Display, e: std::io::Error) -> ImageError {
    ImageError::Io(what.to_string(), e)
}

impl ImageStore {
    /// A store under `root`, pulling through `client`.
    pub fn new(root: PathBuf, client: Client) -> ImageStore {
        ImageStore {
            root,
            client,
            limits: UnpackLimits::default(),
            platform: Platform::this_node(),
            pulls: Default::default(),
            users: Default::default(),
        }
    }

    /// Per-layer bounds (default [`UnpackLimits::default`]).
    pub fn with_limits(mut self, limits: UnpackLimits) -> ImageStore {
        self.limits = limits;
        self
    }

    /// The directory of an unpacked layer.
    pub fn layer_dir(&self, blob: &str) -> PathBuf {
        self.root.join("layers").join(blob.trim_start_matches("sha256:"))
    }

    /// The store's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub(super) fn record_path(&self, manifest: &str) -> PathBuf {
        self.root.join("images").join(format!("{}.json", manifest.trim_start_matches("sha256:")))
    }

    pub(super) fn ref_path(&self, reference: &str) -> PathBuf {
        self.root.join("refs").join(Digest::of(reference.as_bytes()).hex())
    }

    /// The image a digest-pinned reference resolved to before, if it is still whole here.
    pub fn cached(&self, reference: &str) -> Option<ImageRecord> {
        if !reference.contains("@sha256:") {
            return None; // a tag may have moved: ask the registry
        }
        let manifest = std::fs::read_to_string(self.ref_path(reference)).ok()?;
        let r = self.record(manifest.trim())?;
        r.layers.iter().all(|l| self.layer_dir(l).is_dir()).then_some(r)
    }

    pub(super) fn record(&self, manifest: &str) -> Option<ImageRecord> {
        serde_json::from_slice(&std::fs::read(self.record_path(manifest)).ok()?).ok()
    }

    /// Every image in the store.
    pub fn list(&self) -> Vec<ImageRecord> {
        let Ok(rd) = std::fs::read_dir(self.root.join("images")) else { return vec![] };
        rd.flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice(&b).ok())
            .collect()
    }

    /// Makes `reference` ready: from the store when pinned and present, else from its registry (only missing layers
    /// are fetched).
    pub async fn pull(&self, reference: &str, creds: Credentials) -> Result<ImageRecord, ImageError> {
        if let Some(r) = self.cached(reference) {
            return Ok(r);
        }
        let _one_at_a_time = self.pulls.lock().await;
        if let Some(r) = self.cached(reference) {
            return Ok(r);
        }
        for d in ["layers", "images", "refs", "tmp"] {
            tokio::fs::create_dir_all(self.root.join(d)).await.map_err(|e| io(d, e))?;
        }
        let session = self.client.session(reference, creds)?;
        let image = session.image(&self.platform).await?;
        let diff_ids = &image.config.rootfs.diff_ids;
        if !diff_ids.is_empty() && diff_ids.len() != image.manifest.layers.len() {
            return Err(RegistryError::Protocol(format!("the config names {} layers, the manifest {}", diff_ids.len(), image.manifest.layers.len())).into());
        }
        let mut size = 0;
        for (i, layer) in image.manifest.layers.iter().enumerate() {
            size += self.layer(&session, layer, diff_ids.get(i).map(String::as_str)).await?;
        }
        let manifest_digest = image.manifest_digest.to_string();
        let mut record = self.record(&manifest_digest).unwrap_or_else(|| ImageRecord {
            manifest_digest: manifest_digest.clone(),
            config: image.config.clone(),
            config_digest: image.manifest.config.digest.clone(),
            layers: image.manifest.layers.iter().map(|l| l.digest.clone()).collect(),
            size,
            references: vec![],
            created: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64),
        });
        if !record.references.iter().any(|r| r == reference) {
            record.references.push(reference.to_string());
        }
        self.take_tag(reference, &manifest_digest).await?;
        self.write_record(&record).await?;
        if reference.contains("@sha256:") {
            write_atomically(&self.root.join("tmp"), &self.ref_path(reference), manifest_digest.as_bytes()).await?;
        }
        Ok(record)
    }

    /// [`ImageStore::pull`] for a task that is about to record the image in its task directory: returns the image
    /// with a guard the caller holds until it has, so `docker image rm/prune` cannot remove the image in between. An
    /// image removed between the pull and the guard is pulled again (twice at most).
    pub async fn pull_for_task(
        &self,
        reference: &str,
        creds: Credentials,
    ) -> Result<(ImageRecord, tokio::sync::RwLockReadGuard<'_, ()>), ImageError> {
        for _ in 0..3 {
            let record = self.pull(reference, creds.clone()).await?;
            let held = self.users.read().await;
            let whole = record.layers.iter().all(|l| self.layer_dir(l).is_dir());
            if whole && self.record(&record.manifest_digest).is_some() {
                return Ok((record, held));
            }
        }
        Err(io(reference, std::io::Error::other("the image was removed from the node while pulled, three times")))
    }

    /// A tag names one image, as in Docker: `reference` (when it is not pinned to a digest) is taken off every other
    /// image that has it, since it now resolved to `manifest`. The caller holds the pull lock.
    async fn take_tag(&self, reference: &str, manifest: &str) -> Result<(), ImageError> {
        if reference.contains('@') {
            return Ok(());
        }
        for other in self.list() {
            if other.manifest_digest != manifest && other.references.iter().any(|r| r == reference) {
                let references = other.references.iter().filter(|r| *r != reference).cloned().collect();
                self.write_record(&ImageRecord { references, ..other }).await?;
            }
        }
        Ok(())
    }

    /// Writes `record` (replacing the one of its manifest).
    pub(super) async fn write_record(&self, record: &ImageRecord) -> Result<(), ImageError> {
        let json = serde_json::to_vec(record).map_err(|e| io("encoding the image record", e.into()))?;
        write_atomically(&self.root.join("tmp"), &self.record_path(&record.manifest_digest), &json).await
    }

    /// Forgets an image: its record and what its references resolved to (its layers stay until
    /// [`ImageStore::remove_unused_layers`]).
    pub(super) fn forget(&self, record: &ImageRecord) {
        let _ = std::fs::remove_file(self.record_path(&record.manifest_digest));
        for reference in &record.references {
            let _ = std::fs::remove_file(self.ref_path(reference));
        }
    }

    /// Deletes every layer no image record names; returns each one's digest and size. The caller holds the pull
    /// lock (a pull's layers are in no record yet).
    pub(super) fn remove_unused_layers(&self) -> Vec<(String, u64)> {
        let kept: std::collections::BTreeSet<String> = self
            .list()
            .iter()
            .flat_map(|r| r.layers.iter().map(|l| l.trim_start_matches("sha256:").to_string()))
            .collect();
        let mut removed = Vec::new();
        if let Ok(rd) = std::fs::read_dir(self.root.join("layers")) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !kept.contains(&name) {
                    let size = dir_size(&e.path());
                    if std::fs::remove_dir_all(e.path()).is_ok() {
                        removed.push((format!("sha256:{name}"), size));
                    }
                }
            }
        }
        removed
    }

    /// The pull lock, waited for at most `limit` (`None`: a pull is still under way).
    pub(super) async fn pulls_quiet(&self, limit: std::time::Duration) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        tokio::time::timeout(limit, self.pulls.lock()).await.ok()
    }

    /// One layer into `layers/`, unless there already; returns its uncompressed size.
    async fn layer(&self, session: &skep_registry::Session, d: &manifest::Descriptor, diff_id: Option<&str>) -> Result<u64, ImageError> {
        let digest = d.checked_digest()?;
        let dir = self.layer_dir(digest.as_str());
        if dir.is_dir() {
            return Ok(dir_size(&dir));
        }
        let compression = manifest::layer_compression(&d.media_type)?;
        let nonce: u64 = rand::random();
        let blob = self.root.join("tmp").join(format!("{}.{nonce:x}.blob", digest.hex()));
        let unpacked = self.root.join("tmp").join(format!("{}.{nonce:x}.dir", digest.hex()));
        let cleanup = |paths: [PathBuf; 2]| async move {
            let _ = tokio::fs::remove_file(&paths[0]).await;
            let _ = tokio::fs::remove_dir_all(&paths[1]).await;
        };
        let fetched = async {
            let mut f = tokio::fs::File::create(&blob).await.map_err(|e| io(blob.display(), e))?;
            // compressed layers are bounded by the uncompressed limit as well
            session.blob_to(d, self.limits.max_bytes, &mut f).await?;
            tokio::fs::create_dir(&unpacked).await.map_err(|e| io(unpacked.display(), e))?;
            let (blob2, unpacked2, limits) = (blob.clone(), unpacked.clone(), self.limits);
            let diff_id = diff_id.map(str::to_string);
            let u = tokio::task::spawn_blocking(move || {
                let f = std::fs::File::open(&blob2).map_err(|e| unpack::UnpackError::Io(blob2.display().to_string(), e))?;
                unpack::unpack(std::io::BufReader::new(f), compression, &unpacked2, limits, diff_id.as_deref())
            })
            .await
            .map_err(|e| io("unpacking", std::io::Error::other(e.to_string())))?
            .map_err(|source| ImageError::Unpack { layer: digest.to_string(), source })?;
            tokio::fs::rename(&unpacked, &dir).await.map_err(|e| io(dir.display(), e))?;
            Ok::<u64, ImageError>(u.bytes)
        }
        .await;
        cleanup([blob.clone(), unpacked.clone()]).await;
        fetched
    }

    /// Removes images no task uses (`in_use`: manifest digests) and not pulled in the last [`GC_GRACE_SECS`] (a
    /// task may be between its pull and its start), then layers no remaining image uses; returns the bytes freed
    /// (uncompressed). Skipped (0) while a pull is under way: its layers are in no record yet.
    pub fn collect(&self, in_use: &[String]) -> u64 {
        let Ok(_no_pull) = self.pulls.try_lock() else { return 0 };
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        for r in self.list() {
            if !in_use.contains(&r.manifest_digest) && now - r.created >= GC_GRACE_SECS {
                self.forget(&r);
            }
        }
        self.remove_unused_layers().iter().map(|(_, size)| size).sum()
    }

    /// The store's size on disk (unpacked layers).
    pub fn size(&self) -> u64 {
        dir_size(&self.root.join("layers"))
    }

    /// The images' recorded sizes, summed (cheap: no walk of the layers; a layer two images share counts twice).
    pub fn recorded_size(&self) -> u64 {
        self.list().iter().map(|r| r.size).sum()
    }
}


/// Bytes of regular files under `dir` (not following links).
fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

async fn write_atomically(tmp_dir: &Path, path: &Path, data: &[u8]) -> Result<(), ImageError> {
    let tmp = tmp_dir.join(format!("w.{:x}", rand::random::<u64>()));
    tokio::fs::write(&tmp, data).await.map_err(|e| io(tmp.display(), e))?;
    tokio::fs::rename(&tmp, path).await.map_err(|e| io(path.display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(store: &ImageStore, manifest: char, layers: &[char]) -> ImageRecord {
        let r = ImageRecord {
            manifest_digest: format!("sha256:{}", manifest.to_string().repeat(64)),
            config: ImageConfig::default(),
            config_digest: String::new(),
            layers: layers.iter().map(|l| format!("sha256:{}", l.to_string().repeat(64))).collect(),
            size: 10,
            references: vec![format!("r/{manifest}:1")],
            created: 0,
        };
        std::fs::create_dir_all(store.root.join("images")).unwrap();
        std::fs::write(store.record_path(&r.manifest_digest), serde_json::to_vec(&r).unwrap()).unwrap();
        for l in &r.layers {
            std::fs::create_dir_all(store.layer_dir(l)).unwrap();
            std::fs::write(store.layer_dir(l).join("f"), "0123456789").unwrap();
        }
        r
    }

    #[tokio::test]
    async fn a_tag_moves_to_the_image_it_now_names() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().to_path_buf(), Client::default());
        std::fs::create_dir_all(store.root.join("tmp")).unwrap();
        let mut old = record(&store, 'a', &['1']);
        old.references = vec!["r/x:1".into(), "r/x:keep".into(), format!("r/x:1@{}", old.manifest_digest)];
        store.write_record(&old).await.unwrap();
        let new = record(&store, 'b', &['2']);
        store.take_tag("r/x:1", &new.manifest_digest).await.unwrap();
        let kept = store.record(&old.manifest_digest).unwrap().references;
        assert_eq!(kept, vec!["r/x:keep".to_string(), format!("r/x:1@{}", old.manifest_digest)]);
        store.take_tag(&format!("r/x:1@{}", new.manifest_digest), &new.manifest_digest).await.unwrap();
        let kept = store.record(&old.manifest_digest).unwrap().references;
        assert_eq!(kept.len(), 2, "a pinned reference names its own digest: {kept:?}");
    }

    #[test]
    fn collection_removes_only_what_no_used_image_needs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::new(dir.path().to_path_buf(), Client::default());
        let used = record(&store, 'a', &['1', '2']);
        let unused = record(&store, 'b', &['2', '3']);
        assert_eq!(store.recorded_size(), 20);
        let freed = store.collect(std::slice::from_ref(&used.manifest_digest));
        assert_eq!(freed, 10, "only layer 3");
        for l in &used.layers {
            assert!(store.layer_dir(l).is_dir(), "a used image keeps its layers, shared ones too");
        }
        assert!(!store.layer_dir(&unused.layers[1]).exists());
        assert_eq!(store.list(), vec![used.clone()]);
        // an image pulled moments ago may be about to start: kept
        let mut fresh = record(&store, 'c', &['4']);
        fresh.created = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        std::fs::write(store.record_path(&fresh.manifest_digest), serde_json::to_vec(&fresh).unwrap()).unwrap();
        assert_eq!(store.collect(std::slice::from_ref(&used.manifest_digest)), 0);
        assert!(store.layer_dir(&fresh.layers[0]).is_dir());
    }
}
