//! `ContainerSpec.Mounts`: the typed view of a task's mounts, and the checks Docker makes on them.
//!
//! `Mounts` stays in [`ContainerSpec::extra`] (the service spec round-trips it verbatim); [`ContainerSpec::mounts`]
//! reads it as [`Mount`]s. Two levels of checking, as in Docker:
//! - [`validate_spec_mounts`] at service create/update (Docker's API layer: known type, the option blocks that fit
//!   the type, no duplicate target). Fields may still hold templates (`{{.Task.Slot}}`) there, so paths and volume
//!   names are only checked when they hold none.
//! - [`Mount::kind`] on the node, after template expansion (Docker's `validateMountConfig`): absolute paths, a valid
//!   volume name, the local driver only. Whether a bind source exists is for the engine to find out (it needs I/O).
//!
//! The texts are Docker's (`invalid mount config for type "bind": field Source must not be empty`), except where
//! Docker accepts and ignores: option blocks that do not fit the type (`TmpfsOptions` on a bind), which skep
//! refuses.

use super::{null_default, ContainerSpec, Labels};

/// Fields of a mount's JSON that skep does not know: kept so that an unknown option is named in the refusal, never
/// silently dropped.
pub type Extra = std::collections::BTreeMap<String, serde_json::Value>;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The only volume driver skep has.
pub const LOCAL_DRIVER: &str = "local";

/// One entry of `ContainerSpec.Mounts`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Mount {
    /// `bind`, `volume` or `tmpfs` (kept as text so an unknown type can be named in the error).
    #[serde(rename = "Type")]
    pub typ: String,
    /// Host path (bind), volume name (volume; empty: anonymous), empty (tmpfs).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    /// Path in the task.
    pub target: String,
    /// Mount read-only.
    #[serde(skip_serializing_if = "super::is_false")]
    pub read_only: bool,
    /// macOS-only hint (`default`, `consistent`, `cached`, `delegated`); no effect on Linux, as in Docker.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub consistency: String,
    /// Bind options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_options: Option<BindOptions>,
    /// Volume options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_options: Option<VolumeOptions>,
    /// tmpfs options.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tmpfs_options: Option<TmpfsOptions>,
    /// Anything else (refused by [`Mount::kind`]: `ClusterOptions`, `ImageOptions`, …).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `BindOptions`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct BindOptions {
    /// `[r]private`, `[r]shared`, `[r]slave`; empty: `rprivate`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub propagation: String,
    /// Bind only the source mount, not the mounts below it.
    #[serde(skip_serializing_if = "super::is_false")]
    pub non_recursive: bool,
    /// Create the source directory on the host when it is missing.
    #[serde(skip_serializing_if = "super::is_false")]
    pub create_mountpoint: bool,
    /// With `ReadOnly`: only the top mount read-only, the mounts below stay as they are.
    #[serde(skip_serializing_if = "super::is_false")]
    pub read_only_non_recursive: bool,
    /// With `ReadOnly`: fail unless every mount below can be made read-only too.
    #[serde(skip_serializing_if = "super::is_false")]
    pub read_only_force_recursive: bool,
    /// Anything else (refused).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// `VolumeOptions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeOptions {
    /// Do not copy the image's content at the target into a new volume.
    #[serde(skip_serializing_if = "super::is_false")]
    pub no_copy: bool,
    /// Labels given to the volume when this mount creates it.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Driver and its options, used when this mount creates the volume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_config: Option<VolumeDriver>,
    /// A path inside the volume to mount instead of its root (API 1.45).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subpath: String,
    /// Anything else (refused).
    #[serde(flatten)]
    pub extra: Extra,
}

/// `VolumeOptions.DriverConfig`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeDriver {
    /// Driver name; empty means `local`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// Driver options (`type`, `device`, `o` for the local driver).
    #[serde(deserialize_with = "null_default", skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// `TmpfsOptions`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct TmpfsOptions {
    /// Size in bytes; 0: the kernel's default (half of RAM).
    #[serde(skip_serializing_if = "super::is_zero")]
    pub size_bytes: i64,
    /// Permission bits of the tmpfs root (Go's `os.FileMode`, sent as a number: 1023 for `1777`).
    #[serde(skip_serializing_if = "is_zero_u32")]
    pub mode: u32,
    /// Extra mount options as `[["exec"]]` (API 1.46): `exec` and `noexec` only, as in Docker.
    #[serde(deserialize_with = "null_default", skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<Vec<String>>,
    /// Anything else (refused).
    #[serde(flatten)]
    pub extra: Extra,
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

