//! The cluster root CA: creation, loading, its digest, and signing node certificates from CSRs.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use ring::rand::SecureRandom;
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_SIG_ECDSA_WITH_SHA256,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::{base36, pem, role_ou, PkiError, NODE_SAN};
use skep_api::docker::NodeRole;

/// Common name of the root CA, as swarmkit writes it.
pub const ROOT_CA_CN: &str = "swarm-ca";
/// Lifetime of a root CA created by [`RootCa::generate`]: 20 years.
pub const ROOT_CA_VALIDITY: Duration = Duration::from_secs(20 * 36525 * 864); // 20 × 365.25 days
/// How far back `not_before` is set, so that a peer whose clock runs a little behind accepts a fresh cert.
pub const BACKDATE: Duration = Duration::from_secs(3600);
/// Length of [`RootCa::digest`]: base36 of a 256-bit number.
pub const DIGEST_LEN: usize = 50;
/// The last second an X.509 GeneralizedTime can hold: 9999-12-31T23:59:59Z.
const MAX_CERT_UNIX: u64 = 253_402_300_799;
/// Longest node ID / cluster ID we put into a certificate subject.
const MAX_NAME_LEN: usize = 64;

/// The cluster root CA. The key is present only where signing happens (managers).
#[derive(Clone)]
pub struct RootCa {
    /// Canonical PEM of `cert_der` (what nodes store and compare).
    cert_pem: String,
    cert_der: Vec<u8>,
    /// The signing key, as given; `None` on workers, which only verify.
    key_pem: Option<String>,
    /// `key_pem` parsed once, so that signing cannot fail on a key that loaded fine.
    key: Option<Arc<KeyPair>>,
    /// Derived from `cert_der` at load time; Docker reports them (base64) in `TLSInfo`.
    subject_der: Vec<u8>,
    public_key_der: Vec<u8>,
    digest: String,
}

impl fmt::Debug for RootCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootCa")
            .field("digest", &self.digest)
            .field("has_key", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// Base36 of sha256(`der`), padded to [`DIGEST_LEN`]: the CA digest in join tokens.
pub(crate) fn der_digest(der: &[u8]) -> String {
    let hash = ring::digest::digest(&ring::digest::SHA256, der);
    base36::encode_padded(hash.as_ref(), DIGEST_LEN)
}

/// `bytes` random bytes from the operating system.
pub(crate) fn random_bytes<const N: usize>() -> Result<[u8; N], PkiError> {
    let mut out = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| PkiError::Random)?;
    Ok(out)
}

/// A random positive 128-bit serial number.
pub(crate) fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes: [u8; 16] = random_bytes()?;
    bytes[0] &= 0x7f; // keep the DER INTEGER positive
    bytes[0] |= 0x40; // and exactly 16 bytes long
    Ok(SerialNumber::from_slice(&bytes))
}

fn unix_secs(t: SystemTime) -> Result<u64, PkiError> {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| PkiError::InvalidValidity("the clock is before 1970".into()))
}

/// Set `not_before = now - BACKDATE`, `not_after = now + validity`.
fn set_validity(
    params: &mut CertificateParams,
    now: SystemTime,
    validity: Duration,
) -> Result<(), PkiError> {
    let now = unix_secs(now)?;
    let not_before = now.saturating_sub(BACKDATE.as_secs());
    let not_after = now
        .checked_add(validity.as_secs())
        .filter(|&t| t <= MAX_CERT_UNIX)
        .ok_or_else(|| {
            PkiError::InvalidValidity(format!("{validity:?} from now is past the year 9999"))
        })?;
    // rcgen takes `time::OffsetDateTime`; derive it from the epoch so that we need no extra dependency.
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + Duration::from_secs(not_before);
    params.not_after = epoch + Duration::from_secs(not_after);
    Ok(())
}

/// A node ID or cluster ID destined for a certificate subject: 1..=64 of `[A-Za-z0-9._-]`.
fn check_name(what: &str, s: &str) -> Result<(), PkiError> {
    let ok = !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(PkiError::InvalidSubject(format!(
            "{what} must be 1 to {MAX_NAME_LEN} characters of [A-Za-z0-9._-], got {:?}",
            s.chars().take(80).collect::<String>()
        )))
    }
}

