//! One keep-alive HTTP/1.1 connection (hyper 1 client) over a unix socket (skep) or loopback TCP (etcd).

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where a member's client API listens.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// skep: the daemon's API socket.
    Unix(PathBuf),
    /// etcd: the member's client URL (loopback).
    Tcp(SocketAddr),
}

impl Endpoint {
    /// `Host` header value (Go's net/http refuses HTTP/1.1 requests without one).
    fn host(&self) -> String {
        match self {
            Endpoint::Unix(_) => "localhost".into(),
            Endpoint::Tcp(a) => a.to_string(),
        }
    }
}

/// A request template: what one write (or query) sends.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: hyper::Method,
    pub path: String,
    pub content_type: &'static str,
    pub body: Bytes,
}

/// One open connection; requests on it are sequential (HTTP/1.1 without pipelining).
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

impl Conn {
    /// Connects and does the HTTP/1.1 handshake; the connection task ends when the `Conn` is dropped.
    pub async fn connect(ep: &Endpoint) -> anyhow::Result<Conn> {
        let sender = match ep {
            Endpoint::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
                tokio::spawn(conn);
                sender
            }
            Endpoint::Tcp(a) => {
                let s = tokio::net::TcpStream::connect(a).await?;
                s.set_nodelay(true)?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(s)).await?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(Conn { sender, host: ep.host() })
    }

    /// Sends one request and reads the whole reply: `(status, body)`.
    pub async fn send(&mut self, req: &Req) -> anyhow::Result<(u16, Bytes)> {
        let r = hyper::Request::builder()
            .method(req.method.clone())
            .uri(req.path.as_str())
            .header(hyper::header::HOST, self.host.as_str())
            .header(hyper::header::CONTENT_TYPE, req.content_type)
            .body(Full::new(req.body.clone()))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(r).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok((status, body))
    }
}

/// One request on a fresh connection, bounded by `timeout`; a 2xx reply parsed as JSON.
pub async fn json_once(ep: &Endpoint, req: &Req, timeout: Duration) -> anyhow::Result<serde_json::Value> {
    let fut = async {
        let mut c = Conn::connect(ep).await?;
        let (status, body) = c.send(req).await?;
        anyhow::ensure!((200..300).contains(&status), "HTTP {status}: {}", String::from_utf8_lossy(&body));
        Ok(serde_json::from_slice(&body)?)
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| anyhow::anyhow!("timed out after {timeout:?}"))?
}
