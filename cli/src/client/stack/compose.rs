//! Loading compose files as `docker stack deploy -c` loads them: YAML (anchors and `<<` merge keys), variable
//! interpolation, several files merged in order, and docker's three lists of service keys it does not carry out in
//! swarm mode (`cli/compose/loader`, github.com/docker/cli): *forbidden* keys fail the load, *unsupported* and
//! *deprecated* keys are reported on stderr and skipped.
//!
//! The `docker-compose-types` crate was evaluated for this and not used: its default YAML backend is `serde_yaml`,
//! which is no longer maintained, its structs accept and drop keys they do not know (skep refuses them), and it has
//! no interpolation. The files are parsed with `serde_norway` (a maintained fork of `serde_yaml`) into
//! `serde_json::Value`, and [`super::convert`] walks that tree checking every key.

use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Largest compose file read (bytes): bounded input.
pub const MAX_FILE: u64 = 4 << 20;

/// Errors loading compose files.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// The file could not be read.
    #[error("{0}: {1}")]
    Read(String, std::io::Error),
    /// The file is larger than [`MAX_FILE`].
    #[error("{0}: compose file larger than {MAX_FILE} bytes")]
    TooLarge(String),
    /// Not YAML.
    #[error("{0}: {1}")]
    Yaml(String, String),
    /// The document is not a mapping.
    #[error("Top-level object must be a mapping")]
    NotAMapping,
    /// `${` without its closing brace, or a bad name.
    #[error("invalid interpolation format for {path}: {value:?}; you may need to escape any $ with another $")]
    Interpolation { path: String, value: String },
    /// `${VAR:?message}` with VAR unset (or empty).
    #[error("required variable {name} is missing a value: {message}")]
    Required { name: String, message: String },
    /// A key docker refuses in swarm mode.
    #[error("Compose file contains unsupported options:\n\n{0}\n")]
    Forbidden(String),
}

/// docker's `ForbiddenProperties`: the load fails, naming them with the reason.
const FORBIDDEN: &[(&str, &str)] = &[
    ("extends", "Support for `extends` is not implemented yet."),
    (
        "volume_driver",
        "Instead of setting the volume driver on the service, define a volume using the top-level `volumes` option \
         and specify the driver there.",
    ),
    (
        "volumes_from",
        "To share a volume between services, define it using the top-level `volumes` option and reference it from \
         each service that shares it using the service-level `volumes` option.",
    ),
    ("cpu_quota", "Set resource limits using deploy.resources"),
    ("cpu_shares", "Set resource limits using deploy.resources"),
    ("cpuset", "Set resource limits using deploy.resources"),
    ("mem_limit", "Set resource limits using deploy.resources"),
    ("memswap_limit", "Set resource limits using deploy.resources"),
];

/// docker's `UnsupportedProperties` ("Ignoring unsupported options: …"), plus `depends_on`, which docker skips
/// without a word: skep names it with the others (ordering is not something a swarm service has).
pub const UNSUPPORTED: &[&str] = &[
    "build",
    "cgroup_parent",
    "cgroupns_mode",
    "depends_on",
    "devices",
    "domainname",
    "external_links",
    "ipc",
    "links",
    "mac_address",
    "network_mode",
    "pid",
    "privileged",
    "restart",
    "security_opt",
    "shm_size",
    "userns_mode",
];

/// docker's `DeprecatedProperties` ("Ignoring deprecated options: …").
pub const DEPRECATED: &[(&str, &str)] = &[
    ("container_name", "Setting the container name is not supported."),
    (
        "expose",
        "Exposing ports is unnecessary - services on the same network can access each other's containers on any \
         port.",
    ),
];

/// The merged, interpolated compose document and what loading it has to say.
#[derive(Debug)]
pub struct Loaded {
    /// The document (a mapping), with docker's ignored keys removed from the services.
    pub doc: Map<String, Value>,
    /// The directory of the first file: relative paths (bind sources, secret files, env files) start there.
    pub dir: PathBuf,
    /// What docker prints on stderr before deploying (unsupported and deprecated keys), ready to print.
    pub warnings: String,
}

/// Read, interpolate and merge `files` (`-` is stdin) with `env` as the environment.
pub fn load(files: &[String], env: &dyn Fn(&str) -> Option<String>) -> Result<Loaded, ComposeError> {
    let mut texts = Vec::with_capacity(files.len());
    for f in files {
        texts.push((f.clone(), read(f)?));
    }
    let dir = match files.first().map(String::as_str) {
        None | Some("-") => std::env::current_dir().unwrap_or_default(),
        Some(f) => {
            let p = Path::new(f).parent().map(Path::to_path_buf).unwrap_or_default();
            if p.as_os_str().is_empty() {
                std::env::current_dir().unwrap_or_default()
            } else {
                p
            }
        }
    };
    let mut loaded = load_texts(&texts, env)?;
    loaded.dir = dir;
    Ok(loaded)
}

