//! What a process task's `Image` means, and how an image's config fills in the spec (pure).
//!
//! - A reference (`10.0.0.5:5000/team/app:1@sha256:…`, `busybox`) is an image from a registry: pulled into the
//!   node's store and run in a root of its own.
//! - An absolute path (`/usr/bin/sleep`) is a program of the host, run with the host's root filesystem: the opt-in
//!   for host programs, which no registry reference can be mistaken for (a reference never starts with `/`). The
//!   daemon's `--host-programs` says whether it is allowed: `paths` (default) allows it, `none` refuses it, and
//!   `names` also keeps the old demo meaning of a reference *without an explicit registry* (`busybox`,
//!   `sleep:latest`, which would otherwise come from Docker Hub) as the host program of that name.
//!
//! The image config fills in what the spec leaves empty, as Docker does: `Command` replaces the entrypoint (and then
//! the image's `Cmd` is dropped), `Args` replace `Cmd`; the image's `Env` comes before the spec's; `WorkingDir`,
//! `User` and `StopSignal` apply when the spec has none; the image's `Healthcheck` applies when the spec has none,
//! and fills in each field the spec leaves empty (`Test`, the durations, `Retries`), as moby's `merge` in
//! `daemon/commit.go` does, so a spec's `["NONE"]` still disables the image's check.

use crate::engine::EngineError;
use skep_api::docker::reference::{Reference, DEFAULT_DOMAIN};
use skep_api::docker::ContainerSpec;
use serde_json::Value;
use skep_registry::manifest::RunConfig;

/// Which images may be host programs on this node (`--host-programs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HostPrograms {
    /// Never: every task runs an image.
    None,
    /// An absolute path is a host program.
    #[default]
    Paths,
    /// Also a reference without an explicit registry host (`busybox`): the host program of its last component.
    Names,
}

impl std::str::FromStr for HostPrograms {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(HostPrograms::None),
            "paths" => Ok(HostPrograms::Paths),
            "names" => Ok(HostPrograms::Names),
            other => Err(format!("invalid --host-programs {other:?} (none, paths or names)")),
        }
    }
}

/// Where a task's program comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    /// A program of the host (the path or name to exec, before `Command`).
    Host(Option<String>),
    /// An image to pull.
    Registry(String),
}

/// Whether `image` names a registry image with an explicit registry host (`host.tld/…`, `host:port/…`,
/// `localhost/…`), as opposed to Docker Hub by default.
fn explicit_registry(image: &str) -> bool {
    image.split_once('/').is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost")
}

/// Whether this node's process engine would run `image` as a host program (so no registry is asked about it).
pub fn is_host_program(image: &str, mode: HostPrograms) -> bool {
    matches!(source(image, &[], mode), Ok(Source::Host(_)))
}

/// Decides what `image` (with `command`) runs.
pub(crate) fn source(image: &str, command: &[String], mode: HostPrograms) -> Result<Source, EngineError> {
    let host_refused = || {
        EngineError::Invalid(format!(
            "{image:?} is a host program, which this node does not run (its daemon has --host-programs=none)"
        ))
    };
    if image.is_empty() {
        return match (command.is_empty(), mode) {
            (true, _) => Err(EngineError::Invalid("no program: the ContainerSpec has neither Image nor Command".into())),
            (false, HostPrograms::None) => Err(EngineError::Invalid("no image: the ContainerSpec has no Image".into())),
            (false, _) => Ok(Source::Host(None)),
        };
    }
    if image.starts_with('/') {
        return if mode == HostPrograms::None { Err(host_refused()) } else { Ok(Source::Host(Some(image.to_string()))) };
    }
    let parsed = Reference::parse(image);
    if mode == HostPrograms::Names && !explicit_registry(image) && parsed.as_ref().is_none_or(|r| r.domain == DEFAULT_DOMAIN) {
        return Ok(Source::Host(Some(super::program_from_image(image))));
    }
    match parsed {
        Some(_) => Ok(Source::Registry(image.to_string())),
        None => Err(EngineError::Invalid(format!("invalid reference format: {image:?} is not an image reference (a host program is an absolute path)"))),
    }
}

/// The program and its arguments for an image (Docker's rules, above).
pub(crate) fn argv(c: &ContainerSpec, config: &RunConfig) -> Result<Vec<String>, EngineError> {
    let argv: Vec<String> = if !c.command.is_empty() {
        c.command.iter().chain(&c.args).cloned().collect()
    } else {
        let cmd = if c.args.is_empty() { &config.cmd } else { &c.args };
        config.entrypoint.iter().chain(cmd).cloned().collect()
    };
    if argv.is_empty() {
        return Err(EngineError::Invalid("no command specified: the image has no Entrypoint or Cmd, and the spec no Command".into()));
    }
    Ok(argv)
}

/// The fields of a `HealthConfig`, in Docker's spelling.
const HEALTH_FIELDS: [&str; 6] = ["Test", "Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"];

/// The healthcheck a task of this image runs: the spec's, with every field it leaves unset (absent, null, 0, an
/// empty `Test`) taken from the image's (moby `daemon/commit.go` `merge`). Field names are matched in any case, as
/// Go's decoder does; the result uses Docker's spelling.
pub(crate) fn merged_healthcheck(spec: Option<&Value>, image: Option<&Value>) -> Option<Value> {
    let image = image.filter(|v| !v.is_null());
    let Some(spec) = spec.filter(|v| !v.is_null()) else { return image.cloned() };
    let (Some(s), Some(i)) = (spec.as_object(), image.and_then(Value::as_object)) else { return Some(spec.clone()) };
    let get = |o: &serde_json::Map<String, Value>, name: &str| {
        o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    };
    let unset = |v: &Value| match v {
        Value::Null => true,
        Value::Number(n) => n.as_i64() == Some(0),
        Value::Array(a) => a.is_empty(),
        _ => false,
    };
    let mut out = serde_json::Map::new();
    for name in HEALTH_FIELDS {
        let chosen = match get(s, name) {
            Some(v) if !unset(&v) => Some(v),
            from_spec => get(i, name).or(from_spec),
        };
        if let Some(v) = chosen {
            out.insert(name.to_string(), v);
        }
    }
    Some(Value::Object(out))
}

