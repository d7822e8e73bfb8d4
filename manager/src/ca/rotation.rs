//! Root CA rotation (`docker swarm ca --rotate [--ca-cert F --ca-key F]`), as swarmkit does it
//! (`manager/controlapi/ca_rotation.go`, `ca/reconciler.go` in moby/swarmkit):
//! 1. `swarm update` asks for it: `CAConfig.ForceRotate` changed (a new root is generated) or `SigningCACert` and
//!    `SigningCAKey` name another root. The proposer makes the new root and cross-signs it with the current one
//!    ([`make`]); the store records the rotation ([`RootRotation`]) and the cluster's `TLSInfo` names the new root
//!    as the issuer while the trust root stays the current one (`RootRotationInProgress`).
//! 2. Managers sign every certificate with the new root from then on, followed by the cross-signed certificate, so
//!    nodes that still trust the current root accept it ([`signer`]). Nodes follow the cluster's CA state
//!    (`Request::CaWatch`) and renew as soon as the issuer is not theirs; their `TLSInfo` reports the issuer.
//! 3. Once every node in the store reports a certificate from the new root ([`finished`]), the leader proposes
//!    `FinishRootRotation`: the new root becomes the trust root, and the join tokens change, since they name the
//!    root's digest. Nodes then trust the new root. A node that is down holds the rotation until it is back or
//!    removed, as in Docker.
//!
//! A new request while a rotation runs replaces it (cross-signed again by the current root); asking for the current
//! root cancels it. Roots must be ECDSA P-256 (what skep signs with); external CAs are refused.
//!
//! Pure but for [`make`], which generates keys and signs.

use crate::control::ControlError;
use crate::store::{ClusterRecord, ClusterState, RootRotation};
use skep_api::docker::SwarmSpec;
use skep_api::wire::CaState;
use skep_pki::{same_root_cert, RootCa};

/// The root a rotation moves to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootTarget {
    /// A new root that skep generates (`swarm ca --rotate`).
    Generate,
    /// The root given in the spec (`--ca-cert`, `--ca-key`).
    Given {
        /// Certificate, PEM.
        cert_pem: String,
        /// Key, PEM.
        key_pem: String,
    },
}

/// What a `swarm update` does to the root CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootChange {
    /// Start a rotation (replacing any in progress).
    Rotate(RootTarget),
    /// Cancel the rotation in progress: the current root was asked for.
    Cancel,
}

fn invalid(m: &str) -> ControlError {
    ControlError::InvalidArgument(format!("rpc error: code = InvalidArgument desc = {m}"))
}

/// What `spec` (as `POST /swarm/update` sent it) asks of the root CA of `cluster`; `None`: nothing.
pub fn requested(cluster: &ClusterRecord, spec: &SwarmSpec) -> Result<Option<RootChange>, ControlError> {
    let ca = &spec.ca_config;
    let (cert, key) = (ca.signing_ca_cert.trim(), ca.signing_ca_key.trim());
    if cert.is_empty() && !key.is_empty() {
        return Err(invalid("if a signing CA key is provided, the signing CA cert must also be provided"));
    }
    if !cert.is_empty() && key.is_empty() {
        return Err(ControlError::NotImplemented(
            "CAConfig.SigningCACert without SigningCAKey (a root CA held by an external CA) is not supported by skep"
                .into(),
        ));
    }
    if !cert.is_empty() {
        if let Some(r) = &cluster.root_rotation {
            if same_root_cert(cert, &r.ca_cert_pem) {
                return Ok(None);
            }
        }
        if same_root_cert(cert, &cluster.ca_cert_pem) {
            return Ok(cluster.root_rotation.as_ref().map(|_| RootChange::Cancel));
        }
        return Ok(Some(RootChange::Rotate(RootTarget::Given { cert_pem: cert.into(), key_pem: key.into() })));
    }
    if ca.force_rotate != cluster.info.spec.ca_config.force_rotate {
        return Ok(Some(RootChange::Rotate(RootTarget::Generate)));
    }
    Ok(None)
}

