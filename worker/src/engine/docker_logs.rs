//! The `docker` engine's task logs. Docker keeps a container's output itself: containers are created with the
//! `json-file` driver bounded by the daemon's limits (`max-size`, `max-file`: Docker rotates), so the output survives
//! a skep daemon restart. Reads go through Docker's logs API with timestamps; the cursor is the time of the last
//! record read and how many records had exactly that time (the API's `since` is in whole seconds, so a read from a
//! cursor starts at its second and skips what was already read).

use super::EngineError;
use crate::logs::{LogLimits, BATCH_BYTES, LONG_POLL};
use bollard::container::LogOutput;
use bollard::models::HostConfigLogConfig;
use bollard::query_parameters::LogsOptions;
use bollard::Docker;
use futures::StreamExt;
use skep_api::logs::{in_range, LogCursor, LogRecord, LogStream, LogsBatch, LogsRequest};
use std::collections::HashMap;
use std::time::Duration;

/// After the first record of a following read, how long more records may take to join its batch.
const LINGER: Duration = Duration::from_millis(50);

/// The log configuration of every task container.
pub(crate) fn log_config(limits: LogLimits) -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some("json-file".into()),
        config: Some(HashMap::from([
            ("max-size".to_string(), limits.max_size.to_string()),
            ("max-file".to_string(), limits.max_files.to_string()),
        ])),
    }
}

/// A frame of the logs API (read with timestamps) as a record; `None` for stdin frames or a frame without a time.
pub(crate) fn parse_frame(out: &LogOutput) -> Option<LogRecord> {
    let (stream, msg) = match out {
        LogOutput::StdOut { message } | LogOutput::Console { message } => (LogStream::Stdout, message),
        LogOutput::StdErr { message } => (LogStream::Stderr, message),
        LogOutput::StdIn { .. } => return None,
    };
    let sp = msg.iter().position(|&b| b == b' ')?;
    let t = skep_api::time::parse(std::str::from_utf8(&msg[..sp]).ok()?)?;
    let time_ns = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos() as i64;
    let mut line = msg[sp + 1..].to_vec();
    let partial = line.last() != Some(&b'\n');
    if !partial {
        line.pop();
    }
    Some(LogRecord { time_ns, stream, partial, line })
}

/// Whether `r` was read before (it is at or before `c`), advancing the count of records at `c`'s time.
fn seen(c: &LogCursor, skipped_at_time: &mut u32, r: &LogRecord) -> bool {
    if r.time_ns < c.time_ns {
        return true;
    }
    if r.time_ns == c.time_ns && *skipped_at_time < c.at_time {
        *skipped_at_time += 1;
        return true;
    }
    false
}

/// Moves `c` past `r`.
fn advance(c: &mut LogCursor, r: &LogRecord) {
    if r.time_ns == c.time_ns {
        c.at_time += 1;
    } else {
        c.time_ns = r.time_ns;
        c.at_time = 1;
    }
}

/// The logs API query for `req`.
fn options(req: &LogsRequest) -> LogsOptions {
    let secs = |ns: i64, up: bool| {
        let s = if up { ns.div_euclid(1_000_000_000) + i64::from(ns.rem_euclid(1_000_000_000) != 0) } else { ns.div_euclid(1_000_000_000) };
        s.clamp(0, i64::from(i32::MAX)) as i32
    };
    let since = match &req.cursor {
        Some(c) => Some(c.time_ns.max(req.since_ns.unwrap_or(i64::MIN))),
        None => req.since_ns,
    };
    LogsOptions {
        follow: req.follow,
        stdout: true,
        stderr: true,
        since: since.map_or(0, |s| secs(s, false)),
        until: req.until_ns.map_or(0, |u| secs(u, true).max(1)),
        timestamps: true,
        tail: match (&req.cursor, req.tail) {
            (None, Some(n)) => n.to_string(),
            _ => "all".into(),
        },
    }
}

