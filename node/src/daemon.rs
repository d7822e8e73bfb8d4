//! The `skep daemon` process: logging, the runtime, the node, its API listeners, and shutdown on SIGINT/SIGTERM.

use crate::{api, listen, node};
use anyhow::Context;
use std::path::PathBuf;

/// What `skep daemon` is started with (its flags, parsed by the `skep` binary).
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    /// Where the node keeps its state.
    pub data_root: PathBuf,
    /// API sockets to listen on (`unix:///path` or `tcp://ip:port`); none: [`crate::DEFAULT_HOST`].
    pub hosts: Vec<String>,
    /// Task engine: `auto` (docker when its socket answers, else process), `process` or `docker`.
    pub engine: String,
    /// Prefix of the network namespaces this node creates (`None`: `sk` + the node ID's first 8 characters).
    pub net_prefix: Option<String>,
    /// Registries reached over plain HTTP (`host:port`, dockerd's `--insecure-registry`).
    pub insecure_registries: Vec<String>,
    /// Which images the process engine runs as host programs.
    pub host_programs: skep_worker::engine::process::image::HostPrograms,
    /// Log filter (RUST_LOG syntax).
    pub log_level: String,
    /// File mode of unix API sockets (dockerd: 0660).
    pub socket_mode: u32,
    /// Group owning unix API sockets (a name or numeric ID; dockerd's `--group`); `None`: the daemon's group.
    pub socket_group: Option<String>,
    /// `--tlsverify` with its files: tcp:// hosts are served with TLS requiring client certificates.
    pub tls: Option<TlsPaths>,
    /// `--insecure-tcp`: serve tcp:// hosts on loopback addresses without TLS.
    pub insecure_tcp: bool,
    /// `--log-opt` values: `max-size=…`, `max-file=…` (how much output each task keeps).
    pub log_opts: Vec<String>,
    /// `--metrics-addr`: where to serve `GET /metrics` (plain HTTP, as dockerd); `None`: nowhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// `--web-addr`: the web view's own loopback listener (`/ui/` is also served on the API's listeners).
    pub web_addr: crate::web::WebAddr,
}

/// The files of `--tlsverify` (`--tlscacert`, `--tlscert`, `--tlskey`).
#[derive(Debug, Clone)]
pub struct TlsPaths {
    /// CA certificate(s) client certificates must chain to.
    pub ca: PathBuf,
    /// The server's certificate.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

impl TlsPaths {
    /// Read the three files.
    pub fn read(&self) -> anyhow::Result<skep_pki::api_tls::ApiTlsFiles> {
        let read = |p: &PathBuf, what: &str| {
            std::fs::read_to_string(p).with_context(|| format!("reading {what} {}", p.display()))
        };
        Ok(skep_pki::api_tls::ApiTlsFiles {
            ca_pem: read(&self.ca, "--tlscacert")?,
            cert_pem: read(&self.cert, "--tlscert")?,
            key_pem: read(&self.key, "--tlskey")?,
        })
    }
}

/// The task log limits that `--log-opt` values ask for (dockerd's json-file options); anything else is refused.
pub fn log_limits(opts: &[String]) -> anyhow::Result<skep_worker::logs::LogLimits> {
    let (mut size, mut files) = (None, None);
    for o in opts {
        match o.split_once('=') {
            Some(("max-size", v)) => size = Some(v),
            Some(("max-file", v)) => files = Some(v),
            _ => anyhow::bail!("unknown log opt {o:?}: skep keeps task output itself and takes max-size=… and max-file=…"),
        }
    }
    skep_worker::logs::LogLimits::parse(size, files).map_err(anyhow::Error::msg)
}

/// The log filter with hickory's per-request `info` lines turned down, unless the filter names hickory itself.
fn quiet_dependencies(filter: &str) -> String {
    if filter.contains("hickory") {
        filter.to_string()
    } else {
        format!("{filter},hickory_server=warn,hickory_proto=warn")
    }
}

/// Run the daemon until SIGINT/SIGTERM; returns the exit code.
pub fn main(args: DaemonOptions) -> i32 {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(quiet_dependencies(&args.log_level)).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skep daemon: cannot start the runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("skep daemon: {e:#}");
            1
        }
    }
}

/// When this process was started by the `process` engine as a task's init (this binary re-executed with a hidden
/// first argument), run that step and return its exit code; `None` for every other start. The `skep` binary calls
/// it first thing in `main`.
pub fn run_task_init_if_requested() -> Option<i32> {
    skep_worker::engine::process::run_if_requested()
}

/// The local Docker engine's socket.
pub const DOCKER_SOCKET: &str = "/var/run/docker.sock";

/// Pick the engine for `auto`: docker when its socket answers, else process. (Engines arrive with the services issue;
/// until then the choice is only advertised.)
fn pick_engine(flag: &str) -> String {
    match flag {
        "auto" => {
            if std::os::unix::net::UnixStream::connect(DOCKER_SOCKET).is_ok() {
                "docker".into()
            } else {
                "process".into()
            }
        }
        other => other.into(),
    }
}

