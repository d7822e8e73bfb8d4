//! The `process` engine, skep's embedded default: a task is a program on the host, run under a tiny supervisor.
//!
//! # What a task looks like
//! `prepare` makes `<state_dir>/tasks/<task ID>/` and writes `task.json` (labels, name); `start` spawns
//!
//! ```text
//! setsid unshare --pid --fork --mount-proc --mount --net --kill-child -- setsid   (as root, when namespaces work)
//!   /bin/sh -c SUPERVISOR skep-supervisor <exit file> <ip or ""> <stop signal>
//!     [setpriv --reuid=U --regid=G --init-groups|--clear-groups --]   (ContainerSpec.User)
//!       <Command or Image> <Args…>
//! ```
//!
//! with `env` = `PATH` (the agent's, or Docker's default) + `HOME` + `ContainerSpec.Env`, the working directory `Dir`
//! (default `/`), stdin `/dev/null` and stdout + stderr appended to `stdout.log` (rotated: see `logs.rs`); `TTY` is
//! ignored. The outer `setsid` takes the tree out of the agent's session and no pipe links it to the agent, so tasks
//! survive an agent restart (under systemd that also needs `KillMode=process`). The inner `setsid` makes the
//! supervisor the leader of a process group that holds the task and nothing else: not the `unshare` parent, which
//! dies of any signal but INT and TERM and would take the namespace with it (`--kill-child`). `handle.json` records
//! the [`Handle`].
//!
//! # The supervisor and exit codes
//! The supervisor is a POSIX shell: it brings `lo` up (the new network namespace has only a loopback interface, and
//! it starts down), runs the program in the foreground and then writes `$?` to `<task dir>/exit`. Its exit file is
//! what makes exit codes survive an agent restart: a process that is not our child cannot be `wait`ed for. It traps
//! the stop signal (a trap, not an ignore, so the program still gets the default disposition) and so outlives a stop
//! signal sent to the whole group, and it is PID 1 of the task's PID namespace: when it exits the kernel kills
//! everything the program left behind.
//!
//! # Identity and adoption
//! A handle is `pid:<pid>:<start time>` of the supervisor, the leader of the task's process group (`start` returns
//! only once it is). A process is ours only if `/proc/<pid>/stat` exists, is not a zombie and has the same start time,
//! so a reused PID is never adopted nor signalled. While the agent that started a task lives, it holds its child (the
//! `unshare` parent, or the supervisor itself) and reaps it; after a restart `wait` polls /proc every 100 ms.
//!
//! # Stopping
//! The stop signal goes to the task's process group (so also to children that the program did not pass it on to);
//! after the grace period SIGKILL goes to the group, which kills the supervisor too, and with it (PID 1) the whole
//! namespace; the engine then records `signal 9` as the exit ([`Exit::Signal`]).
//!
//! # Without root or namespaces
//! When the agent is not root, or `unshare` is missing or refused (a container without CAP_SYS_ADMIN), tasks run in
//! plain sessions/process groups without PID, mount or network isolation (logged once at WARN): a program that
//! leaves its process group can then outlive its task, and `User` works only if it names the agent's own user.

mod logs;
mod procfs;
mod user;

use super::spec::{self, container_spec};
use super::{Engine, EngineError, Exit, Handle};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use skep_api::docker::{ContainerSpec, Task};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// Docker's default `PATH`, used when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Rotate `stdout.log` past this size.
pub const DEFAULT_LOG_LIMIT: u64 = 10 << 20;
/// How often `wait` and `stop` look at a process they cannot `waitpid` for.
const POLL: Duration = Duration::from_millis(100);
/// How long a SIGKILLed task may take to disappear before `stop` gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);

/// The supervisor script; `$1` exit file, `$2` path of `ip` or empty, `$3` stop signal number, then the program.
const SUPERVISOR: &str = r#"e=$1 ip=$2 sig=$3 rv=$4
shift 4
trap : TERM "$sig"
if [ -n "$ip" ]; then "$ip" link set lo up || echo "skep: could not bring the loopback interface up" >&2; fi
if [ -n "$rv" ]; then mount --bind "$rv" /etc/resolv.conf || echo "skep: could not mount resolv.conf" >&2; fi
"$@"
echo $? >"$e"
"#;

