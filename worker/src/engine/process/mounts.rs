//! A process task's filesystem view: its `Mounts` resolved into [`MountStep`]s by the engine (bind sources checked,
//! volumes acquired from the node's [`VolumeStore`]), and the steps carried out by the task's init inside the task's
//! own mount namespace.
//!
//! The task shares the host's root filesystem (until images give tasks their own root), so its mount namespace is
//! made a recursive **slave** of the host's first (runc's default root propagation): mounts made on the host still
//! reach the task, nothing the task mounts reaches the host. Then, in order: a fresh `/proc` (the task's PID
//! namespace), a private `/dev/shm` and `/dev/mqueue` (its IPC namespace), the task's mounts sorted parents first
//! (Docker sorts by the number of path components), the generated `/etc/resolv.conf`, `/etc/hostname` and
//! `/etc/hosts`, and, after the sysctls, Docker's read-only and masked paths.
//!
//! A missing mount target is created (a directory, or an empty file for a file bind). With the host's root shared,
//! that directory is created **on the host** and stays there after the task, as Docker leaves it in a container's
//! layer.
//!
//! With an image, the task gets its own root instead ([`mount_rootfs`]): the image's layers under overlayfs (the
//! task's writes go to `<task dir>/rootfs/upper`), a minimal `/dev` (a tmpfs with the host's `null`, `zero`,
//! `full`, `random`, `urandom` and `tty` bound in, and the usual links), a read-only `/sys`; every target above is
//! then resolved inside that root ([`resolve_in`]: the image's own symbolic links are followed as if the root were
//! `/`, so a link in an image cannot send a mount to the host), and the task pivots into it ([`pivot`]), the host's
//! root detached.
//!
//! Bind propagation `[r]private` and `[r]slave` are honoured; `[r]shared` is refused: a shared mount would carry the
//! task's mounts to the host, which the slave root forbids.

use super::plan::{MountStep, RootFs};
use super::procfs;
use crate::engine::EngineError;
use crate::volumes::{Acquired, VolumeStore};
use nix::mount::{mount, MsFlags};
use skep_api::docker::{Mount, MountKind, Propagation, ReadOnlyDepth};
use std::path::{Path, PathBuf};

/// Docker's default `/dev/shm` size (`ShmSize`, 64 MiB).
const SHM_SIZE: u64 = 64 << 20;

/// Docker's read-only paths (moby `oci/defaults.go`).
const READ_ONLY_PATHS: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Docker's masked paths.
const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

fn invalid(typ: &str, reason: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("invalid mount config for type {typ:?}: {reason}"))
}

/// Engine side, before the task starts: checks what needs the host (bind sources and their propagation) and takes
/// the volumes (recorded in `held` as they are taken, so the caller can give them back on any error).
pub(crate) async fn resolve(
    mounts: &[(Mount, MountKind)],
    volumes: &VolumeStore,
    task_id: &str,
    held: &mut Vec<Acquired>,
) -> Result<Vec<MountStep>, EngineError> {
    let mut steps = Vec::with_capacity(mounts.len());
    let mut sorted: Vec<&(Mount, MountKind)> = mounts.iter().collect();
    sorted.sort_by_key(|(m, _)| Path::new(&m.target).components().count());
    for (m, kind) in sorted {
        let target = PathBuf::from(&m.target);
        steps.push(match kind {
            MountKind::Bind { source, propagation, recursive, create_source, read_only } => {
                let source = PathBuf::from(source);
                if !source.exists() {
                    if !create_source {
                        return Err(invalid("bind", format!("bind source path does not exist: {}", source.display())));
                    }
                    std::fs::create_dir_all(&source)
                        .map_err(|e| EngineError::io(format!("creating bind source {}", source.display()), e))?;
                }
                check_propagation(&source, *propagation)?;
                MountStep::Bind {
                    source,
                    target,
                    recursive: *recursive,
                    propagation: *propagation,
                    read_only: *read_only,
                    create: true,
                }
            }
            MountKind::Volume { name, labels, driver_options, no_copy: _, read_only } => {
                let a = volumes
                    .acquire(name.as_deref(), labels, driver_options, task_id)
                    .await
                    .map_err(|e| invalid("volume", e))?;
                let source = a.data.clone();
                held.push(a);
                MountStep::Bind {
                    source,
                    target,
                    recursive: true,
                    propagation: Propagation::RPrivate,
                    read_only: if *read_only { ReadOnlyDepth::Recursive } else { ReadOnlyDepth::No },
                    create: true,
                }
            }
            MountKind::Tmpfs { size_bytes, mode, exec, read_only } => MountStep::Tmpfs {
                target,
                size: *size_bytes,
                mode: *mode,
                exec: *exec,
                read_only: *read_only,
            },
        });
    }
    Ok(steps)
}

