//! Request bodies are read as Docker reads them, and specs read back as Docker shows them: every case of
//! `tests/fixtures/docker-api-decoding/cases.json` (the bodies the docker CLI, the Go client's types and the Python
//! SDK send for service create/update and swarm init/update, plus one body per decoding quirk and per refusal) is
//! sent to a one-node skep swarm, and the answer is compared field by field with what this machine's Docker engine
//! (20.10, API 1.41) answered to the same body, recorded in `docker-answers.json` by `record.py` beside it. Then
//! every field of the spec-field table (`skep_api::docker::fields`) goes through the API: refused fields are
//! answered 501 naming the field, honoured ones 201.
//!
//! Normalisations (what legitimately differs; everything else must be equal):
//! - Only `Spec` / `PreviousSpec` are compared, never IDs, versions, timestamps or `Endpoint` (allocation).
//! - A service created without a name: Docker picks a random `adjective_name`, skep `svc-<ID prefix>`; only
//!   "not empty" is compared.
//! - skep speaks API 1.50 shapes, Docker 20.10 speaks 1.41: `Privileges.NoNewPrivileges: false` (added in 1.46) is
//!   dropped from skep's answer.
//! - `swarm init`: the listen and advertise addresses are the test host's; the dispatcher's default heartbeat is
//!   skep's 1 s where Docker's is 5 s (skep's faster defaults, docs/design/architecture.md).

use anyhow::{Context as _, Result};
use serde_json::{json, Value};
use skep_api::docker::fields::SERVICE_SPEC_FIELDS;
use skep_tests::services::ApiResponse;
use skep_tests::{require_root_and_netns, Cluster};

const CASES: &str = include_str!("../fixtures/docker-api-decoding/cases.json");
const ANSWERS: &str = include_str!("../fixtures/docker-api-decoding/docker-answers.json");

/// Every difference between `want` (Docker) and `got` (skep), as `path: want != got` lines.
fn diff(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for k in w.keys().chain(g.keys().filter(|k| !w.contains_key(*k))) {
                let (a, b) = (w.get(k).unwrap_or(&Value::Null), g.get(k).unwrap_or(&Value::Null));
                if !w.contains_key(k) || !g.contains_key(k) {
                    if a != b {
                        out.push(format!("{path}.{k}: Docker {a} != skep {b}"));
                    }
                } else {
                    diff(&format!("{path}.{k}"), a, b, out);
                }
            }
        }
        (Value::Array(w), Value::Array(g)) if w.len() == g.len() => {
            for (i, (a, b)) in w.iter().zip(g).enumerate() {
                diff(&format!("{path}[{i}]"), a, b, out);
            }
        }
        (a, b) if a == b => {}
        (a, b) => out.push(format!("{path}: Docker {a} != skep {b}")),
    }
}

/// skep's spec with the documented normalisations applied.
fn normalised(mut spec: Value) -> Value {
    if let Some(p) = spec.pointer_mut("/TaskTemplate/ContainerSpec/Privileges").and_then(Value::as_object_mut) {
        if p.get("NoNewPrivileges") == Some(&json!(false)) {
            p.remove("NoNewPrivileges");
        }
    }
    spec
}

fn by_name<'a>(list: &'a Value, name: &str) -> Result<&'a Value> {
    list.as_array()
        .and_then(|a| a.iter().find(|c| c["name"] == name))
        .with_context(|| format!("no recorded answer for {name}"))
}

fn service_spec(c: &Cluster, id: &str, defaults: bool) -> Result<Value> {
    let v = c.api(0, "GET", &format!("/services/{id}?insertDefaults={defaults}"), None)?.json()?;
    Ok(v)
}

fn compare_spec(case: &str, what: &str, docker: &Value, skep: Value, diffs: &mut Vec<String>) {
    let mut found = Vec::new();
    let skep = normalised(skep);
    if case == "accept_empty_name_create" || case == "accept_empty_name" {
        let name = skep["Name"].as_str().unwrap_or("");
        if name.is_empty() {
            found.push("Name: empty".to_string());
        }
        let (mut d, mut s) = (docker.clone(), skep.clone());
        d["Name"] = json!("");
        s["Name"] = json!("");
        diff("", &d, &s, &mut found);
    } else {
        diff("", docker, &skep, &mut found);
    }
    diffs.extend(found.into_iter().map(|d| format!("{case} ({what}){d}")));
}

