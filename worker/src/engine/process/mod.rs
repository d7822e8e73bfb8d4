//! The `process` engine, skep's embedded default: a task is a program on the host, started by a small init in its
//! own namespaces and cgroup (design notes: `docs/design/task_runtime.md`).
//!
//! # What a task looks like
//! `prepare` checks the task (`ProcessEngine::plan`: program, user, capabilities, sysctls, mounts, limits) and
//! makes `<state_dir>/tasks/<task ID>/` with `task.json` (labels, name). `start`
//! 1. takes what the task needs from the node: its volumes ([`VolumeStore::acquire`]) and its cgroup
//!    (`<cgroup parent>/<task ID>` with the limits written, see `cgroup.rs`), recorded in `resources.json`;
//! 2. writes the init plan (`plan.json`: namespaces, mounts, hostname, sysctls, user, capabilities, program, env);
//! 3. spawns the init (`init.rs`: the engine's own binary with a hidden argument), with a report pipe as stdin and
//!    `init.log` as stdout and stderr (the supervisor gives the program pipes, copied to `logs/`: `logs.rs`), and returns once the init reports that the program was exec'd, or rejects
//!    the task with the init's reason (a missing bind source, a mount the kernel refused, …), releasing what step 1
//!    took.
//!
//! The task gets its own PID (the init's supervisor is PID 1), mount, UTS, IPC and network namespaces (or the
//! sandbox the agent plumbed, [`Engine::use_netns`]), a fresh `/proc`, `/dev/shm` and `/dev/mqueue`, Docker's
//! read-only and masked `/proc` paths, its hostname (`Hostname`, templated; default the first 12 characters of the
//! task ID, as Docker uses the container ID's), `/etc/hostname` and `/etc/hosts` to match, Docker's default
//! capabilities with `CapabilityAdd`/`CapabilityDrop`, `no_new_privs`, its `User` and `Groups`, its namespaced
//! `Sysctls`, and an environment made only of Docker's default `PATH`, `HOSTNAME`, the spec's `Env` and `HOME`
//! (never the agent's). stdin is `/dev/null`; `TTY` is not supported. The root filesystem, `/dev` and `/sys` are the
//! host's (see the design notes for what is shared).
//!
//! # Exit codes and identity
//! The supervisor writes the program's exit code (`128 + signal` when killed) to `<task dir>/exit`, which is what
//! makes exit codes survive an agent restart. A handle is `pid:<pid>:<start time>` of the supervisor, the leader of
//! the task's process group. A process is ours only if `/proc/<pid>/stat` exists, is not a zombie and has the same
//! start time, so a reused PID is never adopted nor signalled. While the agent that started a task lives, it holds
//! the init's outer step (the supervisor's parent) and reaps it; after a restart `wait` polls /proc every 100 ms.
//! When a task is over, its cgroup's OOM-kill counter is read (an OOM kill becomes [`Exit::OomKilled`]) and the
//! cgroup removed; `remove` gives its volumes back.
//!
//! # Stopping
//! The stop signal goes to the task's process group (so also to children that the program did not pass it on to);
//! after the grace period SIGKILL goes to the group, which kills the supervisor too, and with it (PID 1) the whole
//! namespace; the engine then records `signal 9` as the exit ([`Exit::Signal`]).
//!
//! # Without root or namespaces
//! When the agent is not root, or namespaces are refused (a container without CAP_SYS_ADMIN), tasks run in plain
//! sessions/process groups (logged once at WARN): mounts, hostnames and sysctls are then refused, a program that
//! leaves its process group can outlive its task, `User`, `Groups` and capabilities work only as far as the agent's
//! own privileges go, and limits only where the agent may write the cgroup tree (else the task is refused).

mod caps;
mod cgroup;
mod files;
pub mod image;
pub mod init;
mod logs;
mod mounts;
mod plan;
pub(crate) mod procfs;
mod sysctl;
mod user;

use super::spec::{self, container_spec, Limits, NodeInfo};
use super::{Engine, EngineError, Exit, Handle, TaskFile};
use crate::volumes::{Acquired, VolumeStore};
use cgroup::{Hierarchies, TaskCgroup};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use plan::{InitPlan, MountStep, RootFs, User};
use crate::images::{ImageRecord, ImageStore, ImageUser};
use image::{HostPrograms, Source};
use std::sync::Arc;
use serde::{Deserialize, Serialize};
use skep_api::docker::fields::EngineKind;
use skep_api::docker::health::{Health, HealthCheck, HealthMonitor};
use skep_api::docker::{ContainerSpec, Mount, MountKind, Propagation, ReadOnlyDepth, Task};
use skep_api::logs::{LogsBatch, LogsRequest};
use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::sync::{OnceCell, RwLockReadGuard};
use tokio::time::Instant;

pub use init::{run_if_requested, INIT_ARG};

/// Docker's default `PATH` (a task's, whatever the agent's is).
pub(crate) const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The default cgroup subtree of the tasks (`/sys/fs/cgroup/<controller>/skep/<task>` on v1).
pub const DEFAULT_CGROUP_PARENT: &str = "skep";
/// Environment variable naming the init binary (tests and benchmarks, whose own executable cannot be the init).
pub const INIT_ENV: &str = "SKEP_TASK_INIT";
/// How often `wait` and `stop` look at a process they cannot `waitpid` for.
const POLL: Duration = Duration::from_millis(100);
/// How long a SIGKILLed task may take to disappear before `stop` gives up.
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the init may take to set a task up (mounting an NFS volume, say) before the task is rejected.
const SETUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of reports the init may send.
const MAX_REPORT: u64 = 64 << 10;

/// How tasks are isolated from the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Namespaces when root and the kernel allows them (probed once), plain process groups otherwise.
    Auto,
    /// Always PID + mount + UTS + IPC + network namespaces; fail the task if they cannot be made.
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

