//! What a task gets, end to end on the process engine with the stock docker CLI: `--mount` (bind, volume, tmpfs),
//! `--limit-memory/--limit-cpu/--limit-pids` in the task's own cgroup, `--hostname` templated; a memory hog is
//! OOM-killed and `service ps` says so; a missing bind source is rejected with its reason; the volume's content
//! survives the task's replacement; and stopping the daemon as systemd does with `KillMode=process` (SIGTERM to the
//! main process only) then starting it again leaves the task running, adopted, still in its cgroup.

use anyhow::{ensure, Result};
use serde_json::Value;
use skep_tests::json::str_at;
use skep_tests::services::{state, summarize_tasks};
use skep_tests::{require_root_and_netns, wait_until, Cluster};
use std::path::{Path, PathBuf};
use std::time::Duration;

const CONVERGE: Duration = Duration::from_secs(30);

fn running_task(tasks: &[Value]) -> Option<&Value> {
    tasks.iter().find(|t| state(t) == "running" && t["DesiredState"] == "running")
}

/// The task's line in `/proc/<pid>/cgroup` for `controller` (`memory`, `name=systemd`).
fn cgroup_of(pid: i64, controller: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.split(':').nth(1).is_some_and(|c| c.split(',').any(|c| c == controller)))
        .map(|l| l.splitn(3, ':').nth(2).unwrap_or("").to_string())
        .unwrap_or_default()
}

