//! Reading a task's records: from a cursor (or the start, or the last `tail` records) forward, in a time range, a
//! bounded number of bytes at a time. Only whole records are read: a record the writer is still writing is left for
//! the next read.

use super::record;
use super::writer::segment_number;
use skep_api::logs::{in_range, LogCursor, LogRecord, LogsRequest, MAX_LINE};
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// What one read found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    /// Records in the range, oldest first.
    pub records: Vec<LogRecord>,
    /// Where the next read continues.
    pub cursor: LogCursor,
    /// Everything written so far was read.
    pub at_end: bool,
    /// A record after `until` was reached: nothing more will match.
    pub past_until: bool,
}

/// The segment numbers in `dir`, oldest first (none if it does not exist).
pub fn segments(dir: &Path) -> std::io::Result<Vec<u64>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut v: Vec<u64> = rd.filter_map(|e| e.ok()?.file_name().to_str().and_then(segment_number)).collect();
    v.sort_unstable();
    Ok(v)
}

/// Reads `req`'s records from `dir`, at most about `max_bytes` of line bytes.
pub fn read(dir: &Path, req: &LogsRequest, max_bytes: usize) -> std::io::Result<Batch> {
    let segs = segments(dir)?;
    let (Some(&first), Some(&last)) = (segs.first(), segs.last()) else {
        return Ok(Batch { cursor: req.cursor.clone().unwrap_or_default(), at_end: true, ..Default::default() });
    };
    let start = match (&req.cursor, req.tail) {
        // the segment was deleted meanwhile: what is left
        (Some(c), _) if c.segment < first => LogCursor { segment: first, offset: 0, ..c.clone() },
        (Some(c), _) => c.clone(),
        (None, Some(n)) => tail_start(dir, &segs, n, req)?,
        (None, None) => LogCursor { segment: first, ..Default::default() },
    };
    let mut b = Batch { cursor: start, ..Default::default() };
    let mut bytes = 0usize;
    loop {
        let seg = b.cursor.segment;
        let want = max_bytes.saturating_sub(bytes) + MAX_LINE + 64;
        let data = read_at(&dir.join(super::writer::segment_name(seg)), b.cursor.offset, want)?;
        let mut used = 0usize;
        for line in data.split_inclusive(|&c| c == b'\n') {
            if line.last() != Some(&b'\n') {
                break;
            }
            if let Some(r) = record::parse(&line[..line.len() - 1]) {
                if req.until_ns.is_some_and(|u| r.time_ns > u) {
                    b.past_until = true;
                    return Ok(b);
                }
                if in_range(r.time_ns, req.since_ns, req.until_ns) {
                    bytes += r.line.len();
                    b.records.push(r);
                }
            }
            used += line.len();
            b.cursor.offset += line.len() as u64;
            if bytes >= max_bytes {
                return Ok(b);
            }
        }
        let eof = data.len() < want;
        if !eof && used == 0 {
            // no whole record in a full read: not a record file; skip what was read
            b.cursor.offset += data.len() as u64;
            continue;
        }
        if !eof {
            continue;
        }
        match segs.iter().find(|&&s| s > seg) {
            // a newer segment exists, so this one is complete (a torn last record is skipped)
            Some(&next) => b.cursor = LogCursor { segment: next, offset: 0, ..b.cursor },
            None => {
                b.at_end = seg >= last;
                return Ok(b);
            }
        }
    }
}

/// Where the last `n` records in `req`'s range start.
fn tail_start(dir: &Path, segs: &[u64], n: u64, req: &LogsRequest) -> std::io::Result<LogCursor> {
    let mut found = 0u64;
    for (i, &seg) in segs.iter().enumerate().rev() {
        let data = read_at(&dir.join(super::writer::segment_name(seg)), 0, usize::MAX)?;
        let mut starts = Vec::new();
        let mut off = 0u64;
        for line in data.split_inclusive(|&c| c == b'\n') {
            if line.last() != Some(&b'\n') {
                break;
            }
            if record::parse(&line[..line.len() - 1]).is_some_and(|r| in_range(r.time_ns, req.since_ns, req.until_ns)) {
                starts.push(off);
            }
            off += line.len() as u64;
        }
        if n == 0 && i == segs.len() - 1 {
            return Ok(LogCursor { segment: seg, offset: off, ..Default::default() });
        }
        let need = n - found;
        if starts.len() as u64 >= need {
            return Ok(LogCursor { segment: seg, offset: starts[starts.len() - need as usize], ..Default::default() });
        }
        found += starts.len() as u64;
    }
    Ok(LogCursor { segment: segs[0], ..Default::default() })
}

