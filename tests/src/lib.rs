//! Multi-host tests for skep: every "host" is a Linux network namespace, every node a real `skep daemon`.
//!
//! # Why network namespaces
//! A swarm is only trustworthy once real processes on distinct addresses have elected leaders, survived
//! `SIGKILL`, and lost their network. Containers or VMs would make that slow and need a runtime; a network
//! namespace is a full, private network stack that costs a few milliseconds to create. So each test builds
//! its own tiny LAN:
//!
//! - a *switch* namespace holding one Linux bridge (never in the root namespace, so nothing the test does
//!   touches the machine's own links or routes);
//! - one namespace per host with `lo` and one veth (`eth0`) plugged into that bridge, one IPv4 address
//!   `10.213.X.i/24`, and **no default route**: traffic can only go to loopback or to the other hosts of the
//!   same test;
//! - the filesystem stays shared, so the test process (in the root namespace) reaches each daemon through
//!   its unix socket under the host's data directory.
//!
//! Names carry the test process id and a per-process counter (`skt-<pid>-<n>-…`), so parallel test
//! processes (nextest) and parallel tests in one process (`cargo test`) never clash. Everything is removed
//! on `Drop`, also while unwinding from a panic; [`cleanup_stale`] removes what a killed run left behind.
//!
//! # Layout
//! - [`netns`]: [`Netns`] (RAII namespace), [`Switch`] (the bridge namespace), [`cleanup_stale`], root checks.
//! - [`process`]: running commands with a time bound ([`run`], [`Output`]), [`Proc`] (a process group killed
//!   on drop).
//! - [`daemon`]: [`Daemon`]: spawn, SIGKILL, SIGTERM-then-SIGKILL, restart with the same data root, log tail.
//! - [`browser`]: a headless Chromium in a host's namespace, driven over the DevTools protocol (the web view's test).
//! - [`cluster`]: [`Host`] and [`Cluster`]: hosts on a switch, daemons, `skep`/`docker` clients, swarm helpers;
//!   [`cluster::slot`] caps how many clusters run daemons at once (env `SKEP_TEST_MAX_CLUSTERS`, default 2).
//! - [`faults`]: a daemon frozen with `SIGSTOP` ([`faults::Paused`]), links between two hosts cut or lossy (nftables).
//! - [`delay`]: delay, jitter and loss on the UDP traffic between two hosts ([`Cluster::delay_link`]), by a relay in
//!   the test process behind a TUN device in the sending host.
//! - [`engine`]: the machine's Docker engine and the test image, for tests of the `docker` engine.
//! - [`files`]: where daemons put their tasks' secret and config files (tmpfs mounts, `/dev/shm`).
//! - [`json`]: small helpers to read the CLI's JSON output.
//! - [`registers`]: clients reading and writing registers through several managers, their history checked by
//!   [`linearizability`].
//! - [`relay`]: [`relay::LoopbackRelay`], a port of the root namespace's loopback reachable on a host's loopback
//!   (a registry both the machine's Docker engine and the hosts pull from by one address).
//! - [`rng`]: [`rng::Rng`], the seedable generator behind the harness's random choices (printed seeds replay them).
//! - [`services`]: the daemon's HTTP API over its socket, services and tasks (waits, counts, duplicate slots), and
//!   the processes a host's `process` engine runs for tasks.
//! - [`wait`]: [`wait_until`], the only way tests wait (bounded in time and tries).
//!
//! # Running
//! The tests need root (or CAP_NET_ADMIN + CAP_SYS_ADMIN) and `ip netns`; without them each test prints
//! `skipped: needs root and ip netns` and passes. The `skep` binary is found through [`skep_bin`].
#![deny(rust_2018_idioms)]
#![warn(missing_docs)]

pub mod browser;
pub mod cluster;
pub mod daemon;
pub mod delay;
pub mod engine;
pub mod faults;
pub mod files;
pub mod invariants;
pub mod json;
pub mod linearizability;
pub mod netns;
pub mod process;
pub mod registers;
pub mod relay;
pub mod rng;
pub mod services;
pub mod wait;

pub use cluster::{Cluster, Host, Role};
pub use daemon::Daemon;
pub use netns::{cleanup_stale, require_root_and_netns, Netns, Switch};
pub use process::{run, Output, Proc};
pub use wait::{wait_until, wait_until_every};

use std::path::PathBuf;

/// Prefix of every namespace and directory the harness creates; [`cleanup_stale`] only touches names with it.
pub const PREFIX: &str = "skt-";

/// The `skep` binary under test.
///
/// Looked up in order: env `SKEP_BIN`; `$CARGO_TARGET_DIR/debug/skep`; `<workspace>/target/debug/skep`.
/// The error tells how to build it.
pub fn skep_bin() -> anyhow::Result<PathBuf> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os("SKEP_BIN") {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        anyhow::bail!("SKEP_BIN={} is not a file", p.display());
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        tried.push(PathBuf::from(t).join("debug/skep"));
    }
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    tried.push(workspace.join("target/debug/skep"));
    for p in &tried {
        if p.is_file() {
            return Ok(p.clone());
        }
    }
    anyhow::bail!(
        "skep binary not found (tried SKEP_BIN, {}); build it with `cargo build -p skep-cli` or set SKEP_BIN",
        tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
    )
}

/// The stock docker CLI: env `DOCKER_BIN`, else `/usr/local/bin/docker`, else `docker` on `PATH`.
pub fn docker_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("DOCKER_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from("/usr/local/bin/docker");
    if p.is_file() {
        return p;
    }
    find_in_path("docker").unwrap_or_else(|| PathBuf::from("docker"))
}

/// First `name` found in the directories of `PATH`.
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}