fn is_p256(spki: &SubjectPublicKeyInfo<'_>) -> bool {
    spki.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
        && spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .is_some_and(|curve| curve == OID_EC_P256)
}

fn describe_key(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok());
    match curve {
        Some(curve) => format!(
            "algorithm {} with parameters {}",
            spki.algorithm.algorithm, curve
        ),
        None => format!("algorithm {}", spki.algorithm.algorithm),
    }
}

impl RootCa {
    /// Create a new root CA: ECDSA P-256 key, self-signed, CN `swarm-ca`, valid 20 years from now.
    ///
    /// The subject is exactly `CN=swarm-ca` (a PrintableString), as Docker's, so that the subject
    /// reported in `TLSInfo` matches Docker byte for byte; `cluster_id` is checked but not written.
    pub fn generate(cluster_id: &str) -> Result<RootCa, PkiError> {
        Self::generate_at(cluster_id, SystemTime::now())
    }

    /// [`RootCa::generate`] with the current time given.
    pub fn generate_at(cluster_id: &str, now: SystemTime) -> Result<RootCa, PkiError> {
        check_name("cluster ID", cluster_id)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            DnValue::PrintableString(ROOT_CA_CN.try_into()?),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.serial_number = Some(random_serial()?);
        set_validity(&mut params, now, ROOT_CA_VALIDITY)?;
        let cert = params.self_signed(&key)?;
        Self::from_pem(&cert.pem(), Some(&key.serialize_pem()))
    }

