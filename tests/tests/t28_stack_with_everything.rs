//! One stack, deployed with the stock `docker stack deploy`, using everything a task gets: a named volume, a bind
//! mount, a tmpfs, a secret, a config and a memory limit, and beside it a memory hog with a small limit. The volume's
//! content survives the task's replacement; the secret file has its content, mode, uid and gid; the secret's bytes
//! are on no disk outside the managers' Raft files; the hog is OOM-killed and `service ps` says so; `stack rm`
//! leaves no task, cgroup or mount behind, and the volume (which outlives its tasks) is no longer in use.

use anyhow::{ensure, Context as _, Result};
use serde_json::Value;
use skep_tests::services::{is_running, state};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(60);
const SECRET: &[u8] = b"t28-stack-secret-Xq7";

/// The running task of `service` and its supervisor's PID.
fn running(c: &Cluster, service: &str) -> Result<(Value, u64)> {
    let t = c.tasks(0, service)?.into_iter().find(is_running).context("no running task")?;
    let pid = t["Status"]["ContainerStatus"]["PID"].as_u64().context("a running task without a PID")?;
    Ok((t, pid))
}

/// Mounts under `root` in the host's mount table (tasks' mounts live in their own namespaces; none may leak).
fn host_mounts_under(root: &Path) -> Vec<String> {
    let me = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let root = root.display().to_string();
    me.lines().filter_map(|l| l.split(' ').nth(4)).filter(|m| m.starts_with(&root)).map(str::to_string).collect()
}

/// Task cgroups left under skep's subtree for `task` (v1 memory controller, or v2).
fn cgroup_left(task: &str) -> bool {
    ["/sys/fs/cgroup/memory/skep", "/sys/fs/cgroup/skep"].iter().any(|d| Path::new(d).join(task).exists())
}

