//! `GET /services/{id}/logs` and `GET /tasks/{id}/logs`: the tasks' records, read from the nodes that ran them, in
//! Docker's stream format ([`skep_api::logs`]: multiplexed stdout/stderr frames, or raw with a TTY; `timestamps`,
//! `details`, `tail` per task, `since`, `until`, `follow`).
//!
//! Each task is read by its own pump (a series of long polls to its node, `crate::node::logs`), all feeding one
//! bounded channel that is the response body, so a slow or dead node holds back only its own tasks. A task whose
//! node is down, or stops answering, gets one line on stderr saying so and the others keep streaming (Docker's
//! `service logs` hangs instead: moby/moby#33183). Following a service also picks up the tasks that start later
//! (a replaced task's successor), checking the store every second.

use super::{events::parse_time, qbool, Q};
use crate::error::ApiError;
use crate::node::logs::LogReadError;
use crate::node::NodeHandle;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use skep_api::logs::{details, swarm_details, LogFormat, LogRecord, LogStream, LogsRequest};
use skep_manager::control::logs::LogTarget;
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, SystemTime};
use tokio::sync::mpsc;

/// How often a service's followers look for new tasks.
const RESCAN: Duration = Duration::from_secs(1);
/// Chunks buffered between the pumps and the client.
const CHANNEL: usize = 64;

/// The query, as Docker's daemon reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Params {
    stdout: bool,
    stderr: bool,
    follow: bool,
    timestamps: bool,
    details: bool,
    tail: Option<u64>,
    since_ns: Option<i64>,
    until_ns: Option<i64>,
}

fn params(q: &HashMap<String, String>) -> Result<Params, ApiError> {
    let p = Params {
        stdout: qbool(q, "stdout"),
        stderr: qbool(q, "stderr"),
        follow: qbool(q, "follow"),
        timestamps: qbool(q, "timestamps"),
        details: qbool(q, "details"),
        tail: match q.get("tail").map(String::as_str) {
            None | Some("") | Some("all") => None,
            Some(v) if v.starts_with('-') && v[1..].parse::<u64>().is_ok() => {
                return Err(ApiError::invalid("negative tail values not supported"))
            }
            Some(v) => Some(v.parse::<u64>().map_err(|_| ApiError::invalid("tail value must be a positive integer or \"all\""))?),
        },
        since_ns: time(q, "since")?,
        until_ns: time(q, "until")?,
    };
    if !p.stdout && !p.stderr {
        return Err(ApiError::invalid("Bad parameters: you must choose at least one stream"));
    }
    Ok(p)
}

fn time(q: &HashMap<String, String>, key: &str) -> Result<Option<i64>, ApiError> {
    parse_time(q, key).map_err(|_| ApiError::invalid(format!("could not parse {key} timestamp: {:?}", q.get(key).map(String::as_str).unwrap_or(""))))
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

pub(super) async fn service_logs(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let p = params(&q)?;
    let (service_id, tty, targets) = node.service_log_targets(&id).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL);
    let mut started = BTreeSet::new();
    for t in targets {
        started.insert(t.task_id.clone());
        tokio::spawn(pump(node.clone(), t, p.clone(), tty, tx.clone()));
    }
    if p.follow {
        tokio::spawn(watch_service(node, service_id, started, p, tty, tx));
    }
    Ok(stream_response(rx, tty))
}

pub(super) async fn task_logs(State(node): State<NodeHandle>, Path(id): Path<String>, Query(q): Q) -> Result<Response, ApiError> {
    let p = params(&q)?;
    let (tty, target) = node.task_log_target(&id).await?;
    let (tx, rx) = mpsc::channel::<Bytes>(CHANNEL);
    if let Some(t) = target {
        tokio::spawn(pump(node, t, p, tty, tx));
    }
    Ok(stream_response(rx, tty))
}

fn stream_response(rx: mpsc::Receiver<Bytes>, tty: bool) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx)) });
    let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
    let kind = if tty { "application/vnd.docker.raw-stream" } else { "application/vnd.docker.multiplexed-stream" };
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    r
}

