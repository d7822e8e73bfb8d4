//! Every RPC kind against a real single-manager cluster over QUIC: a caller without a certificate may only attempt
//! `Join` (and needs a valid token for it), a certificate from another CA fails the handshake, a worker certificate
//! cannot make manager calls, and a removed node is refused.

use skep_api::docker::{role, JoinTokens, Node};
use skep_api::wire::{ErrorKind, Heartbeat, JoinRequest, RaftKind, Request, Response};
use skep_manager::raft::RaftTiming;
use skep_manager::runtime::{Manager, ManagerConfig};
use skep_manager::store::{ClusterRecord, Op};
use skep_pki::{JoinToken, NodeKey, NodeTls, Role, RootCa};
use skep_transport::{Endpoint, TransportConfig, TransportError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    manager: Manager,
    addr: SocketAddr,
    ca: RootCa,
    cluster_id: String,
    tokens: JoinTokens,
    stop: tokio::sync::watch::Sender<bool>,
}

struct H(Manager);
impl skep_transport::Handler<Request, Response> for H {
    async fn handle(&self, peer: skep_transport::Peer, req: Request) -> Response {
        let id = peer.certs.as_ref().and_then(|c| c.first()).and_then(|d| skep_pki::identity_from_cert_der(d.as_ref()).ok());
        self.0.handle(id, peer.addr, req).await
    }
}

fn node_tls(ca: &RootCa, node_id: &str, role: Role, cluster: &str) -> NodeTls {
    let key = NodeKey::generate().unwrap();
    let cert = ca.sign_csr(&key.csr_pem().unwrap(), node_id, role, cluster, Duration::from_secs(3600)).unwrap();
    NodeTls { cert_pem: cert, key_pem: key.to_pem(), ca_pem: ca.cert_pem().to_string() }
}

