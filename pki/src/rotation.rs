//! Root CA rotation: the cross-signed certificate that lets nodes move to a new root without downtime, and the
//! `TLSInfo` that tells which root a node trusts and which CA issued its certificate.
//!
//! While a rotation runs, every node still trusts only the old root. Managers sign renewals with the new root's key
//! and hand out the new leaf followed by the new root *cross-signed by the old key* (same subject, same public key,
//! issued by the old root), so a peer that trusts the old root verifies the chain leaf → cross-signed → old root. Once
//! every node holds a certificate from the new key, the cluster's trust root becomes the new root; a node that
//! trusts it verifies leaf → new root directly, and one that has not heard of it yet still verifies through the
//! cross-signed certificate its peers keep sending. This is swarmkit's scheme (`ca/reconciler.go`,
//! `manager/controlapi/ca_rotation.go` in moby/swarmkit).

use base64::Engine as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, DnValue, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose,
    SubjectPublicKeyInfo,
};
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::ParsedExtension;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

use crate::ca::random_serial;
use crate::{pem, PkiError, RootCa};
use skep_api::docker::TlsInfo;

impl RootCa {
    /// `new_root`'s certificate re-issued by this (the old) root: `new_root`'s subject, public key, validity and CA
    /// constraints, signed with this root's key. PEM.
    pub fn cross_sign(&self, new_root: &RootCa) -> Result<String, PkiError> {
        let key = self.signing_key().ok_or(PkiError::NoSigningKey)?;
        let bad = |what: &str, e: &dyn std::fmt::Display| PkiError::InvalidCertificate(format!("the new root's {what}: {e}"));
        let (_, cert) = X509Certificate::from_der(new_root.cert_der()).map_err(|e| bad("certificate", &e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = distinguished_name(cert.subject())?;
        params.is_ca = match cert.basic_constraints().ok().flatten().and_then(|b| b.value.path_len_constraint) {
            Some(n) => IsCa::Ca(BasicConstraints::Constrained(u8::try_from(n).unwrap_or(u8::MAX))),
            None => IsCa::Ca(BasicConstraints::Unconstrained),
        };
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // the same subject key identifier as the new root, which its certificates name as their authority key
        if let Some(ski) = cert.iter_extensions().find_map(|e| match e.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
            _ => None,
        }) {
            params.key_identifier_method = KeyIdMethod::PreSpecified(ski);
        }
        params.use_authority_key_identifier_extension = true;
        params.serial_number = Some(random_serial()?);
        let epoch = rcgen::date_time_ymd(1970, 1, 1);
        let secs = |t: i64| std::time::Duration::from_secs(u64::try_from(t).unwrap_or(0));
        params.not_before = epoch + secs(cert.validity().not_before.timestamp());
        params.not_after = epoch + secs(cert.validity().not_after.timestamp());
        let public_key = SubjectPublicKeyInfo::from_der(cert.public_key().raw).map_err(|e| bad("public key", &e))?;
        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(self.cert_der()), key)?;
        Ok(params.signed_by(&public_key, &issuer)?.pem())
    }

    /// The `TLSInfo` of a cluster (or node) that trusts this root and whose certificates `issuer` signs: the trust
    /// root's PEM and the issuer's subject and public key (DER, base64), as Docker reports them.
    pub fn tls_info(&self, issuer: &RootCa) -> TlsInfo {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        TlsInfo {
            trust_root: self.cert_pem().to_string(),
            cert_issuer_subject: b64(&issuer.subject_der()),
            cert_issuer_public_key: b64(&issuer.public_key_der()),
        }
    }
}

/// Whether two PEM texts hold the same single CA certificate, whatever their layout; `false` when either does not
/// parse as one.
pub fn same_root_cert(a: &str, b: &str) -> bool {
    match (RootCa::from_pem(a, None), RootCa::from_pem(b, None)) {
        (Ok(a), Ok(b)) => a.cert_der() == b.cert_der(),
        _ => false,
    }
}

/// `name` as rcgen writes it back: the same attributes with the same string types, so that the cross-signed
/// certificate's subject is byte for byte the new root's (path building compares names as bytes).
fn distinguished_name(name: &X509Name<'_>) -> Result<DistinguishedName, PkiError> {
    let bad = |m: &str| PkiError::InvalidCertificate(format!("the new root's subject: {m}"));
    let mut dn = DistinguishedName::new();
    for rdn in name.iter() {
        let mut attrs = rdn.iter();
        let (Some(attr), None) = (attrs.next(), attrs.next()) else {
            return Err(bad("a name part with other than one attribute"));
        };
        let oid: Vec<u64> = attr.attr_type().iter().ok_or_else(|| bad("an attribute type too long"))?.collect();
        let data = attr.attr_value().data;
        let text = || std::str::from_utf8(data).map_err(|_| bad("an attribute that is not text"));
        let value = match attr.attr_value().header.tag() {
            Tag::PrintableString => DnValue::PrintableString(text()?.try_into()?),
            Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into()?),
            other => return Err(bad(&format!("an attribute of type {other}"))),
        };
        dn.push(DnType::from_oid(&oid), value);
    }
    Ok(dn)
}

