//! The backends' HTTP/1.1 server and the bench's own client.
//!
//! The server answers every request with 1 KiB (`BODY_LEN`) whose first line is its name, keeps the connection
//! unless the request says `Connection: close`, and then closes first (so TIME_WAIT lands on the server side, as
//! with nginx). It runs on one thread, like a single nginx worker.
//!
//! The client has two modes:
//! - `close`: `conns` workers, each opening a new connection per request (`Connection: close`) for `seconds`; the
//!   latency of a request includes its connect, so a lost SYN (a 1 s retransmission) shows, which wrk would not
//!   show (wrk starts its clock after the connect).
//! - `serial`: one keep-alive connection, one request at a time: the path's own latency without queueing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::Semaphore;

use crate::report::Run;

/// The size of every response body.
pub const BODY_LEN: usize = 1024;
/// A request head larger than this closes the connection.
const MAX_HEAD: usize = 8 * 1024;
/// Connections served at once; the accept loop waits for a slot beyond that.
const MAX_CONNS: usize = 8192;
/// How long one client request (connect included) may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A request this slow counts as stalled.
pub const STALL: Duration = Duration::from_secs(1);

/// The full response, head and body; the body starts with `name` and a newline.
fn response(name: &str, close: bool) -> Vec<u8> {
    let mut body = format!("{name}\n").into_bytes();
    body.resize(BODY_LEN - 1, b'x');
    body.push(b'\n');
    let conn = if close { "Connection: close\r\n" } else { "" };
    let mut out =
        format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {BODY_LEN}\r\n{conn}\r\n").into_bytes();
    out.extend_from_slice(&body);
    out
}

/// Serves every address in `listen` until killed; one connection limit for all of them.
pub async fn serve(listen: Vec<SocketAddr>, name: String) -> Result<()> {
    let keep: Arc<[u8]> = response(&name, false).into();
    let close: Arc<[u8]> = response(&name, true).into();
    let slots = Arc::new(Semaphore::new(MAX_CONNS));
    let mut loops = tokio::task::JoinSet::new();
    for addr in listen {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("bind {addr}"))?;
        eprintln!("serving {name} on {addr}");
        loops.spawn(accept_loop(listener, keep.clone(), close.clone(), slots.clone()));
    }
    match loops.join_next().await {
        Some(r) => r.context("accept loop")?,
        None => Ok(()),
    }
}

async fn accept_loop(listener: TcpListener, keep: Arc<[u8]>, close: Arc<[u8]>, slots: Arc<Semaphore>) -> Result<()> {
    loop {
        let permit = slots.clone().acquire_owned().await.context("semaphore")?;
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let (keep, close) = (keep.clone(), close.clone());
        tokio::spawn(async move {
            let _ = connection(stream, &keep, &close).await;
            drop(permit);
        });
    }
}

/// One connection: answers each complete request head in order (pipelining works), closes on `Connection: close`,
/// on EOF, on a head larger than [`MAX_HEAD`].
async fn connection(mut s: TcpStream, keep: &[u8], close: &[u8]) -> std::io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            if wants_close(&buf[..end]) {
                s.write_all(close).await?;
                s.shutdown().await?;
                return Ok(());
            }
            s.write_all(keep).await?;
            buf.drain(..end + 4);
        }
        if buf.len() > MAX_HEAD {
            return Ok(());
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Whether a request head carries `Connection: close`.
fn wants_close(head: &[u8]) -> bool {
    head.split(|&b| b == b'\n').skip(1).any(|line| {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return false;
        };
        line[..colon].eq_ignore_ascii_case(b"connection")
            && line[colon + 1..].trim_ascii().eq_ignore_ascii_case(b"close")
    })
}

/// How the client loads its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// A new connection per request, `conns` at a time.
    Close,
    /// One keep-alive connection, one request at a time.
    Serial,
}

/// What a client run measured. Latencies in µs, sorted.
#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub requests: u64,
    pub errors: u64,
    /// Requests that took ≥ [`STALL`] (connect included), whether they succeeded or not.
    pub stalls: u64,
    pub seconds: f64,
    pub lat_us: Vec<u64>,
    /// The first error seen, for the log.
    pub first_error: Option<String>,
}

impl LoadResult {
    /// The `p`-th percentile (0–100) in µs, nearest rank.
    pub fn pct(&self, p: f64) -> u64 {
        if self.lat_us.is_empty() {
            return 0;
        }
        let rank = ((p / 100.0) * self.lat_us.len() as f64).ceil() as usize;
        self.lat_us[rank.clamp(1, self.lat_us.len()) - 1]
    }

    /// The figures a run reports; `cpu` is filled in by the caller.
    pub fn summary(&self) -> Run {
        Run {
            requests: self.requests,
            seconds: self.seconds,
            p50_us: self.pct(50.0),
            p99_us: self.pct(99.0),
            max_us: self.lat_us.last().copied().unwrap_or(0),
            errors: self.errors,
            stalls: Some(self.stalls),
            cpu: None,
            syn_retrans: None,
            first_error: self.first_error.clone(),
        }
    }
}

/// Loads `target` for `duration` (plus at most [`REQUEST_TIMEOUT`] for the requests in flight at the end). `sources`:
/// the client addresses the `close` workers bind to, in turn (empty: the kernel's choice), so one process can play
/// several clients.
pub async fn load(target: SocketAddr, mode: Mode, conns: usize, duration: Duration, sources: &[IpAddr]) -> LoadResult {
    let start = Instant::now();
    let deadline = start + duration;
    let workers = match mode {
        Mode::Close => conns.max(1),
        Mode::Serial => 1,
    };
    let mut set = tokio::task::JoinSet::new();
    for i in 0..workers {
        let source = (!sources.is_empty()).then(|| sources[i % sources.len()]);
        set.spawn(async move {
            match mode {
                Mode::Close => churn_worker(target, source, deadline).await,
                Mode::Serial => serial_worker(target, deadline).await,
            }
        });
    }
    let mut total = LoadResult::default();
    while let Some(r) = set.join_next().await {
        let Ok(r) = r else { continue };
        total.requests += r.requests;
        total.errors += r.errors;
        total.stalls += r.stalls;
        total.lat_us.extend(r.lat_us);
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
    }
    total.seconds = start.elapsed().as_secs_f64();
    total.lat_us.sort_unstable();
    total
}

