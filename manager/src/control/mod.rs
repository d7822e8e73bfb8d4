//! Control operations on swarm and nodes: validate a request against a state snapshot and turn it into a store
//! [`Op`]. Pure: no I/O, no clock, no Raft; the runtime proposes what these return. Error texts are Docker's
//! (`shared/reference/docker-api.md` §1.3), because scripts grep for them.

use crate::store::{ClusterState, Op, ResolveError, StoreError};
use skep_api::docker::{availability, defaults, node_state, role, JoinTokens, NodeSpec, SwarmSpec};

/// Why a control request was refused; each maps to one HTTP status.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// 404.
    #[error("{0}")]
    NotFound(String),
    /// 400.
    #[error("{0}")]
    InvalidArgument(String),
    /// 409.
    #[error("{0}")]
    Conflict(String),
    /// Stale `version` (500 in Docker; scripts grep for the text).
    #[error("rpc error: code = Unknown desc = update out of sequence")]
    OutOfSequence,
    /// 503: no leader, no quorum, not a manager.
    #[error("{0}")]
    Unavailable(String),
    /// 501.
    #[error("{0}")]
    NotImplemented(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl ControlError {
    /// The HTTP status Docker uses for this error.
    pub fn status(&self) -> u16 {
        match self {
            ControlError::NotFound(_) => 404,
            ControlError::InvalidArgument(_) => 400,
            ControlError::Conflict(_) => 409,
            ControlError::OutOfSequence | ControlError::Internal(_) => 500,
            ControlError::Unavailable(_) => 503,
            ControlError::NotImplemented(_) => 501,
        }
    }
}

impl From<ResolveError> for ControlError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::NotFound(m) => ControlError::NotFound(m),
            ResolveError::Ambiguous(m) => ControlError::InvalidArgument(m),
        }
    }
}

impl From<StoreError> for ControlError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => ControlError::NotFound(m),
            StoreError::OutOfSequence => ControlError::OutOfSequence,
            StoreError::Conflict(m) => ControlError::Conflict(m),
            StoreError::Invalid(m) => ControlError::InvalidArgument(m),
        }
    }
}

/// Docker's message when there is no leader or quorum.
pub const NO_LEADER: &str = "This node is not a swarm manager. Manager is being prepared or has trouble connecting to the cluster.";

fn precondition(msg: String) -> ControlError {
    ControlError::InvalidArgument(format!("rpc error: code = FailedPrecondition desc = {msg}"))
}

fn invalid(msg: impl std::fmt::Display) -> ControlError {
    ControlError::InvalidArgument(format!("rpc error: code = InvalidArgument desc = {msg}"))
}

/// Smallest majority of `n` voters.
pub fn quorum(n: usize) -> usize {
    n / 2 + 1
}