/// One batch of `container`'s logs for `req`.
pub(crate) async fn read(docker: &Docker, container: &str, req: &LogsRequest) -> Result<LogsBatch, EngineError> {
    let mut stream = docker.logs(container, Some(options(req)));
    let start = req.cursor.clone().unwrap_or_default();
    let mut cursor = start.clone();
    let mut skipped = 0u32;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let deadline = tokio::time::Instant::now() + LONG_POLL;
    loop {
        let wait = if records.is_empty() || !req.follow { deadline } else { (tokio::time::Instant::now() + LINGER).min(deadline) };
        let next = match tokio::time::timeout_at(wait, stream.next()).await {
            Ok(n) => n,
            // nothing more for now: the caller comes back with the cursor
            Err(_) => return Ok(LogsBatch { records, cursor, done: false }),
        };
        let Some(frame) = next else {
            // the end: everything was read (following: the container stopped)
            return Ok(LogsBatch { records, cursor, done: true });
        };
        let frame = match frame {
            Ok(f) => f,
            Err(e) if super::docker::status(&e) == Some(404) => {
                return Err(EngineError::NotFound(format!("No such task: {}", req.task_id)))
            }
            Err(e) => return Err(e.into()),
        };
        let Some(r) = parse_frame(&frame) else { continue };
        if req.until_ns.is_some_and(|u| r.time_ns > u) {
            return Ok(LogsBatch { records, cursor, done: true });
        }
        if seen(&start, &mut skipped, &r) || !in_range(r.time_ns, req.since_ns, req.until_ns) {
            continue;
        }
        advance(&mut cursor, &r);
        bytes += r.line.len();
        records.push(r);
        if bytes >= BATCH_BYTES {
            return Ok(LogsBatch { records, cursor, done: false });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(s: &str) -> LogOutput {
        LogOutput::StdOut { message: bytes::Bytes::from(s.to_string()) }
    }

    #[test]
    fn frames_with_timestamps_become_records() {
        let r = parse_frame(&out("2026-12-07T00:34:11.513480417Z hello world\n")).unwrap();
        assert_eq!(r.time_ns, 1_796_603_651_513_480_417);
        assert_eq!(r.line, b"hello world");
        assert!(!r.partial);
        let e = parse_frame(&LogOutput::StdErr { message: bytes::Bytes::from_static(b"2026-12-07T00:34:11Z cut") }).unwrap();
        assert_eq!((e.stream, e.partial, &e.line[..]), (LogStream::Stderr, true, &b"cut"[..]));
        assert!(parse_frame(&out("no-time here\n")).is_none());
    }

    #[test]
    fn a_cursor_skips_what_was_read_also_at_the_same_time() {
        let rec = |t| LogRecord { time_ns: t, stream: LogStream::Stdout, partial: false, line: vec![] };
        let mut c = LogCursor::default();
        for t in [5, 7, 7] {
            advance(&mut c, &rec(t));
        }
        assert_eq!((c.time_ns, c.at_time), (7, 2));
        let mut skipped = 0;
        let fresh: Vec<i64> = [5, 7, 7, 7, 8].into_iter().filter(|&t| !seen(&c, &mut skipped, &rec(t))).collect();
        assert_eq!(fresh, vec![7, 8]);
    }

    #[test]
    fn queries_start_at_the_cursors_second() {
        let o = options(&LogsRequest { tail: Some(3), since_ns: Some(1_500_000_000), ..Default::default() });
        assert_eq!((o.tail.as_str(), o.since, o.until, o.timestamps), ("3", 1, 0, true));
        let c = LogCursor { time_ns: 9_200_000_000, at_time: 1, ..Default::default() };
        let o = options(&LogsRequest { tail: Some(3), until_ns: Some(10_000_000_001), cursor: Some(c), ..Default::default() });
        assert_eq!((o.tail.as_str(), o.since, o.until), ("all", 9, 11));
    }
}
