//! End-to-end tests: the real command functions against a fake daemon (hyper's server on a unix socket in a temp
//! dir) that answers canned JSON and records every request.

use super::*;
use super::fake_daemon::{run_cli, FakeDaemon};
use std::sync::{Arc, Mutex};
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

fn node_json(id: &str, host: &str, role: &str, leader: Option<bool>) -> Value {
    let mut n = json!({
        "ID": id, "Version": {"Index": 13}, "CreatedAt": "2025-05-30T12:00:00Z", "UpdatedAt": "2025-05-30T12:00:00Z",
        "Spec": {"Labels": {}, "Role": role, "Availability": "active"},
        "Description": {"Hostname": host, "Platform": {"Architecture": "x86_64", "OS": "linux"},
                        "Resources": {"NanoCPUs": 4000000000i64, "MemoryBytes": 8589934592i64},
                        "Engine": {"EngineVersion": "0.1.0"}},
        "Status": {"State": "ready", "Addr": "10.0.0.1"},
    });
    if let Some(leader) = leader {
        n["ManagerStatus"] =
            json!({"Leader": leader, "Reachability": "reachable", "Addr": "10.0.0.1:2377"});
    }
    n
}

fn swarm_json(version: u64, worker: &str, manager: &str) -> Value {
    json!({
        "ID": "cluster1", "Version": {"Index": version},
        "Spec": {"Name": "default", "Labels": {}, "Orchestration": {"TaskHistoryRetentionLimit": 5},
                 "Raft": {"SnapshotInterval": 10000, "KeepOldSnapshots": 0, "LogEntriesForSlowFollowers": 500,
                          "ElectionTick": 10, "HeartbeatTick": 1},
                 "Dispatcher": {"HeartbeatPeriod": 1000000000}, "CAConfig": {"NodeCertExpiry": 7776000000000000i64},
                 "TaskDefaults": {}, "EncryptionConfig": {"AutoLockManagers": false}},
        "JoinTokens": {"Worker": worker, "Manager": manager},
    })
}

fn info_json(node_id: &str, manager: bool) -> Value {
    json!({"ID": "d1", "Name": "node-1", "ServerVersion": "0.1.0",
           "Swarm": {"NodeID": node_id, "NodeAddr": "10.0.0.1", "LocalNodeState": "active",
                     "ControlAvailable": manager, "Error": "", "RemoteManagers": null}})
}

#[tokio::test]
async fn node_promote_posts_the_whole_spec_with_the_new_role() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/nodes/node-2") => ok(node_json("id2", "node-2", "worker", None)),
        ("GET", "/nodes/node-1") => ok(node_json("id1", "node-1", "manager", Some(true))),
        ("POST", "/nodes/id2/update?version=13") => (200, String::new()),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["node", "promote", "node-1", "node-2"]).await;
    assert_eq!(err, None);
    assert_eq!(
        out,
        "Node id1 is already a manager.\nNode node-2 promoted to a manager in the swarm.\n"
    );
    assert_eq!(
        d.requests(),
        [
            "GET /nodes/node-1",
            "GET /nodes/node-2",
            "POST /nodes/id2/update?version=13"
        ]
    );
    let body: Value = serde_json::from_str(&d.bodies()[2]).unwrap();
    assert_eq!(
        body,
        json!({"Labels": {}, "Role": "manager", "Availability": "active"})
    );
}

