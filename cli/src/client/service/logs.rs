//! `skep service logs SERVICE|TASK`: the output of a service's tasks (or one task), as docker's `service logs`
//! prints it: each line prefixed with its task (`web.1.<task ID>@<node>  | `), stderr lines on stderr.
//!
//! The daemon sends Docker's stream (`GET /services/{id}/logs`, `/tasks/{id}/logs`; see `skep_api::logs`):
//! multiplexed frames whose payload is `[<time> ]<details> <line>`; the details name the task, its service and node,
//! which are looked up once each to name the line.

use super::super::{query, seg, ApiClient};
use anyhow::{bail, Result};
use clap::Args;
use skep_api::docker::{Node, Service, Task};
use std::collections::HashMap;
use std::io::Write;

/// `skep service logs`.
#[derive(Args, Debug, Clone, Default)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs of each task ("all" by default)
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since a Unix timestamp, an RFC 3339 time, or a duration before now (42m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Do not include task IDs in the output
    #[arg(long = "no-task-ids")]
    pub no_task_ids: bool,
    /// Do not neatly format the output: only the lines
    #[arg(long)]
    pub raw: bool,
    /// Service or task
    #[arg(value_name = "SERVICE|TASK")]
    pub target: String,
}

/// `since` as the API takes it: Unix seconds with nanoseconds.
fn since_value(s: &str, now: std::time::SystemTime) -> Result<String> {
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') && !s.is_empty() {
        return Ok(s.to_string());
    }
    let t = match humantime::parse_duration(s) {
        Ok(d) => now.checked_sub(d),
        Err(_) => humantime::parse_rfc3339_weak(s).ok(),
    };
    let Some(d) = t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()) else {
        bail!("invalid value for \"since\": {s:?} is not a Unix time, an RFC 3339 time or a duration");
    };
    Ok(format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
}

/// Splits a stdcopy stream into frames as bytes arrive.
#[derive(Default)]
struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// Frames completed by `data`: (stream, payload).
    fn push(&mut self, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        loop {
            if self.buf.len() < 8 {
                return out;
            }
            let len = u32::from_be_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]]) as usize;
            if self.buf.len() < 8 + len {
                return out;
            }
            let payload = self.buf[8..8 + len].to_vec();
            out.push((self.buf[0], payload));
            self.buf.drain(..8 + len);
        }
    }
}

/// A payload's parts: time (if asked for), the details (`k=v` pairs), and the line.
fn split_payload(p: &[u8], timestamps: bool) -> (Option<&[u8]>, HashMap<String, String>, &[u8]) {
    let mut rest = p;
    let mut time = None;
    if timestamps {
        if let Some(i) = rest.iter().position(|&b| b == b' ') {
            time = Some(&rest[..i]);
            rest = &rest[i + 1..];
        }
    }
    let mut details = HashMap::new();
    if let Some(i) = rest.iter().position(|&b| b == b' ') {
        let text = String::from_utf8_lossy(&rest[..i]);
        if text.contains('=') {
            for (k, v) in url::form_urlencoded::parse(text.replace(',', "&").as_bytes()) {
                details.insert(k.into_owned(), v.into_owned());
            }
            rest = &rest[i + 1..];
        }
    }
    (time, details, rest)
}

/// Names of tasks' lines, looked up once per task.
struct Namer<'a> {
    c: &'a ApiClient,
    task_ids: bool,
    names: HashMap<String, String>,
    width: usize,
}

impl Namer<'_> {
    async fn name(&mut self, d: &HashMap<String, String>) -> String {
        let (Some(task), Some(service), Some(node)) =
            (d.get("com.docker.swarm.task.id"), d.get("com.docker.swarm.service.id"), d.get("com.docker.swarm.node.id"))
        else {
            return String::new();
        };
        if let Some(n) = self.names.get(task) {
            return n.clone();
        }
        let svc = self.c.get::<Service>(&format!("/services/{}", seg(service))).await.map(|s| s.spec.name).unwrap_or_else(|_| service.clone());
        let slot = self.c.get::<Task>(&format!("/tasks/{}", seg(task))).await.map(|t| t.slot).unwrap_or(0);
        let host = self
            .c
            .get::<Node>(&format!("/nodes/{}", seg(node)))
            .await
            .map(|n| n.description.hostname)
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| node.clone());
        let mut n = format!("{svc}.{slot}");
        if self.task_ids {
            n.push('.');
            n.push_str(&task[..task.len().min(12)]);
        }
        n.push('@');
        n.push_str(&host);
        self.names.insert(task.clone(), n.clone());
        n
    }
}

