//! Starting and stopping the swarm components, and the transitions between "in a swarm" and not: `swarm init`,
//! `swarm join`, `swarm leave`, and a restart from what is on disk.

use super::{msg, transport_config, NodeHandle, Running};
use skep_manager::rpc::RpcHandler;
use crate::addr::{parse_addr, pick_advertise};
use crate::error::{ApiError, ApiResult};
use crate::state::Membership;
use crate::sysinfo;
use anyhow::Context;
use skep_api::docker::{self, Availability, InitRequest, JoinRequest, JoinTokens, NodeRole, NodeState, Peer};
use skep_api::wire::{self, Request, Response};
use skep_manager::control;
use skep_manager::raft::RaftTiming;
use skep_manager::runtime::{Manager, ManagerConfig};
use crate::keys::KeyError;
use skep_pki::{JoinToken, NodeKey, NodeTls, RootCa, SecretKey};
use skep_transport::{Endpoint, LeaderCaller, Policy};
use skep_worker::join::{JoinError, JoinTiming};
use skep_worker::agent::{self, AgentConfig};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

impl NodeHandle {
    pub async fn resume(&self) -> anyhow::Result<()> {
        let _g = self.inner.lifecycle.lock().await;
        let Some(state) = self.inner.paths.load()? else { return Ok(()) };
        if self.inner.paths.key_is_sealed().context("reading the node's key")? {
            tracing::warn!(node = %state.node_id, "this manager is locked (autolock): it serves nothing of the swarm \
                until it is given the swarm's unlock key (`docker swarm unlock` or `skep swarm unlock`)");
            self.set_locked(Some(state));
            return Ok(());
        }
        let tls = self.inner.paths.load_tls(None).context("loading the node's certificates")?;
        let running = self.start_components(state.clone(), &tls, false).await?;
        *self.inner.running.write().await = Some(running);
        tracing::info!(node = %state.node_id, role = %state.role, "rejoined the swarm from disk");
        Ok(())
    }

