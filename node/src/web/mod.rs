//! The web view: a read-only page showing the swarm live (nodes as columns, their tasks as cards), served under
//! `/ui/` on the API's listeners (on tcp:// behind the same TLS client certificates) and on a loopback address of
//! its own (`--web-addr`, on by default), where it serves nothing but the page and its stream.
//!
//! The page is three small files embedded in the binary (no framework, no CDN). It reads one stream, `/ui/watch`:
//! a snapshot of what it shows, then a delta per store version that changes it ([`hub`]). Not Docker's `/tasks` and
//! `/events`: `/tasks` carries each task's whole spec (environment variables included, which the unauthenticated
//! loopback listener must not show to every local user, and which makes 10k tasks weigh tens of megabytes), and
//! `/events` does not carry the leader or a service's stack; one stream computed once for every page also costs the
//! daemon the same whether one page or ten watch. Why, and the limits: `docs/design/web.md`.

mod hub;

pub use hub::{View, WebHub};

use crate::error::ApiError;
use crate::listen::{ApiService, ApiTransport, Bound};
use crate::node::NodeHandle;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use futures::StreamExt as _;
use skep_manager::runtime::Manager;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast::error::RecvError, watch};

/// The default of `--web-addr`: loopback only (next to Docker's 2375-2377).
pub const DEFAULT_ADDR: &str = "127.0.0.1:2378";

/// How often the feed looks at the Raft leader, which changes without a store version.
const LEADER_CHECK: Duration = Duration::from_secs(1);

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");

/// Only this origin's own files and stream: no inline script or style, no framing, no form posts.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Where the web view's own listener goes (`--web-addr`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebAddr {
    /// Not given: [`DEFAULT_ADDR`], and if it cannot be bound (another daemon on this machine has it) a warning only.
    Default,
    /// Given: this loopback address, and the daemon does not start without it.
    At(SocketAddr),
    /// `--web-addr none`: no listener of its own (`/ui/` on the API's listeners stays).
    Off,
}

/// Errors of the web view's listener.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebError {
    /// Not an address, nor `none`.
    #[error("invalid --web-addr {0:?}: expected a loopback IP:PORT such as {DEFAULT_ADDR}, or none")]
    Invalid(String),
    /// The address is not loopback: the listener has no TLS and no authentication.
    #[error(
        "refusing to serve the web view on {0} without TLS: it shows the whole swarm to whoever reaches it; give a \
         loopback address, or reach the page through a tcp:// API host with --tlsverify at https://HOST:PORT/ui/"
    )]
    NotLoopback(SocketAddr),
    /// The address cannot be bound.
    #[error("binding the web view's address {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

impl std::str::FromStr for WebAddr {
    type Err = WebError;

    fn from_str(v: &str) -> Result<WebAddr, WebError> {
        if v == "none" {
            return Ok(WebAddr::Off);
        }
        let addr: SocketAddr = v.parse().map_err(|_| WebError::Invalid(v.to_string()))?;
        if !addr.ip().is_loopback() {
            return Err(WebError::NotLoopback(addr));
        }
        Ok(WebAddr::At(addr))
    }
}

/// Bind the web view's listener (before the node starts: a taken address given explicitly stops the daemon before
/// anything is up); `None` when it is off, or the default address is taken.
pub fn bind(addr: WebAddr) -> Result<Option<tokio::net::TcpListener>, WebError> {
    let try_bind = |addr: SocketAddr| {
        let bind = || {
            let l = std::net::TcpListener::bind(addr)?;
            l.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(l)
        };
        bind().map_err(|source| WebError::Bind { addr, source })
    };
    match addr {
        WebAddr::Off => Ok(None),
        WebAddr::At(a) if !a.ip().is_loopback() => Err(WebError::NotLoopback(a)),
        WebAddr::At(a) => try_bind(a).map(Some),
        WebAddr::Default => {
            let a: SocketAddr = DEFAULT_ADDR.parse().map_err(|_| WebError::Invalid(DEFAULT_ADDR.into()))?;
            match try_bind(a) {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    tracing::warn!("{e}; the web view is served under /ui/ on the API's tcp:// hosts only");
                    Ok(None)
                }
            }
        }
    }
}

/// Serve the web view's own listener until `stop` turns true: the page and its stream, GET only, with the `Host`
/// and `Origin` rules of the API's loopback listener (no DNS rebinding, no other site's requests).
pub fn serve(
    listener: tokio::net::TcpListener,
    hub: Arc<WebHub>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let router = routes()
        .fallback(|| async { ApiError::not_found("page not found") })
        .layer(axum::middleware::from_fn(loopback_guard))
        .with_state(hub);
    let svc: ApiService = tower::util::BoxCloneService::new(router);
    crate::listen::serve(Bound::Tcp(listener, None, ApiTransport::InsecureLoopback), svc, stop)
}

async fn loopback_guard(req: Request, next: axum::middleware::Next) -> Response {
    let transport = req.extensions().get::<ApiTransport>().cloned().unwrap_or(ApiTransport::InsecureLoopback);
    if let Err(e) = crate::api::guard::check_origin_and_host(&transport, req.headers()) {
        return e.into_response();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return ApiError::not_found("page not found").into_response();
    }
    next.run(req).await
}

/// The page's routes, for the API's router and the web view's own, following `hub`.
pub(crate) fn routes() -> Router<Arc<WebHub>> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }))
        .route("/ui/app.js", get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }))
        .route("/ui/app.css", get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }))
        .route("/ui/watch", get(watch_stream))
}

fn secure_headers(r: &mut Response, content_type: &'static str) {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    secure_headers(&mut r, content_type);
    r
}

/// `GET /ui/watch`: the snapshot line, then the delta lines, until the page goes, falls [`hub`]'s lag behind, or the
/// view is replaced (then the page reconnects and starts over from a snapshot).
async fn watch_stream(State(hub): State<Arc<WebHub>>) -> Result<Response, ApiError> {
    let Some((view, live)) = hub.watch() else {
        return Err(ApiError::unavailable(
            "this node is not a swarm manager: the web view is served by the managers (docker node ls lists them)",
        ));
    };
    let first = tokio::task::spawn_blocking(move || hub::snapshot(&view))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let rest = futures::stream::unfold(Some(live), |rx| async move {
        let mut rx = rx?;
        match rx.recv().await {
            Ok(line) if &line[..] == hub::RESET => Some((line, None)),
            Ok(line) => Some((line, Some(rx))),
            Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => None,
        }
    });
    let body = futures::stream::once(async move { first }).chain(rest).map(Ok::<Bytes, std::convert::Infallible>);
    let mut r = (StatusCode::OK, Body::from_stream(body)).into_response();
    secure_headers(&mut r, "application/x-ndjson");
    Ok(r)
}

/// Feed `m`'s versions (and its leader) to the node's web hub until `m` stops.
pub(crate) fn follow_manager(node: NodeHandle, m: &Manager) {
    let m = m.clone();
    tokio::spawn(async move {
        let hub = node.web().clone();
        let mut versions = m.subscribe();
        let mut stopped = m.stopped();
        let view = |store| hub::View { store, leader: m.leader() };
        let generation = hub.replace(Some(view(versions.borrow_and_update().clone())));
        let mut tick = tokio::time::interval(LEADER_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                r = versions.changed() => if r.is_err() { break },
                _ = stopped.wait_for(|s| *s) => break,
                _ = tick.tick() => {}
            }
            hub.advance(view(versions.borrow_and_update().clone()));
        }
        hub.clear(generation);
    });
}

#[cfg(test)]
mod tests;