/// How tasks are isolated from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces when root and `unshare` works (probed once), plain process groups otherwise.
    Auto,
    /// Always PID + mount + network namespaces; fail the task if they cannot be made.
    Namespaces,
    /// Plain sessions and process groups.
    None,
}

/// What `prepare` writes to `task.json`.
#[derive(Serialize, Deserialize)]
struct TaskMeta {
    name: String,
    labels: BTreeMap<String, String>,
}

/// A child this agent spawned: reaped here, so its status is known even without an exit file.
struct Child {
    /// The supervisor's identity (the handle's), which may be a grandchild.
    pid: i64,
    start: u64,
    /// The process we spawned (`setsid unshare …` or `setsid sh …`).
    child: tokio::process::Child,
    status: Option<ExitStatus>,
}

/// The `process` engine. Cheap to share behind an `Arc`; every method takes `&self`.
pub struct ProcessEngine {
    /// `<state_dir>/tasks/<task ID>/` holds everything about a task, so a restarted agent finds it again.
    tasks_dir: PathBuf,
    /// Which isolation was asked for; `isolated` caches what `Auto` found.
    isolation: Isolation,
    isolated: OnceCell<bool>,
    /// Rotation threshold of `stdout.log`.
    log_limit: u64,
    /// Children spawned by this agent instance, by task ID (adopted tasks are not here).
    children: Mutex<HashMap<String, Child>>,
    /// Network namespaces (and resolv.conf files) the agent prepared for tasks not started yet.
    netns: Mutex<HashMap<String, (PathBuf, PathBuf)>>,
}

/// Where a task stands.
enum Liveness {
    Running,
    /// Gone; the status when it was our child.
    Gone(Option<ExitStatus>),
}

/// What `prepare` and `start` derive from a task's spec.
struct Plan {
    /// Program and arguments (`Command` + `Args`, or `Image` + `Args`).
    argv: Vec<String>,
    env: Vec<(String, String)>,
    dir: PathBuf,
    user: Option<user::Credentials>,
    stop_signal: Signal,
}

impl ProcessEngine {
    /// An engine keeping its task directories under `state_dir/tasks`.
    pub fn new(state_dir: PathBuf) -> ProcessEngine {
        ProcessEngine {
            tasks_dir: state_dir.join("tasks"),
            isolation: Isolation::Auto,
            isolated: OnceCell::new(),
            log_limit: DEFAULT_LOG_LIMIT,
            children: Mutex::new(HashMap::new()),
            netns: Mutex::new(HashMap::new()),
        }
    }

    /// Chooses the isolation (default [`Isolation::Auto`]).
    pub fn with_isolation(mut self, isolation: Isolation) -> ProcessEngine {
        self.isolation = isolation;
        self
    }

    /// Sets the size past which `stdout.log` is rotated.
    pub fn with_log_limit(mut self, bytes: u64) -> ProcessEngine {
        self.log_limit = bytes;
        self
    }

    /// Whether tasks get their own namespaces (probing once under [`Isolation::Auto`]).
    pub async fn namespaced(&self) -> bool {
        match self.isolation {
            Isolation::None => false,
            Isolation::Namespaces => true,
            Isolation::Auto => *self.isolated.get_or_init(probe_namespaces).await,
        }
    }

