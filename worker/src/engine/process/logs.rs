//! A task's captured output: `stdout.log` in its task directory, written by the task itself (both stdout and
//! stderr are that file, opened `O_APPEND`), so no pipe ties the task to the agent and output survives an agent
//! restart.
//!
//! Bounded by copy-and-truncate (logrotate's `copytruncate`): once `stdout.log` passes the limit its content moves
//! to `stdout.log.1` (replacing the previous one) and `stdout.log` is cut to 0 bytes. The writer's next append lands
//! at the new end, so the task never notices; at most `2 × limit` plus what is written between two checks is kept.
//! Output written between the copy and the cut is lost (a few bytes at worst). The check runs every second in
//! `wait`'s poll loop, that is while the agent waits on the task, which it does for every task it runs.

use crate::engine::EngineError;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The live log file.
pub(crate) const LOG: &str = "stdout.log";
/// The previous generation.
pub(crate) const LOG_OLD: &str = "stdout.log.1";

/// Rotates `dir/stdout.log` when it is larger than `limit` bytes.
pub(crate) fn rotate_if_needed(dir: &Path, limit: u64) -> std::io::Result<bool> {
    let live = dir.join(LOG);
    let len = match std::fs::metadata(&live) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= limit {
        return Ok(false);
    }
    std::fs::copy(&live, dir.join(LOG_OLD))?;
    std::fs::OpenOptions::new().write(true).open(&live)?.set_len(0)?;
    Ok(true)
}

/// The last `max_bytes` of `stdout.log.1` followed by `stdout.log`.
pub(crate) fn tail(dir: &Path, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
    let mut out = tail_of(&dir.join(LOG), max_bytes)?;
    if out.len() < max_bytes {
        let mut older = tail_of(&dir.join(LOG_OLD), max_bytes - out.len())?;
        older.append(&mut out);
        out = older;
    }
    Ok(out)
}

fn tail_of(path: &PathBuf, max_bytes: usize) -> Result<Vec<u8>, EngineError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(EngineError::io(format!("open {}", path.display()), e)),
    };
    let io = |e| EngineError::io(format!("read {}", path.display()), e);
    let len = f.metadata().map_err(io)?.len();
    let start = len.saturating_sub(max_bytes as u64);
    f.seek(SeekFrom::Start(start)).map_err(io)?;
    let mut buf = Vec::with_capacity((len - start) as usize);
    // The file may grow meanwhile: never read more than asked.
    f.take(max_bytes as u64).read_to_end(&mut buf).map_err(io)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn rotation_keeps_the_newest_output_and_appends_continue() {
        let dir = std::env::temp_dir().join(format!("skep-logs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = std::fs::OpenOptions::new().create(true).append(true).open(dir.join(LOG)).unwrap();
        w.write_all(b"0123456789").unwrap();
        assert!(!rotate_if_needed(&dir, 10).unwrap());
        w.write_all(b"abc").unwrap();
        assert!(rotate_if_needed(&dir, 10).unwrap());
        assert_eq!(std::fs::metadata(dir.join(LOG)).unwrap().len(), 0);
        // The writer's O_APPEND offset follows the truncation.
        w.write_all(b"XY").unwrap();
        assert_eq!(std::fs::read(dir.join(LOG)).unwrap(), b"XY");
        assert_eq!(tail(&dir, 5).unwrap(), b"abcXY");
        assert_eq!(tail(&dir, 100).unwrap(), b"0123456789abcXY");
        assert_eq!(tail(&dir, 1).unwrap(), b"Y");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(tail(&dir, 10).unwrap().is_empty());
    }
}
