//! Write throughput and latency: `clients` closed-loop clients, each with one keep-alive connection to the
//! leader, writing `value_size`-byte values under distinct keys for `warmup + seconds`. Only writes that complete
//! inside the measured window count; writes/s = that count / window.

use crate::cluster::{Cluster, Value};
use crate::http::Conn;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Per-request bound: a stalled write is an error, never a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// A client that fails this many times in a row gives up (the error count says so).
const MAX_CONSECUTIVE_ERRORS: u32 = 100;

/// One measured point.
#[derive(Debug)]
pub struct Point {
    pub system: &'static str,
    pub clients: usize,
    /// Successful writes completed inside the window.
    pub writes: u64,
    pub window: Duration,
    /// Latency of those writes, µs.
    pub hist: Histogram<u64>,
    /// Failed writes (non-200, transport error or timeout) during the whole run, and the first message.
    pub errors: u64,
    pub first_error: Option<String>,
}

impl Point {
    pub fn writes_per_sec(&self) -> f64 {
        self.writes as f64 / self.window.as_secs_f64()
    }
}

struct ClientOut {
    writes: u64,
    hist: Histogram<u64>,
    errors: u64,
    first_error: Option<String>,
}

pub fn new_hist() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// Runs one point against member `target` of `cluster`.
pub async fn run_point(
    cluster: &Cluster,
    target: usize,
    clients: usize,
    value_size: usize,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<Point> {
    let value = Value::new(value_size);
    let ep = cluster.endpoint(target);
    // Keys are distinct: `b<pid>-<clients>-<client>-<seq>`.
    let run_id = std::process::id();
    let start = Instant::now() + Duration::from_millis(200);
    let window_start = start + warmup;
    let end = window_start + seconds;
    let reqs: Arc<dyn Fn(usize, u64) -> crate::http::Req + Send + Sync> = {
        let v = value.clone();
        match cluster {
            Cluster::Skep(_) => Arc::new(move |c, s| crate::cluster::skep::put_req(&format!("b{run_id}-{clients}-{c}-{s}"), &v)),
            Cluster::Etcd(_) => Arc::new(move |c, s| crate::cluster::etcd::put_req(&format!("b{run_id}-{clients}-{c}-{s}"), &v)),
        }
    };
    let mut tasks = Vec::new();
    for c in 0..clients {
        let ep = ep.clone();
        let reqs = reqs.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = ClientOut { writes: 0, hist: new_hist(), errors: 0, first_error: None };
            let mut conn = match Conn::connect(&ep).await {
                Ok(c) => Some(c),
                Err(e) => {
                    out.errors += 1;
                    out.first_error = Some(format!("connect: {e:#}"));
                    None
                }
            };
            tokio::time::sleep_until(start).await;
            let mut seq = 0u64;
            let mut consecutive = 0u32;
            while Instant::now() < end && consecutive < MAX_CONSECUTIVE_ERRORS {
                let req = reqs(c, seq);
                seq += 1;
                let t0 = Instant::now();
                let r = match conn.as_mut() {
                    Some(cn) => tokio::time::timeout(REQUEST_TIMEOUT, cn.send(&req))
                        .await
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("timed out after {REQUEST_TIMEOUT:?}"))),
                    None => Err(anyhow::anyhow!("not connected")),
                };
                let t1 = Instant::now();
                let err = match r {
                    Ok((200, _)) => None,
                    Ok((s, body)) => Some(format!("HTTP {s}: {}", String::from_utf8_lossy(&body))),
                    Err(e) => {
                        // The connection is unusable after a transport error or a cancelled request.
                        conn = Conn::connect(&ep).await.ok();
                        Some(format!("{e:#}"))
                    }
                };
                match err {
                    None => {
                        consecutive = 0;
                        if t1 >= window_start && t1 <= end {
                            out.writes += 1;
                            out.hist.saturating_record((t1 - t0).as_micros().max(1) as u64);
                        }
                    }
                    Some(e) => {
                        consecutive += 1;
                        out.errors += 1;
                        out.first_error.get_or_insert(e);
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            out
        }));
    }
    let mut p = Point {
        system: cluster.name(),
        clients,
        writes: 0,
        window: seconds,
        hist: new_hist(),
        errors: 0,
        first_error: None,
    };
    for t in tasks {
        let o = t.await?;
        p.writes += o.writes;
        p.hist.add(&o.hist)?;
        p.errors += o.errors;
        if p.first_error.is_none() {
            p.first_error = o.first_error;
        }
    }
    Ok(p)
}
