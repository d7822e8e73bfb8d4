//! Every RPC kind against a real single-manager cluster over QUIC: a caller without a certificate may only attempt
//! `Join` (and needs a valid token for it), a certificate from another CA fails the handshake, a worker certificate
//! cannot make manager calls, and a removed node is refused.

mod common;

use common::{cluster, node_tls};
use skep_api::docker::{Availability, Node, NodeRole};
use skep_api::wire::{ErrorKind, Heartbeat, JoinRequest, RaftKind, Request, Response};
use skep_manager::store::Op;
use skep_pki::{JoinToken, NodeKey, RootCa};
use skep_transport::{Endpoint, TransportConfig, TransportError};

fn every_request_but_join() -> Vec<Request> {
    vec![
        Request::Heartbeat(Heartbeat { description: None, addr: String::new(), manager_ready: None }),
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
            availability: Availability::Active,
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
            assert_eq!(id.role, NodeRole::Worker);
            assert_eq!(id.node_id, j.node_id);
            assert_eq!(id.cluster_id, f.cluster_id);
            assert_eq!(j.raft_id, None);
        }
        other => panic!("{other:?}"),
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_another_ca_is_refused_at_the_handshake_for_every_rpc() {
    let f = cluster().await;
    let other = RootCa::generate("evil").unwrap();
    // trusts our CA for the server, presents a client certificate of another CA
    let mut mixed = node_tls(&other, "e0000000000000000000000001", NodeRole::Manager, &f.cluster_id);
    let client_cert = mixed.cert_pem.clone();
    mixed.ca_pem = f.ca.cert_pem().into();
    mixed.cert_pem = client_cert;
    let ep = Endpoint::client(skep_pki::tls::client_config(&mixed).unwrap(), TransportConfig::default()).unwrap();
    for req in every_request_but_join() {
        let r = ep.call::<Request, Response>(f.addr, skep_pki::NODE_SAN, &req).await;
        assert!(matches!(r, Err(TransportError::Tls(_)) | Err(TransportError::Connection(_)) | Err(TransportError::Closed)), "{req:?} → {r:?}");
    }
    f.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_certificate_cannot_make_manager_calls_and_a_removed_node_is_refused() {
    let f = cluster().await;
    let wid = "w0000000000000000000000001";
    let mut node = Node { id: wid.into(), ..Default::default() };
    node.spec.role = NodeRole::Worker;
    f.manager.propose(Op::AddNode { node: Box::new(node), cluster_addr: "127.0.0.9:2377".into() }).await.unwrap();
    let tls = node_tls(&f.ca, wid, NodeRole::Worker, &f.cluster_id);
    let ep = Endpoint::client(skep_pki::tls::client_config(&tls).unwrap(), TransportConfig::default()).unwrap();
    for req in [Request::Raft { kind: RaftKind::Vote, payload: vec![] }, Request::Propose { command: vec![] }, Request::ReadIndex, Request::RaftJoin { raft_id: 2 }] {
        let r: Response = ep.call(f.addr, skep_pki::NODE_SAN, &req).await.unwrap();
        assert_eq!(kind(&r), Some(ErrorKind::Unauthorized), "{req:?} → {r:?}");
    }
    let hb = Request::Heartbeat(Heartbeat { description: None, addr: "127.0.0.9:2377".into(), manager_ready: None });
    let r: Response = ep.call(f.addr, skep_pki::NODE_SAN, &hb).await.unwrap();
    assert!(matches!(r, Response::Heartbeat(ref h) if h.desired_role == NodeRole::Worker), "{r:?}");
    f.manager.propose(Op::RemoveNode { id: wid.into() }).await.unwrap();
    // refused with an answer, or (once the manager has closed a removed node's connections) by the closing itself
    for req in every_request_but_join() {
        match ep.call::<_, Response>(f.addr, skep_pki::NODE_SAN, &req).await {
            Ok(r) => assert!(matches!(kind(&r), Some(ErrorKind::Removed) | Some(ErrorKind::Unauthorized)), "{req:?} → {r:?}"),
            Err(e) => assert!(format!("{e:?}").contains("removed from the swarm"), "{req:?} → {e:?}"),
        }
    }
    f.stop().await;
}
