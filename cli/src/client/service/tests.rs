//! End-to-end tests of the `service` commands: the real command functions against a fake daemon (hyper's server
//! on a unix socket in a temp dir) that answers canned JSON and records every request, as `client/tests.rs` does.

use crate::client::fake_daemon::{run_cli, FakeDaemon};
use crate::client::ClientCommand;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use serde_json::{json, Value};

fn ok(v: Value) -> (u16, String) {
    (200, v.to_string())
}

fn not_found(what: &str) -> (u16, String) {
    (
        404,
        json!({"message": format!("{what} not found")}).to_string(),
    )
}

const DIGEST: &str = "sha256:8307ed1ed4ba1e0a8a7c51b8a4a6a3f8c47c1f8d2c1b5c0b6c2b1a0f8e3d2c1b";

fn service_json(id: &str, name: &str, mode: Value, version: u64) -> Value {
    json!({
        "ID": id, "Version": {"Index": version}, "CreatedAt": "2027-01-15T07:00:00Z", "UpdatedAt": "2027-01-15T07:00:00Z",
        "Spec": {"Name": name, "Labels": {},
                 "TaskTemplate": {"ContainerSpec": {"Image": format!("nginx:alpine@{DIGEST}"), "Init": false},
                                  "ForceUpdate": 0},
                 "Mode": mode,
                 "UpdateConfig": {"Parallelism": 1, "FailureAction": "pause", "Monitor": 1_000_000_000i64,
                                  "MaxFailureRatio": 0, "Order": "stop-first"},
                 "EndpointSpec": {"Mode": "vip"}},
        "Endpoint": {"Spec": {"Mode": "vip"},
                     "Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]},
    })
}

fn task_json(id: &str, service: &str, slot: u64, node: &str, state: &str) -> Value {
    json!({
        "ID": id, "Version": {"Index": 30}, "CreatedAt": "2027-01-15T07:00:00Z", "UpdatedAt": "2027-01-15T07:00:00Z",
        "Labels": {}, "Spec": {"ContainerSpec": {"Image": format!("nginx:alpine@{DIGEST}")}},
        "ServiceID": service, "Slot": slot, "NodeID": node,
        "Status": {"Timestamp": "2027-01-15T07:00:00Z", "State": state, "Message": state},
        "DesiredState": "running",
    })
}

fn nodes_json() -> Value {
    json!([
        {"ID": "n1", "Spec": {"Role": "manager", "Availability": "active"},
         "Description": {"Hostname": "node-1"}, "Status": {"State": "ready"}},
        {"ID": "n2", "Spec": {"Role": "worker", "Availability": "active"},
         "Description": {"Hostname": "node-2"}, "Status": {"State": "ready"}},
    ])
}

/// `{"_up-to-date":{"true":true},"service":{"svc1":true}}`, URL-encoded.
const UP_TO_DATE_SVC1: &str =
    "filters=%7B%22_up-to-date%22%3A%7B%22true%22%3Atrue%7D%2C%22service%22%3A%7B%22svc1%22%3Atrue%7D%7D";

#[tokio::test]
async fn create_detached_pins_the_digest_and_prints_the_id() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/distribution/nginx:alpine/json") => ok(json!({
            "Descriptor": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": DIGEST, "size": 10},
            "Platforms": [{"architecture": "amd64", "os": "linux"}, {"architecture": "arm", "os": "linux"}],
        })),
        ("GET", "/networks/front?scope=swarm") => ok(json!({"Name": "front", "Id": "netid1"})),
        ("POST", "/services/create") => (201, json!({"ID": "svc1", "Warnings": null}).to_string()),
        _ => not_found("route"),
    });
    let args = [
        "service",
        "create",
        "-d",
        "--name",
        "web",
        "--replicas",
        "3",
        "-p",
        "8080:80",
        "--network",
        "front",
        "-e",
        "A=1",
        "nginx:alpine",
        "nginx",
        "-g",
        "daemon off;",
    ];
    let (out, err) = run_cli(&d, &args).await;
    assert_eq!((out.as_str(), err), ("svc1\n", None));
    assert_eq!(
        d.requests(),
        [
            "GET /networks/front?scope=swarm",
            "GET /distribution/nginx:alpine/json",
            "POST /services/create"
        ]
    );
    let body = d.body_of("POST /services/create");
    assert_eq!(
        body,
        json!({
            "Name": "web", "Labels": {},
            "TaskTemplate": {
                "ContainerSpec": {"Image": format!("nginx:alpine@{DIGEST}"), "Args": ["nginx", "-g", "daemon off;"],
                                  "Env": ["A=1"], "Init": false, "DNSConfig": {}},
                "Resources": {"Limits": {}, "Reservations": {}},
                "Placement": {"Platforms": [{"Architecture": "amd64", "OS": "linux"}, {"Architecture": "", "OS": "linux"}]},
                "Networks": [{"Target": "netid1"}],
                "ForceUpdate": 0},
            "Mode": {"Replicated": {"Replicas": 3}},
            "EndpointSpec": {"Mode": "vip", "Ports": [
                {"Protocol": "tcp", "TargetPort": 80, "PublishedPort": 8080, "PublishMode": "ingress"}]},
        })
    );

    // without --replicas, with --no-resolve-image: no registry lookup, the image gets its default tag
    let (out, err) = run_cli(
        &d,
        &["service", "create", "-d", "--no-resolve-image", "busybox"],
    )
    .await;
    assert_eq!((out.as_str(), err), ("svc1\n", None));
    assert_eq!(d.requests().last().unwrap(), "POST /services/create");
    assert_eq!(d.requests().len(), 4);
    let body: Value = {
        let seen = d.seen.lock().unwrap();
        serde_json::from_str(&seen[3].1).unwrap()
    };
    assert_eq!(body["Mode"], json!({"Replicated": {}}));
    assert_eq!(
        body["TaskTemplate"]["ContainerSpec"]["Image"],
        "busybox:latest"
    );

    // a registry lookup that fails only warns (on stderr); the service is still created
    let (out, err) = run_cli(&d, &["service", "create", "-d", "redis"]).await;
    assert_eq!((out.as_str(), err), ("svc1\n", None));
    assert_eq!(d.requests()[4], "GET /distribution/redis:latest/json");

    // a daemon error is docker's
    let d2 = FakeDaemon::start(|_, _, _| {
        (409, json!({"message": "rpc error: code = AlreadyExists desc = name conflicts with an existing object"}).to_string())
    });
    let (_, err) = run_cli(
        &d2,
        &[
            "service",
            "create",
            "-d",
            "--no-resolve-image",
            "--name",
            "web",
            "nginx",
        ],
    )
    .await;
    assert_eq!(
        err.as_deref(),
        Some("Error response from daemon: rpc error: code = AlreadyExists desc = name conflicts with an existing object")
    );
}

