//! Secrets and configs (`/secrets`, `/configs`) and the references a service's `ContainerSpec` makes to them.
//!
//! Both objects have the same shape: a name, labels and a payload (`Data`, base64 in JSON) that tasks get as a file.
//! They differ in what the API shows and where the file goes: a secret's `Data` is never returned, and its file is
//! under `/run/secrets/`; a config's `Data` is shown, and its file is under `/` (both unless the target is absolute).

use super::{null_default, Driver, Labels, ObjectVersion};
use serde::{Deserialize, Serialize};

/// Where a relative secret target goes inside a task (Docker's `containerSecretMountPath`).
pub const SECRETS_DIR: &str = "/run/secrets";
/// Where a relative config target goes inside a task (Docker's `containerConfigMountPath`).
pub const CONFIGS_DIR: &str = "/";

/// `Spec` of a secret or a config (configs have no `Driver`; skep refuses one).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SecretSpec {
    /// Name, unique among the objects of its kind.
    pub name: String,
    /// Labels (always present in what skep returns, as Docker's).
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// The payload. Never returned for a secret.
    #[serde(with = "base64_opt", skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<u8>>,
    /// External secret store (not supported by skep).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver: Option<Driver>,
    /// Template driver of the payload (`golang`), rendered for each task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub templating: Option<Driver>,
}

/// A secret or a config as the API shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Secret {
    /// ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Store version.
    pub version: ObjectVersion,
    /// Creation time.
    pub created_at: String,
    /// Last write.
    pub updated_at: String,
    /// The spec (without `Data` for a secret).
    pub spec: SecretSpec,
}

/// A config has the same shape as a secret.
pub type Config = Secret;
/// A config's spec has the same shape as a secret's.
pub type ConfigSpec = SecretSpec;

/// `POST /secrets/create` and `/configs/create` reply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateResponse {
    /// The new object's ID.
    #[serde(rename = "ID")]
    pub id: String,
}

/// `File` of a secret or config reference: the file a task gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct FileTarget {
    /// Target path: relative to `/run/secrets/` (secrets) or `/` (configs), or absolute.
    pub name: String,
    /// Owner, a decimal user ID as a string (Docker's shape).
    #[serde(rename = "UID")]
    pub uid: String,
    /// Group, a decimal group ID as a string.
    #[serde(rename = "GID")]
    pub gid: String,
    /// Permission bits (Go's `os.FileMode` as a decimal number: 292 is 0444).
    pub mode: u32,
}

/// An entry of `ContainerSpec.Secrets`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SecretReference {
    /// The file the task gets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    /// The secret's ID.
    #[serde(rename = "SecretID")]
    pub secret_id: String,
    /// The secret's name (checked against the ID).
    pub secret_name: String,
}

/// An entry of `ContainerSpec.Configs` (Go's `swarm.ConfigReference`; `ConfigReference` is the network one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct SwarmConfigReference {
    /// The file the task gets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileTarget>,
    /// A config used by the runtime rather than as a file (Windows credential specs; refused by skep).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime: Option<serde_json::Value>,
    /// The config's ID.
    #[serde(rename = "ConfigID")]
    pub config_id: String,
    /// The config's name (checked against the ID).
    pub config_name: String,
}

/// Where a reference's file goes inside a task: an absolute `File.Name` as is, a relative one under `dir`
/// ([`SECRETS_DIR`] or [`CONFIGS_DIR`]), as Docker's `getSecretTargetPath` / `getConfigTargetPath` join them.
/// `None` when the name has a `..` component, a NUL or a control character, or names the directory itself.
pub fn target_path(dir: &str, name: &str) -> Option<String> {
    if name.is_empty() || name.len() > 4096 || name.chars().any(|c| c.is_control()) {
        return None;
    }
    let joined = if name.starts_with('/') { name.to_string() } else { format!("{}/{name}", dir.trim_end_matches('/')) };
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => return None,
            p => parts.push(p),
        }
    }
    let path = format!("/{}", parts.join("/"));
    (path != "/" && path != dir.trim_end_matches('/')).then_some(path)
}

/// `Option<Vec<u8>>` as Go marshals a `[]byte`: standard base64 with padding, `null` for nil.
mod base64_opt {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(s) = Option::<std::borrow::Cow<'de, str>>::deserialize(d)? else { return Ok(None) };
        base64::engine::general_purpose::STANDARD.decode(s.as_bytes()).map(Some).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_and_write_dockers_json() {
        let s: SecretSpec = serde_json::from_str(r#"{"Name":"db","Labels":null,"Data":"czNjcjN0"}"#).unwrap();
        assert_eq!(s.data.as_deref(), Some(&b"s3cr3t"[..]));
        assert!(s.labels.is_empty());
        let shown = Secret { id: "x".into(), spec: SecretSpec { data: None, ..s }, ..Default::default() };
        let json = serde_json::to_value(&shown).unwrap();
        assert_eq!(json["Spec"], serde_json::json!({"Name": "db", "Labels": {}}));
        let t: SecretSpec = serde_json::from_str(r#"{"Name":"c","Data":"","Templating":{"Name":"golang"}}"#).unwrap();
        assert_eq!(t.data.as_deref(), Some(&b""[..]));
        assert_eq!(t.templating.unwrap().name, "golang");
        assert!(serde_json::from_str::<SecretSpec>(r#"{"Data":"!!"}"#).is_err());
    }

    #[test]
    fn references_have_dockers_field_names() {
        let r: SecretReference = serde_json::from_str(
            r#"{"File":{"Name":"db","UID":"0","GID":"0","Mode":292},"SecretID":"abc","SecretName":"db"}"#,
        )
        .unwrap();
        assert_eq!(r.file.as_ref().unwrap().mode, 0o444);
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["File"]["UID"], "0");
        assert_eq!(back["SecretID"], "abc");
        let c: SwarmConfigReference = serde_json::from_str(r#"{"Runtime":{},"ConfigID":"i","ConfigName":"n"}"#).unwrap();
        assert!(c.runtime.is_some() && c.file.is_none());
    }

    #[test]
    fn targets_resolve_as_docker_joins_them_and_never_escape() {
        assert_eq!(target_path(SECRETS_DIR, "db").as_deref(), Some("/run/secrets/db"));
        assert_eq!(target_path(SECRETS_DIR, "a/b").as_deref(), Some("/run/secrets/a/b"));
        assert_eq!(target_path(SECRETS_DIR, "/etc/x").as_deref(), Some("/etc/x"));
        assert_eq!(target_path(CONFIGS_DIR, "app.conf").as_deref(), Some("/app.conf"));
        assert_eq!(target_path(CONFIGS_DIR, "/etc//app.conf").as_deref(), Some("/etc/app.conf"));
        for bad in ["", "../x", "a/../../x", "/", ".", "x\ny", "a\0b"] {
            assert_eq!(target_path(SECRETS_DIR, bad), None, "{bad:?}");
        }
        assert_eq!(target_path(SECRETS_DIR, "/run/secrets"), None);
    }
}