#[test]
fn tasks_get_mounts_limits_and_hostnames_and_survive_a_daemon_restart() -> Result<()> {
    if !require_root_and_netns() {
        return Ok(());
    }
    let mut c = Cluster::new(1)?;
    c.set_engine(Some("process"));
    c.form(1, 0)?;
    c.set_client_timeout(Duration::from_secs(60));
    // mount targets are created on the host (tasks share its root): keep them in the cluster's directory
    let base: PathBuf = c.root().join("mnt");
    let host_dir = c.root().join("hostdir");
    std::fs::create_dir_all(&host_dir)?;
    let (data, scratch, host) = (base.join("data"), base.join("scratch"), base.join("host"));
    let script = format!(
        "echo \"$(hostname) $(cat {data}/seen 2>/dev/null)\" > {host}/report; echo seen-by-$(hostname) >> {data}/seen; \
         echo $(grep ' {scratch} ' /proc/self/mountinfo | grep -o 'size=[0-9a-z]*') >> {host}/report; exec sleep 3600",
        data = data.display(),
        host = host.display(),
        scratch = scratch.display()
    );
    let out = c.docker(
        0,
        &[
            "service", "create", "-d", "--name", "rt",
            "--mount", &format!("type=bind,src={},dst={}", host_dir.display(), host.display()),
            "--mount", &format!("type=volume,src=rtdata,dst={}", data.display()),
            "--mount", &format!("type=tmpfs,dst={},tmpfs-size=1m", scratch.display()),
            "--limit-memory", "64M", "--limit-cpu", "0.5", "--limit-pids", "50",
            "--hostname", "{{.Service.Name}}-{{.Task.Slot}}",
            "busybox", "sh", "-c", &script,
        ],
    )?;
    out.ok()?;
    let tasks = c.wait_tasks(0, "rt", CONVERGE, "rt running", |t| running_task(t).is_some())?;
    let task = running_task(&tasks).expect("waited for it").clone();
    let pid = task["Status"]["ContainerStatus"]["PID"].as_i64().unwrap_or(0);
    let id = str_at(&task, "ID").unwrap_or("").to_string();
    ensure!(pid > 0, "running task without a PID: {task}");
    let report = wait_until("the task's report", CONVERGE, || -> Result<String> {
        let r = std::fs::read_to_string(host_dir.join("report")).unwrap_or_default();
        ensure!(r.lines().count() >= 2, "report so far: {r:?}");
        Ok(r)
    })?;
    assert_eq!(report.lines().next().unwrap_or("").trim(), "rt-1", "hostname templated, volume empty: {report}");
    assert_eq!(report.lines().nth(1).unwrap_or(""), "size=1024k", "{report}");

    // limits: the task's own cgroup, outside the daemon's
    let mem = cgroup_of(pid, "memory");
    assert!(mem.ends_with(&format!("/skep/{id}")), "memory cgroup of the task: {mem:?}");
    let daemon_pid = c.daemon(0).and_then(|d| d.pid()).expect("daemon runs") as i64;
    if Path::new("/sys/fs/cgroup/systemd").is_dir() {
        assert_ne!(cgroup_of(daemon_pid, "name=systemd"), cgroup_of(pid, "name=systemd"), "out of the daemon's unit");
    }
    let limit_file = |f: &str| std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(f)).unwrap_or_default();
    if Path::new("/sys/fs/cgroup/memory").is_dir() {
        assert_eq!(limit_file(&format!("memory{mem}/memory.limit_in_bytes")).trim(), (64u64 << 20).to_string());
        assert_eq!(limit_file(&format!("cpu/skep/{id}/cpu.cfs_quota_us")).trim(), "50000");
        assert_eq!(limit_file(&format!("pids/skep/{id}/pids.max")).trim(), "50");
    }

    // the daemon stops as systemd stops it with KillMode=process (SIGTERM to it alone) and starts again
    c.stop(0)?;
    assert!(Path::new(&format!("/proc/{pid}")).exists(), "the task outlived the daemon");
    c.start(0)?;
    let tasks = c.wait_tasks(0, "rt", CONVERGE, "rt adopted", |t| running_task(t).is_some())?;
    let after = running_task(&tasks).expect("waited for it");
    assert_eq!(str_at(after, "ID"), Some(id.as_str()), "the same task, not a replacement: {}", summarize_tasks(&tasks));
    assert_eq!(after["Status"]["ContainerStatus"]["PID"].as_i64(), Some(pid));
    assert_eq!(cgroup_of(pid, "memory"), mem, "still limited by its cgroup");

    // the restarted daemon cleans up after the adopted task when it ends (before it starts any task of its own)
    c.docker(0, &["service", "scale", "-d", "rt=0"])?.ok()?;
    let old_cgroup = Path::new("/sys/fs/cgroup/memory/skep").join(&id);
    wait_until("the adopted task's cgroup removed", CONVERGE, || -> Result<()> {
        ensure!(!old_cgroup.exists(), "{} still there", old_cgroup.display());
        Ok(())
    })?;
    // a replacement task finds the volume's content
    c.docker(0, &["service", "scale", "-d", "rt=1"])?.ok()?;
    wait_until("the replacement's report", CONVERGE, || -> Result<()> {
        let r = std::fs::read_to_string(host_dir.join("report")).unwrap_or_default();
        ensure!(r.starts_with("rt-1 seen-by-rt-1"), "report so far: {r:?}");
        Ok(())
    })?;

    // a memory hog: OOM-killed, and `service ps` says so
    c.docker(0, &["service", "create", "-d", "--name", "hog", "--restart-condition", "none", "--limit-memory", "16M", "busybox", "tail", "/dev/zero"])?.ok()?;
    let tasks = c.wait_tasks(0, "hog", CONVERGE, "hog failed", |t| t.iter().any(|t| state(t) == "failed"))?;
    let err = tasks.iter().find_map(|t| str_at(t, "Status.Err")).unwrap_or("").to_string();
    assert_eq!(err, "task: non-zero exit (137): OOM killed (memory limit 16MiB)");
    let ps = c.docker(0, &["service", "ps", "--no-trunc", "hog"])?.ok()?.to_owned();
    assert!(ps.contains("OOM killed (memory limit 16MiB)"), "{ps}");

    // a missing bind source: rejected, with the reason in `service ps`
    let missing = c.root().join("no-such-dir");
    c.docker(0, &["service", "create", "-d", "--name", "nosrc", "--mount", &format!("type=bind,src={},dst=/x", missing.display()), "busybox", "true"])?.ok()?;
    let tasks = c.wait_tasks(0, "nosrc", CONVERGE, "nosrc rejected", |t| t.iter().any(|t| state(t) == "rejected"))?;
    let err = tasks.iter().find_map(|t| str_at(t, "Status.Err")).unwrap_or("").to_string();
    assert!(err.contains(&format!("bind source path does not exist: {}", missing.display())), "{err}");
    assert!(!missing.exists());

    let mut ids: Vec<String> = Vec::new();
    for s in ["rt", "hog", "nosrc"] {
        ids.extend(c.tasks(0, s)?.iter().filter_map(|t| str_at(t, "ID").map(str::to_string)));
        c.docker(0, &["service", "rm", s])?.ok()?;
    }
    wait_until("every task cgroup removed", CONVERGE, || -> Result<()> {
        let left: Vec<&String> =
            ids.iter().filter(|id| Path::new("/sys/fs/cgroup/memory/skep").join(id).exists()).collect();
        ensure!(left.is_empty(), "left: {left:?}");
        Ok(())
    })?;
    c.pass();
    Ok(())
}
