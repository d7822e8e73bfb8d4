//! `/events`: what changed in the swarm, as Docker streams it (one JSON object per line).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One event.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// `service`, `node`, `task`, `network`, `secret`, `config`.
    #[serde(rename = "Type")]
    pub typ: String,
    /// `create`, `update`, `remove`.
    #[serde(rename = "Action")]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `swarm` here (Docker's local events say `local`).
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

/// The object an event is about.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Its ID.
    #[serde(rename = "ID")]
    pub id: String,
    /// Its name and what changed (`replicas.old`, `replicas.new`, `state.new`, ...).
    #[serde(rename = "Attributes")]
    pub attributes: BTreeMap<String, String>,
}