/// What a started task holds on the node, released when it is over (`resources.json`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Resources {
    /// Its cgroup; `None` once removed (or when it has none).
    cgroup: Option<TaskCgroup>,
    /// OOM kills counted when the cgroup was removed.
    oom_kills: u64,
    /// Its memory limit, for the OOM message.
    memory_limit: u64,
    /// Volumes it uses.
    volumes: Vec<Acquired>,
    /// The tmpfs holding its files (`<task dir>/files`), mounted in the daemon's mount namespace.
    files: Option<PathBuf>,
}

/// A child this agent spawned: reaped here, so its status is known even without an exit file.
struct Child {
    /// The supervisor's identity (the handle's), a grandchild.
    pid: i64,
    start: u64,
    /// The init's outer step.
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
    /// How much output each task keeps.
    log_limits: crate::logs::LogLimits,
    /// The binary run as the task's init (`/proc/self/exe`: the daemon's own).
    init: PathBuf,
    /// The node's volumes.
    volumes: VolumeStore,
    /// Tasks' cgroups go to `<hierarchy>/<cgroup_parent>/<task ID>`.
    cgroup_parent: String,
    /// The host's cgroup layout, read once.
    hierarchies: OnceLock<Hierarchies>,
    /// What templates know of this node.
    node: NodeInfo,
    /// Children spawned by this agent instance, by task ID (adopted tasks are not here).
    children: Mutex<HashMap<String, Child>>,
    /// Network namespaces (and resolv.conf files) the agent prepared for tasks not started yet.
    netns: Mutex<HashMap<String, (PathBuf, PathBuf)>>,
    /// Files (secrets, configs) given for tasks not started yet.
    files: Mutex<HashMap<String, Vec<TaskFile>>>,
    /// The node's images (`None`: this engine runs host programs only).
    images: Option<Arc<ImageStore>>,
    /// Which images may be host programs (`--host-programs`).
    host_programs: HostPrograms,
    /// Past this many bytes of images, removing a task collects the images no task uses.
    image_gc_threshold: u64,
}

/// Default of [`ProcessEngine::with_image_gc_threshold`]: 10 GiB.
pub const DEFAULT_IMAGE_GC_THRESHOLD: u64 = 10 << 30;

/// The task directory's record of the image `prepare` pulled (so `start`, maybe after an agent restart, runs that
/// very image even if its tag has moved since).
const IMAGE_FILE: &str = "image.json";

/// The tasks under `tasks_dir` (an engine's `state_dir/tasks`) and the images their directories record: what
/// `docker image rm/prune` on the node and the store's collection must leave.
pub fn image_users(tasks_dir: &Path) -> Vec<ImageUser> {
    let Ok(rd) = std::fs::read_dir(tasks_dir) else { return Vec::new() };
    rd.flatten()
        .filter_map(|e| {
            let record: ImageRecord = serde_json::from_slice(&std::fs::read(e.path().join(IMAGE_FILE)).ok()?).ok()?;
            Some(ImageUser { task: e.file_name().to_string_lossy().into_owned(), manifest: record.manifest_digest })
        })
        .collect()
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
    env: Vec<String>,
    dir: PathBuf,
    /// Set when the engine is root (always then: root's own groups otherwise leak into the task).
    user: Option<User>,
    /// The image's layer directories, top first (`None`: the host's root).
    layers: Option<Vec<PathBuf>>,
    /// `ReadOnly` (images only).
    read_only: bool,
    capabilities: Option<Vec<String>>,
    sysctls: Vec<(String, String)>,
    mounts: Vec<(Mount, MountKind)>,
    hostname: String,
    /// The spec set a hostname (needs a UTS namespace).
    hostname_set: bool,
    limits: Limits,
    stop_signal: Signal,
}

impl ProcessEngine {
    /// An engine keeping its task directories under `state_dir/tasks` and its volumes under `state_dir/volumes`
    /// (see [`with_volumes`](Self::with_volumes)); the init is `$SKEP_TASK_INIT` or the running binary itself.
    pub fn new(state_dir: PathBuf) -> ProcessEngine {
        let init = std::env::var_os(INIT_ENV).map_or_else(|| PathBuf::from("/proc/self/exe"), PathBuf::from);
        ProcessEngine {
            volumes: VolumeStore::new(state_dir.join("volumes")),
            tasks_dir: state_dir.join("tasks"),
            isolation: Isolation::Auto,
            isolated: OnceCell::new(),
            log_limits: Default::default(),
            init,
            cgroup_parent: DEFAULT_CGROUP_PARENT.into(),
            hierarchies: OnceLock::new(),
            node: NodeInfo::local(),
            children: Mutex::new(HashMap::new()),
            netns: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            images: None,
            // a bare engine (tests, benchmarks) keeps running `sleep` as the host's; the daemon sets its flag's
            host_programs: HostPrograms::Names,
            image_gc_threshold: DEFAULT_IMAGE_GC_THRESHOLD,
        }
    }

    /// Past `bytes` of images in the store, removing a task removes the images (and layers) no task here uses.
    pub fn with_image_gc_threshold(mut self, bytes: u64) -> ProcessEngine {
        self.image_gc_threshold = bytes;
        self
    }

    /// Collects unused images when the store is past its threshold; returns the bytes freed.
    fn collect_images(&self) -> u64 {
        let Some(store) = &self.images else { return 0 };
        if store.recorded_size() <= self.image_gc_threshold {
            return 0;
        }
        let in_use: Vec<String> = image_users(&self.tasks_dir).into_iter().map(|u| u.manifest).collect();
        let freed = store.collect(&in_use);
        tracing::info!(freed, "process engine: collected unused images");
        freed
    }

    /// Runs images from this store (without one, only host programs run).
    pub fn with_images(mut self, store: Arc<ImageStore>) -> ProcessEngine {
        self.images = Some(store);
        self
    }

    /// Which images may be host programs (default [`HostPrograms::Names`]; the daemon's default is `paths`).
    pub fn with_host_programs(mut self, mode: HostPrograms) -> ProcessEngine {
        self.host_programs = mode;
        self
    }

    /// The node's image store, if this engine runs images.
    pub fn images(&self) -> Option<&Arc<ImageStore>> {
        self.images.as_ref()
    }

