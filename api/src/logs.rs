//! Task logs: the records a node keeps of its tasks' output, the node-to-node request that reads them, and Docker's
//! log stream format (`GET /services/{id}/logs`, `GET /tasks/{id}/logs`).
//!
//! A record is one line of a task's stdout or stderr with the time its node read it. Nodes answer
//! [`LogsRequest`]s with a [`LogsBatch`] and a [`LogCursor`] to continue from: following a task's logs is a series of
//! long polls, each picking up after the last record the caller has (see `docs/design/logs.md`).
//!
//! Docker's format (moby `api/types/container` and `pkg/stdcopy`): without a TTY each record is a frame
//! `[stream, 0, 0, 0, u32 big-endian length] payload`, stream 1 for stdout and 2 for stderr; the payload is
//! `[<RFC 3339 time> ' '][<details> ' ']<line>`, where details are `k=v` pairs, URL-query-escaped, sorted by key and
//! joined with commas. The docker CLI reads the `com.docker.swarm.{node,service,task}.id` details to name each line's
//! task. With a TTY the payloads are written as they are, unframed.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Longest line a record holds; longer lines are cut into records of this size marked [`LogRecord::partial`]
/// (Docker's log copier cuts at 16 KiB too).
pub const MAX_LINE: usize = 16 * 1024;

/// Which output of the task.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of a task's output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// When the node read it (Unix nanoseconds).
    pub time_ns: i64,
    /// stdout or stderr.
    pub stream: LogStream,
    /// The line did not end here (it was longer than [`MAX_LINE`], or the task ended without a newline): no `\n` is
    /// added when it is written out.
    pub partial: bool,
    /// The line's bytes, without its newline.
    #[serde(with = "crate::wire::as_bytes")]
    pub line: Vec<u8>,
}

/// Where a reader of a task's logs is: what the next request continues from. Each engine uses its own part: the
/// process engine its segment and offset, the docker engine the time of the last record and how many records with
/// that very time it has passed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    /// Log segment number (process engine).
    pub segment: u64,
    /// Byte offset in the segment (process engine).
    pub offset: u64,
    /// Time of the last record read (docker engine).
    pub time_ns: i64,
    /// Records read with exactly that time (docker engine).
    pub at_time: u32,
}

/// Node → node: read a task's logs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsRequest {
    /// The task.
    pub task_id: String,
    /// Only records at or after this time (Unix nanoseconds).
    pub since_ns: Option<i64>,
    /// Only records at or before this time.
    pub until_ns: Option<i64>,
    /// Only the last this many records (of those in the time range). Applies to the first request only.
    pub tail: Option<u64>,
    /// Wait for new records (up to the node's long-poll time) when there are none yet, and report `done` only once the
    /// task has ended and everything is read.
    pub follow: bool,
    /// Continue after this point (`None`: the first request).
    pub cursor: Option<LogCursor>,
}

/// A node's answer to a [`LogsRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogsBatch {
    /// The records, oldest first.
    pub records: Vec<LogRecord>,
    /// Where the next request continues.
    pub cursor: LogCursor,
    /// Nothing more will come: everything asked for is read (and, when following, the task has ended).
    pub done: bool,
}

/// The frame header's stream byte.
fn stream_byte(s: LogStream) -> u8 {
    match s {
        LogStream::Stdout => 1,
        LogStream::Stderr => 2,
    }
}

/// `payload` as one multiplexed frame (stdcopy's format).
pub fn frame(stream: LogStream, payload: &[u8], out: &mut Vec<u8>) {
    out.push(stream_byte(stream));
    out.extend_from_slice(&[0, 0, 0]);
    // a payload is one record: far below 4 GiB
    out.extend_from_slice(&(payload.len().min(u32::MAX as usize) as u32).to_be_bytes());
    out.extend_from_slice(payload);
}

/// Docker's details string: `k=v` pairs sorted by key, URL-query-escaped, comma-joined.
pub fn details(attrs: &BTreeMap<String, String>) -> String {
    attrs.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect::<Vec<_>>().join(",")
}