#[tokio::test]
async fn node_demote_stops_at_the_first_error() {
    let d = FakeDaemon::start(|m, p, _| {
        match (m, p) {
        ("GET", "/nodes/node-1") => ok(node_json("id1", "node-1", "manager", Some(true))),
        ("POST", _) => (
            400,
            json!({"message": "rpc error: code = FailedPrecondition desc = attempting to demote the last manager of the swarm"})
                .to_string(),
        ),
        _ => not_found("route"),
    }
    });
    let (out, err) = run_cli(&d, &["node", "demote", "node-1", "node-9"]).await;
    assert_eq!(out, "");
    assert_eq!(
        err.as_deref(),
        Some(
            "Error response from daemon: rpc error: code = FailedPrecondition desc = attempting to demote the last \
             manager of the swarm"
        )
    );
    assert_eq!(
        d.requests(),
        ["GET /nodes/node-1", "POST /nodes/id1/update?version=13"]
    );
    assert!(d.bodies()[1].contains(r#""Role":"worker""#));
}

#[tokio::test]
async fn join_token_rotate_worker_follows_dockers_sequence() {
    let rotated = Arc::new(Mutex::new(false));
    let r = rotated.clone();
    let d = FakeDaemon::start(move |m, p, _| {
        let mut rotated = r.lock().unwrap();
        match (m, p) {
            ("GET", "/swarm") if *rotated => ok(swarm_json(12, "SWMTKN-1-new-w", "SWMTKN-1-m")),
            ("GET", "/swarm") => ok(swarm_json(11, "SWMTKN-1-old-w", "SWMTKN-1-m")),
            ("POST", p) if p.starts_with("/swarm/update?") => {
                *rotated = true;
                (200, String::new())
            }
            ("GET", "/info") => ok(info_json("id1", true)),
            ("GET", "/nodes/id1") => ok(node_json("id1", "node-1", "manager", Some(true))),
            _ => not_found("route"),
        }
    });
    let (out, err) = run_cli(&d, &["swarm", "join-token", "--rotate", "worker"]).await;
    assert_eq!(err, None);
    assert_eq!(
        out,
        "Successfully rotated worker join token.\n\nTo add a worker to this swarm, run the following command:\n\n    \
         skep swarm join --token SWMTKN-1-new-w 10.0.0.1:2377\n\n"
    );
    assert_eq!(
        d.requests(),
        [
            "GET /swarm",
            "POST /swarm/update?rotateManagerToken=false&rotateManagerUnlockKey=false&rotateWorkerToken=true&version=11",
            "GET /swarm",
            "GET /info",
            "GET /nodes/id1",
            "GET /swarm",
        ]
    );
    // the body of the update is the current spec
    let spec: Value = serde_json::from_str(&d.bodies()[1]).unwrap();
    assert_eq!(spec["Dispatcher"]["HeartbeatPeriod"], 1_000_000_000i64);
    assert_eq!(spec["Orchestration"]["TaskHistoryRetentionLimit"], 5);

    let (out, _) = run_cli(&d, &["swarm", "join-token", "-q", "manager"]).await;
    assert_eq!(out, "SWMTKN-1-m\n");
    let (_, err) = run_cli(&d, &["swarm", "join-token", "boss"]).await;
    assert_eq!(err.as_deref(), Some("unknown role boss"));
}

#[tokio::test]
async fn node_ls_prints_dockers_table_and_sends_filters() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", p) if p.starts_with("/nodes") => ok(json!([
            node_json("id10aaaaaaaaaaaaaaaaaaaaa", "node-10", "worker", None),
            node_json("id1aaaaaaaaaaaaaaaaaaaaaa", "node-1", "manager", Some(true)),
            node_json(
                "id2aaaaaaaaaaaaaaaaaaaaaa",
                "node-2",
                "manager",
                Some(false)
            ),
        ])),
        ("GET", "/info") => ok(info_json("id2aaaaaaaaaaaaaaaaaaaaaa", true)),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["node", "ls"]).await;
    assert_eq!(err, None);
    let want = [
        "ID                            HOSTNAME   STATUS    AVAILABILITY   MANAGER STATUS   ENGINE VERSION",
        "id1aaaaaaaaaaaaaaaaaaaaaa     node-1     Ready     Active         Leader           0.1.0",
        "id2aaaaaaaaaaaaaaaaaaaaaa *   node-2     Ready     Active         Reachable        0.1.0",
        "id10aaaaaaaaaaaaaaaaaaaaa     node-10    Ready     Active                          0.1.0",
    ];
    assert_eq!(out, want.join("\n") + "\n");
    assert_eq!(d.requests(), ["GET /nodes", "GET /info"]);

    let (out, _) = run_cli(&d, &["node", "ls", "-q", "-f", "role=manager"]).await;
    assert_eq!(
        out,
        "id1aaaaaaaaaaaaaaaaaaaaaa\nid2aaaaaaaaaaaaaaaaaaaaaa\nid10aaaaaaaaaaaaaaaaaaaaa\n"
    );
    // -q does not ask /info; filters are the URL-encoded JSON map
    assert_eq!(
        d.requests()[2..],
        ["GET /nodes?filters=%7B%22role%22%3A%7B%22manager%22%3Atrue%7D%7D"]
    );
}

