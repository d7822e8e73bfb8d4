//! The API's operations on the cluster. Each is a read of the store (linearizable), a pure decision from
//! `skep_manager::control` and, for writes, one proposal: [`NodeHandle::query`] and [`NodeHandle::control`] are that
//! path, once.

use super::NodeHandle;
use crate::addr::parse_addr;
use crate::error::{ApiError, ApiResult};
use skep_api::docker::{self, Node};
use skep_manager::control::{self, ControlError};
use skep_manager::runtime::Manager;
use skep_manager::store::{ClusterState, NetworkUser, Op, PayloadKind};
use skep_pki::{JoinToken, RootCa, SecretKey};
use std::time::Duration;

impl NodeHandle {
    /// Read → decide: `f` on a linearizable view of the store (through the leader's read index on a follower).
    async fn query<T>(&self, f: impl FnOnce(&Manager, &ClusterState) -> Result<T, ControlError>) -> ApiResult<T> {
        let m = self.require_manager().await?;
        Ok(m.query(|st| f(&m, st)).await?)
    }

    /// Read → decide → propose: `f` turns a linearizable view of the store into its answer and one store op, which
    /// is proposed (forwarded to the leader from a follower); returns the answer once the op is applied.
    async fn control<T>(&self, f: impl FnOnce(&ClusterState) -> Result<(T, Op), ControlError>) -> ApiResult<T> {
        let m = self.require_manager().await?;
        Ok(m.control(f).await?.0)
    }

    /// `GET /swarm`.
    pub async fn swarm(&self) -> ApiResult<docker::Swarm> {
        self.query(|_, st| {
            let c = st.cluster.as_ref().ok_or_else(|| ControlError::Unavailable(control::MANAGER_NOT_READY.into()))?;
            Ok(docker::Swarm { cluster: c.info.clone(), join_tokens: c.tokens.clone() })
        })
        .await
    }

    /// `POST /swarm/update`.
    pub async fn update_swarm(
        &self,
        version: u64,
        spec: docker::SwarmSpec,
        rotate: control::Rotation,
    ) -> ApiResult<()> {
        self.control(|st| {
            let digest = st
                .cluster
                .as_ref()
                .and_then(|c| RootCa::from_pem(&c.ca_cert_pem, None).ok())
                .map(|ca| ca.digest())
                .ok_or_else(|| ControlError::Unavailable(control::MANAGER_NOT_READY.into()))?;
            let new_token = &mut || JoinToken::generate(&digest).to_string();
            let mut failed = None;
            let new_unlock_key = &mut || match SecretKey::generate() {
                Ok(k) => k.to_unlock_key(),
                Err(e) => {
                    failed = Some(e);
                    String::new()
                }
            };
            let new_root = &mut skep_manager::ca::rotation::make;
            let op = control::update_swarm(st, version, spec, rotate, new_token, new_unlock_key, new_root)?;
            if let Some(e) = failed {
                return Err(ControlError::Internal(format!("making an unlock key: {e}")));
            }
            Ok(((), op))
        })
        .await
    }

