//! Files only root may read, written whole or not at all.
//!
//! The worker's state (`tasks.json`: task specs with their environment, secret references) is written through a
//! temporary file created with mode 0600 (never wider, not even for a moment), fsynced, renamed over the old one,
//! and the directory fsynced so the rename itself survives a power loss; a crash leaves the old file or the new one.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of every file written here.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the directories created for them.
pub const DIR_MODE: u32 = 0o700;

/// Write `body` to `path` atomically, mode 0600 (see the module docs).
pub fn write(path: &Path, body: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(FILE_MODE).open(&tmp)?;
        // a temporary file left by an older build may be wider: narrow it before writing into it
        f.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_private_and_whole() {
        let dir = std::env::temp_dir().join(format!("skep-private-{}", rand::random::<u32>()));
        let p = dir.join("sub").join("tasks.json");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, FILE_MODE);
        assert_eq!(std::fs::metadata(p.parent().unwrap()).unwrap().permissions().mode() & 0o777, DIR_MODE);
        assert!(!p.with_extension("tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
