//! Files a task gets in memory only (secrets, configs: [`TaskFile`]): a tmpfs of the task's own,
//! `<task dir>/files` (mode 0700, sized to the files), mounted by the engine in the daemon's mount namespace, one
//! file per entry with its owner and mode, each bound read-only at its target inside the task. The content never
//! reaches the node's disk; the tmpfs is unmounted when the task is over (the task's own mount namespace holds its
//! copy until then). A missing target is created as an empty file, like any mount target (on the host: tasks share
//! its root).

use super::plan::MountStep;
use crate::engine::{EngineError, TaskFile};
use nix::mount::{MntFlags, MsFlags};
use skep_api::docker::{Propagation, ReadOnlyDepth};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Mounts the tmpfs at `dir`, writes the files, and returns the mounts that put them in the task.
pub(crate) fn materialise(dir: &Path, files: &[TaskFile]) -> Result<Vec<MountStep>, EngineError> {
    let io = |what: String| move |e: std::io::Error| EngineError::io(what, e);
    std::fs::create_dir_all(dir).map_err(io(format!("mkdir {}", dir.display())))?;
    let total: usize = files.iter().map(|f| f.data.len()).sum();
    // a page per file on top of the content, and room for the directory itself
    let size = total + files.len() * 4096 + 64 * 1024;
    let data = format!("size={size},mode=0700");
    nix::mount::mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(data.as_str()),
    )
    .map_err(|e| EngineError::io(format!("mounting a tmpfs on {}", dir.display()), e.into()))?;
    let mut steps = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let path = dir.join(i.to_string());
        std::fs::write(&path, &f.data).map_err(io(format!("writing the file for {}", f.target.display())))?;
        std::os::unix::fs::chown(&path, Some(f.uid), Some(f.gid))
            .map_err(io(format!("chown of the file for {}", f.target.display())))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(f.mode))
            .map_err(io(format!("chmod of the file for {}", f.target.display())))?;
        steps.push(MountStep::Bind {
            source: path,
            target: f.target.clone(),
            recursive: false,
            propagation: Propagation::RPrivate,
            read_only: ReadOnlyDepth::TopOnly,
            create: true,
        });
    }
    Ok(steps)
}

/// Unmounts the tmpfs at `dir` (if mounted) and removes the directory.
pub(crate) fn unmount(dir: &PathBuf) -> Result<(), EngineError> {
    match nix::mount::umount2(dir, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(EngineError::io(format!("unmounting {}", dir.display()), e.into())),
    }
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(EngineError::io(format!("removing {}", dir.display()), e)),
    }
}