    /// Where a task's files live: `task.json`, `handle.json`, `stdout.log[.1]`, `exit`.
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.tasks_dir.join(task_id)
    }

    /// Validates the task and works out how to run it.
    ///
    /// Without a `Command`, the image names the program: `busybox`, `busybox:latest`,
    /// `docker.io/library/busybox@sha256:…` all run `busybox` from `PATH`; an absolute path runs as is.
    fn plan(&self, task: &Task) -> Result<Plan, EngineError> {
        spec::check_task_id(&task.id)?;
        let c = container_spec(task)?;
        let stop_signal = spec::stop_signal(c)?;
        let mut argv: Vec<String> = if !c.command.is_empty() {
            c.command.clone()
        } else if !c.image.is_empty() {
            vec![program_from_image(&c.image)]
        } else {
            return Err(EngineError::Invalid("no program: the ContainerSpec has neither Image nor Command".into()));
        };
        argv.extend(c.args.iter().cloned());

        let dir = if c.dir.is_empty() { PathBuf::from("/") } else { PathBuf::from(&c.dir) };
        if !dir.is_absolute() {
            return Err(EngineError::Invalid(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                c.dir
            )));
        }
        if !dir.is_dir() {
            return Err(EngineError::Invalid(format!(
                "chdir to cwd (\"{}\") set in config failed: no such file or directory",
                dir.display()
            )));
        }

        let user = self.credentials(c)?;
        let env = environment(c, user.as_ref());
        let path = env.iter().find(|(k, _)| k == "PATH").map_or(DEFAULT_PATH, |(_, v)| v.as_str());
        lookup(&argv[0], path, &dir)?;
        Ok(Plan { argv, env, dir, user, stop_signal })
    }

    /// `ContainerSpec.User`: `None` to run as the agent's user.
    fn credentials(&self, c: &ContainerSpec) -> Result<Option<user::Credentials>, EngineError> {
        if c.user.is_empty() {
            return Ok(None);
        }
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let creds = user::resolve(&c.user, &read("/etc/passwd"), &read("/etc/group"))?;
        let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        if uid == 0 {
            if find_program("setpriv").is_none() {
                return Err(EngineError::Invalid(format!(
                    "cannot run as user {}: setpriv (util-linux) is not installed",
                    c.user
                )));
            }
            Ok(Some(creds))
        } else if creds.uid == uid && creds.gid == gid {
            Ok(None)
        } else {
            Err(EngineError::Invalid(format!(
                "cannot run as user {}: the process engine is not running as root",
                c.user
            )))
        }
    }

    /// Whether the task of `h` is still running, reaping it when it is our child.
    fn liveness(&self, h: &Handle) -> Result<Liveness, EngineError> {
        let (pid, start) = procfs::parse_id(&h.id)
            .ok_or_else(|| EngineError::Invalid(format!("not a process engine handle: {:?}", h.id)))?;
        {
            let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = children.get_mut(&h.task_id).filter(|c| c.pid == pid && c.start == start) {
                if let Some(status) = c.status {
                    return Ok(Liveness::Gone(Some(status)));
                }
                match c.child.try_wait() {
                    Ok(Some(status)) => {
                        c.status = Some(status);
                        return Ok(Liveness::Gone(Some(status)));
                    }
                    Ok(None) => return Ok(Liveness::Running),
                    // Not waitable after all: fall back to /proc.
                    Err(_) => {}
                }
            }
        }
        Ok(match procfs::read_stat(pid) {
            Some(s) if s.start_time == start && s.alive() => Liveness::Running,
            _ => Liveness::Gone(None),
        })
    }

    fn running(&self, h: &Handle) -> bool {
        matches!(self.liveness(h), Ok(Liveness::Running))
    }

    /// Signals the task's process group, if the handle still names a live process of ours.
    fn signal(&self, h: &Handle, sig: Signal) -> Result<(), EngineError> {
        if !self.running(h) {
            return Ok(());
        }
        match killpg(Pid::from_raw(h.pid as i32), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(EngineError::io(format!("kill -{sig} -{}", h.pid), e.into())),
        }
    }

    /// Waits until the task is gone or `deadline` passes; true if gone.
    async fn gone_by(&self, h: &Handle, deadline: Instant) -> bool {
        loop {
            if !self.running(h) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The handle a task directory records, if the task was started.
    fn recorded_handle(&self, task_id: &str) -> Option<Handle> {
        let text = std::fs::read(self.task_dir(task_id).join("handle.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Spawns the task; returns the child and its PID and start time.
    fn spawn(
        &self,
        task: &Task,
        plan: &Plan,
        namespaced: bool,
    ) -> Result<(tokio::process::Child, i64, u64), EngineError> {
        let dir = self.task_dir(&task.id);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(logs::LOG))
            .map_err(|e| EngineError::io(format!("open {}", dir.join(logs::LOG).display()), e))?;
        let log2 = log.try_clone().map_err(|e| EngineError::io("dup log file", e))?;

        let mut argv: Vec<String> = Vec::new();
        let setsid = find_program("setsid").map(|p| p.display().to_string());
        if let Some(p) = &setsid {
            argv.push(p.clone());
        }
        let net = if namespaced { self.netns.lock().unwrap_or_else(|p| p.into_inner()).remove(&task.id) } else { None };
        if namespaced {
            let missing = |what: &str| EngineError::NotFound(format!("{what} (util-linux) is not installed"));
            if let Some((ns, _)) = &net {
                // enter the sandbox the agent plumbed (nsenter execs unshare in place: the PID stays ours)
                let nsenter = find_program("nsenter").ok_or_else(|| missing("nsenter"))?;
                argv.push(nsenter.display().to_string());
                argv.push(format!("--net={}", ns.display()));
            }
            let unshare = find_program("unshare").ok_or_else(|| missing("unshare"))?;
            argv.push(unshare.display().to_string());
            argv.extend(["--pid", "--fork", "--mount-proc", "--mount"].map(String::from));
            if net.is_none() {
                argv.push("--net".into());
            }
            argv.extend(["--kill-child", "--"].map(String::from));
            argv.push(setsid.clone().ok_or_else(|| missing("setsid"))?);
        }
        let ip = if namespaced { find_program("ip").map(|p| p.display().to_string()) } else { None };
        if namespaced && ip.is_none() {
            tracing::warn!(task = %task.id, "process engine: no `ip` command; the loopback interface stays down");
        }
        argv.extend([
            "/bin/sh".into(),
            "-c".into(),
            SUPERVISOR.into(),
            "skep-supervisor".into(),
            dir.join("exit").display().to_string(),
            ip.unwrap_or_default(),
            (plan.stop_signal as i32).to_string(),
            net.as_ref().map(|(_, rv)| rv.display().to_string()).unwrap_or_default(),
        ]);
        if let Some(u) = &plan.user {
            let setpriv = find_program("setpriv")
                .ok_or_else(|| EngineError::Invalid("setpriv (util-linux) is not installed".into()))?;
            argv.push(setpriv.display().to_string());
            argv.push(format!("--reuid={}", u.uid));
            argv.push(format!("--regid={}", u.gid));
            argv.push(if u.in_passwd { "--init-groups" } else { "--clear-groups" }.into());
            argv.push("--".into());
        }
        argv.extend(plan.argv.iter().cloned());

        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .envs(plan.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&plan.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .kill_on_drop(false);
        if setsid.is_none() {
            // No setsid(1): at least a process group of its own (`setsid` would fork if we made it a group leader).
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|e| EngineError::io(format!("spawn {}", argv[0]), e))?;
        let pid = child.id().map(i64::from).unwrap_or_default();
        // The child cannot be reaped before we look (we hold it and have not waited), so its stat is readable
        // even if it already exited.
        let start = procfs::read_stat(pid).map(|s| s.start_time).ok_or_else(|| {
            EngineError::io(format!("read /proc/{pid}/stat"), std::io::Error::from(std::io::ErrorKind::NotFound))
        })?;
        Ok((child, pid, start))
    }

    /// Finds the supervisor of a task just spawned as `pid` and waits until it leads its process group, so that a
    /// stop right after `start` reaches it. Without namespaces the supervisor is `pid` itself; with them, the child
    /// of the `unshare` parent. If the spawned process dies first (say `unshare` was refused), it stands in.
    async fn supervisor(&self, pid: i64, start: u64, namespaced: bool) -> (i64, u64) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let candidate = if namespaced { procfs::first_child(pid) } else { Some(pid) };
            if let Some(sup) = candidate {
                match procfs::read_stat(sup) {
                    Some(s) if s.pgrp == sup => return (sup, s.start_time),
                    _ => {}
                }
            }
            let spawned_alive = procfs::read_stat(pid).is_some_and(|s| s.alive() && s.start_time == start);
            if !spawned_alive || Instant::now() >= deadline {
                if spawned_alive {
                    tracing::warn!(pid, "process engine: the task's supervisor did not show up in time");
                }
                return (pid, start);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Engine for ProcessEngine {
    fn name(&self) -> &'static str {
        "process"
    }

    fn use_netns(&self, task_id: &str, netns: &Path, resolv: &Path) -> bool {
        let namespaced = match self.isolation {
            Isolation::None => false,
            Isolation::Namespaces => true,
            Isolation::Auto => self.isolated.get().copied().unwrap_or(false),
        };
        if namespaced {
            let mut m = self.netns.lock().unwrap_or_else(|p| p.into_inner());
            m.insert(task_id.to_string(), (netns.to_path_buf(), resolv.to_path_buf()));
        }
        namespaced
    }

    async fn prepare(&self, task: &Task) -> Result<(), EngineError> {
        self.plan(task)?;
        // settle the isolation probe now: `use_netns` (between prepare and start) needs its answer
        self.namespaced().await;
        let dir = self.task_dir(&task.id);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| EngineError::io(format!("mkdir {}", dir.display()), e))?;
        let meta = TaskMeta { name: spec::task_name(task), labels: spec::task_labels(task) };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| EngineError::io("encode task.json", e.into()))?;
        write_file(&dir.join("task.json"), &json).await
    }

    async fn start(&self, task: &Task) -> Result<Handle, EngineError> {
        let plan = self.plan(task)?;
        let dir = self.task_dir(&task.id);
        if !dir.is_dir() {
            return Err(EngineError::Invalid(format!("task {} is not prepared", task.id)));
        }
        if let Some(h) = self.recorded_handle(&task.id) {
            if self.running(&h) {
                return Ok(h);
            }
        }
        let _ = tokio::fs::remove_file(dir.join("exit")).await;
        let namespaced = self.namespaced().await;
        let (child, spawned, spawned_start) = self.spawn(task, &plan, namespaced)?;
        let (pid, start) = self.supervisor(spawned, spawned_start, namespaced).await;
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(task.id.clone(), Child { pid, start, child, status: None });
        let h = Handle { task_id: task.id.clone(), engine: "process".into(), id: procfs::format_id(pid, start), pid };
        let json = serde_json::to_vec(&h).map_err(|e| EngineError::io("encode handle.json", e.into()))?;
        if let Err(e) = write_file(&dir.join("handle.json"), &json).await {
            let _ = self.signal(&h, Signal::SIGKILL);
            return Err(e);
        }
        tracing::debug!(task = %task.id, pid = h.pid, namespaced, "process engine: started");
        Ok(h)
    }

    async fn wait(&self, h: &Handle) -> Result<Exit, EngineError> {
        let dir = self.task_dir(&h.task_id);
        let mut polls: u32 = 0;
        let status = loop {
            if let Liveness::Gone(status) = self.liveness(h)? {
                break status;
            }
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(10) {
                if let Err(e) = logs::rotate_if_needed(&dir, self.log_limit) {
                    tracing::warn!(task = %h.task_id, error = %e, "process engine: log rotation failed");
                }
            }
            tokio::time::sleep(POLL).await;
        };
        if let Some(exit) = read_exit(&dir.join("exit")).await {
            return Ok(exit);
        }
        Ok(match status {
            Some(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                (Some(code), _) => Exit::Code(code.into()),
                (None, Some(sig)) => Exit::Signal(sig),
                (None, None) => Exit::Code(-1),
            },
            None => Exit::Code(-1),
        })
    }

    async fn stop(&self, h: &Handle, task: &Task) -> Result<(), EngineError> {
        let (sig, grace) = match container_spec(task) {
            Ok(c) => (spec::stop_signal(c).unwrap_or(Signal::SIGTERM), spec::grace_period(c)),
            Err(_) => (Signal::SIGTERM, spec::DEFAULT_GRACE),
        };
        if !self.running(h) {
            return Ok(());
        }
        self.signal(h, sig)?;
        if self.gone_by(h, Instant::now() + grace).await {
            return Ok(());
        }
        tracing::info!(task = %h.task_id, ?grace, "process engine: grace period over, sending SIGKILL");
        self.signal(h, Signal::SIGKILL)?;
        if !self.gone_by(h, Instant::now() + KILL_TIMEOUT).await {
            return Err(EngineError::io(
                format!("task {} survived SIGKILL", h.task_id),
                std::io::Error::from(std::io::ErrorKind::TimedOut),
            ));
        }
        // The supervisor died with the group; say how the task ended unless it managed to write the code itself.
        let exit = self.task_dir(&h.task_id).join("exit");
        if let Ok(mut f) = std::fs::OpenOptions::new().write(true).create_new(true).open(&exit) {
            use std::io::Write;
            let _ = writeln!(f, "signal {}", Signal::SIGKILL as i32);
        }
        Ok(())
    }

    async fn remove(&self, task_id: &str) -> Result<(), EngineError> {
        spec::check_task_id(task_id)?;
        if let Some(h) = self.recorded_handle(task_id) {
            // Like `docker rm -f`: what still runs is killed first.
            if self.running(&h) {
                self.signal(&h, Signal::SIGKILL)?;
                self.gone_by(&h, Instant::now() + KILL_TIMEOUT).await;
            }
        }
        self.children.lock().unwrap_or_else(|p| p.into_inner()).remove(task_id);
        let dir = self.task_dir(task_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EngineError::io(format!("remove {}", dir.display()), e)),
        }
    }

    async fn adopt(&self, hs: &[Handle]) -> Vec<(Handle, bool)> {
        hs.iter().map(|h| (h.clone(), h.engine == self.name() && self.running(h))).collect()
    }

    async fn list(&self) -> Result<Vec<Handle>, EngineError> {
        let mut rd = match tokio::fs::read_dir(&self.tasks_dir).await {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(EngineError::io(format!("read {}", self.tasks_dir.display()), e)),
        };
        let mut out = Vec::new();
        while let Some(entry) = rd.next_entry().await.map_err(|e| EngineError::io("read task dirs", e))? {
            let Some(id) = entry.file_name().to_str().map(str::to_string) else { continue };
            if spec::check_task_id(&id).is_err() || !entry.path().is_dir() {
                continue;
            }
            let h = self.recorded_handle(&id).unwrap_or(Handle {
                task_id: id.clone(),
                engine: "process".into(),
                id: String::new(),
                pid: 0,
            });
            out.push(h);
        }
        out.sort_by(|a, b| a.task_id.cmp(&b.task_id));
        Ok(out)
    }

    async fn logs(&self, task_id: &str, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
        spec::check_task_id(task_id)?;
        let dir = self.task_dir(task_id);
        if !dir.is_dir() {
            return Err(EngineError::NotFound(format!("No such task: {task_id}")));
        }
        logs::tail(&dir, max_bytes)
    }
}

/// The environment: `PATH` and `HOME` first, then `Env` (`K=V` sets, a bare `K` unsets).
fn environment(c: &ContainerSpec, user: Option<&user::Credentials>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), std::env::var("PATH").unwrap_or_else(|_| DEFAULT_PATH.into())),
        ("HOME".into(), user.map_or_else(|| std::env::var("HOME").unwrap_or_else(|_| "/".into()), |u| u.home.clone())),
    ];
    for kv in &c.env {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (kv.as_str(), None),
        };
        env.retain(|(key, _)| key != k);
        if let Some(v) = v {
            env.push((k.to_string(), v.to_string()));
        }
    }
    env
}

