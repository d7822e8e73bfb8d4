use super::*;
use crate::store::{ClusterRecord, ClusterState, NodeRecord, Op};
use skep_api::docker::{Availability, JoinTokens, Node, NodeRole, NodeState};
use skep_api::wire::{ErrorKind, JoinRequest};
use skep_pki::{JoinToken, NodeKey, RootCa};
use std::time::SystemTime;

const CLUSTER: &str = "c0000000000000000000000001";
const NEW_ID: &str = "n0000000000000000000000001";

struct Fixture {
    state: ClusterState,
    ca: RootCa,
    tokens: JoinTokens,
}

fn fixture() -> Fixture {
    let ca = RootCa::generate(CLUSTER).unwrap();
    let tokens = JoinTokens { worker: JoinToken::generate(&ca.digest()).to_string(), manager: JoinToken::generate(&ca.digest()).to_string() };
    let mut record = ClusterRecord {
        tokens: tokens.clone(),
        ca_cert_pem: ca.cert_pem().into(),
        ca_key_pem: ca.key_pem().unwrap().into(),
        ..Default::default()
    };
    record.info.id = CLUSTER.into();
    record.info.spec.ca_config.node_cert_expiry = Some(7200 * 1_000_000_000);
    let state = ClusterState { cluster: Some(record), ..Default::default() };
    Fixture { state, ca, tokens }
}

fn csr() -> String {
    NodeKey::generate().unwrap().csr_pem().unwrap()
}

fn join_request(token: &str) -> JoinRequest {
    JoinRequest { token: token.into(), csr_pem: csr(), description: Default::default(), advertise_addr: String::new(), availability: Availability::Active }
}

fn join(state: &ClusterState, j: &JoinRequest) -> Result<Admitted, AdmissionError> {
    let from = "10.0.0.7:40123".parse().unwrap();
    admit(state, AdmissionRequest::Join { request: j, from, node_id: NEW_ID }, SystemTime::now())
}

fn renew(state: &ClusterState, node_id: &str, csr_pem: &str) -> Result<Admitted, AdmissionError> {
    admit(state, AdmissionRequest::Renew { node_id, csr_pem }, SystemTime::now())
}

/// The certificate's identity, after checking it was issued by `ca`.
fn identity(ca: &RootCa, a: &Admitted) -> skep_pki::PeerIdentity {
    assert_eq!(a.ca_pem, ca.cert_pem());
    skep_pki::identity_from_cert_pem(&a.cert_pem).unwrap()
}

/// The node a join adds, after checking its (role, availability, address, cluster address); it is ready.
fn added_node<'a>(a: &'a Admitted, want: (NodeRole, Availability, &str, &str)) -> &'a Node {
    let [Op::AddNode { node, cluster_addr }] = &a.ops[..] else { panic!("{:?}", a.ops) };
    let got = (node.spec.role, node.spec.availability, node.status.addr.as_str(), cluster_addr.as_str());
    assert_eq!(got, want);
    assert_eq!(node.status.state, NodeState::Ready);
    node
}

#[test]
fn a_bad_token_is_refused() {
    let f = fixture();
    // unparsable, and this CA's digest with a made-up secret
    for bad in ["nonsense".to_string(), JoinToken::generate(&f.ca.digest()).to_string()] {
        let e = join(&f.state, &join_request(&bad)).unwrap_err();
        assert_eq!(e, AdmissionError::BadToken, "{bad}");
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert_eq!(e.to_string(), BAD_TOKEN);
    }
}

#[test]
fn a_token_of_another_ca_is_refused_even_with_a_current_secret() {
    let f = fixture();
    let other = RootCa::generate("other").unwrap();
    let ours = JoinToken::parse(&f.tokens.worker).unwrap();
    let mut theirs = JoinToken::parse(&JoinToken::generate(&other.digest()).to_string()).unwrap();
    theirs.secret = ours.secret.clone();
    assert_eq!(join(&f.state, &join_request(&theirs.to_string())).unwrap_err(), AdmissionError::BadToken);
}

#[test]
fn the_worker_token_admits_a_worker_under_the_id_the_ca_chose() {
    let f = fixture();
    let mut j = join_request(&format!("  {}\n", f.tokens.worker));
    j.description.hostname = "w1".into();
    let a = join(&f.state, &j).unwrap();
    assert_eq!((a.node_id.as_str(), a.role, a.cluster_id.as_str()), (NEW_ID, NodeRole::Worker, CLUSTER));
    let id = identity(&f.ca, &a);
    assert_eq!((id.node_id.as_str(), id.role, id.cluster_id.as_str()), (NEW_ID, NodeRole::Worker, CLUSTER));
    // validity from the cluster spec (2 h)
    let not_after = skep_pki::cert_not_after_unix(&a.cert_pem).unwrap();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64;
    assert!((not_after - now - 7200).abs() <= 5, "{}", not_after - now);
    // the node record: ready, active, at the address it came from on the default cluster port
    let node = added_node(&a, (NodeRole::Worker, Availability::Active, "10.0.0.7", "10.0.0.7:2377"));
    assert_eq!((node.id.as_str(), node.description.hostname.as_str()), (NEW_ID, "w1"));
}