/// Runs `service logs`.
pub async fn logs(c: &ApiClient, a: LogsArgs, out: &mut dyn Write) -> Result<()> {
    let (path, tty) = match c.get::<Service>(&format!("/services/{}", seg(&a.target))).await {
        Ok(s) => (format!("/services/{}/logs", seg(&s.id)), s.spec.task_template.container_spec.is_some_and(|c| c.tty)),
        Err(e) if e.is_not_found() => match c.get::<Task>(&format!("/tasks/{}", seg(&a.target))).await {
            Ok(t) => (format!("/tasks/{}/logs", seg(&t.id)), t.spec.container_spec.is_some_and(|c| c.tty)),
            Err(e) if e.is_not_found() => bail!("no such task or service: {}", a.target),
            Err(e) => return Err(e.into()),
        },
        Err(e) => return Err(e.into()),
    };
    let since = a.since.as_deref().map(|s| since_value(s, std::time::SystemTime::now())).transpose()?;
    let tail = a.tail.clone().unwrap_or_else(|| "all".into());
    let mut q: Vec<(&str, &str)> = vec![("stdout", "1"), ("stderr", "1"), ("tail", &tail)];
    if !a.raw {
        q.push(("details", "1"));
    }
    if a.follow {
        q.push(("follow", "1"));
    }
    if a.timestamps {
        q.push(("timestamps", "1"));
    }
    if let Some(s) = &since {
        q.push(("since", s));
    }
    let path = format!("{path}{}", query(&q));
    // the stream is read on this task; lines are named (which takes API calls) and printed as frames complete
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let reader = {
        let c = c.clone();
        tokio::spawn(async move { c.get_stream(&path, move |d| tx.send(d.to_vec()).is_ok()).await })
    };
    let mut demux = Demux::default();
    let mut namer = Namer { c, task_ids: !a.no_task_ids, names: HashMap::new(), width: 0 };
    while let Some(data) = rx.recv().await {
        if tty {
            out.write_all(&data)?;
            out.flush()?;
            continue;
        }
        for (stream, payload) in demux.push(&data) {
            let mut line = Vec::new();
            if a.raw {
                line.extend_from_slice(&payload);
            } else {
                let (time, details, text) = split_payload(&payload, a.timestamps);
                if let Some(t) = time {
                    line.extend_from_slice(t);
                    line.push(b' ');
                }
                let name = namer.name(&details).await;
                namer.width = namer.width.max(name.len());
                line.extend_from_slice(format!("{name:<w$}    | ", w = namer.width).as_bytes());
                line.extend_from_slice(text);
            }
            if stream == 2 || stream == 3 {
                let mut e = std::io::stderr();
                e.write_all(&line)?;
                e.flush()?;
            } else {
                out.write_all(&line)?;
                out.flush()?;
            }
        }
    }
    reader.await??;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_split_as_they_complete() {
        let mut d = Demux::default();
        let mut stream = vec![1, 0, 0, 0, 0, 0, 0, 3];
        stream.extend_from_slice(b"ab\n");
        stream.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 2]);
        stream.extend_from_slice(b"x\n");
        assert!(d.push(&stream[..5]).is_empty());
        assert_eq!(d.push(&stream[5..12]), vec![(1, b"ab\n".to_vec())]);
        assert_eq!(d.push(&stream[12..]), vec![(2, b"x\n".to_vec())]);
    }

    #[test]
    fn payloads_carry_time_details_and_line() {
        let p = b"2026-01-01T00:00:00.1Z com.docker.swarm.node.id=n1,com.docker.swarm.task.id=t%2F1 hello world\n";
        let (t, d, line) = split_payload(p, true);
        assert_eq!(t, Some(&b"2026-01-01T00:00:00.1Z"[..]));
        assert_eq!(d.get("com.docker.swarm.task.id").map(String::as_str), Some("t/1"));
        assert_eq!(line, b"hello world\n");
        let (t, d, line) = split_payload(b"plain line\n", false);
        assert!(t.is_none() && d.is_empty());
        assert_eq!(line, b"plain line\n");
    }

    #[test]
    fn since_takes_times_and_durations() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000);
        assert_eq!(since_value("1700000000.5", now).unwrap(), "1700000000.5");
        assert_eq!(since_value("10m", now).unwrap(), "400.000000000");
        assert_eq!(since_value("1970-01-01T00:00:05Z", now).unwrap(), "5.000000000");
        assert!(since_value("yesterday", now).is_err());
    }
}