fn compare_refusal(case: &str, docker: &Value, r: &ApiResponse, diffs: &mut Vec<String>) {
    let (status, message) = (docker["status"].as_u64().unwrap_or(0), docker["message"].as_str().unwrap_or(""));
    if u64::from(r.status) != status || (status >= 400 && r.message() != message) {
        diffs.push(format!("{case}: Docker {status} {message:?} != skep {} {:?}", r.status, r.message()));
    }
}

#[test]
fn service_specs_read_back_as_docker_shows_them() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let cases: Value = serde_json::from_str(CASES)?;
    let answers: Value = serde_json::from_str(ANSWERS)?;
    let mut c = Cluster::new(1)?;
    c.form(1, 0)?;
    let mut diffs = Vec::new();
    let mut checked = 0;
    for case in cases["services"].as_array().context("services")? {
        let name = case["name"].as_str().context("name")?;
        let docker = by_name(&answers["services"], name)?;
        let r = c.api(0, "POST", "/services/create", case["create"].as_str())?;
        compare_refusal(name, docker, &r, &mut diffs);
        if r.status != 201 {
            continue;
        }
        let id = r.json()?["ID"].as_str().context("ID")?.to_string();
        compare_spec(name, "inspect", &docker["spec"], service_spec(&c, &id, false)?["Spec"].clone(), &mut diffs);
        compare_spec(name, "insertDefaults", &docker["spec_defaults"], service_spec(&c, &id, true)?["Spec"].clone(), &mut diffs);
        if let Some(update) = case["update"].as_str() {
            let version = service_spec(&c, &id, false)?["Version"]["Index"].as_u64().context("version")?;
            let r = c.api(0, "POST", &format!("/services/{id}/update?version={version}"), Some(update))?;
            let status = docker["update_status"].as_u64().unwrap_or(0);
            if u64::from(r.status) != status {
                diffs.push(format!("{name} (update): Docker {status} != skep {} {}", r.status, r.message()));
            }
            let after = service_spec(&c, &id, false)?;
            compare_spec(name, "after update", &docker["updated_spec"], after["Spec"].clone(), &mut diffs);
            compare_spec(name, "previous spec", &docker["updated_previous_spec"], after["PreviousSpec"].clone(), &mut diffs);
        }
        let r = c.api(0, "DELETE", &format!("/services/{id}"), None)?;
        anyhow::ensure!(r.status == 200, "removing {name}: {} {}", r.status, r.body);
        checked += 1;
    }
    eprintln!("{checked} services created and compared; {} cases in all", cases["services"].as_array().map_or(0, Vec::len));
    assert!(diffs.is_empty(), "skep differs from Docker:\n{}", diffs.join("\n"));
    c.pass();
    Ok(())
}

#[test]
fn swarm_specs_read_back_as_docker_shows_them() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let cases: Value = serde_json::from_str(CASES)?;
    let answers: Value = serde_json::from_str(ANSWERS)?;
    let groups = cases["swarm"].as_array().context("swarm")?;
    let mut c = Cluster::new(groups.len())?;
    let mut diffs = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        let name = group["name"].as_str().context("name")?;
        let docker = by_name(&answers["swarm"], name)?;
        c.start(i)?;
        let mut init: Value = serde_json::from_str(group["init"].as_str().context("init")?)?;
        let (ip, addr) = (c.host(i).ip.clone(), c.host(i).addr());
        init["ListenAddr"] = json!(addr);
        init["AdvertiseAddr"] = json!(ip);
        let r = c.api(i, "POST", "/swarm/init", Some(&init.to_string()))?;
        anyhow::ensure!(r.status == 200, "{name}: swarm init answered {} {}", r.status, r.body);
        let mut want = docker["init_spec"].clone();
        want["Dispatcher"]["HeartbeatPeriod"] = json!(skep_api::docker::defaults::HEARTBEAT_PERIOD_NS);
        let got = c.api(i, "GET", "/swarm", None)?.json()?["Spec"].clone();
        let mut found = Vec::new();
        diff("", &want, &got, &mut found);
        diffs.extend(found.into_iter().map(|d| format!("{name} (init){d}")));
        for update in group["updates"].as_array().context("updates")? {
            let uname = update["name"].as_str().context("name")?;
            let recorded = by_name(&docker["updates"], uname)?;
            let version = c.api(i, "GET", "/swarm", None)?.json()?["Version"]["Index"].as_u64().context("version")?;
            let r = c.api(i, "POST", &format!("/swarm/update?version={version}"), update["body"].as_str())?;
            compare_refusal(uname, recorded, &r, &mut diffs);
            let got = c.api(i, "GET", "/swarm", None)?.json()?["Spec"].clone();
            let mut found = Vec::new();
            diff("", &recorded["spec"], &got, &mut found);
            diffs.extend(found.into_iter().map(|d| format!("{uname}{d}")));
        }
    }
    assert!(diffs.is_empty(), "skep differs from Docker:\n{}", diffs.join("\n"));
    c.pass();
    Ok(())
}

