//! A real single-manager cluster over QUIC for the integration tests: a fresh CA, one manager bootstrapped and
//! initialised, served through the crate's own [`RpcHandler`].
// Compiled into each test binary, which uses only part of it.
#![allow(dead_code)]

use skep_api::docker::{Availability, JoinTokens, Node, NodeRole};
use skep_manager::raft::RaftTiming;
use skep_manager::rpc::RpcHandler;
use skep_manager::runtime::{Manager, ManagerConfig};
use skep_manager::store::{ClusterRecord, Op};
use skep_pki::{JoinToken, NodeKey, NodeTls, RootCa};
use skep_transport::{Endpoint, TransportConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::RwLock;

/// The cluster and what a test needs to call it.
pub struct Fixture {
    /// Holds the Raft log and snapshot; removed on drop.
    _dir: tempfile::TempDir,
    /// The manager (leader).
    pub manager: Manager,
    /// Its cluster address.
    pub addr: SocketAddr,
    /// The cluster's root CA (with its key, to sign test certificates).
    pub ca: RootCa,
    /// The cluster ID.
    pub cluster_id: String,
    /// The current join tokens.
    pub tokens: JoinTokens,
    /// Ends the RPC server.
    serving: tokio::sync::watch::Sender<bool>,
}

/// Key and certificate of `node_id` with `role`, signed by `ca`.
pub fn node_tls(ca: &RootCa, node_id: &str, role: NodeRole, cluster: &str) -> NodeTls {
    let key = NodeKey::generate().unwrap();
    let cert = ca.sign_csr(&key.csr_pem().unwrap(), node_id, role, cluster, Duration::from_secs(3600)).unwrap();
    NodeTls { cert_pem: cert, key_pem: key.to_pem(), ca_pem: ca.cert_pem().to_string() }
}

/// Start a manager, serve it, bootstrap Raft and initialise the swarm.
pub async fn cluster() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cluster_id = "c0000000000000000000000001".to_string();
    let ca = RootCa::generate(&cluster_id).unwrap();
    let node_id = "m0000000000000000000000001".to_string();
    let tls = node_tls(&ca, &node_id, NodeRole::Manager, &cluster_id);
    let ep = Endpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        skep_pki::tls::server_config(&tls).unwrap(),
        skep_pki::tls::client_config(&tls).unwrap(),
        TransportConfig::default(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    let dek = Some(skep_pki::SecretKey::generate().unwrap());
    let cfg = ManagerConfig {
        node_id: node_id.clone(),
        raft_id: 1,
        addr,
        dir: dir.path().join("raft"),
        timing: RaftTiming::default(),
        dek,
    };
    let manager = Manager::start(cfg, ep.clone()).await.unwrap();
    let (serving, mut rx) = tokio::sync::watch::channel(false);
    let server = ep.clone();
    let h = Arc::new(RpcHandler::new(Arc::new(RwLock::new(Some(manager.clone())))));
    tokio::spawn(async move { server.serve(h, async move { let _ = rx.wait_for(|s| *s).await; }).await });
    manager.bootstrap().await.unwrap();
    let tokens = JoinTokens { worker: JoinToken::generate(&ca.digest()).to_string(), manager: JoinToken::generate(&ca.digest()).to_string() };
    let record = ClusterRecord {
        info: skep_api::docker::ClusterInfo { id: cluster_id.clone(), spec: Default::default(), ..Default::default() },
        tokens: tokens.clone(),
        ca_cert_pem: ca.cert_pem().into(),
        ca_key_pem: ca.key_pem().unwrap().into(),
        unlock_key: String::new(),
        root_rotation: None,
    };
    let mut node = Node { id: node_id, ..Default::default() };
    node.spec.role = NodeRole::Manager;
    node.spec.availability = Availability::Active;
    manager.propose(Op::Init { cluster: Box::new(record), node: Box::new(node), cluster_addr: addr.to_string(), ingress: None }).await.unwrap();
    Fixture { _dir: dir, manager, addr, ca, cluster_id, tokens, serving }
}

impl Fixture {
    /// Stop serving and stop the manager.
    pub async fn stop(self) {
        let _ = self.serving.send(true);
        self.manager.shutdown().await;
    }
}
