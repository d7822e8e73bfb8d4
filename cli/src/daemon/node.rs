//! The node supervisor: this node's swarm membership and the components it runs.
//!
//! Outside a swarm a node runs only the API. In a swarm it runs the QUIC endpoint and the agent, and, as a manager,
//! Raft and the store. The supervisor owns the transitions between these: init, join, leave, restart from disk,
//! promotion and demotion (driven by the agent's reports), certificate renewal, and removal.

use super::state::{NodeState, Paths};
use super::sysinfo;
use anyhow::Context;
use skep_api::docker::{self, node_state, role, ClusterInfo, InitRequest, JoinRequest, JoinTokens, Node, Peer, TlsInfo};
use skep_api::wire::{self, ErrorKind, Request, Response};
use skep_manager::control::{self, ControlError};
use skep_manager::raft::RaftTiming;
use skep_manager::runtime::{Manager, ManagerConfig};
use skep_manager::store::{ClusterRecord, Op};
use skep_pki::{JoinToken, NodeKey, NodeTls, Role, RootCa};
use skep_transport::{Endpoint, Handler, TransportConfig};
use skep_worker::agent::{self, AgentConfig, AgentEvent};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch, Mutex, RwLock};

/// Docker's messages for the swarm states the API refuses.
pub mod msg {
    /// Not in a swarm.
    pub const NOT_IN_SWARM: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
    /// A worker.
    pub const WORKER: &str = "This node is not a swarm manager. Worker nodes can't be used to view or modify cluster state. Please run this command on a manager node or promote the current node to a manager.";
    /// Already in a swarm.
    pub const ALREADY: &str = "This node is already part of a swarm. Use \"docker swarm leave\" to leave this swarm and join another one.";
    /// Leave outside a swarm.
    pub const NOT_PART: &str = "This node is not part of a swarm";
    /// Join timed out.
    pub const JOIN_TIMEOUT: &str = "Timeout was reached before node joined. The attempt to join the swarm will continue in the background. Use the \"docker info\" command to see the current swarm status of your node.";
}

/// Settings fixed at daemon start.
#[derive(Clone, Debug)]
pub struct NodeOptions {
    /// Data root.
    pub data_root: PathBuf,
    /// Task engine name (`process` or `docker`), advertised as an engine label.
    pub engine: String,
    /// Prefix of the network namespaces the node creates (`None`: `sk` + node ID prefix).
    pub net_prefix: Option<String>,
}

/// The running swarm components.
struct Running {
    state: NodeState,
    /// Managers as the agent last heard them; the task manager reaches the leader through them.
    managers: Arc<std::sync::Mutex<Vec<Peer>>>,
    endpoint: Endpoint,
    manager: Option<Manager>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The networking agent (overlays, sandboxes, mesh, DNS), when it could start.
    net: Option<Arc<skep_worker::network::NetAgent>>,
}

/// The node. Cheap to clone.
#[derive(Clone)]
pub struct NodeHandle {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    opts: NodeOptions,
    paths: Paths,
    /// Serialises lifecycle changes (init, join, leave, role changes).
    lifecycle: Mutex<()>,
    running: RwLock<Option<Running>>,
    /// Last swarm error, shown in `/info`.
    error: std::sync::Mutex<String>,
    /// The manager, for the transport handler (swapped on promotion/demotion).
    manager: Arc<RwLock<Option<Manager>>>,
    /// A promotion or demotion is under way (the agent reports the desired role on every heartbeat).
    changing_role: std::sync::atomic::AtomicBool,
}

/// An API error with its HTTP status.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// `{"message": ...}`.
    pub message: String,
}

impl ApiError {
    /// Build one.
    pub fn new(status: u16, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
}

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        ApiError::new(e.status(), e.to_string())
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::new(500, format!("{e:#}"))
    }
}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, ApiError>;

fn transport_config() -> TransportConfig {
    // A dead peer is noticed by a call it leaves unacknowledged for 1 s (`silence_timeout`), which bounds failover;
    // idle connections keep the default 10 s idle timeout, so a thousand of them cost no keep-alive traffic to speak of.
    // A leader holds a connection from every node (and, briefly, the old one of a node that redials): the transport's
    // default of 1024 would refuse nodes in a cluster of about a thousand. QUIC connections share the one UDP socket,
    // so the bound is memory (tens of KiB each), not descriptors.
    TransportConfig {
        rpc_timeout: Duration::from_secs(5),
        silence_timeout: Duration::from_secs(1),
        max_connections: MAX_CONNECTIONS,
        ..Default::default()
    }
}

/// Connections a daemon accepts at once.
const MAX_CONNECTIONS: usize = 16_384;

/// The transport handler: every RPC goes to the manager, if this node runs one.
struct RpcHandler {
    manager: Arc<RwLock<Option<Manager>>>,
}

