//! A cluster of real `skep daemon`s on 127.0.0.1, .2, .3 …, set up with the `skep` CLI.

use crate::procs::{Daemon, Scratch};
use anyhow::Context as _;
use skep_api::docker::{Node, NodeRole, NodeState};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub struct Cluster {
    pub daemons: Vec<Daemon>,
    /// Join tokens (worker, manager).
    pub tokens: (String, String),
}

impl Cluster {
    /// Starts `roles.len()` daemons (`roles[0]` must be a manager: it runs `swarm init` with `init_extra`), each at
    /// `127.0.0.<i+1>:<port>` with data root `<scratch>/<prefix><i+1>`.
    pub async fn start(
        bin: &Path,
        scratch: &Scratch,
        prefix: &str,
        port: u16,
        engine: &str,
        roles: &[NodeRole],
        init_extra: &[&str],
    ) -> anyhow::Result<Cluster> {
        anyhow::ensure!(roles.first() == Some(&NodeRole::Manager), "the first daemon must be a manager");
        let mut daemons = Vec::new();
        for i in 0..roles.len() {
            let name = format!("{prefix}{}", i + 1);
            let dir: PathBuf = scratch.path.join(&name);
            daemons.push(Daemon::start(bin, &name, dir, &format!("127.0.0.{}:{port}", i + 1), engine)?);
        }
        let mut c = Cluster { daemons, tokens: Default::default() };
        for d in c.daemons.iter_mut() {
            d.wait_api(Duration::from_secs(20)).await?;
        }
        let a0 = c.daemons[0].addr.clone();
        let mut init = vec!["swarm", "init", "--advertise-addr", &a0, "--listen-addr", &a0];
        init.extend(init_extra);
        // managers that join get the same availability as the first
        let availability = init_extra.iter().position(|x| *x == "--availability").and_then(|i| init_extra.get(i + 1)).copied();
        c.daemons[0].cli(&init).await?;
        let worker = c.daemons[0].cli(&["swarm", "join-token", "-q", "worker"]).await?;
        let manager = c.daemons[0].cli(&["swarm", "join-token", "-q", "manager"]).await?;
        for (i, role) in roles.iter().enumerate().skip(1) {
            let token = if *role == NodeRole::Manager { &manager } else { &worker };
            let a = c.daemons[i].addr.clone();
            let mut args = vec!["swarm", "join", "--token", token, "--advertise-addr", &a, "--listen-addr", &a];
            if let (Some(av), NodeRole::Manager) = (availability, role) {
                args.extend(["--availability", av]);
            }
            args.push(&a0);
            c.daemons[i].cli(&args).await?;
        }
        c.tokens = (worker, manager);
        Ok(c)
    }

    pub fn sock(&self, i: usize) -> &Path {
        &self.daemons[i].sock
    }

    /// Every node, as daemon `i` lists them.
    pub async fn nodes(&self, i: usize) -> anyhow::Result<Vec<Node>> {
        let v = crate::http::get_json(self.sock(i), "/nodes", Duration::from_secs(10)).await?;
        serde_json::from_value(v).context("/nodes is not a list of nodes")
    }

    /// Waits until daemon `i` lists at least `n` nodes, all ready (polling every `every`, bounded).
    pub async fn wait_ready(&self, i: usize, n: usize, every: Duration, timeout: Duration) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        let mut last;
        loop {
            match self.nodes(i).await {
                Ok(ns) => {
                    let ready = ns.iter().filter(|n| n.status.state == NodeState::Ready).count();
                    if ns.len() >= n && ready == ns.len() {
                        return Ok(t0.elapsed());
                    }
                    last = format!("{} nodes listed, {ready} ready", ns.len());
                }
                Err(e) => last = format!("{e:#}"),
            }
            anyhow::ensure!(t0.elapsed() < timeout, "not {n} ready nodes after {timeout:?}: {last}");
            tokio::time::sleep(every).await;
        }
    }

    /// The node ID of daemon `i` (from `GET /info`).
    pub async fn node_id(&self, i: usize) -> anyhow::Result<String> {
        let v = crate::http::get_json(self.sock(i), "/info", Duration::from_secs(10)).await?;
        Ok(v.pointer("/Swarm/NodeID").and_then(|x| x.as_str()).context("no Swarm.NodeID")?.to_string())
    }

    /// SIGTERM every daemon still running (SIGKILL after 5 s).
    pub async fn stop_all(&mut self) {
        for d in self.daemons.iter_mut() {
            d.stop(Duration::from_secs(5)).await;
        }
    }

    /// Log problems of every daemon, as markdown lines.
    pub fn problems(&self) -> String {
        let mut s = String::new();
        for d in &self.daemons {
            for (n, l) in d.log_problems(8) {
                s.push_str(&format!("- {} ×{n}: `{}`\n", d.name, l.replace('`', "'")));
            }
        }
        s
    }
}

/// Elapsed seconds, 2 decimals.
pub fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}
