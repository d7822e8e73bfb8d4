//! Per-task cgroups: every process task runs in its own cgroup, `<parent>/<task ID>` under a subtree the engine owns
//! (`skep` by default) and outside the daemon's own cgroup, so the task's limits hold, an OOM kill can be told from
//! other deaths, and stopping or restarting the daemon (systemd kills its unit's cgroup) leaves tasks alone.
//!
//! # Layouts
//! - **v2** (`cgroup2` at the cgroup root, e.g. `/sys/fs/cgroup`): `/sys/fs/cgroup/skep/<task>` with `memory.max`,
//!   `memory.swap.max`, `memory.low`, `cpu.max`, `pids.max`. The controllers are enabled in `cgroup.subtree_control`
//!   of the root and of `skep/` (the parent holds no process, as v2 requires).
//! - **v1** (one hierarchy per controller): `/sys/fs/cgroup/{memory,cpu,pids}/skep/<task>` with
//!   `memory.limit_in_bytes` (+ `memory.memsw.limit_in_bytes` = 2 × the limit, Docker's default swap allowance,
//!   where swap accounting exists), `memory.soft_limit_in_bytes`, `cpu.cfs_period_us`/`cpu.cfs_quota_us`,
//!   `pids.max`. A task also joins `skep/<task>` of the hierarchies that only *track* processes (systemd's
//!   `name=systemd`, and the unified hierarchy of a hybrid layout), which is what takes it out of the daemon's
//!   systemd unit, as Docker's cgroupfs driver does.
//!
//! The numbers follow swarmkit's executor: the CPU quota is `NanoCPUs × 100 ms / 10⁹` per 100 ms period.
//!
//! # Lifecycle
//! The engine [`create`](Hierarchies::create)s the cgroup and writes the limits before the task's init starts; the
//! init joins it (writes its PID to `cgroup.procs`) before anything else, so every process of the task, the program
//! included, is limited from its first instruction. When the task is gone the engine reads the OOM-kill counter
//! ([`TaskCgroup::oom_kills`]) and removes the directories ([`TaskCgroup::remove`]). A limit whose controller is
//! missing is an error ([`CgroupError::NoController`]): the task is refused rather than run unlimited.
//!
//! [`writes`] (what to write for which limits) and [`parse_mountinfo`] (which layout a host has) are pure and unit
//! tested; the rest is file I/O.

use super::procfs::MountInfo;
use crate::engine::spec::{Limits, CPU_PERIOD_US};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A controller skep applies limits with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Controller {
    Memory,
    Cpu,
    Pids,
}

impl Controller {
    const ALL: [Controller; 3] = [Controller::Memory, Controller::Cpu, Controller::Pids];

    /// The kernel's name (v1 mount option, v2 `cgroup.controllers` entry).
    fn name(self) -> &'static str {
        match self {
            Controller::Memory => "memory",
            Controller::Cpu => "cpu",
            Controller::Pids => "pids",
        }
    }

    /// The limit that needs it, for messages.
    fn limit(self) -> &'static str {
        match self {
            Controller::Memory => "memory limit",
            Controller::Cpu => "CPU limit",
            Controller::Pids => "pids limit",
        }
    }
}

/// The cgroup hierarchies of this host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Hierarchies {
    /// Pure v2: the unified hierarchy's mount point.
    pub unified: Option<PathBuf>,
    /// v1: the mount point of each controller's hierarchy (`cpu` may be co-mounted with `cpuacct`).
    pub v1: Vec<(Controller, PathBuf)>,
    /// Hierarchies without controllers that a task joins so systemd does not count it in the daemon's unit:
    /// `name=systemd`, and the unified hierarchy of a hybrid layout.
    pub trackers: Vec<PathBuf>,
}

