//! Placement constraints (`node.labels.zone==a`): parsing, validation and matching against a node.
//!
//! The syntax is swarmkit's (`manager/constraint/constraint.go`): `key op value`, operators `==` and `!=` only,
//! spaces around key and value ignored, a key made of letters, digits, `-`, `_` and `.` (not starting with a digit),
//! a value made of letters, digits, spaces and `:-_.*()?+[]\^$|/`. Values are compared case-insensitively, as
//! swarmkit does; label *names* are case-sensitive. A label the node does not have counts as the empty string, so
//! `==` never matches it and `!=` always does.
//!
//! Unlike swarmkit, a key outside the known set is rejected up front instead of silently never matching, and
//! `node.platform.arch` compares normalised architectures (`x86_64` and `amd64` are the same).

use super::nodeinfo::NodeInfo;
use std::net::IpAddr;

/// The two operators, in the order they are looked for (as swarmkit: `==` first, so in `a!=b==c` the key is `a!=b`,
/// which the key syntax then rejects).
const OPERATORS: [(&str, Op); 2] = [("==", Op::Eq), ("!=", Op::Ne)];

/// Shown when a key is not one we know.
const KNOWN_KEYS: &str = "node.id, node.hostname, node.ip, node.role, node.platform.os, node.platform.arch, \
                          node.labels.<name>, engine.labels.<name>";

/// `==` or `!=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
}

/// What a constraint looks at on a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Key {
    Id,
    Hostname,
    /// `Status.Addr`, matched as an address or a CIDR block.
    Ip,
    Role,
    Os,
    Arch,
    /// `Spec.Labels[name]`.
    NodeLabel(String),
    /// `Description.Engine.Labels[name]`.
    EngineLabel(String),
}

/// A parsed constraint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Constraint {
    pub(crate) key: Key,
    pub(crate) op: Op,
    /// The value as written (trimmed); for `node.platform.arch`, normalised.
    pub(crate) value: String,
    /// For `node.ip`: the block the value denotes (a single address is a full-length prefix).
    pub(crate) net: Option<(IpAddr, u8)>,
}

/// Checks constraint syntax and keys without a node in sight: the API calls this before anything is proposed.
///
/// Errors read like swarmkit's, prefixed by the offending constraint, e.g.
/// `invalid constraint syntax "node.labels.zone": expected one operator from ==, !=`.
pub fn validate_constraints(constraints: &[String]) -> Result<(), String> {
    check_constraints(constraints).map_err(|e| e.to_string())
}

/// [`validate_constraints`] with a typed error (which also has swarmkit's own wording).
pub fn check_constraints(constraints: &[String]) -> Result<(), ConstraintError> {
    parse_all(constraints).map(|_| ())
}

/// Why a constraint is refused. `Display` names the constraint; [`ConstraintError::swarmkit`] is Docker's text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConstraintError {
    /// Neither `==` nor `!=`.
    #[error("invalid constraint syntax {raw:?}: expected one operator from ==, !=")]
    NoOperator {
        /// The constraint.
        raw: String,
    },
    /// A key outside swarmkit's key syntax.
    #[error("invalid constraint syntax {raw:?}: key '{key}' is invalid")]
    Key {
        /// The constraint.
        raw: String,
        /// Its key.
        key: String,
    },
    /// A value outside swarmkit's value syntax.
    #[error("invalid constraint syntax {raw:?}: value '{value}' is invalid")]
    Value {
        /// The constraint.
        raw: String,
        /// Its value.
        value: String,
    },
    /// A key skep does not know, or a bad `node.ip` value (swarmkit accepts these and never matches).
    #[error("invalid constraint {raw:?}: {why}")]
    Meaning {
        /// The constraint.
        raw: String,
        /// What is wrong.
        why: String,
    },
}

impl ConstraintError {
    /// The text swarmkit's `constraint.Parse` gives (Docker shows it after `rpc error: code = Unknown desc = `).
    pub fn swarmkit(&self) -> String {
        match self {
            ConstraintError::NoOperator { .. } => "constraint expected one operator from ==, !=".into(),
            ConstraintError::Key { key, .. } => format!("key '{key}' is invalid"),
            ConstraintError::Value { value, .. } => format!("value '{value}' is invalid"),
            e @ ConstraintError::Meaning { .. } => e.to_string(),
        }
    }
}

/// Parses every constraint, stopping at the first bad one.
pub(crate) fn parse_all(constraints: &[String]) -> Result<Vec<Constraint>, ConstraintError> {
    constraints.iter().map(|c| parse(c)).collect()
}

/// Parses one `key op value`.
pub(crate) fn parse(raw: &str) -> Result<Constraint, ConstraintError> {
    let Some((key, op, value)) =
        OPERATORS.iter().find_map(|(text, op)| raw.split_once(text).map(|(k, v)| (k.trim(), *op, v.trim())))
    else {
        return Err(ConstraintError::NoOperator { raw: raw.into() });
    };
    if !valid_key(key) {
        return Err(ConstraintError::Key { raw: raw.into(), key: key.into() });
    }
    if !valid_value(value) {
        return Err(ConstraintError::Value { raw: raw.into(), value: value.into() });
    }
    let key = parse_key(key).map_err(|why| ConstraintError::Meaning { raw: raw.into(), why })?;
    let mut c = Constraint { key, op, value: value.to_string(), net: None };
    match c.key {
        Key::Arch => c.value = normalize_arch(value),
        Key::Ip => {
            let net = parse_net(value).ok_or_else(|| ConstraintError::Meaning {
                raw: raw.into(),
                why: format!("'{value}' is not an IP address or CIDR block"),
            })?;
            c.net = Some(net);
        }
        _ => {}
    }
    Ok(c)
}

