//! The `filters=` query parameter: a URL-encoded JSON map `{"key":{"value":true}}`, or the legacy `{"key":["value"]}`.
//!
//! Each endpoint accepts a fixed set of keys; any other key is a 400 `invalid filter 'foo'` (see [`Filters::check_keys`]).

use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// Longest `filters` value accepted (bytes); the CLI's are tiny.
pub const MAX_FILTERS_LEN: usize = 64 * 1024;

/// Parsed filters: key → set of values.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, BTreeSet<String>>);

/// A `filters` value that is not valid.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterError {
    /// Not one of the JSON forms.
    #[error("invalid filter: {0}")]
    Malformed(String),
    /// A key the endpoint does not know.
    #[error("invalid filter '{0}'")]
    UnknownKey(String),
    /// A value that does not fit the key (e.g. `role=boss`).
    #[error("invalid filter '{key}={value}'")]
    BadValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
}

impl Filters {
    /// Parse the (already URL-decoded) JSON text; an empty string is no filters.
    pub fn parse(s: &str) -> Result<Filters, FilterError> {
        if s.trim().is_empty() {
            return Ok(Filters::default());
        }
        if s.len() > MAX_FILTERS_LEN {
            return Err(FilterError::Malformed("too long".into()));
        }
        let v: serde_json::Value =
            serde_json::from_str(s).map_err(|e| FilterError::Malformed(e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| FilterError::Malformed("not a JSON object".into()))?;
        let mut out = BTreeMap::new();
        for (k, vals) in obj {
            let mut set = BTreeSet::new();
            match vals {
                serde_json::Value::Object(m) => {
                    for (val, on) in m {
                        if on.as_bool().unwrap_or(false) {
                            set.insert(val.clone());
                        }
                    }
                }
                serde_json::Value::Array(a) => {
                    for val in a {
                        let s = val
                            .as_str()
                            .ok_or_else(|| FilterError::Malformed(format!("value of '{k}' is not a string")))?;
                        set.insert(s.to_string());
                    }
                }
                _ => return Err(FilterError::Malformed(format!("value of '{k}' is not a map or list"))),
            }
            out.insert(k.clone(), set);
        }
        Ok(Filters(out))
    }

    /// 400 for a key outside `allowed`.
    pub fn check_keys(&self, allowed: &[&str]) -> Result<(), FilterError> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(FilterError::UnknownKey(k.clone())),
            None => Ok(()),
        }
    }

    /// Values of `key` (empty when absent).
    pub fn get(&self, key: &str) -> impl Iterator<Item = &str> {
        self.0.get(key).into_iter().flat_map(|s| s.iter().map(String::as_str))
    }

    /// Whether the key is present with at least one value.
    pub fn has(&self, key: &str) -> bool {
        self.0.get(key).is_some_and(|s| !s.is_empty())
    }

    /// True when `key` is absent, or when any of its values satisfies `pred` (Docker ORs values of one key).
    pub fn matches_any(&self, key: &str, mut pred: impl FnMut(&str) -> bool) -> bool {
        !self.has(key) || self.get(key).any(&mut pred)
    }

    /// Docker's `label` filter: every value must match; `k` means "has key k", `k=v` means exact value.
    pub fn matches_labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.get(key).all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
            None => labels.contains_key(f),
        })
    }

    /// Encode as the canonical JSON map form (what the CLI sends).
    pub fn to_json(&self) -> String {
        let m: BTreeMap<&String, BTreeMap<&String, bool>> =
            self.0.iter().map(|(k, vs)| (k, vs.iter().map(|v| (v, true)).collect())).collect();
        serde_json::to_string(&m).unwrap_or_else(|_| "{}".into())
    }

    /// Add a value.
    pub fn add(&mut self, key: &str, value: &str) {
        self.0.entry(key.to_string()).or_default().insert(value.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse() {
        let a = Filters::parse(r#"{"role":{"manager":true}}"#).unwrap();
        let b = Filters::parse(r#"{"role":["manager"]}"#).unwrap();
        assert_eq!(a, b);
        assert!(a.has("role"));
        assert_eq!(Filters::parse("").unwrap(), Filters::default());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(Filters::parse("[1]"), Err(FilterError::Malformed(_))));
        assert!(matches!(Filters::parse("{"), Err(FilterError::Malformed(_))));
        assert!(matches!(Filters::parse(r#"{"a":3}"#), Err(FilterError::Malformed(_))));
        let f = Filters::parse(r#"{"foo":{"x":true}}"#).unwrap();
        assert_eq!(f.check_keys(&["id"]), Err(FilterError::UnknownKey("foo".into())));
        assert_eq!(FilterError::UnknownKey("foo".into()).to_string(), "invalid filter 'foo'");
    }

    #[test]
    fn label_filter_semantics() {
        let f = Filters::parse(r#"{"label":{"a":true,"b=2":true}}"#).unwrap();
        let mut l = BTreeMap::new();
        l.insert("a".to_string(), "1".to_string());
        assert!(!f.matches_labels("label", &l));
        l.insert("b".to_string(), "2".to_string());
        assert!(f.matches_labels("label", &l));
        let mut g = Filters::default();
        g.add("label", "x");
        assert_eq!(g.to_json(), r#"{"label":{"x":true}}"#);
    }
}
