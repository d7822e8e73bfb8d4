//! The node's store of its tasks' output: timestamped records in size-bounded segment files, written by whatever
//! captures a task's output (the process engine's supervisor) and read by the node for `docker service logs`.
//!
//! A task's logs are a directory of segments `1.log`, `2.log`, …; each line of a segment is one record
//! (`<Unix ns> <o|e|O|E> <bytes>\n`: stdout or stderr, upper case for a partial line; see [`record`]). The writer
//! starts a new segment once the current one holds `max_size` bytes and deletes the oldest beyond `max_files`, so a
//! task keeps at most about `max_size × max_files`. Segments are never renamed, so a reader's place (segment,
//! offset) stays valid while the writer rotates; a reader whose segment was deleted goes on from the oldest one left.
//!
//! The files are on disk and written by a process that outlives the daemon, so logs survive a daemon restart and
//! go on being written while the daemon is down.
//!
//! # Layout
//! - [`record`]: the record format, and cutting output into lines.
//! - [`writer`]: the segment writer with rotation.
//! - [`reader`]: reading records with a time range, a tail and a cursor.

pub mod reader;
pub mod record;
pub mod writer;

use serde::{Deserialize, Serialize};
use skep_api::logs::{LogsBatch, LogsRequest};
use std::path::PathBuf;
use std::time::Duration;

/// How long a following read waits for new records before it answers with none (below the transport's call
/// timeout, so the caller's long poll is never cut short).
pub const LONG_POLL: Duration = Duration::from_secs(2);
/// How often a following read looks for new records.
pub const FOLLOW_POLL: Duration = Duration::from_millis(100);
/// About the most line bytes one answer carries (far below a transport frame).
pub const BATCH_BYTES: usize = 1 << 20;

/// One answer to `req` from the segments in `dir`: what is there now, or, when following and nothing is there yet,
/// what comes within [`LONG_POLL`]. `ended` says whether the task has stopped writing (checked before each read, so
/// `done` is only reported once everything it wrote was read).
pub async fn read_batch(dir: PathBuf, req: &LogsRequest, ended: impl Fn() -> bool) -> std::io::Result<LogsBatch> {
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    let mut req = req.clone();
    loop {
        let finished = !req.follow || ended();
        let (d, r) = (dir.clone(), req.clone());
        let b = tokio::task::spawn_blocking(move || reader::read(&d, &r, BATCH_BYTES))
            .await
            .map_err(std::io::Error::other)??;
        let done = b.past_until || (b.at_end && finished);
        if !b.records.is_empty() || done || tokio::time::Instant::now() >= deadline {
            return Ok(LogsBatch { records: b.records, cursor: b.cursor, done });
        }
        req.cursor = Some(b.cursor);
        req.tail = None;
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// How much output a task keeps (the daemon's `--log-opt max-size=…,max-file=…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLimits {
    /// A segment is closed once it holds this many bytes.
    pub max_size: u64,
    /// Segments kept, the current one included.
    pub max_files: u32,
}

/// 10 MiB per segment.
pub const DEFAULT_MAX_SIZE: u64 = 10 << 20;
/// Five segments.
pub const DEFAULT_MAX_FILES: u32 = 5;
/// Smallest segment size accepted (smaller would rotate on every write).
pub const MIN_MAX_SIZE: u64 = 4 << 10;
/// Most segments a task may keep.
pub const MAX_MAX_FILES: u32 = 100;

impl Default for LogLimits {
    fn default() -> LogLimits {
        LogLimits { max_size: DEFAULT_MAX_SIZE, max_files: DEFAULT_MAX_FILES }
    }
}

impl LogLimits {
    /// Reads Docker's `max-size` (`10m`, `512k`, `1g`, or bytes) and `max-file` options, refusing what would not
    /// bound the output or would rotate on every write.
    pub fn parse(max_size: Option<&str>, max_files: Option<&str>) -> Result<LogLimits, String> {
        let mut l = LogLimits::default();
        if let Some(s) = max_size {
            l.max_size = parse_size(s).ok_or_else(|| format!("invalid max-size {s:?}: a size such as 10m, 512k or 1g is needed"))?;
            if l.max_size < MIN_MAX_SIZE {
                return Err(format!("invalid max-size {s:?}: at least {MIN_MAX_SIZE} bytes"));
            }
        }
        if let Some(s) = max_files {
            l.max_files = s
                .parse()
                .ok()
                .filter(|n| (1..=MAX_MAX_FILES).contains(n))
                .ok_or_else(|| format!("invalid max-file {s:?}: a number from 1 to {MAX_MAX_FILES} is needed"))?;
        }
        Ok(l)
    }
}

/// `10m` → 10 MiB (Docker's units: k, m, g, binary, case-insensitive, with an optional `b`).
fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_dockers_options_and_refuse_unbounded_ones() {
        assert_eq!(LogLimits::parse(None, None).unwrap(), LogLimits::default());
        assert_eq!(LogLimits::parse(Some("10m"), Some("3")).unwrap(), LogLimits { max_size: 10 << 20, max_files: 3 });
        assert_eq!(LogLimits::parse(Some("512K"), None).unwrap().max_size, 512 << 10);
        assert_eq!(LogLimits::parse(Some("1gb"), None).unwrap().max_size, 1 << 30);
        assert_eq!(LogLimits::parse(Some("8192"), None).unwrap().max_size, 8192);
        for bad in ["", "x", "-1m", "10q", "100", "99999999999999999999g"] {
            assert!(LogLimits::parse(Some(bad), None).is_err(), "{bad}");
        }
        for bad in ["0", "101", "two", "-1"] {
            assert!(LogLimits::parse(None, Some(bad)).is_err(), "{bad}");
        }
    }
}
