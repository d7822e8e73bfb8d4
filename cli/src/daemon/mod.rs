//! `skep daemon`: a node. It serves the Docker Engine API on its sockets and runs whatever its swarm role needs.
//!
//! # Layout
//! - [`node`]: the node supervisor (init, join, leave, resume from disk, role changes, certificate renewal).
//! - [`api`]: the HTTP routes (Docker Engine API, swarm subset).
//! - [`state`]: what the node keeps on disk.
//! - [`sysinfo`]: host facts for `/info` and the node description.

pub mod api;
pub mod node;
pub mod state;
pub mod sysinfo;

use anyhow::Context;
use std::path::PathBuf;

/// `skep daemon` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct DaemonArgs {
    /// Where the node keeps its state
    #[arg(long = "data-root", default_value = "/var/lib/skep")]
    pub data_root: PathBuf,
    /// API sockets to listen on (unix:///path or tcp://ip:port); repeatable
    #[arg(short = 'H', long = "host")]
    pub hosts: Vec<String>,
    /// Task engine: auto picks docker when its socket answers, else the embedded process engine
    #[arg(long, default_value = "auto", value_parser = ["auto", "process", "docker"])]
    pub engine: String,
    /// Prefix of the network namespaces this node creates (default `sk` + the node ID's first 8 characters); set it
    /// when several daemons share a machine and something must find their namespaces by name
    #[arg(long = "net-prefix", env = "SKEP_NET_PREFIX")]
    pub net_prefix: Option<String>,
    /// Log filter (RUST_LOG syntax)
    #[arg(long = "log-level", env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
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
pub fn main(args: DaemonArgs) -> i32 {
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

async fn run(args: DaemonArgs) -> anyhow::Result<()> {
    let hosts = if args.hosts.is_empty() { vec![crate::DEFAULT_HOST.to_string()] } else { args.hosts.clone() };
    std::fs::create_dir_all(&args.data_root).with_context(|| format!("creating {}", args.data_root.display()))?;
    let engine = pick_engine(&args.engine);
    let node = node::NodeHandle::new(node::NodeOptions { data_root: args.data_root.clone(), engine, net_prefix: args.net_prefix.clone() });
    if let Err(e) = node.resume().await {
        tracing::error!("cannot rejoin the swarm from {}: {e:#}", args.data_root.display());
        anyhow::bail!("cannot rejoin the swarm from {}: {e:#}", args.data_root.display());
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for h in &hosts {
        servers.push(serve(h, node.clone(), stop_rx.clone()).await?);
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

async fn serve(
    host: &str,
    node: node::NodeHandle,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use axum::ServiceExt;
    use tower::Layer;
    let app = tower::util::MapRequestLayer::new(|r| r).layer(api::router(node));
    let app = tower::util::service_fn(move |req: axum::extract::Request| {
        let app = app.clone();
        async move {
            use tower::ServiceExt as _;
            match api::rewrite_version(req) {
                Ok(req) => app.oneshot(req).await,
                Err(resp) => Ok(resp),
            }
        }
    });
    let make = ServiceExt::<axum::extract::Request>::into_make_service(app);
    let shutdown = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Some(path) = host.strip_prefix("unix://") {
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            // a stale socket from a previous run; refuse to steal a live one
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                anyhow::bail!("{} is in use by another daemon", path.display());
            }
            std::fs::remove_file(&path)?;
        }
        let listener = tokio::net::UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660))?;
        }
        Ok(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, make).with_graceful_shutdown(shutdown).await {
                tracing::error!("api server: {e}");
            }
        }))
    } else if let Some(addr) = host.strip_prefix("tcp://") {
        let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| format!("binding {addr}"))?;
        Ok(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, make).with_graceful_shutdown(shutdown).await {
                tracing::error!("api server: {e}");
            }
        }))
    } else {
        anyhow::bail!("invalid host '{host}': expected unix:///path or tcp://ip:port")
    }
}