/// Following a service: starts a pump for each task that appears, until the client goes away, `until` passes or
/// the service is removed.
async fn watch_service(node: NodeHandle, service_id: String, mut started: BTreeSet<String>, p: Params, tty: bool, tx: mpsc::Sender<Bytes>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(RESCAN) => {}
            _ = tx.closed() => return,
        }
        if p.until_ns.is_some_and(|u| now_ns() > u) {
            return;
        }
        let Ok((_, _, targets)) = node.service_log_targets(&service_id).await else { return };
        for t in targets {
            if started.insert(t.task_id.clone()) {
                // a task that started after the request: all of its output, not its tail
                let fresh = Params { tail: None, ..p.clone() };
                tokio::spawn(pump(node.clone(), t, fresh, tty, tx.clone()));
            }
        }
    }
}

/// Reads one task's records from its node until they are all sent (not following), the task ended (following), the
/// client went away or its node failed (one error line).
async fn pump(node: NodeHandle, t: LogTarget, p: Params, tty: bool, tx: mpsc::Sender<Bytes>) {
    let format = LogFormat {
        timestamps: p.timestamps,
        details: if p.details { details(&swarm_details(&t.node_id, &t.service_id, &t.task_id)) } else { String::new() },
        tty,
    };
    if let Some(why) = &t.down {
        let _ = tx.send(error_line(&format, &format!("error from daemon in stream: {why}"))).await;
        return;
    }
    let mut req = LogsRequest {
        task_id: t.task_id.clone(),
        since_ns: p.since_ns,
        until_ns: p.until_ns,
        tail: p.tail,
        follow: p.follow,
        cursor: None,
    };
    loop {
        let batch = tokio::select! {
            b = node.read_task_logs(&t, req.clone()) => b,
            _ = tx.closed() => return,
        };
        match batch {
            Ok(b) => {
                let mut out = Vec::new();
                for r in b.records.iter().filter(|r| wanted(&p, r)) {
                    format.write(r, &mut out);
                }
                if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
                    return;
                }
                if b.done || p.until_ns.is_some_and(|u| now_ns() > u) {
                    return;
                }
                req.cursor = Some(b.cursor);
                req.tail = None;
            }
            Err(LogReadError::NotFound) => return,
            Err(LogReadError::Failed(why)) => {
                let _ = tx.send(error_line(&format, &format!("error from daemon in stream: {why}"))).await;
                return;
            }
        }
    }
}

fn wanted(p: &Params, r: &LogRecord) -> bool {
    match r.stream {
        LogStream::Stdout => p.stdout,
        LogStream::Stderr => p.stderr,
    }
}

/// One line on the task's stderr saying why its logs stop here.
fn error_line(format: &LogFormat, text: &str) -> Bytes {
    let r = LogRecord { time_ns: now_ns(), stream: LogStream::Stderr, partial: false, line: text.as_bytes().to_vec() };
    let mut out = Vec::new();
    format.write(&r, &mut out);
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_query_is_read_as_dockers() {
        let p = params(&q(&[("stdout", "1"), ("stderr", "1"), ("follow", "1"), ("tail", "5"), ("since", "1700000000.5"), ("timestamps", "true")])).unwrap();
        assert_eq!(
            p,
            Params {
                stdout: true,
                stderr: true,
                follow: true,
                timestamps: true,
                details: false,
                tail: Some(5),
                since_ns: Some(1_700_000_000_500_000_000),
                until_ns: None
            }
        );
        assert_eq!(params(&q(&[("stdout", "1"), ("tail", "all")])).unwrap().tail, None);
        let msg = |pairs: &[(&str, &str)]| params(&q(pairs)).unwrap_err().to_string();
        assert_eq!(msg(&[]), "Bad parameters: you must choose at least one stream");
        assert_eq!(msg(&[("stdout", "1"), ("tail", "-1")]), "negative tail values not supported");
        assert_eq!(msg(&[("stdout", "1"), ("tail", "x")]), "tail value must be a positive integer or \"all\"");
        assert_eq!(msg(&[("stdout", "1"), ("since", "abc")]), "could not parse since timestamp: \"abc\"");
        assert_eq!(msg(&[("stdout", "1"), ("until", "1.x")]), "could not parse until timestamp: \"1.x\"");
    }

    #[test]
    fn error_lines_are_the_tasks_stderr() {
        let f = LogFormat { timestamps: false, details: "k=v".into(), tty: false };
        let b = error_line(&f, "error from daemon in stream: node n2 is down");
        assert_eq!(b[0], 2);
        assert_eq!(&b[8..], b"k=v error from daemon in stream: node n2 is down\n");
    }
}