const REQ_CLOSE: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
const REQ_KEEP: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

async fn churn_worker(target: SocketAddr, source: Option<IpAddr>, deadline: Instant) -> LoadResult {
    let mut r = LoadResult::default();
    while Instant::now() < deadline {
        let t0 = Instant::now();
        let outcome = tokio::time::timeout(REQUEST_TIMEOUT, one_close_request(target, source)).await;
        let took = t0.elapsed();
        if took >= STALL {
            r.stalls += 1;
        }
        match outcome {
            Ok(Ok(())) => {
                r.requests += 1;
                r.lat_us.push(took.as_micros() as u64);
            }
            Ok(Err(e)) => {
                r.errors += 1;
                r.first_error.get_or_insert_with(|| e.to_string());
                // A refused or reset connection returns at once: don't spin on it.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(_) => {
                r.errors += 1;
                r.first_error
                    .get_or_insert_with(|| format!("no answer within {REQUEST_TIMEOUT:?}"));
            }
        }
    }
    r
}

/// Connect (from `source`, port chosen by the kernel), send one `Connection: close` request, read the answer to EOF,
/// check it. The server closes first, so the client's ports never sit in TIME_WAIT.
async fn one_close_request(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<()> {
    let mut s = match source {
        None => TcpStream::connect(target).await?,
        Some(ip) => {
            let socket = if ip.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(ip, 0))?;
            socket.connect(target).await?
        }
    };
    s.set_nodelay(true)?;
    s.write_all(REQ_CLOSE).await?;
    let mut answer = Vec::with_capacity(BODY_LEN + 128);
    (&mut s).take(64 * 1024).read_to_end(&mut answer).await?;
    check_answer(&answer, answer.len())
}

fn check_answer(answer: &[u8], len: usize) -> std::io::Result<()> {
    let head_end = find(answer, b"\r\n\r\n").map(|i| i + 4).unwrap_or(0);
    if !answer.starts_with(b"HTTP/1.1 200") || len < head_end + BODY_LEN {
        return Err(std::io::Error::other(format!("bad answer ({} bytes)", answer.len())));
    }
    Ok(())
}

async fn serial_worker(target: SocketAddr, deadline: Instant) -> LoadResult {
    let mut r = LoadResult::default();
    let mut s = match tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(target)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            r.errors += 1;
            r.first_error = Some(e.to_string());
            return r;
        }
        Err(_) => {
            r.errors += 1;
            r.first_error = Some("connect timed out".into());
            return r;
        }
    };
    let _ = s.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    while Instant::now() < deadline {
        let t0 = Instant::now();
        match tokio::time::timeout(REQUEST_TIMEOUT, one_keepalive_request(&mut s, &mut buf)).await {
            Ok(Ok(())) => {
                let took = t0.elapsed();
                if took >= STALL {
                    r.stalls += 1;
                }
                r.requests += 1;
                r.lat_us.push(took.as_micros() as u64);
            }
            Ok(Err(e)) => {
                r.errors += 1;
                r.first_error = Some(e.to_string());
                return r;
            }
            Err(_) => {
                r.errors += 1;
                r.stalls += 1;
                r.first_error = Some(format!("no answer within {REQUEST_TIMEOUT:?}"));
                return r;
            }
        }
    }
    r
}

/// One request on a kept-alive connection; reads exactly one response (head + Content-Length body).
async fn one_keepalive_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    s.write_all(REQ_KEEP).await?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = find(buf, b"\r\n\r\n") {
            if buf.len() >= end + 4 + BODY_LEN {
                return check_answer(buf, buf.len());
            }
        }
        if buf.len() > 64 * 1024 {
            return Err(std::io::Error::other("answer too large"));
        }
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::Error::other("connection closed"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// One blocking `Connection: close` GET from inside `ns`; returns the first line of the body (the backend's name).
pub fn probe(ns: &skep_overlay::netns::Netns, target: SocketAddr) -> Result<String> {
    use std::io::{Read, Write};
    let stream = ns
        .run(move || std::net::TcpStream::connect_timeout(&target, Duration::from_secs(2)))?
        .with_context(|| format!("connect {target}"))?;
    let mut stream = stream;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(REQ_CLOSE)?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .with_context(|| format!("read from {target}"))?;
    check_answer(&answer, answer.len()).with_context(|| format!("answer from {target}"))?;
    let body = &answer[find(&answer, b"\r\n\r\n").unwrap_or(0) + 4..];
    Ok(String::from_utf8_lossy(body.split(|&b| b == b'\n').next().unwrap_or_default()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_header() {
        assert!(wants_close(b"GET / HTTP/1.1\r\nHost: x\r\nconnection:  Close\r"));
        assert!(!wants_close(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r"));
        assert!(!wants_close(b"GET /connection: close HTTP/1.1\r\nHost: x\r"));
    }

    #[test]
    fn response_shape() {
        let r = response("b", false);
        let head_end = find(&r, b"\r\n\r\n").unwrap() + 4;
        assert_eq!(r.len() - head_end, BODY_LEN);
        assert!(r[head_end..].starts_with(b"b\n"));
        assert!(check_answer(&r, r.len()).is_ok());
    }
}
