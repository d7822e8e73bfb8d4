//! `stack` commands against the fake daemon: the requests docker's CLI makes, what they carry, and the refusals.

use super::super::fake_daemon::{run_cli, FakeDaemon};
use super::*;
use serde_json::json;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

fn ok(v: Value) -> (u16, String) {
    (200, v.to_string())
}

fn not_found() -> (u16, String) {
    (404, json!({"message": "not found"}).to_string())
}

fn env(k: &str) -> Option<String> {
    match k {
        "TAG" => Some("1.25".into()),
        "FROM_ENV" => Some("yes".into()),
        _ => None,
    }
}

/// A temp dir with `files` written in it.
fn dir_with(files: &[(&str, &str)]) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let d = std::env::temp_dir().join(format!("skep-stack-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (name, text) in files {
        std::fs::write(d.join(name), text).unwrap();
    }
    d
}

const COMPOSE: &str = r#"
version: "3.8"
services:
  web:
    image: nginx:${TAG:-alpine}
    command: nginx -g "daemon off;"
    environment:
      A: "1"
      FROM_ENV:
    labels: [team=web]
    ports:
      - "8080:80"
      - target: 443
        published: 8443
        mode: host
    networks:
      front:
        aliases: [www]
    volumes:
      - data:/data
      - ./site:/site:ro
      - type: tmpfs
        target: /scratch
        tmpfs:
          size: 1m
          mode: 01777
    secrets:
      - source: pw
        target: db_pw
        uid: "1000"
        mode: 0400
    configs:
      - conf
      - source: conf
        target: /etc/conf2
        mode: 0o440
    healthcheck:
      test: curl -f localhost
      interval: 10s
      retries: 3
    stop_grace_period: 1m30s
    deploy:
      replicas: 2
      labels: {tier: front}
      resources:
        limits: {cpus: "0.5", memory: 64M}
      restart_policy: {condition: on-failure, max_attempts: 3}
      update_config: {parallelism: 2, delay: 5s, order: start-first}
      placement: {constraints: [node.role==worker], max_replicas_per_node: 1}
  worker:
    image: busybox
    entrypoint: ["sleep"]
    command: ["3600"]
    deploy: {mode: global}
networks:
  front:
    driver_opts: {encrypted: ""}
volumes:
  data:
secrets:
  pw:
    file: ./pw.txt
configs:
  conf:
    external: true
"#;

fn plan_of(yaml: &str, dir: &std::path::Path) -> Result<convert::Plan, String> {
    let l = compose::load_texts(&[("f".into(), yaml.into())], &env).map_err(|e| e.to_string())?;
    convert::convert(&l.doc, "st", dir, &env).map_err(|e| e.to_string())
}