    /// Load a root CA: its certificate, and its key where this node signs.
    ///
    /// The certificate must be a single CA certificate with an ECDSA P-256 key; the key, if given,
    /// must be that certificate's key.
    pub fn from_pem(cert_pem: &str, key_pem: Option<&str>) -> Result<RootCa, PkiError> {
        let der = pem::single_cert(cert_pem)?;
        let (rest, cert) = X509Certificate::from_der(&der).map_err(|e| {
            PkiError::InvalidCertificate(format!("cannot parse the CA certificate: {e}"))
        })?;
        if !rest.is_empty() {
            return Err(PkiError::InvalidCertificate(
                "trailing bytes after the CA certificate".into(),
            ));
        }
        if !cert.is_ca() {
            return Err(PkiError::InvalidCertificate(
                "the root certificate is not a CA".into(),
            ));
        }
        if !is_p256(cert.public_key()) {
            return Err(PkiError::UnsupportedKey(format!(
                "CA certificate has {}",
                describe_key(cert.public_key())
            )));
        }
        let key = match key_pem {
            None => None,
            Some(key_pem) => {
                pem::private_key(key_pem)?; // a clear PEM error before rcgen's generic one
                let key =
                    KeyPair::from_pem(key_pem).map_err(|e| PkiError::InvalidKey(e.to_string()))?;
                if key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
                    return Err(PkiError::UnsupportedKey(format!(
                        "CA key is {:?}",
                        key.algorithm()
                    )));
                }
                if key.public_key_raw() != &cert.public_key().subject_public_key.data[..] {
                    return Err(PkiError::InvalidKey(
                        "the key does not belong to the CA certificate".into(),
                    ));
                }
                Some(Arc::new(key))
            }
        };
        Ok(RootCa {
            cert_pem: pem::encode("CERTIFICATE", &der),
            subject_der: cert.subject().as_raw().to_vec(),
            public_key_der: cert.public_key().raw.to_vec(),
            digest: der_digest(&der),
            cert_der: der.to_vec(),
            key_pem: key.as_ref().map(|k| k.serialize_pem()),
            key,
        })
    }

    /// The CA certificate, canonical PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key (PKCS#8 PEM), where this node holds it.
    pub fn key_pem(&self) -> Option<&str> {
        self.key_pem.as_deref()
    }

    /// The parsed signing key, where this node holds it.
    pub(crate) fn signing_key(&self) -> Option<&KeyPair> {
        self.key.as_deref()
    }

    /// The CA certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// Base36 (lowercase) of sha256(certificate DER), left-padded with `'0'` to exactly 50 characters.
    pub fn digest(&self) -> String {
        self.digest.clone()
    }

    /// The CA certificate's subject, DER (Docker: `TLSInfo.CertIssuerSubject`, base64).
    pub fn subject_der(&self) -> Vec<u8> {
        self.subject_der.clone()
    }

    /// The CA certificate's SubjectPublicKeyInfo, DER (Docker: `TLSInfo.CertIssuerPublicKey`, base64).
    pub fn public_key_der(&self) -> Vec<u8> {
        self.public_key_der.clone()
    }

    /// Sign a node certificate for the key in `csr_pem`; returns its PEM.
    ///
    /// The subject comes from the arguments, never from the CSR: CN = `node_id`, OU = `role_ou(role)`,
    /// O = `cluster_id`, SAN DNS [`NODE_SAN`]. Only the CSR's public key is used, and only if it is
    /// ECDSA P-256 and the CSR's self-signature verifies (proof that the requester holds the key).
    /// Valid from one hour ago ([`BACKDATE`]) until `validity` from now.
    pub fn sign_csr(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: NodeRole,
        cluster_id: &str,
        validity: Duration,
    ) -> Result<String, PkiError> {
        self.sign_csr_at(
            csr_pem,
            node_id,
            role,
            cluster_id,
            validity,
            SystemTime::now(),
        )
    }

    /// [`RootCa::sign_csr`] with the current time given.
    pub fn sign_csr_at(
        &self,
        csr_pem: &str,
        node_id: &str,
        role: NodeRole,
        cluster_id: &str,
        validity: Duration,
        now: SystemTime,
    ) -> Result<String, PkiError> {
        let key = self.key.as_deref().ok_or(PkiError::NoSigningKey)?;
        check_name("node ID", node_id)?;
        check_name("cluster ID", cluster_id)?;
        let csr_der = pem::csr(csr_pem)?;
        let public_key = verified_csr_key(&csr_der)?;

        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, cluster_id);
        dn.push(DnType::OrganizationalUnitName, role_ou(role));
        dn.push(DnType::CommonName, node_id);
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::DnsName(NODE_SAN.try_into()?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        set_validity(&mut params, now, validity)?;

        let issuer =
            Issuer::from_ca_cert_der(&CertificateDer::from(self.cert_der.as_slice()), key)?;
        Ok(params.signed_by(&public_key, &issuer)?.pem())
    }
}