#[tokio::test]
async fn swarm_init_sends_dockers_request_and_prints_the_join_command() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("POST", "/swarm/init") => ok(json!("id1")),
        ("GET", "/nodes/id1") => ok(node_json("id1", "node-1", "manager", Some(true))),
        ("GET", "/swarm") => ok(swarm_json(11, "SWMTKN-1-w", "SWMTKN-1-m")),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(
        &d,
        &[
            "swarm",
            "init",
            "--advertise-addr",
            "10.0.0.1",
            "--dispatcher-heartbeat",
            "5s",
            "--default-addr-pool",
            "10.20.0.0/16",
        ],
    )
    .await;
    assert_eq!(err, None);
    assert_eq!(
        out,
        "Swarm initialized: current node (id1) is now a manager.\n\n\
         To add a worker to this swarm, run the following command:\n\n    \
         skep swarm join --token SWMTKN-1-w 10.0.0.1:2377\n\n\
         To add a manager to this swarm, run 'skep swarm join-token manager' and follow the instructions.\n"
    );
    assert_eq!(
        d.requests(),
        ["POST /swarm/init", "GET /nodes/id1", "GET /swarm"]
    );
    let req: Value = serde_json::from_str(&d.bodies()[0]).unwrap();
    assert_eq!(req["ListenAddr"], "0.0.0.0:2377");
    assert_eq!(req["AdvertiseAddr"], "10.0.0.1");
    assert_eq!(req["Availability"], "");
    assert_eq!(req["SubnetSize"], 24);
    assert_eq!(req["DefaultAddrPool"], json!(["10.20.0.0/16"]));
    assert_eq!(
        req["Spec"]["Dispatcher"]["HeartbeatPeriod"],
        5_000_000_000i64
    );
    assert_eq!(
        req["Spec"]["CAConfig"],
        json!({}),
        "flags not given stay unset"
    );
    assert_eq!(req["Spec"]["TaskDefaults"], json!({}));
}

#[tokio::test]
async fn swarm_join_leave_update() {
    let d = FakeDaemon::start(|m, p, _| {
        match (m, p) {
        ("POST", "/swarm/join") | ("POST", "/swarm/leave?force=1") => (200, String::new()),
        ("POST", "/swarm/leave") => (
            503,
            json!({"message": "You are attempting to leave the swarm on a node that is participating as a manager."})
                .to_string(),
        ),
        ("GET", "/info") => ok(info_json("id3", false)),
        ("GET", "/swarm") => ok(swarm_json(20, "w", "m")),
        ("POST", "/swarm/update?rotateManagerToken=false&rotateManagerUnlockKey=false&rotateWorkerToken=false&version=20") => {
            (200, String::new())
        }
        _ => not_found("route"),
    }
    });
    let (out, err) = run_cli(
        &d,
        &[
            "swarm",
            "join",
            "--token",
            "SWMTKN-1-x",
            "--availability",
            "drain",
            "10.0.0.1:2377",
        ],
    )
    .await;
    assert_eq!(
        (out.as_str(), err),
        ("This node joined a swarm as a worker.\n", None)
    );
    let req: Value = serde_json::from_str(&d.bodies()[0]).unwrap();
    assert_eq!(req["RemoteAddrs"], json!(["10.0.0.1:2377"]));
    assert_eq!(req["JoinToken"], "SWMTKN-1-x");
    assert_eq!(req["Availability"], "drain");
    assert_eq!(req["ListenAddr"], "0.0.0.0:2377");

    let (out, err) = run_cli(&d, &["swarm", "leave"]).await;
    assert_eq!(out, "");
    assert!(err
        .unwrap()
        .starts_with("Error response from daemon: You are attempting to leave"));
    let (out, err) = run_cli(&d, &["swarm", "leave", "--force"]).await;
    assert_eq!((out.as_str(), err), ("Node left the swarm.\n", None));

    let (out, err) = run_cli(
        &d,
        &[
            "swarm",
            "update",
            "--task-history-limit",
            "2",
            "--cert-expiry",
            "1h30m",
        ],
    )
    .await;
    assert_eq!((out.as_str(), err), ("Swarm updated.\n", None));
    let spec: Value = serde_json::from_str(d.bodies().last().unwrap()).unwrap();
    assert_eq!(spec["Orchestration"]["TaskHistoryRetentionLimit"], 2);
    assert_eq!(spec["CAConfig"]["NodeCertExpiry"], 5_400_000_000_000i64);
    assert_eq!(
        spec["Dispatcher"]["HeartbeatPeriod"], 1_000_000_000i64,
        "the rest of the spec is kept"
    );
}