#[test]
fn a_compose_file_converts_as_docker_converts_it() {
    let dir = dir_with(&[("pw.txt", "s3cret")]);
    let plan = plan_of(COMPOSE, &dir).unwrap();
    assert_eq!(plan.networks.keys().collect::<Vec<_>>(), ["st_default", "st_front"]);
    assert_eq!(plan.networks["st_front"]["Driver"], "overlay");
    assert_eq!(plan.networks["st_front"]["Options"], json!({"encrypted": ""}));
    assert_eq!(plan.networks["st_default"]["Labels"], json!({LABEL_NAMESPACE: "st"}));
    assert!(plan.external_networks.is_empty());
    assert_eq!(plan.secrets.len(), 1);
    assert_eq!((plan.secrets[0].name.as_str(), plan.secrets[0].data.as_deref()), ("st_pw", Some(&b"s3cret"[..])));
    assert!(plan.configs.is_empty(), "external configs are not created");

    let web = &plan.services["st_web"];
    let spec = serde_json::to_value(&web.spec).unwrap();
    assert_eq!(spec["Name"], "st_web");
    assert_eq!(spec["Labels"], json!({LABEL_NAMESPACE: "st", "com.docker.stack.image": "nginx:1.25", "tier": "front"}));
    let cs = &spec["TaskTemplate"]["ContainerSpec"];
    assert_eq!(cs["Image"], "nginx:1.25");
    assert_eq!(cs["Args"], json!(["nginx", "-g", "daemon off;"]));
    assert_eq!(cs["Env"], json!(["A=1", "FROM_ENV=yes"]));
    assert_eq!(cs["Labels"], json!({LABEL_NAMESPACE: "st", "team": "web"}));
    assert_eq!(cs["StopGracePeriod"], 90_000_000_000i64);
    let want = json!({"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 10_000_000_000i64, "Retries": 3});
    assert_eq!(cs["Healthcheck"], want);
    assert_eq!(cs["Mounts"][0], json!({"Type": "volume", "Source": "st_data", "Target": "/data",
                                       "VolumeOptions": {"Labels": {LABEL_NAMESPACE: "st"}}}));
    let site = dir.join("site");
    let want = json!({"Type": "bind", "Source": site.to_string_lossy(), "Target": "/site", "ReadOnly": true});
    assert_eq!(cs["Mounts"][1], want);
    let want = json!({"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 0o1777}});
    assert_eq!(cs["Mounts"][2], want);
    let tt = &spec["TaskTemplate"];
    assert_eq!(tt["Networks"], json!([{"Target": "st_front", "Aliases": ["www", "web"]}]));
    assert_eq!(tt["Resources"]["Limits"], json!({"NanoCPUs": 500_000_000, "MemoryBytes": 67_108_864}));
    assert_eq!(tt["RestartPolicy"], json!({"Condition": "on-failure", "MaxAttempts": 3}));
    assert_eq!(tt["Placement"]["Constraints"], json!(["node.role==worker"]));
    assert_eq!(tt["Placement"]["MaxReplicas"], 1);
    assert_eq!(spec["Mode"], json!({"Replicated": {"Replicas": 2}}));
    assert_eq!(spec["UpdateConfig"]["Parallelism"], 2);
    assert_eq!(spec["UpdateConfig"]["Order"], "start-first");
    let ports = &spec["EndpointSpec"]["Ports"];
    assert_eq!((ports[0]["TargetPort"].as_u64(), ports[0]["PublishedPort"].as_u64()), (Some(80), Some(8080)));
    assert_eq!((ports[1]["TargetPort"].as_u64(), ports[1]["PublishMode"].as_str()), (Some(443), Some("host")));
    assert_eq!(web.secrets.len(), 1);
    assert_eq!((web.secrets[0].source.as_str(), web.secrets[0].file.name.as_str()), ("st_pw", "db_pw"));
    assert_eq!((web.secrets[0].file.uid.as_str(), web.secrets[0].file.gid.as_str()), ("1000", "0"));
    assert_eq!(web.secrets[0].file.mode, 0o400);
    assert_eq!((web.configs[0].source.as_str(), web.configs[0].file.name.as_str()), ("conf", "conf"));
    assert_eq!((web.configs[1].file.name.as_str(), web.configs[1].file.mode), ("/etc/conf2", 0o440));

    let caps = plan_of("services:\n  w:\n    image: x\n    cap_add: [net_admin, CAP_SYS_TIME, NET_ADMIN]\n    \
                        cap_drop: [sys_time, mknod]\n", &dir).unwrap();
    let cs = serde_json::to_value(&caps.services["st_w"].spec).unwrap()["TaskTemplate"]["ContainerSpec"].clone();
    assert_eq!(cs["CapabilityAdd"], json!(["CAP_NET_ADMIN", "CAP_SYS_TIME"]));
    assert_eq!(cs["CapabilityDrop"], json!(["CAP_MKNOD"]));
    let worker = serde_json::to_value(&plan.services["st_worker"].spec).unwrap();
    assert_eq!(worker["Mode"], json!({"Global": {}}));
    assert_eq!(worker["TaskTemplate"]["ContainerSpec"]["Command"], json!(["sleep"]));
    assert_eq!(worker["TaskTemplate"]["Networks"], json!([{"Target": "st_default", "Aliases": ["worker"]}]));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn keys_skep_does_not_carry_out_are_refused_by_path() {
    let dir = dir_with(&[]);
    let e = |y: &str| plan_of(y, &dir).unwrap_err();
    assert_eq!(e("services:\n  web:\n    image: x\n    init: true\n"),
               "services.web.init: not supported by skep stack deploy");
    assert_eq!(e("services:\n  web:\n    image: x\n    deploy:\n      resources:\n        reservations:\n          \
                  devices: []\n"),
               "services.web.deploy.resources.reservations.devices: not supported by skep stack deploy");
    assert_eq!(e("services:\n  web:\n    image: x\nname: p\n"), "name: not supported by skep stack deploy");
    assert_eq!(e("services:\n  web:\n    image: x\n    networks: [back]\n"),
               "service \"web\" references network \"back\", which is not declared");
    assert_eq!(e("services:\n  web:\n    image: x\n    secrets: [nope]\n"), "undefined secret \"nope\"");
    assert_eq!(e("services:\n  web:\n    image: x\n    volumes: [\"nope:/x\"]\n"), "undefined volume \"nope\"");
    assert_eq!(e("services:\n  web:\n    image: x\n    ports: [\"127.0.0.1:80:80\"]\n"),
               "services.web.ports[0]: a host IP in a port (127.0.0.1:80:80) is not supported by skep stack deploy");
    assert_eq!(e("services:\n  web:\n    image: x\n    deploy: {mode: global, replicas: 2}\n"),
               "replicas can only be used with replicated or replicated-job mode");
    assert_eq!(e("services:\n  web:\n    command: x\n"), "services.web.image: a service needs an image");
    assert!(e("services:\n  web:\n    image: x\n    deploy: {mode: sometimes}\n").starts_with("Unknown mode"));
    assert_eq!(e("services:\n  web:\n    image: x\nsecrets:\n  s:\n    external: true\n    file: ./f\n"),
               "secrets.s: external cannot be combined with file (the object is not created)");
    assert_eq!(e("services:\n  web:\n    image: x\n    volumes:\n      - type: volume\n        target: /x\n        \
                  bind: {propagation: rshared}\n"),
               "services.web.volumes[0].bind: options for bind mounts on a volume mount");
    // x- extension keys are allowed anywhere docker allows them
    assert!(plan_of("x-a: 1\nservices:\n  web:\n    image: x\n    x-b: 2\n", &dir).is_ok());
    let _ = std::fs::remove_dir_all(dir);
}

fn info(manager: bool) -> Value {
    let swarm = json!({"NodeID": "n1", "LocalNodeState": "active", "ControlAvailable": manager});
    json!({"ID": "d1", "Name": "n1", "Swarm": swarm})
}

fn args(files: Vec<String>) -> deploy::DeployArgs {
    deploy::DeployArgs {
        compose_file: files,
        detach: Some(true),
        resolve_image: "never".into(),
        stack: "st".into(),
        ..Default::default()
    }
}

const SMALL: &str = "services:\n  web:\n    image: nginx\n    ports: [\"8080:80\"]\n    secrets: [pw]\n\
                     secrets:\n  pw:\n    file: pw.txt\n";

#[tokio::test]
async fn deploy_makes_the_requests_docker_makes() {
    let dir = dir_with(&[("stack.yml", SMALL), ("pw.txt", "pw")]);
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/info") => ok(info(true)),
        ("GET", p) if p.starts_with("/networks?") => ok(json!([])),
        ("POST", "/networks/create") => ok(json!({"Id": "net1"})),
        ("GET", "/secrets/st_pw") => not_found(),
        ("POST", "/secrets/create") => ok(json!({"ID": "sec1"})),
        ("GET", p) if p.starts_with("/secrets?") => {
            ok(json!([{"ID": "sec1", "Version": {"Index": 3}, "Spec": {"Name": "st_pw", "Labels": {}}}]))
        }
        ("GET", p) if p.starts_with("/services?") => ok(json!([])),
        ("POST", "/services/create") => ok(json!({"ID": "svc1"})),
        _ => not_found(),
    });
    let mut out = Vec::new();
    let file = dir.join("stack.yml").to_string_lossy().to_string();
    deploy::deploy(&d.client(), args(vec![file]), &mut out, &env).await.unwrap();
    let want = "Creating network st_default\nCreating secret st_pw\nCreating service st_web\n";
    assert_eq!(String::from_utf8(out).unwrap(), want);
    let label = "%7B%22label%22%3A%7B%22com.docker.stack.namespace%3Dst%22%3Atrue%7D%7D";
    assert_eq!(d.requests(), [
        "GET /info".to_string(),
        format!("GET /networks?filters={label}"),
        "POST /networks/create".into(),
        "GET /secrets/st_pw".into(),
        "POST /secrets/create".into(),
        "GET /secrets?filters=%7B%22name%22%3A%7B%22st_pw%22%3Atrue%7D%7D".into(),
        format!("GET /services?filters={label}"),
        "POST /services/create".into(),
    ]);
    let net = d.body_of("POST /networks/create");
    assert_eq!((net["Name"].as_str(), net["Driver"].as_str()), (Some("st_default"), Some("overlay")));
    let sec = d.body_of("POST /secrets/create");
    assert_eq!(sec, json!({"Name": "st_pw", "Labels": {LABEL_NAMESPACE: "st"}, "Data": "cHc="}));
    let svc = d.body_of("POST /services/create");
    assert_eq!(svc["TaskTemplate"]["ContainerSpec"]["Image"], "nginx:latest");
    assert_eq!(svc["Labels"]["com.docker.stack.image"], "nginx");
    assert_eq!(svc["TaskTemplate"]["ContainerSpec"]["Secrets"],
               json!([{"File": {"Name": "pw", "UID": "0", "GID": "0", "Mode": 292}, "SecretID": "sec1",
                       "SecretName": "st_pw"}]));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn redeploy_updates_in_place_keeping_the_pinned_image_and_prunes() {
    let dir = dir_with(&[("stack.yml", "services:\n  web:\n    image: nginx\n    environment: [V=2]\n")]);
    let existing = json!([
        {"ID": "svc1", "Version": {"Index": 7}, "Spec": {"Name": "st_web",
         "Labels": {LABEL_NAMESPACE: "st", "com.docker.stack.image": "nginx"},
         "TaskTemplate": {"ContainerSpec": {"Image": "nginx:latest@sha256:abc"}, "ForceUpdate": 4}, "Mode": {}}},
        {"ID": "svc2", "Version": {"Index": 9}, "Spec": {"Name": "st_old", "Labels": {LABEL_NAMESPACE: "st"},
         "TaskTemplate": {}, "Mode": {}}},
    ]);
    let d = FakeDaemon::start(move |m, p, _| match (m, p) {
        ("GET", "/info") => ok(info(true)),
        ("GET", p) if p.starts_with("/networks?") => ok(json!([{"Id": "n", "Name": "st_default"}])),
        ("GET", p) if p.starts_with("/services?") => ok(existing.clone()),
        ("DELETE", "/services/svc2") => (200, String::new()),
        ("POST", "/services/svc1/update?version=7") => ok(json!({})),
        _ => not_found(),
    });
    let mut out = Vec::new();
    let mut a = args(vec![dir.join("stack.yml").to_string_lossy().to_string()]);
    a.prune = true;
    a.resolve_image = "changed".into();
    deploy::deploy(&d.client(), a, &mut out, &env).await.unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "Removing service st_old\nUpdating service st_web (id: svc1)\n");
    assert!(!d.requests().iter().any(|r| r.starts_with("POST /networks/create")), "{:?}", d.requests());
    let upd = d.body_of("POST /services/svc1/update");
    assert_eq!(upd["TaskTemplate"]["ContainerSpec"]["Image"], "nginx:latest@sha256:abc");
    assert_eq!(upd["TaskTemplate"]["ContainerSpec"]["Env"], json!(["V=2"]));
    assert_eq!(upd["TaskTemplate"]["ForceUpdate"], 4);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn deploy_refuses_before_any_request_and_on_a_worker() {
    let dir = dir_with(&[("stack.yml", SMALL), ("bad.yml", "services:\n  web:\n    image: x\n    ulimits: {}\n"),
                            ("pw.txt", "pw")]);
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/info") => ok(info(false)),
        _ => not_found(),
    });
    let f = |n: &str| dir.join(n).to_string_lossy().to_string();
    let e = deploy::deploy(&d.client(), args(vec![f("bad.yml")]), &mut Vec::new(), &env).await.unwrap_err();
    assert_eq!(e.to_string(), "services.web.ulimits: not supported by skep stack deploy");
    assert!(d.requests().is_empty());
    let e = deploy::deploy(&d.client(), args(vec![]), &mut Vec::new(), &env).await.unwrap_err();
    assert_eq!(e.to_string(), "Specify a Compose file (with --compose-file)");
    let mut a = args(vec![f("stack.yml")]);
    a.resolve_image = "sometimes".into();
    let e = deploy::deploy(&d.client(), a, &mut Vec::new(), &env).await.unwrap_err();
    assert_eq!(e.to_string(), "Invalid option sometimes for flag --resolve-image");
    let e = deploy::deploy(&d.client(), args(vec![f("stack.yml")]), &mut Vec::new(), &env).await.unwrap_err();
    assert!(e.to_string().starts_with("this node is not a swarm manager."), "{e}");
    let _ = std::fs::remove_dir_all(dir);
}

fn svc(id: &str, name: &str, ns: &str) -> Value {
    json!({"ID": id, "Version": {"Index": 1}, "Spec": {"Name": name, "Labels": {LABEL_NAMESPACE: ns},
           "TaskTemplate": {}, "Mode": {"Replicated": {"Replicas": 1}}}})
}

#[tokio::test]
async fn ls_counts_the_services_of_each_stack() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", p) if p.starts_with("/services?") => {
            ok(json!([svc("1", "b_x", "b"), svc("2", "a10_x", "a10"), svc("3", "b_y", "b"), svc("4", "a2_x", "a2")]))
        }
        _ => not_found(),
    });
    let (out, err) = run_cli(&d, &["stack", "ls"]).await;
    assert_eq!(err, None);
    assert_eq!(out, "NAME      SERVICES\na2        1\na10       1\nb         2\n");
    let want = json!({"label": {LABEL_NAMESPACE: true}}).to_string();
    assert_eq!(d.requests()[0], format!("GET /services{}", query(&[("filters", &want)])));
    let (out, _) = run_cli(&d, &["stack", "ls", "--format", "{{.Name}}: {{.Services}}"]).await;
    assert_eq!(out, "a2: 1\na10: 1\nb: 2\n");
}

