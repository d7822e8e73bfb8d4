//! The node supervisor: this node's swarm membership and the components it runs.
//!
//! Outside a swarm a node runs only the API. In a swarm it runs the QUIC endpoint, the agent (heartbeats, role
//! changes), the task manager with its engine and networking agent, and, as a manager, Raft and the store.
//!
//! # Layout
//! - this file: the [`NodeHandle`] and what it holds;
//! - [`lifecycle`]: init, join, leave, resume from disk, starting and stopping the components;
//! - [`roles`]: the agent's reports acted on: promotion, demotion, removal, certificate renewal;
//! - [`events`]: `/events`: what the manager's store versions say changed, buffered and broadcast;
//! - [`logs`]: task logs: this node's served to managers, any task's read for the API;
//! - [`volumes`]: the node's own volumes (`/volumes`), skep's or the Docker engine's;
//! - [`images`]: the node's own images (`/images`), skep's store or the Docker engine's;
//! - [`control`]: the API's operations on the cluster, each one read → decide (pure, in `skep_manager::control`)
//!   → propose through one generic path.

mod backup;
mod control;
mod events;
mod images;
mod lifecycle;
pub(crate) mod logs;
mod repair;
mod roles;
mod volumes;
pub use backup::{Backup, MAX_BACKUP};
pub use images::{LIST_FILTERS as IMAGE_LIST_FILTERS, PRUNE_FILTERS as IMAGE_PRUNE_FILTERS};
pub use volumes::{LIST_FILTERS as VOLUME_LIST_FILTERS, PRUNE_FILTERS as VOLUME_PRUNE_FILTERS};

use crate::error::{ApiError, ApiResult};
use anyhow::Context as _;
use crate::state::{Membership, Paths};
use crate::sysinfo;
use skep_manager::runtime::Manager;
use skep_pki::SecretKey;
use skep_transport::{Endpoint, LeaderCaller, TransportConfig};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Mutex, RwLock};

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
    /// A manager whose keys are sealed (autolock) and that has not been given the unlock key yet (moby's text).
    pub const LOCKED: &str = "Swarm is encrypted and needs to be unlocked before it can be used. Please use \"docker swarm unlock\" to unlock it.";
    /// Leave of a locked node without `--force` (moby's text).
    pub const LOCKED_LEAVE: &str = "Swarm is encrypted and locked. Please unlock it first or use `--force` to ignore this message.";
    /// Unlock of a node that is not locked (moby's text).
    pub const NOT_LOCKED: &str = "swarm is not locked";
    /// Unlock with a key that does not open the node's keys (moby's text).
    pub const INVALID_KEY: &str = "swarm could not be unlocked: invalid key provided";
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
    /// How much output each task keeps (`--log-opt max-size=…`, `--log-opt max-file=…`).
    pub log_limits: skep_worker::logs::LogLimits,
    /// Registries reached over plain HTTP (`--insecure-registry HOST:PORT`); every other one is HTTPS.
    pub insecure_registries: Vec<String>,
    /// Which images the process engine runs as host programs (`--host-programs`).
    pub host_programs: skep_worker::engine::process::image::HostPrograms,
}

/// The running swarm components.
struct Running {
    state: Membership,
    /// How this node reaches the leader (agent, task manager, renewal, leave); the agent keeps its managers current.
    leader: LeaderCaller,
    endpoint: Endpoint,
    manager: Option<Manager>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The networking agent (overlays, sandboxes, mesh, DNS), when it could start.
    net: Option<Arc<skep_worker::network::NetAgent>>,
    /// This node's task logs (its engine's).
    logs: Arc<dyn skep_manager::rpc::TaskLogSource>,
    /// What the agent reports about this node; a renewed certificate changes its `TLSInfo`.
    description: watch::Sender<skep_api::docker::NodeDescription>,
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
    /// This node's volumes (they exist in and out of a swarm, as Docker's do).
    volumes: volumes::Volumes,
    /// Events derived from the store by this node's manager (kept across role changes).
    events: events::EventHub,
    /// The web view's feed, from this node's manager (`crate::web`).
    web: Arc<crate::web::WebHub>,
    /// The registry client (digest pinning; the engines' pulls).
    registry: skep_registry::Client,
    /// The process engine's images (`<data root>/engine/images`).
    images: Arc<skep_worker::images::ImageStore>,
    /// What the metrics see of the task manager (kept across its restarts).
    task_watch: skep_worker::tasks::TaskWatch,
    /// The unlock key this node's keys on disk are sealed with now (autolock), `None` when they are not.
    kek: std::sync::Mutex<Option<SecretKey>>,
    /// Set while this node is a locked manager: its membership, waiting for `swarm unlock` to start it.
    locked: std::sync::Mutex<Option<Membership>>,
    /// Where the tasks' DNS servers count their answers (kept across networking agents).
    dns_queries: skep_worker::network::QueryCounters,
}

/// The cluster port's transport settings.
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

