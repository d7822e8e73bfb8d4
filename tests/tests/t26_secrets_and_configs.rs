//! Secrets and configs through the stock docker CLI: created, listed, inspected (a secret's data never comes back),
//! updated (labels only) and removed (refused while a service uses one); bad input refused with Docker's texts and
//! nothing half-created; a service's tasks get them as files with the content, owner and mode asked for, templates
//! rendered for each task; a rotation gives the new tasks the new secret; only the nodes running such tasks ever hold
//! the files, and nothing of a secret reaches any node's data root; a stack with secrets and configs deploys and
//! `stack rm` leaves nothing behind.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::files::task_file_mounts;
use skep_tests::services::{is_running, summarize_tasks, url_encode};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

/// Writes `data` to `<cluster root>/<name>` and returns the path (the docker CLI reads secrets from files).
fn file(c: &Cluster, name: &str, data: &[u8]) -> Result<String> {
    let p = c.root().join(name);
    std::fs::write(&p, data)?;
    Ok(p.display().to_string())
}

/// The file at `path` as each running task of `service` sees it, through its supervisor's root
/// (`/proc/<pid>/root`): `(task, content, mode, uid, gid)`. Waits for `n` running tasks to have it (a task is
/// running as soon as its supervisor is, which binds the files before it starts the program).
fn task_file(c: &Cluster, service: &str, path: &str, n: usize) -> Result<Vec<TaskFile>> {
    wait_until(&format!("{n} running tasks of {service} with {path}"), Duration::from_secs(30), || {
        let files = read_task_file(c, service, path)?;
        ensure!(files.len() == n, "{} running tasks", files.len());
        Ok(files)
    })
}

/// A running task and one of its files: `(task, content, mode, uid, gid)`.
type TaskFile = (Value, Vec<u8>, u32, u32, u32);

fn read_task_file(c: &Cluster, service: &str, path: &str) -> Result<Vec<TaskFile>> {
    let mut out = Vec::new();
    for t in c.tasks(0, service)?.into_iter().filter(is_running) {
        let pid = t["Status"]["ContainerStatus"]["PID"].as_u64().context("a running task without a PID")?;
        let p = PathBuf::from(format!("/proc/{pid}/root{path}"));
        let data = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
        let m = std::fs::metadata(&p)?;
        out.push((t, data, m.mode() & 0o7777, m.uid(), m.gid()));
    }
    Ok(out)
}

/// The task-file tmpfs mounts of host `i` (its daemon's and its tasks').
fn file_mounts(c: &Cluster, i: usize) -> Vec<String> {
    task_file_mounts(&c.host(i).dir)
}

/// Fails while any of the first `n` hosts still holds task files.
fn no_task_files_left(c: &Cluster, n: usize) -> Result<()> {
    for i in 0..n {
        let left = file_mounts(c, i);
        ensure!(left.is_empty(), "{} still holds {left:?}", c.host(i).name);
    }
    Ok(())
}

/// Names listed by `docker secret ls` / `docker config ls`.
fn names(c: &Cluster, kind: &str) -> Result<Vec<String>> {
    let out = c.docker(0, &[kind, "ls", "--format", "{{.Name}}"])?.ok()?.to_owned();
    let mut v: Vec<String> = out.lines().map(str::to_owned).collect();
    v.sort();
    Ok(v)
}