/// Why a task's cgroup could not be made as asked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    /// No cgroup hierarchy is mounted at all.
    #[error("cannot apply the {0}: no cgroup hierarchy is mounted on this node")]
    NoCgroups(&'static str),
    /// The controller a limit needs is not there (or not enabled for the engine's subtree).
    #[error("cannot apply the {limit}: the {controller} cgroup controller is not available on this node")]
    NoController { limit: &'static str, controller: &'static str },
    /// A cgroup file could not be written.
    #[error("cgroup {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_err(path: &Path, source: std::io::Error) -> CgroupError {
    CgroupError::Io { path: path.display().to_string(), source }
}

/// A task's cgroup: one directory per hierarchy. Persisted with the task, so a restarted engine can still read its
/// OOM counter and remove it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskCgroup {
    /// Every directory made (the init writes its PID to `cgroup.procs` of each).
    pub dirs: Vec<PathBuf>,
    /// The memory controller's directory, if any (OOM counter).
    pub memory: Option<PathBuf>,
    /// v2 (`memory.events`) rather than v1 (`memory.oom_control`).
    pub v2: bool,
}

/// What to write, in order, to apply `limits`: `(controller, file, value)`. `swap` says whether the swap files exist
/// (v1 `memory.memsw.limit_in_bytes`, v2 `memory.swap.max`).
pub(crate) fn writes(v2: bool, limits: &Limits, swap: bool) -> Vec<(Controller, &'static str, String)> {
    let mut w = Vec::new();
    if limits.memory_bytes > 0 {
        let m = limits.memory_bytes;
        if v2 {
            w.push((Controller::Memory, "memory.max", m.to_string()));
            if swap {
                // Docker's default: as much swap as memory (MemorySwap = 2 × Memory)
                w.push((Controller::Memory, "memory.swap.max", m.to_string()));
            }
        } else {
            w.push((Controller::Memory, "memory.limit_in_bytes", m.to_string()));
            if swap {
                w.push((Controller::Memory, "memory.memsw.limit_in_bytes", m.saturating_mul(2).to_string()));
            }
        }
    }
    if limits.memory_reservation > 0 {
        let file = if v2 { "memory.low" } else { "memory.soft_limit_in_bytes" };
        w.push((Controller::Memory, file, limits.memory_reservation.to_string()));
    }
    if let Some(quota) = limits.cpu_quota_us() {
        if v2 {
            w.push((Controller::Cpu, "cpu.max", format!("{quota} {CPU_PERIOD_US}")));
        } else {
            w.push((Controller::Cpu, "cpu.cfs_period_us", CPU_PERIOD_US.to_string()));
            w.push((Controller::Cpu, "cpu.cfs_quota_us", quota.to_string()));
        }
    }
    if limits.pids > 0 {
        w.push((Controller::Pids, "pids.max", limits.pids.to_string()));
    }
    w
}

/// Which controllers `limits` needs (the soft memory limit needs none: it is applied only where possible).
fn needed(limits: &Limits) -> Vec<Controller> {
    let mut c = Vec::new();
    if limits.memory_bytes > 0 {
        c.push(Controller::Memory);
    }
    if limits.nano_cpus > 0 {
        c.push(Controller::Cpu);
    }
    if limits.pids > 0 {
        c.push(Controller::Pids);
    }
    c
}

/// The layout described by `/proc/self/mountinfo`.
pub(crate) fn parse_mountinfo(mounts: &[MountInfo]) -> Hierarchies {
    let mut h = Hierarchies::default();
    let mut unified_mounts = Vec::new();
    for m in mounts {
        match m.fstype.as_str() {
            "cgroup2" => unified_mounts.push(m.mount_point.clone()),
            "cgroup" => {
                let opts: Vec<&str> = m.super_options.split(',').collect();
                let mut any = false;
                for c in Controller::ALL {
                    if opts.contains(&c.name()) && !h.v1.iter().any(|(have, _)| *have == c) {
                        h.v1.push((c, m.mount_point.clone()));
                        any = true;
                    }
                }
                if !any && opts.contains(&"name=systemd") && !h.trackers.contains(&m.mount_point) {
                    h.trackers.push(m.mount_point.clone());
                }
            }
            _ => {}
        }
    }
    // hybrid: v1 controllers plus a unified hierarchy that only tracks processes
    if h.v1.is_empty() {
        h.unified = unified_mounts.into_iter().next();
    } else {
        h.trackers.extend(unified_mounts);
    }
    h.v1.sort();
    h
}