fn read(file: &str) -> Result<String, ComposeError> {
    use std::io::Read;
    let mut text = String::new();
    let r = if file == "-" {
        std::io::stdin().take(MAX_FILE + 1).read_to_string(&mut text)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(MAX_FILE + 1).read_to_string(&mut text))
    };
    r.map_err(|e| ComposeError::Read(file.into(), e))?;
    if text.len() as u64 > MAX_FILE {
        return Err(ComposeError::TooLarge(file.into()));
    }
    Ok(text)
}

/// [`load`] on texts already read: `(name, text)` in merge order.
pub fn load_texts(
    texts: &[(String, String)],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ComposeError> {
    let mut doc = Map::new();
    for (name, text) in texts {
        let mut y: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| ComposeError::Yaml(name.clone(), e.to_string()))?;
        y.apply_merge().map_err(|e| ComposeError::Yaml(name.clone(), e.to_string()))?;
        let mut v: Value = serde_json::to_value(&y).map_err(|e| ComposeError::Yaml(name.clone(), e.to_string()))?;
        interpolate_tree(&mut v, "", env)?;
        let Value::Object(m) = v else {
            return Err(ComposeError::NotAMapping);
        };
        merge(&mut doc, m);
    }
    let warnings = check_service_keys(&mut doc)?;
    Ok(Loaded { doc, dir: PathBuf::new(), warnings })
}