#[tokio::test]
async fn create_follows_progress_until_converged() {
    let polls = Arc::new(AtomicUsize::new(0));
    let p2 = polls.clone();
    let d = FakeDaemon::start(move |m, p, _| match (m, p) {
        ("POST", "/services/create") => (201, json!({"ID": "svc1", "Warnings": null}).to_string()),
        ("GET", "/services/svc1?insertDefaults=false") => ok(service_json(
            "svc1",
            "web",
            json!({"Replicated": {"Replicas": 2}}),
            11,
        )),
        ("GET", p) if p.starts_with("/tasks?") => {
            let n = p2.fetch_add(1, Ordering::SeqCst) + 1;
            let (s1, s2) = match n {
                1 => ("pending", "pending"),
                2 => ("starting", "preparing"),
                _ => ("running", "running"),
            };
            let mut t2 = task_json("t2", "svc1", 2, "n2", s2);
            if n == 1 {
                t2["Status"]["Err"] =
                    json!("no suitable node (1 node not available for new tasks)");
            }
            ok(json!([task_json("t1", "svc1", 1, "n1", s1), t2]))
        }
        ("GET", "/nodes") => ok(nodes_json()),
        _ => not_found("route"),
    });
    let started = std::time::Instant::now();
    let (out, err) = run_cli(
        &d,
        &[
            "service",
            "create",
            "--no-resolve-image",
            "--replicas",
            "2",
            "nginx",
        ],
    )
    .await;
    assert_eq!(err, None);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let bar = |n: usize| format!("[{}>{}]", "=".repeat(n), " ".repeat(50 - n));
    let want = [
        "svc1".to_string(),
        "overall progress: 0 out of 2 tasks".into(),
        "1/2:".into(),
        "2/2:".into(),
        format!("1/2: pending   {}", bar(16)),
        "2/2: no suitable node (1 node not available for new tasks)".into(),
        format!("1/2: starting  {}", bar(44)),
        format!("2/2: preparing {}", bar(33)),
        format!("1/2: running   {}", bar(50)),
        format!("2/2: running   {}", bar(50)),
        "overall progress: 2 out of 2 tasks".into(),
        "verify: Waiting 1 seconds to verify that tasks are stable...".into(),
        "verify: Service svc1 converged".into(),
    ];
    assert_eq!(out, want.join("\n") + "\n");
    let reqs = d.requests();
    assert_eq!(
        reqs[..4],
        [
            "POST /services/create".to_string(),
            "GET /services/svc1?insertDefaults=false".into(),
            format!("GET /tasks?{UP_TO_DATE_SVC1}"),
            "GET /nodes".into(),
        ]
    );
    // polls continue through the 1 s monitor period and end with a service GET
    assert!(polls.load(Ordering::SeqCst) >= 5, "{reqs:?}");
    assert_eq!(
        reqs.last().unwrap(),
        "GET /services/svc1?insertDefaults=false"
    );
}

