//! The segment writer: appends encoded records to the current segment of a task's log directory, starting a new
//! segment once the current one reaches `max_size` and deleting the oldest beyond `max_files`.
//!
//! It works through a descriptor of the directory (`openat`, `unlinkat`), so the process engine's supervisor keeps
//! writing to the task's log directory whatever the task mounts over its path. A chunk of records is written whole
//! into one segment, so a segment may exceed `max_size` by one chunk (at most what one read of a pipe returns).

use super::LogLimits;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::Mode;
use nix::unistd::{unlinkat, UnlinkatFlags};
use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;

/// The name of segment `n`.
pub fn segment_name(n: u64) -> String {
    format!("{n}.log")
}

/// Segment `name`'s number, if it is a segment's name.
pub fn segment_number(name: &str) -> Option<u64> {
    name.strip_suffix(".log")?.parse().ok().filter(|n| *n > 0)
}

/// Writes one task's records.
pub struct SegmentWriter {
    dir: OwnedFd,
    limits: LogLimits,
    current: u64,
    file: File,
    size: u64,
}

impl SegmentWriter {
    /// A writer for the (empty) log directory `dir`, starting at segment 1.
    pub fn create(dir: OwnedFd, limits: LogLimits) -> std::io::Result<SegmentWriter> {
        let file = open_segment(&dir, 1)?;
        Ok(SegmentWriter { dir, limits, current: 1, file, size: 0 })
    }

    /// Appends `records` (whole encoded records) to the current segment, rotating first when it is full.
    pub fn write(&mut self, records: &[u8]) -> std::io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.size >= self.limits.max_size {
            self.rotate()?;
        }
        self.file.write_all(records)?;
        self.size += records.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let next = self.current + 1;
        self.file = open_segment(&self.dir, next)?;
        self.current = next;
        self.size = 0;
        if let Some(old) = next.checked_sub(u64::from(self.limits.max_files.max(1))) {
            if old > 0 {
                match unlinkat(&self.dir, segment_name(old).as_str(), UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }
}

fn open_segment(dir: &OwnedFd, n: u64) -> std::io::Result<File> {
    let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_APPEND | OFlag::O_CLOEXEC;
    let fd = openat(dir, segment_name(n).as_str(), flags, Mode::from_bits_truncate(0o640))?;
    Ok(File::from(fd))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh directory for a test.
    pub(crate) fn temp_dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("skep-logs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    pub(crate) fn dir_fd(d: &std::path::Path) -> OwnedFd {
        OwnedFd::from(File::open(d).unwrap())
    }

    fn segments(d: &std::path::Path) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = std::fs::read_dir(d)
            .unwrap()
            .filter_map(|e| {
                let e = e.unwrap();
                Some((segment_number(e.file_name().to_str()?)?, e.metadata().unwrap().len()))
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn segments_rotate_by_size_and_the_oldest_go() {
        let d = temp_dir("rotate");
        let mut w = SegmentWriter::create(dir_fd(&d), LogLimits { max_size: 100, max_files: 3 }).unwrap();
        for _ in 0..10 {
            w.write(&[b'x'; 60]).unwrap();
        }
        // 60 → 120 (full) → new segment each second write: 5 segments made, 3 kept, none above max_size + a chunk
        assert_eq!(segments(&d), vec![(3, 120), (4, 120), (5, 120)]);
        w.write(b"").unwrap();
        assert_eq!(segments(&d).len(), 3);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn segment_names() {
        assert_eq!(segment_number(&segment_name(42)), Some(42));
        for bad in ["0.log", "x.log", "1.log.1", "1", "-1.log"] {
            assert_eq!(segment_number(bad), None, "{bad}");
        }
    }
}