    pub(super) fn start_components<'a>(
        &'a self,
        state: Membership,
        tls: &'a NodeTls,
        bootstrap: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Running>> + Send + 'a>> {
        Box::pin(self.start_components_inner(state, tls, bootstrap))
    }

    pub(super) async fn start_components_inner(&self, state: Membership, tls: &NodeTls, bootstrap: bool) -> anyhow::Result<Running> {
        let listen = parse_addr(&state.listen_addr, docker::defaults::CLUSTER_PORT).map_err(anyhow::Error::msg)?;
        let server = skep_pki::tls::server_config(tls)?;
        let client = skep_pki::tls::client_config(tls)?;
        let endpoint = Endpoint::bind(listen, server, client, transport_config())
            .with_context(|| format!("binding the cluster port {listen}"))?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let engine = Arc::new(self.engine_instance().await?);
        let logs: Arc<dyn skep_manager::rpc::TaskLogSource> = Arc::new(super::logs::EngineLogs(engine.clone()));
        let handler = Arc::new(RpcHandler::new(self.inner.manager.clone()).with_logs(logs.clone()));
        {
            let ep = endpoint.clone();
            let mut rx = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                ep.serve(handler, async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await;
            }));
        }
        let mut state = state;
        let mut manager = None;
        if state.role == NodeRole::Manager {
            if let Some(raft_id) = state.raft_id {
                match self.start_manager(&state, raft_id, &endpoint).await {
                    Ok(m) => {
                        if bootstrap {
                            m.bootstrap().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                        }
                        manager = Some(m);
                    }
                    Err(e) if !bootstrap && super::repair::is_corrupt(&e) => {
                        state = self.set_aside_corrupt_raft(state, raft_id, &e)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        *self.inner.manager.write().await = manager.clone();
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let (description, description_rx) = watch::channel(self.description(&tls.cert_pem, &tls.ca_pem));
        let cfg = AgentConfig {
            addr: state.advertise_addr.clone(),
            description: description_rx,
            managers: state.managers.clone(),
            period: Duration::from_secs(1),
            manager_ready: Some(self.manager_ready()),
        };
        let leader = LeaderCaller::new(endpoint.clone(), skep_pki::NODE_SAN, peer_addrs(&state.managers));
        tasks.push(tokio::spawn(agent::run(leader.clone(), cfg, ev_tx, stop_rx.clone())));
        let net = self.net_agent(&state).await;
        let tm = skep_worker::tasks::TaskManagerConfig {
            dir: self.inner.paths.swarm.join("worker"),
            leader: leader.clone(),
            net: net.clone(),
            watch: self.inner.task_watch.clone(),
        };
        tasks.push(tokio::spawn(skep_worker::tasks::run(engine, tm, stop_rx.clone())));
        tasks.push(tokio::spawn(self.clone().supervise(ev_rx, stop_rx.clone())));
        tasks.push(tokio::spawn(self.clone().renew_loop(stop_rx.clone())));
        if let Some(old) = state.reseat {
            tasks.push(tokio::spawn(self.clone().reseat_loop(leader.clone(), old, stop_rx.clone())));
        }
        tasks.push(tokio::spawn(self.clone().ca_loop(leader.clone(), stop_rx)));
        Ok(Running { state, leader, endpoint, manager, stop, tasks, net, logs, description })
    }

    /// The networking agent; without it (not root, no netlink) the node runs only tasks without networks.
    pub(super) async fn net_agent(&self, state: &Membership) -> Option<Arc<skep_worker::network::NetAgent>> {
        let underlay = match parse_addr(&state.advertise_addr, docker::defaults::CLUSTER_PORT).map(|a| a.ip()) {
            Ok(IpAddr::V4(ip)) => ip,
            _ => {
                tracing::warn!("networking is off: the advertised address is not IPv4");
                return None;
            }
        };
        let cfg = skep_worker::network::NetConfig {
            prefix: self
                .inner
                .opts
                .net_prefix
                .clone()
                .unwrap_or_else(|| format!("sk{}", &state.node_id[..state.node_id.len().min(8)])),
            underlay,
            state_dir: skep_worker::network::state_dir(&self.inner.paths.swarm.join("worker")),
            dns_queries: self.inner.dns_queries.clone(),
        };
        match skep_worker::network::NetAgent::new(cfg).await {
            Ok(n) => Some(Arc::new(n)),
            Err(e) => {
                tracing::warn!("networking is off: {e}");
                None
            }
        }
    }

    /// Remove the node's networking state (leaving the swarm; a plain shutdown keeps it for the adopted tasks).
    pub(super) async fn teardown_net(&self) {
        let net = self.inner.running.read().await.as_ref().and_then(|r| r.net.clone());
        if let Some(n) = net {
            n.teardown().await;
        }
    }

    /// The task engine this node runs tasks with.
    pub(super) async fn engine_instance(&self) -> anyhow::Result<skep_worker::engine::AnyEngine> {
        use skep_worker::engine::{docker::DockerEngine, process::ProcessEngine, AnyEngine};
        Ok(match self.inner.opts.engine.as_str() {
            "docker" => AnyEngine::Docker(
                DockerEngine::connect(crate::daemon::DOCKER_SOCKET)
                    .await
                    .context("connecting to the Docker engine")?
                    .with_log_limits(self.inner.opts.log_limits),
            ),
            _ => {
                let engine = ProcessEngine::new(self.inner.opts.data_root.join("engine"))
                    .with_log_limits(self.inner.opts.log_limits)
                    .with_images(self.inner.images.clone())
                    .with_host_programs(self.inner.opts.host_programs);
                match &self.inner.volumes {
                    super::volumes::Volumes::Local(store) => AnyEngine::Process(engine.with_volumes(store.clone())),
                    super::volumes::Volumes::Docker(_) => AnyEngine::Process(engine),
                }
            }
        })
    }

    pub(super) async fn start_manager(&self, state: &Membership, raft_id: u64, endpoint: &Endpoint) -> anyhow::Result<Manager> {
        let addr = parse_addr(&state.advertise_addr, docker::defaults::CLUSTER_PORT).map_err(anyhow::Error::msg)?;
        // the data key is on disk (sealed, under autolock) before any Raft file is written with it
        let dek = if crate::keys::plaintext_raft() {
            tracing::warn!("{} is set: this manager's Raft files are not encrypted", crate::keys::PLAINTEXT_RAFT_ENV);
            None
        } else {
            Some(self.inner.paths.load_or_make_dek(self.kek().as_ref()).context("the Raft data key")?)
        };
        let cfg = ManagerConfig {
            node_id: state.node_id.clone(),
            raft_id,
            addr,
            dir: self.inner.paths.raft(),
            timing: raft_timing(),
            dek,
        };
        let m = Manager::start(cfg, endpoint.clone()).await?;
        self.collect_events(&m);
        tokio::spawn(self.clone().keys_loop(m.clone()));
        crate::web::follow_manager(self.clone(), &m);
        Ok(m)
    }

    /// While `m` runs: keep this node's keys sealed with the swarm's unlock key as the store says it is (autolock
    /// turned on, rotated, turned off). A store that has no swarm yet (a new manager catching up) changes nothing.
    async fn keys_loop(self, m: Manager) {
        let mut store = m.subscribe();
        let mut stopped = m.stopped();
        loop {
            let want = store.borrow_and_update().cluster.as_ref().map(|c| c.unlock_key.clone());
            if let Some(want) = want {
                let want = if want.is_empty() { None } else { SecretKey::from_unlock_key(&want).ok() };
                let have = self.kek();
                if want != have && !*stopped.borrow() {
                    match self.inner.paths.reseal(have.as_ref(), want.as_ref()) {
                        Ok(()) => {
                            let what =
                                if want.is_none() { "unsealed (autolock off)" } else { "sealed with the unlock key" };
                            tracing::info!("this manager's node key and Raft data key are {what}");
                            self.set_kek(want);
                        }
                        Err(e) => tracing::warn!("resealing this manager's keys: {e}"),
                    }
                }
            }
            tokio::select! {
                r = store.changed() => if r.is_err() { return },
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    }

    /// `POST /swarm/unlock`: open a locked manager's keys with the unlock key and start it.
    pub async fn unlock(&self, key: &str) -> ApiResult<()> {
        let _g = self.inner.lifecycle.lock().await;
        let Some(state) = self.locked_state() else {
            if self.state().await.is_some() {
                return Err(ApiError::Conflict(msg::NOT_LOCKED.into()));
            }
            return Err(ApiError::unavailable(msg::NOT_PART));
        };
        let kek = SecretKey::from_unlock_key(key).map_err(|e| ApiError::invalid(e.to_string()))?;
        let tls = match self.inner.paths.load_tls(Some(&kek)) {
            Ok(t) => t,
            Err(KeyError::WrongKey) => return Err(ApiError::Unauthorized(msg::INVALID_KEY.into())),
            Err(e) => return Err(ApiError::internal(format!("unlocking: {e}"))),
        };
        // the data key is sealed with the same key; a node key that opens while the data key does not is a key
        // rotated while this manager was between the two writes: still the operator's wrong key
        match self.inner.paths.load_or_make_dek(Some(&kek)) {
            Ok(_) => {}
            Err(KeyError::WrongKey) => return Err(ApiError::Unauthorized(msg::INVALID_KEY.into())),
            Err(e) => return Err(ApiError::internal(format!("unlocking: {e}"))),
        }
        self.set_kek(Some(kek));
        match self.start_components(state.clone(), &tls, false).await {
            Ok(running) => {
                *self.inner.running.write().await = Some(running);
                self.set_locked(None);
                tracing::info!(node = %state.node_id, "unlocked; rejoined the swarm from disk");
                Ok(())
            }
            Err(e) => {
                self.set_kek(None);
                Err(ApiError::internal(format!("swarm component could not be started: {e:#}")))
            }
        }
    }


    pub(super) async fn stop_components(&self) {
        let running = self.inner.running.write().await.take();
        *self.inner.manager.write().await = None;
        if let Some(r) = running {
            let _ = r.stop.send(true);
            if let Some(m) = r.manager {
                m.shutdown().await;
            }
            r.endpoint.close();
            for t in r.tasks {
                t.abort();
            }
        }
    }

    /// Stop everything (daemon shutdown); the swarm state stays on disk.
    pub async fn shutdown(&self) {
        let _g = self.inner.lifecycle.lock().await;
        self.stop_components().await;
    }

    // -------------------------------------------------------------------------------------------------------------
    // init / join / leave

    /// `POST /swarm/init`: returns the node ID.
    pub async fn init(&self, req: InitRequest) -> ApiResult<String> {
        let _g = self.inner.lifecycle.lock().await;
        if self.is_locked() {
            // a locked manager cannot read the state it would keep
            let m = if req.force_new_cluster { msg::LOCKED } else { msg::ALREADY };
            return Err(ApiError::unavailable(m));
        }
        if self.inner.running.read().await.is_some() {
            if req.force_new_cluster {
                return self.force_new_cluster(req).await;
            }
            return Err(ApiError::unavailable(msg::ALREADY));
        }
        let listen_s = if req.listen_addr.is_empty() { "0.0.0.0:2377" } else { &req.listen_addr };
        let listen = parse_addr(listen_s, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?;
        let advertise = pick_advertise(listen, &req.advertise_addr)?;
        let settings = control::init::settings(&req, &sysinfo::host_routes())?;
        let (cluster_id, node_id, ingress_id) = {
            let mut rng = rand::thread_rng();
            (skep_api::id::new_id(&mut rng), skep_api::id::new_id(&mut rng), skep_api::id::new_id(&mut rng))
        };
        let crypto = |e: skep_pki::PkiError| ApiError::internal(e.to_string());
        let ca = RootCa::generate(&cluster_id).map_err(crypto)?;
        let key = NodeKey::generate().map_err(crypto)?;
        let validity = Duration::from_nanos(settings.spec.node_cert_expiry_ns() as u64);
        let cert = ca.sign_csr(&key.csr_pem().map_err(crypto)?, &node_id, NodeRole::Manager, &cluster_id, validity).map_err(crypto)?;
        let tokens = JoinTokens {
            worker: JoinToken::generate(&ca.digest()).to_string(),
            manager: JoinToken::generate(&ca.digest()).to_string(),
        };
        let op = control::init::init_op(
            settings,
            control::init::NewCluster {
                cluster_id: cluster_id.clone(),
                node_id: node_id.clone(),
                ingress_id,
                ca_cert_pem: ca.cert_pem().to_string(),
                ca_key_pem: ca.key_pem().unwrap_or_default().to_string(),
                tls_info: ca.tls_info(&ca),
                tokens,
                description: self.description(&cert, ca.cert_pem()),
                advertise,
                unlock_key: SecretKey::generate().map_err(crypto)?.to_unlock_key(),
            },
        );
        let state = Membership {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            role: NodeRole::Manager,
            raft_id: Some(1),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            managers: vec![Peer { node_id: node_id.clone(), addr: advertise.to_string() }],
            reseat: None,
        };
        let tls = NodeTls { cert_pem: cert, key_pem: key.to_pem(), ca_pem: ca.cert_pem().to_string() };
        let paths = &self.inner.paths;
        paths.wipe()?;
        self.set_kek(None);
        paths.save_tls(&tls, None)?;
        let result = async {
            let running = self.start_components(state.clone(), &tls, true).await?;
            let m = running.manager.clone().ok_or_else(|| anyhow::anyhow!("manager did not start"))?;
            m.propose(op).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            paths.save(&state)?;
            anyhow::Ok(running)
        }
        .await;
        match result {
            Ok(running) => {
                *self.inner.running.write().await = Some(running);
                self.set_error("");
                tracing::info!(node = %node_id, cluster = %cluster_id, "swarm initialised");
                Ok(node_id)
            }
            Err(e) => {
                self.stop_components().await;
                let _ = paths.wipe();
                Err(ApiError::internal(format!("{e:#}")))
            }
        }
    }

    /// `swarm init --force-new-cluster` on a manager of a swarm (usually one that lost its quorum): this manager
    /// keeps the cluster's state and becomes its only Raft member; the endpoint, the agent and the tasks keep running.
    /// The other managers stay listed, unreachable, until they are demoted and removed; workers carry on with this
    /// manager. An advertise address given with the request replaces the node's own; the listen address cannot
    /// change here (the cluster port stays bound; another address than the CLI's default is refused). The caller
    /// holds the lifecycle lock.
    async fn force_new_cluster(&self, req: InitRequest) -> ApiResult<String> {
        let (state, endpoint, _) = self.running_parts().await.map_err(|_| ApiError::unavailable(msg::NOT_PART))?;
        let (Some(manager), Some(raft_id)) = (self.manager().await, state.raft_id) else {
            return Err(ApiError::unavailable(
                "--force-new-cluster keeps a manager's copy of the swarm's state: this node is a worker and holds none",
            ));
        };
        control::init::check_force_new_cluster(&req)?;
        let listen = parse_addr(&state.listen_addr, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?;
        if !req.listen_addr.is_empty() {
            let asked = parse_addr(&req.listen_addr, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?;
            // the docker CLI always sends its default, 0.0.0.0:2377: that one keeps the node's address
            let cli_default = asked.ip().is_unspecified() && asked.port() == docker::defaults::CLUSTER_PORT;
            if asked != listen && !cli_default {
                return Err(ApiError::invalid(format!(
                    "--force-new-cluster keeps this node's listen address {listen}; it cannot change to {asked} here"
                )));
            }
        }
        let advertise = if req.advertise_addr.is_empty() {
            parse_addr(&state.advertise_addr, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?
        } else {
            pick_advertise(listen, &req.advertise_addr)?
        };
        tracing::warn!(node = %state.node_id, "--force-new-cluster: this manager becomes the only member of the swarm's raft cluster");
        *self.inner.manager.write().await = None;
        manager.force_new_cluster(advertise).await?;
        drop(manager);
        let mut new_state = state.clone();
        new_state.advertise_addr = advertise.to_string();
        new_state.managers = vec![Peer { node_id: state.node_id.clone(), addr: advertise.to_string() }];
        let started = async {
            let m = self.start_manager(&new_state, raft_id, &endpoint).await?;
            *self.inner.manager.write().await = Some(m.clone());
            self.set_running(new_state.clone(), Some(m.clone())).await?;
            m.wait_leader(Duration::from_secs(20)).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            anyhow::Ok(())
        }
        .await;
        if let Err(e) = started {
            self.set_error(format!("{e:#}"));
            return Err(ApiError::internal(format!("--force-new-cluster: {e:#}")));
        }
        self.set_error("");
        tracing::info!(node = %state.node_id, "--force-new-cluster: the swarm runs on with this manager alone");
        Ok(state.node_id)
    }

    /// `POST /swarm/join`.
    pub async fn join(&self, req: JoinRequest) -> ApiResult<()> {
        let _g = self.inner.lifecycle.lock().await;
        if self.inner.running.read().await.is_some() || self.is_locked() {
            return Err(ApiError::unavailable(msg::ALREADY));
        }
        let token = JoinToken::parse(req.join_token.trim()).map_err(|e| ApiError::invalid(format!("invalid join token: {e}")))?;
        if req.remote_addrs.is_empty() {
            return Err(ApiError::invalid("at least one manager address is needed to join a swarm"));
        }
        let mut remotes = Vec::new();
        for r in &req.remote_addrs {
            remotes.push(parse_addr(r, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?);
        }
        let listen_s = if req.listen_addr.is_empty() { "0.0.0.0:2377" } else { &req.listen_addr };
        let listen = parse_addr(listen_s, docker::defaults::CLUSTER_PORT).map_err(ApiError::invalid)?;
        let advertise = pick_advertise(listen, &req.advertise_addr)?;
        let availability =
            Availability::from_request(&req.availability).map_err(|e| ApiError::invalid(e.to_string()))?.unwrap_or_default();
        let key = NodeKey::generate().map_err(|e| ApiError::internal(e.to_string()))?;
        let csr = key.csr_pem().map_err(|e| ApiError::internal(e.to_string()))?;
        let join = wire::JoinRequest {
            token: token.to_string(),
            csr_pem: csr,
            description: sysinfo::describe(&self.inner.opts.engine),
            advertise_addr: advertise.to_string(),
            availability,
        };
        let reply = match skep_worker::join::join(&token, &remotes, join, transport_config(), JoinTiming::default()).await {
            Ok(r) => r,
            Err(JoinError::Refused(m)) => return Err(ApiError::invalid(m)),
            Err(e @ JoinError::ForeignCa { .. }) => return Err(ApiError::invalid(format!("rpc error: code = Unavailable desc = {e}"))),
            Err(JoinError::Timeout(last)) => return Err(ApiError::unavailable(format!("{} ({last})", msg::JOIN_TIMEOUT))),
            Err(e) => return Err(ApiError::internal(e.to_string())),
        };
        let tls = NodeTls { cert_pem: reply.cert_pem.clone(), key_pem: key.to_pem(), ca_pem: reply.ca_pem.clone() };
        let state = Membership {
            node_id: reply.node_id.clone(),
            cluster_id: reply.cluster_id.clone(),
            role: reply.role,
            raft_id: reply.raft_id,
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            managers: reply.managers.clone(),
            reseat: None,
        };
        let paths = &self.inner.paths;
        paths.wipe()?;
        self.set_kek(None);
        paths.save_tls(&tls, None)?;
        paths.save(&state)?;
        let running = match self.start_components(state.clone(), &tls, false).await {
            Ok(r) => r,
            Err(e) => {
                self.stop_components().await;
                let _ = paths.wipe();
                return Err(ApiError::internal(format!("{e:#}")));
            }
        };
        let manager = running.manager.clone();
        *self.inner.running.write().await = Some(running);
        if let Some(m) = manager {
            let seeds: Vec<SocketAddr> = reply.managers.iter().filter_map(|p| p.addr.parse().ok()).chain(remotes).collect();
            if let Err(e) = m.join_raft(&seeds).await {
                self.set_error(e.to_string());
                return Err(ApiError::unavailable(format!("{} ({e})", msg::JOIN_TIMEOUT)));
            }
        }
        self.set_error("");
        tracing::info!(node = %reply.node_id, role = %reply.role, "joined the swarm");
        Ok(())
    }

    /// `POST /swarm/leave`.
    pub async fn leave(&self, force: bool) -> ApiResult<()> {
        let _g = self.inner.lifecycle.lock().await;
        if let Some(state) = self.locked_state() {
            if !force {
                return Err(ApiError::unavailable(msg::LOCKED_LEAVE));
            }
            // its keys cannot be opened: nothing to tell anyone, only the files to forget
            self.inner.paths.wipe()?;
            self.set_locked(None);
            self.set_error("");
            tracing::info!(node = %state.node_id, "left the swarm (locked)");
            return Ok(());
        }
        let Some(state) = self.state().await else {
            return Err(ApiError::unavailable(msg::NOT_PART));
        };
        let manager = self.manager().await;
        if let Some(m) = &manager {
            if !force {
                let st = m.local_state();
                let managers = st.managers().count();
                let message = if managers <= 1 {
                    "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ".to_string()
                } else {
                    let reachable = st.managers().filter(|r| r.node.status.state == NodeState::Ready).count();
                    format!("You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves {} managers out of {}. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.", reachable.saturating_sub(1), managers)
                };
                return Err(ApiError::unavailable(message));
            }
        }
        // Tell the managers (best effort: a node may leave a swarm it cannot reach).
        let leader = self.inner.running.read().await.as_ref().map(|r| r.leader.clone());
        let single = manager.as_ref().is_some_and(|m| m.local_state().managers().count() <= 1);
        if let (Some(leader), false) = (leader, single) {
            if let Some(l) = manager.as_ref().and_then(|m| m.leader_addr()) {
                leader.set_leader(Some(l));
            }
            match leader.call(&Request::Leave, Policy::one_round(Duration::from_secs(5))).await {
                Ok(Response::Ok) => {}
                other => tracing::warn!("leaving without the managers' acknowledgement: {other:?}"),
            }
        }
        self.teardown_net().await;
        self.stop_components().await;
        self.inner.paths.wipe()?;
        self.set_error("");
        tracing::info!(node = %state.node_id, "left the swarm");
        Ok(())
    }
    pub(super) async fn running_parts(&self) -> anyhow::Result<(Membership, Endpoint, LeaderCaller)> {
        let r = self.inner.running.read().await;
        let r = r.as_ref().ok_or_else(|| anyhow::anyhow!("not in a swarm"))?;
        Ok((r.state.clone(), r.endpoint.clone(), r.leader.clone()))
    }

    pub(super) async fn set_running(&self, state: Membership, manager: Option<Manager>) -> anyhow::Result<()> {
        self.inner.paths.save(&state)?;
        if let Some(r) = self.inner.running.write().await.as_mut() {
            r.state = state;
            r.manager = manager;
        }
        Ok(())
    }

}

/// The addresses of `peers` (managers), those that parse.
pub(super) fn peer_addrs(peers: &[Peer]) -> Vec<SocketAddr> {
    peers.iter().filter_map(|p| p.addr.parse().ok()).collect()
}

/// Raft timing: the defaults, with the entries between snapshots from `SKEP_SNAPSHOT_INTERVAL` when set (at least
/// 100; for tests and operators who want snapshots sooner than every 10000 entries: the swarm spec's
/// `Raft.SnapshotInterval` is not applied yet).
fn raft_timing() -> RaftTiming {
    let mut t = RaftTiming::default();
    if let Some(n) = std::env::var("SKEP_SNAPSHOT_INTERVAL").ok().and_then(|v| v.parse::<u64>().ok()) {
        t.snapshot_interval = n.max(100);
    }
    t
}