/// Reads `path` and the number after `key ` on one of its lines (`oom_kill 3`).
fn counter(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|e| io_err(path, e))
}

fn mkdir(path: &Path) -> Result<(), CgroupError> {
    match std::fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(io_err(path, e)),
    }
}

/// The hierarchies a process belongs to, from `/proc/<pid>/cgroup` (`4:memory:/x`, `9:name=systemd:/`, `0::/`): the
/// mount data of each (`memory`, `cpu,cpuacct`, `none,name=systemd`), `None` for the unified hierarchy.
pub(crate) fn parse_proc_cgroup(text: &str) -> Vec<Option<String>> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, controllers) = (f.next()?, f.next()?);
            Some(match controllers {
                "" => None,
                c if c.starts_with("name=") => Some(format!("none,{c}")),
                c => Some(c.to_string()),
            })
        })
        .collect()
}

impl Hierarchies {
    /// This host's layout as this process's mount namespace shows it. A daemon in a mount namespace without the
    /// cgroup mounts (`ip netns exec` remounts `/sys`) mounts the hierarchies it belongs to under `fallback`
    /// itself, as container runtimes do; the mounts live and die with that namespace.
    pub fn detect(fallback: &Path) -> Hierarchies {
        let h = parse_mountinfo(&super::procfs::read_mountinfo("self").unwrap_or_default());
        if !h.is_empty() {
            return h;
        }
        let wanted = parse_proc_cgroup(&std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default());
        for (i, data) in wanted.iter().enumerate() {
            let dir = fallback.join(format!("h{i}"));
            let mounted = std::fs::create_dir_all(&dir).map_err(|e| e.to_string()).and_then(|()| {
                let (fstype, data) = match data {
                    Some(d) => ("cgroup", Some(d.as_str())),
                    None => ("cgroup2", None),
                };
                nix::mount::mount(Some("cgroup"), &dir, Some(fstype), nix::mount::MsFlags::empty(), data)
                    .map_err(|e| e.to_string())
            });
            if let Err(e) = mounted {
                tracing::warn!(hierarchy = ?data, error = %e, "process engine: could not mount a cgroup hierarchy");
                let _ = std::fs::remove_dir(&dir);
            }
        }
        let h = parse_mountinfo(&super::procfs::read_mountinfo("self").unwrap_or_default());
        if !h.is_empty() {
            tracing::info!(at = %fallback.display(), "process engine: no cgroup hierarchy was mounted here; mounted them");
        }
        h
    }

    /// No cgroup hierarchy at all.
    pub fn is_empty(&self) -> bool {
        self.unified.is_none() && self.v1.is_empty()
    }

    /// Makes `<parent>/<task_id>` in every hierarchy and applies `limits`. Errors leave nothing behind.
    pub fn create(&self, parent: &str, task_id: &str, limits: &Limits) -> Result<TaskCgroup, CgroupError> {
        let needed = needed(limits);
        if self.is_empty() {
            return match needed.first() {
                Some(c) => Err(CgroupError::NoCgroups(c.limit())),
                None => Ok(TaskCgroup::default()),
            };
        }
        let mut cg = TaskCgroup::default();
        let made = self.make(parent, task_id, &needed, &mut cg);
        let applied = made.and_then(|dirs| self.apply(&dirs, limits, &mut cg));
        if let Err(e) = applied {
            for d in cg.dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
            return Err(e);
        }
        Ok(cg)
    }