async fn run(args: DaemonOptions) -> anyhow::Result<()> {
    let hosts = if args.hosts.is_empty() { vec![crate::DEFAULT_HOST.to_string()] } else { args.hosts.clone() };
    // check every listener's security before anything starts: a refused tcp:// host must not leave a half-up node
    let socket = listen::SocketAccess { mode: args.socket_mode, group: args.socket_group.clone() };
    let tcp = listen::TcpSecurity { tls: args.tls.as_ref().map(TlsPaths::read).transpose()?, insecure_loopback: args.insecure_tcp };
    if let Some(tls) = &tcp.tls {
        skep_pki::api_tls::api_server_config(tls).context("the API's TLS files")?;
    }
    for h in &hosts {
        if h.starts_with("tcp://") && tcp.tls.is_none() && !args.insecure_tcp {
            anyhow::bail!(
                "refusing to serve the API on {h} without TLS: anyone who reaches it could run anything as root on \
                 every node; give --tlsverify --tlscacert --tlscert --tlskey (or, on a loopback address only, \
                 --insecure-tcp)"
            );
        }
    }
    // bound before the node starts, so that a taken address leaves nothing half up
    let metrics = args.metrics_addr.map(crate::metrics::bind).transpose()?;
    let web = crate::web::bind(args.web_addr)?;
    private_data_root(&args.data_root)?;
    let engine = pick_engine(&args.engine);
    let log_limits = log_limits(&args.log_opts)?;
    let node = node::NodeHandle::new(node::NodeOptions {
        data_root: args.data_root.clone(),
        engine,
        net_prefix: args.net_prefix.clone(),
        log_limits,
        insecure_registries: args.insecure_registries.clone(),
        host_programs: args.host_programs,
    })?;
    if let Err(e) = node.resume().await {
        tracing::error!("cannot rejoin the swarm from {}: {e:#}", args.data_root.display());
        anyhow::bail!("cannot rejoin the swarm from {}: {e:#}", args.data_root.display());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    let app = service(node.clone());
    for h in &hosts {
        let bound = listen::bind(h, &socket, &tcp)?;
        servers.push(listen::serve(bound, app.clone(), stop_rx.clone()));
    }
    if let Some(l) = metrics {
        let url = format!("http://{}/metrics", l.local_addr()?);
        servers.push(crate::metrics::serve(l, node.clone(), stop_rx.clone()));
        tracing::info!(%url, "serving metrics");
    }
    if let Some(l) = web {
        let url = format!("http://{}/ui/", l.local_addr()?);
        servers.push(crate::web::serve(l, node.web().clone(), stop_rx.clone()));
        tracing::info!(%url, "serving the web view");
    }
    for h in hosts.iter().filter_map(|h| h.strip_prefix("tcp://")) {
        let scheme = if tcp.tls.is_some() { "https" } else { "http" };
        tracing::info!(url = %format!("{scheme}://{}/ui/", h.trim_end_matches('/')), "serving the web view");
    }
    tracing::info!(hosts = ?hosts, "skep daemon listening");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
    let _ = stop_tx.send(true);
    node.shutdown().await;
    for s in servers {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s).await;
    }
    for h in &hosts {
        if let Some(p) = h.strip_prefix("unix://") {
            let _ = std::fs::remove_file(p);
        }
    }
    Ok(())
}

/// Create the data root 0700 (or narrow an existing one to it): it holds the Raft log and snapshots (with the CA
/// key and join tokens), the node's key, and the worker's task table, none of which any other user may read.
fn private_data_root(root: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("creating {}", root.display()))?;
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", root.display()))
}

/// The router behind the version prefix rewrite, as one service.
fn service(node: node::NodeHandle) -> listen::ApiService {
    let router = api::router(node);
    tower::util::BoxCloneService::new(tower::util::service_fn(move |req: axum::extract::Request| {
        let router = router.clone();
        async move {
            use tower::ServiceExt as _;
            match api::rewrite_version(req) {
                Ok(req) => router.oneshot(req).await,
                Err(resp) => Ok(resp),
            }
        }
    }))
}

#[cfg(test)]
mod log_opt_tests {
    use super::*;

    #[test]
    fn log_opts_are_dockerds_json_file_options() {
        let opts = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let l = log_limits(&opts(&["max-size=1m", "max-file=2"])).unwrap();
        assert_eq!((l.max_size, l.max_files), (1 << 20, 2));
        assert_eq!(log_limits(&[]).unwrap(), skep_worker::logs::LogLimits::default());
        assert!(log_limits(&opts(&["mode=non-blocking"])).unwrap_err().to_string().contains("mode=non-blocking"));
        assert!(log_limits(&opts(&["max-size=tiny"])).is_err());
        assert!(log_limits(&opts(&["max-file=0"])).is_err());
    }
}