    /// Pulls the task's image (when it runs one); returns it, with the guard that keeps `docker image rm` from
    /// removing it before the task directory records it.
    async fn pull(&self, task: &Task) -> Result<Option<(ImageRecord, RwLockReadGuard<'_, ()>)>, EngineError> {
        let c = container_spec(task)?;
        let Source::Registry(reference) = image::source(&c.image, &c.command, self.host_programs)? else { return Ok(None) };
        let Some(store) = &self.images else {
            return Err(EngineError::Invalid(format!("{reference}: this node's process engine has no image store")));
        };
        let creds = match &c.pull_options {
            Some(p) => skep_registry::Credentials::from_header(&p.registry_auth).map_err(|e| EngineError::Invalid(e.to_string()))?,
            None => skep_registry::Credentials::default(),
        };
        let held = store
            .pull_for_task(&reference, creds)
            .await
            .map_err(|e| EngineError::Pull(format!("pulling {reference}: {e}")))?;
        Ok(Some(held))
    }

    /// The image `prepare` recorded for the task.
    fn recorded_image(&self, task_id: &str) -> Option<ImageRecord> {
        serde_json::from_slice(&std::fs::read(self.task_dir(task_id).join(IMAGE_FILE)).ok()?).ok()
    }

    /// A file of the image (`etc/passwd`) as the merged root shows it: from the top layer that has it, unless a
    /// layer above whites it out. Links are not followed.
    fn image_file(&self, image: &ImageRecord, rel: &str) -> Option<String> {
        let store = self.images.as_ref()?;
        for layer in image.layers.iter().rev() {
            let p = store.layer_dir(layer).join(rel);
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.file_type().is_file() => return std::fs::read_to_string(&p).ok(),
                Ok(_) => return None, // a whiteout, or not a file
                Err(_) => {}
            }
        }
        None
    }

    /// Chooses the isolation (default [`Isolation::Auto`]).
    pub fn with_isolation(mut self, isolation: Isolation) -> ProcessEngine {
        self.isolation = isolation;
        self
    }

    /// Sets how much output each task keeps (segment size and count).
    pub fn with_log_limits(mut self, limits: crate::logs::LogLimits) -> ProcessEngine {
        self.log_limits = limits;
        self
    }

    /// The node's volume store (shared with the node's `/volumes` API).
    pub fn with_volumes(mut self, volumes: VolumeStore) -> ProcessEngine {
        self.volumes = volumes;
        self
    }

    /// The binary to run as the task init: any binary whose `main` starts with [`run_if_requested`].
    pub fn with_init(mut self, init: PathBuf) -> ProcessEngine {
        self.init = init;
        self
    }

    /// The cgroup subtree of the tasks (default [`DEFAULT_CGROUP_PARENT`]), relative to each hierarchy's root.
    pub fn with_cgroup_parent(mut self, parent: &str) -> ProcessEngine {
        self.cgroup_parent = parent.trim_matches('/').to_string();
        self
    }

    /// What templates (`{{.Node.Hostname}}`) say about this node (default [`NodeInfo::local`]).
    pub fn with_node(mut self, node: NodeInfo) -> ProcessEngine {
        self.node = node;
        self
    }

    /// The node's volumes.
    pub fn volumes(&self) -> &VolumeStore {
        &self.volumes
    }

    /// Whether tasks get their own namespaces (probing once under [`Isolation::Auto`]).
    pub async fn namespaced(&self) -> bool {
        match self.isolation {
            Isolation::None => false,
            Isolation::Namespaces => true,
            Isolation::Auto => *self.isolated.get_or_init(|| probe_namespaces(&self.init)).await,
        }
    }

    /// Where a task's files live: `task.json`, `plan.json`, `resources.json`, `handle.json`, `logs/`, `init.log`,
    /// `exit`.
    pub fn task_dir(&self, task_id: &str) -> PathBuf {
        self.tasks_dir.join(task_id)
    }

    /// The cgroup directories of a started task that is not over yet (one per hierarchy).
    pub fn cgroup_dirs(&self, task_id: &str) -> Vec<PathBuf> {
        self.resources(task_id).and_then(|r| r.cgroup).map(|c| c.dirs).unwrap_or_default()
    }

    fn hierarchies(&self) -> &Hierarchies {
        self.hierarchies.get_or_init(|| Hierarchies::detect(&self.tasks_dir.with_file_name("cgroup")))
    }

    /// Validates the task and works out how to run it: with `image` (pulled by `prepare`), in the image's root with
    /// its config filling in the spec; without, a host program (see [`image`] for which images are which).
    fn plan(&self, task: &Task, image: Option<&ImageRecord>) -> Result<Plan, EngineError> {
        spec::check_task_id(&task.id)?;
        spec::check_fields(task, EngineKind::Process)?;
        let expanded = spec::expanded(task, &self.node)?;
        let c = match image {
            Some(i) => image::merged(&expanded, &i.config.config),
            None => expanded,
        };
        let stop_signal = spec::stop_signal(&c)?;
        let argv: Vec<String> = match image {
            Some(i) => image::argv(&c, &i.config.config)?,
            None => match image::source(&c.image, &c.command, self.host_programs)? {
                // `Command` replaces the program the image names
                Source::Host(program) => {
                    let head = if c.command.is_empty() { program.into_iter().collect() } else { c.command.clone() };
                    head.into_iter().chain(c.args.iter().cloned()).collect()
                }
                Source::Registry(r) => return Err(EngineError::Invalid(format!("task {}: image {r} is not pulled", task.id))),
            },
        };
        // the image's own check is not what the managers validated: a bad one refuses the task rather than leaving it
        // starting forever
        if image.is_some() {
            HealthCheck::from_spec(c.healthcheck.as_ref())
                .map_err(|e| EngineError::Invalid(format!("task {}: the image's Healthcheck: {e}", task.id)))?;
        }
        let layers = image.map(|i| {
            let store = self.images.as_ref().expect("an image comes from the store");
            i.layers.iter().rev().map(|l| store.layer_dir(l)).collect::<Vec<_>>()
        });

        let dir = if c.dir.is_empty() { PathBuf::from("/") } else { PathBuf::from(&c.dir) };
        if !dir.is_absolute() {
            return Err(EngineError::Invalid(format!(
                "the working directory '{}' is invalid, it needs to be an absolute path",
                c.dir
            )));
        }
        let under_a_mount = |p: &Path| c.mounts().unwrap_or_default().iter().any(|m| p.starts_with(&m.target));
        // in an image, the exec step checks the directory and the program inside the task's root
        if layers.is_none() && !dir.is_dir() && !under_a_mount(&dir) {
            return Err(EngineError::Invalid(format!(
                "chdir to cwd (\"{}\") set in config failed: no such file or directory",
                dir.display()
            )));
        }
        let security = spec::security(&c)?;
        if security.read_only && layers.is_none() {
            return Err(EngineError::Invalid(
                "ContainerSpec.ReadOnly is not supported by the process engine: tasks share the host's root \
                 filesystem until they run images"
                    .into(),
            ));
        }
        let mounts = spec::mounts(&c)?;
        for (_, kind) in &mounts {
            if let MountKind::Bind { source, create_source: false, .. } = kind {
                if !Path::new(source).exists() {
                    return Err(EngineError::Invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                    )));
                }
            }
        }
        let hostname_set = !c.hostname.is_empty();
        let hostname = if hostname_set { c.hostname.clone() } else { task.id.chars().take(12).collect() };
        check_hostname(&hostname)?;
        let sysctls = sysctl::plan(&security.sysctls)?;
        let root = nix::unistd::geteuid().is_root();
        let (user, home) = self.credentials(&c, &security.groups, root, image)?;
        let capabilities = if root {
            Some(caps::names(&caps::tweak(&security.capability_add, &security.capability_drop)?))
        } else if security.capability_add.is_empty() && security.capability_drop.is_empty() {
            None
        } else {
            return Err(EngineError::Invalid(
                "cannot set CapabilityAdd or CapabilityDrop: the process engine is not running as root".into(),
            ));
        };
        let env = environment(&c, &hostname, &home);
        let path = env.iter().find_map(|kv| kv.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
        if layers.is_none() && !under_a_mount(Path::new(&argv[0])) {
            lookup(&argv[0], path, &dir)?;
        }
        Ok(Plan {
            read_only: security.read_only,
            layers,
            argv,
            env,
            dir,
            user,
            capabilities,
            sysctls,
            mounts,
            hostname,
            hostname_set,
            limits: spec::limits(task)?,
            stop_signal,
        })
    }

    /// `User` and `Groups`: the identity to switch to (always when root), and `$HOME`.
    fn credentials(
        &self,
        c: &ContainerSpec,
        groups: &[String],
        root: bool,
        image: Option<&ImageRecord>,
    ) -> Result<(Option<User>, String), EngineError> {
        // names are looked up in the task's root: the image's files, or the host's
        let read = |p: &str| match image {
            Some(i) => self.image_file(i, p.trim_start_matches('/')).unwrap_or_default(),
            None => std::fs::read_to_string(p).unwrap_or_default(),
        };
        let group_file = read("/etc/group");
        let who = if c.user.is_empty() { "0" } else { c.user.as_str() };
        let creds = user::resolve(who, &read("/etc/passwd"), &group_file)?;
        if root {
            let groups = user::supplementary(&creds, groups, &group_file)?;
            return Ok((Some(User { uid: creds.uid, gid: creds.gid, groups }), creds.home));
        }
        let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        if !groups.is_empty() {
            return Err(EngineError::Invalid("cannot set Groups: the process engine is not running as root".into()));
        }
        if c.user.is_empty() || (creds.uid == uid && creds.gid == gid) {
            let home = if c.user.is_empty() { "/".to_string() } else { creds.home };
            Ok((None, home))
        } else {
            Err(EngineError::Invalid(format!("cannot run as user {}: the process engine is not running as root", c.user)))
        }
    }

    /// Whether the task of `h` is still running, reaping the init when it is our child.
    fn liveness(&self, h: &Handle) -> Result<Liveness, EngineError> {
        let (pid, start) = procfs::parse_id(&h.id)
            .ok_or_else(|| EngineError::Invalid(format!("not a process engine handle: {:?}", h.id)))?;
        let mut reaped = None;
        {
            let mut children = self.children.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(c) = children.get_mut(&h.task_id).filter(|c| c.pid == pid && c.start == start) {
                if c.status.is_none() {
                    if let Ok(Some(status)) = c.child.try_wait() {
                        c.status = Some(status);
                    }
                }
                reaped = c.status;
            }
        }
        // the init's outer step may end first (killed on its own): the supervisor decides
        Ok(match procfs::read_stat(pid) {
            Some(s) if s.start_time == start && s.alive() => Liveness::Running,
            _ => Liveness::Gone(reaped),
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

    fn resources(&self, task_id: &str) -> Option<Resources> {
        let text = std::fs::read(self.task_dir(task_id).join("resources.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    async fn save_resources(&self, task_id: &str, r: &Resources) -> Result<(), EngineError> {
        let json = serde_json::to_vec(r).map_err(|e| EngineError::io("encode resources.json", e.into()))?;
        write_file(&self.task_dir(task_id).join("resources.json"), &json).await
    }

    /// Once the task is over: reads the OOM counter and removes the cgroup (once). Returns the OOM kills and the
    /// memory limit.
    async fn finish_cgroup(&self, task_id: &str) -> (u64, u64) {
        let Some(mut r) = self.resources(task_id) else { return (0, 0) };
        // the recorded paths may be under hierarchies this daemon mounts itself (after a restart: not yet)
        self.hierarchies();
        if let Some(dir) = r.files.take() {
            if let Err(e) = files::unmount(&dir) {
                tracing::warn!(task = %task_id, error = %e, "process engine: unmounting the task's files");
                r.files = Some(dir);
            }
            if let Err(e) = self.save_resources(task_id, &r).await {
                tracing::warn!(task = %task_id, error = %e, "process engine: recording the unmounted files");
            }
        }
        if let Some(cg) = r.cgroup.take() {
            r.oom_kills = cg.oom_kills();
            if let Err(e) = cg.remove().await {
                tracing::warn!(task = %task_id, error = %e, "process engine: removing the task's cgroup");
                r.cgroup = Some(cg);
            }
            if let Err(e) = self.save_resources(task_id, &r).await {
                tracing::warn!(task = %task_id, error = %e, "process engine: recording the removed cgroup");
            }
        }
        (r.oom_kills, r.memory_limit)
    }

    /// Gives back what a task took: its cgroup (if still there), its files' tmpfs and its volumes.
    async fn release(&self, task_id: &str, r: &Resources) {
        self.hierarchies();
        if let Some(dir) = &r.files {
            if let Err(e) = files::unmount(dir) {
                tracing::warn!(task = %task_id, error = %e, "process engine: unmounting the task's files");
            }
        }
        if let Some(cg) = &r.cgroup {
            if let Err(e) = cg.remove().await {
                tracing::warn!(task = %task_id, error = %e, "process engine: removing the task's cgroup");
            }
        }
        for v in &r.volumes {
            if let Err(e) = self.volumes.release(v, task_id).await {
                tracing::warn!(task = %task_id, volume = %v.name, error = %e, "process engine: releasing a volume");
            }
        }
    }

    /// Takes the task's volumes and cgroup.
    async fn acquire(&self, task: &Task, plan: &Plan, steps: &mut Vec<MountStep>) -> Result<Resources, EngineError> {
        let mut r = Resources { memory_limit: plan.limits.memory_bytes, ..Default::default() };
        match mounts::resolve(&plan.mounts, &self.volumes, &task.id, &mut r.volumes).await {
            Ok(s) => steps.extend(s),
            Err(e) => {
                self.release(&task.id, &r).await;
                return Err(e);
            }
        }
        let files = self.files.lock().unwrap_or_else(|p| p.into_inner()).remove(&task.id).unwrap_or_default();
        if !files.is_empty() {
            let dir = self.task_dir(&task.id).join("files");
            match files::materialise(&dir, &files) {
                Ok(s) => {
                    r.files = Some(dir);
                    steps.extend(s);
                }
                Err(e) => {
                    let _ = files::unmount(&dir);
                    self.release(&task.id, &r).await;
                    return Err(e);
                }
            }
        }
        match self.hierarchies().create(&self.cgroup_parent, &task.id, &plan.limits) {
            Ok(cg) => r.cgroup = (!cg.dirs.is_empty()).then_some(cg),
            Err(e) if plan.limits.any() => {
                self.release(&task.id, &r).await;
                let reason = match e {
                    cgroup::CgroupError::Io { .. } => format!("cannot apply the task's resource limits: {e}"),
                    _ => e.to_string(),
                };
                return Err(EngineError::Invalid(reason));
            }
            Err(e) => {
                tracing::warn!(task = %task.id, error = %e, "process engine: the task runs without a cgroup of its own")
            }
        }
        if let Err(e) = self.save_resources(&task.id, &r).await {
            self.release(&task.id, &r).await;
            return Err(e);
        }
        Ok(r)
    }

    /// The init plan for a task whose resources are taken.
    fn init_plan(&self, task: &Task, plan: &Plan, namespaced: bool, steps: Vec<MountStep>, r: &Resources) -> InitPlan {
        let dir = self.task_dir(&task.id);
        let net = if namespaced { self.netns.lock().unwrap_or_else(|p| p.into_inner()).remove(&task.id) } else { None };
        let mut mounts = Vec::new();
        if namespaced {
            mounts.extend([MountStep::Proc, MountStep::Ipc]);
            mounts.extend(steps);
            let etc = |source: PathBuf, target: &str| MountStep::Bind {
                source,
                target: PathBuf::from(target),
                recursive: false,
                propagation: Propagation::RPrivate,
                read_only: ReadOnlyDepth::No,
                create: false,
            };
            if let Some((_, resolv)) = &net {
                mounts.push(etc(resolv.clone(), "/etc/resolv.conf"));
            }
            mounts.push(etc(dir.join("hostname"), "/etc/hostname"));
            mounts.push(etc(dir.join("hosts"), "/etc/hosts"));
        }
        let ip = if namespaced { find_program("ip") } else { None };
        if namespaced && ip.is_none() {
            tracing::warn!(task = %task.id, "process engine: no `ip` command; the loopback interface stays down");
        }
        let rootfs = plan.layers.as_ref().filter(|_| namespaced).map(|lower| RootFs {
            lower: lower.clone(),
            upper: dir.join("rootfs/upper"),
            work: dir.join("rootfs/work"),
            merged: dir.join("rootfs/merged"),
            read_only: plan.read_only,
        });
        InitPlan {
            rootfs,
            namespaces: namespaced,
            netns: net.map(|(ns, _)| ns),
            cgroups: r.cgroup.as_ref().map(|c| c.dirs.clone()).unwrap_or_default(),
            stop_signal: plan.stop_signal as i32,
            mounts,
            hostname: namespaced.then(|| plan.hostname.clone()),
            sysctls: plan.sysctls.clone(),
            harden: namespaced,
            ip,
            argv: plan.argv.clone(),
            env: if namespaced {
                plan.env.clone()
            } else {
                // no UTS namespace: the hostname is the host's
                let host = format!("HOSTNAME={}", self.node.hostname);
                plan.env.iter().map(|kv| if kv.starts_with("HOSTNAME=") { host.clone() } else { kv.clone() }).collect()
            },
            dir: plan.dir.clone(),
            user: plan.user.clone(),
            capabilities: plan.capabilities.clone(),
            no_new_privs: true,
            logs: self.log_limits,
        }
    }

    /// One run of a healthcheck's command in the task (the init's `health` step): true when it exits 0 within
    /// `timeout`. On timeout the whole check (its own process group) is killed, as Docker kills a hung probe.
    async fn probe(&self, h: &Handle, argv: &[String], timeout: Duration) -> bool {
        if !self.running(h) {
            return false;
        }
        let mut cmd = tokio::process::Command::new(&self.init);
        cmd.arg(INIT_ARG)
            .arg("health")
            .arg(self.task_dir(&h.task_id))
            .arg(h.pid.to_string())
            .arg("--")
            .args(argv)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(task = %h.task_id, "healthcheck: spawning the task init: {e}");
                return false;
            }
        };
        let pgid = child.id().map(|p| p as i32);
        match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => {
                if !out.status.success() && !out.stderr.is_empty() {
                    let text = String::from_utf8_lossy(&out.stderr[..out.stderr.len().min(4096)]).into_owned();
                    tracing::debug!(task = %h.task_id, "healthcheck failed: {}", text.trim());
                }
                out.status.success()
            }
            Ok(Err(e)) => {
                tracing::warn!(task = %h.task_id, "healthcheck: {e}");
                false
            }
            Err(_) => {
                // the check and whatever it started, in the task's PID namespace too (same process group)
                if let Some(pg) = pgid {
                    let _ = killpg(Pid::from_raw(pg), Signal::SIGKILL);
                }
                tracing::debug!(task = %h.task_id, "healthcheck timed out after {timeout:?}");
                false
            }
        }
    }

    /// Spawns the init and waits for its report: the supervisor's PID and start time once the program is exec'd.
    async fn spawn(&self, task: &Task) -> Result<(tokio::process::Child, i64, u64), EngineError> {
        let dir = self.task_dir(&task.id);
        // a fresh log directory for the supervisor to write the program's output to
        let log_dir = dir.join(logs::LOG_DIR);
        let _ = std::fs::remove_dir_all(&log_dir);
        std::fs::create_dir(&log_dir).map_err(|e| EngineError::io(format!("create {}", log_dir.display()), e))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(logs::INIT_LOG))
            .map_err(|e| EngineError::io(format!("open {}", dir.join(logs::INIT_LOG).display()), e))?;
        let log2 = log.try_clone().map_err(|e| EngineError::io("dup log file", e))?;
        let (rx, tx) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| EngineError::io("pipe for the task init", e.into()))?;
        let mut child = {
            let mut cmd = tokio::process::Command::new(&self.init);
            cmd.arg(INIT_ARG)
                .arg("outer")
                .arg(&dir)
                .env_clear()
                .stdin(Stdio::from(tx))
                .stdout(log)
                .stderr(log2)
                .kill_on_drop(false);
            cmd.spawn().map_err(|e| EngineError::io(format!("spawn the task init {}", self.init.display()), e))?
            // `cmd` (holding the pipe's write end) is dropped here: the init steps hold the only copies
        };
        let report = read_report(rx).await;
        let mut supervisor = None;
        let mut failure = None;
        for line in report.as_deref().unwrap_or_default().lines() {
            match line.split_once(' ') {
                Some(("supervisor", ids)) => {
                    let mut it = ids.split(' ').map(str::parse::<u64>);
                    if let (Some(Ok(pid)), Some(Ok(start))) = (it.next(), it.next()) {
                        supervisor = Some((pid as i64, start));
                    }
                }
                Some(("notfound", text)) => failure = failure.or(Some(EngineError::NotFound(text.to_string()))),
                Some(("error", text)) => failure = failure.or(Some(EngineError::Invalid(text.to_string()))),
                _ => {}
            }
        }
        let failure = match (report, supervisor) {
            (Err(e), _) => Some(e),
            (Ok(_), None) if failure.is_none() => Some(EngineError::Invalid(format!(
                "the task init ({}) exited without starting the task",
                self.init.display()
            ))),
            _ => failure,
        };
        if let Some(e) = failure {
            if let Some((pid, _)) = supervisor {
                let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            let _ = child.start_kill();
            let _ = tokio::time::timeout(KILL_TIMEOUT, child.wait()).await;
            return Err(e);
        }
        let (pid, start) = supervisor.unwrap_or_default();
        Ok((child, pid, start))
    }
}