/// swarmkit's key pattern `^(?i)[a-z_][a-z0-9\-_.]+$`.
fn valid_key(key: &str) -> bool {
    let mut chars = key.chars();
    let Some(first) = chars.next() else { return false };
    (first.is_ascii_alphabetic() || first == '_')
        && key.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// swarmkit's value pattern: letters, digits, whitespace and `:-_.*()?+[]\^$|/`; never empty, never an operator.
fn valid_value(value: &str) -> bool {
    !value.is_empty()
        && value.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || c.is_ascii_whitespace()
                || matches!(
                    c,
                    ':' | '-' | '_' | '.' | '*' | '(' | ')' | '?' | '+' | '[' | ']' | '\\' | '^' | '$' | '|' | '/'
                )
        })
}

/// Maps a syntactically valid key to what it reads. Key words are case-insensitive; label names are not.
fn parse_key(key: &str) -> Result<Key, String> {
    for (word, k) in [
        ("node.id", Key::Id),
        ("node.hostname", Key::Hostname),
        ("node.ip", Key::Ip),
        ("node.role", Key::Role),
        ("node.platform.os", Key::Os),
        ("node.platform.arch", Key::Arch),
    ] {
        if key.eq_ignore_ascii_case(word) {
            return Ok(k);
        }
    }
    for (prefix, make) in [("node.labels.", Key::NodeLabel as fn(String) -> Key), ("engine.labels.", Key::EngineLabel)]
    {
        if key.len() >= prefix.len() && key[..prefix.len()].eq_ignore_ascii_case(prefix) {
            let name = &key[prefix.len()..];
            if name.is_empty() {
                return Err(format!("key '{key}' has no label name"));
            }
            return Ok(make(name.to_string()));
        }
    }
    Err(format!("unknown key '{key}' (expected one of {KNOWN_KEYS})"))
}

/// `10.0.0.1` or `10.0.0.0/24` (IPv4 or IPv6).
fn parse_net(value: &str) -> Option<(IpAddr, u8)> {
    match value.split_once('/') {
        None => value.parse::<IpAddr>().ok().map(|ip| (ip, full_len(ip))),
        Some((addr, len)) => {
            let ip = addr.parse::<IpAddr>().ok()?;
            let len = len.parse::<u8>().ok()?;
            (len <= full_len(ip)).then_some((ip, len))
        }
    }
}

fn full_len(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

/// Whether `ip` lies in `net`.
fn net_contains((base, len): (IpAddr, u8), ip: IpAddr) -> bool {
    fn prefix(bits: u128, len: u8, width: u8) -> u128 {
        if len == 0 {
            0
        } else {
            bits >> (width - len)
        }
    }
    match (base, ip) {
        (IpAddr::V4(b), IpAddr::V4(i)) => {
            prefix(u32::from(b) as u128, len, 32) == prefix(u32::from(i) as u128, len, 32)
        }
        (IpAddr::V6(b), IpAddr::V6(i)) => prefix(u128::from(b), len, 128) == prefix(u128::from(i), len, 128),
        _ => false,
    }
}

/// Unicode-aware case-insensitive equality, fast for ASCII (swarmkit uses Go's `strings.EqualFold`).
pub(crate) fn eq_fold(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

impl Constraint {
    /// Whether `node` satisfies this constraint.
    pub(crate) fn matches(&self, node: &NodeInfo) -> bool {
        let found = match &self.key {
            Key::Id => eq_fold(&self.value, &node.id),
            Key::Hostname => eq_fold(&self.value, &node.hostname),
            Key::Role => eq_fold(&self.value, node.role.as_str()),
            Key::Os => eq_fold(&self.value, &node.os),
            Key::Arch => self.value == node.arch,
            Key::NodeLabel(name) => node.labels.get(name).is_some_and(|v| eq_fold(&self.value, v)),
            Key::EngineLabel(name) => node.engine_labels.get(name).is_some_and(|v| eq_fold(&self.value, v)),
            Key::Ip => match (self.net, node.ip) {
                (Some(net), Some(ip)) => net_contains(net, ip),
                // A node without a known address matches neither `==` nor `!=` (swarmkit fails the node).
                _ => return false,
            },
        };
        match self.op {
            Op::Eq => found,
            Op::Ne => !found,
        }
    }
}

/// Architecture names as Go (and image manifests) spell them: `x86_64` → `amd64`, `aarch64` → `arm64`,
/// `armv7l` → `arm`, `i686` → `386`; anything else is lowercased. The empty string stays empty ("any").
pub fn normalize_arch(arch: &str) -> String {
    let lower = arch.trim().to_ascii_lowercase();
    match lower.as_str() {
        "x86_64" | "x86-64" | "amd64" => "amd64".into(),
        "aarch64" | "arm64" | "armv8" | "armv8l" => "arm64".into(),
        "armv7l" | "armv7" | "armv6l" | "armv6" | "armhf" | "armel" | "arm" => "arm".into(),
        "i386" | "i486" | "i586" | "i686" | "x86" | "386" => "386".into(),
        _ => lower,
    }
}

/// Whether `node` satisfies every constraint (global services place by node and ask this directly). A constraint that
/// does not parse matches nothing (the API refuses such specs; this covers stored ones).
pub fn node_matches(node: &skep_api::docker::Node, constraints: &[String]) -> bool {
    if constraints.is_empty() {
        return true;
    }
    let info = NodeInfo::new(node);
    parse_all(constraints).is_ok_and(|cs| cs.iter().all(|c| c.matches(&info)))
}