    /// Makes the directories; returns each controller's.
    fn make(
        &self,
        parent: &str,
        task_id: &str,
        needed: &[Controller],
        cg: &mut TaskCgroup,
    ) -> Result<Vec<(Controller, PathBuf)>, CgroupError> {
        let mut by_controller = Vec::new();
        if let Some(root) = &self.unified {
            cg.v2 = true;
            let available = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
            let parent_dir = root.join(parent);
            mkdir(&parent_dir)?;
            let mut enabled = Vec::new();
            for c in Controller::ALL {
                let listed = available.split_whitespace().any(|n| n == c.name());
                // enable top-down; a failure is only fatal for a controller a limit needs
                let on = listed
                    && write(&root.join("cgroup.subtree_control"), &format!("+{}", c.name())).is_ok()
                    && write(&parent_dir.join("cgroup.subtree_control"), &format!("+{}", c.name())).is_ok();
                if on {
                    enabled.push(c);
                } else if needed.contains(&c) {
                    return Err(CgroupError::NoController { limit: c.limit(), controller: c.name() });
                }
            }
            let dir = parent_dir.join(task_id);
            mkdir(&dir)?;
            cg.dirs.push(dir.clone());
            for c in enabled {
                if c == Controller::Memory {
                    cg.memory = Some(dir.clone());
                }
                by_controller.push((c, dir.clone()));
            }
        } else {
            for c in needed {
                if !self.v1.iter().any(|(have, _)| have == c) {
                    return Err(CgroupError::NoController { limit: c.limit(), controller: c.name() });
                }
            }
            let mut mounts: Vec<(Option<Controller>, &PathBuf)> =
                self.v1.iter().map(|(c, p)| (Some(*c), p)).collect();
            mounts.extend(self.trackers.iter().map(|p| (None, p)));
            for (c, mount) in mounts {
                let dir = mount.join(parent).join(task_id);
                if !cg.dirs.contains(&dir) {
                    mkdir(&mount.join(parent))?;
                    mkdir(&dir)?;
                    cg.dirs.push(dir.clone());
                }
                if let Some(c) = c {
                    if c == Controller::Memory {
                        cg.memory = Some(dir.clone());
                    }
                    by_controller.push((c, dir));
                }
            }
        }
        Ok(by_controller)
    }

    fn apply(&self, dirs: &[(Controller, PathBuf)], limits: &Limits, cg: &mut TaskCgroup) -> Result<(), CgroupError> {
        let dir_of = |c: Controller| dirs.iter().find(|(have, _)| *have == c).map(|(_, d)| d);
        let swap = dir_of(Controller::Memory).is_some_and(|d| {
            d.join(if cg.v2 { "memory.swap.max" } else { "memory.memsw.limit_in_bytes" }).exists()
        });
        for (c, file, value) in writes(cg.v2, limits, swap) {
            match dir_of(c) {
                Some(d) => write(&d.join(file), &value)?,
                // only the soft limit can get here without its controller
                None => tracing::debug!(file, "process engine: no {} controller, soft limit not applied", c.name()),
            }
        }
        Ok(())
    }
}

impl TaskCgroup {
    /// How many times the OOM killer killed a process of this cgroup (v1 `memory.oom_control`, v2 `memory.events`).
    pub fn oom_kills(&self) -> u64 {
        let Some(d) = &self.memory else { return 0 };
        if self.v2 {
            counter(&d.join("memory.events"), "oom_kill").unwrap_or(0)
        } else {
            counter(&d.join("memory.oom_control"), "oom_kill").unwrap_or(0)
        }
    }

