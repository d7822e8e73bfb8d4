//! Three etcd members on 127.0.0.1 (client ports `base+1..3`, peer ports `base+11..13`), default heartbeat and
//! election timeouts and default WAL fsync; writes go through the v3 JSON gateway (`POST /v3/kv/put`).

use super::{Value, MEMBERS};
use crate::http::{json_once, Endpoint, Req};
use crate::proc::Member;
use anyhow::Context as _;
use base64::Engine as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

pub struct EtcdCluster {
    members: Vec<Member>,
    client_ports: Vec<u16>,
}

pub fn put_req(key: &str, value: &Value) -> Req {
    let k = base64::engine::general_purpose::STANDARD.encode(key);
    Req {
        method: hyper::Method::POST,
        path: "/v3/kv/put".into(),
        content_type: "application/json",
        body: format!("{{\"key\":\"{k}\",\"value\":\"{}\"}}", value.base64).into(),
    }
}

impl EtcdCluster {
    /// Starts the three members (`--initial-cluster-state new`) and waits until each answers its status.
    pub async fn start(bin: &str, root: &Path, base: u16) -> anyhow::Result<EtcdCluster> {
        let client_ports: Vec<u16> = (0..MEMBERS as u16).map(|i| base + 1 + i).collect();
        let peer_ports: Vec<u16> = (0..MEMBERS as u16).map(|i| base + 11 + i).collect();
        let initial = (0..MEMBERS)
            .map(|i| format!("e{}=http://127.0.0.1:{}", i + 1, peer_ports[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for i in 0..MEMBERS {
            let dir = root.join(format!("etcd{}", i + 1));
            std::fs::create_dir_all(&dir)?;
            let client = format!("http://127.0.0.1:{}", client_ports[i]);
            let peer = format!("http://127.0.0.1:{}", peer_ports[i]);
            let argv: Vec<String> = [
                bin,
                "--name",
                &format!("e{}", i + 1),
                "--data-dir",
                &dir.join("data").display().to_string(),
                "--listen-client-urls",
                &client,
                "--advertise-client-urls",
                &client,
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
                "--initial-cluster",
                &initial,
                "--initial-cluster-token",
                "skep-bench",
                "--initial-cluster-state",
                "new",
                "--logger",
                "zap",
                "--log-level",
                "warn",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            members.push(Member::new(&format!("etcd-{}", i + 1), argv, Vec::new(), dir.join("etcd.log")));
        }
        let mut c = EtcdCluster { members, client_ports };
        for i in 0..MEMBERS {
            c.members[i].start()?;
        }
        for i in 0..MEMBERS {
            c.wait_api(i, Duration::from_secs(20)).await?;
        }
        Ok(c)
    }

    pub fn endpoint(&self, i: usize) -> Endpoint {
        Endpoint::Tcp(SocketAddr::from(([127, 0, 0, 1], self.client_ports[i])))
    }

    pub fn member_mut(&mut self, i: usize) -> &mut Member {
        &mut self.members[i]
    }

    /// `POST /v3/maintenance/status` on member `i`: `(member_id, leader_id)`.
    async fn status(&self, i: usize) -> anyhow::Result<(String, String)> {
        let req = Req {
            method: hyper::Method::POST,
            path: "/v3/maintenance/status".into(),
            content_type: "application/json",
            body: "{}".into(),
        };
        let v = json_once(&self.endpoint(i), &req, Duration::from_secs(2)).await?;
        let id = v.pointer("/header/member_id").and_then(|x| x.as_str()).context("no header.member_id")?.to_string();
        let leader = v.get("leader").and_then(|x| x.as_str()).unwrap_or("0").to_string();
        Ok((id, leader))
    }

    async fn wait_api(&mut self, i: usize, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            self.members[i].check_alive()?;
            if self.status(i).await.is_ok() {
                return Ok(());
            }
            anyhow::ensure!(tokio::time::Instant::now() < deadline, "etcd-{} API not up after {timeout:?}", i + 1);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        self.members[i].start()?;
        self.wait_api(i, Duration::from_secs(20)).await
    }

    /// Statuses of the running members, indexed by member.
    async fn statuses(&self) -> Vec<Option<(String, String)>> {
        let mut out = Vec::new();
        for i in 0..MEMBERS {
            out.push(if self.members[i].is_started() { self.status(i).await.ok() } else { None });
        }
        out
    }

    pub async fn leader(&self) -> anyhow::Result<usize> {
        let st = self.statuses().await;
        let leader = st.iter().flatten().map(|s| s.1.clone()).find(|l| l != "0").context("no member knows a leader")?;
        st.iter()
            .position(|s| s.as_ref().is_some_and(|s| s.0 == leader))
            .with_context(|| format!("leader {leader} is not a running member"))
    }

    /// Every member answers and all name the same, non-zero leader.
    pub async fn check_healthy(&self) -> anyhow::Result<()> {
        let mut seen: Option<String> = None;
        for i in 0..MEMBERS {
            let (_, l) = self.status(i).await.with_context(|| format!("status of etcd-{}", i + 1))?;
            anyhow::ensure!(l != "0", "etcd-{} has no leader", i + 1);
            match &seen {
                None => seen = Some(l),
                Some(s) => anyhow::ensure!(*s == l, "members disagree on the leader"),
            }
        }
        Ok(())
    }
}
