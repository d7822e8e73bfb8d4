//! Volumes (`/volumes`): a node's local volumes as the Docker Engine API shows them.

use super::{null_default, Labels};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `GET /volumes/{name}` and the entries of `GET /volumes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct Volume {
    /// Volume name (64 hex characters for an anonymous one).
    pub name: String,
    /// `local`.
    pub driver: String,
    /// Where the data is on the node: `<data root>/volumes/<name>/_data`.
    pub mountpoint: String,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Labels given at creation.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
    /// Driver options given at creation (`type`, `device`, `o`); `null` when none, as Docker shows it.
    pub options: Option<BTreeMap<String, String>>,
    /// `local`.
    pub scope: String,
    /// Size and users, when asked for (`system df`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_data: Option<VolumeUsageData>,
}

/// `Volume.UsageData`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeUsageData {
    /// Bytes used, or -1 when unknown.
    pub size: i64,
    /// How many tasks use it.
    pub ref_count: i64,
}

/// `POST /volumes/create`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeCreateRequest {
    /// Name; empty makes an anonymous volume with a random name.
    pub name: String,
    /// Driver; empty means `local`.
    pub driver: String,
    /// Driver options.
    #[serde(deserialize_with = "null_default")]
    pub driver_opts: BTreeMap<String, String>,
    /// Labels.
    #[serde(deserialize_with = "null_default")]
    pub labels: Labels,
}

/// `GET /volumes`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumeListResponse {
    /// The volumes.
    pub volumes: Vec<Volume>,
    /// Warnings (none from the local driver).
    pub warnings: Vec<String>,
}

/// `POST /volumes/prune`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub struct VolumePruneResponse {
    /// Names of the removed volumes.
    pub volumes_deleted: Vec<String>,
    /// Bytes freed.
    pub space_reclaimed: u64,
}