/// `BindOptions.Propagation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Propagation {
    /// `private`.
    Private,
    /// `rprivate` (Docker's default).
    #[default]
    RPrivate,
    /// `shared`.
    Shared,
    /// `rshared`.
    RShared,
    /// `slave`.
    Slave,
    /// `rslave`.
    RSlave,
}

impl Propagation {
    /// Parses Docker's spelling; empty is the default (`rprivate`).
    pub fn parse(s: &str) -> Option<Propagation> {
        Some(match s {
            "" | "rprivate" => Propagation::RPrivate,
            "private" => Propagation::Private,
            "shared" => Propagation::Shared,
            "rshared" => Propagation::RShared,
            "slave" => Propagation::Slave,
            "rslave" => Propagation::RSlave,
            _ => return None,
        })
    }

    /// Docker's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::RPrivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::RShared => "rshared",
            Propagation::Slave => "slave",
            Propagation::RSlave => "rslave",
        }
    }

    /// Applies to the mounts below the target too.
    pub fn recursive(self) -> bool {
        matches!(self, Propagation::RPrivate | Propagation::RShared | Propagation::RSlave)
    }
}

/// How a read-only bind treats the mounts below its source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadOnlyDepth {
    /// Read-write.
    No,
    /// Read-only, and the mounts below made read-only where possible (Docker ≥ 25's default).
    Recursive,
    /// Only the top mount read-only (`ReadOnlyNonRecursive`).
    TopOnly,
    /// Read-only, failing unless every mount below can be made read-only (`ReadOnlyForceRecursive`).
    ForceRecursive,
}

/// A mount after [`Mount::kind`]: what to do, with every option checked.
#[derive(Clone, Debug, PartialEq)]
pub enum MountKind {
    /// A host path.
    Bind {
        /// Absolute host path.
        source: String,
        /// Propagation of the new mount.
        propagation: Propagation,
        /// Bind the mounts below the source too (`rbind`).
        recursive: bool,
        /// Create the source directory when missing.
        create_source: bool,
        /// Read-only, and how deep.
        read_only: ReadOnlyDepth,
    },
    /// A node-local volume (created on first use).
    Volume {
        /// Name; `None` for an anonymous volume (a fresh one per task, removed with the task).
        name: Option<String>,
        /// Labels for a volume this mount creates.
        labels: Labels,
        /// Local driver options (`type`, `device`, `o`) for a volume this mount creates.
        driver_options: BTreeMap<String, String>,
        /// `VolumeOptions.NoCopy`.
        no_copy: bool,
        /// Read-only.
        read_only: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// Bytes; `None`: the kernel's default.
        size_bytes: Option<u64>,
        /// Permission bits; `None`: the kernel's default (1777).
        mode: Option<u32>,
        /// `exec` was asked for (Docker mounts tmpfs `noexec` by default).
        exec: bool,
        /// Read-only.
        read_only: bool,
    },
}

/// A mount that cannot be made as specified.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MountError {
    /// `Mounts` is not a list of mounts.
    #[error("invalid Mounts: {0}")]
    Decode(String),
    /// `Type` is not `bind`, `volume` or `tmpfs`.
    #[error("invalid MountType: {0:?}")]
    UnknownType(String),
    /// The mount's configuration is wrong (Docker's `errMountConfig`).
    #[error("invalid mount config for type {typ:?}: {reason}")]
    Config {
        /// The mount's type.
        typ: String,
        /// What is wrong.
        reason: String,
    },
    /// Two mounts with one target.
    #[error("invalid duplicate mount point: {0}")]
    DuplicateTarget(String),
}