#[tokio::test]
async fn update_paused_is_an_error_and_completed_returns_at_once() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/services/paused?insertDefaults=false")
        | ("GET", "/services/p1?insertDefaults=false") => {
            let mut s = service_json("p1", "paused", json!({"Replicated": {"Replicas": 1}}), 4);
            s["UpdateStatus"] =
                json!({"State": "paused", "Message": "update paused due to failure"});
            ok(s)
        }
        ("GET", "/services/done?insertDefaults=false")
        | ("GET", "/services/d1?insertDefaults=false") => {
            let mut s = service_json("d1", "done", json!({"Replicated": {"Replicas": 1}}), 4);
            s["UpdateStatus"] = json!({"State": "completed", "Message": "update completed"});
            ok(s)
        }
        ("POST", p) if p.contains("/update?") => ok(json!({"Warnings": null})),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["service", "update", "--force", "paused"]).await;
    assert_eq!(out, "paused\n");
    assert_eq!(
        err.as_deref(),
        Some("service update paused: update paused due to failure")
    );
    let (out, err) = run_cli(&d, &["service", "update", "--force", "done"]).await;
    assert_eq!((out.as_str(), err), ("done\n", None));
    assert_eq!(
        d.requests().last().unwrap(),
        "GET /services/d1?insertDefaults=false"
    );
}

#[tokio::test]
async fn scale_posts_the_spec_with_the_new_count_then_waits() {
    // the fake keeps the replica count it was last sent
    let replicas = Arc::new(AtomicUsize::new(2));
    let r = replicas.clone();
    let d = FakeDaemon::start(move |m, p, body| match (m, p) {
        ("GET", "/services/web?insertDefaults=false") => {
            let n = r.load(Ordering::SeqCst);
            ok(service_json(
                "svc1",
                "web",
                json!({"Replicated": {"Replicas": n}}),
                25,
            ))
        }
        ("GET", "/services/mon?insertDefaults=false") => {
            ok(service_json("g1", "mon", json!({"Global": {}}), 7))
        }
        ("POST", "/services/svc1/update?version=25") => {
            let spec: Value = serde_json::from_str(body).unwrap();
            r.store(
                spec["Mode"]["Replicated"]["Replicas"].as_u64().unwrap() as usize,
                Ordering::SeqCst,
            );
            ok(json!({"Warnings": null}))
        }
        ("GET", p) if p.starts_with("/tasks?") => ok(json!((1..=5)
            .map(|i| task_json(&format!("t{i}"), "svc1", i, "n1", "running"))
            .collect::<Vec<_>>())),
        ("GET", "/nodes") => ok(nodes_json()),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["service", "scale", "-d", "web=5"]).await;
    assert_eq!((out.as_str(), err), ("web scaled to 5\n", None));
    assert_eq!(
        d.requests(),
        [
            "GET /services/web?insertDefaults=false",
            "POST /services/svc1/update?version=25"
        ]
    );
    let body = d.body_of("POST /services/svc1/update");
    assert_eq!(body["Mode"], json!({"Replicated": {"Replicas": 5}}));
    assert_eq!(body["Name"], "web");
    assert_eq!(
        body["UpdateConfig"]["Monitor"], 1_000_000_000i64,
        "the rest of the spec is sent back"
    );

    // with progress (the fake reports 5 running tasks, monitor 1 s), and errors collected per service
    let (out, err) = run_cli(&d, &["service", "scale", "web=5", "mon=2", "x=y"]).await;
    assert!(
        out.starts_with("web scaled to 5\noverall progress: 0 out of 5 tasks\n1/5:\n"),
        "{out}"
    );
    assert!(out.ends_with("verify: Service web converged\n"), "{out}");
    assert_eq!(
        err.as_deref(),
        Some(
            "mon: scale can only be used with replicated or replicated-job mode\n\
             x: invalid replicas value y: strconv.ParseUint: parsing \"y\": invalid syntax"
        )
    );
    let (_, err) = run_cli(&d, &["service", "scale", "web"]).await;
    assert!(err.unwrap().starts_with("Invalid scale specifier 'web'."));
}

#[tokio::test]
async fn rm_reports_each_failure_and_fails() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("DELETE", "/services/a") => (200, String::new()),
        ("DELETE", "/services/b") => not_found("service b"),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["service", "rm", "a", "b"]).await;
    assert_eq!(out, "a\n");
    assert_eq!(
        err.as_deref(),
        Some("Error response from daemon: service b not found")
    );
    assert_eq!(d.requests(), ["DELETE /services/a", "DELETE /services/b"]);
}

