//! `/secrets` and `/configs`: one set of operations for both kinds ([`PayloadKind`]), with Docker's rules and texts
//! (swarmkit's `controlapi/secret.go` and `config.go`): names, sizes, labels-only updates, removal refused while in
//! use, and the views (a secret's data is never shown). Templated payloads are parsed here, so a template that
//! skep cannot render is refused at create time (Docker only finds out when a task starts).

use super::{invalid, ControlError};
use crate::store::{ClusterState, Op, PayloadKind};
use crate::template::Template;
use skep_api::docker::{target_path, ContainerSpec, Secret, SecretSpec, CONFIGS_DIR, SECRETS_DIR};
use std::collections::BTreeMap;
use skep_api::filters::{FilterError, Filters};

/// Largest secret payload: swarmkit's `MaxSecretSize` (data must be shorter than this).
pub const MAX_SECRET_SIZE: usize = 500 * 1024;
/// Largest config payload: swarmkit's `MaxConfigSize` since Docker 20.10 (data must be shorter than this).
pub const MAX_CONFIG_SIZE: usize = 1000 * 1024;
/// The one template driver there is.
pub const GOLANG: &str = "golang";

/// The payload size limit of a kind.
pub fn max_size(kind: PayloadKind) -> usize {
    match kind {
        PayloadKind::Secret => MAX_SECRET_SIZE,
        PayloadKind::Config => MAX_CONFIG_SIZE,
    }
}

/// Filter keys `GET /secrets` (and, without `names`, `GET /configs`) accepts.
pub fn filter_keys(kind: PayloadKind) -> &'static [&'static str] {
    match kind {
        PayloadKind::Secret => &["id", "label", "name", "names"],
        PayloadKind::Config => &["id", "label", "name"],
    }
}

/// swarmkit's `isValidConfigOrSecretName`: `[a-zA-Z0-9]+(?:[a-zA-Z0-9-_.]*[a-zA-Z0-9])?`, at most 64 characters.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `POST /secrets/create` / `POST /configs/create`.
pub fn create(state: &ClusterState, kind: PayloadKind, spec: SecretSpec, id: String) -> Result<Op, ControlError> {
    let noun = kind.noun();
    if spec.name.is_empty() {
        return Err(invalid("name must be provided"));
    }
    if !valid_name(&spec.name) {
        return Err(invalid(
            "invalid name, only 64 [a-zA-Z0-9-_.] characters allowed, and the start and end character must be [a-zA-Z0-9]",
        ));
    }
    if let Some(d) = &spec.driver {
        return Err(match (kind, d.name.is_empty()) {
            (PayloadKind::Config, _) => invalid("configs have no Driver"),
            (PayloadKind::Secret, true) => invalid("secret driver must have a name"),
            (PayloadKind::Secret, false) => ControlError::NotImplemented(format!(
                "secret drivers (external secret stores) are not supported by skep: secret driver {:?}",
                d.name
            )),
        });
    }
    let data = spec.data.as_deref().unwrap_or_default();
    let max = max_size(kind);
    if data.is_empty() || data.len() >= max {
        return Err(invalid(format!("{noun} data must be larger than 0 and less than {max} bytes")));
    }
    if let Some(t) = &spec.templating {
        if t.name != GOLANG {
            return Err(invalid(format!("template driver {:?} is not supported: the only template driver is {GOLANG}", t.name)));
        }
        Template::parse(data).map_err(|e| invalid(format!("{noun} {} is not a template skep can render: {e}", spec.name)))?;
    }
    if state.payloads(kind).values().any(|p| p.spec.name == spec.name) {
        return Err(ControlError::Conflict(format!(
            "rpc error: code = AlreadyExists desc = {noun} {} already exists",
            spec.name
        )));
    }
    Ok(Op::CreatePayload { kind, object: Box::new(Secret { id, spec, ..Default::default() }) })
}

