//! Three `skep daemon`s on 127.0.0.1-3 (cluster port `port`/udp), joined as managers with the `skep` CLI; writes
//! are `POST /skep/kv/{key}` on a daemon's unix socket.

use super::{Value, MEMBERS};
use crate::http::{json_once, Endpoint, Req};
use crate::proc::{run, Member};
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct SkepCluster {
    bin: PathBuf,
    /// Data roots (each holds `skep.sock` and `daemon.log`).
    dirs: Vec<PathBuf>,
    members: Vec<Member>,
    /// Cluster (QUIC) port, the same on each loopback address.
    port: u16,
    /// Raft log and snapshots without encryption at rest (the A/B comparison's other side).
    plaintext: bool,
}

pub fn put_req(key: &str, value: &Value) -> Req {
    Req {
        method: hyper::Method::POST,
        path: format!("/skep/kv/{key}"),
        content_type: "application/octet-stream",
        body: value.raw.clone(),
    }
}

/// `POST /configs/create` of a config named `name` holding `value` (the Docker API's control path: a linearizable
/// read, then a proposal).
pub fn config_create_req(name: &str, value: &Value) -> Req {
    Req {
        method: hyper::Method::POST,
        path: "/configs/create".into(),
        content_type: "application/json",
        body: serde_json::json!({ "Name": name, "Data": value.base64 }).to_string().into(),
    }
}

impl SkepCluster {
    /// Starts three daemons under `root`, `swarm init` on the first, `swarm join` as managers on the others; with
    /// `plaintext`, their Raft files are not encrypted (the daemon's benchmark switch, see docs/design/security.md).
    pub async fn start(bin: &Path, root: &Path, port: u16, plaintext: bool) -> anyhow::Result<SkepCluster> {
        let mut c = SkepCluster { bin: bin.to_owned(), dirs: Vec::new(), members: Vec::new(), port, plaintext };
        for i in 0..MEMBERS {
            let dir = root.join(format!("skep{}", i + 1));
            std::fs::create_dir_all(&dir)?;
            let argv = vec![
                bin.display().to_string(),
                "daemon".into(),
                "--data-root".into(),
                dir.display().to_string(),
                "-H".into(),
                format!("unix://{}", dir.join("skep.sock").display()),
            ];
            // `SKEP_BENCH_LOG` sets the daemons' RUST_LOG (e.g. to see elections with `--keep`)
            let log = std::env::var("SKEP_BENCH_LOG").unwrap_or_else(|_| "warn".into());
            let mut env = vec![("RUST_LOG".to_string(), log)];
            if plaintext {
                env.push(("SKEP_BENCH_PLAINTEXT_RAFT".to_string(), "1".to_string()));
            }
            c.members.push(Member::new(&format!("skep-{}", i + 1), argv, env, dir.join("daemon.log")));
            c.dirs.push(dir);
        }
        for i in 0..MEMBERS {
            c.members[i].start()?;
        }
        for i in 0..MEMBERS {
            c.wait_api(i, Duration::from_secs(20)).await?;
        }
        let addr0 = c.addr(0);
        c.cli(0, &["swarm", "init", "--advertise-addr", &addr0, "--listen-addr", &addr0]).await?;
        let token = c.cli(0, &["swarm", "join-token", "-q", "manager"]).await?;
        for i in 1..MEMBERS {
            let a = c.addr(i);
            c.cli(i, &["swarm", "join", "--token", &token, "--advertise-addr", &a, "--listen-addr", &a, &addr0]).await?;
        }
        Ok(c)
    }