/// Make the rotation of `cluster`'s root to `target`: the new root (generated, or the given one checked: a CA
/// certificate with its key, ECDSA P-256), cross-signed by the current root.
pub fn make(cluster: &ClusterRecord, target: RootTarget) -> Result<RootRotation, ControlError> {
    let internal = |e: skep_pki::PkiError| ControlError::Internal(format!("root CA rotation: {e}"));
    let current = RootCa::from_pem(&cluster.ca_cert_pem, Some(&cluster.ca_key_pem)).map_err(internal)?;
    let new = match target {
        RootTarget::Generate => RootCa::generate(&cluster.info.id).map_err(internal)?,
        RootTarget::Given { cert_pem, key_pem } => RootCa::from_pem(&cert_pem, Some(&key_pem))
            .map_err(|e| invalid(&format!("invalid signing CA cert or key: {e}")))?,
    };
    let cross_signed_pem = current.cross_sign(&new).map_err(internal)?;
    let ca_key_pem = new.key_pem().ok_or_else(|| internal(skep_pki::PkiError::NoSigningKey))?.to_string();
    Ok(RootRotation { ca_cert_pem: new.cert_pem().into(), ca_key_pem, cross_signed_pem, tls_info: current.tls_info(&new) })
}

/// The root that signs node certificates now, and what follows each certificate it signs: the rotation's new root and
/// its cross-signed certificate while a rotation runs, the trust root and nothing otherwise.
pub fn signer(cluster: &ClusterRecord) -> Result<(RootCa, Option<&str>), skep_pki::PkiError> {
    match &cluster.root_rotation {
        Some(r) => Ok((RootCa::from_pem(&r.ca_cert_pem, Some(&r.ca_key_pem))?, Some(r.cross_signed_pem.as_str()))),
        None => Ok((RootCa::from_pem(&cluster.ca_cert_pem, Some(&cluster.ca_key_pem))?, None)),
    }
}

/// The rotation in progress, once every node in the store reports a certificate issued by its new root.
pub fn finished(state: &ClusterState) -> Option<&RootRotation> {
    let r = state.cluster.as_ref()?.root_rotation.as_ref()?;
    let issuer = &r.tls_info;
    let done = state.nodes.values().all(|rec| {
        let t = &rec.node.description.tls_info;
        t.cert_issuer_public_key == issuer.cert_issuer_public_key && t.cert_issuer_subject == issuer.cert_issuer_subject
    });
    done.then_some(r)
}

/// What nodes follow of the cluster's CA (`Request::CaWatch`): the trust root, and the key of the root that signs.
pub fn ca_state(cluster: &ClusterRecord) -> CaState {
    CaState::new(cluster.ca_cert_pem.clone(), cluster.info.tls_info.cert_issuer_public_key.clone())
}