/// At most `max` bytes of `path` from `offset` (nothing if it is gone).
fn read_at(path: &Path, offset: u64, max: usize) -> std::io::Result<Vec<u8>> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    f.take(max as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::record::encode;
    use crate::logs::writer::tests::{dir_fd, temp_dir};
    use crate::logs::writer::SegmentWriter;
    use crate::logs::LogLimits;
    use skep_api::logs::LogStream;

    /// 100 records `line i` at times 1000 + i, in segments of about 150 bytes, 100 kept.
    fn fixture(name: &str) -> std::path::PathBuf {
        let d = temp_dir(name);
        let mut w = SegmentWriter::create(dir_fd(&d), LogLimits { max_size: 150, max_files: 100 }).unwrap();
        for i in 0..100 {
            let mut out = Vec::new();
            let stream = if i % 2 == 0 { LogStream::Stdout } else { LogStream::Stderr };
            encode(1000 + i, stream, false, format!("line {i}").as_bytes(), &mut out);
            w.write(&out).unwrap();
        }
        d
    }

    fn lines(b: &Batch) -> Vec<String> {
        b.records.iter().map(|r| String::from_utf8(r.line.clone()).unwrap()).collect()
    }

    fn all(d: &Path, mut req: LogsRequest, max: usize) -> (Vec<String>, usize) {
        let mut out = Vec::new();
        let mut reads = 0;
        loop {
            let b = read(d, &req, max).unwrap();
            reads += 1;
            out.extend(lines(&b));
            if b.at_end || b.past_until {
                return (out, reads);
            }
            req.cursor = Some(b.cursor);
        }
    }

    #[test]
    fn reads_everything_in_order_across_segments_in_bounded_batches() {
        let d = fixture("all");
        assert!(segments(&d).unwrap().len() >= 5);
        let (got, reads) = all(&d, LogsRequest::default(), 50);
        assert_eq!(got, (0..100).map(|i| format!("line {i}")).collect::<Vec<_>>());
        assert!(reads > 10, "{reads} reads of at most ~50 bytes");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn tail_since_and_until_filter() {
        let d = fixture("filters");
        let tail = |n| lines(&read(&d, &LogsRequest { tail: Some(n), ..Default::default() }, 1 << 20).unwrap());
        assert_eq!(tail(3), vec!["line 97", "line 98", "line 99"]);
        assert!(tail(0).is_empty());
        assert_eq!(tail(1000).len(), 100);
        let range = LogsRequest { since_ns: Some(1010), until_ns: Some(1012), ..Default::default() };
        let b = read(&d, &range, 1 << 20).unwrap();
        assert_eq!(lines(&b), vec!["line 10", "line 11", "line 12"]);
        assert!(b.past_until);
        let b = read(&d, &LogsRequest { tail: Some(2), since_ns: Some(1050), until_ns: Some(1060), ..range }, 1 << 20).unwrap();
        assert_eq!(lines(&b), vec!["line 59", "line 60"]);
        assert_eq!(b.records[0].stream, LogStream::Stderr);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_cursor_follows_new_records_and_survives_rotation() {
        let d = temp_dir("follow");
        let mut w = SegmentWriter::create(dir_fd(&d), LogLimits { max_size: 64, max_files: 2 }).unwrap();
        let put = |w: &mut SegmentWriter, i: i64| {
            let mut out = Vec::new();
            encode(i, LogStream::Stdout, false, format!("r{i}").as_bytes(), &mut out);
            w.write(&out).unwrap();
        };
        put(&mut w, 1);
        let b = read(&d, &LogsRequest { tail: Some(0), ..Default::default() }, 1 << 20).unwrap();
        assert!(b.records.is_empty() && b.at_end);
        // a record being written is read once it is whole
        let mut rec = Vec::new();
        encode(2, LogStream::Stdout, false, b"r2", &mut rec);
        w.write(&rec[..3]).unwrap();
        let b = read(&d, &LogsRequest { cursor: Some(b.cursor), ..Default::default() }, 1 << 20).unwrap();
        assert!(b.records.is_empty());
        w.write(&rec[3..]).unwrap();
        let b = read(&d, &LogsRequest { cursor: Some(b.cursor), ..Default::default() }, 1 << 20).unwrap();
        assert_eq!(lines(&b), vec!["r2"]);
        // many more records: the reader's segment is deleted; it goes on from the oldest one left
        for i in 3..40 {
            put(&mut w, i);
        }
        let (rest, _) = all(&d, LogsRequest { cursor: Some(b.cursor), ..Default::default() }, 1 << 20);
        assert!(!rest.is_empty() && rest.last().unwrap() == "r39", "{rest:?}");
        assert!(rest.len() < 37, "old segments are gone: {rest:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_missing_directory_is_empty_and_at_end() {
        let b = read(Path::new("/nonexistent/skep-logs"), &LogsRequest::default(), 100).unwrap();
        assert!(b.records.is_empty() && b.at_end);
    }
}
