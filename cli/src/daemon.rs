//! `skep daemon`'s flags. The daemon itself is the `skep-node` crate; this only parses what it is started with.

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
    /// A registry (HOST:PORT) to reach over plain HTTP instead of HTTPS, as dockerd's flag; repeatable. Every other
    /// registry is HTTPS only
    #[arg(long = "insecure-registry", value_name = "HOST:PORT")]
    pub insecure_registries: Vec<String>,
    /// Which task images the embedded (process) engine runs as programs of the host instead of pulling them: `paths`
    /// (an absolute path such as /usr/bin/sleep, which no registry reference can be), `none`, or `names` (also a
    /// reference without an explicit registry, such as busybox: the old demo mode)
    #[arg(long = "host-programs", default_value = "paths", value_parser = ["none", "paths", "names"])]
    pub host_programs: String,
    /// Log filter (RUST_LOG syntax)
    #[arg(long = "log-level", env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
    /// How much output each task keeps, as dockerd's json-file options: max-size=10m (a log segment's size),
    /// max-file=5 (segments kept); repeatable
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opts: Vec<String>,
    /// Serve tcp:// hosts with TLS and require client certificates signed by --tlscacert (as dockerd's flag)
    #[arg(long = "tlsverify")]
    pub tlsverify: bool,
    /// CA certificate(s) that client certificates must chain to
    #[arg(long = "tlscacert")]
    pub tlscacert: Option<PathBuf>,
    /// The API's TLS certificate
    #[arg(long = "tlscert")]
    pub tlscert: Option<PathBuf>,
    /// The API's TLS key
    #[arg(long = "tlskey")]
    pub tlskey: Option<PathBuf>,
    /// Serve tcp:// hosts on loopback addresses without TLS or authentication (any local user can then run anything
    /// as root on every node): for development only
    #[arg(long = "insecure-tcp")]
    pub insecure_tcp: bool,
    /// Group owning the unix API socket (name or numeric ID; default: the daemon's group)
    #[arg(short = 'G', long = "group")]
    pub group: Option<String>,
    /// Serve Prometheus metrics at http://IP:PORT/metrics (plain HTTP, as dockerd's flag); off unless given
    #[arg(long = "metrics-addr", value_name = "IP:PORT", value_parser = parse_metrics_addr)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve the web view (read-only, live) at http://IP:PORT/ui/ on this loopback address (default 127.0.0.1:2378,
    /// skipped with a warning if taken), or `none`; it is also served at /ui/ on the API's tcp:// hosts
    #[arg(long = "web-addr", value_name = "IP:PORT|none", value_parser = parse_web_addr)]
    pub web_addr: Option<skep_node::web::WebAddr>,
    /// File mode of the unix API socket, octal
    #[arg(long = "socket-mode", default_value = "660", value_parser = parse_mode)]
    pub socket_mode: u32,
}

/// An octal file mode of at most 0777.
fn parse_mode(v: &str) -> Result<u32, String> {
    let m = u32::from_str_radix(v.trim_start_matches("0o"), 8).map_err(|e| format!("not an octal mode: {e}"))?;
    if m > 0o777 {
        return Err("a mode is at most 777".into());
    }
    Ok(m)
}

/// `--metrics-addr`: an IP address and a port.
fn parse_metrics_addr(v: &str) -> Result<std::net::SocketAddr, String> {
    v.parse().map_err(|_| "expected IP:PORT, such as 127.0.0.1:9323".to_string())
}

/// `--web-addr`: a loopback IP address and a port, or `none`.
fn parse_web_addr(v: &str) -> Result<skep_node::web::WebAddr, String> {
    v.parse().map_err(|e: skep_node::web::WebError| e.to_string())
}

/// The `--tlsverify` files, all three or none.
fn tls_paths(args: &DaemonArgs) -> Result<Option<skep_node::daemon::TlsPaths>, String> {
    match (args.tlsverify, &args.tlscacert, &args.tlscert, &args.tlskey) {
        (true, Some(ca), Some(cert), Some(key)) => Ok(Some(skep_node::daemon::TlsPaths {
            ca: ca.clone(),
            cert: cert.clone(),
            key: key.clone(),
        })),
        (true, ..) => Err("--tlsverify needs --tlscacert, --tlscert and --tlskey".into()),
        (false, None, None, None) => Ok(None),
        (false, ..) => Err("--tlscacert, --tlscert and --tlskey are used only with --tlsverify".into()),
    }
}

/// Run the daemon with these flags until SIGINT/SIGTERM; returns the exit code.
pub fn main(args: DaemonArgs) -> i32 {
    let tls = match tls_paths(&args) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("skep daemon: {e}");
            return 1;
        }
    };
    skep_node::daemon::main(skep_node::daemon::DaemonOptions {
        socket_mode: args.socket_mode,
        socket_group: args.group,
        tls,
        insecure_tcp: args.insecure_tcp,
        data_root: args.data_root,
        hosts: args.hosts,
        engine: args.engine,
        net_prefix: args.net_prefix,
        insecure_registries: args.insecure_registries,
        host_programs: args.host_programs.parse().unwrap_or_default(),
        log_level: args.log_level,
        log_opts: args.log_opts,
        metrics_addr: args.metrics_addr,
        web_addr: args.web_addr.unwrap_or(skep_node::web::WebAddr::Default),
    })
}