/// Docker's checks for `[r]slave` (the source's mount must be shared or a slave); `[r]shared` is refused.
fn check_propagation(source: &Path, p: Propagation) -> Result<(), EngineError> {
    match p {
        Propagation::Private | Propagation::RPrivate => Ok(()),
        Propagation::Shared | Propagation::RShared => Err(invalid(
            "bind",
            format!(
                "propagation {} is not supported by the process engine: the task shares the host's root, so its \
                 mounts are slaves of the host's and cannot propagate back (use rslave, or the docker engine)",
                p.as_str()
            ),
        )),
        Propagation::Slave | Propagation::RSlave => {
            let canonical = source.canonicalize().map_err(|e| EngineError::io(format!("{}", source.display()), e))?;
            let mounts = procfs::read_mountinfo("self").unwrap_or_default();
            match procfs::mount_of(&mounts, &canonical) {
                Some(m) if m.shared() || m.slave() => Ok(()),
                Some(m) => Err(invalid(
                    "bind",
                    format!(
                        "path {} is mounted on {} but it is not a shared or slave mount",
                        source.display(),
                        m.mount_point.display()
                    ),
                )),
                None => Ok(()),
            }
        }
    }
}

// ----- init side: run inside the task's mount namespace -----

fn mount_err(what: &str, target: &Path, e: nix::Error) -> String {
    format!("{what} {}: {e}", target.display())
}

/// The first step: nothing mounted in the task's namespace may reach the host.
pub(crate) fn make_root_slave() -> Result<(), String> {
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_SLAVE | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| mount_err("making the task's mounts slaves of", Path::new("/"), e))
}

/// Creates `target` as a directory, or as an empty file when `file`.
fn ensure_target(target: &Path, file: bool) -> Result<(), String> {
    if target.exists() {
        return Ok(());
    }
    let made = if file {
        target
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(target).map(|_| ()))
    } else {
        std::fs::create_dir_all(target)
    };
    made.map_err(|e| format!("creating the mount point {}: {e}", target.display()))
}

/// The per-mount flags of `target` a read-only remount must keep (a bind remount replaces them all).
fn kept_flags(target: &Path) -> MsFlags {
    let mounts = procfs::read_mountinfo("self").unwrap_or_default();
    let Some(m) = mounts.iter().rev().find(|m| m.mount_point == target) else { return MsFlags::empty() };
    let mut f = MsFlags::empty();
    for o in m.options.split(',') {
        f |= match o {
            "nosuid" => MsFlags::MS_NOSUID,
            "nodev" => MsFlags::MS_NODEV,
            "noexec" => MsFlags::MS_NOEXEC,
            "noatime" => MsFlags::MS_NOATIME,
            "nodiratime" => MsFlags::MS_NODIRATIME,
            "relatime" => MsFlags::MS_RELATIME,
            _ => MsFlags::empty(),
        };
    }
    f
}

fn remount_read_only(target: &Path) -> Result<(), nix::Error> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept_flags(target);
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
}

/// The mount points strictly below `target`.
fn below(target: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = procfs::read_mountinfo("self")
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| p != target && p.starts_with(target))
        .collect();
    v.dedup();
    v
}

/// Most symbolic links followed resolving one path in an image root (the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// `target` (absolute, as the task sees it) as a path on the host, inside `root`: each component is looked up in
/// `root`, and a symbolic link is followed as the task would see it (absolute targets from `root`, `..` never
/// above it). With `root` = `/` the path is unchanged.
pub(crate) fn resolve_in(root: &Path, target: &Path) -> Result<PathBuf, String> {
    if root == Path::new("/") {
        return Ok(target.to_path_buf());
    }
    let mut pending: Vec<std::ffi::OsString> = target.components().rev().filter_map(|c| match c {
        std::path::Component::Normal(n) => Some(n.to_os_string()),
        std::path::Component::ParentDir => Some("..".into()),
        _ => None,
    }).collect();
    let mut inside = PathBuf::new();
    let mut links = 0;
    while let Some(c) = pending.pop() {
        if c == ".." {
            inside.pop();
            continue;
        }
        let candidate = root.join(&inside).join(&c);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(format!("resolving {} in the task's root: too many symbolic links", target.display()));
                }
                let link = std::fs::read_link(&candidate).map_err(|e| format!("reading {}: {e}", candidate.display()))?;
                if link.is_absolute() {
                    inside = PathBuf::new();
                }
                pending.extend(link.components().rev().filter_map(|lc| match lc {
                    std::path::Component::Normal(n) => Some(n.to_os_string()),
                    std::path::Component::ParentDir => Some("..".into()),
                    _ => None,
                }));
            }
            _ => inside.push(&c),
        }
    }
    Ok(root.join(inside))
}