/// `base` with `patch` merged in, object by object.
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[test]
fn every_spec_field_is_honoured_or_refused_by_name() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    c.form(1, 0)?;
    let r = c.api(0, "POST", "/networks/create", Some(r#"{"Name":"fieldsnet","Driver":"overlay"}"#))?;
    anyhow::ensure!(r.status == 201, "network create: {} {}", r.status, r.body);
    // the secret and config the examples of Secrets and Configs name (a reference must name an existing one)
    let mut ids = std::collections::BTreeMap::new();
    for (kind, name) in [("secrets", "s"), ("configs", "c")] {
        let r = c.api(0, "POST", &format!("/{kind}/create"), Some(&json!({"Name": name, "Data": "eA=="}).to_string()))?;
        anyhow::ensure!(r.status == 201, "{kind} create: {} {}", r.status, r.body);
        ids.insert(kind, r.json()?["ID"].as_str().context("ID")?.to_string());
    }
    let mut wrong = Vec::new();
    for (i, f) in SERVICE_SPEC_FIELDS.iter().enumerate() {
        let mut body = json!({"Name": format!("field{i}"), "TaskTemplate": {"ContainerSpec": {"Image": "sleep", "Args": ["1000"]}}});
        merge(&mut body, &serde_json::from_str(f.example)?);
        let cs = &mut body["TaskTemplate"]["ContainerSpec"];
        for (key, id_key, kind) in [("Secrets", "SecretID", "secrets"), ("Configs", "ConfigID", "configs")] {
            if let Some(refs) = cs.get_mut(key).and_then(|v| v.as_array_mut()) {
                for r in refs {
                    r[id_key] = json!(ids[kind]);
                }
            }
        }
        let r = c.api(0, "POST", "/services/create", Some(&body.to_string()))?;
        if f.refused_everywhere() {
            if r.status != 501 || !r.message().contains(f.path) {
                wrong.push(format!("{}: refused by the table, answered {} {}", f.path, r.status, r.message()));
            }
            continue;
        }
        if r.status != 201 {
            wrong.push(format!("{}: honoured by the table, answered {} {}", f.path, r.status, r.message()));
            continue;
        }
        let id = r.json()?["ID"].as_str().context("ID")?.to_string();
        // an update that sets the field is judged the same way
        let svc = c.api(0, "GET", &format!("/services/{id}"), None)?.json()?;
        let version = svc["Version"]["Index"].as_u64().context("version")?;
        let r = c.api(0, "POST", &format!("/services/{id}/update?version={version}"), Some(&svc["Spec"].to_string()))?;
        if r.status != 200 {
            wrong.push(format!("{}: update with it answered {} {}", f.path, r.status, r.message()));
        }
        let r = c.api(0, "DELETE", &format!("/services/{id}"), None)?;
        anyhow::ensure!(r.status == 200, "removing the service for {}: {} {}", f.path, r.status, r.body);
    }
    // a refused field is refused on update as well
    let r = c.api(0, "POST", "/services/create", Some(r#"{"Name":"plain","TaskTemplate":{"ContainerSpec":{"Image":"sleep","Args":["1000"]}}}"#))?;
    let id = r.json()?["ID"].as_str().context("ID")?.to_string();
    let svc = c.api(0, "GET", &format!("/services/{id}"), None)?.json()?;
    let mut spec = svc["Spec"].clone();
    spec["TaskTemplate"]["ContainerSpec"]["Init"] = json!(true);
    let version = svc["Version"]["Index"].as_u64().context("version")?;
    let r = c.api(0, "POST", &format!("/services/{id}/update?version={version}"), Some(&spec.to_string()))?;
    if r.status != 501 || !r.message().contains("TaskTemplate.ContainerSpec.Init") {
        wrong.push(format!("update setting Init: answered {} {}", r.status, r.message()));
    }
    eprintln!("{} fields walked through the API", SERVICE_SPEC_FIELDS.len());
    assert!(wrong.is_empty(), "the API and the field table disagree:\n{}", wrong.join("\n"));
    c.pass();
    Ok(())
}