#[test]
fn the_manager_token_admits_a_manager_at_its_advertised_address() {
    let f = fixture();
    let mut j = join_request(&f.tokens.manager);
    j.advertise_addr = "192.168.1.5:4000".into();
    j.availability = Availability::Drain;
    let a = join(&f.state, &j).unwrap();
    assert_eq!(a.role, NodeRole::Manager);
    assert_eq!(identity(&f.ca, &a).role, NodeRole::Manager);
    added_node(&a, (NodeRole::Manager, Availability::Drain, "192.168.1.5", "192.168.1.5:4000"));
}

#[test]
fn a_bad_csr_is_an_invalid_argument() {
    let f = fixture();
    let mut j = join_request(&f.tokens.worker);
    j.csr_pem = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n".into();
    let e = join(&f.state, &j).unwrap_err();
    assert!(matches!(e, AdmissionError::InvalidCsr(_)), "{e:?}");
    assert!(e.to_string().starts_with("invalid CSR: "), "{e}");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument);
    // renewals check the CSR too
    let mut s = f.state.clone();
    s.nodes.insert("w1".into(), record("w1", NodeRole::Worker, None));
    assert!(matches!(renew(&s, "w1", "garbage"), Err(AdmissionError::InvalidCsr(_))));
}

#[test]
fn nothing_is_admitted_before_the_swarm_exists() {
    let f = fixture();
    let e = join(&ClusterState::default(), &join_request(&f.tokens.worker)).unwrap_err();
    assert_eq!((e.clone(), e.kind()), (AdmissionError::NotInitialised, ErrorKind::Unavailable));
}

fn record(id: &str, r: NodeRole, raft_id: Option<u64>) -> NodeRecord {
    let mut node = Node { id: id.into(), ..Default::default() };
    node.spec.role = r;
    NodeRecord { node, raft_id, cluster_addr: String::new() }
}

#[test]
fn a_renewal_gets_the_stored_role_and_a_demoted_manager_keeps_its_until_it_left_raft() {
    let f = fixture();
    let mut s = f.state.clone();
    s.nodes.insert("m1".into(), record("m1", NodeRole::Manager, Some(1)));
    s.nodes.insert("w1".into(), record("w1", NodeRole::Worker, None));
    // demoted (spec says worker) but still a Raft member
    s.nodes.insert("d1".into(), record("d1", NodeRole::Worker, Some(2)));
    // promoted, not yet in Raft: a manager certificate, so that it can ask to join
    s.nodes.insert("p1".into(), record("p1", NodeRole::Manager, None));
    for (id, want) in [("m1", NodeRole::Manager), ("w1", NodeRole::Worker), ("d1", NodeRole::Manager), ("p1", NodeRole::Manager)] {
        let a = renew(&s, id, &csr()).unwrap();
        assert!(a.ops.is_empty());
        assert_eq!(a.role, want, "{id}");
        let got = identity(&f.ca, &a);
        assert_eq!((got.node_id.as_str(), got.role), (id, want));
    }
    // once it left the membership, the demoted one gets a worker certificate
    s.nodes.insert("d1".into(), record("d1", NodeRole::Worker, None));
    assert_eq!(renew(&s, "d1", &csr()).unwrap().role, NodeRole::Worker);
}

#[test]
fn a_renewal_from_an_unknown_node_is_refused_as_retryable() {
    let f = fixture();
    let e = renew(&f.state, "ghost", &csr()).unwrap_err();
    assert_eq!(e, AdmissionError::UnknownNode);
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert_eq!(e.to_string(), crate::dispatcher::UNKNOWN_NODE);
}

#[test]
fn during_a_root_rotation_certificates_come_from_the_new_root_with_the_cross_signed_one_after_them() {
    use super::rotation::{make, RootTarget};
    let f = fixture();
    let mut s = f.state.clone();
    s.nodes.insert("w1".into(), record("w1", NodeRole::Worker, None));
    let r = make(s.cluster.as_ref().unwrap(), RootTarget::Generate).unwrap();
    s.cluster.as_mut().unwrap().root_rotation = Some(r.clone());
    let new = RootCa::from_pem(&r.ca_cert_pem, None).unwrap();
    for a in [renew(&s, "w1", &csr()).unwrap(), join(&s, &join_request(&f.tokens.worker)).unwrap()] {
        // the trust root sent with it is still the current one, and the old tokens still admit
        assert_eq!(a.ca_pem, f.ca.cert_pem());
        let info = skep_pki::node_tls_info(&a.cert_pem, &a.ca_pem).unwrap();
        assert_eq!(info, f.ca.tls_info(&new), "issued by the new root, trusting the current one");
        assert!(a.cert_pem.contains(r.cross_signed_pem.trim()), "the cross-signed root follows the leaf");
    }
}