#[tokio::test]
async fn ls_asks_for_status_and_prints_the_table() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", p) if p.starts_with("/services?") => {
            let mut s = service_json(
                "ny2pwh3w96ztm2v2fc8rstune",
                "web",
                json!({"Replicated": {"Replicas": 3}}),
                5,
            );
            if p.contains("status=true") {
                s["ServiceStatus"] =
                    json!({"RunningTasks": 3, "DesiredTasks": 3, "CompletedTasks": 0});
            }
            ok(json!([s]))
        }
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["service", "ls"]).await;
    assert_eq!(err, None);
    assert_eq!(
        out,
        "ID             NAME      MODE         REPLICAS   IMAGE          PORTS\n\
         ny2pwh3w96zt   web       replicated   3/3        nginx:alpine   *:8080->80/tcp\n"
    );
    let (out, _) = run_cli(&d, &["service", "ls", "-q", "-f", "name=web"]).await;
    assert_eq!(out, "ny2pwh3w96zt\n");
    assert_eq!(
        d.requests(),
        [
            "GET /services?status=true",
            "GET /services?filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D"
        ]
    );
}

#[tokio::test]
async fn ps_resolves_the_service_then_names() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/services?filters=%7B%22id%22%3A%7B%22web%22%3Atrue%7D%7D") => ok(json!([])),
        ("GET", "/services?filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D") => {
            ok(json!([service_json(
                "svc1",
                "web",
                json!({"Replicated": {"Replicas": 1}}),
                5
            )]))
        }
        ("GET", "/services?filters=%7B%22id%22%3A%7B%22web%22%3Atrue%2C%22zzz%22%3Atrue%7D%7D")
        | (
            "GET",
            "/services?filters=%7B%22name%22%3A%7B%22web%22%3Atrue%2C%22zzz%22%3Atrue%7D%7D",
        ) => ok(json!([service_json(
            "svc1",
            "web",
            json!({"Replicated": {"Replicas": 1}}),
            5
        )])),
        ("GET", p) if p.starts_with("/tasks?") => {
            let mut old = task_json("t0aaaaaaaaaaaaaaaaaaaaaaa", "svc1", 1, "n1", "failed");
            old["DesiredState"] = json!("shutdown");
            old["CreatedAt"] = json!("2027-01-15T06:00:00Z");
            ok(json!([
                old,
                task_json("t1aaaaaaaaaaaaaaaaaaaaaaa", "svc1", 1, "n2", "running")
            ]))
        }
        ("GET", "/services/svc1?insertDefaults=false") => ok(service_json(
            "svc1",
            "web",
            json!({"Replicated": {"Replicas": 1}}),
            5,
        )),
        ("GET", "/nodes/n2") => ok(nodes_json()[1].clone()),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["service", "ps", "-q", "web"]).await;
    assert_eq!(err, None);
    assert_eq!(
        out,
        "t1aaaaaaaaaaaaaaaaaaaaaaa\nt0aaaaaaaaaaaaaaaaaaaaaaa\n"
    );
    assert_eq!(
        d.requests(),
        [
            "GET /services?filters=%7B%22id%22%3A%7B%22web%22%3Atrue%7D%7D",
            "GET /services?filters=%7B%22name%22%3A%7B%22web%22%3Atrue%7D%7D",
            "GET /tasks?filters=%7B%22service%22%3A%7B%22svc1%22%3Atrue%7D%7D",
            "GET /services/svc1?insertDefaults=false",
            "GET /nodes/n2",
            "GET /nodes/n1",
        ]
    );
    // a node lookup that fails shows the ID; an unknown service is reported after the table
    let (out, err) = run_cli(
        &d,
        &[
            "service",
            "ps",
            "--format",
            "{{.Name}} {{.Node}} {{.Error}}",
            "web",
            "zzz",
        ],
    )
    .await;
    assert_eq!(out, "web.1 node-2 \nweb.1 n1 \n");
    assert_eq!(err.as_deref(), Some("no such service: zzz"));
    let d2 = FakeDaemon::start(|_, _, _| ok(json!([])));
    let (_, err) = run_cli(&d2, &["service", "ps", "nope"]).await;
    assert_eq!(err.as_deref(), Some("no such service: nope"));
}