/// The `TLSInfo` a node reports: the root it trusts (`trust_root_pem`), and the issuer of its certificate: the
/// certificate after the leaf in `chain_pem` when there is one (a cross-signed root during a rotation), the trust root
/// otherwise. Subject and key are read, not verified: the caller installed this chain after TLS checked it.
pub fn node_tls_info(chain_pem: &str, trust_root_pem: &str) -> Result<TlsInfo, PkiError> {
    let root = RootCa::from_pem(trust_root_pem, None)?;
    let chain = pem::certs(chain_pem)?;
    let Some(issuer) = chain.get(1) else {
        return Ok(root.tls_info(&root));
    };
    let (_, cert) = X509Certificate::from_der(issuer)
        .map_err(|e| PkiError::InvalidCertificate(format!("cannot parse the issuer certificate: {e}")))?;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    Ok(TlsInfo {
        trust_root: root.cert_pem().to_string(),
        cert_issuer_subject: b64(cert.subject().as_raw()),
        cert_issuer_public_key: b64(cert.public_key().raw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{client_config, server_name};
    use crate::{identity_from_cert_pem, NodeKey, NodeTls};
    use rustls::client::danger::ServerCertVerifier;
    use rustls::client::WebPkiServerVerifier;
    use rustls::pki_types::UnixTime;
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;
    use skep_api::docker::NodeRole;
    use std::sync::Arc;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn roots(pem_text: &str) -> Arc<RootCertStore> {
        let mut r = RootCertStore::empty();
        r.add(pem::single_cert(pem_text).unwrap()).unwrap();
        Arc::new(r)
    }

    /// A node certificate from `ca`, with `extra` certificates after the leaf.
    fn leaf(ca: &RootCa, node: &str, extra: &[&str]) -> (Vec<CertificateDer<'static>>, NodeKey) {
        let key = NodeKey::generate().unwrap();
        let pem_text = ca.sign_csr(&key.csr_pem().unwrap(), node, NodeRole::Worker, "cluster1", DAY).unwrap();
        let mut chain = pem::certs(&pem_text).unwrap();
        for e in extra {
            chain.extend(pem::certs(e).unwrap());
        }
        (chain, key)
    }

    /// Whether a server presenting `chain` is accepted by a peer trusting `root_pem` (and, the other way round, a
    /// client presenting it by a server trusting `root_pem`).
    fn accepted(chain: &[CertificateDer<'static>], root_pem: &str) -> bool {
        let server = WebPkiServerVerifier::builder_with_provider(roots(root_pem), provider()).build().unwrap();
        let as_server = server
            .verify_server_cert(&chain[0], &chain[1..], &server_name(), &[], UnixTime::now())
            .is_ok();
        let client = WebPkiClientVerifier::builder_with_provider(roots(root_pem), provider()).build().unwrap();
        let as_client = client.verify_client_cert(&chain[0], &chain[1..], UnixTime::now()).is_ok();
        assert_eq!(as_server, as_client, "server and client verification disagree");
        as_server
    }

    #[test]
    fn a_cross_signed_root_bridges_old_trust_to_new_certificates() {
        let old = RootCa::generate("cluster1").unwrap();
        let new = RootCa::generate("cluster1").unwrap();
        let cross = old.cross_sign(&new).unwrap();
        // the cross-signed certificate: the new root's subject and key, issued by the old root
        let x = RootCa::from_pem(&cross, None).unwrap();
        assert_eq!(x.subject_der(), new.subject_der());
        assert_eq!(x.public_key_der(), new.public_key_der());
        assert_ne!(x.digest(), new.digest());

        // during the rotation: new leaves with the cross-signed root verify against the old root
        let (during, _) = leaf(&new, "n1", &[&cross]);
        assert!(accepted(&during, old.cert_pem()));
        // without it they do not
        let (bare, _) = leaf(&new, "n2", &[]);
        assert!(!accepted(&bare, old.cert_pem()));
        // after it: the same chain verifies against the new root, and so does a bare new leaf
        assert!(accepted(&during, new.cert_pem()));
        assert!(accepted(&bare, new.cert_pem()));
        // the chain as a node sends it after the rotation ends (its trust root appended) still verifies for a
        // node that trusts only the old root
        let (after, _) = leaf(&new, "n3", &[&cross, new.cert_pem()]);
        assert!(accepted(&after, old.cert_pem()));
        assert!(accepted(&after, new.cert_pem()));
        // an old leaf is not trusted by a node on the new root: why the rotation waits for every node
        let (old_leaf, _) = leaf(&old, "n4", &[]);
        assert!(!accepted(&old_leaf, new.cert_pem()));
        // a root without its key cannot cross-sign
        assert!(matches!(RootCa::from_pem(old.cert_pem(), None).unwrap().cross_sign(&new), Err(PkiError::NoSigningKey)));
    }

    /// A root as another tool makes it: a UTF8String subject of two attributes, a SHA-1 sized key identifier.
    fn foreign_root() -> RootCa {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::OrganizationName, DnValue::Utf8String("Example Ops".into()));
        params.distinguished_name.push(DnType::CommonName, DnValue::Utf8String("given root".into()));
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.key_identifier_method = KeyIdMethod::PreSpecified(vec![7; 20]);
        let cert = params.self_signed(&key).unwrap();
        RootCa::from_pem(&cert.pem(), Some(&key.serialize_pem())).unwrap()
    }

    #[test]
    fn a_root_made_elsewhere_is_cross_signed_with_its_own_subject_and_key_identifier() {
        let old = RootCa::generate("cluster1").unwrap();
        let given = foreign_root();
        let cross = old.cross_sign(&given).unwrap();
        let x = RootCa::from_pem(&cross, None).unwrap();
        assert_eq!(x.subject_der(), given.subject_der(), "the subject, byte for byte");
        let (during, _) = leaf(&given, "n1", &[&cross]);
        assert!(accepted(&during, old.cert_pem()));
        assert!(accepted(&during, given.cert_pem()));
        let key = NodeKey::generate().unwrap();
        let cert = given.sign_csr(&key.csr_pem().unwrap(), "n1", NodeRole::Worker, "cluster1", DAY).unwrap();
        assert_eq!(node_tls_info(&format!("{cert}{cross}"), old.cert_pem()).unwrap(), old.tls_info(&given));
    }

    #[test]
    fn the_same_root_is_recognised_whatever_its_pem_layout() {
        let a = RootCa::generate("cluster1").unwrap();
        assert!(same_root_cert(a.cert_pem(), &a.cert_pem().replace('\n', "\r\n")));
        assert!(!same_root_cert(a.cert_pem(), RootCa::generate("cluster1").unwrap().cert_pem()));
        assert!(!same_root_cert("garbage", "garbage"));
    }

    #[test]
    fn rustls_configurations_take_a_chain_with_the_cross_signed_root() {
        let old = RootCa::generate("cluster1").unwrap();
        let new = RootCa::generate("cluster1").unwrap();
        let cross = old.cross_sign(&new).unwrap();
        let key = NodeKey::generate().unwrap();
        let cert = new.sign_csr(&key.csr_pem().unwrap(), "n1", NodeRole::Manager, "cluster1", DAY).unwrap();
        let tls = NodeTls { cert_pem: format!("{cert}{cross}"), key_pem: key.to_pem(), ca_pem: old.cert_pem().into() };
        client_config(&tls).unwrap();
        crate::tls::server_config(&tls).unwrap();
        assert_eq!(identity_from_cert_pem(&tls.cert_pem).unwrap().node_id, "n1");
    }

    #[test]
    fn a_node_reports_its_issuer_and_its_trust_root() {
        let old = RootCa::generate("cluster1").unwrap();
        let new = RootCa::generate("cluster1").unwrap();
        let cross = old.cross_sign(&new).unwrap();
        let key = NodeKey::generate().unwrap();
        let plain = old.sign_csr(&key.csr_pem().unwrap(), "n1", NodeRole::Worker, "cluster1", DAY).unwrap();
        // before: issued and trusted by the old root, as the cluster says
        assert_eq!(node_tls_info(&plain, old.cert_pem()).unwrap(), old.tls_info(&old));
        // renewed during the rotation: issued by the new key, still trusting the old root
        let renewed = new.sign_csr(&key.csr_pem().unwrap(), "n1", NodeRole::Worker, "cluster1", DAY).unwrap();
        let during = format!("{renewed}{cross}");
        assert_eq!(node_tls_info(&during, old.cert_pem()).unwrap(), old.tls_info(&new));
        // after: trusting the new root
        assert_eq!(node_tls_info(&during, new.cert_pem()).unwrap(), new.tls_info(&new));
        assert!(node_tls_info(&during, "garbage").is_err());
    }
}
