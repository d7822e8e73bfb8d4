//! A 3-member cluster of one system under test, driven the same way for skep and etcd: start, find the leader,
//! build a write request, kill and restart a member, wait until healthy.

pub mod etcd;
pub mod skep;

use crate::http::{Endpoint, Req};
use std::time::Duration;

/// Members per cluster.
pub const MEMBERS: usize = 3;

/// The system under test.
pub enum Cluster {
    Skep(skep::SkepCluster),
    Etcd(etcd::EtcdCluster),
}

impl Cluster {
    pub fn name(&self) -> &'static str {
        match self {
            Cluster::Skep(c) => c.name(),
            Cluster::Etcd(_) => "etcd",
        }
    }

    /// Client API of member `i`.
    pub fn endpoint(&self, i: usize) -> Endpoint {
        match self {
            Cluster::Skep(c) => c.endpoint(i),
            Cluster::Etcd(c) => c.endpoint(i),
        }
    }

    /// A request that writes `value` under `key`.
    pub fn put_req(&self, key: &str, value: &Value) -> Req {
        match self {
            Cluster::Skep(_) => skep::put_req(key, value),
            Cluster::Etcd(_) => etcd::put_req(key, value),
        }
    }

    /// A write as a user's command makes it: skep, a Docker API write that reads then proposes (`POST
    /// /configs/create` named `key`, like `docker config create`); etcd, the same put as [`Cluster::put_req`].
    pub fn client_write_req(&self, key: &str, value: &Value) -> Req {
        match self {
            Cluster::Skep(_) => skep::config_create_req(key, value),
            Cluster::Etcd(_) => etcd::put_req(key, value),
        }
    }

    /// Index of the current leader, asked of every running member (bounded).
    pub async fn leader(&self) -> anyhow::Result<usize> {
        match self {
            Cluster::Skep(c) => c.leader().await,
            Cluster::Etcd(c) => c.leader().await,
        }
    }

    /// `SIGKILL` member `i` and reap it.
    pub async fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Cluster::Skep(c) => c.member_mut(i).kill().await,
            Cluster::Etcd(c) => c.member_mut(i).kill().await,
        }
    }

    /// Starts member `i` again on its data directory and waits until its API answers.
    pub async fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        match self {
            Cluster::Skep(c) => c.restart(i).await,
            Cluster::Etcd(c) => c.restart(i).await,
        }
    }

    /// Waits (bounded by `timeout`) until every member is up, there is one leader all agree on, and a write through
    /// every member succeeds.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = anyhow::anyhow!("not checked");
        let mut n = 0u64;
        while tokio::time::Instant::now() < deadline {
            for i in 0..MEMBERS {
                match self {
                    Cluster::Skep(c) => c.member_mut(i).check_alive()?,
                    Cluster::Etcd(c) => c.member_mut(i).check_alive()?,
                }
            }
            let r = match self {
                Cluster::Skep(c) => c.check_healthy().await,
                Cluster::Etcd(c) => c.check_healthy().await,
            };
            match r {
                Ok(()) => match self.write_through_all(n).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = e,
                },
                Err(e) => last = e,
            }
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        anyhow::bail!("{} cluster not healthy after {timeout:?}: {last:#}", self.name())
    }

    /// `SIGKILL`s and reaps every member (drop does the same without waiting).
    pub async fn stop(&mut self) {
        for i in 0..MEMBERS {
            let r = match self {
                Cluster::Skep(c) => c.member_mut(i).kill().await,
                Cluster::Etcd(c) => c.member_mut(i).kill().await,
            };
            if let Err(e) = r {
                eprintln!("stopping {} member {}: {e:#}", self.name(), i + 1);
            }
        }
    }

    async fn write_through_all(&self, n: u64) -> anyhow::Result<()> {
        let v = Value::new(16);
        for i in 0..MEMBERS {
            let req = self.put_req(&format!("health-{i}-{n}"), &v);
            crate::http::json_once(&self.endpoint(i), &req, Duration::from_secs(2))
                .await
                .map_err(|e| anyhow::anyhow!("write through member {i}: {e:#}"))?;
        }
        Ok(())
    }
}

/// The value every write carries, prepared once in both encodings (raw for skep, base64 for etcd's JSON gateway).
#[derive(Debug, Clone)]
pub struct Value {
    pub raw: bytes::Bytes,
    pub base64: String,
}

impl Value {
    /// `size` pseudo-random (incompressible, deterministic) bytes.
    pub fn new(size: usize) -> Value {
        use base64::Engine as _;
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let raw: Vec<u8> = (0..size)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let base64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        Value { raw: raw.into(), base64 }
    }
}