async fn cluster() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cluster_id = "c0000000000000000000000001".to_string();
    let ca = RootCa::generate(&cluster_id).unwrap();
    let node_id = "m0000000000000000000000001".to_string();
    let tls = node_tls(&ca, &node_id, Role::Manager, &cluster_id);
    let ep = Endpoint::bind(
        "127.0.0.1:0".parse().unwrap(),
        skep_pki::tls::server_config(&tls).unwrap(),
        skep_pki::tls::client_config(&tls).unwrap(),
        TransportConfig::default(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    let cfg = ManagerConfig { node_id: node_id.clone(), raft_id: 1, addr, dir: dir.path().join("raft"), timing: RaftTiming::default() };
    let manager = Manager::start(cfg, ep.clone()).await.unwrap();
    let (stop, mut rx) = tokio::sync::watch::channel(false);
    let server = ep.clone();
    let h = Arc::new(H(manager.clone()));
    tokio::spawn(async move { server.serve(h, async move { let _ = rx.wait_for(|s| *s).await; }).await });
    manager.bootstrap().await.unwrap();
    let tokens = JoinTokens { worker: JoinToken::generate(&ca.digest()).to_string(), manager: JoinToken::generate(&ca.digest()).to_string() };
    let record = ClusterRecord {
        info: skep_api::docker::ClusterInfo { id: cluster_id.clone(), spec: Default::default(), ..Default::default() },
        tokens: tokens.clone(),
        ca_cert_pem: ca.cert_pem().into(),
        ca_key_pem: ca.key_pem().unwrap().into(),
    };
    let mut node = Node { id: node_id, ..Default::default() };
    node.spec.role = role::MANAGER.into();
    node.spec.availability = "active".into();
    manager.propose(Op::Init { cluster: Box::new(record), node: Box::new(node), cluster_addr: addr.to_string(), ingress: None }).await.unwrap();
    Fixture { _dir: dir, manager, addr, ca, cluster_id, tokens, stop }
}

fn every_request_but_join() -> Vec<Request> {
    vec![
        Request::Heartbeat(Heartbeat { description: None, addr: String::new() }),
        Request::RenewCert { csr_pem: NodeKey::generate().unwrap().csr_pem().unwrap() },
        Request::Raft { kind: RaftKind::Append, payload: vec![] },
        Request::Raft { kind: RaftKind::Vote, payload: vec![] },
        Request::Raft { kind: RaftKind::Snapshot, payload: vec![] },
        Request::Propose { command: b"{}".to_vec() },
        Request::ReadIndex,
        Request::RaftJoin { raft_id: 9 },
        Request::Leave,
    ]
}

fn kind(r: &Response) -> Option<ErrorKind> {
    match r {
        Response::Error(e) => Some(e.kind),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_without_a_certificate_can_only_try_to_join_and_needs_a_valid_token() {
    let f = cluster().await;
    let (cfg, _trust) = skep_pki::tls::join_client_config(&f.ca.digest()).unwrap();
    let ep = Endpoint::client(cfg.clone(), TransportConfig::default()).unwrap();
    for req in every_request_but_join() {
        let r: Response = ep.call_with(f.addr, skep_pki::NODE_SAN, cfg.clone(), &req).await.unwrap();
        assert_eq!(kind(&r), Some(ErrorKind::Unauthorized), "{req:?} → {r:?}");
    }
    let join = |token: String| {
        Request::Join(JoinRequest {
            token,
            csr_pem: NodeKey::generate().unwrap().csr_pem().unwrap(),
            description: Default::default(),
            advertise_addr: "127.0.0.9:2377".into(),
            availability: String::new(),
        })
    };
    // garbage, a token of another CA, a right-CA token with a made-up secret: all refused
    let other = RootCa::generate("x").unwrap();
    for bad in ["nonsense".to_string(), JoinToken::generate(&other.digest()).to_string(), JoinToken::generate(&f.ca.digest()).to_string()] {
        let r: Response = ep.call_with(f.addr, skep_pki::NODE_SAN, cfg.clone(), &join(bad.clone())).await.unwrap();
        assert_eq!(kind(&r), Some(ErrorKind::Unauthorized), "{bad}: {r:?}");
    }
    // the real worker token gets a worker certificate with an ID chosen by the CA
    match ep.call_with::<Request, Response>(f.addr, skep_pki::NODE_SAN, cfg.clone(), &join(f.tokens.worker.clone())).await.unwrap() {
        Response::Joined(j) => {
            let id = skep_pki::identity_from_cert_pem(&j.cert_pem).unwrap();
            assert_eq!(id.role, Role::Worker);
            assert_eq!(id.node_id, j.node_id);
            assert_eq!(id.cluster_id, f.cluster_id);
            assert_eq!(j.raft_id, None);
        }
        other => panic!("{other:?}"),
    }
    let _ = f.stop.send(true);
    f.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake_for_every_rpc() {
    let f = cluster().await;
    let other = RootCa::generate("evil").unwrap();
    // trusts our CA for the server, presents a client certificate of another CA
    let mut mixed = node_tls(&other, "e0000000000000000000000001", Role::Manager, &f.cluster_id);
    let client_cert = mixed.cert_pem.clone();
    mixed.ca_pem = f.ca.cert_pem().into();
    mixed.cert_pem = client_cert;
    let ep = Endpoint::client(skep_pki::tls::client_config(&mixed).unwrap(), TransportConfig::default()).unwrap();
    for req in every_request_but_join() {
        let r = ep.call::<Request, Response>(f.addr, skep_pki::NODE_SAN, &req).await;
        assert!(matches!(r, Err(TransportError::Tls(_)) | Err(TransportError::Connection(_)) | Err(TransportError::Closed)), "{req:?} → {r:?}");
    }
    let _ = f.stop.send(true);
    f.manager.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_certificate_cannot_make_manager_calls_and_a_removed_node_is_refused() {
    let f = cluster().await;
    let wid = "w0000000000000000000000001";
    let mut node = Node { id: wid.into(), ..Default::default() };
    node.spec.role = role::WORKER.into();
    f.manager.propose(Op::AddNode { node: Box::new(node), cluster_addr: "127.0.0.9:2377".into() }).await.unwrap();
    let tls = node_tls(&f.ca, wid, Role::Worker, &f.cluster_id);
    let ep = Endpoint::client(skep_pki::tls::client_config(&tls).unwrap(), TransportConfig::default()).unwrap();
    for req in [Request::Raft { kind: RaftKind::Vote, payload: vec![] }, Request::Propose { command: vec![] }, Request::ReadIndex, Request::RaftJoin { raft_id: 2 }] {
        let r: Response = ep.call(f.addr, skep_pki::NODE_SAN, &req).await.unwrap();
        assert_eq!(kind(&r), Some(ErrorKind::Unauthorized), "{req:?} → {r:?}");
    }
    let hb = Request::Heartbeat(Heartbeat { description: None, addr: "127.0.0.9:2377".into() });
    let r: Response = ep.call(f.addr, skep_pki::NODE_SAN, &hb).await.unwrap();
    assert!(matches!(r, Response::Heartbeat(ref h) if h.desired_role == "worker"), "{r:?}");
    f.manager.propose(Op::RemoveNode { id: wid.into() }).await.unwrap();
    for req in every_request_but_join() {
        let r: Response = ep.call(f.addr, skep_pki::NODE_SAN, &req).await.unwrap();
        assert!(matches!(kind(&r), Some(ErrorKind::Removed) | Some(ErrorKind::Unauthorized)), "{req:?} → {r:?}");
    }
    let _ = f.stop.send(true);
    f.manager.shutdown().await;
}