fn config(typ: &str, reason: impl Into<String>) -> MountError {
    MountError::Config { typ: typ.to_string(), reason: reason.into() }
}

fn extra_field(typ: &str, name: &str) -> MountError {
    config(typ, format!("field {name} must not be specified"))
}

fn missing_field(typ: &str, name: &str) -> MountError {
    config(typ, format!("field {name} must not be empty"))
}

/// Holds a swarm template (`{{.Task.Slot}}`): checked after expansion on the node.
fn templated(s: &str) -> bool {
    s.contains("{{")
}

/// The types skep mounts.
const TYPES: [&str; 3] = ["bind", "volume", "tmpfs"];

impl ContainerSpec {
    /// `Mounts`, typed (an absent or `null` list is empty).
    pub fn mounts(&self) -> Result<Vec<Mount>, MountError> {
        self.mounts
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| serde_json::from_value(v.clone()).map_err(|e| MountError::Decode(e.to_string())))
            .collect()
    }

    /// Set one field by its JSON name, as a client would send it (`"Sysctls"`, `{"k":"v"}`): the spec goes through its
    /// JSON and back. For building specs in tests and benchmarks the way requests carry them.
    pub fn set_field(&mut self, name: &str, value: serde_json::Value) -> Result<(), serde_json::Error> {
        let mut v = serde_json::to_value(&*self)?;
        if let serde_json::Value::Object(m) = &mut v {
            m.insert(name.to_string(), value);
        }
        *self = serde_json::from_value(v)?;
        Ok(())
    }

    /// Replaces `Mounts`.
    pub fn set_mounts(&mut self, mounts: &[Mount]) {
        self.mounts = mounts.iter().filter_map(|m| serde_json::to_value(m).ok()).collect();
    }
}

/// What Docker checks when a service is created or updated: a known type, the option blocks that fit it, and no
/// target used twice. Paths and names holding templates are left to [`Mount::kind`] on the node.
pub fn validate_spec_mounts(mounts: &[Mount]) -> Result<(), MountError> {
    let mut targets = std::collections::BTreeSet::new();
    for m in mounts {
        m.check_structure()?;
        if !templated(&m.target) {
            check_target(&m.typ, &m.target)?;
        }
        if m.typ == "bind" && !templated(&m.source) {
            check_absolute(&m.typ, &m.source)?;
        }
        if !targets.insert(m.target.trim_end_matches('/').to_string()) {
            return Err(MountError::DuplicateTarget(m.target.clone()));
        }
    }
    Ok(())
}

fn check_absolute(typ: &str, p: &str) -> Result<(), MountError> {
    if p.starts_with('/') {
        Ok(())
    } else {
        Err(config(typ, format!("invalid mount path: '{p}' mount path must be absolute")))
    }
}

fn check_target(typ: &str, target: &str) -> Result<(), MountError> {
    if target.is_empty() {
        return Err(missing_field(typ, "Target"));
    }
    if target.split('/').all(|c| c.is_empty() || c == ".") {
        return Err(config(typ, "invalid specification: destination can't be '/'"));
    }
    check_absolute(typ, target)?;
    if target.split('/').any(|c| c == "..") {
        return Err(config(typ, format!("invalid mount path: '{target}' must not contain '..'")));
    }
    Ok(())
}

/// Docker's rule for local volume names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (bounded here to 255 bytes).
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if name.len() < 2 {
        return Err("volume name is too short, names should be at least two alphanumeric characters".into());
    }
    let ok_first = name.as_bytes()[0].is_ascii_alphanumeric();
    let ok_rest = name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if !ok_first || !ok_rest || name.len() > 255 {
        return Err(format!(
            "{name:?} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are \
             allowed. If you intended to pass a host directory, use absolute path"
        ));
    }
    Ok(())
}

