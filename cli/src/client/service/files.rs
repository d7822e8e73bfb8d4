//! `--secret` / `--config` (create) and `--secret-add|rm` / `--config-add|rm` (update): docker's `SecretOpt` and
//! `ConfigOpt` (`opts/secret.go`, `opts/config.go`, github.com/docker/cli) and the resolution of names to IDs
//! (`ParseSecrets` / `ParseConfigs` in `cli/command/service/parse.go`): one `GET /secrets` (or `/configs`) with a
//! `name` filter per source, an exact name match on the client.

use super::super::{query, ApiClient};
use anyhow::{bail, Result};
use skep_api::docker::{FileTarget, Secret, SecretReference, SwarmConfigReference};
use std::collections::{BTreeMap, BTreeSet};

/// One `--secret` / `--config` value: the object's name and the file the task gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    /// The secret's or config's name (`source`/`src`).
    pub source: String,
    /// The file (`target`, default the source; `uid`, `gid` default "0"; `mode` default 0444).
    pub file: FileTarget,
}

/// Go's `strconv.ParseUint(s, 0, 32)`: `0x`, `0o`, `0b` prefixes, a leading `0` for octal, else decimal.
fn parse_uint_base0(s: &str) -> Option<u32> {
    let (digits, radix) = match s.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (&s[2..], 16),
        Some("0o") => (&s[2..], 8),
        Some("0b") => (&s[2..], 2),
        _ if s.len() > 1 && s.starts_with('0') => (&s[1..], 8),
        _ => (s, 10),
    };
    u32::from_str_radix(&digits.replace('_', ""), radix).ok()
}

fn parse(s: &str, what: &str) -> Result<FileRef, String> {
    let mut r = FileRef {
        source: String::new(),
        file: FileTarget { name: String::new(), uid: "0".into(), gid: "0".into(), mode: 0o444 },
    };
    let fields: Vec<&str> = s.split(',').collect();
    if fields.len() == 1 && !s.contains('=') {
        r.source = s.to_string();
        r.file.name = s.to_string();
        return Ok(r);
    }
    for field in fields {
        let Some((key, val)) = field.split_once('=').filter(|(k, _)| !k.is_empty()) else {
            return Err(format!("invalid field '{field}' must be a key=value pair"));
        };
        match key.to_lowercase().as_str() {
            "source" | "src" => r.source = val.to_string(),
            "target" => r.file.name = val.to_string(),
            "uid" => r.file.uid = val.to_string(),
            "gid" => r.file.gid = val.to_string(),
            "mode" => {
                r.file.mode = parse_uint_base0(val)
                    .ok_or_else(|| format!("invalid mode specified: strconv.ParseUint: parsing {val:?}: invalid syntax"))?
            }
            _ => return Err(format!("invalid field in {what} request: {key}")),
        }
    }
    if r.source.is_empty() {
        return Err("source is required".into());
    }
    if r.file.name.is_empty() {
        r.file.name = r.source.clone();
    }
    Ok(r)
}

/// `--secret`: `name`, or `source=name,target=file,uid=0,gid=0,mode=0400`.
pub fn parse_secret(s: &str) -> Result<FileRef, String> {
    parse(s, "secret")
}

/// `--config`: the same syntax as `--secret`.
pub fn parse_config(s: &str) -> Result<FileRef, String> {
    parse(s, "config")
}

/// Names to IDs for `refs` of one kind (`secret` or `config`): a duplicate target is refused, as is a name that does
/// not exist. Returns `(ID, name, file)` in the order given.
async fn resolve(c: &ApiClient, kind: &str, refs: &[FileRef]) -> Result<Vec<(String, String, FileTarget)>> {
    if refs.is_empty() {
        return Ok(vec![]);
    }
    let mut targets = BTreeSet::new();
    for r in refs {
        if !targets.insert(r.file.name.as_str()) {
            bail!("duplicate {kind} target for {} not allowed", r.source);
        }
    }
    let names: BTreeMap<&str, bool> = refs.iter().map(|r| (r.source.as_str(), true)).collect();
    let filters = serde_json::json!({ "name": names }).to_string();
    let found: Vec<Secret> = c.get(&format!("/{kind}s{}", query(&[("filters", &filters)]))).await?;
    refs.iter()
        .map(|r| match found.iter().find(|s| s.spec.name == r.source) {
            Some(s) => Ok((s.id.clone(), r.source.clone(), r.file.clone())),
            None => bail!("{kind} not found: {}", r.source),
        })
        .collect()
}

/// `--secret` values as the spec's references.
pub async fn secret_refs(c: &ApiClient, refs: &[FileRef]) -> Result<Vec<SecretReference>> {
    Ok(resolve(c, "secret", refs)
        .await?
        .into_iter()
        .map(|(id, name, file)| SecretReference { file: Some(file), secret_id: id, secret_name: name })
        .collect())
}

/// `--config` values as the spec's references.
pub async fn config_refs(c: &ApiClient, refs: &[FileRef]) -> Result<Vec<SwarmConfigReference>> {
    Ok(resolve(c, "config", refs)
        .await?
        .into_iter()
        .map(|(id, name, file)| SwarmConfigReference { file: Some(file), config_id: id, config_name: name, runtime: None })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_docker_parses_them() {
        let r = parse_secret("db").unwrap();
        assert_eq!((r.source.as_str(), r.file.name.as_str(), r.file.mode, r.file.uid.as_str()), ("db", "db", 0o444, "0"));
        let r = parse_secret("src=db,target=pw,uid=1000,gid=1001,mode=0400").unwrap();
        assert_eq!((r.source.as_str(), r.file.name.as_str(), r.file.mode), ("db", "pw", 0o400));
        assert_eq!((r.file.uid.as_str(), r.file.gid.as_str()), ("1000", "1001"));
        assert_eq!(parse_config("source=app,mode=0x1a4").unwrap().file.mode, 0o644);
        assert_eq!(parse_config("source=app,mode=400").unwrap().file.mode, 400, "Go's base 0: no leading 0 is decimal");
        assert_eq!(parse_secret("target=x").unwrap_err(), "source is required");
        assert_eq!(parse_secret("src=a,oops").unwrap_err(), "invalid field 'oops' must be a key=value pair");
        assert_eq!(parse_config("src=a,color=red").unwrap_err(), "invalid field in config request: color");
        assert!(parse_secret("src=a,mode=rw").unwrap_err().starts_with("invalid mode specified"));
    }
}
