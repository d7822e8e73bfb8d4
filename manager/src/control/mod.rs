//! Control operations on swarm and nodes: validate a request against a state snapshot and turn it into a store
//! [`Op`]. Pure: no I/O, no clock, no Raft; the runtime proposes what these return (see [`Manager::control`]).
//! Error texts are Docker's (as the Docker Engine API and the swarmkit gRPC errors word them: `rpc error: code = …
//! desc = …`), because scripts grep for them.
//!
//! # Layout
//! - `error`: [`ControlError`], the HTTP status of each, and Docker's texts shared by the operations.
//! - this file: swarm and node operations.
//! - [`init`]: `swarm init`: the request checked and the op that creates the cluster.
//! - [`services`]: service and task requests and views.
//! - [`logs`]: which tasks a service's or task's logs are read from.
//! - [`networks`]: network requests and views.
//! - [`payloads`]: secret and config requests and views (one set of operations for both kinds).
//!
//! [`Manager::control`]: crate::runtime::Manager::control

mod error;
pub mod init;
pub mod logs;
pub mod networks;
pub mod payloads;
pub mod services;

pub use error::{loss_of_quorum, ControlError, LOSS_OF_QUORUM, MANAGER_NOT_READY, NO_LEADER};

use crate::ca::{self, rotation::RootChange, rotation::RootTarget};
use crate::store::{ClusterRecord, ClusterState, Op, RootCaChange, RootRotation};
use error::{invalid, precondition};
use skep_api::docker::{defaults, Availability, JoinTokens, NodeRole, NodeSpec, NodeSpecUpdate, NodeState, SwarmSpec};

/// Smallest majority of `n` voters.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// `POST /nodes/{id}/update?version=N` (also promote and demote). Returns the node ID and the op.
///
/// An empty `Role` or `Availability` keeps the node's current one (Docker refuses it; skep always kept it); any
/// other word must be exact (`invalid role 'boss'`).
pub fn update_node(state: &ClusterState, reference: &str, version: u64, req: NodeSpecUpdate) -> Result<(String, Op), ControlError> {
    let rec = state.resolve_node(reference)?;
    let id = rec.node.id.clone();
    if rec.node.version.index != version {
        return Err(ControlError::OutOfSequence);
    }
    let spec = NodeSpec {
        name: req.name,
        labels: req.labels,
        role: NodeRole::from_request(&req.role)?.unwrap_or(rec.node.spec.role),
        availability: Availability::from_request(&req.availability)?.unwrap_or(rec.node.spec.availability),
    };
    if rec.node.is_manager() && spec.role == NodeRole::Worker {
        let managers: Vec<_> = state.managers().collect();
        if managers.len() <= 1 {
            return Err(precondition("attempting to demote the last manager of the swarm".into()));
        }
        // only a Raft member's removal can cost the quorum, counted among the members (after
        // `--force-new-cluster` the lost managers are listed but no longer members)
        let voters: Vec<_> = managers.iter().filter(|m| m.raft_id.is_some()).collect();
        let reachable_after =
            voters.iter().filter(|m| m.node.id != id && m.node.status.state == NodeState::Ready).count();
        if rec.raft_id.is_some() && reachable_after < quorum(voters.len().saturating_sub(1)) {
            return Err(loss_of_quorum(&format!("demoting node {id}")));
        }
    }
    Ok((id.clone(), Op::UpdateNodeSpec { id, version, spec }))
}

/// `DELETE /nodes/{id}[?force=1]`.
pub fn remove_node(state: &ClusterState, reference: &str, force: bool) -> Result<(String, Op), ControlError> {
    let rec = state.resolve_node(reference)?;
    let id = rec.node.id.clone();
    if rec.node.is_manager() || rec.raft_id.is_some() {
        return Err(precondition(format!(
            "node {id} is a cluster manager and is a member of the raft cluster. It must be demoted to worker before removal"
        )));
    }
    if !force && rec.node.status.state != NodeState::Down {
        return Err(precondition(format!("node {id} is not down and can't be removed")));
    }
    Ok((id.clone(), Op::RemoveNode { id }))
}

/// What `swarm update` is asked to rotate (`rotateWorkerToken`, `rotateManagerToken`, `rotateManagerUnlockKey`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotation {
    /// The worker join token.
    pub worker_token: bool,
    /// The manager join token.
    pub manager_token: bool,
    /// The autolock unlock key.
    pub unlock_key: bool,
}