#[test]
fn secrets_and_configs_are_managed_by_the_docker_cli_and_bad_input_is_refused() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    c.form(1, 0)?;
    let pw = file(&c, "pw", b"s3cr3t-Xq9")?;

    let id = c.docker(0, &["secret", "create", "-l", "team=db", "db_pass", &pw])?.ok()?.trim().to_owned();
    ensure!(id.len() == 25, "secret create printed {id:?}");
    let ls = c.docker(0, &["secret", "ls"])?.ok()?.to_owned();
    ensure!(ls.contains("db_pass") && ls.contains(&id[..12]), "{ls}");
    let v = c.docker(0, &["secret", "inspect", "db_pass"])?.json()?;
    ensure!(v[0]["ID"] == id.as_str() && v[0]["Spec"]["Labels"]["team"] == "db", "{v}");
    ensure!(v[0]["Spec"].get("Data").is_none(), "a secret's data came back: {v}");
    let raw = c.api(0, "GET", "/secrets", None)?;
    ensure!(!raw.body.contains("czNjcjN0") && !raw.body.contains("s3cr3t"), "GET /secrets shows the data: {}", raw.body);
    let filtered = c.docker(0, &["secret", "ls", "--filter", "label=team=db", "-q"])?.ok()?.trim().to_owned();
    ensure!(filtered == id, "label filter gave {filtered:?}");

    // a config's data is shown
    let conf = file(&c, "app.conf", b"listen 8080\n")?;
    c.docker(0, &["config", "create", "app_conf", &conf])?.ok()?;
    let v = c.docker(0, &["config", "inspect", "app_conf"])?.json()?;
    ensure!(v[0]["Spec"]["Data"] == "bGlzdGVuIDgwODAK", "{v}");

    // labels can change; the data cannot
    let version = v[0]["Version"]["Index"].as_u64().context("version")?;
    let body = serde_json::json!({"Name": "app_conf", "Labels": {"a": "b"}, "Data": "bGlzdGVuIDgwODAK"}).to_string();
    let r = c.api(0, "POST", &format!("/configs/app_conf/update?version={version}"), Some(&body))?;
    ensure!(r.status == 200, "label update: {} {}", r.status, r.body);
    let v = c.docker(0, &["config", "inspect", "app_conf"])?.json()?;
    ensure!(v[0]["Spec"]["Labels"]["a"] == "b", "{v}");
    let version = v[0]["Version"]["Index"].as_u64().context("version")?;
    let body = serde_json::json!({"Name": "app_conf", "Labels": {}, "Data": "b3RoZXI="}).to_string();
    let r = c.api(0, "POST", &format!("/configs/app_conf/update?version={version}"), Some(&body))?;
    ensure!(
        (r.status, r.message()) == (400, "rpc error: code = InvalidArgument desc = only updates to Labels are allowed".into()),
        "data update: {} {}",
        r.status,
        r.body
    );

    // bad input: each a clear error, nothing created
    let clash = c.docker(0, &["secret", "create", "db_pass", &pw])?.refused()?;
    ensure!(clash.contains("rpc error: code = AlreadyExists desc = secret db_pass already exists"), "{clash}");
    let r = c.api(0, "POST", "/secrets/create", Some(r#"{"Name":"db_pass","Data":"eA=="}"#))?;
    ensure!(r.status == 409, "name clash answered {}", r.status);
    let big = file(&c, "big", &vec![b'x'; 512_000])?;
    let e = c.docker(0, &["secret", "create", "big", &big])?.refused()?;
    ensure!(e.contains("secret data must be larger than 0 and less than 512000 bytes"), "{e}");
    let e = c.docker(0, &["secret", "create", "bad name!", &pw])?.refused()?;
    ensure!(e.contains("invalid name, only 64 [a-zA-Z0-9-_.] characters allowed"), "{e}");
    let tpl = file(&c, "tpl", b"host={{.Node.Hostname}\n")?;
    let e = c.docker(0, &["config", "create", "--template-driver", "golang", "tpl", &tpl])?.refused()?;
    ensure!(e.contains("config tpl is not a template skep can render: template: line 1: unclosed action"), "{e}");
    let r = c.api(0, "POST", "/secrets/create", Some(r#"{"Name":"ext","Data":"eA==","Driver":{"Name":"vault"}}"#))?;
    ensure!(r.status == 501 && r.message().contains("secret drivers"), "{} {}", r.status, r.body);
    ensure!(names(&c, "secret")? == ["db_pass"], "secrets after refusals: {:?}", names(&c, "secret")?);
    ensure!(names(&c, "config")? == ["app_conf"], "configs after refusals: {:?}", names(&c, "config")?);

    // services: an unknown secret, duplicate targets, a Runtime config
    let e = c.docker(0, &["service", "create", "-d", "--name", "x", "--secret", "nope", "busybox", "sleep", "1"])?.refused()?;
    ensure!(e.contains("secret not found: nope"), "{e}");
    let file_ref = |target: &str| serde_json::json!({"File": {"Name": target, "UID": "0", "GID": "0", "Mode": 292}, "SecretID": id, "SecretName": "db_pass"});
    let spec = |secrets: Value| serde_json::json!({"Name": "x", "TaskTemplate": {"ContainerSpec": {"Image": "busybox", "Secrets": secrets}}}).to_string();
    let r = c.api(0, "POST", "/services/create", Some(&spec(serde_json::json!([file_ref("a"), file_ref("a")]))))?;
    ensure!(r.status == 400 && r.message().contains("secret references 'db_pass' and 'db_pass' have a conflicting target: 'a'"), "{}", r.body);
    let mut wrong = file_ref("a");
    wrong["SecretID"] = "nope".into();
    let r = c.api(0, "POST", "/services/create", Some(&spec(serde_json::json!([wrong]))))?;
    ensure!(r.status == 400 && r.message() == "rpc error: code = InvalidArgument desc = secret not found: db_pass", "{}", r.body);
    ensure!(c.services(0)?.is_empty(), "a refused service was created");

    // in use: refused naming the service; free again once it is gone
    c.docker(0, &["service", "create", "-d", "--name", "user", "--secret", "db_pass", "--config", "src=app_conf,target=/etc/app.conf", "busybox", "sleep", "3600"])?.ok()?;
    let e = c.docker(0, &["secret", "rm", "db_pass"])?.refused()?;
    ensure!(e.contains("rpc error: code = InvalidArgument desc = secret 'db_pass' is in use by the following service: user"), "{e}");
    let e = c.docker(0, &["config", "rm", "app_conf"])?.refused()?;
    ensure!(e.contains("config 'app_conf' is in use by the following service: user"), "{e}");
    c.docker(0, &["service", "rm", "user"])?.ok()?;
    c.docker(0, &["secret", "rm", "db_pass"])?.ok()?;
    c.docker(0, &["config", "rm", "app_conf"])?.ok()?;
    ensure!(names(&c, "secret")?.is_empty() && names(&c, "config")?.is_empty(), "left after rm");
    let e = c.docker(0, &["secret", "inspect", "db_pass"])?.refused()?;
    ensure!(e.contains("secret db_pass not found"), "{e}");
    c.pass();
    Ok(())
}

#[test]
fn tasks_get_their_secret_and_config_files_and_a_rotation_gives_the_new_tasks_the_new_secret() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(3)?;
    c.form(1, 2)?;
    c.set_client_timeout(Duration::from_secs(90));
    let old = b"old-secret-7Yc2Qp";
    let new = b"new-secret-Mw4Zt8";
    c.docker(0, &["secret", "create", "pw_v1", &file(&c, "v1", old)?])?.ok()?;
    c.docker(0, &["secret", "create", "pw_v2", &file(&c, "v2", new)?])?.ok()?;
    c.docker(0, &["config", "create", "app_conf", &file(&c, "conf", b"port=8080\n")?])?.ok()?;
    let tpl = b"svc={{.Service.Name}} slot={{.Task.Slot}} host={{.Node.Hostname}} env={{env \"MODE\"}} pw={{secret \"pw\"}}\n";
    c.docker(0, &["config", "create", "--template-driver", "golang", "tpl", &file(&c, "tpl", tpl)?])?.ok()?;

    // two replicas on the workers only: the manager never runs a task using the secret
    c.docker(
        0,
        &[
            "service", "create", "-d", "--name", "app", "--replicas", "2", "--constraint", "node.role==worker",
            "--replicas-max-per-node", "1", "--env", "MODE=prod",
            "--secret", "src=pw_v1,target=pw,uid=1000,gid=1001,mode=0400",
            "--config", "src=app_conf,target=/etc/skep-app.conf,mode=0440",
            "--config", "src=tpl,target=/etc/skep-app.tpl",
            "busybox", "sleep", "3600",
        ],
    )?
    .ok()?;
    let tasks = c.wait_running(0, "app", 2, Duration::from_secs(60))?;
    eprintln!("{}", summarize_tasks(&tasks));
    for (t, data, mode, uid, gid) in task_file(&c, "app", "/run/secrets/pw", 2)? {
        ensure!(data == old && (mode, uid, gid) == (0o400, 1000, 1001), "secret file of {}: {data:?} {mode:o} {uid}:{gid}", t["ID"]);
    }
    for (_, data, mode, uid, gid) in task_file(&c, "app", "/etc/skep-app.conf", 2)? {
        ensure!(data == b"port=8080\n" && (mode, uid, gid) == (0o440, 0, 0), "config file: {data:?} {mode:o} {uid}:{gid}");
    }
    for (t, data, mode, ..) in task_file(&c, "app", "/etc/skep-app.tpl", 2)? {
        let node = c.api(0, "GET", &format!("/nodes/{}", t["NodeID"].as_str().unwrap_or_default()), None)?.json()?;
        let host = node["Description"]["Hostname"].as_str().unwrap_or_default().to_owned();
        ensure!(!host.is_empty(), "no hostname: {node}");
        let want = format!("svc=app slot={} host={host} env=prod pw={}\n", t["Slot"], String::from_utf8_lossy(old));
        ensure!(String::from_utf8_lossy(&data) == want && mode == 0o444, "template rendered as {:?}, want {want:?}", String::from_utf8_lossy(&data));
    }
    // only the nodes running the tasks hold files (one tmpfs per task); no node's data root holds the secret
    ensure!(file_mounts(&c, 0).is_empty(), "the manager ran no task using the secret, yet holds {:?}", file_mounts(&c, 0));
    for i in 1..3 {
        ensure!(file_mounts(&c, i).len() == 1, "{} runs one task: {:?}", c.host(i).name, file_mounts(&c, i));
    }
    // a worker daemon restarts: its task runs on (adopted) and keeps its files
    let before: Vec<String> = task_file(&c, "app", "/run/secrets/pw", 2)?.iter().map(|f| f.0["ID"].to_string()).collect();
    c.restart(1)?;
    c.wait_nodes(0, Duration::from_secs(30), "3 nodes Ready after the restart", |nodes| {
        nodes.len() == 3 && nodes.iter().all(|v| v["Status"] == "Ready")
    })?;
    let after = task_file(&c, "app", "/run/secrets/pw", 2)?;
    ensure!(after.iter().all(|f| f.1 == old && before.contains(&f.0["ID"].to_string())), "after a daemon restart: {:?}", before);
    // nothing of the content reaches the host's own files (the engine may leave empty mount points there)
    for p in ["/etc/skep-app.conf", "/etc/skep-app.tpl", "/run/secrets/pw"] {
        ensure!(std::fs::read(p).unwrap_or_default().is_empty(), "{p} on the host has content");
    }

    for i in 0..3 {
        let on_disk = skep_tests::files::files_containing(&c.host(i).dir, old, &[]);
        ensure!(on_disk.is_empty(), "the secret is on {}'s disk: {on_disk:?}", c.host(i).name);
    }

    // rotation: the new tasks read the new secret at the same target
    c.docker(0, &["service", "update", "-d", "--secret-rm", "pw_v1", "--secret-add", "src=pw_v2,target=pw,uid=1000,gid=1001,mode=0400", "app"])?
        .ok()?;
    wait_until("every running task reads the new secret", Duration::from_secs(60), || -> Result<()> {
        let files = read_task_file(&c, "app", "/run/secrets/pw")?;
        ensure!(files.len() == 2, "{} running tasks", files.len());
        for (t, data, ..) in files {
            ensure!(data == new, "task {} reads {:?}", t["ID"], String::from_utf8_lossy(&data));
        }
        Ok(())
    })?;
    let e = c.docker(0, &["secret", "rm", "pw_v2"])?.refused()?;
    ensure!(e.contains("secret 'pw_v2' is in use by the following service: app"), "{e}");
    c.docker(0, &["secret", "rm", "pw_v1"])?.ok()?;

    // the service goes: so do the files, on every node
    c.docker(0, &["service", "rm", "app"])?.ok()?;
    wait_until("no task files left on any node", Duration::from_secs(30), || no_task_files_left(&c, 3))?;
    c.pass();
    Ok(())
}

#[test]
fn a_stack_with_secrets_and_configs_deploys_and_stack_rm_leaves_nothing_behind() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(2)?;
    c.form(1, 1)?;
    c.set_client_timeout(Duration::from_secs(90));
    c.docker(0, &["secret", "create", "shared_key", &file(&c, "shared", b"external-9Kd")?])?.ok()?;
    file(&c, "db.txt", b"stack-secret-Pq3")?;
    file(&c, "app.conf", b"stack config\n")?;
    let compose = "services:\n  app:\n    image: busybox\n    command: [\"sleep\", \"3600\"]\n    stop_grace_period: 1s\n    deploy:\n      replicas: 2\n\
                   \x20   secrets:\n      - db\n      - source: ext\n        target: shared\n        mode: 0400\n\
                   \x20   configs:\n      - source: cfg\n        target: /etc/skep-stack.conf\n\
                   secrets:\n  db:\n    file: ./db.txt\n  ext:\n    external: true\n    name: shared_key\n\
                   configs:\n  cfg:\n    file: ./app.conf\n";
    let compose_path = file(&c, "compose.yml", compose.as_bytes())?;
    let out = c.docker(0, &["stack", "deploy", "-c", &compose_path, "st"])?;
    let text = format!("{}{}", out.ok()?, out.stderr);
    ensure!(text.contains("Creating secret st_db") && text.contains("Creating config st_cfg"), "{text}");
    c.wait_running(0, "st_app", 2, Duration::from_secs(60))?;
    for (_, data, mode, ..) in task_file(&c, "st_app", "/run/secrets/db", 2)? {
        ensure!(data == b"stack-secret-Pq3" && mode == 0o444, "{data:?} {mode:o}");
    }
    for (_, data, mode, ..) in task_file(&c, "st_app", "/run/secrets/shared", 2)? {
        ensure!(data == b"external-9Kd" && mode == 0o400, "{data:?} {mode:o}");
    }
    for (_, data, ..) in task_file(&c, "st_app", "/etc/skep-stack.conf", 2)? {
        ensure!(data == b"stack config\n", "{data:?}");
    }
    let labelled = serde_json::json!({"label": {"com.docker.stack.namespace=st": true}}).to_string();
    let s = c.api(0, "GET", &format!("/secrets?filters={}", url_encode(&labelled)), None)?.json()?;
    ensure!(s.as_array().map(Vec::len) == Some(1) && s[0]["Spec"]["Name"] == "st_db", "{s}");

    // a second deploy of the same file updates in place (the unchanged data is accepted)
    c.docker(0, &["stack", "deploy", "-c", &compose_path, "st"])?.ok()?;

    c.docker(0, &["stack", "rm", "st"])?.ok()?;
    wait_until("the stack is gone: no service, task, secret, config or task file", Duration::from_secs(60), || -> Result<()> {
        ensure!(c.services(0)?.is_empty(), "services left");
        let t = c.api(0, "GET", &format!("/tasks?filters={}", url_encode(&labelled)), None)?.json()?;
        ensure!(t.as_array().is_none_or(|a| a.iter().all(|t| t["Status"]["State"] != "running")), "tasks still running: {t}");
        ensure!(names(&c, "secret")? == ["shared_key"], "secrets: {:?}", names(&c, "secret")?);
        ensure!(names(&c, "config")?.is_empty(), "configs: {:?}", names(&c, "config")?);
        no_task_files_left(&c, 2)
    })?;
    let again = c.docker(0, &["stack", "rm", "st"])?;
    let text = format!("{}{}", again.ok()?, again.stderr);
    ensure!(text.contains("Nothing found in stack: st"), "{text}");
    c.pass();
    Ok(())
}