/// The `com.docker.swarm.*` details of a task's lines (what the docker CLI needs to name them).
pub fn swarm_details(node_id: &str, service_id: &str, task_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("com.docker.swarm.node.id".to_string(), node_id.to_string()),
        ("com.docker.swarm.service.id".to_string(), service_id.to_string()),
        ("com.docker.swarm.task.id".to_string(), task_id.to_string()),
    ])
}

/// Go's `url.QueryEscape`: unreserved bytes as they are, space as `+`, everything else `%XX`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// How records are written out for an HTTP client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogFormat {
    /// Prefix each line with its time (`timestamps=1`).
    pub timestamps: bool,
    /// Prefix each line with these details (`details=1`; empty: none).
    pub details: String,
    /// Raw payloads (the service has a TTY) instead of multiplexed frames.
    pub tty: bool,
}

impl LogFormat {
    /// Appends one record, in this format, to `out`.
    pub fn write(&self, r: &LogRecord, out: &mut Vec<u8>) {
        let mut payload = Vec::with_capacity(r.line.len() + 40 + self.details.len());
        if self.timestamps {
            payload.extend_from_slice(crate::time::format_unix_nanos(r.time_ns.max(0) as u128).as_bytes());
            payload.push(b' ');
        }
        if !self.details.is_empty() {
            payload.extend_from_slice(self.details.as_bytes());
            payload.push(b' ');
        }
        payload.extend_from_slice(&r.line);
        if !r.partial {
            payload.push(b'\n');
        }
        if self.tty {
            out.extend_from_slice(&payload);
        } else {
            frame(r.stream, &payload, out);
        }
    }
}

/// Whether `time_ns` is in `[since, until]`.
pub fn in_range(time_ns: i64, since_ns: Option<i64>, until_ns: Option<i64>) -> bool {
    since_ns.is_none_or(|s| time_ns >= s) && until_ns.is_none_or(|u| time_ns <= u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(line: &str, stream: LogStream) -> LogRecord {
        LogRecord { time_ns: 1_700_000_000_123_456_789, stream, partial: false, line: line.as_bytes().to_vec() }
    }

    #[test]
    fn frames_are_stdcopy_frames() {
        let mut out = Vec::new();
        LogFormat::default().write(&rec("hello", LogStream::Stdout), &mut out);
        LogFormat::default().write(&rec("oops", LogStream::Stderr), &mut out);
        assert_eq!(&out[..8], &[1, 0, 0, 0, 0, 0, 0, 6]);
        assert_eq!(&out[8..14], b"hello\n");
        assert_eq!(&out[14..22], &[2, 0, 0, 0, 0, 0, 0, 5]);
        assert_eq!(&out[22..], b"oops\n");
    }

    #[test]
    fn timestamps_and_details_prefix_the_line_as_dockers() {
        let d = details(&swarm_details("n1", "s 1", "t/1"));
        assert_eq!(d, "com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s+1,com.docker.swarm.task.id=t%2F1");
        let f = LogFormat { timestamps: true, details: d.clone(), tty: false };
        let mut out = Vec::new();
        f.write(&rec("x", LogStream::Stdout), &mut out);
        let payload = String::from_utf8(out[8..].to_vec()).unwrap();
        assert_eq!(payload, format!("2023-11-14T22:13:20.123456789Z {d} x\n"));
        assert_eq!(u32::from_be_bytes(out[4..8].try_into().unwrap()) as usize, payload.len());
    }

    #[test]
    fn a_tty_gets_raw_lines_and_partial_lines_get_no_newline() {
        let f = LogFormat { tty: true, ..Default::default() };
        let mut out = Vec::new();
        f.write(&rec("a", LogStream::Stdout), &mut out);
        let mut p = rec("b", LogStream::Stdout);
        p.partial = true;
        f.write(&p, &mut out);
        assert_eq!(out, b"a\nb");
    }

    #[test]
    fn time_range_is_inclusive() {
        assert!(in_range(5, Some(5), Some(5)));
        assert!(!in_range(4, Some(5), None));
        assert!(!in_range(6, None, Some(5)));
        assert!(in_range(6, None, None));
    }
}