    /// `skep`, or `skep-plaintext` without encryption at rest.
    pub fn name(&self) -> &'static str {
        if self.plaintext {
            "skep-plaintext"
        } else {
            "skep"
        }
    }

    /// `127.0.0.<i+1>:<port>`.
    fn addr(&self, i: usize) -> String {
        format!("127.0.0.{}:{}", i + 1, self.port)
    }

    pub fn endpoint(&self, i: usize) -> Endpoint {
        Endpoint::Unix(self.dirs[i].join("skep.sock"))
    }

    pub fn member_mut(&mut self, i: usize) -> &mut Member {
        &mut self.members[i]
    }

    async fn cli(&self, i: usize, args: &[&str]) -> anyhow::Result<String> {
        let mut argv = vec![self.bin.display().to_string(), "-H".into()];
        argv.push(format!("unix://{}", self.dirs[i].join("skep.sock").display()));
        argv.extend(args.iter().map(|s| s.to_string()));
        run(&argv, Duration::from_secs(30)).await.with_context(|| format!("skep-{}", i + 1))
    }

    /// Waits until `GET /_ping` answers on member `i`.
    async fn wait_api(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let ping = Req { method: hyper::Method::GET, path: "/_ping".into(), content_type: "text/plain", body: Default::default() };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.members[i].check_alive()?;
            let ep = self.endpoint(i);
            let ok = tokio::time::timeout(Duration::from_secs(1), async {
                let mut c = crate::http::Conn::connect(&ep).await?;
                c.send(&ping).await
            })
            .await;
            if let Ok(Ok((200, _))) = ok {
                return Ok(());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "skep-{} API not up after {timeout:?}", i + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].start()?;
        self.wait_api(i, Duration::from_secs(20)).await
    }

    /// `GET /nodes` on member `i`: `(addr, leader, reachability)` of each manager.
    async fn managers(&self, i: usize) -> anyhow::Result<Vec<(String, bool, String)>> {
        let req = Req { method: hyper::Method::GET, path: "/nodes".into(), content_type: "application/json", body: Default::default() };
        let v = json_once(&self.endpoint(i), &req, Duration::from_secs(2)).await?;
        let nodes = v.as_array().context("/nodes is not an array")?;
        Ok(nodes
            .iter()
            .filter_map(|n| {
                let ms = n.get("ManagerStatus")?;
                Some((
                    ms.get("Addr")?.as_str()?.to_string(),
                    ms.get("Leader").and_then(|l| l.as_bool()).unwrap_or(false),
                    ms.get("Reachability").and_then(|r| r.as_str()).unwrap_or("").to_string(),
                ))
            })
            .collect())
    }

    /// The leader as reported by the first running member that answers `GET /nodes`.
    pub async fn leader(&self) -> anyhow::Result<usize> {
        let mut last = anyhow::anyhow!("no member running");
        for i in 0..MEMBERS {
            if !self.members[i].is_started() {
                continue;
            }
            match self.managers(i).await {
                Ok(ms) => {
                    let leaders: Vec<&String> = ms.iter().filter(|m| m.1).map(|m| &m.0).collect();
                    anyhow::ensure!(leaders.len() == 1, "skep-{} reports leaders {leaders:?}", i + 1);
                    return (0..MEMBERS)
                        .find(|&j| &self.addr(j) == leaders[0])
                        .with_context(|| format!("leader address {} is not a member", leaders[0]));
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Every member lists 3 managers, all reachable, with the same single leader.
    pub async fn check_healthy(&self) -> anyhow::Result<()> {
        let mut seen = None;
        for i in 0..MEMBERS {
            let ms = self.managers(i).await.with_context(|| format!("GET /nodes on skep-{}", i + 1))?;
            anyhow::ensure!(ms.len() == MEMBERS, "skep-{} lists {} managers", i + 1, ms.len());
            anyhow::ensure!(ms.iter().all(|m| m.2 == "reachable"), "skep-{} sees {ms:?}", i + 1);
            let leaders: Vec<&String> = ms.iter().filter(|m| m.1).map(|m| &m.0).collect();
            anyhow::ensure!(leaders.len() == 1, "skep-{} reports leaders {leaders:?}", i + 1);
            match &seen {
                None => seen = Some(leaders[0].clone()),
                Some(l) => anyhow::ensure!(l == leaders[0], "members disagree on the leader: {l} vs {}", leaders[0]),
            }
        }
        Ok(())
    }
}
