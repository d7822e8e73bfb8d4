use super::*;
use crate::docker::decode;

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

fn spec_with(example: &str) -> ServiceSpec {
    let mut body = serde_json::json!({"Name": "f", "TaskTemplate": {"ContainerSpec": {"Image": "sleep"}}});
    merge(&mut body, &serde_json::from_str(example).unwrap());
    decode::from_slice(&serde_json::to_vec(&body).unwrap()).unwrap()
}

#[test]
fn each_example_sets_its_field_and_no_refused_other() {
    let base = spec_with("{}");
    assert!(refused(&base).is_none());
    for f in SERVICE_SPEC_FIELDS {
        let spec = spec_with(f.example);
        assert!((f.set)(&spec), "{}: its example does not set it", f.path);
        for other in SERVICE_SPEC_FIELDS.iter().filter(|o| o.path != f.path && o.refused_everywhere()) {
            assert!(!(other.set)(&spec), "{}: its example also sets {}", f.path, other.path);
        }
        if f.refused_everywhere() {
            assert_eq!(refused(&spec).map(|r| r.path), Some(f.path));
        }
    }
}

#[test]
fn paths_are_unique_and_spelled_as_in_their_examples() {
    let mut seen = std::collections::BTreeSet::new();
    for f in SERVICE_SPEC_FIELDS {
        assert!(seen.insert(f.path), "{} twice", f.path);
        let last = f.path.rsplit('.').next().unwrap();
        assert!(f.example.contains(&format!("\"{last}\"")), "{}: example {}", f.path, f.example);
    }
}

#[test]
fn zero_and_default_values_set_nothing() {
    // what clients send when they mean "nothing": the docker CLI, Go's zero values, Docker's own defaults read back
    let zeros = r#"{"Name":"z","Labels":null,"TaskTemplate":{"ContainerSpec":{"Image":"sleep","Init":false,"TTY":false,
        "ReadOnly":false,"OpenStdin":false,"Mounts":[],"Secrets":null,"Configs":[],"Hosts":[],"Groups":[],"Sysctls":{},
        "CapabilityAdd":[],"CapabilityDrop":null,"Ulimits":[],"DNSConfig":{},"Isolation":"default","OomScoreAdj":0,
        "Privileges":{"CredentialSpec":null,"SELinuxContext":null,"NoNewPrivileges":false},"Healthcheck":{}},
        "Resources":{"Limits":{"NanoCPUs":0,"MemoryBytes":0,"Pids":0},"Reservations":{"GenericResources":[]}},
        "LogDriver":{},"Runtime":"container","PluginSpec":null},
        "UpdateConfig":{"Parallelism":1,"FailureAction":"pause","Monitor":5000000000,"MaxFailureRatio":0,"Order":"stop-first"},
        "RollbackConfig":{"Parallelism":0,"FailureAction":"continue","Monitor":0,"MaxFailureRatio":0,"Order":""}}"#;
    let spec: ServiceSpec = decode::from_slice(zeros.as_bytes()).unwrap();
    assert_eq!(refused(&spec).map(|f| f.path), None);
    for engine in [EngineKind::Process, EngineKind::Docker] {
        assert_eq!(unsupported_by(engine, &spec.task_template).map(|f| f.path), None);
    }
}

#[test]
fn engines_differ_only_where_the_table_says() {
    let spec = spec_with(r#"{"TaskTemplate":{"ContainerSpec":{"Hostname":"h","TTY":true}}}"#);
    assert!(refused(&spec).is_none(), "the docker engine carries both out");
    assert_eq!(unsupported_by(EngineKind::Process, &spec.task_template).map(|f| f.path), Some("TaskTemplate.ContainerSpec.TTY"));
    assert_eq!(unsupported_by(EngineKind::Docker, &spec.task_template).map(|f| f.path), None);
}

#[test]
fn the_docs_table_is_generated_from_this_one() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/service-spec-fields.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let (begin, end) = ("<!-- table: generated from api/src/docker/fields.rs -->\n", "<!-- end of table -->");
    let table = doc.split_once(begin).and_then(|(_, rest)| rest.split_once(end)).map(|(t, _)| t);
    assert_eq!(
        table,
        Some(markdown().as_str()),
        "docs/service-spec-fields.md is out of date: put this between its markers:\n{}",
        markdown()
    );
}

/// `SKEP_WRITE_FIELD_DOCS=1 cargo test -p skep-api write_the_docs_table` rewrites the table in
/// docs/service-spec-fields.md after a change to the table here.
#[test]
fn write_the_docs_table() {
    if std::env::var_os("SKEP_WRITE_FIELD_DOCS").is_none() {
        return;
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/service-spec-fields.md");
    let doc = std::fs::read_to_string(path).unwrap();
    let (begin, end) = ("<!-- table: generated from api/src/docker/fields.rs -->\n", "<!-- end of table -->");
    let (head, rest) = doc.split_once(begin).unwrap();
    let (_, tail) = rest.split_once(end).unwrap();
    std::fs::write(path, format!("{head}{begin}{}{end}{tail}", markdown())).unwrap();
}