/// How many nodes report a certificate from the rotation's new root, of how many: for logs and progress.
pub fn progress(state: &ClusterState) -> Option<(usize, usize)> {
    let r = state.cluster.as_ref()?.root_rotation.as_ref()?;
    let key = &r.tls_info.cert_issuer_public_key;
    let done = state.nodes.values().filter(|rec| rec.node.description.tls_info.cert_issuer_public_key == *key).count();
    Some((done, state.nodes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::NodeRecord;
    use skep_api::docker::Node;

    fn cluster() -> ClusterRecord {
        let ca = RootCa::generate("c1").unwrap();
        let mut c = ClusterRecord {
            ca_cert_pem: ca.cert_pem().into(),
            ca_key_pem: ca.key_pem().unwrap().into(),
            ..Default::default()
        };
        c.info.id = "c1".into();
        c.info.tls_info = ca.tls_info(&ca);
        c
    }

    fn asking(f: impl FnOnce(&mut SwarmSpec)) -> SwarmSpec {
        let mut s = SwarmSpec::default();
        f(&mut s);
        s
    }

    #[test]
    fn force_rotate_or_another_root_asks_for_a_rotation() {
        let c = cluster();
        assert_eq!(requested(&c, &SwarmSpec::default()).unwrap(), None);
        assert_eq!(requested(&c, &asking(|s| s.ca_config.force_rotate = 1)).unwrap(), Some(RootChange::Rotate(RootTarget::Generate)));
        let other = RootCa::generate("c1").unwrap();
        let given = asking(|s| {
            s.ca_config.signing_ca_cert = other.cert_pem().into();
            s.ca_config.signing_ca_key = other.key_pem().unwrap().into();
        });
        assert!(matches!(requested(&c, &given).unwrap(), Some(RootChange::Rotate(RootTarget::Given { .. }))));
        // the current root: nothing to do
        let current = asking(|s| {
            s.ca_config.signing_ca_cert = c.ca_cert_pem.clone();
            s.ca_config.signing_ca_key = c.ca_key_pem.clone();
        });
        assert_eq!(requested(&c, &current).unwrap(), None);
        // during a rotation: the current root cancels it, the rotation's own root changes nothing
        let mut rotating = c.clone();
        let r = make(&c, RootTarget::Given { cert_pem: other.cert_pem().into(), key_pem: other.key_pem().unwrap().into() });
        rotating.root_rotation = Some(r.unwrap());
        assert_eq!(requested(&rotating, &current).unwrap(), Some(RootChange::Cancel));
        assert_eq!(requested(&rotating, &given).unwrap(), None);
    }

    #[test]
    fn half_a_root_is_refused() {
        let c = cluster();
        let key_only = asking(|s| s.ca_config.signing_ca_key = c.ca_key_pem.clone());
        let e = requested(&c, &key_only).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("the signing CA cert must also be provided"), "{e}");
        let cert_only = asking(|s| s.ca_config.signing_ca_cert = RootCa::generate("c1").unwrap().cert_pem().into());
        let e = requested(&c, &cert_only).unwrap_err();
        assert_eq!(e.status(), 501);
        assert!(e.to_string().contains("external CA"), "{e}");
    }

    #[test]
    fn a_given_root_must_be_a_ca_with_its_key() {
        let c = cluster();
        let a = RootCa::generate("c1").unwrap();
        let b = RootCa::generate("c1").unwrap();
        let mismatched = RootTarget::Given { cert_pem: a.cert_pem().into(), key_pem: b.key_pem().unwrap().into() };
        let e = make(&c, mismatched).unwrap_err();
        assert_eq!(e.status(), 400);
        assert!(e.to_string().contains("invalid signing CA cert or key"), "{e}");
        let garbage = RootTarget::Given { cert_pem: "not a certificate".into(), key_pem: "no".into() };
        assert_eq!(make(&c, garbage).unwrap_err().status(), 400);
    }

    #[test]
    fn the_rotation_finishes_when_every_node_reports_the_new_issuer() {
        let mut c = cluster();
        let r = make(&c, RootTarget::Generate).unwrap();
        // while it runs the cluster names the current root as trusted and the new one as issuer
        assert_eq!(r.tls_info.trust_root, c.ca_cert_pem);
        assert_ne!(r.tls_info.cert_issuer_public_key, c.info.tls_info.cert_issuer_public_key);
        let old_info = c.info.tls_info.clone();
        c.root_rotation = Some(r.clone());
        let mut s = ClusterState { cluster: Some(c.clone()), ..Default::default() };
        for id in ["m1", "w1"] {
            let mut node = Node { id: id.into(), ..Default::default() };
            node.description.tls_info = old_info.clone();
            s.nodes.insert(id.into(), NodeRecord { node, raft_id: None, cluster_addr: String::new() });
        }
        assert!(finished(&s).is_none());
        assert_eq!(progress(&s), Some((0, 2)));
        s.nodes.get_mut("m1").unwrap().node.description.tls_info = r.tls_info.clone();
        assert!(finished(&s).is_none(), "w1 still has an old certificate");
        assert_eq!(progress(&s), Some((1, 2)));
        s.nodes.get_mut("w1").unwrap().node.description.tls_info = r.tls_info.clone();
        assert_eq!(finished(&s), Some(&r));
        // signing follows the rotation: new root, cross-signed certificate after each leaf
        let (root, extra) = signer(&c).unwrap();
        assert_eq!(root.cert_pem(), r.ca_cert_pem);
        assert_eq!(extra, Some(r.cross_signed_pem.as_str()));
        c.root_rotation = None;
        let (root, extra) = signer(&c).unwrap();
        assert_eq!(root.cert_pem(), c.ca_cert_pem);
        assert_eq!(extra, None);
        // no rotation: nothing to finish
        s.cluster = Some(c);
        assert!(finished(&s).is_none());
    }
}