#[tokio::test]
async fn node_inspect_prints_found_nodes_then_the_errors() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/info") => ok(info_json("id1", true)),
        ("GET", "/nodes/id1") => ok(node_json("id1", "node-1", "manager", Some(true))),
        ("GET", "/nodes/ghost") => not_found("node ghost"),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(&d, &["node", "inspect", "ghost"]).await;
    assert_eq!(out, "[]\n");
    assert_eq!(
        err.as_deref(),
        Some("Error response from daemon: node ghost not found")
    );

    let (out, err) = run_cli(&d, &["node", "inspect", "self", "ghost"]).await;
    assert!(out.starts_with("[\n    {\n        \"ID\": \"id1\",\n        \"Version\": {\n            \"Index\": 13\n"), "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v[0]["ManagerStatus"]["Leader"], true);
    assert_eq!(
        err.as_deref(),
        Some("Error response from daemon: node ghost not found")
    );

    let (out, err) = run_cli(&d, &["node", "inspect", "--pretty", "self"]).await;
    assert_eq!(err, None);
    assert!(
        out.starts_with("ID:\t\t\tid1\nHostname:              \tnode-1\n"),
        "{out}"
    );
    assert!(out.ends_with("Engine Version:\t\t0.1.0\n"), "{out}");

    let (out, _) = run_cli(
        &d,
        &[
            "node",
            "inspect",
            "-f",
            "{{.Spec.Role}} {{.Description.Hostname}}",
            "self",
        ],
    )
    .await;
    assert_eq!(out, "manager node-1\n");
    let (_, err) = run_cli(&d, &["node", "inspect", "-f", "prettyx", "self"]).await;
    assert_eq!(
        err.as_deref(),
        Some("cannot supply extra formatting options to the pretty template")
    );
}

#[tokio::test]
async fn node_update_and_rm() {
    let d = FakeDaemon::start(|m, p, _| {
        match (m, p) {
        ("GET", "/nodes/node-2") => {
            let mut n = node_json("id2", "node-2", "worker", None);
            n["Spec"]["Labels"] = json!({"old": "1"});
            ok(n)
        }
        ("POST", "/nodes/id2/update?version=13") => (200, String::new()),
        ("DELETE", "/nodes/node-2?force=1") => (200, String::new()),
        ("DELETE", "/nodes/node-3?force=1") => (
            400,
            json!({"message": "rpc error: code = FailedPrecondition desc = node node-3 is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"}).to_string(),
        ),
        ("DELETE", p) => not_found(&format!("node {}", p.trim_start_matches("/nodes/"))),
        _ => not_found("route"),
    }
    });
    let args = [
        "node",
        "update",
        "--availability",
        "drain",
        "--label-add",
        "zone=a",
        "--label-rm",
        "old",
        "node-2",
    ];
    let (out, err) = run_cli(&d, &args).await;
    assert_eq!((out.as_str(), err), ("node-2\n", None));
    let body: Value = serde_json::from_str(&d.bodies()[1]).unwrap();
    assert_eq!(
        body,
        json!({"Labels": {"zone": "a"}, "Role": "worker", "Availability": "drain"})
    );

    let (_, err) = run_cli(&d, &["node", "update", "--label-rm", "nope", "node-2"]).await;
    assert_eq!(
        err.as_deref(),
        Some("key nope doesn't exist in node's labels")
    );

    let (out, err) = run_cli(&d, &["node", "rm", "-f", "node-2", "node-3", "gone"]).await;
    assert_eq!(out, "node-2\n");
    let err = err.unwrap();
    assert_eq!(err.lines().count(), 2);
    assert!(err.contains("must be demoted to worker before removal"));
    assert!(err.ends_with("Error response from daemon: node gone?force=1 not found"));
}

