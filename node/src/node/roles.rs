//! What the agent reports, acted on: a promotion (a manager certificate, then Raft), a demotion (a worker
//! certificate, Raft stopped and its log deleted), removal from the swarm, certificate renewal before expiry, and the
//! root of trust followed through a root CA rotation.

use super::NodeHandle;
use skep_api::docker::NodeRole;
use skep_api::wire::{CaState, Request, Response};
use skep_pki::{NodeKey, NodeTls, RootCa};
use skep_transport::{LeaderCaller, Policy};
use skep_worker::agent::AgentEvent;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};

impl NodeHandle {
    // -------------------------------------------------------------------------------------------------------------
    // role changes, removal, renewal

    pub(super) async fn supervise(self, mut events: mpsc::Receiver<AgentEvent>, mut stop: watch::Receiver<bool>) {
        loop {
            let ev = tokio::select! {
                ev = events.recv() => ev,
                _ = stop.changed() => return,
            };
            let Some(ev) = ev else { return };
            match ev {
                AgentEvent::Managers(peers) => {
                    let mut guard = self.inner.running.write().await;
                    if let Some(r) = guard.as_mut() {
                        r.state.managers = peers;
                        if let Err(e) = self.inner.paths.save(&r.state) {
                            tracing::warn!("saving the manager list: {e}");
                        }
                    }
                }
                AgentEvent::Desired { role: desired, raft_id } => {
                    let current = self.state().await.map(|s| (s.role, s.reseat));
                    let Some((current_role, reseat)) = current else { continue };
                    // a manager whose Raft data was set aside waits for a fresh Raft ID: the lost one never comes back
                    let promote = desired == NodeRole::Manager
                        && current_role == NodeRole::Worker
                        && raft_id.is_some()
                        && raft_id != reseat;
                    let demote = desired == NodeRole::Worker && current_role == NodeRole::Manager && raft_id.is_none();
                    if (promote || demote) && !self.inner.changing_role.swap(true, std::sync::atomic::Ordering::SeqCst) {
                        let this = self.clone();
                        tokio::spawn(async move {
                            let r = if promote { this.promote(raft_id.unwrap_or_default()).await } else { this.demote().await };
                            if let Err(e) = r {
                                tracing::warn!("role change failed (will retry): {e:#}");
                                this.set_error(format!("{e:#}"));
                            }
                            this.inner.changing_role.store(false, std::sync::atomic::Ordering::SeqCst);
                        });
                    }
                }
                AgentEvent::Removed => {
                    let this = self.clone();
                    tokio::spawn(async move {
                        let _g = this.inner.lifecycle.lock().await;
                        this.teardown_net().await;
                        this.stop_components().await;
                        let _ = this.inner.paths.wipe();
                        this.set_error("this node was removed from the swarm");
                    });
                    return;
                }
            }
        }
    }

    /// Ask a manager for a certificate for a new key; returns the new TLS material (not yet saved). Any manager
    /// signs (the CA key is in every manager's store), so this goes to whichever answers first.
    pub(super) async fn renew(&self, leader: &LeaderCaller) -> anyhow::Result<NodeTls> {
        let key = NodeKey::generate()?;
        let req = Request::RenewCert { csr_pem: key.csr_pem()? };
        match leader.call(&req, Policy::until(Duration::from_secs(12), Duration::from_secs(5), Duration::from_millis(500))).await {
            Ok(Response::Cert { cert_pem, ca_pem }) => Ok(NodeTls { cert_pem, key_pem: key.to_pem(), ca_pem }),
            Ok(other) => anyhow::bail!("certificate renewal failed: {other:?}"),
            Err(e) => anyhow::bail!("certificate renewal failed: {e}"),
        }
    }

    pub(super) async fn install_tls(&self, tls: &NodeTls) -> anyhow::Result<()> {
        let server = skep_pki::tls::server_config(tls)?;
        let client = skep_pki::tls::client_config(tls)?;
        let info = skep_pki::node_tls_info(&tls.cert_pem, &tls.ca_pem)?;
        self.inner.paths.save_tls(tls, self.kek().as_ref())?;
        if let Some(r) = self.inner.running.read().await.as_ref() {
            r.endpoint.set_tls(Some(server), client)?;
            // the agent reports the new issuer and trust root with its next heartbeat (it goes at once)
            r.description.send_if_modified(|d| {
                let changed = d.tls_info != info;
                d.tls_info = info;
                changed
            });
        }
        Ok(())
    }