/// Later files override earlier ones: mappings merge key by key, anything else (lists included) is replaced.
fn merge(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// docker's key lists applied to every service: forbidden keys fail, unsupported and deprecated ones are removed
/// and returned as docker's stderr text.
fn check_service_keys(doc: &mut Map<String, Value>) -> Result<String, ComposeError> {
    let Some(Value::Object(services)) = doc.get_mut("services") else {
        return Ok(String::new());
    };
    let mut forbidden = BTreeSet::new();
    let mut unsupported = BTreeSet::new();
    let mut deprecated = BTreeSet::new();
    for svc in services.values() {
        let Value::Object(s) = svc else { continue };
        for k in s.keys() {
            if let Some((_, why)) = FORBIDDEN.iter().find(|(f, _)| f == k) {
                forbidden.insert(format!("{k}: {why}"));
            }
            if UNSUPPORTED.contains(&k.as_str()) {
                unsupported.insert(k.clone());
            }
            if let Some((_, why)) = DEPRECATED.iter().find(|(d, _)| d == k) {
                deprecated.insert(format!("{k}: {why}"));
            }
        }
    }
    if !forbidden.is_empty() {
        return Err(ComposeError::Forbidden(forbidden.into_iter().collect::<Vec<_>>().join("\n\n")));
    }
    for svc in services.values_mut() {
        if let Value::Object(s) = svc {
            // docker warns about `restart` but still reads it when `deploy.restart_policy` is absent; so does skep
            s.retain(|k, _| {
                k == "restart" || (!UNSUPPORTED.contains(&k.as_str()) && !DEPRECATED.iter().any(|(d, _)| d == k))
            });
        }
    }
    let mut text = String::new();
    if !unsupported.is_empty() {
        text.push_str(&format!(
            "Ignoring unsupported options: {}\n\n",
            unsupported.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if !deprecated.is_empty() {
        text.push_str(&format!(
            "Ignoring deprecated options:\n\n{}\n\n",
            deprecated.into_iter().collect::<Vec<_>>().join("\n\n")
        ));
    }
    Ok(text)
}

/// Interpolate every string value (not keys) of the tree; `path` names the value in errors.
fn interpolate_tree(v: &mut Value, path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ComposeError> {
    match v {
        Value::String(s) => *s = interpolate(s, path, env)?,
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                interpolate_tree(x, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let p = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                interpolate_tree(x, &p, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The compose interpolation of one string: `$$` is a `$`; `$VAR` and `${VAR}` are the variable (empty when unset);
/// `${VAR:-default}` / `${VAR-default}` the default when unset or empty / unset; `${VAR:?err}` / `${VAR?err}` an
/// error when unset or empty / unset; `${VAR:+alt}` / `${VAR+alt}` the alternative when set and not empty / set.
pub fn interpolate(s: &str, path: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ComposeError> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let bad = || ComposeError::Interpolation { path: path.to_string(), value: s.to_string() };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = closing_brace(body).ok_or_else(bad)?;
            out.push_str(&expand(&body[..end], path, env).map_err(|e| e.unwrap_or_else(bad))?);
            rest = &body[end + 1..];
        } else {
            let n = after.find(|c: char| !is_name_char(c)).unwrap_or(after.len());
            if n == 0 || after.starts_with(|c: char| c.is_ascii_digit()) {
                return Err(bad());
            }
            out.push_str(&env(&after[..n]).unwrap_or_default());
            rest = &after[n..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The index of the `}` closing a `${`, nested `${…}` in defaults counted.
fn closing_brace(body: &str) -> Option<usize> {
    let mut depth = 0usize;
    let b = body.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

/// One `${…}` body; `Err(None)` is a format error.
fn expand(
    body: &str,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Option<ComposeError>> {
    let n = body.find(|c: char| !is_name_char(c)).unwrap_or(body.len());
    let (name, op) = body.split_at(n);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(None);
    }
    let val = env(name);
    let set_nonempty = val.as_deref().is_some_and(|v| !v.is_empty());
    let sub = |t: &str| interpolate(t, path, env).map_err(Some);
    let (colon, op) = match op.strip_prefix(':') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let present = if colon { set_nonempty } else { val.is_some() };
    match op.chars().next() {
        None if !colon => Ok(val.unwrap_or_default()),
        Some('-') => if present { Ok(val.unwrap_or_default()) } else { sub(&op[1..]) },
        Some('+') => if present { sub(&op[1..]) } else { Ok(String::new()) },
        Some('?') if present => Ok(val.unwrap_or_default()),
        Some('?') => Err(Some(ComposeError::Required { name: name.into(), message: sub(&op[1..])? })),
        _ => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "TAG" => Some("1.2".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn i(s: &str) -> Result<String, String> {
        interpolate(s, "services.web.image", &env).map_err(|e| e.to_string())
    }

    #[test]
    fn interpolation_follows_compose() {
        assert_eq!(i("nginx:${TAG}").unwrap(), "nginx:1.2");
        assert_eq!(i("nginx:$TAG-x").unwrap(), "nginx:1.2-x");
        assert_eq!(i("a$$b").unwrap(), "a$b");
        assert_eq!(i("${NOPE}").unwrap(), "");
        assert_eq!(i("${NOPE:-alpine}").unwrap(), "alpine");
        assert_eq!(i("${EMPTY:-alpine}").unwrap(), "alpine");
        assert_eq!(i("${EMPTY-alpine}").unwrap(), "");
        assert_eq!(i("${NOPE:-${TAG}}").unwrap(), "1.2");
        assert_eq!(i("${TAG:+set}").unwrap(), "set");
        assert_eq!(i("${NOPE:+set}").unwrap(), "");
        assert_eq!(i("${TAG:?need it}").unwrap(), "1.2");
        assert_eq!(i("${NOPE:?need a tag}").unwrap_err(), "required variable NOPE is missing a value: need a tag");
        assert_eq!(
            i("${TAG").unwrap_err(),
            "invalid interpolation format for services.web.image: \"${TAG\"; you may need to escape any $ with \
             another $"
        );
        assert!(i("${}").is_err());
        assert!(i("$ x").is_err());
        assert!(i("${A B}").is_err());
    }

    #[test]
    fn files_merge_in_order_and_values_are_interpolated() {
        let a = "services:\n  web:\n    image: nginx:${TAG}\n    environment: [A=1]\n    deploy:\n      replicas: 2\n";
        let b = "services:\n  web:\n    environment: [B=2]\n    deploy:\n      mode: replicated\n  db:\n    image: x\n";
        let l = load_texts(&[("a".into(), a.into()), ("b".into(), b.into())], &env).unwrap();
        let web = &l.doc["services"]["web"];
        assert_eq!(web["image"], "nginx:1.2");
        assert_eq!(web["environment"], serde_json::json!(["B=2"]));
        assert_eq!(web["deploy"], serde_json::json!({"replicas": 2, "mode": "replicated"}));
        assert_eq!(l.doc["services"]["db"]["image"], "x");
        assert_eq!(l.warnings, "");
    }

    #[test]
    fn anchors_and_merge_keys_work() {
        let y = "x-common: &c\n  image: busybox\n  user: nobody\nservices:\n  a:\n    <<: *c\n    user: root\n";
        let l = load_texts(&[("f".into(), y.into())], &env).unwrap();
        assert_eq!(l.doc["services"]["a"], serde_json::json!({"image": "busybox", "user": "root"}));
    }

    #[test]
    fn docker_key_lists_warn_or_fail_as_docker_does() {
        let y = "services:\n  web:\n    image: x\n    build: .\n    restart: always\n    depends_on: [db]\n    \
                 container_name: c\n    expose: [\"80\"]\n";
        let l = load_texts(&[("f".into(), y.into())], &env).unwrap();
        assert_eq!(
            l.warnings,
            "Ignoring unsupported options: build, depends_on, restart\n\nIgnoring deprecated options:\n\n\
             container_name: Setting the container name is not supported.\n\nexpose: Exposing ports is unnecessary - \
             services on the same network can access each other's containers on any port.\n\n"
        );
        assert_eq!(l.doc["services"]["web"], serde_json::json!({"image": "x", "restart": "always"}));
        let y = "services:\n  web:\n    image: x\n    mem_limit: 1g\n    build: .\n";
        let e = load_texts(&[("f".into(), y.into())], &env).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Compose file contains unsupported options:\n\nmem_limit: Set resource limits using deploy.resources\n"
        );
        assert!(matches!(load_texts(&[("f".into(), "- a\n".into())], &env), Err(ComposeError::NotAMapping)));
        assert!(matches!(load_texts(&[("f".into(), "a: [\n".into())], &env), Err(ComposeError::Yaml(..))));
    }
}