impl Handler<Request, Response> for RpcHandler {
    async fn handle(&self, peer: skep_transport::Peer, req: Request) -> Response {
        let identity = peer
            .certs
            .as_ref()
            .and_then(|c| c.first())
            .and_then(|der| skep_pki::identity_from_cert_der(der.as_ref()).ok());
        let m = self.manager.read().await.clone();
        match m {
            Some(m) => m.handle(identity, peer.addr, req).await,
            None => Response::Error(wire::WireError::new(ErrorKind::Unavailable, "this node is not a manager")),
        }
    }
}

/// Parse `IP`, `IP:port` or `0.0.0.0:2377`-style addresses; a bare IP gets `default_port`.
pub fn parse_addr(s: &str, default_port: u16) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, default_port));
    }
    Err(format!("invalid address '{s}': expected IP or IP:port"))
}

/// The IP to advertise when none was given: the listen IP if specific, else the only global address of the host.
fn pick_advertise(listen: SocketAddr, given: &str) -> ApiResult<SocketAddr> {
    if !given.is_empty() {
        let a = parse_addr(given, listen.port()).map_err(|e| ApiError::new(400, e))?;
        if a.ip().is_unspecified() {
            return Err(ApiError::new(400, "advertise address must be a non-zero IP address"));
        }
        return Ok(a);
    }
    if !listen.ip().is_unspecified() {
        return Ok(listen);
    }
    let out = std::process::Command::new("ip").args(["-o", "-4", "addr", "show", "scope", "global"]).output();
    let ips: Vec<IpAddr> = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_whitespace().nth(3))
            .filter_map(|cidr| cidr.split('/').next())
            .filter_map(|ip| ip.parse().ok())
            .collect(),
        Err(_) => vec![],
    };
    match ips.as_slice() {
        [ip] => Ok(SocketAddr::new(*ip, listen.port())),
        [] => Err(ApiError::new(400, "could not choose an IP address to advertise since this system has no global addresses - specify one with --advertise-addr")),
        _ => Err(ApiError::new(400, format!(
            "could not choose an IP address to advertise since this system has multiple addresses ({}) - specify one with --advertise-addr",
            ips.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

impl NodeHandle {
    /// A node with no swarm components running yet; call [`NodeHandle::resume`] to restart from disk.
    pub fn new(opts: NodeOptions) -> NodeHandle {
        let paths = Paths::new(&opts.data_root);
        NodeHandle {
            inner: Arc::new(NodeInner {
                opts,
                paths,
                lifecycle: Mutex::new(()),
                running: RwLock::new(None),
                error: std::sync::Mutex::new(String::new()),
                manager: Arc::new(RwLock::new(None)),
                changing_role: std::sync::atomic::AtomicBool::new(false),
            }),
        }
    }

    /// Engine name.
    pub fn engine(&self) -> &str {
        &self.inner.opts.engine
    }

    /// Data root.
    pub fn data_root(&self) -> &std::path::Path {
        &self.inner.opts.data_root
    }

    fn set_error(&self, e: impl Into<String>) {
        *self.inner.error.lock().unwrap_or_else(|p| p.into_inner()) = e.into();
    }

    /// Last swarm error.
    pub fn error(&self) -> String {
        self.inner.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Restart the swarm components from disk, if this node was in a swarm.
    pub async fn resume(&self) -> anyhow::Result<()> {
        let _g = self.inner.lifecycle.lock().await;
        let Some(state) = self.inner.paths.load()? else { return Ok(()) };
        let tls = self.inner.paths.load_tls().context("loading the node's certificates")?;
        let running = self.start_components(state.clone(), &tls, false).await?;
        *self.inner.running.write().await = Some(running);
        tracing::info!(node = %state.node_id, role = %state.role, "rejoined the swarm from disk");
        Ok(())
    }

    /// The node state, if in a swarm.
    pub async fn state(&self) -> Option<NodeState> {
        self.inner.running.read().await.as_ref().map(|r| r.state.clone())
    }

    /// The manager, if this node runs one.
    pub async fn manager(&self) -> Option<Manager> {
        self.inner.manager.read().await.clone()
    }

    /// The manager, or Docker's 503 for a worker / a node outside a swarm.
    pub async fn require_manager(&self) -> ApiResult<Manager> {
        if let Some(m) = self.manager().await {
            return Ok(m);
        }
        match self.state().await {
            None => Err(ApiError::new(503, msg::NOT_IN_SWARM)),
            Some(_) => Err(ApiError::new(503, msg::WORKER)),
        }
    }

    /// Bind the endpoint, start the manager (if `state.raft_id`), serve RPCs, start the agent and the supervisor.
    ///
    /// Boxed: this future spawns the supervisor, whose role changes call back into it.
    fn start_components<'a>(
        &'a self,
        state: NodeState,
        tls: &'a NodeTls,
        bootstrap: bool,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<Running>> + Send + 'a>> {
        Box::pin(self.start_components_inner(state, tls, bootstrap))
    }

    async fn start_components_inner(&self, state: NodeState, tls: &NodeTls, bootstrap: bool) -> anyhow::Result<Running> {
        let listen = parse_addr(&state.listen_addr, docker::defaults::CLUSTER_PORT).map_err(anyhow::Error::msg)?;
        let server = skep_pki::tls::server_config(tls)?;
        let client = skep_pki::tls::client_config(tls)?;
        let endpoint = Endpoint::bind(listen, server, client, transport_config())
            .with_context(|| format!("binding the cluster port {listen}"))?;
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let handler = Arc::new(RpcHandler { manager: self.inner.manager.clone() });
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
        let mut manager = None;
        if state.role == role::MANAGER {
            if let Some(raft_id) = state.raft_id {
                let m = self.start_manager(&state, raft_id, &endpoint).await?;
                if bootstrap {
                    m.bootstrap().await.map_err(|e| anyhow::anyhow!("{e}"))?;
                }
                manager = Some(m);
            }
        }
        *self.inner.manager.write().await = manager.clone();
        let (ev_tx, ev_rx) = mpsc::channel(64);
        let cfg = AgentConfig {
            addr: state.advertise_addr.clone(),
            description: self.description(&tls.ca_pem),
            managers: state.managers.clone(),
            period: Duration::from_secs(1),
        };
        tasks.push(tokio::spawn(agent::run(endpoint.clone(), cfg, ev_tx, stop_rx.clone())));
        let managers = Arc::new(std::sync::Mutex::new(state.managers.clone()));
        let engine = self.engine_instance().await?;
        let net = self.net_agent(&state).await;
        let tm = skep_worker::tasks::TaskManagerConfig {
            dir: self.inner.paths.swarm.join("worker"),
            managers: managers.clone(),
            net: net.clone(),
        };
        tasks.push(tokio::spawn(skep_worker::tasks::run(endpoint.clone(), engine, tm, stop_rx.clone())));
        tasks.push(tokio::spawn(self.clone().supervise(ev_rx, stop_rx.clone())));
        tasks.push(tokio::spawn(self.clone().renew_loop(stop_rx)));
        Ok(Running { state, managers, endpoint, manager, stop, tasks, net })
    }

    /// The networking agent; without it (not root, no netlink) the node runs only tasks without networks.
    async fn net_agent(&self, state: &NodeState) -> Option<Arc<skep_worker::network::NetAgent>> {
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
    async fn teardown_net(&self) {
        let net = self.inner.running.read().await.as_ref().and_then(|r| r.net.clone());
        if let Some(n) = net {
            n.teardown().await;
        }
    }

    /// The task engine this node runs tasks with.
    async fn engine_instance(&self) -> anyhow::Result<skep_worker::engine::AnyEngine> {
        use skep_worker::engine::{docker::DockerEngine, process::ProcessEngine, AnyEngine};
        Ok(match self.inner.opts.engine.as_str() {
            "docker" => AnyEngine::Docker(
                DockerEngine::connect(super::DOCKER_SOCKET).await.context("connecting to the Docker engine")?,
            ),
            _ => AnyEngine::Process(ProcessEngine::new(self.inner.opts.data_root.join("engine"))),
        })
    }

    async fn start_manager(&self, state: &NodeState, raft_id: u64, endpoint: &Endpoint) -> anyhow::Result<Manager> {
        let addr = parse_addr(&state.advertise_addr, docker::defaults::CLUSTER_PORT).map_err(anyhow::Error::msg)?;
        let cfg = ManagerConfig {
            node_id: state.node_id.clone(),
            raft_id,
            addr,
            dir: self.inner.paths.raft(),
            timing: RaftTiming::default(),
        };
        Ok(Manager::start(cfg, endpoint.clone()).await?)
    }

    fn description(&self, ca_pem: &str) -> skep_api::docker::NodeDescription {
        let mut d = sysinfo::describe(&self.inner.opts.engine);
        if let Ok(ca) = RootCa::from_pem(ca_pem, None) {
            d.tls_info = tls_info(&ca);
        }
        d
    }

    async fn stop_components(&self) {
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
        if self.inner.running.read().await.is_some() {
            return Err(ApiError::new(503, msg::ALREADY));
        }
        if req.force_new_cluster {
            return Err(ApiError::new(501, "--force-new-cluster is not supported by skep yet"));
        }
        if req.auto_lock_managers {
            return Err(ApiError::new(501, "autolock is not supported by skep yet"));
        }
        let listen_s = if req.listen_addr.is_empty() { "0.0.0.0:2377" } else { &req.listen_addr };
        let listen = parse_addr(listen_s, docker::defaults::CLUSTER_PORT).map_err(|e| ApiError::new(400, e))?;
        let advertise = pick_advertise(listen, &req.advertise_addr)?;
        let availability = if req.availability.is_empty() { docker::availability::ACTIVE.to_string() } else { req.availability.clone() };
        if !docker::availability::is_valid(&availability) {
            return Err(ApiError::new(400, format!("invalid availability '{availability}'")));
        }
        let spec = control::validate_spec(req.spec.clone())?;
        // Address pools: explicit ones must not overlap this host's routes; the default pool just skips them.
        let routes = super::sysinfo::host_routes();
        let (pool_nets, subnet_size) = if req.default_addr_pool.is_empty() {
            let (p, size) = control::networks::check_pools(&[], req.subnet_size, &[])?;
            (p, size)
        } else {
            control::networks::check_pools(&req.default_addr_pool, req.subnet_size, &routes)?
        };
        let pools: Vec<String> = pool_nets.iter().map(|p| p.to_string()).collect();
        let ingress_subnet = control::networks::auto_subnet(&Default::default(), &pool_nets, subnet_size, &routes)?;
        let subnet_size = u32::from(subnet_size);
        let (cluster_id, node_id) = {
            let mut rng = rand::thread_rng();
            (skep_api::id::new_id(&mut rng), skep_api::id::new_id(&mut rng))
        };
        let ca = RootCa::generate(&cluster_id).map_err(|e| ApiError::new(500, e.to_string()))?;
        let key = NodeKey::generate().map_err(|e| ApiError::new(500, e.to_string()))?;
        let csr = key.csr_pem().map_err(|e| ApiError::new(500, e.to_string()))?;
        let validity = Duration::from_nanos(spec.node_cert_expiry_ns() as u64);
        let cert = ca.sign_csr(&csr, &node_id, Role::Manager, &cluster_id, validity).map_err(|e| ApiError::new(500, e.to_string()))?;
        let tokens = JoinTokens {
            worker: JoinToken::generate(&ca.digest()).to_string(),
            manager: JoinToken::generate(&ca.digest()).to_string(),
        };
        let state = NodeState {
            node_id: node_id.clone(),
            cluster_id: cluster_id.clone(),
            role: role::MANAGER.into(),
            raft_id: Some(1),
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            managers: vec![Peer { node_id: node_id.clone(), addr: advertise.to_string() }],
        };
        let tls = NodeTls { cert_pem: cert, key_pem: key.to_pem(), ca_pem: ca.cert_pem().to_string() };
        let paths = &self.inner.paths;
        paths.wipe()?;
        paths.save_tls(&tls.key_pem, &tls.cert_pem, &tls.ca_pem)?;
        let result = async {
            let running = self.start_components(state.clone(), &tls, true).await?;
            let m = running.manager.clone().ok_or_else(|| anyhow::anyhow!("manager did not start"))?;
            let record = ClusterRecord {
                info: ClusterInfo {
                    id: cluster_id.clone(),
                    spec,
                    tls_info: tls_info(&ca),
                    default_addr_pool: pools,
                    subnet_size,
                    data_path_port: if req.data_path_port == 0 { docker::defaults::DATA_PATH_PORT } else { req.data_path_port },
                    ..Default::default()
                },
                tokens,
                ca_cert_pem: ca.cert_pem().to_string(),
                ca_key_pem: ca.key_pem().unwrap_or_default().to_string(),
            };
            let mut node = Node { id: node_id.clone(), description: self.description(ca.cert_pem()), ..Default::default() };
            node.spec.role = role::MANAGER.into();
            node.spec.availability = availability.clone();
            node.status.state = node_state::READY.into();
            node.status.addr = advertise.ip().to_string();
            let ingress = control::networks::ingress_network(skep_api::id::new_id(&mut rand::thread_rng()), ingress_subnet);
            m.propose(Op::Init {
                cluster: Box::new(record),
                node: Box::new(node),
                cluster_addr: advertise.to_string(),
                ingress: Some(Box::new(ingress)),
            })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
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
                Err(ApiError::new(500, format!("{e:#}")))
            }
        }
    }

    /// `POST /swarm/join`.
    pub async fn join(&self, req: JoinRequest) -> ApiResult<()> {
        let _g = self.inner.lifecycle.lock().await;
        if self.inner.running.read().await.is_some() {
            return Err(ApiError::new(503, msg::ALREADY));
        }
        let token = JoinToken::parse(req.join_token.trim()).map_err(|e| ApiError::new(400, format!("invalid join token: {e}")))?;
        if req.remote_addrs.is_empty() {
            return Err(ApiError::new(400, "at least one manager address is needed to join a swarm"));
        }
        let mut remotes = Vec::new();
        for r in &req.remote_addrs {
            remotes.push(parse_addr(r, docker::defaults::CLUSTER_PORT).map_err(|e| ApiError::new(400, e))?);
        }
        let listen_s = if req.listen_addr.is_empty() { "0.0.0.0:2377" } else { &req.listen_addr };
        let listen = parse_addr(listen_s, docker::defaults::CLUSTER_PORT).map_err(|e| ApiError::new(400, e))?;
        let advertise = pick_advertise(listen, &req.advertise_addr)?;
        let availability = if req.availability.is_empty() { docker::availability::ACTIVE.to_string() } else { req.availability.clone() };
        if !docker::availability::is_valid(&availability) {
            return Err(ApiError::new(400, format!("invalid availability '{availability}'")));
        }
        let key = NodeKey::generate().map_err(|e| ApiError::new(500, e.to_string()))?;
        let csr = key.csr_pem().map_err(|e| ApiError::new(500, e.to_string()))?;
        let (client_cfg, trust) =
            skep_pki::tls::join_client_config(&token.ca_digest).map_err(|e| ApiError::new(500, e.to_string()))?;
        let probe = Endpoint::client(client_cfg.clone(), transport_config()).map_err(|e| ApiError::new(500, e.to_string()))?;
        let join = wire::JoinRequest {
            token: token.to_string(),
            csr_pem: csr,
            description: sysinfo::describe(&self.inner.opts.engine),
            advertise_addr: advertise.to_string(),
            availability,
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut targets = remotes.clone();
        let mut i = 0usize;
        let mut last_err = String::new();
        let reply = loop {
            if tokio::time::Instant::now() >= deadline {
                probe.close();
                let m = if last_err.is_empty() { msg::JOIN_TIMEOUT.to_string() } else { format!("{} ({last_err})", msg::JOIN_TIMEOUT) };
                return Err(ApiError::new(503, m));
            }
            let target = targets[i % targets.len()];
            i += 1;
            let r = tokio::time::timeout(
                Duration::from_secs(5),
                probe.call_with::<Request, Response>(target, skep_pki::NODE_SAN, client_cfg.clone(), &Request::Join(join.clone())),
            )
            .await;
            match r {
                Ok(Ok(Response::Joined(j))) => break j,
                Ok(Ok(Response::NotLeader { leader_addr: Some(l) })) => {
                    if let Ok(a) = l.parse() {
                        targets.insert(0, a);
                        i = 0;
                    }
                    continue;
                }
                Ok(Ok(Response::Error(e))) if matches!(e.kind, ErrorKind::Unauthorized | ErrorKind::InvalidArgument) => {
                    probe.close();
                    return Err(ApiError::new(400, e.message));
                }
                Ok(Ok(other)) => last_err = format!("{other:?}"),
                Ok(Err(skep_transport::TransportError::Tls(e))) => {
                    // the manager did not present the CA named in the token
                    probe.close();
                    return Err(ApiError::new(400, format!(
                        "rpc error: code = Unavailable desc = the manager at {target} does not hold the CA named in the join token ({e})"
                    )));
                }
                Ok(Err(e)) => last_err = e.to_string(),
                Err(_) => last_err = "timed out".into(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        probe.close();
        if trust.ca_pem().is_some_and(|ca| pem_der(&ca) != pem_der(&reply.ca_pem)) {
            return Err(ApiError::new(500, "the manager returned a CA other than the one it presented"));
        }
        let tls = NodeTls { cert_pem: reply.cert_pem.clone(), key_pem: key.to_pem(), ca_pem: reply.ca_pem.clone() };
        let state = NodeState {
            node_id: reply.node_id.clone(),
            cluster_id: reply.cluster_id.clone(),
            role: reply.role.clone(),
            raft_id: reply.raft_id,
            listen_addr: listen.to_string(),
            advertise_addr: advertise.to_string(),
            managers: reply.managers.clone(),
        };
        let paths = &self.inner.paths;
        paths.wipe()?;
        paths.save_tls(&tls.key_pem, &tls.cert_pem, &tls.ca_pem)?;
        paths.save(&state)?;
        let running = match self.start_components(state.clone(), &tls, false).await {
            Ok(r) => r,
            Err(e) => {
                self.stop_components().await;
                let _ = paths.wipe();
                return Err(ApiError::new(500, format!("{e:#}")));
            }
        };
        let manager = running.manager.clone();
        *self.inner.running.write().await = Some(running);
        if let Some(m) = manager {
            let seeds: Vec<SocketAddr> = reply.managers.iter().filter_map(|p| p.addr.parse().ok()).chain(remotes).collect();
            if let Err(e) = m.join_raft(&seeds).await {
                self.set_error(e.to_string());
                return Err(ApiError::new(503, format!("{} ({e})", msg::JOIN_TIMEOUT)));
            }
        }
        self.set_error("");
        tracing::info!(node = %reply.node_id, role = %reply.role, "joined the swarm");
        Ok(())
    }

    /// `POST /swarm/leave`.
    pub async fn leave(&self, force: bool) -> ApiResult<()> {
        let _g = self.inner.lifecycle.lock().await;
        let Some(state) = self.state().await else {
            return Err(ApiError::new(503, msg::NOT_PART));
        };
        let manager = self.manager().await;
        if let Some(m) = &manager {
            if !force {
                let st = m.local_state();
                let managers = st.managers().count();
                let message = if managers <= 1 {
                    "You are attempting to leave the swarm on a node that is participating as a manager. Removing the last manager erases all current state of the swarm. Use `--force` to ignore this message. ".to_string()
                } else {
                    let reachable = st.managers().filter(|r| r.node.status.state == node_state::READY).count();
                    format!("You are attempting to leave the swarm on a node that is participating as a manager. Removing this node leaves {} managers out of {}. Without a Raft quorum your swarm will be inaccessible. The only way to restore a swarm that has lost consensus is to reinitialize it with `--force-new-cluster`. Use `--force` to suppress this message.", reachable.saturating_sub(1), managers)
                };
                return Err(ApiError::new(503, message));
            }
        }
        // Tell the managers (best effort: a node may leave a swarm it cannot reach).
        let endpoint = self.inner.running.read().await.as_ref().map(|r| r.endpoint.clone());
        let single = manager.as_ref().is_some_and(|m| m.local_state().managers().count() <= 1);
        if let (Some(ep), false) = (endpoint, single) {
            let mut targets: Vec<SocketAddr> = state
                .managers
                .iter()
                .filter(|p| p.node_id != state.node_id)
                .filter_map(|p| p.addr.parse().ok())
                .collect();
            if let Some(l) = manager.as_ref().and_then(|m| m.leader_addr()) {
                targets.insert(0, l);
            }
            for _ in 0..3 {
                let Some(&t) = targets.first() else { break };
                match tokio::time::timeout(Duration::from_secs(5), ep.call::<Request, Response>(t, skep_pki::NODE_SAN, &Request::Leave)).await {
                    Ok(Ok(Response::Ok)) => break,
                    Ok(Ok(Response::NotLeader { leader_addr: Some(l) })) => {
                        if let Ok(a) = l.parse() {
                            targets.insert(0, a);
                        }
                    }
                    _ => {
                        targets.remove(0);
                    }
                }
            }
        }
        self.teardown_net().await;
        self.stop_components().await;
        self.inner.paths.wipe()?;
        self.set_error("");
        tracing::info!(node = %state.node_id, "left the swarm");
        Ok(())
    }

    // -------------------------------------------------------------------------------------------------------------
    // role changes, removal, renewal

    async fn supervise(self, mut events: mpsc::Receiver<AgentEvent>, mut stop: watch::Receiver<bool>) {
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
                        *r.managers.lock().unwrap_or_else(|p| p.into_inner()) = peers.clone();
                        r.state.managers = peers;
                        if let Err(e) = self.inner.paths.save(&r.state) {
                            tracing::warn!("saving the manager list: {e}");
                        }
                    }
                }
                AgentEvent::Desired { role: desired, raft_id } => {
                    let current = self.state().await.map(|s| (s.role, s.raft_id));
                    let Some((current_role, current_raft)) = current else { continue };
                    let promote = desired == role::MANAGER && current_role == role::WORKER && raft_id.is_some();
                    let demote = desired == role::WORKER && current_role == role::MANAGER && raft_id.is_none();
                    let _ = current_raft;
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

    /// Ask a manager for a certificate for a new key; returns the new TLS material (not yet saved).
    async fn renew(&self, state: &NodeState, endpoint: &Endpoint) -> anyhow::Result<NodeTls> {
        let key = NodeKey::generate()?;
        let csr = key.csr_pem()?;
        let mut targets: Vec<SocketAddr> = state.managers.iter().filter_map(|p| p.addr.parse().ok()).collect();
        if targets.is_empty() {
            anyhow::bail!("no managers known");
        }
        let req = Request::RenewCert { csr_pem: csr };
        let mut last = String::new();
        for _ in 0..2 {
            for t in std::mem::take(&mut targets) {
                match tokio::time::timeout(Duration::from_secs(5), endpoint.call::<Request, Response>(t, skep_pki::NODE_SAN, &req)).await {
                    Ok(Ok(Response::Cert { cert_pem, ca_pem })) => {
                        return Ok(NodeTls { cert_pem, key_pem: key.to_pem(), ca_pem });
                    }
                    Ok(Ok(other)) => last = format!("{other:?}"),
                    Ok(Err(e)) => last = e.to_string(),
                    Err(_) => last = "timed out".into(),
                }
                targets.push(t);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        anyhow::bail!("certificate renewal failed: {last}")
    }

    async fn install_tls(&self, tls: &NodeTls) -> anyhow::Result<()> {
        let server = skep_pki::tls::server_config(tls)?;
        let client = skep_pki::tls::client_config(tls)?;
        if let Some(r) = self.inner.running.read().await.as_ref() {
            r.endpoint.set_tls(Some(server), client)?;
        }
        self.inner.paths.save_tls(&tls.key_pem, &tls.cert_pem, &tls.ca_pem)?;
        Ok(())
    }

    /// Become a manager: a manager certificate, then Raft (a fresh log: the leader sends a snapshot), then ask the
    /// leader to make us a voter. The endpoint and the agent keep running; only their TLS identity changes.
    async fn promote(&self, raft_id: u64) -> anyhow::Result<()> {
        let _g = self.inner.lifecycle.lock().await;
        let (state, endpoint) = self.running_parts().await?;
        if state.role == role::MANAGER {
            return Ok(());
        }
        let tls = self.renew(&state, &endpoint).await?;
        let id = skep_pki::identity_from_cert_pem(&tls.cert_pem)?;
        anyhow::ensure!(id.role == Role::Manager, "the managers issued a {:?} certificate for a promotion", id.role);
        self.install_tls(&tls).await?;
        let _ = std::fs::remove_dir_all(self.inner.paths.raft());
        let mut new_state = state.clone();
        new_state.role = role::MANAGER.into();
        new_state.raft_id = Some(raft_id);
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
    async fn demote(&self) -> anyhow::Result<()> {
        let _g = self.inner.lifecycle.lock().await;
        let (state, endpoint) = self.running_parts().await?;
        if state.role == role::WORKER {
            return Ok(());
        }
        let tls = self.renew(&state, &endpoint).await?;
        let old = self.inner.manager.write().await.take();
        if let Some(m) = old {
            m.shutdown().await;
        }
        self.install_tls(&tls).await?;
        let _ = std::fs::remove_dir_all(self.inner.paths.raft());
        let mut new_state = state.clone();
        new_state.role = role::WORKER.into();
        new_state.raft_id = None;
        self.set_running(new_state, None).await?;
        self.set_error("");
        tracing::info!(node = %state.node_id, "demoted to worker");
        Ok(())
    }

    async fn running_parts(&self) -> anyhow::Result<(NodeState, Endpoint)> {
        let r = self.inner.running.read().await;
        let r = r.as_ref().ok_or_else(|| anyhow::anyhow!("not in a swarm"))?;
        Ok((r.state.clone(), r.endpoint.clone()))
    }

    async fn set_running(&self, state: NodeState, manager: Option<Manager>) -> anyhow::Result<()> {
        self.inner.paths.save(&state)?;
        if let Some(r) = self.inner.running.write().await.as_mut() {
            r.state = state;
            r.manager = manager;
        }
        Ok(())
    }

    /// Renew the node certificate at a random point between 50% and 80% of its lifetime.
    async fn renew_loop(self, mut stop: watch::Receiver<bool>) {
        loop {
            let wait = match self.inner.paths.load_tls().ok().and_then(|t| skep_pki::identity_from_cert_pem(&t.cert_pem).ok()) {
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
                r.as_ref().map(|r| (r.state.clone(), r.endpoint.clone()))
            };
            let Some((state, endpoint)) = snapshot else { return };
            match self.renew(&state, &endpoint).await {
                Ok(tls) => match self.install_tls(&tls).await {
                    Ok(()) => tracing::info!("node certificate renewed"),
                    Err(e) => tracing::warn!("installing the renewed certificate: {e:#}"),
                },
                Err(e) => tracing::warn!("{e:#}"),
            }
        }
    }

    // -------------------------------------------------------------------------------------------------------------
    // control API

    /// `GET /swarm`.
    pub async fn swarm(&self) -> ApiResult<docker::Swarm> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let c = st.cluster.as_ref().ok_or_else(|| ApiError::new(503, control::NO_LEADER))?;
        Ok(docker::Swarm { cluster: c.info.clone(), join_tokens: c.tokens.clone() })
    }

    /// `POST /swarm/update`.
    pub async fn update_swarm(&self, version: u64, spec: docker::SwarmSpec, rotate_worker: bool, rotate_manager: bool) -> ApiResult<()> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let digest = st
            .cluster
            .as_ref()
            .and_then(|c| RootCa::from_pem(&c.ca_cert_pem, None).ok())
            .map(|ca| ca.digest())
            .ok_or_else(|| ApiError::new(503, control::NO_LEADER))?;
        let op = control::update_swarm(&st, version, spec, rotate_worker, rotate_manager, &mut || JoinToken::generate(&digest).to_string())?;
        m.propose(op).await?;
        Ok(())
    }

    /// `GET /nodes`.
    pub async fn nodes(&self) -> ApiResult<Vec<Node>> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        Ok(m.node_views(&st))
    }

    /// `GET /nodes/{id}`.
    pub async fn node(&self, reference: &str) -> ApiResult<Node> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let rec = st.resolve_node(reference).map_err(ControlError::from)?;
        Ok(st.node_view(rec, m.leader()))
    }

    /// `POST /nodes/{id}/update`.
    pub async fn update_node(&self, reference: &str, version: u64, spec: docker::NodeSpec) -> ApiResult<()> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let (_, op) = control::update_node(&st, reference, version, spec)?;
        m.propose(op).await?;
        Ok(())
    }

    /// `DELETE /nodes/{id}`.
    pub async fn remove_node(&self, reference: &str, force: bool) -> ApiResult<()> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let (_, op) = control::remove_node(&st, reference, force)?;
        m.propose(op).await?;
        Ok(())
    }

    /// `POST /services/create`: returns the new ID.
    pub async fn create_service(&self, spec: docker::ServiceSpec) -> ApiResult<String> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let id = skep_api::id::new_id(&mut rand::thread_rng());
        let op = control::services::create(&st, spec, id.clone())?;
        m.propose(op).await?;
        Ok(id)
    }

    /// `POST /services/{id}/update`.
    pub async fn update_service(&self, reference: &str, version: u64, spec: docker::ServiceSpec, rollback: bool) -> ApiResult<()> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let op = control::services::update(&st, reference, version, spec, rollback)?;
        m.propose(op).await?;
        Ok(())
    }

    /// `DELETE /services/{id}`.
    pub async fn remove_service(&self, reference: &str) -> ApiResult<()> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let op = control::services::remove(&st, reference)?;
        m.propose(op).await?;
        Ok(())
    }

    /// `GET /services`.
    pub async fn services(&self, f: &skep_api::filters::Filters, status: bool) -> ApiResult<Vec<docker::Service>> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let list = control::services::filter_services(&st, f)?;
        Ok(list.into_iter().map(|s| control::services::view(&st, s, status, false)).collect())
    }

    /// `GET /services/{id}`.
    pub async fn service(&self, reference: &str, insert_defaults: bool) -> ApiResult<docker::Service> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let s = st.resolve_service(reference).map_err(ControlError::from)?;
        Ok(control::services::view(&st, s, false, insert_defaults))
    }

    /// `GET /tasks`.
    pub async fn tasks(&self, f: &skep_api::filters::Filters) -> ApiResult<Vec<docker::Task>> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        Ok(control::services::filter_tasks(&st, f)?.into_iter().cloned().collect())
    }

    /// `GET /tasks/{id}`.
    pub async fn task(&self, reference: &str) -> ApiResult<docker::Task> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        if let Some(t) = st.tasks.get(reference) {
            return Ok(t.clone());
        }
        let matches: Vec<_> = st.tasks.values().filter(|t| !reference.is_empty() && t.id.starts_with(reference)).collect();
        match matches.as_slice() {
            [t] => Ok((*t).clone()),
            [] => Err(ApiError::new(404, format!("task {reference} not found"))),
            _ => Err(ApiError::new(400, format!("task {reference} is ambiguous ({} matches found)", matches.len()))),
        }
    }

    /// `POST /networks/create`: returns the new ID.
    pub async fn create_network(&self, req: docker::NetworkCreateRequest) -> ApiResult<String> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let id = skep_api::id::new_id(&mut rand::thread_rng());
        let op = control::networks::create(&st, req, id.clone(), &super::sysinfo::host_routes())?;
        m.propose(op).await?;
        Ok(id)
    }

    /// `DELETE /networks/{id}`. While only tasks of removed services still hold addresses on the network (they are
    /// stopping: `stack rm` deletes services and then their networks at once), wait for them for up to 10 s rather
    /// than fail, as docker-api.md §4 (stack rm) suggests.
    pub async fn remove_network(&self, reference: &str) -> ApiResult<()> {
        let m = self.require_manager().await?;
        for attempt in 0..50 {
            let st = m.read().await?;
            let op = control::networks::remove(&st, reference)?;
            match m.propose(op).await {
                Ok(_) => return Ok(()),
                Err(e) if attempt < 49 && e.to_string().contains("is in use by task") => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// `GET /networks`.
    pub async fn networks(&self, f: &skep_api::filters::Filters) -> ApiResult<Vec<docker::Network>> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        Ok(control::networks::list(&st, f)?)
    }

    /// `GET /networks/{id}`: with the tasks attached.
    pub async fn network(&self, reference: &str) -> ApiResult<docker::Network> {
        let m = self.require_manager().await?;
        let st = m.read().await?;
        let rec = st.resolve_network(reference).map_err(ControlError::from)?;
        Ok(control::networks::view(&st, rec, true))
    }

    /// Internal KV write through Raft (benchmarks).
    pub async fn kv_put(&self, key: String, value: Vec<u8>) -> ApiResult<u64> {
        let m = self.require_manager().await?;
        Ok(m.propose(Op::KvPut { key, value }).await?.index)
    }

    /// `Info.Swarm`.
    pub async fn swarm_info(&self) -> docker::SwarmInfo {
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

fn tls_info(ca: &RootCa) -> TlsInfo {
    use base64_lite::encode;
    TlsInfo {
        trust_root: ca.cert_pem().to_string(),
        cert_issuer_subject: encode(&ca.subject_der()),
        cert_issuer_public_key: encode(&ca.public_key_der()),
    }
}

fn pem_der(pem: &str) -> String {
    pem.lines().filter(|l| !l.starts_with("-----")).collect::<String>()
}


/// Standard base64, enough for TLSInfo (avoids a dependency for 20 lines).
mod base64_lite {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    pub fn encode(b: &[u8]) -> String {
        let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
        for c in b.chunks(3) {
            let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
            out.push(T[(n >> 18) as usize & 63] as char);
            out.push(T[(n >> 12) as usize & 63] as char);
            out.push(if c.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
            out.push(if c.len() > 2 { T[n as usize & 63] as char } else { '=' });
        }
        out
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn matches_rfc4648_vectors() {
            assert_eq!(super::encode(b""), "");
            assert_eq!(super::encode(b"f"), "Zg==");
            assert_eq!(super::encode(b"fo"), "Zm8=");
            assert_eq!(super::encode(b"foobar"), "Zm9vYmFy");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_a_default_port() {
        assert_eq!(parse_addr("10.0.0.1", 2377).unwrap().to_string(), "10.0.0.1:2377");
        assert_eq!(parse_addr("10.0.0.1:4000", 2377).unwrap().port(), 4000);
        assert!(parse_addr("nonsense", 2377).is_err());
        assert!(pick_advertise("0.0.0.0:2377".parse().unwrap(), "0.0.0.0").is_err());
        assert_eq!(pick_advertise("10.1.1.1:2377".parse().unwrap(), "").unwrap().to_string(), "10.1.1.1:2377");
    }
}