    /// Follow the cluster's root of trust (root CA rotation, see `skep_manager::ca::rotation`): ask a manager for it
    /// (a long poll that answers on a change), renew the certificate when another root signs now, and trust the new
    /// root once the rotation is finished. A manager of an older build does not know the call: asked again later.
    pub(super) async fn ca_loop(self, leader: LeaderCaller, mut stop: watch::Receiver<bool>) {
        let mut known = 0;
        loop {
            let req = Request::CaWatch { known };
            let reply = tokio::select! {
                r = leader.call(&req, Policy::one_round(Duration::from_secs(40))) => r,
                _ = stop.changed() => return,
            };
            let retry = match reply {
                Ok(Response::Ca(state)) => match self.follow_ca(&leader, &state).await {
                    Ok(()) => {
                        known = state.digest;
                        None
                    }
                    Err(e) => Some(format!("following the root CA: {e:#}")),
                },
                Ok(Response::Error(e)) => Some(format!("root CA state: {}", e.message)),
                Ok(other) => Some(format!("root CA state: unexpected answer {other:?}")),
                Err(e) => Some(format!("root CA state: {e}")),
            };
            if let Some(why) = retry {
                tracing::debug!("{why}; asking again in a few seconds");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(3)) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }

    /// Act on the cluster's CA state: renew if another root signs now, trust the cluster's trust root.
    async fn follow_ca(&self, leader: &LeaderCaller, state: &CaState) -> anyhow::Result<()> {
        // not while a role change renews and installs its own certificate
        let _g = self.inner.lifecycle.lock().await;
        let kek = self.kek();
        let mut tls = self.inner.paths.load_tls(kek.as_ref()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mine = skep_pki::node_tls_info(&tls.cert_pem, &tls.ca_pem)?;
        anyhow::ensure!(!state.trust_root_pem.is_empty() && !state.issuer_public_key.is_empty(), "no CA state yet");
        let mut changed = false;
        if mine.cert_issuer_public_key != state.issuer_public_key {
            tls = self.renew(leader).await?;
            // a manager that has not applied the rotation yet signs with the previous root: ask again later
            let got = skep_pki::node_tls_info(&tls.cert_pem, &tls.ca_pem)?;
            anyhow::ensure!(got.cert_issuer_public_key == state.issuer_public_key, "the renewed certificate is not from the new root yet");
            tracing::info!("node certificate renewed from the rotated root CA");
            changed = true;
        }
        if !skep_pki::same_root_cert(&tls.ca_pem, &state.trust_root_pem) {
            RootCa::from_pem(&state.trust_root_pem, None)?;
            tls.ca_pem = state.trust_root_pem.clone();
            tracing::info!("trusting the swarm's new root CA");
            changed = true;
        }
        if changed {
            self.install_tls(&tls).await?;
        }
        Ok(())
    }

    /// Become a manager: a manager certificate, then Raft (a fresh log: the leader sends a snapshot), then ask the
    /// leader to make us a voter. The endpoint and the agent keep running; only their TLS identity changes.
    pub(super) async fn promote(&self, raft_id: u64) -> anyhow::Result<()> {
        let _g = self.inner.lifecycle.lock().await;
        let (state, endpoint, leader) = self.running_parts().await?;
        if state.role == NodeRole::Manager {
            return Ok(());
        }
        let tls = self.renew(&leader).await?;
        let id = skep_pki::identity_from_cert_pem(&tls.cert_pem)?;
        anyhow::ensure!(id.role == NodeRole::Manager, "the managers issued a {:?} certificate for a promotion", id.role);
        self.install_tls(&tls).await?;
        let _ = std::fs::remove_dir_all(self.inner.paths.raft());
        let mut new_state = state.clone();
        new_state.role = NodeRole::Manager;
        new_state.raft_id = Some(raft_id);
        new_state.reseat = None;
        let m = self.start_manager(&new_state, raft_id, &endpoint).await?;
        *self.inner.manager.write().await = Some(m.clone());
        self.set_running(new_state.clone(), Some(m.clone())).await?;
        let seeds: Vec<SocketAddr> = new_state.managers.iter().filter_map(|p| p.addr.parse().ok()).collect();
        m.join_raft(&seeds).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        self.set_error("");
        tracing::info!(node = %state.node_id, "promoted to manager");
        Ok(())
    }

    /// Become a worker once the leader has taken us out of the Raft membership: a worker certificate, stop Raft,
    /// delete the log.
    pub(super) async fn demote(&self) -> anyhow::Result<()> {
        let _g = self.inner.lifecycle.lock().await;
        let (state, _, leader) = self.running_parts().await?;
        if state.role == NodeRole::Worker {
            return Ok(());
        }
        let tls = self.renew(&leader).await?;
        let old = self.inner.manager.write().await.take();
        if let Some(m) = old {
            m.shutdown().await;
        }
        // a worker's key is never sealed: it must come back by itself
        self.set_kek(None);
        self.install_tls(&tls).await?;
        let _ = std::fs::remove_dir_all(self.inner.paths.raft());
        let mut new_state = state.clone();
        new_state.role = NodeRole::Worker;
        new_state.raft_id = None;
        self.set_running(new_state, None).await?;
        self.set_error("");
        tracing::info!(node = %state.node_id, "demoted to worker");
        Ok(())
    }

    /// Renew the node certificate at a random point between 50% and 80% of its lifetime.
    pub(super) async fn renew_loop(self, mut stop: watch::Receiver<bool>) {
        loop {
            let cert = std::fs::read_to_string(self.inner.paths.cert()).ok();
            let wait = match cert.and_then(|c| skep_pki::identity_from_cert_pem(&c).ok()) {
                Some(id) => {
                    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
                    // not_before is backdated an hour; lifetime is measured from issue
                    let lifetime = (id.not_after_unix - now).max(0);
                    let at = skep_pki::renewal_at(now, now + lifetime, &mut rand::thread_rng());
                    Duration::from_secs((at - now).clamp(10, 24 * 3600) as u64)
                }
                None => Duration::from_secs(60),
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => return,
            }
            let snapshot = {
                let r = self.inner.running.read().await;
                r.as_ref().map(|r| r.leader.clone())
            };
            let Some(leader) = snapshot else { return };
            match self.renew(&leader).await {
                Ok(tls) => match self.install_tls(&tls).await {
                    Ok(()) => tracing::info!("node certificate renewed"),
                    Err(e) => tracing::warn!("installing the renewed certificate: {e:#}"),
                },
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
    }
}
