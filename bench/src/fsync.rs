//! The disk's fsync latency in the bench's data directory: `count` × (write 4 KiB + `fdatasync`), twice: appending
//! to a growing file (like a log without preallocation: the size change is flushed too) and overwriting the same
//! 4 KiB (data only, like a preallocated WAL such as etcd's).

use hdrhistogram::Histogram;
use std::io::{Seek as _, SeekFrom, Write as _};
use std::path::Path;

/// `(mode, latencies µs)` for `append` and `overwrite`.
pub fn run(dir: &Path, count: usize) -> anyhow::Result<Vec<(&'static str, Histogram<u64>)>> {
    let block = vec![0xA5u8; 4096];
    let mut out = Vec::new();
    for mode in ["append", "overwrite"] {
        let path = dir.join(format!("fsync-probe-{mode}"));
        let mut f = std::fs::OpenOptions::new().create(true).truncate(true).write(true).open(&path)?;
        if mode == "overwrite" {
            f.write_all(&block)?;
            f.sync_all()?;
        }
        let mut h = crate::store::new_hist();
        for _ in 0..count {
            if mode == "overwrite" {
                f.seek(SeekFrom::Start(0))?;
            }
            // std::time here: this is blocking I/O timed on its own thread, outside any runtime.
            let t0 = std::time::Instant::now();
            f.write_all(&block)?;
            f.sync_data()?;
            h.saturating_record(t0.elapsed().as_micros().max(1) as u64);
        }
        drop(f);
        std::fs::remove_file(&path)?;
        out.push((mode, h));
    }
    Ok(out)
}