/// `POST /secrets/{id}/update?version=N` / `POST /configs/{id}/update?version=N`: labels only. The name and, when
/// given, the data must be the stored ones (stack deploy sends them unchanged); templating and driver too.
pub fn update(state: &ClusterState, kind: PayloadKind, reference: &str, version: u64, spec: SecretSpec) -> Result<Op, ControlError> {
    let cur = state.resolve_payload(kind, reference)?;
    let same_data = spec.data.as_ref().is_none_or(|d| Some(d) == cur.spec.data.as_ref());
    if spec.name != cur.spec.name || !same_data || spec.templating != cur.spec.templating || spec.driver != cur.spec.driver {
        return Err(invalid("only updates to Labels are allowed"));
    }
    if cur.version.index != version {
        return Err(ControlError::OutOfSequence);
    }
    Ok(Op::UpdatePayloadLabels { kind, id: cur.id.clone(), version, labels: spec.labels })
}

/// `DELETE /secrets/{id}` / `DELETE /configs/{id}`: refused while a service references it.
pub fn remove(state: &ClusterState, kind: PayloadKind, reference: &str) -> Result<Op, ControlError> {
    let p = state.resolve_payload(kind, reference)?;
    state.check_unused(kind, &p.id)?;
    Ok(Op::RemovePayload { kind, id: p.id.clone() })
}

/// Check the `Secrets` and `Configs` of a container spec (their shape; whether they exist is the store's
/// [`ClusterState::check_references`]): swarmkit's `validateSecretRefsSpec` / `validateConfigRefsSpec` with their
/// texts, and what skep adds because it would otherwise fail only when a task starts: targets that escape their
/// directory, targets that collide across secrets and configs, owners that are not numbers, modes beyond 0777, and
/// `Runtime` configs (Windows credential specs).
pub fn check_references(c: &ContainerSpec) -> Result<(), ControlError> {
    let mut targets: BTreeMap<String, (PayloadKind, &str, &str)> = BTreeMap::new();
    let refs = c.secrets.iter().map(|r| (PayloadKind::Secret, &r.secret_id, &r.secret_name, r.file.as_ref(), false));
    let refs = refs.chain(c.configs.iter().map(|r| (PayloadKind::Config, &r.config_id, &r.config_name, r.file.as_ref(), r.runtime.is_some())));
    for (kind, id, name, file, runtime) in refs {
        let noun = kind.noun();
        if id.is_empty() || name.is_empty() {
            return Err(invalid(format!("malformed {noun} reference")));
        }
        if runtime {
            if file.is_some() {
                return Err(ControlError::InvalidArgument("invalid Config: cannot specify both File and Runtime".into()));
            }
            return Err(ControlError::NotImplemented(format!(
                "config '{name}': Runtime configs (credential specs, a Windows feature) are not supported by skep"
            )));
        }
        let Some(file) = file else { return Err(invalid(format!("malformed {noun} reference, no target provided"))) };
        if file.name.is_empty() {
            return Err(invalid(format!("malformed file {noun} reference, invalid target file name provided")));
        }
        let dir = match kind {
            PayloadKind::Secret => SECRETS_DIR,
            PayloadKind::Config => CONFIGS_DIR,
        };
        let path = target_path(dir, &file.name).ok_or_else(|| {
            invalid(format!(
                "invalid target {:?} of {noun} '{name}': it may not contain '..' or control characters, nor name {dir} itself",
                file.name
            ))
        })?;
        for (what, v) in [("UID", &file.uid), ("GID", &file.gid)] {
            if !v.is_empty() && v.parse::<u32>().is_err() {
                return Err(invalid(format!("invalid {what} {v:?} of {noun} '{name}': a number is needed")));
            }
        }
        if file.mode > 0o777 {
            return Err(invalid(format!("invalid mode {:#o} of {noun} '{name}': at most 0777", file.mode)));
        }
        if let Some((k, other, other_raw)) = targets.insert(path.clone(), (kind, name, &file.name)) {
            return Err(invalid(if k == kind && other_raw == file.name {
                format!("{noun} references '{other}' and '{name}' have a conflicting target: '{}'", file.name)
            } else {
                format!("{} '{other}' and {noun} '{name}' have a conflicting target: '{path}'", k.noun())
            }));
        }
    }
    Ok(())
}

/// The API view: a secret without its data.
pub fn view(kind: PayloadKind, p: &Secret) -> Secret {
    let mut v = p.clone();
    if kind == PayloadKind::Secret {
        v.spec.data = None;
    }
    v
}

