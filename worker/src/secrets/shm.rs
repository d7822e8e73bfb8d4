//! Task files for engines whose tasks are not this daemon's children (Docker): written under
//! `/dev/shm/skep-task-files/<task ID>/` (a tmpfs on every Linux host, seen by the Docker daemon even when skep runs
//! in a mount namespace of its own, as under `ip netns exec`), one file per entry with its owner and mode, the
//! directory 0700. They are removed when the task's container exits or is removed; task IDs are unique, so daemons
//! sharing a host share the directory without clashing.

use crate::engine::{EngineError, TaskFile};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where the task directories are.
pub const ROOT: &str = "/dev/shm/skep-task-files";

/// A file on the tmpfs and where the task sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileMount {
    /// The file on the tmpfs.
    pub source: PathBuf,
    /// Its absolute target in the task.
    pub target: PathBuf,
}

fn task_dir(task_id: &str) -> Result<PathBuf, EngineError> {
    crate::engine::spec::check_task_id(task_id)?;
    Ok(Path::new(ROOT).join(task_id))
}

/// Write the task's files (replacing what an earlier attempt left); returns where each one is.
pub fn write(task_id: &str, files: &[TaskFile]) -> Result<Vec<FileMount>, EngineError> {
    let dir = task_dir(task_id)?;
    let io = |what: String| move |e: std::io::Error| EngineError::io(what, e);
    let _ = std::fs::remove_dir_all(&dir);
    for d in [Path::new(ROOT), dir.as_path()] {
        std::fs::create_dir_all(d).map_err(io(format!("mkdir {}", d.display())))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(io(format!("chmod {}", d.display())))?;
    }
    let mut out = Vec::with_capacity(files.len());
    for (i, f) in files.iter().enumerate() {
        let source = dir.join(i.to_string());
        let what = format!("writing the file for {}", f.target.display());
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&source).map_err(io(what.clone()))?;
        file.write_all(&f.data).map_err(io(what.clone()))?;
        std::os::unix::fs::fchown(&file, Some(f.uid), Some(f.gid)).map_err(io(what.clone()))?;
        file.set_permissions(std::fs::Permissions::from_mode(f.mode)).map_err(io(what))?;
        out.push(FileMount { source, target: f.target.clone() });
    }
    Ok(out)
}

/// Remove the task's files (nothing to do when there are none).
pub fn remove(task_id: &str) {
    let Ok(dir) = task_dir(task_id) else { return };
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(task = task_id, "removing the task's secret and config files: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn files_are_written_with_owner_and_mode_and_removed() {
        let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
        let id = format!("skep-shm-test-{}", std::process::id());
        let files = vec![TaskFile { target: "/run/secrets/db".into(), data: b"pw".to_vec(), uid, gid, mode: 0o400 }];
        let m = write(&id, &files).unwrap();
        assert_eq!(m[0].target, Path::new("/run/secrets/db"));
        assert_eq!(std::fs::read(&m[0].source).unwrap(), b"pw");
        let meta = std::fs::metadata(&m[0].source).unwrap();
        assert_eq!((meta.mode() & 0o7777, meta.uid()), (0o400, uid));
        assert_eq!(std::fs::metadata(Path::new(ROOT).join(&id)).unwrap().mode() & 0o777, 0o700);
        remove(&id);
        assert!(!Path::new(ROOT).join(&id).exists());
        assert!(write("../escape", &files).is_err());
    }
}