#[tokio::test]
async fn inspect_update_and_rollback_requests() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/services/web?insertDefaults=true")
        | ("GET", "/services/web?insertDefaults=false") => ok(service_json(
            "svc1",
            "web",
            json!({"Replicated": {"Replicas": 2}}),
            25,
        )),
        ("GET", "/services/ghost?insertDefaults=true") => not_found("service ghost"),
        ("POST", p) if p.starts_with("/services/svc1/update?") => ok(json!({"Warnings": null})),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["service", "inspect", "web", "ghost"]).await;
    assert!(
        out.starts_with("[\n    {\n        \"ID\": \"svc1\",\n        \"Version\": {\n"),
        "{out}"
    );
    assert_eq!(err.as_deref(), Some("no such service: ghost"));
    let (out, err) = run_cli(&d, &["service", "inspect", "--pretty", "web"]).await;
    assert_eq!(err, None);
    assert!(
        out.starts_with("\nID:\t\tsvc1\nName:\t\tweb\nService Mode:\tReplicated\n Replicas:\t2\n"),
        "{out}"
    );
    assert!(out.ends_with("Endpoint Mode:\tvip\nPorts:\n PublishedPort = 8080\n  Protocol = tcp\n  TargetPort = 80\n  PublishMode = ingress \n\n"), "{out:?}");
    let (out, _) = run_cli(
        &d,
        &[
            "service",
            "inspect",
            "-f",
            "{{.Spec.Name}} {{.Version.Index}}",
            "web",
        ],
    )
    .await;
    assert_eq!(out, "web 25\n");

    let (out, err) = run_cli(
        &d,
        &[
            "service",
            "update",
            "-d",
            "--image",
            "nginx:1.27",
            "--no-resolve-image",
            "--env-add",
            "X=1",
            "web",
        ],
    )
    .await;
    assert_eq!((out.as_str(), err), ("web\n", None));
    let body = d.body_of("POST /services/svc1/update");
    assert_eq!(body["TaskTemplate"]["ContainerSpec"]["Image"], "nginx:1.27");
    assert_eq!(body["TaskTemplate"]["ContainerSpec"]["Env"], json!(["X=1"]));
    let (out, err) = run_cli(&d, &["service", "rollback", "-d", "web"]).await;
    assert_eq!((out.as_str(), err), ("web\n", None));
    let (_, err) = run_cli(&d, &["service", "update", "--rollback", "--force", "web"]).await;
    assert_eq!(
        err.as_deref(),
        Some("other flags may not be combined with --rollback")
    );
    let (out, _) = run_cli(&d, &["service", "update", "-d", "--rollback", "web"]).await;
    assert_eq!(out, "web\n");
    let posts: Vec<String> = d
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST"))
        .collect();
    assert_eq!(
        posts,
        [
            "POST /services/svc1/update?registryAuthFrom=spec&version=25",
            "POST /services/svc1/update?rollback=previous&version=25",
            "POST /services/svc1/update?registryAuthFrom=spec&rollback=previous&version=25",
        ]
    );
}

