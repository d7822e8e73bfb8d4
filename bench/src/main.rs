//! `skep-bench`: thin CLI over the `skep_bench` library; tables go to stdout, progress to stderr.

use clap::{Args, Parser, Subcommand, ValueEnum};
use skep_bench::{Opts, System};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "skep-bench", about = "skep's store beside etcd 3.4: writes/s, latency, failover, fsync")]
struct Cli {
    /// The skep binary
    #[arg(long, env = "SKEP_BIN", default_value = "/work/main/target/release/skep", global = true)]
    skep_bin: PathBuf,
    /// The etcd binary
    #[arg(long, env = "ETCD_BIN", default_value = "etcd", global = true)]
    etcd_bin: String,
    /// Parent directory of all data directories (one disk for both systems and the fsync probe)
    #[arg(long, default_value = "/tmp", global = true)]
    work_dir: PathBuf,
    /// Keep data directories and logs after the run
    #[arg(long, global = true)]
    keep: bool,
    /// skep cluster port (udp) on 127.0.0.1, .2, .3
    #[arg(long, default_value_t = 24001, global = true)]
    skep_port: u16,
    /// etcd ports: clients base+1..3, peers base+11..13
    #[arg(long, default_value_t = 23780, global = true)]
    etcd_port_base: u16,
    /// Systems to run
    #[arg(long, value_delimiter = ',', default_value = "skep,etcd", global = true)]
    systems: Vec<Sys>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Sys {
    Skep,
    /// skep with its Raft files unencrypted (the A/B for encryption at rest)
    SkepPlaintext,
    Etcd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write throughput and latency, skep then etcd
    Store(StoreArgs),
    /// Leader failover: SIGKILL the leader → first acknowledged write
    Failover(FailoverArgs),
    /// The disk's fsync latency
    Fsync(FsyncArgs),
    /// fsync, store and failover in one run
    All {
        #[command(flatten)]
        store: StoreArgs,
        #[command(flatten)]
        failover: FailoverArgs,
        #[command(flatten)]
        fsync: FsyncArgs,
    },
}

#[derive(Args, Clone)]
struct StoreArgs {
    /// Client counts (closed loop, one connection each)
    #[arg(long, value_delimiter = ',', default_value = "1,64")]
    clients: Vec<usize>,
    /// Measured seconds per point
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Unmeasured seconds before each point
    #[arg(long, default_value_t = 1)]
    warmup: u64,
    /// Value size in bytes
    #[arg(long, default_value_t = 256)]
    value_size: usize,
}

#[derive(Args, Clone)]
struct FailoverArgs {
    /// Trials per system
    #[arg(long, default_value_t = 20)]
    trials: usize,
}

#[derive(Args, Clone)]
struct FsyncArgs {
    /// write + fdatasync rounds per mode
    #[arg(long, default_value_t = 1000)]
    fsync_count: usize,
}

fn main() {
    let cli = Cli::parse();
    let opts = Opts {
        skep_bin: cli.skep_bin.clone(),
        etcd_bin: cli.etcd_bin.clone(),
        work_dir: cli.work_dir.clone(),
        keep: cli.keep,
        skep_port: cli.skep_port,
        etcd_port_base: cli.etcd_port_base,
    };
    let systems: Vec<System> = cli
        .systems
        .iter()
        .map(|s| match s {
            Sys::Skep => System::Skep,
            Sys::SkepPlaintext => System::SkepPlaintext,
            Sys::Etcd => System::Etcd,
        })
        .collect();
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let code = rt.block_on(async {
        let work = run(&opts, &systems, cli.cmd);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
        // On a signal the work future is dropped: its guards kill the members and remove the directories.
        tokio::select! {
            r = work => match r {
                Ok(()) => 0,
                Err(e) => {
                    eprintln!("skep-bench: {e:#}");
                    1
                }
            },
            _ = tokio::signal::ctrl_c() => { eprintln!("skep-bench: interrupted"); 130 }
            _ = term.recv() => { eprintln!("skep-bench: terminated"); 143 }
        }
    });
    drop(rt);
    std::process::exit(code);
}

async fn run(opts: &Opts, systems: &[System], cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Store(a) => println!("{}", store(opts, systems, &a).await?),
        Cmd::Failover(a) => println!("{}", skep_bench::failover(opts, systems, a.trials).await?),
        Cmd::Fsync(a) => println!("{}", skep_bench::fsync(opts, a.fsync_count)?),
        Cmd::All { store: s, failover: f, fsync: y } => {
            println!("{}", machine(opts).await);
            println!("{}", skep_bench::fsync(opts, y.fsync_count)?);
            println!("{}", store(opts, systems, &s).await?);
            println!("{}", skep_bench::failover(opts, systems, f.trials).await?);
            println!("load average at the end: {}", loadavg());
        }
    }
    Ok(())
}

async fn store(opts: &Opts, systems: &[System], a: &StoreArgs) -> anyhow::Result<String> {
    skep_bench::store(
        opts,
        systems,
        &a.clients,
        a.value_size,
        Duration::from_secs(a.warmup),
        Duration::from_secs(a.seconds),
    )
    .await
}

/// nproc, kernel and etcd version, for the record.
async fn machine(opts: &Opts) -> String {
    let q = |argv: &[&str]| {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        async move { skep_bench::proc::run(&argv, Duration::from_secs(10)).await.unwrap_or_else(|e| format!("? ({e})")) }
    };
    let etcd = q(&[&opts.etcd_bin, "--version"]).await;
    format!(
        "### Machine\n\nnproc {}; kernel {}; {}; skep {}; load average at the start: {}\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        q(&["uname", "-r"]).await,
        etcd.lines().next().unwrap_or(""),
        opts.skep_bin.display(),
        loadavg(),
    )
}

/// `/proc/loadavg`: other work on the machine skews every figure, so the run records it.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.trim().to_string()).unwrap_or_default()
}
