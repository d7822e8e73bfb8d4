//! The API's listeners and connections, as dockerd exposes its API: who may connect, how, and for how long.
//!
//! - `unix://path`: the socket is bound inside a fresh private (0700) directory, given its group and mode there, and
//!   only then renamed into place, so there is no moment at which the socket exists at its path with wider access
//!   than asked (binding in place and chmod-ing afterwards leaves such a window).
//! - `tcp://ip:port`: served only with TLS that *requires* a client certificate from the operator's CA
//!   (`--tlsverify --tlscacert --tlscert --tlskey`, dockerd's flags and the files the docker CLI reads from
//!   `DOCKER_CERT_PATH`). Plain TCP is refused, except on a loopback address with the explicit `--insecure-tcp`,
//!   and then with a warning at start and every minute: whoever reaches an unauthenticated API runs anything as root
//!   on every node.
//! - Every connection: at most [`MAX_CONNECTIONS`] at once per listener, a TLS handshake within
//!   [`HANDSHAKE_TIMEOUT`], and request headers (including the wait for the next request on a kept-alive
//!   connection: the idle timeout) within [`HEADER_READ_TIMEOUT`]; request bodies are bounded by the router's guard.
//!
//! Which kind of listener a request came through ([`ApiTransport`]) is put into its extensions, for the
//! `Host`/`Origin` checks of `crate::api`'s guard.

use anyhow::{bail, Context};
use axum::extract::Request;
use axum::response::Response;
use hyper_util::rt::{TokioIo, TokioTimer};
use skep_pki::api_tls::ApiTlsFiles;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Semaphore};

/// Longest wait for a request's headers, and for the next request on an idle kept-alive connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once per listener; more wait in the kernel's backlog.
pub const MAX_CONNECTIONS: usize = 1024;
/// How long open connections get to finish when the daemon stops.
const DRAIN: Duration = Duration::from_secs(5);

/// The router as one cloneable service.
pub type ApiService = tower::util::BoxCloneService<Request, Response, Infallible>;

/// How a request reached the API.
#[derive(Clone, Debug)]
pub enum ApiTransport {
    /// The unix socket: its file mode and group are the access control.
    Unix,
    /// TCP with mutual TLS; `names` are the DNS names of the server certificate (accepted in `Host`).
    Tls {
        /// Lower-case DNS names from the server certificate's subject alternative names.
        names: Arc<Vec<String>>,
    },
    /// Plain TCP on a loopback address (`--insecure-tcp`).
    InsecureLoopback,
}

/// How the unix socket is created.
#[derive(Clone, Debug)]
pub struct SocketAccess {
    /// File mode of the socket (dockerd: 0660).
    pub mode: u32,
    /// Group owning the socket (a name or a numeric ID); `None`: the daemon's group.
    pub group: Option<String>,
}

/// How tcp:// hosts are served.
#[derive(Clone, Debug, Default)]
pub struct TcpSecurity {
    /// The server's TLS files (`--tlsverify`); `None`: no TLS.
    pub tls: Option<ApiTlsFiles>,
    /// `--insecure-tcp`: allow plain TCP on loopback addresses.
    pub insecure_loopback: bool,
}

/// A bound listener, ready to serve.
pub enum Bound {
    /// A unix socket at `path`.
    Unix(tokio::net::UnixListener, PathBuf),
    /// A TCP socket, TLS or not.
    Tcp(tokio::net::TcpListener, Option<tokio_rustls::TlsAcceptor>, ApiTransport),
}