    /// The PIDs in the cgroup (of the first hierarchy).
    pub fn procs(&self) -> Vec<i32> {
        let Some(d) = self.dirs.first() else { return Vec::new() };
        std::fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Removes the directories; processes still in them (stragglers of a task that is over) are killed first.
    /// Removing what is gone is not an error.
    pub async fn remove(&self) -> Result<(), std::io::Error> {
        for attempt in 0..100u32 {
            let mut busy = None;
            for d in self.dirs.iter().rev() {
                match std::fs::remove_dir(d) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => busy = Some(e),
                }
            }
            let Some(e) = busy else { return Ok(()) };
            if attempt == 99 {
                return Err(e);
            }
            if attempt >= 10 {
                for pid in self.procs() {
                    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mi(mount_point: &str, fstype: &str, super_options: &str) -> MountInfo {
        MountInfo { mount_point: mount_point.into(), fstype: fstype.into(), super_options: super_options.into(), ..Default::default() }
    }

    #[test]
    fn layouts_are_recognised() {
        let v1 = [
            mi("/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"),
            mi("/sys/fs/cgroup/memory", "cgroup", "rw,memory"),
            mi("/sys/fs/cgroup/pids", "cgroup", "rw,pids"),
            mi("/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd"),
            mi("/sys/fs/cgroup/unified", "cgroup2", "rw,nsdelegate"),
            mi("/", "ext4", "rw"),
        ];
        let h = parse_mountinfo(&v1);
        assert_eq!(h.unified, None);
        assert_eq!(
            h.v1,
            vec![
                (Controller::Memory, PathBuf::from("/sys/fs/cgroup/memory")),
                (Controller::Cpu, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")),
                (Controller::Pids, PathBuf::from("/sys/fs/cgroup/pids")),
            ]
        );
        assert_eq!(h.trackers, vec![PathBuf::from("/sys/fs/cgroup/systemd"), PathBuf::from("/sys/fs/cgroup/unified")]);

        let v2 = parse_mountinfo(&[mi("/sys/fs/cgroup", "cgroup2", "rw,nsdelegate,memory_recursiveprot")]);
        assert_eq!(v2.unified, Some(PathBuf::from("/sys/fs/cgroup")));
        assert!(v2.v1.is_empty() && v2.trackers.is_empty());
        assert!(parse_mountinfo(&[]).is_empty());
    }

    #[test]
    fn limits_become_the_right_files() {
        let l = Limits { nano_cpus: 1_500_000_000, memory_bytes: 8 << 20, pids: 50, memory_reservation: 4 << 20 };
        let v1: Vec<(&str, String)> = writes(false, &l, true).into_iter().map(|(_, f, v)| (f, v)).collect();
        assert_eq!(
            v1,
            vec![
                ("memory.limit_in_bytes", "8388608".to_string()),
                ("memory.memsw.limit_in_bytes", "16777216".to_string()),
                ("memory.soft_limit_in_bytes", "4194304".to_string()),
                ("cpu.cfs_period_us", "100000".to_string()),
                ("cpu.cfs_quota_us", "150000".to_string()),
                ("pids.max", "50".to_string()),
            ]
        );
        let v2: Vec<(&str, String)> = writes(true, &l, false).into_iter().map(|(_, f, v)| (f, v)).collect();
        assert_eq!(
            v2,
            vec![
                ("memory.max", "8388608".to_string()),
                ("memory.low", "4194304".to_string()),
                ("cpu.max", "150000 100000".to_string()),
                ("pids.max", "50".to_string()),
            ]
        );
        assert!(writes(true, &Limits::default(), true).is_empty());
        assert_eq!(needed(&l), vec![Controller::Memory, Controller::Cpu, Controller::Pids]);
        assert!(needed(&Limits { memory_reservation: 1, ..Default::default() }).is_empty());
    }

    #[test]
    fn a_missing_controller_refuses_the_limit() {
        let h = Hierarchies { v1: vec![(Controller::Cpu, PathBuf::from("/nonexistent/cpu"))], ..Default::default() };
        let l = Limits { memory_bytes: 8 << 20, ..Default::default() };
        let e = h.create("skep", "t1", &l).unwrap_err();
        assert_eq!(e.to_string(), "cannot apply the memory limit: the memory cgroup controller is not available on this node");
        let e = Hierarchies::default().create("skep", "t1", &l).unwrap_err();
        assert!(e.to_string().contains("no cgroup hierarchy"), "{e}");
        assert_eq!(Hierarchies::default().create("skep", "t1", &Limits::default()).unwrap(), TaskCgroup::default());
    }

    /// A directory standing in for a cgroup mount: the same file names, plain files.
    struct Fake(PathBuf);
    impl Fake {
        fn new(name: &str) -> Fake {
            let d = std::env::temp_dir().join(format!("skep-cg-{name}-{}-{:x}", std::process::id(), rand::random::<u32>()));
            std::fs::create_dir_all(&d).unwrap();
            Fake(d)
        }
        fn read(&self, rel: &str) -> String {
            std::fs::read_to_string(self.0.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
        }
    }
    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_v2_task_cgroup_gets_its_limits() {
        let fake = Fake::new("v2");
        std::fs::write(fake.0.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
        let h = Hierarchies { unified: Some(fake.0.clone()), ..Default::default() };
        let l = Limits { nano_cpus: 250_000_000, memory_bytes: 32 << 20, pids: 7, memory_reservation: 0 };
        let cg = h.create("skep", "t1", &l).unwrap();
        assert_eq!(cg.dirs, vec![fake.0.join("skep/t1")]);
        assert!(cg.v2 && cg.memory == Some(fake.0.join("skep/t1")));
        assert_eq!(fake.read("skep/t1/memory.max"), (32u64 << 20).to_string());
        assert_eq!(fake.read("skep/t1/cpu.max"), "25000 100000");
        assert_eq!(fake.read("skep/t1/pids.max"), "7");
        // the controllers were enabled down to the subtree (a plain file keeps the last write)
        assert_eq!(fake.read("skep/cgroup.subtree_control"), "+pids");
        // a controller the host does not list refuses the limit that needs it
        std::fs::write(fake.0.join("cgroup.controllers"), "cpu pids\n").unwrap();
        let e = h.create("skep", "t2", &l).unwrap_err();
        assert!(matches!(e, CgroupError::NoController { controller: "memory", .. }), "{e}");
    }

    #[test]
    fn a_v1_task_cgroup_is_in_every_hierarchy() {
        let fake = Fake::new("v1");
        let h = Hierarchies {
            v1: vec![
                (Controller::Memory, fake.0.join("memory")),
                (Controller::Cpu, fake.0.join("cpu")),
                (Controller::Pids, fake.0.join("pids")),
            ],
            trackers: vec![fake.0.join("systemd")],
            ..Default::default()
        };
        for d in ["memory", "cpu", "pids", "systemd"] {
            std::fs::create_dir_all(fake.0.join(d)).unwrap();
        }
        let l = Limits { memory_bytes: 8 << 20, pids: 3, ..Default::default() };
        let cg = h.create("skep", "t1", &l).unwrap();
        assert_eq!(cg.dirs.len(), 4, "{:?}", cg.dirs);
        assert!(fake.0.join("systemd/skep/t1").is_dir(), "out of the daemon's systemd unit too");
        assert_eq!(fake.read("memory/skep/t1/memory.limit_in_bytes"), (8u64 << 20).to_string());
        assert_eq!(fake.read("pids/skep/t1/pids.max"), "3");
        assert!(!fake.0.join("cpu/skep/t1/cpu.cfs_quota_us").exists(), "no CPU limit asked");
    }

    #[test]
    fn proc_cgroup_names_the_hierarchies_to_mount() {
        let text = "9:name=systemd:/\n4:memory:/process_api/x\n2:cpu,cpuacct:/\n0::/\n";
        assert_eq!(
            parse_proc_cgroup(text),
            vec![Some("none,name=systemd".into()), Some("memory".into()), Some("cpu,cpuacct".into()), None]
        );
    }

    #[test]
    fn counters_are_read_by_key() {
        let f = std::env::temp_dir().join(format!("skep-cg-counter-{}", std::process::id()));
        std::fs::write(&f, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(counter(&f, "oom_kill"), Some(3));
        assert_eq!(counter(&f, "under_oom"), Some(0));
        std::fs::remove_file(&f).unwrap();
    }
}