impl Mount {
    /// The checks that do not depend on templates: type, fields that fit it, unknown fields.
    fn check_structure(&self) -> Result<(), MountError> {
        let typ = self.typ.as_str();
        if !TYPES.contains(&typ) {
            return Err(MountError::UnknownType(self.typ.clone()));
        }
        if let Some(k) = self.extra.keys().next() {
            return Err(config(typ, format!("field {k} is not supported")));
        }
        if typ != "bind" && self.bind_options.is_some() {
            return Err(extra_field(typ, "BindOptions"));
        }
        if typ != "volume" && self.volume_options.is_some() {
            return Err(extra_field(typ, "VolumeOptions"));
        }
        if typ != "tmpfs" && self.tmpfs_options.is_some() {
            return Err(extra_field(typ, "TmpfsOptions"));
        }
        match typ {
            "bind" => {
                if self.source.is_empty() {
                    return Err(missing_field(typ, "Source"));
                }
                if let Some(b) = &self.bind_options {
                    if Propagation::parse(&b.propagation).is_none() {
                        return Err(config(typ, format!("invalid propagation mode: {}", b.propagation)));
                    }
                    if let Some(k) = b.extra.keys().next() {
                        return Err(config(typ, format!("field BindOptions.{k} is not supported")));
                    }
                    if b.read_only_non_recursive && b.read_only_force_recursive {
                        return Err(config(
                            typ,
                            "cannot set both ReadOnlyNonRecursive and ReadOnlyForceRecursive",
                        ));
                    }
                }
            }
            "volume" => {
                if self.read_only && self.source.is_empty() {
                    return Err(config(typ, "must not set ReadOnly mode when using anonymous volumes"));
                }
                if let Some(v) = &self.volume_options {
                    if !v.subpath.is_empty() {
                        return Err(config(typ, "field VolumeOptions.Subpath is not supported by skep"));
                    }
                    if let Some(k) = v.extra.keys().next() {
                        return Err(config(typ, format!("field VolumeOptions.{k} is not supported")));
                    }
                    if let Some(d) = &v.driver_config {
                        if !d.name.is_empty() && d.name != LOCAL_DRIVER {
                            return Err(config(
                                typ,
                                format!("volume driver {:?} is not supported: skep has the local driver only", d.name),
                            ));
                        }
                    }
                }
            }
            _ => {
                if !self.source.is_empty() {
                    return Err(extra_field(typ, "Source"));
                }
                if let Some(t) = &self.tmpfs_options {
                    tmpfs_exec(t)?;
                    if t.size_bytes < 0 {
                        return Err(config(typ, format!("invalid tmpfs size: {}", t.size_bytes)));
                    }
                    if t.mode > 0o7777 {
                        return Err(config(typ, format!("invalid tmpfs mode: {:o} (at most 7777)", t.mode)));
                    }
                    if let Some(k) = t.extra.keys().next() {
                        return Err(config(typ, format!("field TmpfsOptions.{k} is not supported")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Everything checked, after template expansion (Docker's `validateMountConfig`, plus skep's refusals).
    pub fn kind(&self) -> Result<MountKind, MountError> {
        self.check_structure()?;
        let typ = self.typ.as_str();
        check_target(typ, &self.target)?;
        Ok(match typ {
            "bind" => {
                check_absolute(typ, &self.source)?;
                let b = self.bind_options.clone().unwrap_or_default();
                let read_only = match (self.read_only, b.read_only_non_recursive, b.read_only_force_recursive) {
                    (false, _, _) => ReadOnlyDepth::No,
                    (true, true, _) => ReadOnlyDepth::TopOnly,
                    (true, _, true) => ReadOnlyDepth::ForceRecursive,
                    (true, false, false) => ReadOnlyDepth::Recursive,
                };
                MountKind::Bind {
                    source: self.source.clone(),
                    propagation: Propagation::parse(&b.propagation).unwrap_or_default(),
                    recursive: !b.non_recursive,
                    create_source: b.create_mountpoint,
                    read_only,
                }
            }
            "volume" => {
                let name = (!self.source.is_empty()).then(|| self.source.clone());
                if let Some(n) = &name {
                    check_volume_name(n).map_err(|e| config(typ, e))?;
                }
                let v = self.volume_options.clone().unwrap_or_default();
                MountKind::Volume {
                    name,
                    labels: v.labels,
                    driver_options: v.driver_config.map(|d| d.options).unwrap_or_default(),
                    no_copy: v.no_copy,
                    read_only: self.read_only,
                }
            }
            _ => {
                let t = self.tmpfs_options.clone().unwrap_or_default();
                MountKind::Tmpfs {
                    size_bytes: (t.size_bytes > 0).then_some(t.size_bytes as u64),
                    mode: (t.mode != 0).then_some(t.mode),
                    exec: tmpfs_exec(&t)?,
                    read_only: self.read_only,
                }
            }
        })
    }
}

/// `TmpfsOptions.Options`: whether `exec` was asked for (the last of `exec`/`noexec` wins).
fn tmpfs_exec(t: &TmpfsOptions) -> Result<bool, MountError> {
    let mut exec = false;
    for opt in &t.options {
        match opt.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
            ["exec"] => exec = true,
            ["noexec"] => exec = false,
            [] | [_, _, _, ..] => return Err(config("tmpfs", "invalid option array length")),
            [other, ..] => return Err(config("tmpfs", format!("invalid option: {other}"))),
        }
    }
    Ok(exec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<Mount> {
        let c: ContainerSpec = serde_json::from_str(&format!(r#"{{"Image":"x","Mounts":{json}}}"#)).unwrap();
        c.mounts().unwrap()
    }

    fn err(json: &str) -> String {
        let ms = parse(json);
        match validate_spec_mounts(&ms).and_then(|()| ms.iter().try_for_each(|m| m.kind().map(|_| ()))) {
            Ok(()) => panic!("{json} was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn the_cli_shapes_parse_and_round_trip() {
        let json = r#"[{"Type":"volume","Source":"v1","Target":"/data","VolumeOptions":{"NoCopy":true,
            "Labels":{"a":"b"},"DriverConfig":{"Name":"local","Options":{"type":"tmpfs","device":"tmpfs"}}}},
            {"Type":"bind","Source":"/tmp","Target":"/h","ReadOnly":true,"BindOptions":{"Propagation":"rslave"}},
            {"Type":"tmpfs","Target":"/t","TmpfsOptions":{"SizeBytes":1048576,"Mode":1023}}]"#;
        let ms = parse(json);
        validate_spec_mounts(&ms).unwrap();
        assert_eq!(
            ms[0].kind().unwrap(),
            MountKind::Volume {
                name: Some("v1".into()),
                labels: [("a".to_string(), "b".to_string())].into(),
                driver_options: [("device".to_string(), "tmpfs".to_string()), ("type".into(), "tmpfs".into())].into(),
                no_copy: true,
                read_only: false,
            }
        );
        assert_eq!(
            ms[1].kind().unwrap(),
            MountKind::Bind {
                source: "/tmp".into(),
                propagation: Propagation::RSlave,
                recursive: true,
                create_source: false,
                read_only: ReadOnlyDepth::Recursive,
            }
        );
        assert_eq!(
            ms[2].kind().unwrap(),
            MountKind::Tmpfs { size_bytes: Some(1 << 20), mode: Some(0o1777), exec: false, read_only: false }
        );
        let back: serde_json::Value = serde_json::to_value(&ms).unwrap();
        let orig: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(back, orig, "a spec comes back as it was sent");
        let mut c = ContainerSpec::default();
        c.set_mounts(&ms);
        assert_eq!(c.mounts().unwrap(), ms);
        c.set_mounts(&[]);
        assert!(c.mounts.is_empty());
    }

    #[test]
    fn bad_mounts_are_refused_with_dockers_words() {
        assert_eq!(err(r#"[{"Type":"npipe","Source":"x","Target":"/x"}]"#), r#"invalid MountType: "npipe""#);
        assert_eq!(
            err(r#"[{"Type":"bind","Target":"/x"}]"#),
            r#"invalid mount config for type "bind": field Source must not be empty"#
        );
        assert_eq!(
            err(r#"[{"Type":"bind","Source":"rel/dir","Target":"/x"}]"#),
            r#"invalid mount config for type "bind": invalid mount path: 'rel/dir' mount path must be absolute"#
        );
        assert_eq!(
            err(r#"[{"Type":"bind","Source":"/x","Target":"/"}]"#),
            r#"invalid mount config for type "bind": invalid specification: destination can't be '/'"#
        );
        assert_eq!(
            err(r#"[{"Type":"tmpfs","Target":"rel"}]"#),
            r#"invalid mount config for type "tmpfs": invalid mount path: 'rel' mount path must be absolute"#
        );
        assert_eq!(
            err(r#"[{"Type":"bind","Source":"/x","Target":"/x","TmpfsOptions":{"SizeBytes":1}}]"#),
            r#"invalid mount config for type "bind": field TmpfsOptions must not be specified"#
        );
        assert_eq!(
            err(r#"[{"Type":"bind","Source":"/x","Target":"/x","VolumeOptions":{"NoCopy":true}}]"#),
            r#"invalid mount config for type "bind": field VolumeOptions must not be specified"#
        );
        assert_eq!(
            err(r#"[{"Type":"tmpfs","Source":"x","Target":"/x"}]"#),
            r#"invalid mount config for type "tmpfs": field Source must not be specified"#
        );
        assert_eq!(
            err(r#"[{"Type":"volume","Source":"v","Target":"/x","BindOptions":{}}]"#),
            r#"invalid mount config for type "volume": field BindOptions must not be specified"#
        );
        assert!(err(r#"[{"Type":"volume","Source":"v1","Target":"/x","VolumeOptions":{"DriverConfig":{"Name":"nfs"}}}]"#)
            .contains(r#"volume driver "nfs" is not supported"#));
        assert!(err(r#"[{"Type":"volume","Source":"a b","Target":"/x"}]"#).contains("includes invalid characters"));
        assert!(err(r#"[{"Type":"volume","Target":"/x","ReadOnly":true}]"#).contains("anonymous volumes"));
        assert!(err(r#"[{"Type":"bind","Source":"/x","Target":"/x","BindOptions":{"Propagation":"bogus"}}]"#)
            .contains("invalid propagation mode: bogus"));
        assert!(err(r#"[{"Type":"tmpfs","Target":"/x","TmpfsOptions":{"Options":[["size","1"]]}}]"#)
            .contains("invalid option: size"));
        assert!(err(r#"[{"Type":"tmpfs","Target":"/x","TmpfsOptions":{"Mode":99999}}]"#).contains("invalid tmpfs mode"));
        assert!(err(r#"[{"Type":"volume","Source":"v1","Target":"/x","ClusterOptions":{}}]"#)
            .contains("field ClusterOptions is not supported"));
        assert_eq!(
            err(r#"[{"Type":"tmpfs","Target":"/x"},{"Type":"tmpfs","Target":"/x/"}]"#),
            "invalid duplicate mount point: /x/"
        );
        let c: ContainerSpec = serde_json::from_str(r#"{"Mounts":[5]}"#).unwrap();
        assert!(matches!(c.mounts(), Err(MountError::Decode(_))));
    }

    #[test]
    fn templates_wait_for_the_node() {
        let ms = parse(r#"[{"Type":"volume","Source":"logs-{{.Task.Slot}}","Target":"/{{.Service.Name}}/logs"}]"#);
        validate_spec_mounts(&ms).unwrap();
        assert!(ms[0].kind().is_err(), "unexpanded, the name and the path are not valid");
    }

    #[test]
    fn tmpfs_exec_option_and_read_only_depths() {
        let ms = parse(
            r#"[{"Type":"tmpfs","Target":"/t","TmpfsOptions":{"Options":[["noexec"],["exec"]]}},
                {"Type":"bind","Source":"/s","Target":"/b","ReadOnly":true,"BindOptions":{"ReadOnlyNonRecursive":true,"NonRecursive":true}}]"#,
        );
        assert!(matches!(ms[0].kind().unwrap(), MountKind::Tmpfs { exec: true, .. }));
        assert!(matches!(
            ms[1].kind().unwrap(),
            MountKind::Bind { read_only: ReadOnlyDepth::TopOnly, recursive: false, .. }
        ));
        assert_eq!(check_volume_name("a"), Err("volume name is too short, names should be at least two alphanumeric characters".into()));
        assert!(check_volume_name("my_vol-1.x").is_ok() && check_volume_name("-x").is_err());
    }
}
