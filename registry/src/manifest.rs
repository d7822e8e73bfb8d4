//! Image manifests, indexes and configs (the OCI image spec, github.com/opencontainers/image-spec, and Docker's v2
//! schema 2, which has the same shapes under other media types), and choosing a node's platform from an index.
//! Pure: bytes in, checked values out.

use crate::{Digest, RegistryError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// Docker image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// What `Accept` says when asking for a manifest by tag: any of the four.
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// The largest manifest or index accepted (the distribution registry's own limit is 4 MiB).
pub const MAX_MANIFEST: u64 = 4 << 20;
/// The largest image config accepted.
pub const MAX_CONFIG: u64 = 8 << 20;
/// Most layers in one image (Docker's overlay2 driver stacks at most 128).
pub const MAX_LAYERS: usize = 128;

/// A content descriptor.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type.
    pub media_type: String,
    /// `sha256:…`.
    pub digest: String,
    /// Size in bytes.
    pub size: i64,
    /// An index entry's platform.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

impl Descriptor {
    /// The checked digest.
    pub fn checked_digest(&self) -> Result<Digest, RegistryError> {
        Digest::parse(&self.digest)
    }
    /// The checked size (not negative, at most `limit`).
    pub fn checked_size(&self, what: &str, limit: u64) -> Result<u64, RegistryError> {
        let size = u64::try_from(self.size).map_err(|_| RegistryError::Protocol(format!("{what}: negative size")))?;
        if size > limit {
            return Err(RegistryError::TooLarge { what: what.into(), limit });
        }
        Ok(size)
    }
}

/// An OCI platform.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Platform {
    /// `amd64`, `arm64`, …
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// `v7`, `v8`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl Platform {
    /// The platform this binary runs on (Go's names: `x86_64` → `amd64`, `aarch64` → `arm64`).
    pub fn this_node() -> Platform {
        let (architecture, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "aarch64" => ("arm64", ""),
            "x86" => ("386", ""),
            "arm" => ("arm", "v7"),
            "powerpc64" => ("ppc64le", ""),
            other => (other, ""),
        };
        Platform { architecture: architecture.into(), os: std::env::consts::OS.into(), variant: variant.into() }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// An image index (or Docker manifest list).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Index {
    /// Media type (may be absent in OCI indexes).
    pub media_type: String,
    /// One manifest per platform.
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Manifest {
    /// Media type (may be absent in OCI manifests).
    pub media_type: String,
    /// The image config.
    pub config: Descriptor,
    /// Layers, bottom first.
    pub layers: Vec<Descriptor>,
}

/// Which kind of document a manifest endpoint answered.
#[derive(Clone, Debug)]
pub enum Fetched {
    /// An index: pick a platform.
    Index(Index),
    /// A manifest of one image.
    Manifest(Manifest),
}

/// The layer compressions skep unpacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// gzip.
    Gzip,
    /// none.
    None,
}

/// A layer's compression from its media type; foreign (non-distributable) and zstd layers are refused.
pub fn layer_compression(media_type: &str) -> Result<Compression, RegistryError> {
    match media_type {
        OCI_LAYER_GZIP | DOCKER_LAYER_GZIP => Ok(Compression::Gzip),
        OCI_LAYER_TAR => Ok(Compression::None),
        other => Err(RegistryError::Protocol(format!("unsupported layer media type {other:?}"))),
    }
}

/// Decodes a manifest endpoint's answer by the media type it came with (or the document's own `mediaType`).
pub fn parse_manifest(content_type: &str, body: &[u8]) -> Result<Fetched, RegistryError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        media_type: String,
        #[serde(default)]
        manifests: Option<serde_json::Value>,
        #[serde(default)]
        schema_version: i64,
    }
    let bad = |e: serde_json::Error| RegistryError::Protocol(format!("invalid manifest: {e}"));
    let probe: Probe = serde_json::from_slice(body).map_err(bad)?;
    let ct = content_type.split(';').next().unwrap_or("").trim();
    let kind = if !probe.media_type.is_empty() { probe.media_type.as_str() } else { ct };
    let kind = match kind {
        OCI_INDEX | DOCKER_LIST => OCI_INDEX,
        OCI_MANIFEST | DOCKER_MANIFEST => OCI_MANIFEST,
        // an OCI document without a media type: what it holds tells
        _ if probe.schema_version == 2 && probe.manifests.is_some() => OCI_INDEX,
        _ if probe.schema_version == 2 => OCI_MANIFEST,
        other => {
            return Err(RegistryError::Protocol(format!(
                "unsupported manifest media type {:?} (schema 1 images are not supported)",
                crate::digest::truncate(other)
            )))
        }
    };
    if kind == OCI_INDEX {
        let i: Index = serde_json::from_slice(body).map_err(bad)?;
        Ok(Fetched::Index(i))
    } else {
        let m: Manifest = serde_json::from_slice(body).map_err(bad)?;
        if m.layers.len() > MAX_LAYERS {
            return Err(RegistryError::Protocol(format!("too many layers: {} (at most {MAX_LAYERS})", m.layers.len())));
        }
        m.config.checked_digest()?;
        for l in &m.layers {
            l.checked_digest()?;
            layer_compression(&l.media_type)?;
        }
        Ok(Fetched::Manifest(m))
    }
}