/// What makes the new root of a root CA rotation ([`ca::rotation::make`] in the daemon; a stand-in in tests).
pub type NewRoot<'a> = &'a mut dyn FnMut(&ClusterRecord, RootTarget) -> Result<RootRotation, ControlError>;

/// `POST /swarm/update?version=N&rotate…`: the new spec (defaults filled in), tokens (rotated as asked), unlock key (a
/// new one when autolock is turned on or the key is rotated, none when autolock is off: as swarmkit, asking to rotate
/// it then changes nothing) and a root CA rotation when the spec asks for one ([`ca::rotation::requested`]). The
/// signing CA certificate and key given are never stored in the spec (nor shown again), as in Docker.
pub fn update_swarm(
    state: &ClusterState,
    version: u64,
    mut spec: SwarmSpec,
    rotate: Rotation,
    new_token: &mut dyn FnMut() -> String,
    new_unlock_key: &mut dyn FnMut() -> String,
    new_root: NewRoot<'_>,
) -> Result<Op, ControlError> {
    let c = state.cluster.as_ref().ok_or_else(|| ControlError::Unavailable(MANAGER_NOT_READY.into()))?;
    if c.info.version.index != version {
        return Err(ControlError::OutOfSequence);
    }
    check_spec(&spec)?;
    let root_ca = match ca::rotation::requested(c, &spec)? {
        None => None,
        Some(RootChange::Rotate(target)) => Some(Box::new(RootCaChange::Start(new_root(c, target)?))),
        Some(RootChange::Cancel) => {
            let root = skep_pki::RootCa::from_pem(&c.ca_cert_pem, None)
                .map_err(|e| ControlError::Internal(format!("the stored root CA: {e}")))?;
            Some(Box::new(RootCaChange::Cancel { tls_info: root.tls_info(&root) }))
        }
    };
    spec.ca_config.signing_ca_cert.clear();
    spec.ca_config.signing_ca_key.clear();
    let spec = spec.as_updated();
    let mut tokens: JoinTokens = c.tokens.clone();
    if rotate.worker_token {
        tokens.worker = new_token();
    }
    if rotate.manager_token {
        tokens.manager = new_token();
    }
    let unlock_key = match spec.encryption_config.auto_lock_managers {
        false => String::new(),
        true if c.unlock_key.is_empty() || rotate.unlock_key => new_unlock_key(),
        true => c.unlock_key.clone(),
    };
    Ok(Op::UpdateCluster { version, spec: Box::new(spec), tokens, unlock_key, root_ca })
}

/// Check a swarm spec and fill in its defaults, as `swarm init` stores it. A root CA to start with is not supported
/// (the swarm makes its own; `swarm ca --rotate --ca-cert --ca-key` moves to a given one).
pub fn validate_spec(spec: SwarmSpec) -> Result<SwarmSpec, ControlError> {
    check_spec(&spec)?;
    if !spec.ca_config.signing_ca_cert.is_empty() || !spec.ca_config.signing_ca_key.is_empty() {
        return Err(ControlError::NotImplemented(
            "CAConfig.SigningCACert at swarm init is not supported by skep: rotate to it with swarm ca --rotate".into(),
        ));
    }
    Ok(spec.with_defaults())
}

