//! skep-bench: skep's replicated store beside etcd 3.4 on one machine, 3 members each, everything on loopback.
//! It measures write throughput and latency (closed-loop clients over keep-alive HTTP/1.1), leader failover
//! (`SIGKILL` the leader → first acknowledged write) and the disk's fsync latency, and prints markdown tables with
//! the skep/etcd ratios. It reports figures; it never asserts timings. Every loop is bounded in count and time,
//! and member processes and temp directories are removed on every exit path (drop guards).
//!
//! # Layout
//! - [`http`]: one keep-alive HTTP/1.1 connection (hyper) over a unix socket or loopback TCP.
//! - [`proc`]: scratch directories and member processes (killed and removed on drop).
//! - [`cluster`]: a 3-member cluster of skep ([`cluster::skep`]) or etcd ([`cluster::etcd`]) behind one enum.
//! - [`store`]: the throughput/latency load.
//! - [`failover`]: the failover trials.
//! - [`fsync`]: the disk's fsync latency.
//! - [`report`]: the tables.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod cluster;
pub mod failover;
pub mod fsync;
pub mod http;
pub mod proc;
pub mod report;
pub mod store;

use cluster::Cluster;
use proc::Scratch;
use std::path::PathBuf;
use std::time::Duration;

/// Where the binaries are and where data goes; shared by every subcommand.
#[derive(Debug, Clone)]
pub struct Opts {
    pub skep_bin: PathBuf,
    pub etcd_bin: String,
    /// Parent of the scratch directories (data dirs of all members and the fsync probe: one disk for all).
    pub work_dir: PathBuf,
    /// Keep scratch directories (logs, data) after the run.
    pub keep: bool,
    /// skep cluster port on 127.0.0.1-3 (udp).
    pub skep_port: u16,
    /// etcd ports: clients `base+1..3`, peers `base+11..13` (tcp, 127.0.0.1).
    pub etcd_port_base: u16,
}

/// Which systems a subcommand runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum System {
    Skep,
    /// skep without encryption at rest (to measure its cost).
    SkepPlaintext,
    Etcd,
}

/// Starts a fresh 3-member cluster of `system` in `scratch` and waits until it is healthy.
pub async fn start_cluster(opts: &Opts, system: System, scratch: &Scratch) -> anyhow::Result<Cluster> {
    let mut c = match system {
        System::Skep | System::SkepPlaintext => {
            let plaintext = system == System::SkepPlaintext;
            let c = cluster::skep::SkepCluster::start(&opts.skep_bin, scratch.path(), opts.skep_port, plaintext).await?;
            Cluster::Skep(c)
        }
        System::Etcd => Cluster::Etcd(cluster::etcd::EtcdCluster::start(&opts.etcd_bin, scratch.path(), opts.etcd_port_base).await?),
    };
    c.wait_healthy(Duration::from_secs(60)).await?;
    Ok(c)
}

/// Store throughput/latency for each system and client count; returns the table.
pub async fn store(
    opts: &Opts,
    systems: &[System],
    clients: &[usize],
    value_size: usize,
    warmup: Duration,
    seconds: Duration,
) -> anyhow::Result<String> {
    let mut points = Vec::new();
    for &sys in systems {
        let scratch = Scratch::new(&opts.work_dir, &format!("store-{sys:?}").to_lowercase(), opts.keep)?;
        let mut c = start_cluster(opts, sys, &scratch).await?;
        let leader = c.leader().await?;
        eprintln!("{}: cluster up, leader is member {}", c.name(), leader + 1);
        for &n in clients {
            let p = store::run_point(&c, leader, n, value_size, warmup, seconds).await?;
            eprintln!(
                "{} clients={n}: {:.0} writes/s, p50 {:.2} ms, p99 {:.2} ms, errors {}{}",
                c.name(),
                p.writes_per_sec(),
                p.hist.value_at_quantile(0.5) as f64 / 1000.0,
                p.hist.value_at_quantile(0.99) as f64 / 1000.0,
                p.errors,
                p.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
            );
            points.push(p);
        }
        let after = c.leader().await?;
        if after != leader {
            eprintln!("WARNING: {} leader changed during the run ({} -> {})", c.name(), leader + 1, after + 1);
        }
        c.stop().await;
    }
    Ok(report::store_table(&points, value_size, seconds))
}

/// Failover trials for each system; returns the table.
pub async fn failover(opts: &Opts, systems: &[System], trials: usize) -> anyhow::Result<String> {
    let mut rows = Vec::new();
    for &sys in systems {
        let scratch = Scratch::new(&opts.work_dir, &format!("failover-{sys:?}").to_lowercase(), opts.keep)?;
        let mut c = start_cluster(opts, sys, &scratch).await?;
        let t = failover::run(&mut c, trials, |l| eprintln!("{l}")).await?;
        c.stop().await;
        rows.push((sys, t));
    }
    Ok(report::failover_table(&rows))
}

/// The disk's fsync latency in the work directory; returns the table.
pub fn fsync(opts: &Opts, count: usize) -> anyhow::Result<String> {
    let scratch = Scratch::new(&opts.work_dir, "fsync", false)?;
    let rows = fsync::run(scratch.path(), count)?;
    Ok(report::fsync_table(&rows, count))
}