/// The public key of a CSR, after checking that it is ECDSA P-256 and that the CSR is signed by it.
///
/// Extensions and subject in the CSR are ignored on purpose: the CA decides what the certificate says.
fn verified_csr_key(der: &[u8]) -> Result<rcgen::SubjectPublicKeyInfo, PkiError> {
    let (rest, csr) = X509CertificationRequest::from_der(der)
        .map_err(|e| PkiError::InvalidCsr(format!("cannot parse: {e}")))?;
    if !rest.is_empty() {
        return Err(PkiError::InvalidCsr(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    let info = &csr.certification_request_info;
    if !is_p256(&info.subject_pki) {
        return Err(PkiError::UnsupportedKey(format!(
            "CSR has {}",
            describe_key(&info.subject_pki)
        )));
    }
    if csr.signature_algorithm.algorithm != OID_SIG_ECDSA_WITH_SHA256 {
        return Err(PkiError::InvalidCsr(format!(
            "signature algorithm {} is not ecdsa-with-SHA256",
            csr.signature_algorithm.algorithm
        )));
    }
    let signature = &csr.signature_value.data;
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_ASN1,
        &info.subject_pki.subject_public_key.data,
    )
    .verify(info.raw, signature)
    .map_err(|_| PkiError::InvalidCsr("the self-signature does not verify".into()))?;
    rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
        .map_err(|e| PkiError::InvalidCsr(format!("public key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{identity_from_cert_der, identity_from_cert_pem, NodeKey, PeerIdentity};
    use rcgen::{CustomExtension, PKCS_ECDSA_P384_SHA384, PKCS_ED25519};

    const DAY: Duration = Duration::from_secs(86_400);

    fn ca() -> RootCa {
        RootCa::generate("cluster1").expect("generate CA")
    }

    /// A CSR made with rcgen for a fresh key of `alg`, asking for the given subject and a SAN.
    fn csr_asking(alg: &'static rcgen::SignatureAlgorithm, cn: &str, ou: &str) -> String {
        let key = KeyPair::generate_for(alg).unwrap();
        let mut params = CertificateParams::new(vec!["evil.example".to_string()]).unwrap();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, cn);
        params
            .distinguished_name
            .push(DnType::OrganizationalUnitName, ou);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "other-cluster");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.serialize_request(&key).unwrap().pem().unwrap()
    }

    #[test]
    fn digest_is_50_base36_stable_and_distinct() {
        let a = ca();
        let d = a.digest();
        assert_eq!(d.len(), DIGEST_LEN);
        assert!(base36::is_base36(&d), "{d}");
        assert_eq!(a.digest(), d);
        let reloaded = RootCa::from_pem(a.cert_pem(), None).unwrap();
        assert_eq!(reloaded.digest(), d);
        assert_eq!(reloaded.cert_der(), a.cert_der());
        // Independent of how the PEM is laid out.
        let crlf = a.cert_pem().replace('\n', "\r\n");
        assert_eq!(RootCa::from_pem(&crlf, None).unwrap().digest(), d);
        assert_ne!(ca().digest(), d);
    }

    #[test]
    fn generated_ca_looks_like_dockers() {
        let a = ca();
        // Docker's TLSInfo.CertIssuerSubject for every swarm: base64 "MBMxETAPBgNVBAMTCHN3YXJtLWNh".
        let mut docker = vec![
            0x30, 0x13, 0x31, 0x11, 0x30, 0x0f, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x08,
        ];
        docker.extend_from_slice(b"swarm-ca");
        assert_eq!(a.subject_der(), docker);
        let (_, cert) = X509Certificate::from_der(a.cert_der()).unwrap();
        assert!(cert.is_ca());
        assert_eq!(cert.public_key().raw, &a.public_key_der()[..]);
        assert!(is_p256(cert.public_key()));
        let v = cert.validity();
        let years =
            (v.not_after.timestamp() - v.not_before.timestamp()) as f64 / (365.25 * 86_400.0);
        assert!((19.9..20.1).contains(&years), "{years}");
        assert!(a.key_pem().is_some());
        assert!(format!("{a:?}").contains(&a.digest()));
        assert!(!format!("{a:?}").contains("PRIVATE"));
        assert!(matches!(
            RootCa::generate(""),
            Err(PkiError::InvalidSubject(_))
        ));
    }

    #[test]
    fn from_pem_checks_cert_and_key() {
        let a = ca();
        let b = ca();
        let with_key = RootCa::from_pem(a.cert_pem(), a.key_pem()).unwrap();
        assert_eq!(with_key.key_pem(), a.key_pem());
        assert!(matches!(
            RootCa::from_pem(a.cert_pem(), b.key_pem()),
            Err(PkiError::InvalidKey(_))
        ));
        assert!(matches!(
            RootCa::from_pem(a.cert_pem(), Some("junk")),
            Err(PkiError::Pem { .. })
        ));
        assert!(matches!(
            RootCa::from_pem("junk", None),
            Err(PkiError::Pem { .. })
        ));
        let two = format!("{}{}", a.cert_pem(), b.cert_pem());
        assert!(matches!(
            RootCa::from_pem(&two, None),
            Err(PkiError::InvalidCertificate(_))
        ));
        // A node certificate is not a CA.
        let node = NodeKey::generate().unwrap();
        let cert = a
            .sign_csr(&node.csr_pem().unwrap(), "n1", NodeRole::Worker, "c1", DAY)
            .unwrap();
        assert!(matches!(
            RootCa::from_pem(&cert, None),
            Err(PkiError::InvalidCertificate(_))
        ));
        // A CA without its key cannot sign.
        let public = RootCa::from_pem(a.cert_pem(), None).unwrap();
        assert!(public.key_pem().is_none());
        let err = public.sign_csr(&node.csr_pem().unwrap(), "n1", NodeRole::Worker, "c1", DAY);
        assert!(matches!(err, Err(PkiError::NoSigningKey)));
    }

    #[test]
    fn subject_comes_from_the_ca_not_the_csr() {
        let a = ca();
        let csr = csr_asking(&PKCS_ECDSA_P256_SHA256, "evil", crate::ROLE_MANAGER_OU);
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let pem_text = a
            .sign_csr_at(&csr, "node1", NodeRole::Worker, "cluster1", 90 * DAY, now)
            .unwrap();
        let id = identity_from_cert_pem(&pem_text).unwrap();
        assert_eq!(
            id,
            PeerIdentity {
                node_id: "node1".into(),
                role: NodeRole::Worker,
                cluster_id: "cluster1".into(),
                not_after_unix: 1_700_000_000 + 90 * 86_400,
            }
        );
        let der = pem::single_cert(&pem_text).unwrap();
        assert_eq!(identity_from_cert_der(&der).unwrap(), id);

        let (_, cert) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(cert.validity().not_before.timestamp(), 1_700_000_000 - 3600);
        assert!(
            !cert.is_ca(),
            "the CSR asked for CA:TRUE and must not get it"
        );
        let san = cert.subject_alternative_name().unwrap().unwrap().value;
        assert_eq!(
            format!("{:?}", san.general_names),
            format!(
                "{:?}",
                vec![x509_parser::extensions::GeneralName::DNSName(NODE_SAN)]
            )
        );
        assert_eq!(cert.issuer().as_raw(), &a.subject_der()[..]);
        let (_, ca_cert) = X509Certificate::from_der(a.cert_der()).unwrap();
        cert.verify_signature(Some(ca_cert.public_key()))
            .expect("signed by the CA");
        assert!(cert.verify_signature(Some(cert.public_key())).is_err());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
    }

    #[test]
    fn tiny_validity_and_serials() {
        let a = ca();
        let key = NodeKey::generate().unwrap();
        let now = SystemTime::now();
        let now_unix = unix_secs(now).unwrap() as i64;
        let sign = || {
            a.sign_csr_at(&key.csr_pem().unwrap(), "n1", NodeRole::Manager, "c1", Duration::from_secs(1), now)
                .unwrap()
        };
        let one = sign();
        assert_eq!(
            identity_from_cert_pem(&one).unwrap().not_after_unix,
            now_unix + 1
        );
        assert_eq!(crate::cert_not_after_unix(&one).unwrap(), now_unix + 1);
        let two = sign();
        let serial = |p: &str| {
            X509Certificate::from_der(&pem::single_cert(p).unwrap())
                .unwrap()
                .1
                .raw_serial()
                .to_vec()
        };
        assert_ne!(
            serial(&one),
            serial(&two),
            "same key, same second: serials must still differ"
        );
    }

    #[test]
    fn bad_validity_is_an_error_not_a_panic() {
        let a = ca();
        let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
        for validity in [Duration::MAX, Duration::from_secs(10_000 * 365 * 86_400)] {
            let r = a.sign_csr(&csr, "n1", NodeRole::Worker, "c1", validity);
            assert!(matches!(r, Err(PkiError::InvalidValidity(_))), "{r:?}");
        }
        let before_epoch = UNIX_EPOCH - Duration::from_secs(10);
        let r = a.sign_csr_at(&csr, "n1", NodeRole::Worker, "c1", DAY, before_epoch);
        assert!(matches!(r, Err(PkiError::InvalidValidity(_))));
        let far = UNIX_EPOCH + Duration::from_secs(MAX_CERT_UNIX + 1);
        assert!(matches!(
            RootCa::generate_at("c1", far),
            Err(PkiError::InvalidValidity(_))
        ));
    }

    #[test]
    fn bad_names_are_rejected() {
        let a = ca();
        let csr = NodeKey::generate().unwrap().csr_pem().unwrap();
        for (node, cluster) in [
            ("", "c1"),
            ("n1", ""),
            ("a b", "c1"),
            ("n1", "c=1,O=x"),
            (&*"n".repeat(65), "c1"),
        ] {
            let r = a.sign_csr(&csr, node, NodeRole::Worker, cluster, DAY);
            assert!(
                matches!(r, Err(PkiError::InvalidSubject(_))),
                "{node:?}/{cluster:?}: {r:?}"
            );
        }
    }

    #[test]
    fn bad_csrs_are_rejected() {
        let a = ca();
        let sign = |csr: &str| a.sign_csr(csr, "n1", NodeRole::Manager, "c1", DAY);

        assert!(matches!(sign(""), Err(PkiError::Pem { .. })));
        assert!(matches!(sign("garbage"), Err(PkiError::Pem { .. })));
        let junk = pem::encode("CERTIFICATE REQUEST", b"\x30\x03\x02\x01\x00garbage");
        assert!(matches!(sign(&junk), Err(PkiError::InvalidCsr(_))));
        let truncated = pem::single_cert(a.cert_pem()).unwrap();
        let truncated = pem::encode("CERTIFICATE REQUEST", &truncated[..40]);
        assert!(matches!(sign(&truncated), Err(PkiError::InvalidCsr(_))));

        let rsa = include_str!("testdata/rsa2048.csr");
        assert!(
            matches!(sign(rsa), Err(PkiError::UnsupportedKey(_))),
            "{:?}",
            sign(rsa)
        );
        let ed = csr_asking(&PKCS_ED25519, "evil", "swarm-manager");
        assert!(
            matches!(sign(&ed), Err(PkiError::UnsupportedKey(_))),
            "{:?}",
            sign(&ed)
        );
        let p384 = csr_asking(&PKCS_ECDSA_P384_SHA384, "evil", "swarm-manager");
        assert!(
            matches!(sign(&p384), Err(PkiError::UnsupportedKey(_))),
            "{:?}",
            sign(&p384)
        );

        // A P-256 CSR whose signature was tampered with: the requester may not hold the key.
        let good = NodeKey::generate().unwrap().csr_pem().unwrap();
        let mut der = pem::csr(&good).unwrap().as_ref().to_vec();
        let last = der.len() - 1;
        der[last] ^= 0x01;
        let tampered = pem::encode("CERTIFICATE REQUEST", &der);
        assert!(
            matches!(sign(&tampered), Err(PkiError::InvalidCsr(_))),
            "{:?}",
            sign(&tampered)
        );
        assert!(sign(&good).is_ok());
    }

    #[test]
    fn csr_extensions_are_ignored_not_fatal() {
        // rcgen's own CSR parser rejects unknown extensions; ours only looks at the key.
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            &[1, 2, 3, 4],
            vec![0x05, 0x00],
        )];
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let cert = ca().sign_csr(&csr, "n1", NodeRole::Worker, "c1", DAY).unwrap();
        let der = pem::single_cert(&cert).unwrap();
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        assert_eq!(
            parsed.public_key().subject_public_key.data.as_ref(),
            key.public_key_raw()
        );
        assert!(parsed
            .extensions()
            .iter()
            .all(|e| e.oid.to_id_string() != "1.2.3.4"));
    }

    #[test]
    fn node_key_round_trip() {
        let k = NodeKey::generate().unwrap();
        let again = NodeKey::from_pem(&k.to_pem()).unwrap();
        assert_eq!(again.to_pem(), k.to_pem());
        assert!(!format!("{k:?}").contains("PRIVATE"));
        let ed = KeyPair::generate_for(&PKCS_ED25519)
            .unwrap()
            .serialize_pem();
        assert!(matches!(
            NodeKey::from_pem(&ed),
            Err(PkiError::UnsupportedKey(_))
        ));
        assert!(matches!(
            NodeKey::from_pem("junk"),
            Err(PkiError::Pem { .. })
        ));
        let bad_der = pem::encode("PRIVATE KEY", b"\x30\x00");
        assert!(matches!(
            NodeKey::from_pem(&bad_der),
            Err(PkiError::InvalidKey(_))
        ));
    }
}