/// Mounts an image root at `r.merged` and furnishes it: `/dev`, `/sys`, and the directories the other steps need.
pub(crate) fn mount_rootfs(r: &RootFs) -> Result<(), String> {
    for d in [&r.upper, &r.work, &r.merged] {
        std::fs::create_dir_all(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    // overlayfs takes at most a page of options: the layers are named relative to their common directory
    let common = r.lower.first().and_then(|l| l.parent()).map(Path::to_path_buf).unwrap_or_default();
    let relative = !common.as_os_str().is_empty() && r.lower.iter().all(|l| l.parent() == Some(common.as_path()));
    let lower: Vec<String> = r
        .lower
        .iter()
        .map(|l| if relative { l.file_name().unwrap_or_default().to_string_lossy().into_owned() } else { l.display().to_string() })
        .collect();
    let data = format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), r.upper.display(), r.work.display());
    if data.len() >= 4096 {
        return Err(format!("too many layers for one overlay mount ({})", r.lower.len()));
    }
    if relative {
        nix::unistd::chdir(&common).map_err(|e| format!("chdir {}: {e}", common.display()))?;
    }
    mount(Some("overlay"), r.merged.as_path(), Some("overlay"), MsFlags::empty(), Some(data.as_str()))
        .map_err(|e| mount_err("mounting the image's layers (overlay) on", &r.merged, e))?;
    let _ = nix::unistd::chdir("/");
    let root = &r.merged;
    // /dev: a small tmpfs with the host's harmless devices bound in
    let dev = resolve_in(root, Path::new("/dev"))?;
    ensure_target(&dev, false)?;
    mount(Some("tmpfs"), dev.as_path(), Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC, Some("mode=755,size=65536k"))
        .map_err(|e| mount_err("mounting tmpfs on", &dev, e))?;
    for name in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(name);
        if !host.exists() {
            continue;
        }
        let target = dev.join(name);
        ensure_target(&target, true)?;
        mount(Some(host.as_path()), target.as_path(), None::<&str>, MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| format!("binding {} on {}: {e}", host.display(), target.display()))?;
    }
    for d in ["shm", "mqueue", "pts"] {
        ensure_target(&dev.join(d), false)?;
    }
    for (link, to) in [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")] {
        std::os::unix::fs::symlink(to, dev.join(link)).map_err(|e| format!("creating /dev/{link}: {e}"))?;
    }
    // /sys, read-only: the task's network namespace's own view when the kernel allows a fresh sysfs
    let sys = resolve_in(root, Path::new("/sys"))?;
    ensure_target(&sys, false)?;
    let ro = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if mount(Some("sysfs"), sys.as_path(), Some("sysfs"), ro, None::<&str>).is_err() {
        mount(Some("/sys"), sys.as_path(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| format!("binding /sys on {}: {e}", sys.display()))?;
        remount_read_only(&sys).map_err(|e| mount_err("making read-only", &sys, e))?;
    }
    Ok(())
}

/// Makes `root` the task's `/` and detaches the host's root from the task's mount namespace.
pub(crate) fn pivot(root: &Path, read_only: bool) -> Result<(), String> {
    nix::unistd::chdir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    // the old root is stacked under the new one, then detached (runc's pivot_root(".", "."))
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root into {}: {e}", root.display()))?;
    nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH).map_err(|e| format!("detaching the host's root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    if read_only {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(|e| mount_err("making read-only", Path::new("/"), e))?;
    }
    Ok(())
}