#[tokio::test]
async fn ps_lists_the_stacks_tasks_with_the_label_filter() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", p) if p.starts_with("/tasks?") && p.contains("empty") => ok(json!([])),
        ("GET", p) if p.starts_with("/tasks?") => ok(json!([
            {"ID": "task1aaaaaaaaaaaaa", "ServiceID": "s1", "NodeID": "n1", "Slot": 1, "DesiredState": "running",
             "Status": {"State": "running", "Timestamp": "2020-01-01T00:00:00Z"},
             "Spec": {"ContainerSpec": {"Image": "nginx:latest"}}}])),
        ("GET", "/services/s1?insertDefaults=false") => ok(svc("s1", "st_web", "st")),
        ("GET", "/nodes/n1") => ok(json!({"ID": "n1", "Version": {"Index": 1},
            "Spec": {"Labels": {}, "Role": "worker", "Availability": "active"},
            "Description": {"Hostname": "node-1"}, "Status": {"State": "ready"}})),
        _ => not_found(),
    });
    let args = ["stack", "ps", "st", "-f", "desired-state=running", "--format", "{{.Name}} {{.Node}}"];
    let (out, err) = run_cli(&d, &args).await;
    assert_eq!(err, None);
    assert_eq!(out, "st_web.1 node-1\n");
    let want = json!({"desired-state": {"running": true}, "label": {"com.docker.stack.namespace=st": true}});
    let want = want.to_string();
    assert_eq!(d.requests()[0], format!("GET /tasks{}", query(&[("filters", &want)])));
    let (_, err) = run_cli(&d, &["stack", "ps", "empty"]).await;
    assert_eq!(err.as_deref(), Some("nothing found in stack: empty"));
}

