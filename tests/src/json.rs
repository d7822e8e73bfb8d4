//! Reading the CLI's JSON: `--format json` prints one object per line; `inspect` prints an array.

use anyhow::Context as _;
use serde_json::Value;

/// Parses one JSON value.
pub fn parse(s: &str) -> anyhow::Result<Value> {
    serde_json::from_str(s.trim()).with_context(|| format!("not JSON: {}", s.trim()))
}

/// Parses one JSON value per non-empty line.
pub fn lines(s: &str) -> anyhow::Result<Vec<Value>> {
    s.lines().filter(|l| !l.trim().is_empty()).map(parse).collect()
}

/// The value at a dotted path (`"Spec.Role"`, `"Swarm.NodeID"`; a numeric segment indexes an array).
pub fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, seg| match v {
        Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
        _ => v.get(seg),
    })
}

/// The string at a dotted path, if it is a string.
pub fn str_at<'a>(v: &'a Value, path: &str) -> Option<&'a str> {
    at(v, path)?.as_str()
}

/// The string at a dotted path, or an error naming the path and showing the value.
pub fn req_str<'a>(v: &'a Value, path: &str) -> anyhow::Result<&'a str> {
    str_at(v, path).with_context(|| format!("no string at {path} in {v}"))
}

/// The boolean at a dotted path; the strings `"true"`/`"false"` count too (Go templates print both).
pub fn bool_at(v: &Value, path: &str) -> Option<bool> {
    match at(v, path)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// How many of `items` have the string `value` at `path` (e.g. nodes whose `ManagerStatus` is `Leader`).
pub fn count_eq(items: &[Value], path: &str, value: &str) -> usize {
    items.iter().filter(|v| str_at(v, path) == Some(value)).count()
}

/// The first of `items` with the string `value` at `path` (e.g. the node whose `ID` is `id`).
pub fn find_by<'a>(items: &'a [Value], path: &str, value: &str) -> Option<&'a Value> {
    items.iter().find(|v| str_at(v, path) == Some(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths_reach_nested_fields_and_array_items() {
        let v = parse(r#"[{"Spec":{"Role":"manager"},"ManagerStatus":{"Leader":true}}]"#).unwrap();
        assert_eq!(str_at(&v, "0.Spec.Role"), Some("manager"));
        assert_eq!(bool_at(&v, "0.ManagerStatus.Leader"), Some(true));
        assert!(at(&v, "0.Nope").is_none());
        assert_eq!(lines("{\"a\":1}\n\n{\"a\":2}\n").unwrap().len(), 2);
    }
}