/// Finds `prog` the way `execvp` would (Docker's messages on failure).
fn lookup(prog: &str, path: &str, cwd: &Path) -> Result<PathBuf, EngineError> {
    let executable = |p: &Path| p.metadata().map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if prog.contains('/') {
        let p = cwd.join(prog);
        return match executable(&p) {
            Ok(true) => Ok(p),
            Ok(false) => Err(EngineError::Invalid(format!("exec: \"{prog}\": permission denied"))),
            Err(_) => Err(EngineError::NotFound(format!("exec: \"{prog}\": stat {prog}: no such file or directory"))),
        };
    }
    path.split(':')
        .map(|d| if d.is_empty() { cwd.to_path_buf() } else { cwd.join(d) }.join(prog))
        .find(|p| matches!(executable(p), Ok(true)))
        .ok_or_else(|| EngineError::NotFound(format!("exec: \"{prog}\": executable file not found in $PATH")))
}

/// A helper program (`setsid`, `unshare`, `ip`, `setpriv`) on the agent's PATH or in the usual places.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = format!("{}:{DEFAULT_PATH}", std::env::var("PATH").unwrap_or_default());
    lookup(name, &path, Path::new("/")).ok()
}

/// Can this agent make PID, mount and network namespaces? (Root, `unshare` present and allowed.)
async fn probe_namespaces() -> bool {
    let why_not = if !nix::unistd::geteuid().is_root() {
        Some("not running as root".to_string())
    } else if find_program("setsid").is_none() {
        Some("setsid (util-linux) is not installed".to_string())
    } else if let Some(unshare) = find_program("unshare") {
        let probe = tokio::process::Command::new(unshare)
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--mount",
                "--net",
                "--kill-child",
                "--",
                "/bin/sh",
                "-c",
                "true",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(out)) if out.status.success() => None,
            Ok(Ok(out)) => Some(format!("unshare failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Ok(Err(e)) => Some(format!("unshare failed: {e}")),
            Err(_) => Some("unshare timed out".to_string()),
        }
    } else {
        Some("unshare (util-linux) is not installed".to_string())
    };
    match why_not {
        None => true,
        Some(reason) => {
            tracing::warn!(
                %reason,
                "process engine: tasks run without PID, mount and network namespaces (plain process groups)"
            );
            false
        }
    }
}