#[tokio::test]
async fn rm_removes_services_then_secrets_configs_and_networks() {
    let of_st = |p: &str, kind: &str| p.starts_with(kind) && p.contains("%3Dst%22");
    let d = FakeDaemon::start(move |m, p, _| match (m, p) {
        ("GET", p) if of_st(p, "/services?") => ok(json!([svc("s2", "st_web", "st"), svc("s1", "st_db", "st")])),
        ("GET", p) if of_st(p, "/networks?") => ok(json!([{"Id": "n1", "Name": "st_default"}])),
        ("GET", p) if of_st(p, "/secrets?") => ok(json!([{"ID": "x1", "Spec": {"Name": "st_pw"}}])),
        ("GET", p) if p.contains("?filters=") => ok(json!([])),
        ("DELETE", _) => (204, String::new()),
        _ => not_found(),
    });
    let (out, err) = run_cli(&d, &["stack", "rm", "st", "none"]).await;
    assert_eq!(err, None);
    let want = "Removing service st_db\nRemoving service st_web\nRemoving secret st_pw\nRemoving network st_default\n";
    assert_eq!(out, want);
    let deletes: Vec<String> = d.requests().into_iter().filter(|r| r.starts_with("DELETE")).collect();
    assert_eq!(deletes, ["DELETE /services/s1", "DELETE /services/s2", "DELETE /secrets/x1", "DELETE /networks/n1"]);
}