/// `POST /nodes/{id}/update?version=N` (also promote and demote). Returns the node ID and the op.
pub fn update_node(state: &ClusterState, reference: &str, version: u64, mut spec: NodeSpec) -> Result<(String, Op), ControlError> {
    let rec = state.resolve_node(reference)?;
    let id = rec.node.id.clone();
    if rec.node.version.index != version {
        return Err(ControlError::OutOfSequence);
    }
    if spec.role.is_empty() {
        spec.role = rec.node.spec.role.clone();
    }
    if spec.availability.is_empty() {
        spec.availability = rec.node.spec.availability.clone();
    }
    if spec.role != role::MANAGER && spec.role != role::WORKER {
        return Err(invalid(format!("invalid role '{}'", spec.role)));
    }
    if !availability::is_valid(&spec.availability) {
        return Err(invalid(format!("invalid availability '{}'", spec.availability)));
    }
    if rec.node.is_manager() && spec.role == role::WORKER {
        let managers: Vec<_> = state.managers().collect();
        if managers.len() <= 1 {
            return Err(precondition("attempting to demote the last manager of the swarm".into()));
        }
        let reachable_after = managers
            .iter()
            .filter(|m| m.node.id != id && m.node.status.state == node_state::READY)
            .count();
        if reachable_after < quorum(managers.len() - 1) {
            return Err(precondition(format!(
                "can't remove member from the raft: this would result in a loss of quorum (demoting node {id})"
            )));
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
    if !force && rec.node.status.state != node_state::DOWN {
        return Err(precondition(format!("node {id} is not down and can't be removed")));
    }
    Ok((id.clone(), Op::RemoveNode { id }))
}

/// `POST /swarm/update?version=N&rotate…`: the new spec (defaults filled in) and tokens (rotated as asked).
pub fn update_swarm(
    state: &ClusterState,
    version: u64,
    spec: SwarmSpec,
    rotate_worker: bool,
    rotate_manager: bool,
    new_token: &mut dyn FnMut() -> String,
) -> Result<Op, ControlError> {
    let c = state.cluster.as_ref().ok_or_else(|| ControlError::Unavailable(NO_LEADER.into()))?;
    if c.info.version.index != version {
        return Err(ControlError::OutOfSequence);
    }
    let spec = validate_spec(spec)?;
    let mut tokens: JoinTokens = c.tokens.clone();
    if rotate_worker {
        tokens.worker = new_token();
    }
    if rotate_manager {
        tokens.manager = new_token();
    }
    Ok(Op::UpdateCluster { version, spec: Box::new(spec), tokens })
}

/// Check a swarm spec and fill in its defaults.
pub fn validate_spec(spec: SwarmSpec) -> Result<SwarmSpec, ControlError> {
    if spec.encryption_config.auto_lock_managers {
        return Err(ControlError::NotImplemented("autolock is not supported by skep yet".into()));
    }
    if spec.ca_config.external_cas.as_ref().is_some_and(|v| v.as_array().is_some_and(|a| !a.is_empty())) {
        return Err(ControlError::NotImplemented("external CAs are not supported by skep".into()));
    }
    if let Some(e) = spec.ca_config.node_cert_expiry {
        if e != 0 && e < defaults::MIN_NODE_CERT_EXPIRY_NS {
            return Err(invalid("minimum certificate expiry time is 1h0m0s"));
        }
    }
    if let Some(p) = spec.dispatcher.heartbeat_period {
        if p < 0 || (p != 0 && p < 100_000_000) || p > 3600 * 1_000_000_000 {
            return Err(invalid("heartbeat period must be between 100ms and 1h"));
        }
    }
    if let Some(h) = spec.orchestration.task_history_retention_limit {
        if h < 0 {
            return Err(invalid("task history retention limit must be >= 0"));
        }
    }
    if spec.raft.election_tick < 0 || spec.raft.heartbeat_tick < 0 {
        return Err(invalid("raft ticks must be positive"));
    }
    if spec.raft.election_tick != 0 && spec.raft.heartbeat_tick != 0 && spec.raft.election_tick <= spec.raft.heartbeat_tick {
        return Err(invalid("ElectionTick must be greater than HeartbeatTick"));
    }
    Ok(spec.with_defaults())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ClusterRecord, Command, NodeRecord};
    use skep_api::docker::Node;

    fn state(managers: &[(&str, &str)], workers: &[(&str, &str)]) -> ClusterState {
        let mut s = ClusterState { cluster: Some(ClusterRecord::default()), ..Default::default() };
        for (i, (id, st)) in managers.iter().enumerate() {
            let mut n = Node { id: id.to_string(), ..Default::default() };
            n.spec.role = role::MANAGER.into();
            n.spec.availability = "active".into();
            n.status.state = st.to_string();
            n.version.index = 1;
            s.nodes.insert(id.to_string(), NodeRecord { node: n, raft_id: Some(i as u64 + 1), cluster_addr: String::new() });
        }
        for (id, st) in workers {
            let mut n = Node { id: id.to_string(), ..Default::default() };
            n.spec.role = role::WORKER.into();
            n.spec.availability = "active".into();
            n.status.state = st.to_string();
            n.version.index = 1;
            s.nodes.insert(id.to_string(), NodeRecord { node: n, raft_id: None, cluster_addr: String::new() });
        }
        s
    }

    fn spec(r: &str) -> NodeSpec {
        NodeSpec { role: r.into(), availability: "active".into(), ..Default::default() }
    }

    #[test]
    fn the_last_manager_cannot_be_demoted() {
        let s = state(&[("m1", "ready")], &[]);
        let e = update_node(&s, "m1", 1, spec(role::WORKER)).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("attempting to demote the last manager of the swarm"), "{e}");
    }

    #[test]
    fn a_demotion_that_would_lose_quorum_is_refused() {
        // 3 managers, one down: demoting a healthy one leaves 1 reachable of 2 → no quorum
        let s = state(&[("m1", "ready"), ("m2", "ready"), ("m3", "down")], &[]);
        let e = update_node(&s, "m2", 1, spec(role::WORKER)).unwrap_err();
        assert!(e.to_string().contains("loss of quorum"), "{e}");
        // demoting the down one is fine
        assert!(update_node(&s, "m3", 1, spec(role::WORKER)).is_ok());
    }

    #[test]
    fn stale_versions_and_bad_values_are_refused() {
        let s = state(&[("m1", "ready")], &[("w1", "ready")]);
        assert_eq!(update_node(&s, "w1", 7, spec(role::WORKER)).unwrap_err(), ControlError::OutOfSequence);
        assert_eq!(ControlError::OutOfSequence.status(), 500);
        let mut bad = spec(role::WORKER);
        bad.availability = "sleepy".into();
        assert_eq!(update_node(&s, "w1", 1, bad).unwrap_err().status(), 400);
        assert_eq!(update_node(&s, "w1", 1, spec("boss")).unwrap_err().status(), 400);
        assert_eq!(update_node(&s, "nope", 1, spec(role::WORKER)).unwrap_err().status(), 404);
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
        match update_swarm(&s, 0, SwarmSpec::default(), true, false, &mut mk).unwrap() {
            Op::UpdateCluster { tokens, spec, .. } => {
                assert_eq!(tokens.worker, "T1");
                assert_eq!(tokens.manager, "M");
                assert_eq!(spec.name, "default");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(update_swarm(&s, 9, SwarmSpec::default(), false, false, &mut || String::new()).unwrap_err(), ControlError::OutOfSequence);
        let mut lock = SwarmSpec::default();
        lock.encryption_config.auto_lock_managers = true;
        assert_eq!(validate_spec(lock).unwrap_err().status(), 501);
        let mut short = SwarmSpec::default();
        short.ca_config.node_cert_expiry = Some(60 * 1_000_000_000);
        assert_eq!(validate_spec(short).unwrap_err().status(), 400);
        let _ = Command { at: String::new(), op: Op::KvPut { key: String::new(), value: vec![] } };
    }
}
pub mod networks;
pub mod services;
