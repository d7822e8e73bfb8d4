//! Backup and restore of a swarm: `skep swarm backup FILE` takes a manager's state online; `skep swarm restore FILE`
//! on a daemon outside any swarm (a fresh machine) brings the swarm back with that daemon as its only manager.
//!
//! A backup is one JSON document: the Raft state this manager had applied (services, tasks, networks, secrets,
//! configs, nodes, the CA key, the join tokens) and this manager's own identity (node ID, key, certificate), since a
//! restored manager must prove it is a member of the swarm. It therefore holds every secret of the swarm in clear:
//! the CLI writes it with mode 0600, and it must be kept like the CA key it contains. Restoring is Docker's documented
//! procedure (copy the swarm directory, then `swarm init --force-new-cluster`) in one step: the files are written as
//! the backed-up manager's, with a Raft membership of itself alone ([`skep_manager::raft::force`]), and the node
//! starts from them.

use super::NodeHandle;
use crate::error::{ApiError, ApiResult};
use crate::addr::{parse_addr, pick_advertise};
use crate::state::Membership;
use serde::{Deserialize, Serialize};
use skep_api::docker::{self, Peer};
use skep_manager::raft::{force, LogId, Member};
use skep_manager::store::ClusterState;

/// The format tag of a backup document.
pub const FORMAT: &str = "skep-swarm-backup/1";

/// Most bytes a restore request may carry.
pub const MAX_BACKUP: usize = 1 << 30;

/// One backup document.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    /// [`FORMAT`].
    pub format: String,
    /// When it was taken (RFC 3339).
    pub taken_at: String,
    /// The backed-up manager's membership file.
    pub node: Membership,
    /// Its private key (PEM).
    pub key_pem: String,
    /// Its certificate (PEM).
    pub cert_pem: String,
    /// The swarm's root CA certificate (PEM).
    pub ca_pem: String,
    /// The last log entry the state includes.
    pub last_applied: LogId<u64>,
    /// The swarm's state.
    pub state: ClusterState,
}

impl NodeHandle {
    /// `GET /skep/swarm/backup`: this manager's applied state and identity.
    pub async fn backup(&self) -> ApiResult<Backup> {
        let (state, _, _) = self.running_parts().await.map_err(|_| ApiError::unavailable(super::msg::NOT_PART))?;
        let manager = self.manager().await.ok_or_else(|| {
            ApiError::unavailable("a backup is taken on a manager: this node is a worker and holds no swarm state")
        })?;
        let (last, cluster) = manager.applied();
        let last_applied = last.ok_or_else(|| ApiError::unavailable("this manager has applied no state yet"))?;
        let tls = self.inner.paths.load_tls(self.kek().as_ref()).map_err(|e| ApiError::internal(format!("{e:#}")))?;
        Ok(Backup {
            format: FORMAT.into(),
            taken_at: skep_api::time::format(std::time::SystemTime::now()),
            node: state,
            key_pem: tls.key_pem,
            cert_pem: tls.cert_pem,
            ca_pem: tls.ca_pem,
            last_applied,
            state: (*cluster).clone(),
        })
    }

    /// `POST /skep/swarm/restore[?listen_addr=…&advertise_addr=…]`: become the backed-up manager, alone, on this daemon (which must
    /// be outside any swarm). Returns the node ID.
    pub async fn restore(&self, b: Backup, listen_addr: &str, advertise_addr: &str) -> ApiResult<String> {
        let _g = self.inner.lifecycle.lock().await;
        if self.inner.running.read().await.is_some() || self.is_locked() {
            return Err(ApiError::unavailable(super::msg::ALREADY));
        }
        if b.format != FORMAT {
            return Err(ApiError::invalid(format!("not a skep swarm backup (format {:?}, want {FORMAT:?})", b.format)));
        }
        let raft_id = b.node.raft_id.ok_or_else(|| ApiError::invalid("the backup is not a manager's"))?;
        // another machine: the backed-up listen address is not this one's; all addresses on the same port by default
        let listen = if listen_addr.is_empty() {
            let old = parse_addr(&b.node.listen_addr, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?;
            std::net::SocketAddr::from(([0, 0, 0, 0], old.port()))
        } else {
            parse_addr(listen_addr, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?
        };
        let advertise = if advertise_addr.is_empty() {
            parse_addr(&b.node.advertise_addr, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?
        } else {
            pick_advertise(listen, advertise_addr)?
        };
        let id = skep_pki::identity_from_cert_pem(&b.cert_pem).map_err(|e| ApiError::invalid(format!("the backup's certificate: {e}")))?;
        if id.node_id != b.node.node_id {
            return Err(ApiError::invalid("the backup's certificate is not its node's"));
        }
        let mut node = b.node;
        node.listen_addr = listen.to_string();
        node.advertise_addr = advertise.to_string();
        node.managers = vec![Peer { node_id: node.node_id.clone(), addr: advertise.to_string() }];
        let paths = &self.inner.paths;
        let written = async {
            paths.wipe()?;
            std::fs::create_dir_all(paths.raft())?;
            let (key_pem, cert_pem, ca_pem) = (b.key_pem.clone(), b.cert_pem.clone(), b.ca_pem.clone());
            let tls = skep_pki::NodeTls { key_pem, cert_pem, ca_pem };
            self.set_kek(None);
            paths.save_tls(&tls, None)?;
            // a new data key; the restored state's autolock (if on) seals it and the node key once the manager runs
            let dek = paths.load_or_make_dek(None)?;
            let member = Member { node_id: node.node_id.clone(), addr: advertise.to_string() };
            force::single_member(&paths.raft(), raft_id, member, Some(b.last_applied), &b.state, Some(dek)).await?;
            paths.save(&node)?;
            let running = self.start_components(node.clone(), &tls, false).await?;
            let m = running.manager.clone().ok_or_else(|| anyhow::anyhow!("the manager did not start"))?;
            *self.inner.running.write().await = Some(running);
            m.wait_leader(std::time::Duration::from_secs(20)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = written {
            self.stop_components().await;
            let _ = paths.wipe();
            return Err(ApiError::internal(format!("restore: {e:#}")));
        }
        self.set_error("");
        tracing::info!(node = %node.node_id, "swarm restored from a backup; this manager runs it alone");
        Ok(node.node_id)
    }
}
