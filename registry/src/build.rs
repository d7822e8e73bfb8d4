//! Building small images and pushing them: the `skep image import` command (a directory → a one-layer image) and
//! the tests' images (several layers, whiteouts, several platforms, and hostile layers written byte by byte).

use crate::manifest::{self, Descriptor, Platform, RunConfig};
use crate::{Digest, RegistryError, Session};
use bytes::Bytes;
use std::io::Write;
use std::path::Path;

/// One entry of a layer, written as is (names are not checked: tests write hostile ones on purpose).
#[derive(Clone, Debug)]
pub enum Entry {
    /// A regular file.
    File {
        /// Path in the layer (`bin/sh`).
        path: String,
        /// Permission bits.
        mode: u32,
        /// Content.
        data: Vec<u8>,
    },
    /// A directory.
    Dir {
        /// Path.
        path: String,
        /// Permission bits.
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Path.
        path: String,
        /// Target, as written.
        target: String,
    },
    /// A hard link to an earlier entry.
    Hardlink {
        /// Path.
        path: String,
        /// The earlier entry's path.
        target: String,
    },
    /// A character device (hostile: layers may not make devices).
    CharDevice {
        /// Path.
        path: String,
    },
}

/// Writes `entries` as an uncompressed tar.
pub fn tar(entries: &[Entry]) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        let (path, data): (&str, &[u8]) = match e {
            Entry::File { path, mode, data } => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                (path, data)
            }
            Entry::Dir { path, mode } => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                (path, &[])
            }
            Entry::Symlink { path, target } | Entry::Hardlink { path, target } => {
                let kind = if matches!(e, Entry::Symlink { .. }) { tar::EntryType::Symlink } else { tar::EntryType::Link };
                h.set_entry_type(kind);
                h.set_mode(0o777);
                raw_name(&mut h.as_old_mut().linkname, target)?;
                (path, &[])
            }
            Entry::CharDevice { path } => {
                h.set_entry_type(tar::EntryType::Char);
                h.set_mode(0o666);
                h.set_device_major(1)?;
                h.set_device_minor(3)?;
                (path, &[])
            }
        };
        h.set_size(data.len() as u64);
        raw_name(&mut h.as_old_mut().name, path)?;
        h.set_cksum();
        b.append(&h, data)?;
    }
    b.into_inner()
}

/// Writes a name into a header field byte by byte (`tar::Header::set_path` refuses `..`, which the hostile test
/// layers need).
fn raw_name(field: &mut [u8; 100], name: &str) -> std::io::Result<()> {
    if name.len() >= field.len() {
        return Err(std::io::Error::other(format!("name too long for a test layer: {name}")));
    }
    field.fill(0);
    field[..name.len()].copy_from_slice(name.as_bytes());
    Ok(())
}

/// A directory as an uncompressed tar (symbolic links kept as links, owners as root).
pub fn tar_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.mode(tar::HeaderMode::Deterministic);
    b.append_dir_all(".", dir)?;
    b.into_inner()
}

/// gzip.
pub fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data)?;
    e.finish()
}

/// An image to push: uncompressed layer tars (pushed gzipped), the run settings and the platform.
#[derive(Clone, Debug, Default)]
pub struct ImageSpec {
    /// Layers, bottom first, as uncompressed tars.
    pub layers: Vec<Vec<u8>>,
    /// Entrypoint, Cmd, Env, …
    pub config: RunConfig,
    /// Where it runs (default: this node's).
    pub platform: Option<Platform>,
}

/// Pushes the blobs and manifest of `image` (by digest, and under `tag` when given); returns the manifest's
/// descriptor, with its platform.
pub async fn push_image(s: &Session, image: &ImageSpec, tag: Option<&str>) -> Result<Descriptor, RegistryError> {
    let platform = image.platform.clone().unwrap_or_else(Platform::this_node);
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for l in &image.layers {
        diff_ids.push(Digest::of(l).to_string());
        let gz = gzip(l)?;
        layers.push(s.push_blob(manifest::OCI_LAYER_GZIP, Bytes::from(gz)).await?);
    }
    let config = serde_json::json!({
        "architecture": platform.architecture, "os": platform.os,
        "config": image.config,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = s.push_blob(manifest::OCI_CONFIG, Bytes::from(config.to_string())).await?;
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": config, "layers": layers,
    });
    let body = Bytes::from(manifest.to_string());
    let digest = Digest::of(&body);
    let mut d = s.push_manifest(tag.unwrap_or(digest.as_str()), manifest::OCI_MANIFEST, body).await?;
    d.platform = Some(platform);
    Ok(d)
}

/// Pushes an index of already pushed manifests under `tag`.
pub async fn push_index(s: &Session, manifests: &[Descriptor], tag: &str) -> Result<Descriptor, RegistryError> {
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": manifests});
    s.push_manifest(tag, manifest::OCI_INDEX, Bytes::from(index.to_string())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_written_as_is() {
        let t = tar(&[Entry::File { path: "../evil".into(), mode: 0o644, data: b"x".to_vec() }]).unwrap();
        let mut a = tar::Archive::new(&t[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        assert_eq!(&*e.path_bytes(), b"../evil");
    }
}
