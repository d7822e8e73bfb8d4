//! One-shot HTTP/1.1 requests on a unix socket (a skep daemon's API socket or `/var/run/docker.sock`).

use anyhow::Context as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::path::Path;
use std::time::Duration;

/// `method path` with an optional JSON body; returns the status and the body. Bounded by `timeout` as a whole.
pub async fn request(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
    timeout: Duration,
) -> anyhow::Result<(u16, Bytes)> {
    let body = match body {
        Some(v) => Bytes::from(serde_json::to_vec(v)?),
        None => Bytes::new(),
    };
    let fut = async {
        let stream = tokio::net::UnixStream::connect(sock).await.with_context(|| format!("connecting to {}", sock.display()))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(conn);
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("Host", "localhost")
            .header("Content-Type", "application/json")
            .body(Full::new(body))?;
        let res = async {
            let resp = sender.send_request(req).await?;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, bytes))
        }
        .await;
        driver.abort();
        res
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| anyhow::anyhow!("{method} {path}: timed out after {timeout:?}"))?
}

/// `GET path` → JSON, requiring 200.
pub async fn get_json(sock: &Path, path: &str, timeout: Duration) -> anyhow::Result<serde_json::Value> {
    let (status, body) = request(sock, "GET", path, None, timeout).await?;
    anyhow::ensure!(status == 200, "GET {path}: {status} {}", String::from_utf8_lossy(&body));
    Ok(serde_json::from_slice(&body)?)
}

/// Percent-encodes a query value (filters JSON).
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `RunningTasks` of the service called `name` from `GET /services?status=true` (None while it is not listed).
pub async fn running_tasks(sock: &Path, name: &str, timeout: Duration) -> anyhow::Result<Option<(i64, i64)>> {
    let filters = enc(&format!("{{\"name\":[\"{name}\"]}}"));
    let v = get_json(sock, &format!("/services?status=true&filters={filters}"), timeout).await?;
    let list = v.as_array().context("/services is not an array")?;
    Ok(list
        .iter()
        .find(|s| s.pointer("/Spec/Name").and_then(|n| n.as_str()) == Some(name))
        .and_then(|s| s.get("ServiceStatus"))
        .map(|st| {
            (
                st.get("RunningTasks").and_then(|r| r.as_i64()).unwrap_or(0),
                st.get("DesiredTasks").and_then(|r| r.as_i64()).unwrap_or(0),
            )
        }))
}
