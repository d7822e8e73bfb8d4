//! What a process task gets, through the engine's public API and the real task init (`skep-task-init`): mounts and
//! volumes, enforced limits, isolation, adoption after an agent restart. Real cgroups, mounts and namespaces: root
//! only (each test says when it skips). Every test cleans up its tasks, cgroups and directories, also when it fails
//! ([`Env`]'s drop).

use skep_api::docker::{ContainerSpec, Limit, ResourceRequirements, Task, TaskSpec};
use skep_worker::engine::process::{Isolation, ProcessEngine};
use skep_worker::engine::spec::{NodeInfo, LABEL_SERVICE_NAME};
use skep_worker::engine::{Engine, EngineError, Exit, Handle, TaskFile};
use skep_worker::volumes::{ListFilter, VolumeStore};
use std::path::{Path, PathBuf};
use std::time::Duration;

const STEP: Duration = Duration::from_secs(30);

/// A test's engine, its directory and what it started; dropping it kills what still runs and removes cgroups and
/// files even when the test failed half-way.
struct Env {
    engine: ProcessEngine,
    dir: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        let tasks = self.dir.join("engine/tasks");
        for entry in std::fs::read_dir(&tasks).into_iter().flatten().flatten() {
            let read = |f: &str| -> serde_json::Value {
                std::fs::read(entry.path().join(f)).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
            };
            if let Some(pid) = read("handle.json")["pid"].as_i64().filter(|p| *p > 0) {
                let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid as i32), nix::sys::signal::Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(200));
            for d in read("resources.json")["cgroup"]["dirs"].as_array().into_iter().flatten() {
                let _ = std::fs::remove_dir(d.as_str().unwrap_or_default());
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn init() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_skep-task-init"))
}

/// An engine of its own (`None`, with a message, when not root).
fn env(name: &str) -> Option<Env> {
    if !nix::unistd::geteuid().is_root() {
        println!("skipped: needs root (cgroups, mounts, namespaces)");
        return None;
    }
    let dir = std::env::temp_dir().join(format!("skep-rt-{name}-{}-{:x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let engine = ProcessEngine::new(dir.join("engine"))
        .with_init(init())
        .with_isolation(Isolation::Namespaces)
        .with_volumes(VolumeStore::new(dir.join("volumes")))
        .with_node(NodeInfo { hostname: "node-a".into(), architecture: "x86_64".into(), os: "linux".into() });
    Some(Env { engine, dir })
}

/// A task running `sh -c script`.
fn task(script: &str) -> Task {
    Task {
        id: format!("rt{:016x}", rand::random::<u64>()),
        service_id: "svc".into(),
        node_id: "node1".into(),
        slot: 1,
        spec: TaskSpec {
            container_spec: Some(ContainerSpec {
                command: vec!["sh".into(), "-c".into(), script.into()],
                stop_grace_period: Some(1_000_000_000),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn spec(t: &mut Task) -> &mut ContainerSpec {
    t.spec.container_spec.as_mut().unwrap()
}

fn with_mounts(mut t: Task, mounts: serde_json::Value) -> Task {
    spec(&mut t).set_field("Mounts", mounts).unwrap();
    t
}

fn with_limits(mut t: Task, nano_cpus: i64, memory_bytes: i64, pids: i64) -> Task {
    let mut l = Limit { nano_cpus, memory_bytes, ..Default::default() };
    if pids > 0 {
        l.pids = pids;
    }
    t.spec.resources = Some(ResourceRequirements { limits: Some(l), reservations: None });
    t
}

async fn start(e: &ProcessEngine, t: &Task) -> Result<Handle, EngineError> {
    tokio::time::timeout(STEP, async {
        e.prepare(t).await?;
        e.start(t).await
    })
    .await
    .expect("prepare and start in time")
}

async fn wait(e: &ProcessEngine, h: &Handle) -> Exit {
    tokio::time::timeout(STEP, e.wait(h)).await.expect("the task ended in time").expect("wait")
}

/// Runs `t` to its end; its exit and output.
async fn run(e: &ProcessEngine, t: &Task) -> (Exit, String) {
    let h = start(e, t).await.unwrap_or_else(|err| panic!("start: {err}"));
    let exit = wait(e, &h).await;
    let out = String::from_utf8_lossy(&e.logs(&t.id, 1 << 20).await.unwrap()).into_owned();
    (exit, out)
}

/// The value after `key=` in `out`.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key}= in the task's output:\n{out}"))
}

/// Waits (bounded) until the task's output contains `needle`.
async fn output_has(e: &ProcessEngine, id: &str, needle: &str) -> bool {
    for _ in 0..300 {
        if String::from_utf8_lossy(&e.logs(id, 1 << 20).await.unwrap_or_default()).contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

fn gone(dirs: &[PathBuf]) -> bool {
    dirs.iter().all(|d| !d.exists())
}

#[tokio::test]
async fn binds_are_read_write_or_read_only() {
    let Some(env) = env("bind") else { return };
    let src = env.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello"), "from the host").unwrap();
    let (rw, ro) = (env.dir.join("mnt/rw"), env.dir.join("mnt/ro"));
    let t = with_mounts(
        task(&format!(
            "echo read=$(cat {rw}/hello); echo new > {rw}/written && echo rw=ok; \
             (echo x > {ro}/x) 2>/dev/null && echo ro=writable || echo ro=refused",
            rw = rw.display(),
            ro = ro.display()
        )),
        serde_json::json!([
            {"Type": "bind", "Source": src, "Target": rw},
            {"Type": "bind", "Source": src, "Target": ro, "ReadOnly": true, "BindOptions": {"Propagation": "private"}},
        ]),
    );
    let (exit, out) = run(&env.engine, &t).await;
    assert!(exit.success(), "{exit:?}: {out}");
    assert_eq!((field(&out, "read"), field(&out, "rw"), field(&out, "ro")), ("from the host", "ok", "refused"));
    assert_eq!(std::fs::read_to_string(src.join("written")).unwrap(), "new\n");
    assert!(!src.join("x").exists());
    // the mounts were the task's alone: the host sees empty mount points
    assert!(rw.is_dir() && std::fs::read_dir(&rw).unwrap().next().is_none());
    env.engine.remove(&t.id).await.unwrap();
}

#[tokio::test]
async fn bad_mounts_are_rejected_with_a_reason_and_leave_nothing_behind() {
    let Some(env) = env("badmount") else { return };
    let e = &env.engine;
    let missing = env.dir.join("no-such-dir");
    let target = env.dir.join("mnt/x").display().to_string();
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (serde_json::json!([{"Type": "nfs", "Source": "a", "Target": target}]), "invalid MountType: \"nfs\""),
        (
            serde_json::json!([{"Type": "bind", "Source": "relative/dir", "Target": target}]),
            "invalid mount path: 'relative/dir' mount path must be absolute",
        ),
        (serde_json::json!([{"Type": "bind", "Source": missing, "Target": target}]), "bind source path does not exist"),
        (
            serde_json::json!([{"Type": "bind", "Source": "/tmp", "Target": target, "TmpfsOptions": {"SizeBytes": 1}}]),
            "field TmpfsOptions must not be specified",
        ),
        (
            serde_json::json!([{"Type": "bind", "Source": "/tmp", "Target": target, "VolumeOptions": {"NoCopy": true}}]),
            "field VolumeOptions must not be specified",
        ),
        (
            serde_json::json!([{"Type": "volume", "Source": "v1", "Target": target,
                "VolumeOptions": {"DriverConfig": {"Name": "rexray"}}}]),
            "volume driver \"rexray\" is not supported",
        ),
        (
            serde_json::json!([{"Type": "bind", "Source": "/tmp", "Target": target, "BindOptions": {"Propagation": "rshared"}}]),
            "propagation rshared is not supported by the process engine",
        ),
        (serde_json::json!([{"Type": "tmpfs", "Target": "/"}]), "destination can't be '/'"),
    ];
    for (mounts, want) in cases {
        let t = with_mounts(task("true"), mounts.clone());
        let err = start(e, &t).await.unwrap_err();
        assert!(err.to_string().contains(want), "{mounts}: {err}");
        assert!(!err.is_not_found());
    }
    // a source that vanishes between prepare and start: refused at start, the volume and cgroup it took given back
    let src = env.dir.join("vanishing");
    std::fs::create_dir_all(&src).unwrap();
    let t = with_limits(
        with_mounts(
            task("true"),
            serde_json::json!([{"Type": "volume", "Source": "keep", "Target": env.dir.join("mnt/v")},
                {"Type": "bind", "Source": src, "Target": target}]),
        ),
        0,
        32 << 20,
        0,
    );
    e.prepare(&t).await.unwrap();
    std::fs::remove_dir(&src).unwrap();
    let err = e.start(&t).await.unwrap_err();
    assert!(err.to_string().contains("bind source path does not exist"), "{err}");
    assert!(e.cgroup_dirs(&t.id).is_empty());
    assert!(e.volumes().users("keep").await.map(|u| u.is_empty()).unwrap_or(true), "the volume is not held");
    // a sysctl the kernel refuses fails in the init: rejected with its reason, the cgroup removed
    let mut t = with_limits(task("true"), 0, 32 << 20, 0);
    spec(&mut t).set_field("Sysctls", serde_json::json!({"net.ipv4.ip_default_ttl": "999"})).unwrap();
    let err = start(e, &t).await.unwrap_err();
    assert!(err.to_string().contains("setting sysctl net.ipv4.ip_default_ttl=999"), "{err}");
    let leftover: Vec<PathBuf> = ["memory", "cpu", "pids"]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join("skep").join(&t.id))
        .chain(std::iter::once(Path::new("/sys/fs/cgroup/skep").join(&t.id)))
        .collect();
    assert!(gone(&leftover), "no cgroup left: {leftover:?}");
    e.remove(&t.id).await.unwrap();
}

#[tokio::test]
async fn a_named_volume_outlives_its_task_and_an_anonymous_one_does_not() {
    let Some(env) = env("volume") else { return };
    let e = &env.engine;
    let data = env.dir.join("mnt/data");
    let anon = env.dir.join("mnt/anon");
    let mounts = serde_json::json!([
        {"Type": "volume", "Source": "appdata", "Target": data, "VolumeOptions": {"Labels": {"app": "{{.Service.Name}}"}}},
        {"Type": "volume", "Target": anon},
    ]);
    let mut first = with_mounts(
        task(&format!("echo kept > {}/file; touch {}/scratch; echo ready; sleep 30", data.display(), anon.display())),
        mounts.clone(),
    );
    first.labels.insert(LABEL_SERVICE_NAME.into(), "web".into());
    let h = start(e, &first).await.unwrap();
    assert!(output_has(e, &first.id, "ready").await);
    let v = e.volumes().inspect("appdata").await.unwrap();
    assert_eq!(v.labels.get("app").map(String::as_str), Some("web"), "labels templated and applied");
    let err = e.volumes().remove("appdata", false).await.unwrap_err();
    assert!(err.to_string().contains("volume is in use"), "{err}");
    let anonymous: Vec<String> = e
        .volumes()
        .list(&ListFilter { label: vec!["com.docker.volume.anonymous".into()], ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.name)
        .collect();
    assert_eq!(anonymous.len(), 1);
    e.stop(&h, &first).await.unwrap();
    wait(e, &h).await;
    e.remove(&first.id).await.unwrap();
    assert!(e.volumes().inspect(&anonymous[0]).await.is_err(), "the anonymous volume went with its task");

    // the replacement task finds the data
    let second = with_mounts(task(&format!("echo got=$(cat {}/file)", data.display())), mounts);
    let (exit, out) = run(e, &second).await;
    assert!(exit.success(), "{exit:?}: {out}");
    assert_eq!(field(&out, "got"), "kept");
    e.remove(&second.id).await.unwrap();
    assert!(e.volumes().users("appdata").await.unwrap().is_empty());
    e.volumes().remove("appdata", false).await.unwrap();
}

#[tokio::test]
async fn tmpfs_has_its_size_and_mode() {
    let Some(env) = env("tmpfs") else { return };
    let target = env.dir.join("mnt/scratch");
    let t = with_mounts(
        task(&format!(
            "echo mode=$(stat -c %a {t}); echo line=$(grep ' {t} ' /proc/self/mountinfo)",
            t = target.display()
        )),
        serde_json::json!([{"Type": "tmpfs", "Target": target, "TmpfsOptions": {"SizeBytes": 2 << 20, "Mode": 0o750}}]),
    );
    let (exit, out) = run(&env.engine, &t).await;
    assert!(exit.success(), "{exit:?}: {out}");
    assert_eq!(field(&out, "mode"), "750");
    let line = field(&out, "line");
    assert!(line.contains(" - tmpfs ") && line.contains("size=2048k") && line.contains("noexec"), "{line}");
    env.engine.remove(&t.id).await.unwrap();
}

#[tokio::test]
async fn a_task_over_its_memory_limit_is_oom_killed_and_says_so() {
    let Some(env) = env("oom") else { return };
    let t = with_limits(task("echo start; tail /dev/zero"), 0, 16 << 20, 0);
    let h = start(&env.engine, &t).await.unwrap();
    let dirs = env.engine.cgroup_dirs(&t.id);
    assert!(!dirs.is_empty(), "the task has a cgroup");
    let exit = wait(&env.engine, &h).await;
    assert_eq!(exit, Exit::OomKilled { code: 137, memory_limit: 16 << 20 });
    assert!(gone(&dirs), "the cgroup is removed when the task ends: {dirs:?}");
    assert_eq!(wait(&env.engine, &h).await, exit, "the same answer again");
    env.engine.remove(&t.id).await.unwrap();
}

#[tokio::test]
async fn cpu_memory_and_pids_limits_are_in_the_tasks_cgroup() {
    let Some(env) = env("limits") else { return };
    let e = &env.engine;
    let t = with_limits(
        // the inner shell gives up at the first fork the pids limit refuses; the outer one goes on
        task("echo ready; sh -c 'i=0; while [ $i -lt 40 ]; do sleep 5 & i=$((i+1)); done'; echo forks=done; sleep 30"),
        500_000_000,
        64 << 20,
        12,
    );
    let h = start(e, &t).await.unwrap();
    let log = || async { String::from_utf8_lossy(&e.logs(&t.id, 1 << 20).await.unwrap()).into_owned() };
    assert!(output_has(e, &t.id, "forks=done").await, "{}", log().await);
    let dirs = e.cgroup_dirs(&t.id);
    let read = |file: &str| -> String {
        dirs.iter()
            .map(|d| d.join(file))
            .find(|p| p.exists())
            .map(|p| std::fs::read_to_string(p).unwrap().trim().to_string())
            .unwrap_or_else(|| panic!("no {file} in {dirs:?}"))
    };
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        assert_eq!(read("cpu.max"), "50000 100000");
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
    } else {
        assert_eq!((read("cpu.cfs_quota_us"), read("cpu.cfs_period_us")), ("50000".into(), "100000".into()));
        assert_eq!(read("memory.limit_in_bytes"), (64u64 << 20).to_string());
    }
    assert_eq!(read("pids.max"), "12");
    let procs = read("cgroup.procs");
    assert!(procs.lines().any(|p| p == h.pid.to_string()), "the supervisor is in the cgroup: {procs}");
    // the pids limit held: the shell could not start 40 sleeps
    let out = String::from_utf8_lossy(&e.logs(&t.id, 1 << 20).await.unwrap()).into_owned();
    assert!(out.contains("Cannot fork"), "{out}");
    e.stop(&h, &t).await.unwrap();
    wait(e, &h).await;
    assert!(gone(&dirs), "removed: {dirs:?}");
    e.remove(&t.id).await.unwrap();
}

/// The mask of CapEff/CapBnd for these capabilities.
fn cap_mask(caps: &[u32]) -> String {
    format!("{:016x}", caps.iter().fold(0u64, |m, c| m | 1 << c))
}

/// Docker's default capabilities by number (CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, FSETID 4, KILL 5, SETGID 6, SETUID 7,
/// SETPCAP 8, NET_BIND_SERVICE 10, NET_RAW 13, SYS_CHROOT 18, MKNOD 27, AUDIT_WRITE 29, SETFCAP 31).
const DOCKER_DEFAULT: [u32; 14] = [0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

#[tokio::test]
async fn a_task_has_its_own_hostname_ipc_privileges_and_environment() {
    let Some(env) = env("isolation") else { return };
    let script = "echo host=$(hostname); echo etc=$(cat /etc/hostname); echo env_host=$HOSTNAME; echo node=$NODE; \
                  echo capeff=$(grep CapEff /proc/self/status | cut -f2); \
                  echo capbnd=$(grep CapBnd /proc/self/status | cut -f2); \
                  echo nnp=$(grep NoNewPrivs /proc/self/status | cut -f2); \
                  echo uts=$(readlink /proc/self/ns/uts); echo ipc=$(readlink /proc/self/ns/ipc); \
                  echo shm=$(touch /dev/shm/skep-rt-probe && echo ok); \
                  echo home=$HOME; echo path=$PATH; echo cargo=$(env | grep -c -e CARGO -e RUST -e NEXTEST); \
                  echo ttl=$(cat /proc/sys/net/ipv4/ip_default_ttl); echo shmmni=$(cat /proc/sys/kernel/shmmni); \
                  echo procsys=$(awk '$5 == \"/proc/sys\" {print substr($6, 1, 2)}' /proc/self/mountinfo)";
    let mut t = task(script);
    t.slot = 3;
    t.labels.insert(LABEL_SERVICE_NAME.into(), "web".into());
    let c = spec(&mut t);
    c.hostname = "{{.Service.Name}}-{{.Task.Slot}}".into();
    c.env = vec!["NODE={{.Node.Hostname}}".into()];
    c.set_field("CapabilityAdd", serde_json::json!(["NET_ADMIN"])).unwrap();
    c.set_field("CapabilityDrop", serde_json::json!(["CAP_CHOWN"])).unwrap();
    c.set_field("Sysctls", serde_json::json!({"net.ipv4.ip_default_ttl": "33", "kernel.shmmni": "1000"})).unwrap();
    let host_ttl = std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl").unwrap();
    let host_shmmni = std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap();
    let (exit, out) = run(&env.engine, &t).await;
    assert!(exit.success(), "{exit:?}: {out}");
    assert_eq!((field(&out, "host"), field(&out, "etc"), field(&out, "env_host")), ("web-3", "web-3", "web-3"));
    assert_eq!(field(&out, "node"), "node-a");
    let mut expected: Vec<u32> = DOCKER_DEFAULT.iter().copied().filter(|c| *c != 0).collect();
    expected.push(12); // NET_ADMIN
    assert_eq!(field(&out, "capeff"), cap_mask(&expected));
    assert_eq!(field(&out, "capbnd"), cap_mask(&expected));
    assert_eq!(field(&out, "nnp"), "1");
    let own = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap().display().to_string();
    assert_ne!(field(&out, "uts"), own("uts"));
    assert_ne!(field(&out, "ipc"), own("ipc"));
    assert_eq!(field(&out, "shm"), "ok");
    assert!(!Path::new("/dev/shm/skep-rt-probe").exists(), "the task's /dev/shm is its own");
    assert_eq!(field(&out, "home"), "/root");
    assert_eq!(field(&out, "path"), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    assert_eq!(field(&out, "cargo"), "0", "nothing of the agent's environment: {out}");
    assert_eq!((field(&out, "ttl"), field(&out, "shmmni")), ("33", "1000"));
    assert_eq!(std::fs::read_to_string("/proc/sys/net/ipv4/ip_default_ttl").unwrap(), host_ttl, "host unchanged");
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/shmmni").unwrap(), host_shmmni, "host unchanged");
    assert_eq!(field(&out, "procsys"), "ro", "Docker's read-only /proc/sys");
    env.engine.remove(&t.id).await.unwrap();

    // a sysctl of the host's kernel, an unknown capability, a read-only root: refused
    for (key, value, want) in [
        ("Sysctls", serde_json::json!({"vm.swappiness": "1"}), "is not in a separate kernel namespace"),
        ("CapabilityAdd", serde_json::json!(["CAP_BOGUS"]), "unknown capability"),
        ("ReadOnly", serde_json::json!(true), "ReadOnly is not supported by the process engine"),
    ] {
        let mut t = task("true");
        spec(&mut t).set_field(key, value).unwrap();
        let err = env.engine.prepare(&t).await.unwrap_err();
        assert!(err.to_string().contains(want), "{key}: {err}");
    }
}

#[tokio::test]
async fn user_and_groups_are_applied_without_capabilities() {
    let Some(env) = env("user") else { return };
    let mut t = task(
        "echo ids=$(id -u):$(id -g); echo groups=$(id -G); echo capeff=$(grep CapEff /proc/self/status | cut -f2); \
         echo capbnd=$(grep CapBnd /proc/self/status | cut -f2)",
    );
    spec(&mut t).user = "4321:4322".into();
    spec(&mut t).set_field("Groups", serde_json::json!(["4400", "root"])).unwrap();
    let (exit, out) = run(&env.engine, &t).await;
    assert!(exit.success(), "{exit:?}: {out}");
    assert_eq!(field(&out, "ids"), "4321:4322");
    let mut groups: Vec<&str> = field(&out, "groups").split(' ').collect();
    groups.sort();
    assert_eq!(groups, vec!["0", "4322", "4400"]);
    assert_eq!(field(&out, "capeff"), "0000000000000000", "a non-root user has no capabilities, as in Docker");
    assert_eq!(field(&out, "capbnd"), cap_mask(&DOCKER_DEFAULT));
    env.engine.remove(&t.id).await.unwrap();

    let mut t = task("true");
    spec(&mut t).set_field("Groups", serde_json::json!(["skep-no-such-group"])).unwrap();
    let err = env.engine.prepare(&t).await.unwrap_err();
    assert_eq!(err.to_string(), "Unable to find group skep-no-such-group: no matching entries in group file");
}

/// What a daemon restart does to the engine: the new instance adopts the task (same supervisor, still in its
/// cgroup with its limit), and stopping it then removes the cgroup.
#[tokio::test]
async fn a_limited_task_survives_an_agent_restart_in_its_cgroup() {
    let Some(env) = env("restart") else { return };
    let t = with_limits(task("trap 'exit 5' TERM; echo ready; while :; do sleep 0.1; done"), 0, 48 << 20, 0);
    let (h, dirs) = {
        let first = ProcessEngine::new(env.dir.join("engine")).with_init(init());
        let h = start(&first, &t).await.unwrap();
        assert!(output_has(&first, &t.id, "ready").await);
        (h, first.cgroup_dirs(&t.id))
        // `first` is dropped here, as when the agent exits
    };
    let second = &env.engine;
    assert_eq!(second.adopt(std::slice::from_ref(&h)).await, vec![(h.clone(), true)]);
    assert_eq!(second.cgroup_dirs(&t.id), dirs);
    let mem = dirs.iter().find(|d| d.join("memory.limit_in_bytes").exists() || d.join("memory.max").exists()).unwrap();
    let procs = std::fs::read_to_string(mem.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|p| p == h.pid.to_string()), "{procs}");
    second.stop(&h, &t).await.unwrap();
    assert_eq!(wait(second, &h).await, Exit::Code(5));
    assert!(gone(&dirs));
    second.remove(&t.id).await.unwrap();
}

/// Secrets and configs: files in memory only, with their owner and mode, read-only in the task, gone with it.
#[tokio::test]
async fn files_are_given_in_memory_with_owner_and_mode() {
    let Some(env) = env("files") else { return };
    let e = &env.engine;
    let (secret, config) = (env.dir.join("run/secrets/db_password"), env.dir.join("etc/app.conf"));
    let t = task(&format!(
        "echo secret=$(cat {s}); echo meta=$(stat -c '%a %u %g' {s}); echo conf=$(cat {c}); \
         (echo x > {s}) 2>/dev/null && echo write=ok || echo write=refused; echo ready; sleep 30",
        s = secret.display(),
        c = config.display()
    ));
    e.prepare(&t).await.unwrap();
    let files = vec![
        TaskFile { target: secret.clone(), data: b"hunter2".to_vec(), uid: 4321, gid: 4322, mode: 0o400 },
        TaskFile { target: config.clone(), data: b"level=debug".to_vec(), uid: 0, gid: 0, mode: 0o444 },
    ];
    e.use_files(&t.id, files).unwrap();
    let h = e.start(&t).await.unwrap();
    assert!(output_has(e, &t.id, "ready").await);
    let out = String::from_utf8_lossy(&e.logs(&t.id, 1 << 16).await.unwrap()).into_owned();
    assert_eq!(field(&out, "secret"), "hunter2");
    assert_eq!(field(&out, "meta"), "400 4321 4322");
    assert_eq!(field(&out, "conf"), "level=debug");
    assert_eq!(field(&out, "write"), "refused");
    // in memory: the files' directory is a tmpfs while the task runs, and the host's targets are empty
    let store = e.task_dir(&t.id).join("files");
    let tmpfs = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(store.to_str().unwrap()) && l.contains(" - tmpfs "));
    assert!(tmpfs, "{} is a tmpfs", store.display());
    assert_eq!(std::fs::read(&secret).unwrap(), b"", "the host sees the empty mount point only");
    e.stop(&h, &t).await.unwrap();
    wait(e, &h).await;
    assert!(!store.exists(), "unmounted and removed once the task is over");
    e.remove(&t.id).await.unwrap();

    let bad = vec![TaskFile { target: "relative".into(), data: vec![], uid: 0, gid: 0, mode: 0o400 }];
    assert!(e.use_files("x1", bad).unwrap_err().to_string().contains("absolute path"));
}