/// Reads the init's report to its end (the program exec'd, or every step gave up), bounded in time and size.
async fn read_report(rx: std::os::fd::OwnedFd) -> Result<String, EngineError> {
    let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(rx)
        .map_err(|e| EngineError::io("reading the task init's report", e))?;
    let mut text = String::new();
    match tokio::time::timeout(SETUP_TIMEOUT, rx.take(MAX_REPORT).read_to_string(&mut text)).await {
        Ok(Ok(_)) => Ok(text),
        Ok(Err(e)) => Err(EngineError::io("reading the task init's report", e)),
        Err(_) => Err(EngineError::Invalid(format!("the task was not set up within {SETUP_TIMEOUT:?}"))),
    }
}

/// A hostname the kernel and resolvers accept: RFC 1123 labels, at most 64 bytes (the UTS limit).
fn check_hostname(h: &str) -> Result<(), EngineError> {
    let ok = !h.is_empty()
        && h.len() <= 64
        && h.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(EngineError::Invalid(format!("invalid hostname {h:?}: not a valid RFC 1123 hostname of at most 64 bytes")))
    }
}

/// `/etc/hosts` of a task: localhost, and its addresses on its networks under its hostname (as Docker writes it).
fn hosts_file(task: &Task, hostname: &str) -> String {
    let mut s = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    for a in &task.networks_attachments {
        if let Some((ip, _)) = a.ipv4() {
            s.push_str(&format!("{ip}\t{hostname}\n"));
        }
    }
    s
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

    fn use_files(&self, task_id: &str, files: Vec<TaskFile>) -> Result<(), EngineError> {
        TaskFile::check_all(&files)?;
        if !nix::unistd::geteuid().is_root() || self.isolation == Isolation::None {
            return Err(EngineError::Invalid(
                "files (secrets, configs) need the task's own mount namespace, which this node cannot make".into(),
            ));
        }
        self.files.lock().unwrap_or_else(|p| p.into_inner()).insert(task_id.to_string(), files);
        Ok(())
    }

    async fn prepare(&self, task: &Task) -> Result<(), EngineError> {
        spec::check_task_id(&task.id)?;
        spec::check_fields(task, EngineKind::Process)?;
        let pulled = self.pull(task).await?;
        let (image, _held) = pulled.map_or((None, None), |(r, g)| (Some(r), Some(g)));
        let plan = self.plan(task, image.as_ref())?;
        // settle the isolation probe now: `use_netns` (between prepare and start) needs its answer
        let namespaced = self.namespaced().await;
        needs_namespaces(&plan, namespaced)?;
        let dir = self.task_dir(&task.id);
        tokio::fs::create_dir_all(&dir).await.map_err(|e| EngineError::io(format!("mkdir {}", dir.display()), e))?;
        if let Some(i) = &image {
            let json = serde_json::to_vec(i).map_err(|e| EngineError::io("encode image.json", e.into()))?;
            write_file(&dir.join(IMAGE_FILE), &json).await?;
        }
        let meta = TaskMeta { name: spec::task_name(task), labels: spec::task_labels(task) };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| EngineError::io("encode task.json", e.into()))?;
        write_file(&dir.join("task.json"), &json).await
    }

    async fn start(&self, task: &Task) -> Result<Handle, EngineError> {
        let image = self.recorded_image(&task.id);
        let plan = self.plan(task, image.as_ref())?;
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
        needs_namespaces(&plan, namespaced)?;
        if !namespaced && self.files.lock().unwrap_or_else(|p| p.into_inner()).remove(&task.id).is_some() {
            return Err(EngineError::Invalid(
                "files (secrets, configs) need the task's own mount namespace, which this node cannot make".into(),
            ));
        }
        write_file(&dir.join("hostname"), format!("{}\n", plan.hostname).as_bytes()).await?;
        write_file(&dir.join("hosts"), hosts_file(task, &plan.hostname).as_bytes()).await?;
        let mut steps = Vec::new();
        let resources = self.acquire(task, &plan, &mut steps).await?;
        let init_plan = self.init_plan(task, &plan, namespaced, steps, &resources);
        let spawned = async {
            let json =
                serde_json::to_vec(&init_plan).map_err(|e| EngineError::io("encode plan.json", e.into()))?;
            // the plan holds the task's environment: for root's eyes only, like Docker's config.v2.json
            write_file_mode(&dir.join(plan::FILE), &json, 0o600).await?;
            self.spawn(task).await
        };
        let (child, pid, start) = match spawned.await {
            Ok(s) => s,
            Err(e) => {
                self.release(&task.id, &resources).await;
                let _ = tokio::fs::remove_file(dir.join("resources.json")).await;
                return Err(e);
            }
        };
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

    async fn watch_health(&self, h: &Handle, task: &Task, tx: tokio::sync::watch::Sender<Health>) -> bool {
        let spec = task.spec.container_spec.as_ref().and_then(|c| c.healthcheck.as_ref());
        // an image's HEALTHCHECK fills in the spec's (Docker's merge; `prepare` checked the result)
        let merged = self
            .recorded_image(&task.id)
            .and_then(|i| image::merged_healthcheck(spec, i.config.config.healthcheck.as_ref()));
        let check = match HealthCheck::from_spec(merged.as_ref().or(spec)) {
            Ok(Some(c)) => c,
            Ok(None) => return false,
            Err(e) => {
                // the managers refuse such a spec; one that got here anyway never becomes healthy
                tracing::warn!(task = %task.id, "healthcheck: {e}");
                std::future::pending::<()>().await;
                return true;
            }
        };
        let argv = check.test.argv();
        let timeout = Duration::from_nanos(check.timeout_ns as u64);
        let mut monitor = HealthMonitor::new(check);
        let started = Instant::now();
        loop {
            let at = started.elapsed().as_nanos().min(i64::MAX as u128) as i64;
            tokio::time::sleep(Duration::from_nanos(monitor.next_delay_ns(at) as u64)).await;
            let at = started.elapsed().as_nanos().min(i64::MAX as u128) as i64;
            let passed = self.probe(h, &argv, timeout).await;
            let before = monitor.status();
            let now = monitor.record(at, passed);
            if now != before {
                tx.send_replace(now);
            }
        }
    }

    async fn wait(&self, h: &Handle) -> Result<Exit, EngineError> {
        let dir = self.task_dir(&h.task_id);
        let status = loop {
            if let Liveness::Gone(status) = self.liveness(h)? {
                break status;
            }
            tokio::time::sleep(POLL).await;
        };
        let (oom_kills, memory_limit) = self.finish_cgroup(&h.task_id).await;
        let exit = match read_exit(&dir.join("exit")).await {
            Some(exit) => exit,
            None => match status {
                Some(s) => match (s.code(), std::os::unix::process::ExitStatusExt::signal(&s)) {
                    (Some(code), _) => Exit::Code(code.into()),
                    (None, Some(sig)) => Exit::Signal(sig),
                    (None, None) => Exit::Code(-1),
                },
                None => Exit::Code(-1),
            },
        };
        Ok(match exit {
            Exit::Code(code) if oom_kills > 0 && code != 0 => Exit::OomKilled { code, memory_limit },
            Exit::Signal(9) if oom_kills > 0 => Exit::OomKilled { code: 137, memory_limit },
            other => other,
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
        if let Some(r) = self.resources(task_id) {
            self.release(task_id, &r).await;
        }
        let dir = self.task_dir(task_id);
        let removed = tokio::fs::remove_dir_all(&dir).await;
        if removed.is_ok() {
            // pulls are serialised by the store, collection is not: it runs only between tasks' lives here
            self.collect_images();
        }
        match removed {
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

    async fn read_logs(&self, req: &LogsRequest) -> Result<LogsBatch, EngineError> {
        spec::check_task_id(&req.task_id)?;
        let dir = self.task_dir(&req.task_id);
        if !dir.is_dir() {
            return Err(EngineError::NotFound(format!("No such task: {}", req.task_id)));
        }
        // the task writes no more once its supervisor is gone (or it never started)
        let ended = || self.recorded_handle(&req.task_id).is_none_or(|h| !self.running(&h));
        let logs = dir.join(logs::LOG_DIR);
        crate::logs::read_batch(logs.clone(), req, ended)
            .await
            .map_err(|e| EngineError::io(format!("read {}", logs.display()), e))
    }
}

/// Mounts, a hostname and sysctls need the task's own namespaces.
fn needs_namespaces(plan: &Plan, namespaced: bool) -> Result<(), EngineError> {
    if namespaced {
        return Ok(());
    }
    let what = if plan.layers.is_some() {
        "An image"
    } else if !plan.mounts.is_empty() {
        "Mounts"
    } else if plan.hostname_set {
        "Hostname"
    } else if !plan.sysctls.is_empty() {
        "Sysctls"
    } else {
        return Ok(());
    };
    Err(EngineError::Invalid(format!(
        "{what} needs the task's own namespaces, which this node cannot make (the process engine is not root, or \
         namespaces are refused)"
    )))
}

/// The environment, as Docker builds a container's: `PATH` (Docker's default) and `HOSTNAME`, then `Env` (`K=V`
/// sets, a bare `K` unsets), then `HOME` (the user's, from passwd) unless `Env` set it. Nothing of the agent's.
fn environment(c: &ContainerSpec, hostname: &str, home: &str) -> Vec<String> {
    let mut env: Vec<(String, String)> = vec![("PATH".into(), DEFAULT_PATH.into()), ("HOSTNAME".into(), hostname.into())];
    for kv in &c.env {
        let (k, v) = match kv.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (kv.as_str(), None),
        };
        if k.is_empty() {
            continue; // `""` or `=x`: nothing to set (Docker accepts both)
        }
        env.retain(|(key, _)| key != k);
        if let Some(v) = v {
            env.push((k.to_string(), v.to_string()));
        }
    }
    if !env.iter().any(|(k, _)| k == "HOME") {
        env.push(("HOME".into(), home.into()));
    }
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Finds `prog` the way `execvp` would (Docker's messages on failure).
pub(crate) fn lookup(prog: &str, path: &str, cwd: &Path) -> Result<PathBuf, EngineError> {
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

/// A helper program (`ip`) on the agent's PATH or in the usual places.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = format!("{}:{DEFAULT_PATH}", std::env::var("PATH").unwrap_or_default());
    lookup(name, &path, Path::new("/")).ok()
}

/// Can this agent make the namespaces tasks get? (Root, and the init's probe succeeds.)
async fn probe_namespaces(init: &Path) -> bool {
    let why_not = if !nix::unistd::geteuid().is_root() {
        Some("not running as root".to_string())
    } else {
        let probe = tokio::process::Command::new(init)
            .args([INIT_ARG, "probe"])
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(Duration::from_secs(5), probe).await {
            Ok(Ok(out)) if out.status.success() => None,
            Ok(Ok(out)) => Some(format!("the namespace probe failed: {}", String::from_utf8_lossy(&out.stderr).trim())),
            Ok(Err(e)) => Some(format!("the namespace probe ({}) failed: {e}", init.display())),
            Err(_) => Some("the namespace probe timed out".to_string()),
        }
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

/// `<task dir>/exit`: `N` (the supervisor's record) or `signal N` (written by `stop` after SIGKILL).
async fn read_exit(path: &Path) -> Option<Exit> {
    let text = tokio::fs::read_to_string(path).await.ok()?;
    let text = text.trim();
    match text.strip_prefix("signal ") {
        Some(n) => n.trim().parse().ok().map(Exit::Signal),
        None => text.parse().ok().map(Exit::Code),
    }
}

async fn write_file(path: &Path, data: &[u8]) -> Result<(), EngineError> {
    write_file_mode(path, data, 0o644).await
}

/// Writes `path` whole (through a temporary file and a rename) with permission bits `mode`.
async fn write_file_mode(path: &Path, data: &[u8], mode: u32) -> Result<(), EngineError> {
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, data).await.map_err(|e| EngineError::io(format!("write {}", tmp.display()), e))?;
    tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(|e| EngineError::io(format!("chmod {}", tmp.display()), e))?;
    tokio::fs::rename(&tmp, path).await.map_err(|e| EngineError::io(format!("rename {}", path.display()), e))
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
    fn env_is_dockers_not_the_agents() {
        let c = ContainerSpec { env: vec!["A=1".into(), "HOME=/h".into(), "PATH".into()], ..Default::default() };
        let env = environment(&c, "abc", "/root");
        assert_eq!(env, vec!["HOSTNAME=abc", "A=1", "HOME=/h"]);
        let env = environment(&ContainerSpec::default(), "abc", "/root");
        assert_eq!(env, vec![format!("PATH={DEFAULT_PATH}"), "HOSTNAME=abc".into(), "HOME=/root".into()]);
    }

    #[test]
    fn hostnames_and_hosts_files() {
        assert!(check_hostname("web-1.example").is_ok());
        for bad in ["", "-x", "a..b", "a_b", &"x".repeat(65)] {
            assert!(check_hostname(bad).is_err(), "{bad}");
        }
        let mut t = Task::default();
        t.networks_attachments.push(skep_api::docker::NetworkAttachment {
            addresses: vec!["10.0.1.5/24".into()],
            ..Default::default()
        });
        let hosts = hosts_file(&t, "web-1");
        assert!(hosts.starts_with("127.0.0.1\tlocalhost\n") && hosts.ends_with("10.0.1.5\tweb-1\n"), "{hosts}");
    }

    #[test]
    fn image_references_name_programs() {
        assert_eq!(program_from_image("busybox"), "busybox");
        assert_eq!(program_from_image("busybox:latest"), "busybox");
        assert_eq!(program_from_image("docker.io/library/busybox@sha256:abc"), "busybox");
        assert_eq!(program_from_image("registry:5000/team/app:1.2"), "app");
        assert_eq!(program_from_image("/usr/bin/env"), "/usr/bin/env");
    }
}