/// What skep refuses in a swarm spec: what swarmkit refuses, and settings skep does not carry out (501).
fn check_spec(spec: &SwarmSpec) -> Result<(), ControlError> {
    let unsupported = |what: &str| Err(ControlError::NotImplemented(format!("{what} is not supported by skep")));
    if spec.ca_config.external_cas.as_ref().is_some_and(|v| !skep_api::docker::fields::is_zero(v)) {
        return unsupported("CAConfig.ExternalCAs");
    }
    if spec.task_defaults.log_driver.as_ref().is_some_and(|d| !d.name.is_empty() || !d.options.is_empty()) {
        return unsupported("TaskDefaults.LogDriver");
    }
    if let Some(e) = spec.ca_config.node_cert_expiry {
        if e != 0 && e < defaults::MIN_NODE_CERT_EXPIRY_NS {
            return Err(invalid("minimum certificate expiry time is: 1h0m0s"));
        }
    }
    if let Some(p) = spec.dispatcher.heartbeat_period {
        if p < 0 || (p != 0 && p < 100_000_000) || p > 3600 * 1_000_000_000 {
            return Err(invalid("heartbeat period must be between 100ms and 1h"));
        }
    }
    // a negative TaskHistoryRetentionLimit is swarmkit's "never clean up": accepted
    if spec.raft.election_tick < 0 || spec.raft.heartbeat_tick < 0 {
        return Err(invalid("raft ticks must be positive"));
    }
    if spec.raft.election_tick != 0 && spec.raft.heartbeat_tick != 0 && spec.raft.election_tick <= spec.raft.heartbeat_tick {
        return Err(invalid("ElectionTick must be greater than HeartbeatTick"));
    }
    // every manager runs Raft with the default ticks (`RaftTiming::default`): other values would be stored and not
    // carried out
    if !matches!(spec.raft.heartbeat_tick, 0 | defaults::HEARTBEAT_TICK) {
        return unsupported(&format!("Raft.HeartbeatTick other than {}", defaults::HEARTBEAT_TICK));
    }
    if !matches!(spec.raft.election_tick, 0 | defaults::ELECTION_TICK) {
        return unsupported(&format!("Raft.ElectionTick other than {}", defaults::ELECTION_TICK));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ClusterRecord, Command, NetworkUser, NodeRecord, StoreError};
    use skep_api::docker::Node;

    fn state(managers: &[(&str, &str)], workers: &[(&str, &str)]) -> ClusterState {
        let mut s = ClusterState { cluster: Some(ClusterRecord::default()), ..Default::default() };
        for (i, (id, st)) in managers.iter().enumerate() {
            let mut n = Node { id: id.to_string(), ..Default::default() };
            n.spec.role = NodeRole::Manager;
            n.status.state = st.parse().unwrap();
            n.version.index = 1;
            s.nodes.insert(id.to_string(), NodeRecord { node: n, raft_id: Some(i as u64 + 1), cluster_addr: String::new() });
        }
        for (id, st) in workers {
            let mut n = Node { id: id.to_string(), ..Default::default() };
            n.spec.role = NodeRole::Worker;
            n.status.state = st.parse().unwrap();
            n.version.index = 1;
            s.nodes.insert(id.to_string(), NodeRecord { node: n, raft_id: None, cluster_addr: String::new() });
        }
        s
    }

    fn spec(r: &str) -> NodeSpecUpdate {
        NodeSpecUpdate { role: r.into(), availability: "active".into(), ..Default::default() }
    }

    #[test]
    fn the_last_manager_cannot_be_demoted() {
        let s = state(&[("m1", "ready")], &[]);
        let e = update_node(&s, "m1", 1, spec("worker")).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("attempting to demote the last manager of the swarm"), "{e}");
    }

    #[test]
    fn a_demotion_that_would_lose_quorum_is_refused() {
        // 3 managers, one down: demoting a healthy one leaves 1 reachable of 2 → no quorum
        let s = state(&[("m1", "ready"), ("m2", "ready"), ("m3", "down")], &[]);
        let e = update_node(&s, "m2", 1, spec("worker")).unwrap_err();
        assert!(e.to_string().contains("loss of quorum"), "{e}");
        // demoting the down one is fine
        assert!(update_node(&s, "m3", 1, spec("worker")).is_ok());
    }

    #[test]
    fn managers_outside_the_raft_membership_are_demoted_without_a_quorum_check() {
        // after --force-new-cluster: m1 alone is a member, m2 and m3 are listed, down, with no Raft ID
        let s = crate::raft::force::keep_only_voter(&state(&[("m1", "ready"), ("m2", "down"), ("m3", "down")], &[]), 1);
        assert_eq!(s.nodes.values().filter(|r| r.raft_id.is_some()).count(), 1);
        assert!(update_node(&s, "m2", 1, spec("worker")).is_ok());
        assert!(update_node(&s, "m3", 1, spec("worker")).is_ok());
        let e = update_node(&s, "m1", 1, spec("worker")).unwrap_err();
        assert!(e.to_string().contains("loss of quorum"), "the only member: {e}");
    }

    #[test]
    fn stale_versions_and_bad_values_are_refused() {
        let s = state(&[("m1", "ready")], &[("w1", "ready")]);
        assert_eq!(update_node(&s, "w1", 7, spec("worker")).unwrap_err(), ControlError::OutOfSequence);
        assert_eq!(ControlError::OutOfSequence.status(), 500);
        let mut bad = spec("worker");
        bad.availability = "sleepy".into();
        assert_eq!(update_node(&s, "w1", 1, bad).unwrap_err(), ControlError::InvalidArgument("invalid availability 'sleepy'".into()));
        assert_eq!(update_node(&s, "w1", 1, spec("boss")).unwrap_err(), ControlError::InvalidArgument("invalid role 'boss'".into()));
        assert_eq!(update_node(&s, "w1", 1, spec("Manager")).unwrap_err().status(), 400);
        assert_eq!(update_node(&s, "nope", 1, spec("worker")).unwrap_err().status(), 404);
    }

    #[test]
    fn an_empty_role_or_availability_keeps_the_current_one() {
        let mut s = state(&[("m1", "ready"), ("m2", "ready"), ("m3", "ready")], &[("w1", "ready")]);
        s.nodes.get_mut("m2").unwrap().node.spec.availability = Availability::Drain;
        let keep = NodeSpecUpdate { name: "renamed".into(), ..Default::default() };
        for (id, role, availability) in [("m2", NodeRole::Manager, Availability::Drain), ("w1", NodeRole::Worker, Availability::Active)] {
            let (_, op) = update_node(&s, id, 1, keep.clone()).unwrap();
            let Op::UpdateNodeSpec { spec, .. } = op else { panic!("{op:?}") };
            assert_eq!((spec.name.as_str(), spec.role, spec.availability), ("renamed", role, availability), "{id}");
        }
        let (_, op) = update_node(&s, "m2", 1, NodeSpecUpdate { availability: "pause".into(), ..Default::default() }).unwrap();
        assert!(matches!(op, Op::UpdateNodeSpec { spec: NodeSpec { role: NodeRole::Manager, availability: Availability::Pause, .. }, .. }), "{op:?}");
    }

    #[test]
    fn a_network_in_use_stays_a_typed_400_with_dockers_text() {
        let e = ControlError::from(StoreError::InUse { network: "n1".into(), by: NetworkUser::Task("t1".into()) });
        assert_eq!(e, ControlError::InUse { network: "n1".into(), by: NetworkUser::Task("t1".into()) });
        assert_eq!(e.status(), 400);
        assert_eq!(e.to_string(), "rpc error: code = FailedPrecondition desc = network n1 is in use by task t1");
    }

    #[test]
    fn removing_a_node_needs_it_down_or_force_and_never_a_manager() {
        let s = state(&[("m1", "ready")], &[("w1", "ready"), ("w2", "down")]);
        let e = remove_node(&s, "w1", false).unwrap_err();
        assert!(e.to_string().contains("is not down and can't be removed"), "{e}");
        assert!(remove_node(&s, "w1", true).is_ok());
        assert!(remove_node(&s, "w2", false).is_ok());
        let e = remove_node(&s, "m1", true).unwrap_err();
        assert!(e.to_string().contains("must be demoted to worker before removal"), "{e}");
    }

    #[test]
    fn swarm_update_rotates_only_what_was_asked_and_checks_the_version() {
        let mut s = state(&[("m1", "ready")], &[]);
        s.cluster.as_mut().unwrap().tokens = JoinTokens { worker: "W".into(), manager: "M".into() };
        let mut n = 0;
        let mut mk = || {
            n += 1;
            format!("T{n}")
        };
        let worker = Rotation { worker_token: true, ..Default::default() };
        match update_swarm(&s, 0, SwarmSpec::default(), worker, &mut mk, &mut || unreachable!(), &mut no_root).unwrap() {
            Op::UpdateCluster { tokens, spec, unlock_key, .. } => {
                assert_eq!(unlock_key, "");
                assert_eq!(tokens.worker, "T1");
                assert_eq!(tokens.manager, "M");
                assert_eq!(spec.name, "default");
            }
            other => panic!("{other:?}"),
        }
        let none = Rotation::default();
        let err = update_swarm(&s, 9, SwarmSpec::default(), none, &mut String::new, &mut String::new, &mut no_root).unwrap_err();
        assert_eq!(err, ControlError::OutOfSequence);
        let mut short = SwarmSpec::default();
        short.ca_config.node_cert_expiry = Some(60 * 1_000_000_000);
        assert_eq!(validate_spec(short).unwrap_err().status(), 400);
        let _ = Command { at: String::new(), op: Op::KvPut { key: String::new(), value: vec![] } };
    }

    #[test]
    fn autolock_gets_a_key_when_turned_on_keeps_it_rotates_it_when_asked_and_drops_it_when_off() {
        let mut s = state(&[("m1", "ready")], &[]);
        let mut n = 0;
        let mut key = || {
            n += 1;
            format!("K{n}")
        };
        let mut locked = SwarmSpec::default();
        locked.encryption_config.auto_lock_managers = true;
        let run = |s: &ClusterState, spec: &SwarmSpec, rotate: bool, key: &mut dyn FnMut() -> String| {
            let r = Rotation { unlock_key: rotate, ..Default::default() };
            match update_swarm(s, 0, spec.clone(), r, &mut String::new, key, &mut no_root).unwrap() {
                Op::UpdateCluster { unlock_key, .. } => unlock_key,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(run(&s, &locked, false, &mut key), "K1");
        s.cluster.as_mut().unwrap().unlock_key = "K1".into();
        assert_eq!(run(&s, &locked, false, &mut key), "K1");
        assert_eq!(run(&s, &locked, true, &mut key), "K2");
        assert_eq!(run(&s, &SwarmSpec::default(), false, &mut key), "");
        assert_eq!(run(&s, &SwarmSpec::default(), true, &mut key), "");
        assert!(validate_spec(locked).is_ok());
    }

    fn no_root(_: &ClusterRecord, _: RootTarget) -> Result<RootRotation, ControlError> {
        panic!("no rotation asked for")
    }

    #[test]
    fn a_root_ca_rotation_is_carried_in_the_update_and_the_given_root_is_not_stored_in_the_spec() {
        let mut s = state(&[("m1", "ready")], &[]);
        let root = skep_pki::RootCa::generate("c1").unwrap();
        let c = s.cluster.as_mut().unwrap();
        c.ca_cert_pem = root.cert_pem().into();
        c.ca_key_pem = root.key_pem().unwrap().into();
        let mut asked = Vec::new();
        let mut made = |_: &ClusterRecord, t: RootTarget| {
            asked.push(t);
            Ok(RootRotation { ca_cert_pem: "NEW".into(), ..Default::default() })
        };
        let mut force = SwarmSpec::default();
        force.ca_config.force_rotate = 1;
        let op = update_swarm(&s, 0, force, Rotation::default(), &mut String::new, &mut String::new, &mut made).unwrap();
        let Op::UpdateCluster { root_ca: Some(change), spec, .. } = op else { panic!("{op:?}") };
        assert!(matches!(*change, RootCaChange::Start(ref r) if r.ca_cert_pem == "NEW"));
        assert_eq!(spec.ca_config.force_rotate, 1, "stored, so that the next --rotate bumps it again");
        let other = skep_pki::RootCa::generate("c1").unwrap();
        let mut given = SwarmSpec::default();
        given.ca_config.signing_ca_cert = other.cert_pem().into();
        given.ca_config.signing_ca_key = other.key_pem().unwrap().into();
        let op = update_swarm(&s, 0, given.clone(), Rotation::default(), &mut String::new, &mut String::new, &mut made);
        let Op::UpdateCluster { root_ca: Some(_), spec, .. } = op.unwrap() else { panic!() };
        assert!(spec.ca_config.signing_ca_cert.is_empty() && spec.ca_config.signing_ca_key.is_empty());
        assert_eq!(asked.len(), 2);
        // a root at swarm init is refused; external CAs everywhere
        assert_eq!(validate_spec(given).unwrap_err().status(), 501);
        let mut external = SwarmSpec::default();
        external.ca_config.external_cas = Some(serde_json::json!([{"Protocol": "cfssl", "URL": "https://ca"}]));
        let e = update_swarm(&s, 0, external, Rotation::default(), &mut String::new, &mut String::new, &mut no_root);
        assert_eq!(e.unwrap_err().status(), 501);
    }

    #[test]
    fn raft_ticks_other_than_the_defaults_are_refused_since_no_manager_would_run_them() {
        let mut s = SwarmSpec::default();
        s.raft.heartbeat_tick = defaults::HEARTBEAT_TICK;
        s.raft.election_tick = defaults::ELECTION_TICK;
        assert!(validate_spec(s.clone()).is_ok(), "the defaults, as the docker CLI sends them back");
        assert!(validate_spec(SwarmSpec::default()).is_ok(), "unset");
        let slow = SwarmSpec { raft: skep_api::docker::RaftConfig { heartbeat_tick: 3, ..s.raft.clone() }, ..s.clone() };
        let e = validate_spec(slow).unwrap_err();
        assert_eq!(e.status(), 501);
        assert!(e.to_string().contains("Raft.HeartbeatTick"), "{e}");
        let long = SwarmSpec { raft: skep_api::docker::RaftConfig { election_tick: 30, ..s.raft.clone() }, ..s };
        assert!(validate_spec(long).unwrap_err().to_string().contains("Raft.ElectionTick"));
    }
}