#[test]
fn a_stack_with_volume_bind_tmpfs_secret_config_and_limits_runs_and_leaves_nothing_behind() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    c.set_engine(Some("process"));
    c.form(1, 0)?;
    c.set_client_timeout(Duration::from_secs(90));
    // mount targets are created on the host (a process task shares its root): keep them in the cluster's directory
    let root = c.root().to_path_buf();
    let (data, host, scratch) = (root.join("mnt/data"), root.join("mnt/host"), root.join("mnt/scratch"));
    let hostdir = root.join("hostdir");
    std::fs::create_dir_all(&hostdir)?;
    std::fs::write(hostdir.join("hello"), b"from the host\n")?;
    std::fs::write(root.join("secret.txt"), SECRET)?;
    std::fs::write(root.join("app.conf"), b"setting=1\n")?;
    let compose = format!(
        r#"services:
  app:
    image: busybox
    command: ["sh", "-c", "date >> {data}/starts; exec sleep 3600"]
    volumes:
      - appdata:{data}
      - type: bind
        source: {hostdir}
        target: {host}
        read_only: true
      - type: tmpfs
        target: {scratch}
        tmpfs:
          size: 1048576
    secrets:
      - source: pw
        target: pw
        uid: "1000"
        gid: "1001"
        mode: 0400
    configs:
      - source: conf
        target: /tmp/t28-app.conf
    deploy:
      resources:
        limits:
          memory: 64M
  hog:
    image: busybox
    command: ["sh", "-c", "x=0123456789abcdef; while :; do x=$$x$$x; done"]
    deploy:
      restart_policy:
        condition: none
      resources:
        limits:
          memory: 16M
volumes:
  appdata:
secrets:
  pw:
    file: ./secret.txt
configs:
  conf:
    file: ./app.conf
"#,
        data = data.display(),
        hostdir = hostdir.display(),
        host = host.display(),
        scratch = scratch.display(),
    );
    let compose_path = root.join("compose.yml");
    std::fs::write(&compose_path, compose)?;
    c.docker(0, &["stack", "deploy", "-c", &compose_path.display().to_string(), "st"])?.ok()?;
    c.wait_running(0, "st_app", 1, CONVERGE)?;
    let (task, pid) = running(&c, "st_app")?;
    let first = task["ID"].as_str().unwrap_or("").to_string();

    // what the task sees, through its root
    let at = |p: &str| PathBuf::from(format!("/proc/{pid}/root{p}"));
    let s = at("/run/secrets/pw");
    let m = std::fs::metadata(&s).with_context(|| format!("{}", s.display()))?;
    assert_eq!(std::fs::read(&s)?, SECRET);
    assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o400, 1000, 1001), "the secret file's mode and owner");
    assert_eq!(std::fs::read(at("/tmp/t28-app.conf"))?, b"setting=1\n");
    assert_eq!(std::fs::read(at(&format!("{}/hello", host.display())))?, b"from the host\n");
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
    let line = |target: &Path| mountinfo.lines().find(|l| l.split(' ').nth(4) == Some(&target.display().to_string())).unwrap_or("").to_string();
    assert!(line(&host).contains(" ro"), "the bind is read-only: {}", line(&host));
    assert!(line(&scratch).contains("tmpfs") && line(&scratch).contains("size=1024k"), "{}", line(&scratch));
    let memory_limit = std::fs::read_to_string(format!("/sys/fs/cgroup/memory/skep/{first}/memory.limit_in_bytes"))
        .or_else(|_| std::fs::read_to_string(format!("/sys/fs/cgroup/skep/{first}/memory.max")))?;
    assert_eq!(memory_limit.trim(), (64u64 << 20).to_string(), "the task's memory limit");

    // the secret's bytes are on no disk but the managers' Raft files
    let leaks = skep_tests::files::files_containing(&root, SECRET, &["raft"]).into_iter().filter(|p| !p.ends_with("secret.txt")).collect::<Vec<_>>();
    ensure!(leaks.is_empty(), "the secret is on disk: {leaks:?}");

    // the hog is OOM-killed and says so
    let hog = wait_until("the hog OOM-killed", CONVERGE, || -> Result<Value> {
        let t = c.tasks(0, "st_hog")?.into_iter().find(|t| state(t) == "failed").context("not failed yet")?;
        Ok(t)
    })?;
    let err = hog["Status"]["Err"].as_str().unwrap_or("");
    assert!(err.contains("OOM"), "the hog's error: {err:?}");

    // the volume outlives the task: a replacement sees what the first one wrote
    c.docker(0, &["service", "update", "-d", "--force", "st_app"])?.ok()?;
    let (replaced, pid) = wait_until("a replacement task", CONVERGE, || -> Result<(Value, u64)> {
        let (t, pid) = running(&c, "st_app")?;
        ensure!(t["ID"] != first.as_str(), "still the first task");
        let starts = std::fs::read_to_string(format!("/proc/{pid}/root{}/starts", data.display()))?;
        ensure!(starts.lines().count() == 2, "starts: {starts:?}");
        Ok((t, pid))
    })?;
    ensure!(pid > 0 && replaced["ID"] != first.as_str());

    // stack rm: no task, cgroup or mount left, the volume kept but unused
    let tasks: Vec<String> = c.tasks(0, "st_app")?.iter().filter_map(|t| t["ID"].as_str().map(str::to_string)).collect();
    c.docker(0, &["stack", "rm", "st"])?.ok()?;
    wait_until("the stack gone with its tasks, cgroups and mounts", CONVERGE, || -> Result<()> {
        ensure!(c.services(0)?.is_empty(), "services left");
        let left: Vec<&String> = tasks.iter().filter(|t| cgroup_left(t)).collect();
        ensure!(left.is_empty(), "cgroups left: {left:?}");
        let mounts = host_mounts_under(&root);
        ensure!(mounts.is_empty(), "mounts left: {mounts:?}");
        let unused = c.docker(0, &["volume", "ls", "-q", "--filter", "dangling=true"])?.ok()?.to_string();
        ensure!(unused.lines().any(|l| l.trim() == "st_appdata"), "the volume is still in use: {unused:?}");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
