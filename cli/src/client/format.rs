//! Output helpers that reproduce the docker CLI's formatting: tab-aligned tables (Go's `text/tabwriter` as docker
//! configures it), capitalisation, human durations and sizes, Go's time and JSON layouts, natural sort order, and a
//! small subset of Go templates for `--format`.

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;

/// Docker's table layout: `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`.
const TABLE_MIN_WIDTH: usize = 10;
/// Spaces after the widest cell of a column.
const TABLE_PADDING: usize = 3;

/// Align tab-terminated cells into columns, as Go's tabwriter does for docker's tables: every cell but the last of a
/// line is padded to its column's width (the widest cell plus 3, at least 10); the last cell is written as is.
/// `text` is lines separated by `\n`, cells separated by `\t`.
pub fn tabwriter(text: &str) -> String {
    tabwriter_with(text, TABLE_MIN_WIDTH, TABLE_PADDING)
}

/// [`tabwriter`] with another minimum column width and padding (`docker version` uses 20 and 1).
pub fn tabwriter_with(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for line in &lines {
        for (j, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
            let w = (cell.chars().count() + padding).max(min_width);
            match widths.get_mut(j) {
                Some(have) => *have = (*have).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::with_capacity(text.len() * 2);
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let last = line.len() - 1;
        for (j, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if j < last {
                let pad = widths[j] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    out
}

/// Render rows of cells as a docker table: header first, each row on its own line (ending in `\n`).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut text = header.join("\t");
    text.push('\n');
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    tabwriter(&text)
}

/// docker's `PrettyPrint` for strings: first byte upper-cased, the rest lower-cased (`"ready"` → `"Ready"`,
/// `"+0000 UTC"` → `"+0000 utc"`); a single character is lower-cased, as docker does.
pub fn pretty_print(s: &str) -> String {
    let mut chars = s.chars();
    match (chars.next(), s.chars().count()) {
        (None, _) => String::new(),
        (Some(c), 1) => c.to_lowercase().collect(),
        (Some(c), _) => c
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
    }
}

/// go-units `HumanDuration`: "Less than a second", "5 seconds", "About a minute", "3 months", ...
pub fn human_duration(ns: i64) -> String {
    let seconds = ns / 1_000_000_000;
    let minutes = seconds / 60;
    let hours_f = ns as f64 / 3.6e12;
    let hours = (hours_f + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", (hours_f as i64) / 24 / 365)
    }
}

/// "x minutes ago" for an RFC 3339 time, relative to `now`; Go's zero time and unparsable times print as docker's
/// zero time does.
pub fn time_ago(rfc3339: &str, now: std::time::SystemTime) -> String {
    let ns = match skep_api::time::parse(rfc3339) {
        Some(t) => now
            .duration_since(t)
            .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
            .unwrap_or(0),
        None => i64::MAX,
    };
    format!("{} ago", human_duration(ns))
}

/// go-units `BytesSize`: binary units with four significant digits (`8589934592` → `"8GiB"`).
pub fn bytes_size(size: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = size;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", format_g4(size), UNITS[i])
}

/// Go's `%.4g` for values below 10⁴: four significant digits, trailing zeros dropped.
fn format_g4(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Go's `time.Time.String()` for an RFC 3339 time as the API sends it:
/// `2025-05-30T12:00:00.5Z` → `2025-05-30 12:00:00.5 +0000 UTC`. Unparsable text is returned as is.
pub fn go_time_string(rfc3339: &str) -> String {
    let Some((date, rest)) = rfc3339.split_once('T') else {
        return rfc3339.to_string();
    };
    let (clock, zone) = if let Some(c) = rest.strip_suffix('Z') {
        (c, "+0000 UTC".to_string())
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let off = rest[pos..].replace(':', "");
        (&rest[..pos], format!("{off} {off}"))
    } else {
        return rfc3339.to_string();
    };
    let clock = match clock.split_once('.') {
        Some((hms, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                hms.to_string()
            } else {
                format!("{hms}.{frac}")
            }
        }
        None => clock.to_string(),
    };
    format!("{date} {clock} {zone}")
}

/// `sortorder.NaturalLess` as an ordering: runs of digits compare as numbers (`node-2` < `node-10`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    if natural_less(a, b) {
        Ordering::Less
    } else if natural_less(b, a) {
        Ordering::Greater
    } else {
        Ordering::Equal
    }
}

fn natural_less(s1: &str, s2: &str) -> bool {
    let (a, b) = (s1.as_bytes(), s2.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (c1, c2) = (a[i], b[j]);
        let (d1, d2) = (c1.is_ascii_digit(), c2.is_ascii_digit());
        if d1 != d2 {
            return d1;
        }
        if !d1 {
            if c1 != c2 {
                return c1 < c2;
            }
            i += 1;
            j += 1;
            continue;
        }
        while i < a.len() && a[i] == b'0' {
            i += 1;
        }
        while j < b.len() && b[j] == b'0' {
            j += 1;
        }
        let (nz1, nz2) = (i, j);
        while i < a.len() && a[i].is_ascii_digit() {
            i += 1;
        }
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        let (l1, l2) = (i - nz1, j - nz2);
        if l1 != l2 {
            return l1 < l2;
        }
        if a[nz1..i] != b[nz2..j] {
            return a[nz1..i] < b[nz2..j];
        }
        if nz1 != nz2 {
            return nz1 < nz2;
        }
    }
    a.len() < b.len()
}

/// JSON indented by four spaces, as docker's `inspect` prints it (`json.MarshalIndent(v, "", "    ")`).
pub fn json_indent<T: Serialize + ?Sized>(v: &T) -> Result<String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser)?;
    Ok(String::from_utf8(buf)?)
}

/// Go's `json.Indent(dst, raw, "", indent)` (with `indent` `"    "`, what docker's `inspect` prints for the daemon's
/// raw JSON) or, with `indent` `None`, `json.Compact`: whitespace between tokens dropped, the daemon's key order and
/// string escapes kept as they came, `{}` and `[]` left empty on one line. `raw` is assumed to be valid JSON (the
/// caller decoded it first).
pub fn go_json_reformat(raw: &[u8], indent: Option<&str>) -> String {
    let mut out = Vec::with_capacity(raw.len() * 2);
    let newline = |out: &mut Vec<u8>, depth: usize| {
        if let Some(ind) = indent {
            out.push(b'\n');
            for _ in 0..depth {
                out.extend_from_slice(ind.as_bytes());
            }
        }
    };
    let (mut depth, mut need_indent) = (0usize, false);
    let (mut in_string, mut escaped) = (false, false);
    for &c in raw {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != b'}' && c != b']' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'{' | b'[' => {
                // the newline waits for the first element, so that empty objects and arrays stay `{}` and `[]`
                need_indent = true;
                out.push(c);
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => {
                out.push(c);
                if indent.is_some() {
                    out.push(b' ');
                }
            }
            b'}' | b']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            b'"' => {
                in_string = true;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One piece of a parsed `--format` template.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Text copied as is.
    Text(String),
    /// `{{.A.B}}`: the value at that path.
    Field(Vec<String>),
    /// `{{json .A}}`: the value at that path as compact JSON.
    Json(Vec<String>),
}

/// The subset of Go templates skep supports for `--format`: literal text, `{{.Field.Path}}` and `{{json .Path}}`
/// (`{{json .}}` for the whole object). Anything else (`if`, `range`, functions) is refused when parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

impl Template {
    /// Parse a template; `\t` and `\n` written as two characters become a tab and a newline (as docker does).
    pub fn parse(src: &str) -> Result<Template> {
        let src = src.replace("\\t", "\t").replace("\\n", "\n");
        let mut pieces = Vec::new();
        let mut rest = src.as_str();
        while let Some(start) = rest.find("{{") {
            if start > 0 {
                pieces.push(Piece::Text(rest[..start].to_string()));
            }
            let Some(len) = rest[start..].find("}}") else {
                bail!("template parsing error: unclosed action in {src:?}");
            };
            let action = rest[start + 2..start + len].trim();
            pieces.push(Self::action(action)?);
            rest = &rest[start + len + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template { pieces })
    }

    fn action(action: &str) -> Result<Piece> {
        let unsupported = || {
            anyhow::anyhow!(
                "template parsing error: {{{{{action}}}}} is not supported: skep's --format supports only \
                 {{{{.Field}}}}, {{{{.Field.Sub}}}} and {{{{json .Field}}}}"
            )
        };
        let (json, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        let path = path.strip_prefix('.').ok_or_else(unsupported)?;
        let path: Vec<String> = if path.is_empty() {
            Vec::new()
        } else {
            path.split('.').map(str::to_string).collect()
        };
        let valid =
            |p: &String| !p.is_empty() && p.chars().all(|c| c.is_alphanumeric() || c == '_');
        if !path.iter().all(valid) || (!json && path.is_empty()) && action != "." {
            return Err(unsupported());
        }
        Ok(if json {
            Piece::Json(path)
        } else {
            Piece::Field(path)
        })
    }

    /// Render against a JSON object. Missing fields print as Go's `<no value>`; strings print bare; objects and lists
    /// print as compact JSON.
    pub fn render(&self, ctx: &Value) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field(path) => match lookup(ctx, path) {
                    None => out.push_str("<no value>"),
                    Some(Value::String(s)) => out.push_str(s),
                    Some(Value::Null) => out.push_str("<nil>"),
                    Some(v) => out.push_str(&v.to_string()),
                },
                Piece::Json(path) => {
                    out.push_str(&lookup(ctx, path).unwrap_or(&Value::Null).to_string())
                }
            }
        }
        out
    }
}

fn lookup<'a>(v: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tabwriter_pads_like_go() {
        let out = table(
            &["ID", "NAME", "LAST"],
            &[
                vec!["a".into(), "bb".into(), "c".into()],
                vec!["abcdefghijkl".into(), "".into(), "x".into()],
            ],
        );
        let sp = |n: usize| " ".repeat(n);
        let want = format!(
            "ID{}NAME{}LAST\na{}bb{}c\nabcdefghijkl{}x\n",
            sp(13),
            sp(6),
            sp(14),
            sp(8),
            sp(13)
        );
        assert_eq!(out, want);
    }

    #[test]
    fn capitalisation_like_docker() {
        assert_eq!(pretty_print("ready"), "Ready");
        assert_eq!(pretty_print("DOWN"), "Down");
        assert_eq!(pretty_print(""), "");
        assert_eq!(pretty_print("X"), "x");
        assert_eq!(
            pretty_print("2025-05-30 12:00:00 +0000 UTC"),
            "2025-05-30 12:00:00 +0000 utc"
        );
    }

    #[test]
    fn durations_sizes_times() {
        const S: i64 = 1_000_000_000;
        assert_eq!(human_duration(S / 2), "Less than a second");
        assert_eq!(human_duration(S), "1 second");
        assert_eq!(human_duration(5 * S), "5 seconds");
        assert_eq!(human_duration(61 * S), "About a minute");
        assert_eq!(human_duration(59 * 60 * S), "59 minutes");
        assert_eq!(human_duration(3600 * S), "About an hour");
        assert_eq!(human_duration(2160 * 3600 * S), "3 months");
        assert_eq!(human_duration(i64::MAX), "292 years");
        assert_eq!(bytes_size(8589934592.0), "8GiB");
        assert_eq!(bytes_size(8344252416.0), "7.771GiB");
        assert_eq!(bytes_size(1023.0), "1023B");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(
            go_time_string("2025-05-30T12:00:00.181940000Z"),
            "2025-05-30 12:00:00.18194 +0000 UTC"
        );
        assert_eq!(
            go_time_string("0001-01-01T00:00:00Z"),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(
            go_time_string("2025-05-30T12:00:00+02:00"),
            "2025-05-30 12:00:00 +0200 +0200"
        );
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        assert_eq!(time_ago("2027-01-15T06:00:00Z", now), "2 hours ago");
        assert_eq!(time_ago("0001-01-01T00:00:00Z", now), "292 years ago");
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["node-10", "node-2", "node-1", "alpha", "node-02"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["alpha", "node-1", "node-2", "node-02", "node-10"]);
    }

    #[test]
    fn json_is_indented_by_four() {
        assert_eq!(
            json_indent(&json!([{"A": 1, "B": {}}])).unwrap(),
            "[\n    {\n        \"A\": 1,\n        \"B\": {}\n    }\n]"
        );
    }

    #[test]
    fn raw_json_is_reindented_like_go() {
        let raw = br#"{"Name":"n","Id":"x","IPAM":{"Config":[{"Subnet":"10.0.1.0/24"}],"Options":null},"Containers":{},"S":"a\"{,}: b","L":[]}
"#;
        assert_eq!(
            go_json_reformat(raw, Some("    ")),
            "{\n    \"Name\": \"n\",\n    \"Id\": \"x\",\n    \"IPAM\": {\n        \"Config\": [\n            {\n                \
             \"Subnet\": \"10.0.1.0/24\"\n            }\n        ],\n        \"Options\": null\n    },\n    \
             \"Containers\": {},\n    \"S\": \"a\\\"{,}: b\",\n    \"L\": []\n}"
        );
        assert_eq!(
            go_json_reformat(b"[ {\"A\" : 1 , \"B\": [ ] } ]\n", None),
            r#"[{"A":1,"B":[]}]"#
        );
        // the same text as serde's pretty printer gives, for JSON that serde would write the same way
        let v = json!([{"A": 1, "B": {"C": [1, 2]}, "D": {}}]);
        assert_eq!(
            go_json_reformat(v.to_string().as_bytes(), Some("    ")),
            json_indent(&v).unwrap()
        );
    }

    #[test]
    fn templates_subset() {
        let ctx = json!({"ID": "abc", "Spec": {"Role": "manager", "Labels": {"a": "1"}}, "N": 3, "B": true});
        let t = Template::parse(
            r"{{.ID}}\t{{ .Spec.Role }} {{.N}} {{.B}} {{json .Spec.Labels}} {{.Nope}}",
        )
        .unwrap();
        assert_eq!(
            t.render(&ctx),
            "abc\tmanager 3 true {\"a\":\"1\"} <no value>"
        );
        assert_eq!(
            Template::parse("{{json .}}")
                .unwrap()
                .render(&json!({"a": 1})),
            r#"{"a":1}"#
        );
        assert!(Template::parse("{{if .Self}}x{{end}}").is_err());
        assert!(Template::parse("{{.ID").is_err());
        assert!(Template::parse("{{upper .ID}}").is_err());
    }
}