/// Bind `host` (`unix:///path` or `tcp://ip:port`) with the access rules of this module.
pub fn bind(host: &str, socket: &SocketAccess, tcp: &TcpSecurity) -> anyhow::Result<Bound> {
    if let Some(path) = host.strip_prefix("unix://") {
        if path.is_empty() {
            bail!("invalid host '{host}': empty socket path");
        }
        let path = PathBuf::from(path);
        let listener = bind_unix(&path, socket)?;
        listener.set_nonblocking(true)?;
        return Ok(Bound::Unix(tokio::net::UnixListener::from_std(listener)?, path));
    }
    let Some(addr) = host.strip_prefix("tcp://") else {
        bail!("invalid host '{host}': expected unix:///path or tcp://ip:port");
    };
    let addr: SocketAddr = addr.trim_end_matches('/').parse().with_context(|| format!("invalid host '{host}': expected tcp://ip:port"))?;
    let (acceptor, transport) = match (&tcp.tls, tcp.insecure_loopback) {
        (Some(files), _) => {
            let config = skep_pki::api_tls::api_server_config(files).context("loading the API's TLS files")?;
            let names = skep_pki::api_tls::cert_dns_names(&files.cert_pem).context("reading --tlscert")?;
            (Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))), ApiTransport::Tls { names: Arc::new(names) })
        }
        (None, true) if addr.ip().is_loopback() => {
            insecure_warning(addr);
            (None, ApiTransport::InsecureLoopback)
        }
        (None, true) => bail!(
            "refusing to serve the API on {host} without TLS: --insecure-tcp is for loopback addresses only; \
             give --tlsverify --tlscacert --tlscert --tlskey"
        ),
        (None, false) => bail!(
            "refusing to serve the API on {host} without TLS: anyone who reaches it could run anything as root on \
             every node; give --tlsverify --tlscacert --tlscert --tlskey (or, on a loopback address only, \
             --insecure-tcp)"
        ),
    };
    let listener = std::net::TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
    listener.set_nonblocking(true)?;
    Ok(Bound::Tcp(tokio::net::TcpListener::from_std(listener)?, acceptor, transport))
}

fn insecure_warning(addr: SocketAddr) {
    let text = format!(
        "the API on tcp://{addr} has NO TLS and NO AUTHENTICATION (--insecure-tcp): any local process or user can \
         take over this node and the whole swarm through it"
    );
    eprintln!("WARNING: {text}");
    tracing::warn!("{text}");
}

/// Resolve `--group`: a group name, or a numeric ID.
fn resolve_group(group: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(group) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => bail!("group '{group}' for the API socket does not exist"),
        Err(e) => bail!("looking up group '{group}': {e}"),
    }
}

/// Bind the socket in a private directory next to `path`, set its owner group and mode, then move it into place.
fn bind_unix(path: &Path, access: &SocketAccess) -> anyhow::Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let gid = access.group.as_deref().map(resolve_group).transpose()?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if path.exists() {
        // a stale socket from a previous run; refuse to steal a live one
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("{} is in use by another daemon", path.display());
        }
        std::fs::remove_file(path).with_context(|| format!("removing the stale {}", path.display()))?;
    }
    let private = dir.join(format!(".skep-sock-{}-{:x}", std::process::id(), rand::random::<u64>()));
    std::fs::DirBuilder::new().mode(0o700).create(&private).with_context(|| format!("creating {}", private.display()))?;
    let result = (|| -> anyhow::Result<std::os::unix::net::UnixListener> {
        let tmp = private.join("s");
        let listener = std::os::unix::net::UnixListener::bind(&tmp).with_context(|| format!("binding {}", tmp.display()))?;
        if let Some(gid) = gid {
            std::os::unix::fs::chown(&tmp, None, Some(gid)).with_context(|| format!("giving {} to group {gid}", tmp.display()))?;
        }
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(access.mode & 0o777))?;
        std::fs::rename(&tmp, path).with_context(|| format!("moving the socket to {}", path.display()))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    result
}

