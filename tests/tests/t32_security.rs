//! Security: the API as dockerd exposes it (TLS with client certificates on TCP, refusals in Docker's shape,
//! timeouts), no poison entries in Raft (the deepest and largest accepted specs go through proposal, replication,
//! snapshot and restart on three managers while writes keep flowing), and state at rest readable by root only.

use anyhow::{ensure, Context as _, Result};
use skep_tests::services::{http_unix, ApiResponse};
use skep_tests::{require_root_and_netns, run, wait_until, Cluster, Output};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const T: Duration = Duration::from_secs(60);
const TLS_PORT: u16 = 2376;

/// A CA, a server certificate for `ip` (and `localhost`), and a client certificate, made with openssl as Docker's
/// "Protect the Docker daemon socket" page does (EC keys here). The client's files are `ca.pem`, `cert.pem` and
/// `key.pem` in `<dir>/client`, the layout of `DOCKER_CERT_PATH`.
struct Certs {
    dir: PathBuf,
}

impl Certs {
    fn make(dir: &Path, ip: &str) -> Result<Certs> {
        std::fs::create_dir_all(dir.join("client"))?;
        let sh = |script: &str| -> Result<()> {
            let mut c = Command::new("sh");
            c.arg("-ec").arg(script).current_dir(dir);
            run(c, T)?.ok()?;
            Ok(())
        };
        let key = "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
        sh(&format!("{key} -x509 -days 2 -subj /CN=skep-test-ca -keyout ca-key.pem -out ca.pem 2>/dev/null"))?;
        std::fs::write(dir.join("server.ext"), format!("subjectAltName=IP:{ip},DNS:localhost\nextendedKeyUsage=serverAuth\n"))?;
        std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n")?;
        for who in ["server", "client"] {
            sh(&format!(
                "{key} -subj /CN={who} -keyout {who}-key.pem -out {who}.csr 2>/dev/null
                 openssl x509 -req -days 2 -in {who}.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
                   -extfile {who}.ext -out {who}-cert.pem 2>/dev/null"
            ))?;
        }
        std::fs::copy(dir.join("ca.pem"), dir.join("client/ca.pem"))?;
        std::fs::copy(dir.join("client-cert.pem"), dir.join("client/cert.pem"))?;
        std::fs::copy(dir.join("client-key.pem"), dir.join("client/key.pem"))?;
        Ok(Certs { dir: dir.to_owned() })
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// The daemon's flags for a TLS listener on `ip`.
    fn daemon_args(&self, ip: &str) -> Vec<String> {
        vec![
            "-H".into(),
            format!("tcp://{ip}:{TLS_PORT}"),
            "--tlsverify".into(),
            "--tlscacert".into(),
            self.path("ca.pem"),
            "--tlscert".into(),
            self.path("server-cert.pem"),
            "--tlskey".into(),
            self.path("server-key.pem"),
        ]
    }
}

/// A command run inside host `i`'s namespace (where the host's address is reachable).
fn in_host(c: &Cluster, i: usize, program: &str) -> Command {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", c.host(i).ns.name(), program]);
    cmd
}

/// The stock docker CLI in host `i`'s namespace, with nothing of the caller's docker environment.
fn docker_in_host(c: &Cluster, i: usize, home: &Path) -> Command {
    let mut cmd = in_host(c, i, "docker");
    skep_tests::cluster::clean_docker_env(&mut cmd, &home.join(".docker"));
    cmd.env("HOME", home);
    cmd
}

/// `curl` over TLS with the client certificate, in host `i`'s namespace: (status, body).
fn curl_tls(c: &Cluster, i: usize, certs: &Certs, args: &[&str], path: &str) -> Result<(u16, String)> {
    let url = format!("https://{}:{TLS_PORT}{path}", c.host(i).ip);
    let mut cmd = in_host(c, i, "curl");
    cmd.args(["-sS", "--max-time", "30", "--cacert", &certs.path("ca.pem"), "--cert", &certs.path("client-cert.pem")])
        .args(["--key", &certs.path("client-key.pem"), "-w", "\n%{http_code}"])
        .args(args)
        .arg(url);
    let out = run(cmd, T)?;
    let text = out.ok()?;
    let (body, code) = text.rsplit_once('\n').context("no status line from curl")?;
    Ok((code.trim().parse()?, body.to_owned()))
}

fn message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| format!("<not Docker's JSON error shape: {body:?}>"))
}