/// Carries out one step, its target inside `root` (`/`: the host's root).
pub(crate) fn apply(step: &MountStep, root: &Path) -> Result<(), String> {
    let nosuid_nodev = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let image = root != Path::new("/");
    match step {
        MountStep::Proc => {
            let flags = nosuid_nodev | MsFlags::MS_NOEXEC;
            let proc = resolve_in(root, Path::new("/proc"))?;
            if image {
                ensure_target(&proc, false)?;
            }
            mount(Some("proc"), proc.as_path(), Some("proc"), flags, None::<&str>)
                .map_err(|e| mount_err("mounting proc on", Path::new("/proc"), e))
        }
        MountStep::Ipc => {
            let flags = nosuid_nodev | MsFlags::MS_NOEXEC;
            let shm = resolve_in(root, Path::new("/dev/shm"))?;
            if shm.is_dir() {
                let data = format!("mode=1777,size={SHM_SIZE}");
                mount(Some("shm"), shm.as_path(), Some("tmpfs"), flags, Some(data.as_str()))
                    .map_err(|e| mount_err("mounting tmpfs on", Path::new("/dev/shm"), e))?;
            }
            let mq = resolve_in(root, Path::new("/dev/mqueue"))?;
            if mq.is_dir() {
                mount(Some("mqueue"), mq.as_path(), Some("mqueue"), flags, None::<&str>)
                    .map_err(|e| mount_err("mounting mqueue on", Path::new("/dev/mqueue"), e))?;
            }
            Ok(())
        }
        MountStep::Bind { source, target, recursive, propagation, read_only, create } => {
            let target = &resolve_in(root, target)?;
            let create = &(*create || image);
            if !*create && !target.exists() {
                return Ok(());
            }
            ensure_target(target, !source.is_dir())?;
            let mut flags = MsFlags::MS_BIND;
            if *recursive {
                flags |= MsFlags::MS_REC;
            }
            mount(Some(source.as_path()), target.as_path(), None::<&str>, flags, None::<&str>)
                .map_err(|e| format!("binding {} on {}: {e}", source.display(), target.display()))?;
            let mut prop = match propagation {
                Propagation::Slave | Propagation::RSlave => MsFlags::MS_SLAVE,
                _ => MsFlags::MS_PRIVATE,
            };
            if propagation.recursive() {
                prop |= MsFlags::MS_REC;
            }
            mount(None::<&str>, target.as_path(), None::<&str>, prop, None::<&str>)
                .map_err(|e| mount_err(&format!("setting {} propagation on", propagation.as_str()), target, e))?;
            if *read_only != ReadOnlyDepth::No {
                remount_read_only(target).map_err(|e| mount_err("making read-only", target, e))?;
                if matches!(read_only, ReadOnlyDepth::Recursive | ReadOnlyDepth::ForceRecursive) {
                    for sub in below(target) {
                        match remount_read_only(&sub) {
                            Ok(()) => {}
                            Err(e) if *read_only == ReadOnlyDepth::ForceRecursive => {
                                return Err(mount_err("making read-only", &sub, e))
                            }
                            Err(_) => {}
                        }
                    }
                }
            }
            Ok(())
        }
        MountStep::Tmpfs { target, size, mode, exec, read_only } => {
            let target = &resolve_in(root, target)?;
            ensure_target(target, false)?;
            let mut flags = nosuid_nodev;
            if !exec {
                flags |= MsFlags::MS_NOEXEC;
            }
            if *read_only {
                flags |= MsFlags::MS_RDONLY;
            }
            let mut data = Vec::new();
            if let Some(m) = mode {
                data.push(format!("mode={m:o}"));
            }
            if let Some(s) = size {
                data.push(format!("size={s}"));
            }
            let data = data.join(",");
            mount(Some("tmpfs"), target.as_path(), Some("tmpfs"), flags, (!data.is_empty()).then_some(data.as_str()))
                .map_err(|e| mount_err("mounting tmpfs on", target, e))
        }
    }
}

/// Docker's read-only paths (bound on themselves, read-only) and masked paths (`/dev/null` over files, an empty
/// read-only tmpfs over directories); the ones this host lacks are skipped.
pub(crate) fn harden() -> Result<(), String> {
    for p in READ_ONLY_PATHS.iter().map(Path::new).filter(|p| p.exists()) {
        mount(Some(p), p, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
            .map_err(|e| mount_err("binding", p, e))?;
        remount_read_only(p).map_err(|e| mount_err("making read-only", p, e))?;
    }
    for p in MASKED_PATHS.iter().map(Path::new) {
        let masked = if p.is_dir() {
            mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::MS_RDONLY, None::<&str>)
        } else if p.exists() {
            mount(Some("/dev/null"), p, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        } else {
            continue;
        };
        masked.map_err(|e| mount_err("masking", p, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_inside_the_root_whatever_the_images_links_say() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/data")).unwrap();
        std::os::unix::fs::symlink("/usr/data", root.join("data")).unwrap();
        std::os::unix::fs::symlink("../../../../../../etc", root.join("escape")).unwrap();
        std::os::unix::fs::symlink("/", root.join("top")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
        assert_eq!(resolve_in(root, Path::new("/data/x")).unwrap(), root.join("usr/data/x"));
        assert_eq!(resolve_in(root, Path::new("/escape/passwd")).unwrap(), root.join("etc/passwd"));
        assert_eq!(resolve_in(root, Path::new("/top/../../etc")).unwrap(), root.join("etc"));
        assert_eq!(resolve_in(root, Path::new("/new/dir")).unwrap(), root.join("new/dir"));
        assert!(resolve_in(root, Path::new("/loop/x")).is_err());
        assert_eq!(resolve_in(Path::new("/"), Path::new("/etc/hosts")).unwrap(), Path::new("/etc/hosts"));
    }
}
