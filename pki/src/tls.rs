//! rustls configurations for the cluster port: server, client with a node certificate, and join client.
//!
//! All use the ring provider explicitly (never a process-default provider), TLS 1.3 only, ALPN [`ALPN`].
//! Peers always authenticate the server as [`NODE_SAN`], whatever address they dialled.

use std::fmt;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig,
    SignatureScheme,
};

use crate::ca::der_digest;
use crate::{pem, NodeTls, PkiError, NODE_SAN};

/// The ALPN protocol of the cluster port.
pub const ALPN: &[u8] = b"skep/1";

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The name every node certificate carries and every client verifies: [`NODE_SAN`].
pub fn server_name() -> ServerName<'static> {
    ServerName::try_from(NODE_SAN).expect("NODE_SAN is a valid DNS name")
}

fn roots(ca: CertificateDer<'static>) -> Result<Arc<RootCertStore>, PkiError> {
    let mut roots = RootCertStore::empty();
    roots.add(ca)?;
    Ok(Arc::new(roots))
}

/// `[node cert (+ intermediates), CA cert]`, the node key, and the CA as the sole trust anchor.
fn node_material(
    node: &NodeTls,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        rustls::pki_types::PrivateKeyDer<'static>,
        Arc<RootCertStore>,
    ),
    PkiError,
> {
    let ca = pem::single_cert(&node.ca_pem)?;
    let mut chain = pem::certs(&node.cert_pem)?;
    if !chain.contains(&ca) {
        chain.push(ca.clone());
    }
    let key = pem::private_key(&node.key_pem)?;
    Ok((chain, key, roots(ca)?))
}

/// Server side of the cluster port.
///
/// Presents `[node cert, CA cert]`. Asks for a client certificate and verifies it against the CA, but
/// does not require one: a peer without a certificate may connect (it may only join); a certificate
/// from another CA fails the handshake.
pub fn server_config(node: &NodeTls) -> Result<ServerConfig, PkiError> {
    let provider = provider();
    let (chain, key, roots) = node_material(node)?;
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .allow_unauthenticated()
        .build()?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Client side with our node certificate: verifies the server's chain against the CA, for the
/// server name the caller passes to rustls (use [`server_name`]).
pub fn client_config(node: &NodeTls) -> Result<ClientConfig, PkiError> {
    let (chain, key, roots) = node_material(node)?;
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// What a join handshake learned: the CA certificate that matched the token's digest.
///
/// A cheap-clone handle onto state the verifier fills in; read it after the handshake completes.
#[derive(Clone, Default)]
pub struct JoinTrust {
    matched: Arc<Mutex<Option<String>>>,
}

impl JoinTrust {
    /// PEM of the CA certificate the server presented and proved to hold, once a handshake got that far.
    pub fn ca_pem(&self) -> Option<String> {
        self.matched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn set(&self, pem: String) {
        *self
            .matched
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(pem);
    }
}

impl fmt::Debug for JoinTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinTrust")
            .field("matched", &self.ca_pem().is_some())
            .finish()
    }
}

/// Trusts a server only if its chain holds the CA with the token's digest and its end-entity
/// certificate chains to that CA for [`NODE_SAN`].
struct JoinVerifier {
    ca_digest: String,
    provider: Arc<CryptoProvider>,
    trust: JoinTrust,
}

impl fmt::Debug for JoinVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinVerifier")
            .field("ca_digest", &self.ca_digest)
            .finish_non_exhaustive()
    }
}