#[tokio::test]
async fn networks_are_resolved_to_sorted_ids_on_create_update_and_inspect() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/networks/front?scope=swarm") | ("GET", "/networks/aa1?scope=swarm") => {
            ok(json!({"Name": "front", "Id": "aa1", "Scope": "swarm", "Driver": "overlay"}))
        }
        ("GET", "/networks/back?scope=swarm") | ("GET", "/networks/zz9?scope=swarm") => {
            ok(json!({"Name": "back", "Id": "zz9"}))
        }
        ("GET", "/networks/ghost?scope=swarm") | ("GET", "/networks/gone?scope=swarm") => not_found("network"),
        ("POST", "/services/create") => (201, json!({"ID": "svc1", "Warnings": null}).to_string()),
        ("GET", "/services/web?insertDefaults=false") | ("GET", "/services/web?insertDefaults=true") => {
            let mut s = service_json("svc1", "web", json!({"Replicated": {"Replicas": 1}}), 7);
            s["Spec"]["TaskTemplate"]["Networks"] = json!([{"Target": "zz9", "Aliases": ["web"]}, {"Target": "gone"}]);
            s["Endpoint"]["VirtualIPs"] = json!([
                {"NetworkID": "ingressid", "Addr": "10.0.0.5/24"}, {"NetworkID": "zz9", "Addr": "10.0.1.2/24"}]);
            ok(s)
        }
        ("POST", p) if p.starts_with("/services/svc1/update?") => ok(json!({"Warnings": null})),
        _ => not_found("route"),
    });
    // create: long and short syntax, resolved one by one, sent sorted by ID
    let (out, err) = run_cli(
        &d,
        &["service", "create", "-d", "--no-resolve-image", "--network", "name=back,alias=api",
          "--network", "front", "--endpoint-mode", "dnsrr", "busybox"],
    )
    .await;
    assert_eq!((out.as_str(), err), ("svc1\n", None));
    let body = d.body_of("POST /services/create");
    assert_eq!(
        body["TaskTemplate"]["Networks"],
        json!([{"Target": "aa1"}, {"Target": "zz9", "Aliases": ["api"]}])
    );
    assert_eq!(body["EndpointSpec"], json!({"Mode": "dnsrr"}));
    let (_, err) = run_cli(&d, &["service", "create", "-d", "--network", "ghost", "busybox"]).await;
    assert_eq!(err.as_deref(), Some("Error response from daemon: network not found"));
    assert_eq!(
        d.requests(),
        [
            "GET /networks/back?scope=swarm",
            "GET /networks/front?scope=swarm",
            "POST /services/create",
            "GET /networks/ghost?scope=swarm",
        ]
    );

    // update: removals, then additions; an attached network cannot be added twice
    let (out, err) = run_cli(
        &d,
        &["service", "update", "-d", "--network-rm", "back", "--network-add", "name=front,alias=www", "web"],
    )
    .await;
    assert_eq!((out.as_str(), err), ("web\n", None));
    let body = d.body_of("POST /services/svc1/update");
    assert_eq!(
        body["TaskTemplate"]["Networks"],
        json!([{"Target": "aa1", "Aliases": ["www"]}, {"Target": "gone"}])
    );
    assert_eq!(
        d.requests()[4..],
        [
            "GET /services/web?insertDefaults=false",
            "GET /networks/back?scope=swarm",
            "GET /networks/front?scope=swarm",
            "POST /services/svc1/update?registryAuthFrom=spec&version=7",
        ]
    );
    let (_, err) = run_cli(&d, &["service", "update", "-d", "--network-add", "back", "web"]).await;
    assert_eq!(err.as_deref(), Some("service is already attached to network zz9"));

    // inspect --pretty: names where the lookup works, IDs where it does not
    let (out, err) = run_cli(&d, &["service", "inspect", "--pretty", "web"]).await;
    assert_eq!(err, None);
    assert!(out.contains("\nNetworks: back gone \nEndpoint Mode:\tvip\n"), "{out}");
    let (out, _) = run_cli(&d, &["service", "inspect", "-f", "{{json .Endpoint.VirtualIPs}}", "web"]).await;
    assert_eq!(
        out,
        "[{\"Addr\":\"10.0.0.5/24\",\"NetworkID\":\"ingressid\"},{\"Addr\":\"10.0.1.2/24\",\"NetworkID\":\"zz9\"}]\n"
    );
}

#[test]
fn service_clap_definitions_are_consistent() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClientCommand,
    }
    Cli::command().debug_assert();
    let err = Cli::try_parse_from(["skep", "service", "create", "--restart-delay", "5x", "img"])
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains(r#"time: unknown unit "x" in duration "5x""#),
        "{err}"
    );
    assert!(Cli::try_parse_from(["skep", "service", "create"]).is_err());
    assert!(Cli::try_parse_from(["skep", "service", "list"]).is_ok());
    assert!(Cli::try_parse_from(["skep", "service", "remove", "a"]).is_ok());
}
