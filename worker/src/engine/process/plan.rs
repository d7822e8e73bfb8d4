//! The init plan: everything the engine decided about a task, written to `<task dir>/plan.json` for the task's init
//! ([`super::init`]) to carry out. The engine does all the checking and resolving (users, capabilities, mounts,
//! volumes, cgroups); the init only executes, so that every refusal happens before anything runs and carries a
//! clear reason.

use serde::{Deserialize, Serialize};
use skep_api::docker::{Propagation, ReadOnlyDepth};
use std::path::{Path, PathBuf};

/// The plan's file in the task directory.
pub(crate) const FILE: &str = "plan.json";

/// What the task's init does, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InitPlan {
    /// Make PID, mount, UTS, IPC (and network, unless `netns`) namespaces; false: plain process groups.
    pub namespaces: bool,
    /// Join this network namespace (the sandbox the agent plumbed) instead of making one.
    pub netns: Option<PathBuf>,
    /// Cgroup directories to join before anything else.
    pub cgroups: Vec<PathBuf>,
    /// Signal number the supervisor must survive (the stop signal goes to the whole process group).
    pub stop_signal: i32,
    /// The task's own root (an image's layers under overlayfs), or `None`: the host's root.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
    /// Mounts inside the task's mount namespace, in order (targets inside `rootfs` when there is one).
    pub mounts: Vec<MountStep>,
    /// Hostname of the task's UTS namespace.
    pub hostname: Option<String>,
    /// `/proc/sys` paths and values, written inside the task's namespaces.
    pub sysctls: Vec<(String, String)>,
    /// Once the sysctls are written: Docker's read-only and masked paths of `/proc` and `/sys`.
    pub harden: bool,
    /// The `ip` program, to bring the loopback interface up (a new network namespace has it down).
    pub ip: Option<PathBuf>,
    /// Program (resolved against `PATH` by the exec step, inside the task's mounts) and arguments.
    pub argv: Vec<String>,
    /// The whole environment, `K=V`.
    pub env: Vec<String>,
    /// Working directory.
    pub dir: PathBuf,
    /// Who the program runs as; `None`: unchanged (an engine that is not root).
    pub user: Option<User>,
    /// The bounding set (capability names); `None`: unchanged (an engine that is not root).
    pub capabilities: Option<Vec<String>>,
    /// Set `no_new_privs` before `execve`.
    pub no_new_privs: bool,
    /// How much of the program's output the supervisor keeps.
    #[serde(default)]
    pub logs: crate::logs::LogLimits,
}

/// An image root: `lower` layer directories (top first) under overlayfs with `upper` and `work` in the task
/// directory, mounted at `merged`, which becomes `/`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RootFs {
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
    pub merged: PathBuf,
    /// `ReadOnly`: the root is remounted read-only after the pivot.
    pub read_only: bool,
}

/// The environment variable through which the supervisor hands the plan to the exec step (which runs inside the
/// task's root, where the task directory is not).
pub(crate) const PLAN_ENV: &str = "SKEP_INIT_PLAN";

/// The identity the program runs with.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct User {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// One mount in the task's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum MountStep {
    /// A fresh `/proc` for the task's PID namespace.
    Proc,
    /// A private `/dev/shm` (64 MiB, Docker's default `ShmSize`) and `/dev/mqueue` for the task's IPC namespace.
    Ipc,
    /// A host path (a bind mount, a volume's `_data`, a generated `/etc/hosts`) at `target`.
    Bind {
        source: PathBuf,
        target: PathBuf,
        recursive: bool,
        propagation: Propagation,
        read_only: ReadOnlyDepth,
        /// Create `target` when missing (task mounts); false for the `/etc` files, which are only covered when the
        /// host has them.
        create: bool,
    },
    /// A fresh tmpfs at `target` (`nosuid,nodev`, `noexec` unless `exec`).
    Tmpfs { target: PathBuf, size: Option<u64>, mode: Option<u32>, exec: bool, read_only: bool },
}

impl InitPlan {
    /// The plan from [`PLAN_ENV`] when set, else `<dir>/plan.json`.
    pub fn read_env_or(task_dir: &Path) -> Result<InitPlan, String> {
        match std::env::var(PLAN_ENV) {
            Ok(json) => serde_json::from_str(&json).map_err(|e| format!("decoding the plan: {e}")),
            Err(_) => InitPlan::read(task_dir),
        }
    }

    /// Reads `<dir>/plan.json`.
    pub fn read(task_dir: &Path) -> Result<InitPlan, String> {
        let path = task_dir.join(FILE);
        let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        serde_json::from_slice(&text).map_err(|e| format!("decoding {}: {e}", path.display()))
    }
}