impl NodeHandle {
    /// A node with no swarm components running yet; call [`NodeHandle::resume`] to restart from disk.
    pub fn new(opts: NodeOptions) -> anyhow::Result<NodeHandle> {
        let paths = Paths::new(&opts.data_root);
        let volumes = match opts.engine.as_str() {
            "docker" => volumes::Volumes::Docker(
                bollard::Docker::connect_with_unix(crate::daemon::DOCKER_SOCKET, 120, bollard::API_DEFAULT_VERSION)
                    .context("connecting to the Docker engine")?,
            ),
            _ => volumes::Volumes::Local(skep_worker::volumes::VolumeStore::new(opts.data_root.join("volumes"))),
        };
        let registry = skep_registry::Client::new(opts.insecure_registries.clone());
        let images = Arc::new(skep_worker::images::ImageStore::new(opts.data_root.join("engine/images"), registry.clone()));
        Ok(NodeHandle {
            inner: Arc::new(NodeInner {
                images,
                registry,
                opts,
                paths,
                lifecycle: Mutex::new(()),
                running: RwLock::new(None),
                error: std::sync::Mutex::new(String::new()),
                manager: Arc::new(RwLock::new(None)),
                changing_role: std::sync::atomic::AtomicBool::new(false),
                volumes,
                events: Default::default(),
                web: Default::default(),
                task_watch: Default::default(),
                kek: Default::default(),
                locked: Default::default(),
                dns_queries: Default::default(),
            }),
        })
    }

    /// Engine name.
    pub fn engine(&self) -> &str {
        &self.inner.opts.engine
    }

    /// Which images the process engine runs as host programs.
    pub fn host_programs(&self) -> skep_worker::engine::process::image::HostPrograms {
        self.inner.opts.host_programs
    }

    /// The process engine's image store.
    pub fn images(&self) -> &Arc<skep_worker::images::ImageStore> {
        &self.inner.images
    }

    /// What the metrics see of the task manager: its tasks' states, its engine's start latency.
    pub fn task_watch(&self) -> &skep_worker::tasks::TaskWatch {
        &self.inner.task_watch
    }

    /// What the metrics see of the data plane: the DNS servers' answers, and the networking agent when one runs (the
    /// node is in a swarm and networking could start).
    pub async fn net_watch(
        &self,
    ) -> (&skep_worker::network::QueryCounters, Option<Arc<skep_worker::network::NetAgent>>) {
        let net = self.inner.running.read().await.as_ref().and_then(|r| r.net.clone());
        (&self.inner.dns_queries, net)
    }

    /// The registry client, with this daemon's insecure registries.
    pub fn registry(&self) -> &skep_registry::Client {
        &self.inner.registry
    }

    /// Data root.
    pub fn data_root(&self) -> &std::path::Path {
        &self.inner.opts.data_root
    }

    fn set_error(&self, e: impl Into<String>) {
        *self.inner.error.lock().unwrap_or_else(|p| p.into_inner()) = e.into();
    }

    /// The unlock key the node's keys are sealed with now.
    fn kek(&self) -> Option<SecretKey> {
        self.inner.kek.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_kek(&self, k: Option<SecretKey>) {
        *self.inner.kek.lock().unwrap_or_else(|p| p.into_inner()) = k;
    }

    /// The membership of a locked manager, waiting for its unlock key.
    fn locked_state(&self) -> Option<Membership> {
        self.inner.locked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_locked(&self, s: Option<Membership>) {
        *self.inner.locked.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }

    /// Whether this node is a locked manager (autolock): it serves nothing of the swarm until it is unlocked.
    pub fn is_locked(&self) -> bool {
        self.locked_state().is_some()
    }

    /// Last swarm error.
    pub fn error(&self) -> String {
        self.inner.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Restart the swarm components from disk, if this node was in a swarm.
    /// The node state, if in a swarm.
    pub async fn state(&self) -> Option<Membership> {
        self.inner.running.read().await.as_ref().map(|r| r.state.clone())
    }

    /// The web view's feed (`crate::web`).
    pub(crate) fn web(&self) -> &Arc<crate::web::WebHub> {
        &self.inner.web
    }

    /// The manager, if this node runs one.
    pub async fn manager(&self) -> Option<Manager> {
        self.inner.manager.read().await.clone()
    }

    /// For the agent's heartbeats: whether this node's manager (if it runs one now) can serve.
    fn manager_ready(&self) -> skep_worker::agent::ManagerReady {
        let manager = self.inner.manager.clone();
        std::sync::Arc::new(move || manager.try_read().ok().and_then(|m| m.as_ref().map(Manager::caught_up)))
    }

    /// The manager, or Docker's 503 for a worker / a node outside a swarm.
    pub async fn require_manager(&self) -> ApiResult<Manager> {
        if let Some(m) = self.manager().await {
            return Ok(m);
        }
        if self.is_locked() {
            return Err(ApiError::Unavailable(msg::LOCKED.into()));
        }
        match self.state().await {
            None => Err(ApiError::Unavailable(msg::NOT_IN_SWARM.into())),
            Some(_) => Err(ApiError::Unavailable(msg::WORKER.into())),
        }
    }

    /// What this node reports about itself, with the `TLSInfo` of its certificate chain and trust root.
    fn description(&self, cert_pem: &str, ca_pem: &str) -> skep_api::docker::NodeDescription {
        let mut d = sysinfo::describe(&self.inner.opts.engine);
        if let Ok(info) = skep_pki::node_tls_info(cert_pem, ca_pem) {
            d.tls_info = info;
        }
        d
    }
}
