//! Docker Engine API JSON shapes (API 1.50), with Go's exact field names.
//!
//! Rules (Go's `encoding/json` over moby's `api/types/swarm`): PascalCase names with per-field fixes, durations as integer
//! nanoseconds, times as RFC 3339 strings, `Labels` always present (never omitted), and lenient decoding: the CLI
//! sends `null`, `{}` or omits optional parts, and all of those mean "default". Every struct therefore has
//! `#[serde(default)]`, and maps/lists decode `null` as empty. The one exception is a node's role and availability
//! ([`Node`], [`NodeSpec`]): required, never defaulted (see `node.rs`).
//!
//! Closed sets of words (node role, availability, state, reachability) are enums declared with the
//! `vocabulary` module's macro; they encode as their words.

pub mod decode;
mod event;
pub mod fields;
pub mod health;
mod mount;
mod network;
mod node;
pub mod reference;
mod secret;
mod service;
mod task;
mod swarm;
mod system;
mod vocabulary;
mod volume;

pub use event::*;
pub use mount::*;
pub use network::*;
pub use node::*;
pub use secret::*;
pub use service::*;
pub use task::*;
pub use swarm::*;
pub use system::*;
pub use vocabulary::InvalidValue;
pub use volume::*;

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// `Annotations.Labels` and friends: sorted for stable output.
pub type Labels = BTreeMap<String, String>;

/// `Version.Index`: increases on every write to the object (the store's global index).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ObjectVersion {
    /// Store index of the last write to this object.
    #[serde(rename = "Index")]
    pub index: u64,
}

/// The body of every error response: `{"message": "..."}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    /// What went wrong, shown by the CLI after "Error response from daemon: ".
    pub message: String,
}

/// Decode `null` as the type's default (Go marshals nil maps and slices as `null`).
pub fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// Writes a float as Go does: an integral value without a fraction (`0`, not `0.0`).
pub fn go_float<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// For `skip_serializing_if`: Go's `omitempty` on strings.
pub fn is_empty_str(s: &str) -> bool {
    s.is_empty()
}

/// For `skip_serializing_if`: Go's `omitempty` on booleans.
pub fn is_false(b: &bool) -> bool {
    !*b
}

/// For `skip_serializing_if`: Go's `omitempty` on integers.
pub fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One second in the API's duration unit (nanoseconds).
pub const SECOND_NS: i64 = 1_000_000_000;