    /// `GET /swarm/unlockkey`: the swarm's unlock key, empty without autolock.
    pub async fn unlock_key(&self) -> ApiResult<String> {
        self.query(|_, st| {
            let c = st.cluster.as_ref().ok_or_else(|| ControlError::Unavailable(control::MANAGER_NOT_READY.into()))?;
            Ok(c.unlock_key.clone())
        })
        .await
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> ApiResult<Vec<Node>> {
        self.query(|m, st| Ok(m.node_views(st))).await
    }

    /// `GET /nodes/{id}`.
    pub async fn node(&self, reference: &str) -> ApiResult<Node> {
        self.query(|m, st| Ok(st.node_view(st.resolve_node(reference)?, m.leader()))).await
    }

    /// `POST /nodes/{id}/update`.
    pub async fn update_node(&self, reference: &str, version: u64, spec: docker::NodeSpecUpdate) -> ApiResult<()> {
        self.control(|st| Ok(((), control::update_node(st, reference, version, spec)?.1))).await
    }

    /// `DELETE /nodes/{id}`.
    pub async fn remove_node(&self, reference: &str, force: bool) -> ApiResult<()> {
        self.control(|st| Ok(((), control::remove_node(st, reference, force)?.1))).await
    }

    /// `POST /services/create`: returns the new ID.
    /// `registry_auth` is the request's `X-Registry-Auth` (stored with the spec, see [`docker::PullOptions`]).
    pub async fn create_service(&self, mut spec: docker::ServiceSpec, registry_auth: &str) -> ApiResult<String> {
        control::services::set_credentials(&mut spec, registry_auth);
        let id = skep_api::id::new_id(&mut rand::thread_rng());
        self.control(|st| Ok((id.clone(), control::services::create(st, spec, id)?))).await
    }

    /// `POST /services/{id}/update`.
    pub async fn update_service(&self, reference: &str, version: u64, spec: docker::ServiceSpec, rollback: bool, auth: control::services::AuthFrom) -> ApiResult<()> {
        self.control(|st| Ok(((), control::services::update(st, reference, version, spec, rollback, auth)?))).await
    }

    /// `DELETE /services/{id}`.
    pub async fn remove_service(&self, reference: &str) -> ApiResult<()> {
        self.control(|st| Ok(((), control::services::remove(st, reference)?))).await
    }

    /// `GET /services`.
    pub async fn services(&self, f: &skep_api::filters::Filters, status: bool) -> ApiResult<Vec<docker::Service>> {
        self.query(|_, st| {
            let list = control::services::filter_services(st, f)?;
            Ok(list.into_iter().map(|s| control::services::view(st, s, status, false)).collect())
        })
        .await
    }

    /// `GET /services/{id}`.
    pub async fn service(&self, reference: &str, insert_defaults: bool) -> ApiResult<docker::Service> {
        self.query(|_, st| Ok(control::services::view(st, st.resolve_service(reference)?, false, insert_defaults))).await
    }

    /// `GET /tasks`.
    pub async fn tasks(&self, f: &skep_api::filters::Filters) -> ApiResult<Vec<docker::Task>> {
        let shown = |t: &docker::Task| {
            let mut t = t.clone();
            t.strip_credentials();
            t
        };
        self.query(|_, st| Ok(control::services::filter_tasks(st, f)?.into_iter().map(shown).collect())).await
    }

    /// `GET /tasks/{id}`: by ID or unique ID prefix.
    pub async fn task(&self, reference: &str) -> ApiResult<docker::Task> {
        self.query(|_, st| {
            let mut t = st.resolve_task(reference)?.clone();
            t.strip_credentials();
            Ok(t)
        })
        .await
    }

    /// `POST /networks/create`: returns the new ID.
    pub async fn create_network(&self, req: docker::NetworkCreateRequest) -> ApiResult<String> {
        let id = skep_api::id::new_id(&mut rand::thread_rng());
        let routes = crate::sysinfo::host_routes();
        self.control(|st| Ok((id.clone(), control::networks::create(st, req, id, &routes)?))).await
    }

    /// `DELETE /networks/{id}`. While only tasks of removed services still hold addresses on the network (they are
    /// stopping: `docker stack rm` deletes a stack's services and then its networks at once, and Docker's own
    /// removal waits for the services' tasks), wait for them for up to 10 s rather than fail.
    pub async fn remove_network(&self, reference: &str) -> ApiResult<()> {
        for attempt in 0..50 {
            match self.control(|st| Ok(((), control::networks::remove(st, reference)?))).await {
                Err(ApiError::Control(ControlError::InUse { by: NetworkUser::Task(_), .. })) if attempt < 49 => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                other => return other,
            }
        }
        Ok(())
    }

    /// `GET /networks`.
    pub async fn networks(&self, f: &skep_api::filters::Filters) -> ApiResult<Vec<docker::Network>> {
        self.query(|_, st| control::networks::list(st, f)).await
    }

    /// `GET /networks/{id}`: with the tasks attached.
    pub async fn network(&self, reference: &str) -> ApiResult<docker::Network> {
        self.query(|_, st| Ok(control::networks::view(st, st.resolve_network(reference)?, true))).await
    }

    /// `POST /secrets/create` / `/configs/create`: returns the new ID.
    pub async fn create_payload(&self, kind: PayloadKind, spec: docker::SecretSpec) -> ApiResult<String> {
        let id = skep_api::id::new_id(&mut rand::thread_rng());
        self.control(|st| Ok((id.clone(), control::payloads::create(st, kind, spec, id)?))).await
    }

    /// `POST /secrets/{id}/update` / `/configs/{id}/update`: labels only.
    pub async fn update_payload(&self, kind: PayloadKind, reference: &str, version: u64, spec: docker::SecretSpec) -> ApiResult<()> {
        self.control(|st| Ok(((), control::payloads::update(st, kind, reference, version, spec)?))).await
    }

    /// `DELETE /secrets/{id}` / `/configs/{id}`.
    pub async fn remove_payload(&self, kind: PayloadKind, reference: &str) -> ApiResult<()> {
        self.control(|st| Ok(((), control::payloads::remove(st, kind, reference)?))).await
    }

    /// `GET /secrets` / `/configs` (a secret's data is never in the answer).
    pub async fn payloads(&self, kind: PayloadKind, f: &skep_api::filters::Filters) -> ApiResult<Vec<docker::Secret>> {
        self.query(|_, st| control::payloads::list(st, kind, f)).await
    }

    /// `GET /secrets/{id}` / `/configs/{id}`.
    pub async fn payload(&self, kind: PayloadKind, reference: &str) -> ApiResult<docker::Secret> {
        self.query(|_, st| control::payloads::inspect(st, kind, reference)).await
    }

    /// Internal KV write through Raft (benchmarks).
    pub async fn kv_put(&self, key: String, value: Vec<u8>) -> ApiResult<u64> {
        let m = self.require_manager().await?;
        Ok(m.propose(Op::KvPut { key, value }).await?.index)
    }

    /// `Info.Swarm`.
    pub async fn swarm_info(&self) -> docker::SwarmInfo {
        if let Some(state) = self.locked_state() {
            return docker::SwarmInfo {
                node_id: state.node_id.clone(),
                node_addr: parse_addr(&state.advertise_addr, 2377).map(|a| a.ip().to_string()).unwrap_or_default(),
                local_node_state: "locked".into(),
                error: self.error(),
                ..Default::default()
            };
        }
        let Some(state) = self.state().await else {
            let err = self.error();
            return docker::SwarmInfo {
                local_node_state: if err.is_empty() { "inactive" } else { "error" }.into(),
                error: err,
                ..Default::default()
            };
        };
        let mut info = docker::SwarmInfo {
            node_id: state.node_id.clone(),
            node_addr: parse_addr(&state.advertise_addr, 2377).map(|a| a.ip().to_string()).unwrap_or_default(),
            local_node_state: "active".into(),
            control_available: false,
            error: self.error(),
            remote_managers: Some(state.managers.clone()),
            ..Default::default()
        };
        if let Some(m) = self.manager().await {
            info.control_available = true;
            let st = m.local_state();
            info.nodes = Some(st.nodes.len() as i64);
            info.managers = Some(st.managers().count() as i64);
            info.cluster = st.cluster.as_ref().map(|c| c.info.clone());
            info.remote_managers = Some(Manager::manager_peers(&st));
        }
        info
    }
}
