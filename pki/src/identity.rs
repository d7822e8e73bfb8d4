//! What a node certificate says about its holder: node ID, role, cluster, expiry; and when to renew it.

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::{PkiError, ROLE_MANAGER_OU, ROLE_WORKER_OU};
use skep_api::docker::NodeRole;

/// The certificate OU for a role (`swarm-manager` / `swarm-worker`, as Docker writes them). The role itself is the
/// API's [`NodeRole`]: one type for what a node is asked to be and what its certificate grants.
pub fn role_ou(role: NodeRole) -> &'static str {
    match role {
        NodeRole::Manager => ROLE_MANAGER_OU,
        NodeRole::Worker => ROLE_WORKER_OU,
    }
}

/// The role an OU names, if any (exact match).
pub fn role_from_ou(ou: &str) -> Option<NodeRole> {
    match ou {
        ROLE_MANAGER_OU => Some(NodeRole::Manager),
        ROLE_WORKER_OU => Some(NodeRole::Worker),
        _ => None,
    }
}

/// What a node certificate says about its holder.
///
/// Reading an identity does not verify the certificate: use it on a certificate that TLS (or
/// [`crate::RootCa`]) has already checked against the cluster CA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The certificate CN.
    pub node_id: String,
    /// From the certificate OU.
    pub role: NodeRole,
    /// The certificate O.
    pub cluster_id: String,
    /// End of validity, seconds since the Unix epoch.
    pub not_after_unix: i64,
}

fn parse_cert(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    let (rest, cert) = X509Certificate::from_der(der)
        .map_err(|e| PkiError::InvalidCertificate(format!("cannot parse DER: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::InvalidCertificate(format!(
            "{} trailing bytes after the certificate",
            rest.len()
        )));
    }
    Ok(cert)
}

/// The single value of one attribute of `name`; an error if it is absent, repeated or not a string.
fn single<'a, I>(what: &str, mut values: I) -> Result<String, PkiError>
where
    I: Iterator<Item = &'a AttributeTypeAndValue<'a>>,
{
    let first = values
        .next()
        .ok_or_else(|| PkiError::InvalidSubject(format!("no {what}")))?;
    if values.next().is_some() {
        return Err(PkiError::InvalidSubject(format!("more than one {what}")));
    }
    let s = first
        .as_str()
        .map_err(|e| PkiError::InvalidSubject(format!("{what} is not a string: {e}")))?;
    if s.is_empty() {
        return Err(PkiError::InvalidSubject(format!("empty {what}")));
    }
    Ok(s.to_owned())
}

fn identity_from_subject(
    subject: &X509Name<'_>,
    not_after_unix: i64,
) -> Result<PeerIdentity, PkiError> {
    let node_id = single("CN", subject.iter_common_name())?;
    let ou = single("OU", subject.iter_organizational_unit())?;
    let role = role_from_ou(&ou)
        .ok_or_else(|| PkiError::InvalidSubject(format!("OU {ou:?} is not a swarm role")))?;
    let cluster_id = single("O", subject.iter_organization())?;
    Ok(PeerIdentity {
        node_id,
        role,
        cluster_id,
        not_after_unix,
    })
}

/// The identity in a DER node certificate (CN = node ID, OU = role, O = cluster ID).
pub fn identity_from_cert_der(der: &[u8]) -> Result<PeerIdentity, PkiError> {
    let cert = parse_cert(der)?;
    identity_from_subject(cert.subject(), cert.validity().not_after.timestamp())
}

/// The identity in a PEM node certificate; with a chain, the first (end-entity) certificate counts.
pub fn identity_from_cert_pem(pem: &str) -> Result<PeerIdentity, PkiError> {
    let certs = crate::pem::certs(pem)?;
    identity_from_cert_der(&certs[0])
}

/// End of validity of the first certificate in `pem`, in seconds since the Unix epoch.
pub fn cert_not_after_unix(pem: &str) -> Result<i64, PkiError> {
    let certs = crate::pem::certs(pem)?;
    Ok(parse_cert(&certs[0])?.validity().not_after.timestamp())
}

/// When to renew a certificate valid from `not_before_unix` to `not_after_unix`: a uniformly random
/// second between 50% and 80% of its lifetime, so that nodes issued together do not renew together
/// (swarmkit `calculateRandomExpiry`). A certificate with no lifetime is due at `not_before_unix`.
pub fn renewal_at(not_before_unix: i64, not_after_unix: i64, rng: &mut impl rand::Rng) -> i64 {
    let start = i128::from(not_before_unix);
    let lifetime = i128::from(not_after_unix) - start;
    if lifetime <= 0 {
        return not_before_unix;
    }
    let earliest = start + lifetime / 2;
    let latest = start + lifetime * 4 / 5;
    // Both bounds lie within [not_before, not_after], so the result fits in an i64.
    i64::try_from(rng.gen_range(earliest..=latest)).unwrap_or(not_after_unix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn role_ou_round_trip() {
        for &role in NodeRole::ALL {
            assert_eq!(role_from_ou(role_ou(role)), Some(role));
        }
        assert_eq!(role_ou(NodeRole::Manager), "swarm-manager");
        assert_eq!(role_from_ou("swarm-Manager"), None);
        assert_eq!(role_from_ou(""), None);
    }

    #[test]
    fn renewal_is_between_half_and_four_fifths() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let (nb, na) = (1_000_000, 1_000_000 + 90 * 86_400);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            let at = renewal_at(nb, na, &mut rng);
            assert!(at >= nb + 45 * 86_400 && at <= nb + 72 * 86_400, "{at}");
            seen.insert(at);
        }
        assert!(
            seen.len() > 900,
            "should be spread out, got {} distinct",
            seen.len()
        );
        assert_eq!(renewal_at(10, 10, &mut rng), 10);
        assert_eq!(renewal_at(10, 5, &mut rng), 10);
        let extreme = renewal_at(i64::MIN, i64::MAX, &mut rng);
        assert!(extreme >= 0, "{extreme}");
    }

    #[test]
    fn garbage_certificates_are_errors() {
        assert!(matches!(
            identity_from_cert_der(b""),
            Err(PkiError::InvalidCertificate(_))
        ));
        assert!(matches!(
            identity_from_cert_der(&[0x30, 0x82, 0xff]),
            Err(PkiError::InvalidCertificate(_))
        ));
        assert!(identity_from_cert_pem("not pem").is_err());
        assert!(cert_not_after_unix("").is_err());
    }
}