#[test]
fn stack_table_renders_like_docker() {
    let f = ListFormat::parse(Some("json"), false, LS_TABLE, LS_TABLE, LS_TABLE).unwrap();
    let services: Vec<Service> = serde_json::from_value(json!([svc("1", "a_x", "a")])).unwrap();
    assert_eq!(render_stacks(&services, &f), "{\"Name\":\"a\",\"Services\":\"1\"}\n");
}

#[test]
fn restart_decides_the_policy_without_deploy_restart_policy_as_in_docker() {
    let dir = dir_with(&[]);
    let policy = |r: &str, deploy: &str| -> Result<Value, String> {
        let y = format!("services:\n  web:\n    image: x\n    restart: \"{r}\"\n{deploy}");
        let plan = plan_of(&y, &dir)?;
        Ok(serde_json::to_value(&plan.services["st_web"].spec).unwrap()["TaskTemplate"]["RestartPolicy"].clone())
    };
    assert_eq!(policy("always", "").unwrap(), json!({"Condition": "any"}));
    assert_eq!(policy("unless-stopped", "").unwrap(), json!({"Condition": "any"}));
    assert_eq!(policy("on-failure:2", "").unwrap(), json!({"Condition": "on-failure", "MaxAttempts": 2}));
    assert_eq!(policy("no", "").unwrap(), Value::Null);
    let explicit = "    deploy: {restart_policy: {condition: none}}\n";
    assert_eq!(policy("always", explicit).unwrap(), json!({"Condition": "none"}));
    assert_eq!(policy("sometimes", "").unwrap_err(), "unknown restart policy: sometimes");
    let _ = std::fs::remove_dir_all(dir);
}