/// `curl` on the unix socket of host `i` with a body from a file: (status, body, curl's exit code).
fn curl_unix(c: &Cluster, i: usize, args: &[&str], path: &str) -> Result<(u16, String, Option<i32>)> {
    let sock = c.daemon(i).context("no daemon")?.socket();
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "30", "--unix-socket"])
        .arg(&sock)
        .args(["-w", "\n%{http_code}"])
        .args(args)
        .arg(format!("http://localhost{path}"));
    let out: Output = run(cmd, T)?;
    let (body, code) = out.stdout.rsplit_once('\n').unwrap_or(("", "0"));
    Ok((code.trim().parse().unwrap_or(0), body.to_owned(), out.code))
}

#[test]
fn the_api_over_tcp_speaks_only_tls_with_client_certificates_and_refuses_as_docker_does() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    let ip = c.host(0).ip.clone();
    let certs = Certs::make(&c.root().join("certs"), &ip)?;
    let home = c.root().join("home");
    std::fs::create_dir_all(&home)?;

    // plain tcp is refused before anything starts; --insecure-tcp only on loopback
    let scratch = c.root().join("refused");
    for (args, says) in [
        (vec!["-H", "tcp://0.0.0.0:23751"], "without TLS"),
        (vec!["-H", "tcp://0.0.0.0:23751", "--insecure-tcp"], "loopback addresses only"),
        (vec!["-H", "tcp://0.0.0.0:23751", "--tlsverify", "--tlscacert", "/nonexistent"], "--tlsverify needs"),
    ] {
        let mut cmd = Command::new(skep_tests::skep_bin()?);
        cmd.arg("daemon").arg("--data-root").arg(&scratch).args(&args);
        let out = run(cmd, T)?;
        let text = out.refused()?;
        ensure!(text.contains(says), "skep daemon {args:?}: {text}");
    }

    let args = certs.daemon_args(&ip);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    c.set_daemon_extras(0, &args, &[])?;
    c.start(0)?;
    let sock = c.daemon(0).context("no daemon")?.socket();
    ensure!(std::fs::metadata(&sock)?.permissions().mode() & 0o777 == 0o660, "socket mode");

    // the stock docker CLI with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH
    let host = format!("tcp://{ip}:{TLS_PORT}");
    let docker_tls = |args: &[&str]| -> Result<Output> {
        let mut cmd = docker_in_host(&c, 0, &home);
        cmd.env("DOCKER_TLS_VERIFY", "1").env("DOCKER_CERT_PATH", certs.dir.join("client")).arg("-H").arg(&host).args(args);
        run(cmd, T)
    };
    let out = docker_tls(&["swarm", "init", "--advertise-addr", &ip])?;
    ensure!(out.ok()?.contains("Swarm initialized"), "{}", out.stdout);
    let out = docker_tls(&["node", "ls"])?;
    ensure!(out.ok()?.contains("Leader"), "{}", out.stdout);

    // the swarm's own ports are not for services
    for (port, proto) in [(2377, "tcp"), (4789, "udp"), (7946, "tcp")] {
        let body = format!(
            r#"{{"Name":"p{port}","TaskTemplate":{{"ContainerSpec":{{"Image":"busybox:latest","Args":["sleep","60"]}}}},"EndpointSpec":{{"Ports":[{{"TargetPort":80,"PublishedPort":{port},"Protocol":"{proto}"}}]}}}}"#
        );
        let r = api(&c, 0, "POST", "/v1.50/services/create", Some(&body))?;
        ensure!(r.status == 400 && r.message().contains("reserved"), "publishing {port}: {} {}", r.status, r.body);
    }

    // the skep CLI with --tlsverify and explicit files, and with SKEP_TLS_VERIFY and SKEP_CERT_PATH
    let skep = skep_tests::skep_bin()?.display().to_string();
    let mut cmd = in_host(&c, 0, &skep);
    cmd.args(["-H", &host, "--tlsverify", "--tlscacert", &certs.path("ca.pem"), "--tlscert", &certs.path("client-cert.pem")])
        .args(["--tlskey", &certs.path("client-key.pem"), "node", "ls"])
        .env_remove("SKEP_HOST");
    let out = run(cmd, T)?;
    ensure!(out.ok()?.contains("Leader"), "{}", out.stdout);
    let mut cmd = in_host(&c, 0, &skep);
    cmd.args(["-H", &host, "info"]).env("SKEP_TLS_VERIFY", "1").env("SKEP_CERT_PATH", certs.dir.join("client"));
    run(cmd, T)?.ok()?;

    // without a client certificate: refused in the handshake (docker --tls verifies the server only)
    let mut cmd = docker_in_host(&c, 0, &home);
    cmd.args(["-H", &host, "--tls", "--tlscacert", &certs.path("ca.pem"), "node", "ls"]);
    let text = run(cmd, T)?.refused()?;
    ensure!(!text.contains("Leader"), "{text}");
    // skep without TLS against the TLS port
    let mut cmd = in_host(&c, 0, &skep);
    cmd.args(["-H", &host, "node", "ls"]).env_remove("SKEP_HOST");
    run(cmd, T)?.refused()?;

    // JSON bodies only, no browsers, no foreign Host
    let (code, body) = curl_tls(&c, 0, &certs, &["-X", "POST", "-H", "Content-Type: text/plain", "-d", r#"{"Name":"n1","Driver":"overlay"}"#], "/v1.50/networks/create")?;
    ensure!(code == 400, "text/plain: {code} {body}");
    ensure!(message(&body) == "unsupported Content-Type header (text/plain): must be 'application/json'", "{body}");
    let (code, body) = curl_tls(&c, 0, &certs, &["-H", "Origin: http://evil.example"], "/v1.50/info")?;
    ensure!(code == 403 && message(&body).contains("Origin"), "Origin: {code} {body}");
    let (code, body) = curl_tls(&c, 0, &certs, &["-H", "Host: rebound.example"], "/v1.50/info")?;
    ensure!(code == 403 && message(&body).contains("rebound.example"), "Host: {code} {body}");
    let (code, body) = curl_tls(&c, 0, &certs, &["-H", "Host: localhost:2376"], "/v1.50/_ping")?;
    ensure!(code == 200 && body == "OK", "Host localhost: {code} {body}");
    // the benchmarks' endpoint is on the unix socket only
    let (code, body) = curl_tls(&c, 0, &certs, &["-X", "POST", "-d", "v"], "/skep/kv/k")?;
    ensure!(code == 404, "kv over tcp: {code} {body}");

    // refusals in Docker's JSON shape, with the body read (curl sees the answer, not a broken pipe)
    let big = c.root().join("big.json");
    std::fs::write(&big, vec![b' '; 2 * 1024 * 1024])?;
    let data = format!("@{}", big.display());
    let (code, body, exit) = curl_unix(&c, 0, &["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", &data], "/v1.50/no/such/route")?;
    ensure!(code == 404 && message(&body) == "page not found" && exit == Some(0), "unknown route: {code} {body} {exit:?}");
    let (code, body, _) = curl_unix(&c, 0, &["-X", "PUT"], "/v1.50/nodes")?;
    ensure!(code == 404 && message(&body) == "page not found", "wrong method: {code} {body}");
    std::fs::write(&big, vec![b' '; 5 * 1024 * 1024])?;
    let (code, body, _) = curl_unix(&c, 0, &["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", &data], "/v1.50/services/create")?;
    ensure!(code == 413 && message(&body).contains("larger than"), "too large: {code} {body}");
    let (code, body, _) = curl_unix(&c, 0, &[], "/v99999999999999999999999.1/_ping")?;
    ensure!(code == 400 && message(&body).contains("is too new"), "absurd version: {code} {body}");

    // a connection that never finishes its headers is closed, and so is an idle kept-alive one
    for (what, send) in [
        ("partial headers", "GET /_ping HTTP/1.1\r\nHost: x\r\n".to_string()),
        ("idle keep-alive", "GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n".to_string()),
    ] {
        let mut s = std::os::unix::net::UnixStream::connect(&sock)?;
        s.set_read_timeout(Some(Duration::from_secs(45)))?;
        s.write_all(send.as_bytes())?;
        let mut got = Vec::new();
        let r = s.read_to_end(&mut got);
        ensure!(r.is_ok(), "{what}: the daemon kept the connection open: {r:?}");
    }
    c.pass();
    Ok(())
}

/// A service body: `pad` bytes of environment (in values of at most 100 KiB: one string must fit execve's bound),
/// `replicas` tasks, and an ignored field nested so that the whole body is `depth` levels deep.
fn service_body(name: &str, pad: usize, replicas: u64, depth: usize) -> String {
    let chunk = 100 * 1024;
    let mut env = Vec::new();
    let mut left = pad;
    let mut k = 0;
    while left > 0 {
        let n = left.min(chunk);
        env.push(format!("PAD{k}={}", "x".repeat(n)));
        left -= n;
        k += 1;
    }
    let spec = serde_json::json!({
        "Name": name,
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:latest", "Args": ["sleep", "3600"], "Env": env}},
        "Mode": {"Replicated": {"Replicas": replicas}},
    });
    let mut text = spec.to_string();
    if depth > 1 {
        // the object is level 1; `"Deep": [[…]]` adds depth - 1 levels
        let deep = format!(",\"Deep\":{}{}", "[".repeat(depth - 1), "]".repeat(depth - 1));
        text.insert_str(text.len() - 1, &deep);
    }
    text
}

fn api(c: &Cluster, i: usize, method: &str, path: &str, body: Option<&str>) -> Result<ApiResponse> {
    http_unix(&c.daemon(i).context("no daemon")?.socket(), method, path, body, T)
}

#[test]
fn the_deepest_and_largest_accepted_specs_replicate_snapshot_and_restart_a_removed_node_is_cut_off_and_nothing_at_rest_is_readable_by_others() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(4)?;
    for i in 0..4 {
        c.set_daemon_extras(i, &[], &[("SKEP_SNAPSHOT_INTERVAL", "100")])?;
    }
    c.form(3, 1)?;

    // the limits: 1 MiB per spec, 64 levels
    let max = 1024 * 1024;
    let too_big = service_body("too-big", max, 1, 1);
    let r = api(&c, 1, "POST", "/v1.50/services/create", Some(&too_big))?;
    ensure!(r.status == 400 && r.message().contains("too large"), "{} {}", r.status, r.body);
    let too_deep = service_body("too-deep", 0, 1, 65);
    let r = api(&c, 1, "POST", "/v1.50/services/create", Some(&too_deep))?;
    ensure!(r.status == 400 && r.message().contains("nested deeper"), "{} {}", r.status, r.body);

    // the largest and the deepest accepted, through a follower: 6 tasks of ~1 MiB are ~6 MiB of tasks to replicate
    let mut room = max - service_body("largest", 0, 6, 1).len();
    let mut largest = service_body("largest", room, 6, 1);
    while largest.len() > max {
        room -= largest.len() - max;
        largest = service_body("largest", room, 6, 1);
    }
    let r = api(&c, 1, "POST", "/v1.50/services/create", Some(&largest))?;
    ensure!(r.status == 201, "largest: {} {}", r.status, r.message());
    let deepest = service_body("deepest", 0, 1, 64);
    let r = api(&c, 2, "POST", "/v1.50/services/create", Some(&deepest))?;
    ensure!(r.status == 201, "deepest: {} {}", r.status, r.message());
    for i in 0..3 {
        wait_until("6 tasks of the largest service on every manager", T, || -> Result<()> {
            let n = c.tasks(i, "largest")?.len();
            ensure!(n >= 6, "{n} tasks");
            Ok(())
        })?;
    }

    // writes keep flowing, past a snapshot on every manager
    let sock = c.daemon(0).context("no daemon")?.socket();
    for k in 0..150 {
        let r = http_unix(&sock, "POST", &format!("/skep/kv/k{k}"), Some("v"), T)?;
        ensure!(r.status == 200, "write {k}: {} {}", r.status, r.body);
    }
    for i in 0..3 {
        let snap = c.host(i).dir.join("swarm/raft/snapshot.json");
        wait_until("a snapshot on every manager", T, || -> Result<()> {
            ensure!(snap.exists(), "no {}", snap.display());
            Ok(())
        })?;
    }

    // every manager restarted: each reads its log and snapshot back, and the cluster writes again
    for i in 0..3 {
        c.stop(i)?;
    }
    for i in 0..3 {
        c.start(i)?;
    }
    wait_until("a write after the restart", T, || -> Result<()> {
        let r = api(&c, 1, "POST", "/v1.50/services/create", Some(&service_body("after", 0, 1, 1)))?;
        ensure!(r.status == 201, "{} {}", r.status, r.body);
        Ok(())
    })?;
    // manager 2 may still be reading its log back when the other two already write: wait for it to serve
    let v = wait_until("the largest service read through manager 2 after its restart", T, || {
        api(&c, 2, "GET", "/v1.50/services/largest", None)?.json()
    })?;
    let env = v["Spec"]["TaskTemplate"]["ContainerSpec"]["Env"].as_array().context("no Env")?;
    let total: usize = env.iter().filter_map(|e| e.as_str()).map(str::len).sum();
    ensure!(total >= room, "the largest spec came back with {total} bytes of environment");

    // a removed node's connections are closed at once, not left to its next call. The worker first reports a task
    // of a global service running, so it is talking to the restarted managers again and holds a connection (removed
    // the moment the managers were back, it had none yet, and learnt of its removal only at its next call)
    let probe = serde_json::json!({
        "Name": "probe",
        "TaskTemplate": {"ContainerSpec": {"Image": "busybox:latest", "Args": ["sleep", "3600"]}},
        "Mode": {"Global": {}},
    });
    let r = api(&c, 0, "POST", "/v1.50/services/create", Some(&probe.to_string()))?;
    ensure!(r.status == 201, "{} {}", r.status, r.body);
    c.wait_running(0, "probe", 4, T)?;
    let worker = c.node_id(3)?;
    c.skep_ok(0, &["node", "rm", "--force", &worker])?;
    wait_until("a manager to close the removed node's connections", T, || -> Result<()> {
        ensure!((0..3).any(|i| c.log_contains(i, "closed the connections of a removed node")), "not yet");
        Ok(())
    })?;

    // at rest: data roots 0700; anything holding a key or a join token readable by root only
    for i in 0..4 {
        let root = c.host(i).dir.clone();
        let mode = std::fs::metadata(&root)?.permissions().mode() & 0o777;
        ensure!(mode == 0o700, "{} is {mode:o}", root.display());
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            // files come and go while the daemons run (temporary files, task directories): skip what vanished
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for e in entries.flatten() {
                let p = e.path();
                let Ok(meta) = std::fs::symlink_metadata(&p) else { continue };
                if meta.is_dir() {
                    stack.push(p);
                    continue;
                }
                if !meta.is_file() {
                    continue;
                }
                let body = std::fs::read(&p).unwrap_or_default();
                let secret = ["PRIVATE KEY", "SWMTKN"].iter().any(|n| body.windows(n.len()).any(|w| w == n.as_bytes()));
                let mode = meta.permissions().mode() & 0o777;
                ensure!(!secret || mode & 0o077 == 0, "{} holds a key or token and is {mode:o}", p.display());
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                let segment = name.ends_with(".seg");
                if segment || ["snapshot.json", "tasks.json", "node.key", "state.json"].contains(&name) {
                    ensure!(mode == 0o600, "{} is {mode:o}", p.display());
                }
            }
        }
    }
    c.pass();
    Ok(())
}