/// The index entry for `want`: same OS and architecture, the variant when both say one (containerd's platform
/// matcher, simplified: no fallbacks between variants). Attestation entries (`unknown/unknown`) never match.
pub fn select_platform<'a>(index: &'a Index, want: &Platform) -> Option<&'a Descriptor> {
    let candidates =
        index.manifests.iter().filter(|d| d.platform.as_ref().is_some_and(|p| p.os == want.os && p.architecture == want.architecture));
    let mut first = None;
    for d in candidates {
        let p = d.platform.as_ref().expect("filtered");
        if p.variant == want.variant {
            return Some(d);
        }
        if first.is_none() && (p.variant.is_empty() || want.variant.is_empty()) {
            first = Some(d);
        }
    }
    first
}

/// The platforms an index offers, in order (attestations left out).
pub fn platforms(index: &Index) -> Vec<Platform> {
    index.manifests.iter().filter_map(|d| d.platform.clone()).filter(|p| p.os != "unknown").collect()
}

/// The parts of an image config a runtime uses (`config` in the OCI image config).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ImageConfig {
    /// Architecture.
    pub architecture: String,
    /// OS.
    pub os: String,
    /// Runtime settings.
    #[serde(deserialize_with = "null_default")]
    pub config: RunConfig,
    /// The layers' uncompressed digests.
    #[serde(deserialize_with = "null_default")]
    pub rootfs: RootFs,
}

/// `config.config`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct RunConfig {
    /// `user[:group]`.
    pub user: String,
    /// `K=V`.
    #[serde(deserialize_with = "null_default")]
    pub env: Vec<String>,
    /// Entrypoint.
    #[serde(deserialize_with = "null_default")]
    pub entrypoint: Vec<String>,
    /// Cmd.
    #[serde(deserialize_with = "null_default")]
    pub cmd: Vec<String>,
    /// Working directory.
    pub working_dir: String,
    /// Stop signal.
    pub stop_signal: String,
    /// Labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: BTreeMap<String, String>,
    /// Docker's health check (not in the OCI spec; Docker images carry it).
    pub healthcheck: Option<serde_json::Value>,
}

/// `config.rootfs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RootFs {
    /// `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, bottom first.
    #[serde(deserialize_with = "null_default")]
    pub diff_ids: Vec<String>,
}

fn null_default<'de, D: serde::Deserializer<'de>, T: Default + Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Decodes an image config.
pub fn parse_config(body: &[u8]) -> Result<ImageConfig, RegistryError> {
    serde_json::from_slice(body).map_err(|e| RegistryError::Protocol(format!("invalid image config: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(arch: &str, variant: &str, n: char) -> Descriptor {
        Descriptor {
            media_type: OCI_MANIFEST.into(),
            digest: format!("sha256:{}", n.to_string().repeat(64)),
            size: 1,
            platform: Some(Platform { architecture: arch.into(), os: "linux".into(), variant: variant.into() }),
        }
    }

    #[test]
    fn the_nodes_platform_is_chosen_from_an_index() {
        let mut unknown = d("unknown", "", 'f');
        unknown.platform.as_mut().unwrap().os = "unknown".into();
        let i = Index { media_type: OCI_INDEX.into(), manifests: vec![unknown, d("arm", "v6", 'a'), d("arm", "v7", 'b'), d("amd64", "", 'c')] };
        let want = |a: &str, v: &str| Platform { architecture: a.into(), os: "linux".into(), variant: v.into() };
        assert_eq!(select_platform(&i, &want("amd64", "")).unwrap().digest, d("amd64", "", 'c').digest);
        assert_eq!(select_platform(&i, &want("arm", "v7")).unwrap().digest, d("arm", "v7", 'b').digest);
        assert!(select_platform(&i, &want("arm64", "")).is_none());
        assert_eq!(platforms(&i).len(), 3);
    }

    #[test]
    fn manifests_decode_by_media_type_and_are_checked() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"{DOCKER_CONFIG}","digest":"sha256:{a}","size":2}},
               "layers":[{{"mediaType":"{DOCKER_LAYER_GZIP}","digest":"sha256:{a}","size":3}}]}}"#,
            a = "a".repeat(64)
        );
        let Fetched::Manifest(m) = parse_manifest("", m.as_bytes()).unwrap() else { panic!() };
        assert_eq!(m.layers.len(), 1);
        let i = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(parse_manifest(OCI_INDEX, i.as_bytes()).unwrap(), Fetched::Index(_)));
        let schema1 = r#"{"schemaVersion":1,"name":"x"}"#;
        assert!(parse_manifest("application/vnd.docker.distribution.manifest.v1+prettyjws", schema1.as_bytes()).is_err());
        let zstd = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"sha256:{a}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:{a}","size":3}}]}}"#,
            a = "a".repeat(64)
        );
        assert!(parse_manifest(OCI_MANIFEST, zstd.as_bytes()).unwrap_err().to_string().contains("zstd"));
        let bad_digest = r#"{"schemaVersion":2,"config":{"digest":"sha256:../x","size":2},"layers":[]}"#;
        assert!(parse_manifest(OCI_MANIFEST, bad_digest.as_bytes()).is_err());
    }

    #[test]
    fn configs_decode_with_nulls() {
        let c = parse_config(br#"{"architecture":"amd64","os":"linux","config":{"Entrypoint":null,"Cmd":["sh"],"Env":null,"User":"1000"},"rootfs":{"type":"layers","diff_ids":[]}}"#).unwrap();
        assert_eq!(c.config.cmd, vec!["sh"]);
        assert_eq!(c.config.user, "1000");
        assert!(parse_config(b"{}").unwrap().config.entrypoint.is_empty());
    }
}