/// Serve `bound` with `app` until `stop` turns true.
pub fn serve(bound: Bound, app: ApiService, stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut stop_accepting = stop.clone();
        loop {
            let Ok(permit) = slots.clone().acquire_owned().await else { return };
            match &bound {
                Bound::Unix(l, _) => {
                    let accepted = tokio::select! {
                        a = l.accept() => a,
                        _ = stop_accepting.wait_for(|s| *s) => return,
                    };
                    match accepted {
                        Ok((s, _)) => {
                            let (app, stop) = (app.clone(), stop.clone());
                            tokio::spawn(async move {
                                serve_connection(s, app, ApiTransport::Unix, stop).await;
                                drop(permit);
                            });
                        }
                        Err(e) => accept_error(e).await,
                    }
                }
                Bound::Tcp(l, acceptor, transport) => {
                    let accepted = tokio::select! {
                        a = l.accept() => a,
                        _ = stop_accepting.wait_for(|s| *s) => return,
                    };
                    match accepted {
                        Ok((s, peer)) => {
                            let _ = s.set_nodelay(true);
                            let (app, stop, transport, acceptor) =
                                (app.clone(), stop.clone(), transport.clone(), acceptor.clone());
                            tokio::spawn(async move {
                                match acceptor {
                                    None => serve_connection(s, app, transport, stop).await,
                                    Some(a) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, a.accept(s)).await {
                                        Ok(Ok(tls)) => serve_connection(tls, app, transport, stop).await,
                                        Ok(Err(e)) => tracing::debug!(%peer, "API TLS handshake failed: {e}"),
                                        Err(_) => tracing::debug!(%peer, "API TLS handshake timed out"),
                                    },
                                }
                                drop(permit);
                            });
                        }
                        Err(e) => accept_error(e).await,
                    }
                }
            }
        }
    })
}

/// An accept error (out of file descriptors, ...): log it and pause instead of spinning.
async fn accept_error(e: std::io::Error) {
    tracing::warn!("API accept: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One HTTP/1.1 connection: requests in turn, each tagged with how it came, until the peer closes, a header
/// deadline passes, or the daemon stops (then in-flight requests get [`DRAIN`] to finish).
async fn serve_connection<I>(io: I, app: ApiService, transport: ApiTransport, mut stop: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tower::ServiceExt as _;
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let mut req = req.map(axum::body::Body::new);
        req.extensions_mut().insert(transport.clone());
        app.oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!("API connection: {e}");
            }
        }
        () = async { let _ = stop.wait_for(|s| *s).await; } => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN, conn).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn plain_tcp_is_refused_unless_loopback_and_asked_for() {
        let socket = SocketAccess { mode: 0o660, group: None };
        let plain = TcpSecurity::default();
        let e = bind("tcp://127.0.0.1:0", &socket, &plain).err().expect("refused");
        assert!(e.to_string().contains("without TLS"), "{e}");
        let insecure = TcpSecurity { tls: None, insecure_loopback: true };
        let e = bind("tcp://0.0.0.0:0", &socket, &insecure).err().expect("refused");
        assert!(e.to_string().contains("loopback addresses only"), "{e}");
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            assert!(matches!(
                bind("tcp://127.0.0.1:0", &socket, &insecure).unwrap(),
                Bound::Tcp(_, None, ApiTransport::InsecureLoopback)
            ));
        });
        assert!(bind("ftp://x", &socket, &plain).is_err());
    }

    #[test]
    fn the_socket_appears_with_its_mode_and_group() {
        let dir = std::env::temp_dir().join(format!("skep-listen-{}", rand::random::<u32>()));
        let path = dir.join("api.sock");
        let gid = nix::unistd::getegid().as_raw();
        let access = SocketAccess { mode: 0o640, group: Some(gid.to_string()) };
        let l = bind_unix(&path, &access).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.gid(), gid);
        // nothing left of the private directory
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        // a live socket is not stolen; a stale one is replaced
        assert!(bind_unix(&path, &access).is_err());
        drop(l);
        bind_unix(&path, &access).unwrap();
        assert!(bind_unix(&path, &SocketAccess { mode: 0o660, group: Some("no-such-group-skep".into()) }).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
