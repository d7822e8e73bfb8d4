//! The invariants of a service that the fault cases check besides the store's history (`registers`): a service runs
//! on a worker that no fault touches while the managers are faulted, and
//! - never more than its replica count of task programs run at once (sampled on the worker host throughout the case,
//!   so a leader change that made the new leader's orchestrator start extra tasks would be seen);
//! - once the faults are healed, exactly that many run, and the API agrees with the programs on the hosts;
//! - no two live tasks hold one overlay address;
//! - no live task is on a drained node (the managers are drained, so nothing the orchestrator does under a fault may
//!   place a task on one).
//!
//! Managers are the ones faulted, so the tasks run only on the worker: a task program that keeps running on a cut-off
//! node while its replacement starts elsewhere is Docker's behaviour too (availability first) and is not what these
//! invariants are about.

use crate::cluster::Cluster;
use crate::json::{at, str_at};
use crate::services::{is_live, node_of, running};
use anyhow::{ensure, Context as _};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// The watched service's name; its tasks run `sleep` with this marker in the command line.
pub const SERVICE: &str = "inv";
const NETWORK: &str = "inv-net";
const MARKER: &str = "86400";
/// Replicas of the watched service.
pub const REPLICAS: usize = 3;
/// How long the watched service may take to settle after a case.
const SETTLE: Duration = Duration::from_secs(60);
/// How often the worker's task programs are counted.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// A service watched through a fault case.
pub struct ServiceWatch {
    /// Host indexes of the managers (drained).
    managers: Vec<usize>,
    /// Host index of the worker that runs the tasks.
    worker: usize,
    /// Most task programs seen at once on the worker.
    max_seen: AtomicUsize,
    /// Samples taken.
    samples: AtomicUsize,
}

impl ServiceWatch {
    /// Drains the managers (`managers`, through host `managers[0]`), creates the watched service on an overlay
    /// network, and waits until its [`REPLICAS`] tasks run on `worker`.
    pub fn start(c: &Cluster, managers: &[usize], worker: usize) -> anyhow::Result<ServiceWatch> {
        let via = managers[0];
        for &m in managers {
            let id = c.node_id(m)?;
            c.docker(via, &["node", "update", "--availability", "drain", &id])?.ok().context("draining a manager")?;
        }
        c.skep_ok(via, &["network", "create", "-d", "overlay", NETWORK])?;
        let replicas = REPLICAS.to_string();
        c.skep_ok(
            via,
            &["service", "create", "-d", "--name", SERVICE, "--replicas", &replicas, "--network", NETWORK, "busybox",
                "sleep", MARKER],
        )?;
        c.wait_running(via, SERVICE, REPLICAS, Duration::from_secs(60))?;
        Ok(ServiceWatch {
            managers: managers.to_vec(),
            worker,
            max_seen: AtomicUsize::new(0),
            samples: AtomicUsize::new(0),
        })
    }

    /// Counts the worker's task programs every [`SAMPLE_EVERY`] until `stop` is set (run it on its own thread).
    pub fn sample_until(&self, c: &Cluster, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.sample(c);
            std::thread::sleep(SAMPLE_EVERY);
        }
    }

    /// Counts the worker's task programs once.
    pub fn sample(&self, c: &Cluster) {
        let n = c.task_processes_matching(self.worker, MARKER).len();
        self.max_seen.fetch_max(n, Ordering::Relaxed);
        self.samples.fetch_add(1, Ordering::Relaxed);
    }

    /// After the case: the sampled maximum, then (waiting up to [`SETTLE`] for the swarm to settle) exactly
    /// [`REPLICAS`] running, matching the programs, on distinct addresses, none on a drained node.
    pub fn check(&self, c: &Cluster) -> anyhow::Result<()> {
        let max = self.max_seen.load(Ordering::Relaxed);
        let samples = self.samples.load(Ordering::Relaxed);
        eprintln!("service invariants: at most {max} of {REPLICAS} task programs at once in {samples} samples");
        ensure!(max <= REPLICAS, "{max} task programs of a {REPLICAS}-replica service ran at once during the case");
        let mut ids: Vec<String> = Vec::new();
        for i in 0..c.len() {
            ids.push(if self.managers.contains(&i) || i == self.worker { c.node_id(i)? } else { String::new() });
        }
        let drained: Vec<&String> = self.managers.iter().map(|&m| &ids[m]).collect();
        let via = self.managers[0];
        crate::wait_until("the watched service to settle with its invariants", SETTLE, || -> anyhow::Result<()> {
            let tasks = c.tasks(via, SERVICE)?;
            ensure!(running(&tasks).len() == REPLICAS, "{} running", running(&tasks).len());
            let live: Vec<&Value> = tasks.iter().filter(|t| is_live(t)).collect();
            ensure!(live.len() == REPLICAS, "{} live tasks", live.len());
            for t in &live {
                ensure!(!drained.iter().any(|d| **d == node_of(t)), "a live task on a drained manager: {t}");
            }
            let mut addrs: BTreeMap<String, String> = BTreeMap::new();
            for t in &live {
                let id = str_at(t, "ID").unwrap_or_default().to_owned();
                for a in task_addresses(t) {
                    if let Some(other) = addrs.insert(a.clone(), id.clone()) {
                        anyhow::bail!("tasks {other} and {id} both hold {a}");
                    }
                }
            }
            ensure!(addrs.len() >= REPLICAS, "{} overlay addresses for {REPLICAS} tasks", addrs.len());
            c.processes_match_tasks(&ids, MARKER, &tasks, REPLICAS)
        })?;
        eprintln!("service invariants: hold");
        Ok(())
    }
}

/// The addresses of a task's network attachments (`NetworksAttachments[].Addresses[]`, CIDR).
fn task_addresses(t: &Value) -> Vec<String> {
    at(t, "NetworksAttachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|n| at(n, "Addresses").and_then(Value::as_array))
        .flatten()
        .filter_map(|a| a.as_str().map(str::to_owned))
        .collect()
}
