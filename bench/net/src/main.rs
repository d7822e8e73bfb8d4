//! `skep-bench-net`: skep's network data plane beside its peers, on the real kernel path (see bench/net/README.md).
//!
//! The topology is built with skep-overlay's own API, the calls the daemon makes (worker/src/network.rs):
//! `DataPlane::sync_network`, `sandbox_create`/`sandbox_attach`, `host_leg`, `nft::enable_ip_forward` and
//! `nft::apply_ingress`. Hosts are network namespaces on one underlay bridge; traffic is pushed through them by
//! iperf3, wrk, HAProxy and this binary's own HTTP server and client.
//!
//! ```text
//! skep-bench-net all [--rounds 2] [--parts a,b,c] …   # build the lab, run every figure, print the tables, tear down
//! skep-bench-net serve --listen IP:PORT… --name NAME    # HTTP/1.1 keep-alive server, 1 KiB bodies (a backend)
//! skep-bench-net load --target IP:PORT --mode close|serial --conns N --seconds S [--source IP…]   # the bench's client
//! skep-bench-net cleanup                                # kill what runs in skbn-* namespaces, delete them
//! ```
//!
//! Nothing here asserts a timing: the figures are reported with the goal each one is compared to.
//!
//! # Layout
//!
//! - `lab`: addresses, the namespaces and the skep data plane, and cleanup.
//! - `procs`: child processes inside namespaces, killed on drop; bounded runs.
//! - `http`: the backends' HTTP server and the churn / serial-latency client.
//! - `peers`: iperf3, wrk and HAProxy: how they are run and how their output is read.
//! - `bench`: the three figures, run side by side.
//! - `report`: the markdown tables.

mod bench;
mod http;
mod lab;
mod peers;
mod procs;
mod report;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skep-bench-net",
    about = "skep overlay and routing mesh beside the underlay, a direct path and HAProxy"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the lab, run the figures side by side, print markdown tables to stdout, tear everything down
    All(bench::Opts),
    /// An HTTP/1.1 server answering every request with a 1 KiB body (keep-alive unless `Connection: close`)
    Serve {
        /// Repeatable: one process (one thread) serves every address
        #[arg(long, required = true)]
        listen: Vec<SocketAddr>,
        /// Written at the start of every body, so a client can tell the backends apart
        #[arg(long)]
        name: String,
    },
    /// The bench's own client; prints one JSON object
    Load {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, value_enum)]
        mode: http::Mode,
        #[arg(long, default_value_t = 32)]
        conns: usize,
        #[arg(long, default_value_t = 8.0)]
        seconds: f64,
        /// Client address to connect from (repeatable: the workers take them in turn)
        #[arg(long)]
        source: Vec<std::net::IpAddr>,
    },
    /// Kill every process in a skbn-* namespace (by PID) and delete those namespaces
    Cleanup,
}

fn main() {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(async {
        match cli.cmd {
            Cmd::All(opts) => bench::run_all(opts).await,
            Cmd::Serve { listen, name } => http::serve(listen, name).await,
            Cmd::Load {
                target,
                mode,
                conns,
                seconds,
                source,
            } => {
                let r = http::load(target, mode, conns, Duration::from_secs_f64(seconds), &source).await;
                println!("{}", serde_json::to_string(&r.summary().to_json())?);
                Ok(())
            }
            Cmd::Cleanup => {
                let killed = lab::cleanup();
                eprintln!(
                    "cleanup: {} process(es) killed, {} namespace(s) deleted",
                    killed.0, killed.1
                );
                Ok(())
            }
        }
    });
    if let Err(e) = result {
        eprintln!("skep-bench-net: {e:#}");
        std::process::exit(1);
    }
}