impl ServerCertVerifier for JoinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The digest is public (it is in the token), so a plain comparison is fine.
        let ca = std::iter::once(end_entity)
            .chain(intermediates)
            .find(|cert| der_digest(cert) == self.ca_digest)
            .ok_or(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))?;
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone().into_owned())?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("join verifier: {e}")))?;
        // Always NODE_SAN: a joining node dials an address, but the certificate names no address.
        let verified = webpki.verify_server_cert(
            end_entity,
            intermediates,
            &server_name(),
            ocsp_response,
            now,
        )?;
        self.trust.set(pem::encode("CERTIFICATE", ca));
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Client side for joining: no client certificate, and trust only a server that proves it holds the
/// CA named by `ca_digest` (from the join token), so the token's secret only ever goes to that cluster.
///
/// After the handshake, [`JoinTrust::ca_pem`] gives the CA certificate to store as the node's root.
pub fn join_client_config(ca_digest: &str) -> Result<(ClientConfig, JoinTrust), PkiError> {
    let provider = provider();
    let trust = JoinTrust::default();
    let verifier = JoinVerifier {
        ca_digest: ca_digest.to_owned(),
        provider: provider.clone(),
        trust: trust.clone(),
    };
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok((config, trust))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{identity_from_cert_der, NodeKey, RootCa};
    use skep_api::docker::NodeRole;
    use rustls::{ClientConnection, ServerConnection};
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    fn node(ca: &RootCa, id: &str, role: NodeRole) -> NodeTls {
        let key = NodeKey::generate().unwrap();
        let cert_pem = ca
            .sign_csr(&key.csr_pem().unwrap(), id, role, "cluster1", 90 * DAY)
            .unwrap();
        NodeTls {
            cert_pem,
            key_pem: key.to_pem(),
            ca_pem: ca.cert_pem().to_owned(),
        }
    }

    #[derive(Debug)]
    enum Failed {
        Client(rustls::Error),
        Server(rustls::Error),
    }

    /// Move one side's pending TLS bytes to the other; true if any moved.
    fn transfer(
        from: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
        to: &mut impl std::ops::DerefMut<Target = rustls::ConnectionCommon<impl Sized>>,
    ) -> bool {
        let mut buf = Vec::new();
        while from.wants_write() {
            from.write_tls(&mut buf).unwrap();
        }
        let mut rd = &buf[..];
        while !rd.is_empty() {
            to.read_tls(&mut rd).unwrap();
        }
        !buf.is_empty()
    }

    /// Run a handshake over in-memory buffers until both sides are done or one fails.
    fn handshake(
        client: &mut ClientConnection,
        server: &mut ServerConnection,
    ) -> Result<(), Failed> {
        for _ in 0..32 {
            let c2s = transfer(client, server);
            server.process_new_packets().map_err(Failed::Server)?;
            let s2c = transfer(server, client);
            client.process_new_packets().map_err(Failed::Client)?;
            if !c2s && !s2c && !client.is_handshaking() && !server.is_handshaking() {
                return Ok(());
            }
        }
        panic!("handshake did not finish");
    }

    fn connect(
        client: ClientConfig,
        server: ServerConfig,
    ) -> (ClientConnection, ServerConnection, Result<(), Failed>) {
        let mut c = ClientConnection::new(Arc::new(client), server_name()).unwrap();
        let mut s = ServerConnection::new(Arc::new(server)).unwrap();
        let r = handshake(&mut c, &mut s);
        (c, s, r)
    }

    #[test]
    fn node_to_node_mutual_tls() {
        let ca = RootCa::generate("cluster1").unwrap();
        let mgr = node(&ca, "mgr1", NodeRole::Manager);
        let wrk = node(&ca, "wrk1", NodeRole::Worker);
        let (c, s, r) = connect(client_config(&wrk).unwrap(), server_config(&mgr).unwrap());
        r.unwrap();
        assert_eq!(c.alpn_protocol(), Some(ALPN));
        assert_eq!(c.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3));
        let theirs = s
            .peer_certificates()
            .expect("client presented a certificate");
        let id = identity_from_cert_der(&theirs[0]).unwrap();
        assert_eq!((id.node_id.as_str(), id.role), ("wrk1", NodeRole::Worker));
        let server_chain = c.peer_certificates().unwrap();
        assert_eq!(
            server_chain.len(),
            2,
            "server presents [node cert, CA cert]"
        );
        assert_eq!(server_chain[1].as_ref(), ca.cert_der());
        assert_eq!(
            identity_from_cert_der(&server_chain[0]).unwrap().role,
            NodeRole::Manager
        );
    }

    #[test]
    fn join_with_the_right_digest_learns_the_ca() {
        let ca = RootCa::generate("cluster1").unwrap();
        let mgr = node(&ca, "mgr1", NodeRole::Manager);
        let (config, trust) = join_client_config(&ca.digest()).unwrap();
        assert_eq!(trust.ca_pem(), None);
        let (_c, s, r) = connect(config, server_config(&mgr).unwrap());
        r.unwrap();
        assert_eq!(trust.ca_pem().as_deref(), Some(ca.cert_pem()));
        assert!(s.peer_certificates().is_none());
        assert_eq!(
            RootCa::from_pem(&trust.ca_pem().unwrap(), None)
                .unwrap()
                .digest(),
            ca.digest()
        );
    }

    #[test]
    fn join_with_a_wrong_digest_fails() {
        let ca = RootCa::generate("cluster1").unwrap();
        let other = RootCa::generate("cluster2").unwrap();
        let mgr = node(&ca, "mgr1", NodeRole::Manager);
        let (config, trust) = join_client_config(&other.digest()).unwrap();
        let (_c, _s, r) = connect(config, server_config(&mgr).unwrap());
        assert!(
            matches!(r, Err(Failed::Client(rustls::Error::InvalidCertificate(_)))),
            "{r:?}"
        );
        assert_eq!(trust.ca_pem(), None);
    }

    #[test]
    fn join_fails_against_a_server_that_only_shows_the_right_ca() {
        // An impostor presents the real CA certificate (public) next to its own cert from another CA.
        let ca = RootCa::generate("cluster1").unwrap();
        let other = RootCa::generate("cluster2").unwrap();
        let mut impostor = node(&other, "mgr1", NodeRole::Manager);
        impostor.cert_pem.push_str(ca.cert_pem());
        let (config, trust) = join_client_config(&ca.digest()).unwrap();
        let (_c, _s, r) = connect(config, server_config(&impostor).unwrap());
        assert!(
            matches!(r, Err(Failed::Client(rustls::Error::InvalidCertificate(_)))),
            "{r:?}"
        );
        assert_eq!(trust.ca_pem(), None);
    }

    #[test]
    fn client_cert_from_another_ca_fails_on_the_server() {
        let ca = RootCa::generate("cluster1").unwrap();
        let other = RootCa::generate("cluster2").unwrap();
        let mgr = node(&ca, "mgr1", NodeRole::Manager);
        let mut intruder = node(&other, "wrk1", NodeRole::Worker);
        // The intruder trusts our CA (so it accepts the server) but its own cert is from `other`.
        intruder.ca_pem = ca.cert_pem().to_owned();
        let (_c, s, r) = connect(
            client_config(&intruder).unwrap(),
            server_config(&mgr).unwrap(),
        );
        assert!(
            matches!(r, Err(Failed::Server(rustls::Error::InvalidCertificate(_)))),
            "{r:?}"
        );
        assert!(
            s.peer_certificates().is_none(),
            "a rejected certificate is not kept"
        );
    }

    #[test]
    fn member_client_rejects_a_server_from_another_ca() {
        let ca = RootCa::generate("cluster1").unwrap();
        let other = RootCa::generate("cluster2").unwrap();
        let (_c, _s, r) = connect(
            client_config(&node(&ca, "wrk1", NodeRole::Worker)).unwrap(),
            server_config(&node(&other, "mgr1", NodeRole::Manager)).unwrap(),
        );
        assert!(
            matches!(r, Err(Failed::Client(rustls::Error::InvalidCertificate(_)))),
            "{r:?}"
        );
    }

    #[test]
    fn no_client_cert_is_allowed() {
        let ca = RootCa::generate("cluster1").unwrap();
        let mgr = node(&ca, "mgr1", NodeRole::Manager);
        let anonymous = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots(pem::single_cert(ca.cert_pem()).unwrap()).unwrap())
            .with_no_client_auth();
        let (_c, s, r) = connect(anonymous, server_config(&mgr).unwrap());
        r.unwrap();
        assert!(s.peer_certificates().is_none());
    }

    #[test]
    fn bad_material_is_an_error() {
        let ca = RootCa::generate("cluster1").unwrap();
        let mut n = node(&ca, "mgr1", NodeRole::Manager);
        n.key_pem = NodeKey::generate().unwrap().to_pem(); // not the certificate's key
        assert!(server_config(&n).is_err());
        n.key_pem = "junk".into();
        assert!(matches!(client_config(&n), Err(PkiError::Pem { .. })));
        n.ca_pem = String::new();
        assert!(matches!(server_config(&n), Err(PkiError::Pem { .. })));
        assert_eq!(server_name(), ServerName::try_from("skep-node").unwrap());
    }
}