/// The spec with the image's `Env` first, and its `WorkingDir`, `User`, `StopSignal` and `Healthcheck` where the
/// spec has none.
pub(crate) fn merged(c: &ContainerSpec, config: &RunConfig) -> ContainerSpec {
    let mut m = c.clone();
    m.env = config.env.iter().chain(&c.env).cloned().collect();
    if m.dir.is_empty() {
        m.dir = config.working_dir.clone();
    }
    if m.user.is_empty() {
        m.user = config.user.clone();
    }
    if m.stop_signal.is_empty() {
        m.stop_signal = config.stop_signal.clone();
    }
    m.healthcheck = merged_healthcheck(c.healthcheck.as_ref(), config.healthcheck.as_ref());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_images_and_paths_host_programs() {
        let none: &[String] = &[];
        assert_eq!(source("10.0.0.5:5000/app:1", none, HostPrograms::Paths).unwrap(), Source::Registry("10.0.0.5:5000/app:1".into()));
        assert_eq!(source("busybox", none, HostPrograms::Paths).unwrap(), Source::Registry("busybox".into()));
        assert_eq!(source("/bin/sleep", none, HostPrograms::Paths).unwrap(), Source::Host(Some("/bin/sleep".into())));
        assert!(source("/bin/sleep", none, HostPrograms::None).is_err());
        // the old demo meaning, only when asked for, and never for an explicit registry
        assert_eq!(source("busybox:latest", none, HostPrograms::Names).unwrap(), Source::Host(Some("busybox".into())));
        assert_eq!(source("docker.io/library/busybox", none, HostPrograms::Names).unwrap(), Source::Registry("docker.io/library/busybox".into()));
        assert_eq!(source("localhost:5000/app", none, HostPrograms::Names).unwrap(), Source::Registry("localhost:5000/app".into()));
        assert!(source("Not A Ref", none, HostPrograms::Paths).is_err());
        assert_eq!(source("", &["sleep".to_string()], HostPrograms::Paths).unwrap(), Source::Host(None));
        assert!(source("", &[], HostPrograms::Paths).is_err());
        assert_eq!("names".parse::<HostPrograms>().unwrap(), HostPrograms::Names);
    }

    #[test]
    fn the_image_config_fills_in_like_docker() {
        let config = RunConfig {
            entrypoint: vec!["/entry".into()],
            cmd: vec!["default".into()],
            env: vec!["PATH=/img/bin".into(), "A=image".into()],
            working_dir: "/work".into(),
            user: "1000".into(),
            stop_signal: "SIGQUIT".into(),
            ..Default::default()
        };
        let mut c = ContainerSpec::default();
        assert_eq!(argv(&c, &config).unwrap(), vec!["/entry", "default"]);
        c.args = vec!["x".into()];
        assert_eq!(argv(&c, &config).unwrap(), vec!["/entry", "x"]);
        c.command = vec!["/bin/sh".into()];
        assert_eq!(argv(&c, &config).unwrap(), vec!["/bin/sh", "x"]);
        c.args.clear();
        assert_eq!(argv(&c, &config).unwrap(), vec!["/bin/sh"]);
        assert!(argv(&ContainerSpec::default(), &RunConfig::default()).is_err());
        c.env = vec!["A=spec".into()];
        let m = merged(&c, &config);
        assert_eq!(m.env, vec!["PATH=/img/bin", "A=image", "A=spec"]);
        assert_eq!((m.dir.as_str(), m.user.as_str(), m.stop_signal.as_str()), ("/work", "1000", "SIGQUIT"));
        c.user = "0".into();
        assert_eq!(merged(&c, &config).user, "0");
    }

    #[test]
    fn the_images_healthcheck_applies_field_by_field_unless_the_spec_says_none() {
        use serde_json::json;
        let image = json!({"Test": ["CMD-SHELL", "check"], "Interval": 5_000_000_000i64, "Retries": 4});
        // no spec check: the image's
        assert_eq!(merged_healthcheck(None, Some(&image)), Some(image.clone()));
        assert_eq!(merged_healthcheck(Some(&Value::Null), Some(&image)), Some(image.clone()));
        // the spec's fields win, the unset ones (any spelling) come from the image
        let spec = json!({"test": [], "interval": 0, "Timeout": 2_000_000_000i64, "retries": 1});
        assert_eq!(
            merged_healthcheck(Some(&spec), Some(&image)),
            Some(json!({"Test": ["CMD-SHELL", "check"], "Interval": 5_000_000_000i64, "Timeout": 2_000_000_000i64, "Retries": 1}))
        );
        // NONE disables the image's check
        let none = merged_healthcheck(Some(&json!({"Test": ["NONE"]})), Some(&image));
        assert_eq!(skep_api::docker::health::HealthCheck::from_spec(none.as_ref()), Ok(None));
        // no image check: the spec's as it is
        assert_eq!(merged_healthcheck(Some(&spec), None), Some(spec.clone()));
        assert_eq!(merged_healthcheck(None, None), None);
        let config = RunConfig { healthcheck: Some(image.clone()), ..Default::default() };
        assert_eq!(merged(&ContainerSpec::default(), &config).healthcheck, Some(image));
    }
}