/// `GET /secrets/{id}` / `GET /configs/{id}`.
pub fn inspect(state: &ClusterState, kind: PayloadKind, reference: &str) -> Result<Secret, ControlError> {
    Ok(view(kind, state.resolve_payload(kind, reference)?))
}

/// `GET /secrets?filters=…` / `GET /configs?filters=…`: as swarmkit lists them, an object matches when it matches
/// any of the `names` (exact), `name` (prefix) and `id` (prefix) values given, and every `label`.
pub fn list(state: &ClusterState, kind: PayloadKind, f: &Filters) -> Result<Vec<Secret>, ControlError> {
    let keys = filter_keys(kind);
    // Docker spells this one with a capital I for secrets and configs
    f.check_keys(keys).map_err(|e| match e {
        FilterError::UnknownKey(k) => ControlError::InvalidArgument(format!("Invalid filter '{k}'")),
        other => ControlError::InvalidArgument(other.to_string()),
    })?;
    let by_name = f.has("names") || f.has("name") || f.has("id");
    Ok(state
        .payloads(kind)
        .values()
        .filter(|p| {
            !by_name
                || f.get("names").any(|n| p.spec.name == n)
                || f.get("name").any(|n| p.spec.name.starts_with(n))
                || f.get("id").any(|i| p.id.starts_with(i))
        })
        .filter(|p| f.matches_labels("label", &p.spec.labels))
        .map(|p| view(kind, p))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Command;
    use skep_api::docker::Driver;

    fn spec(name: &str, data: &[u8]) -> SecretSpec {
        SecretSpec { name: name.into(), data: Some(data.to_vec()), ..Default::default() }
    }

    fn apply(st: &mut ClusterState, op: Op) -> Result<(), crate::store::StoreError> {
        let ix = st.index + 1;
        st.apply(ix, &Command { at: "t".into(), op }).map(|_| ())
    }

    #[test]
    fn create_checks_names_sizes_drivers_and_templates_with_dockers_texts() {
        let mut st = ClusterState::default();
        { let op = create(&st, PayloadKind::Secret, spec("db", b"pw"), "s1".into()).unwrap(); apply(&mut st, op).unwrap(); }
        let e = create(&st, PayloadKind::Secret, spec("db", b"x"), "s2".into()).unwrap_err();
        assert_eq!((e.status(), e.to_string()), (409, "rpc error: code = AlreadyExists desc = secret db already exists".into()));
        // the same name is free among configs
        assert!(create(&st, PayloadKind::Config, spec("db", b"x"), "c1".into()).is_ok());
        for bad in ["-db", "db.", "a b", &"a".repeat(65)] {
            let e = create(&st, PayloadKind::Secret, spec(bad, b"x"), "s3".into()).unwrap_err();
            assert!(e.to_string().contains("invalid name, only 64 [a-zA-Z0-9-_.] characters allowed"), "{bad}: {e}");
        }
        let e = create(&st, PayloadKind::Secret, spec("big", &vec![0; MAX_SECRET_SIZE]), "s3".into()).unwrap_err();
        assert_eq!(e.to_string(), "rpc error: code = InvalidArgument desc = secret data must be larger than 0 and less than 512000 bytes");
        assert!(create(&st, PayloadKind::Secret, spec("big", &vec![0; MAX_SECRET_SIZE - 1]), "s3".into()).is_ok());
        assert!(create(&st, PayloadKind::Config, spec("big", &vec![0; MAX_SECRET_SIZE]), "c3".into()).is_ok());
        let e = create(&st, PayloadKind::Config, spec("empty", b""), "c4".into()).unwrap_err();
        assert!(e.to_string().ends_with("config data must be larger than 0 and less than 1024000 bytes"), "{e}");
        let mut d = spec("ext", b"x");
        d.driver = Some(Driver { name: "vault".into(), ..Default::default() });
        assert_eq!(create(&st, PayloadKind::Secret, d, "s4".into()).unwrap_err().status(), 501);
        let mut t = spec("tpl", b"host={{.Node.Hostname}}");
        t.templating = Some(Driver { name: GOLANG.into(), ..Default::default() });
        assert!(create(&st, PayloadKind::Config, t.clone(), "c5".into()).is_ok());
        t.data = Some(b"host={{.Node.Hostname}".to_vec());
        let e = create(&st, PayloadKind::Config, t.clone(), "c5".into()).unwrap_err();
        assert!(e.to_string().contains("config tpl is not a template skep can render: template: line 1: unclosed action"), "{e}");
        t.templating = Some(Driver { name: "jinja".into(), ..Default::default() });
        assert_eq!(create(&st, PayloadKind::Config, t, "c5".into()).unwrap_err().status(), 400);
    }

    #[test]
    fn updates_change_labels_only_and_views_hide_secret_data() {
        let mut st = ClusterState::default();
        { let op = create(&st, PayloadKind::Secret, spec("db", b"pw"), "s1".into()).unwrap(); apply(&mut st, op).unwrap(); }
        let v = st.secrets["s1"].version.index;
        let mut same = spec("db", b"pw");
        same.labels.insert("a".into(), "b".into());
        { let op = update(&st, PayloadKind::Secret, "db", v, same.clone()).unwrap(); apply(&mut st, op).unwrap(); }
        assert_eq!(st.secrets["s1"].spec.labels["a"], "b");
        assert_eq!(update(&st, PayloadKind::Secret, "db", v, same.clone()).unwrap_err(), ControlError::OutOfSequence);
        let v = st.secrets["s1"].version.index;
        let e = update(&st, PayloadKind::Secret, "s1", v, spec("db", b"other")).unwrap_err();
        assert_eq!(e.to_string(), "rpc error: code = InvalidArgument desc = only updates to Labels are allowed");
        let renamed = SecretSpec { name: "db2".into(), ..Default::default() };
        assert_eq!(update(&st, PayloadKind::Secret, "s1", v, renamed).unwrap_err().status(), 400);
        let no_data = SecretSpec { name: "db".into(), ..Default::default() };
        assert!(update(&st, PayloadKind::Secret, "s1", v, no_data).is_ok());
        assert_eq!(inspect(&st, PayloadKind::Secret, "db").unwrap().spec.data, None);
        let json = serde_json::to_value(inspect(&st, PayloadKind::Secret, "s").unwrap()).unwrap();
        assert!(json["Spec"].get("Data").is_none(), "{json}");
        assert_eq!(inspect(&st, PayloadKind::Secret, "nope").unwrap_err().to_string(), "secret nope not found");
    }

    #[test]
    fn lists_or_the_name_filters_and_and_the_labels() {
        let mut st = ClusterState::default();
        for (id, name, label) in [("s1", "s1", Some("a")), ("s2", "big2", None), ("s3", "other", None)] {
            let mut s = spec(name, b"x");
            if let Some(l) = label {
                s.labels.insert(l.into(), "b".into());
            }
            { let op = create(&st, PayloadKind::Secret, s, id.into()).unwrap(); apply(&mut st, op).unwrap(); }
        }
        let names = |json: &str| {
            let f = Filters::parse(json).unwrap();
            list(&st, PayloadKind::Secret, &f).map(|v| v.into_iter().map(|s| s.spec.name).collect::<Vec<_>>())
        };
        assert_eq!(names("").unwrap(), ["s1", "big2", "other"]);
        assert_eq!(names(r#"{"names":{"s1":true},"name":{"b":true}}"#).unwrap(), ["s1", "big2"]);
        assert_eq!(names(r#"{"names":{"s":true}}"#).unwrap(), Vec::<String>::new());
        assert_eq!(names(r#"{"label":{"a":true},"name":{"b":true}}"#).unwrap(), Vec::<String>::new());
        assert_eq!(names(r#"{"label":{"a=b":true}}"#).unwrap(), ["s1"]);
        assert_eq!(names(r#"{"foo":{"x":true}}"#).unwrap_err().to_string(), "Invalid filter 'foo'");
        let f = Filters::parse(r#"{"names":{"x":true}}"#).unwrap();
        assert_eq!(list(&st, PayloadKind::Config, &f).unwrap_err().to_string(), "Invalid filter 'names'");
    }

    #[test]
    fn references_are_checked_with_dockers_texts_and_targets_never_collide() {
        let check = |json: serde_json::Value| {
            let c: ContainerSpec = serde_json::from_value(json).unwrap();
            check_references(&c).map_err(|e| (e.status(), e.to_string()))
        };
        let file = |name: &str| serde_json::json!({"Name": name, "UID": "0", "GID": "0", "Mode": 292});
        let s = |name: &str, target: &str| serde_json::json!({"File": file(target), "SecretID": format!("id-{name}"), "SecretName": name});
        let c = |name: &str, target: &str| serde_json::json!({"File": file(target), "ConfigID": format!("id-{name}"), "ConfigName": name});
        assert!(check(serde_json::json!({"Secrets": [s("a", "a"), s("b", "/etc/b")], "Configs": [c("c", "c"), c("d", "/run/secrets/d")]})).is_ok());
        let e = check(serde_json::json!({"Secrets": [s("a", "x"), s("b", "x")]})).unwrap_err();
        assert_eq!(e, (400, "rpc error: code = InvalidArgument desc = secret references 'a' and 'b' have a conflicting target: 'x'".into()));
        let e = check(serde_json::json!({"Secrets": [s("a", "x")], "Configs": [c("b", "/run/secrets/x")]})).unwrap_err();
        assert!(e.1.contains("secret 'a' and config 'b' have a conflicting target: '/run/secrets/x'"), "{e:?}");
        let e = check(serde_json::json!({"Secrets": [{"SecretID": "i", "SecretName": "a"}]})).unwrap_err();
        assert!(e.1.ends_with("malformed secret reference, no target provided"), "{e:?}");
        let e = check(serde_json::json!({"Secrets": [{"File": file("x"), "SecretName": "a"}]})).unwrap_err();
        assert!(e.1.ends_with("malformed secret reference"), "{e:?}");
        let e = check(serde_json::json!({"Configs": [{"File": file(""), "ConfigID": "i", "ConfigName": "a"}]})).unwrap_err();
        assert!(e.1.ends_with("malformed file config reference, invalid target file name provided"), "{e:?}");
        assert_eq!(check(serde_json::json!({"Configs": [{"Runtime": {}, "ConfigID": "i", "ConfigName": "a"}]})).unwrap_err().0, 501);
        let e = check(serde_json::json!({"Configs": [{"Runtime": {}, "File": file("x"), "ConfigID": "i", "ConfigName": "a"}]})).unwrap_err();
        assert_eq!(e, (400, "invalid Config: cannot specify both File and Runtime".into()));
        assert!(check(serde_json::json!({"Secrets": [s("a", "../../etc/passwd")]})).unwrap_err().1.contains("invalid target"));
        let mut bad_uid = s("a", "a");
        bad_uid["File"]["UID"] = "root".into();
        assert!(check(serde_json::json!({"Secrets": [bad_uid]})).unwrap_err().1.contains("invalid UID \"root\""));
        let mut bad_mode = s("a", "a");
        bad_mode["File"]["Mode"] = 0o4755.into();
        assert!(check(serde_json::json!({"Secrets": [bad_mode]})).unwrap_err().1.contains("invalid mode"));
    }

    #[test]
    fn a_payload_in_use_cannot_be_removed_even_when_the_service_came_after_the_check() {
        let mut st = ClusterState::default();
        { let op = create(&st, PayloadKind::Secret, spec("db", b"pw"), "s1".into()).unwrap(); apply(&mut st, op).unwrap(); }
        let rm = remove(&st, PayloadKind::Secret, "db").unwrap();
        let svc: skep_api::docker::ServiceSpec = serde_json::from_value(serde_json::json!({
            "Name": "web", "TaskTemplate": {"ContainerSpec": {"Image": "x", "Secrets": [
                {"File": {"Name": "db", "UID": "0", "GID": "0", "Mode": 292}, "SecretID": "s1", "SecretName": "db"}]}}
        }))
        .unwrap();
        { let op = crate::control::services::create(&st, svc, "w1".into()).unwrap(); apply(&mut st, op).unwrap(); }
        let e = apply(&mut st, rm).unwrap_err();
        assert_eq!(e.to_string(), "rpc error: code = InvalidArgument desc = secret 'db' is in use by the following service: web");
        let e = remove(&st, PayloadKind::Secret, "s1").unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(st.secrets.contains_key("s1"));
    }
}