/// `<task dir>/exit`: `N` (the supervisor's `$?`) or `signal N` (written by `stop` after SIGKILL).
async fn read_exit(path: &Path) -> Option<Exit> {
    let text = tokio::fs::read_to_string(path).await.ok()?;
    let text = text.trim();
    match text.strip_prefix("signal ") {
        Some(n) => n.trim().parse().ok().map(Exit::Signal),
        None => text.parse().ok().map(Exit::Code),
    }
}

async fn write_file(path: &Path, data: &[u8]) -> Result<(), EngineError> {
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, data).await.map_err(|e| EngineError::io(format!("write {}", tmp.display()), e))?;
    tokio::fs::rename(&tmp, path).await.map_err(|e| EngineError::io(format!("rename {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_like_execvp_with_dockers_messages() {
        assert!(lookup("sh", DEFAULT_PATH, Path::new("/")).is_ok());
        let e = lookup("skep-no-such-program", DEFAULT_PATH, Path::new("/")).unwrap_err();
        assert!(e.is_not_found());
        assert_eq!(e.to_string(), "exec: \"skep-no-such-program\": executable file not found in $PATH");
        let e = lookup("/nonexistent/x", DEFAULT_PATH, Path::new("/")).unwrap_err();
        assert_eq!(e.to_string(), "exec: \"/nonexistent/x\": stat /nonexistent/x: no such file or directory");
        let plain = std::env::temp_dir().join(format!("skep-not-executable-{}", std::process::id()));
        std::fs::write(&plain, "").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(lookup(plain.to_str().unwrap(), DEFAULT_PATH, Path::new("/")), Err(EngineError::Invalid(_))));
        std::fs::remove_file(plain).unwrap();
    }

    #[test]
    fn env_overrides_and_unsets() {
        let c = ContainerSpec { env: vec!["A=1".into(), "HOME=/h".into(), "PATH".into()], ..Default::default() };
        let env = environment(&c, None);
        assert!(env.contains(&("A".into(), "1".into())) && env.contains(&("HOME".into(), "/h".into())));
        assert!(!env.iter().any(|(k, _)| k == "PATH"));
    }
}

/// The program an image reference names for the process engine: drop the digest and the tag, keep the last path
/// component (`registry:5000/team/app:1.2@sha256:…` → `app`); an absolute path is used as is.
pub fn program_from_image(image: &str) -> String {
    if image.starts_with('/') {
        return image.to_string();
    }
    let no_digest = image.split('@').next().unwrap_or(image);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    last.split(':').next().unwrap_or(last).to_string()
}

#[cfg(test)]
mod image_tests {
    use super::program_from_image;

    #[test]
    fn image_references_name_programs() {
        assert_eq!(program_from_image("busybox"), "busybox");
        assert_eq!(program_from_image("busybox:latest"), "busybox");
        assert_eq!(program_from_image("docker.io/library/busybox@sha256:abc"), "busybox");
        assert_eq!(program_from_image("registry:5000/team/app:1.2"), "app");
        assert_eq!(program_from_image("/usr/bin/env"), "/usr/bin/env");
    }
}