#[tokio::test]
async fn info_and_version() {
    let d = FakeDaemon::start(|m, p, _| match (m, p) {
        ("GET", "/info") => ok(info_json("id1", true)),
        ("GET", "/version") => ok(
            json!({"Platform": {"Name": "skep"}, "Version": "0.1.0", "ApiVersion": "1.50",
                                          "MinAPIVersion": "1.24", "GitCommit": "abc", "Os": "linux", "Arch": "amd64",
                                          "BuildTime": "2026-01-01T00:00:00Z"}),
        ),
        _ => not_found("route"),
    });
    let (out, err) = run_cli(
        &d,
        &[
            "info",
            "--format",
            "{{.Swarm.NodeID}} {{.Swarm.ControlAvailable}}",
        ],
    )
    .await;
    assert_eq!((out.as_str(), err), ("id1 true\n", None));
    let (out, _) = run_cli(&d, &["info"]).await;
    assert!(
        out.contains(" Swarm: active\n  NodeID: id1\n  Is Manager: true\n"),
        "{out}"
    );
    let (out, err) = run_cli(&d, &["version"]).await;
    assert_eq!(err, None);
    assert!(
        out.contains("\nServer: skep\n Engine:\n  Version:          0.1.0\n"),
        "{out}"
    );
    assert!(
        out.contains("  API version:      1.50 (minimum version 1.24)\n"),
        "{out}"
    );
    assert!(
        out.starts_with(&format!(
            "Client:\n Version:           {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    let (out, _) = run_cli(&d, &["version", "-f", "{{.Server.Version}}"]).await;
    assert_eq!(out, "0.1.0\n");
}

#[test]
fn error_text_stops_at_the_api_error() {
    let io = std::io::Error::from(std::io::ErrorKind::NotFound);
    let e = anyhow::Error::new(ApiError::Connect {
        host: "unix:///x".into(),
        source: io,
    })
    .context("could not fetch");
    assert_eq!(
        error_text(&e),
        "could not fetch: Cannot connect to the skep daemon at unix:///x. Is the skep daemon running?"
    );
}

#[tokio::test]
async fn no_daemon_means_cannot_connect() {
    let dir = std::env::temp_dir().join(format!("skep-cli-nodaemon-{}", std::process::id()));
    let host = format!("unix://{}/none.sock", dir.display());
    let c = ApiClient::new(&host).unwrap();
    let err = c.get::<Value>("/info").await.unwrap_err();
    assert!(matches!(err, ApiError::Connect { .. }));
    assert_eq!(
        err.to_string(),
        format!("Cannot connect to the skep daemon at {host}. Is the skep daemon running?")
    );
}

#[tokio::test]
async fn bodies_are_bounded_and_requests_time_out() {
    let d = FakeDaemon::start(|_, p, _| match p {
        "/big" => ok(json!("x".repeat(1000))),
        _ => ok(json!({})),
    });
    let mut c = d.client();
    c.max_body_for_tests(100);
    assert!(matches!(
        c.get::<Value>("/big").await,
        Err(ApiError::TooLarge(100))
    ));

    // a listener that never answers
    let dir = d.dir.join("silent.sock");
    let _silent = tokio::net::UnixListener::bind(&dir).unwrap();
    let c = ApiClient::new(&format!("unix://{}", dir.display()))
        .unwrap()
        .with_timeout(std::time::Duration::from_millis(200));
    assert!(matches!(
        c.get::<Value>("/info").await,
        Err(ApiError::Timeout { .. })
    ));
}

#[test]
fn clap_definitions_are_consistent() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: ClientCommand,
    }
    Cli::command().debug_assert();
    // bad durations are refused while parsing, with Go's message
    let err = Cli::try_parse_from(["skep", "swarm", "init", "--dispatcher-heartbeat", "5x"])
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains(r#"time: unknown unit "x" in duration "5x""#),
        "{err}"
    );
    let ok = Cli::try_parse_from(["skep", "swarm", "update", "--autolock"]).unwrap();
    match ok.cmd {
        ClientCommand::Swarm(swarm::SwarmCmd::Update(u)) => assert_eq!(u.spec.autolock, Some(true)),
        _ => panic!("wrong command"),
    }
}

#[tokio::test]
async fn unlock_key_rotate_follows_dockers_sequence_and_refuses_without_autolock() {
    let locked = Arc::new(Mutex::new(true));
    let l = locked.clone();
    let d = FakeDaemon::start(move |m, p, _| {
        let on = *l.lock().unwrap();
        match (m, p) {
            ("GET", "/swarm") => {
                let mut s = swarm_json(7, "SWMTKN-1-w", "SWMTKN-1-m");
                s["Spec"]["EncryptionConfig"]["AutoLockManagers"] = json!(on);
                ok(s)
            }
            ("POST", p) if p.starts_with("/swarm/update?") => (200, String::new()),
            ("GET", "/swarm/unlockkey") => ok(json!({"UnlockKey": if on { "SWMKEY-1-new" } else { "" }})),
            _ => not_found("route"),
        }
    });
    let (out, err) = run_cli(&d, &["swarm", "unlock-key", "--rotate"]).await;
    assert_eq!(err, None);
    assert!(out.starts_with("Successfully rotated manager unlock key.\n\nTo unlock a swarm manager"), "{out}");
    assert!(out.contains("    SWMKEY-1-new\n"), "{out}");
    assert_eq!(
        d.requests(),
        [
            "GET /swarm",
            "POST /swarm/update?rotateManagerToken=false&rotateManagerUnlockKey=true&rotateWorkerToken=false&version=7",
            "GET /swarm/unlockkey",
        ]
    );
    let (out, _) = run_cli(&d, &["swarm", "unlock-key", "-q"]).await;
    assert_eq!(out, "SWMKEY-1-new\n");
    *locked.lock().unwrap() = false;
    let (_, err) = run_cli(&d, &["swarm", "unlock-key", "--rotate"]).await;
    assert_eq!(err.as_deref(), Some("cannot rotate because autolock is not turned on"));
    let (_, err) = run_cli(&d, &["swarm", "unlock-key"]).await;
    assert_eq!(err.as_deref(), Some("no unlock key is set"));
}

#[tokio::test]
async fn unlock_sends_the_key_only_to_a_locked_node() {
    let state = Arc::new(Mutex::new("locked"));
    let s = state.clone();
    let d = FakeDaemon::start(move |m, p, _| match (m, p) {
        ("GET", "/info") => {
            let mut i = info_json("id1", false);
            i["Swarm"]["LocalNodeState"] = json!(*s.lock().unwrap());
            ok(i)
        }
        ("POST", "/swarm/unlock") => (200, String::new()),
        _ => not_found("route"),
    });
    let c = d.client();
    super::swarm::unlock(&c, &mut &b"SWMKEY-1-abc\n"[..], false).await.unwrap();
    assert_eq!(d.requests(), ["GET /info", "POST /swarm/unlock"]);
    assert_eq!(d.bodies()[1], r#"{"UnlockKey":"SWMKEY-1-abc"}"#);
    *state.lock().unwrap() = "active";
    let e = super::swarm::unlock(&c, &mut &b"k\n"[..], false).await.unwrap_err();
    assert_eq!(e.to_string(), "Error: swarm is not locked");
    *state.lock().unwrap() = "inactive";
    let e = super::swarm::unlock(&c, &mut &b"k\n"[..], false).await.unwrap_err();
    assert_eq!(e.to_string(), "Error: This node is not part of a swarm");
}

#[tokio::test]
async fn node_ps_lists_the_tasks_of_self_and_of_named_nodes() {
    let task = json!({"ID": "t1aaaaaaaaaaaaaaaa", "ServiceID": "s1", "NodeID": "id1", "Slot": 2,
                      "DesiredState": "running", "Status": {"State": "running", "Timestamp": "2020-01-01T00:00:00Z"},
                      "Spec": {"ContainerSpec": {"Image": "busybox:latest"}}});
    let d = FakeDaemon::start(move |m, p, _| match (m, p) {
        ("GET", "/info") => ok(info_json("id1", true)),
        ("GET", "/nodes/id1") => ok(node_json("id1", "node-1", "manager", Some(true))),
        ("GET", p) if p.starts_with("/tasks?") => ok(json!([task.clone()])),
        ("GET", "/services/s1?insertDefaults=false") => ok(json!({"ID": "s1", "Version": {"Index": 1},
            "Spec": {"Name": "web", "Labels": {}, "TaskTemplate": {}, "Mode": {}}})),
        _ => not_found("node nope"),
    });
    let (out, err) = run_cli(&d, &["node", "ps", "--format", "{{.Name}} {{.Node}} {{.Image}}"]).await;
    assert_eq!(err, None);
    assert_eq!(out, "web.2 node-1 busybox:latest\n");
    let f = json!({"desired-state": {"running": true}, "node": {"id1": true}}).to_string();
    assert_eq!(d.requests()[..2], ["GET /info".to_string(), "GET /nodes/id1".into()]);
    let (out, err) = run_cli(&d, &["node", "ps", "-f", "desired-state=running", "-q", "self", "nope"]).await;
    assert_eq!(out, "t1aaaaaaaaaaaaaaaa\n");
    assert_eq!(err.as_deref(), Some("Error response from daemon: node nope not found"));
    assert!(d.requests().contains(&format!("GET /tasks{}", query(&[("filters", &f)]))), "{:?}", d.requests());
}
