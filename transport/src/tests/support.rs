//! Test fixtures: a PKI, rustls configs, a test handler, a server, a raw quinn client, a UDP proxy.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::{crypto::CryptoProvider, server::WebPkiClientVerifier, RootCertStore};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use tokio::{net::UdpSocket, sync::oneshot, task::JoinHandle};

use crate::{Endpoint, Handler, Peer, TransportConfig};

pub const NAME: &str = "skep-node";
pub const ALPN: &[u8] = b"skep/1";

pub struct Pki {
    pub ca: CertificateDer<'static>,
    pub server_chain: Vec<CertificateDer<'static>>,
    server_key: PrivateKeyDer<'static>,
    pub client_chain: Vec<CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn leaf(issuer: &Issuer<'_, KeyPair>, ca: &CertificateDer<'static>, cn: &str) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec![NAME.to_string()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![cert.der().clone(), ca.clone()], key)
}

impl Pki {
    pub fn new() -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        params.distinguished_name.push(rcgen::DnType::CommonName, "skep test CA");
        let ca = params.self_signed(&ca_key).unwrap().der().clone();
        let issuer = Issuer::new(params, ca_key);
        let (server_chain, server_key) = leaf(&issuer, &ca, "server");
        let (client_chain, client_key) = leaf(&issuer, &ca, "client");
        Pki { ca, server_chain, server_key, client_chain, client_key }
    }

    fn roots(&self) -> Arc<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        Arc::new(roots)
    }

    pub fn server_tls(&self) -> rustls::ServerConfig {
        let verifier = WebPkiClientVerifier::builder_with_provider(self.roots(), provider())
            .allow_unauthenticated()
            .build()
            .unwrap();
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.server_chain.clone(), self.server_key.clone_key())
            .unwrap();
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        cfg
    }

    /// Trusts our CA; presents our client certificate if `with_cert`.
    pub fn client_tls(&self, with_cert: bool) -> rustls::ClientConfig {
        self.client_tls_with(self, with_cert)
    }

    /// Trusts `other`'s CA; presents our client certificate.
    pub fn client_tls_trusting(&self, other: &Pki) -> rustls::ClientConfig {
        self.client_tls_with(other, true)
    }

    fn client_tls_with(&self, trust: &Pki, with_cert: bool) -> rustls::ClientConfig {
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(trust.roots());
        let mut cfg = if with_cert {
            builder.with_client_auth_cert(self.client_chain.clone(), self.client_key.clone_key()).unwrap()
        } else {
            builder.with_no_client_auth()
        };
        cfg.alpn_protocols = vec![ALPN.to_vec()];
        cfg
    }
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub enum Req {
    Echo(String),
    Whoami,
    Sleep(u64),
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
pub enum Resp {
    Echo(String),
    Whoami { addr: SocketAddr, certs: Option<Vec<Vec<u8>>> },
    Slept,
}

#[derive(Default)]
pub struct TestHandler {
    pub calls: AtomicUsize,
}

impl Handler<Req, Resp> for TestHandler {
    async fn handle(&self, peer: Peer, req: Req) -> Resp {
        self.calls.fetch_add(1, Ordering::SeqCst);
        match req {
            Req::Echo(s) => Resp::Echo(s),
            Req::Whoami => Resp::Whoami {
                addr: peer.addr,
                certs: peer.certs.map(|chain| chain.iter().map(|c| c.to_vec()).collect()),
            },
            Req::Sleep(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Resp::Slept
            }
        }
    }
}

pub struct Server {
    pub endpoint: Endpoint,
    pub addr: SocketAddr,
    pub handler: Arc<TestHandler>,
    pub shutdown: oneshot::Sender<()>,
    pub task: JoinHandle<()>,
}

impl Server {
    pub fn start(pki: &Pki, cfg: TransportConfig) -> Server {
        let endpoint = Endpoint::bind("127.0.0.1:0".parse().unwrap(), pki.server_tls(), pki.client_tls(true), cfg).unwrap();
        Server::serve(endpoint)
    }

    /// Bind `addr`, retrying while a previous endpoint still holds the port.
    pub async fn start_at(pki: &Pki, cfg: TransportConfig, addr: SocketAddr) -> Server {
        for _ in 0..100 {
            match Endpoint::bind(addr, pki.server_tls(), pki.client_tls(true), cfg.clone()) {
                Ok(endpoint) => return Server::serve(endpoint),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
        panic!("could not rebind {addr}");
    }

    fn serve(endpoint: Endpoint) -> Server {
        let addr = endpoint.local_addr().unwrap();
        let handler = Arc::new(TestHandler::default());
        let (shutdown, rx) = oneshot::channel();
        let task = tokio::spawn({
            let endpoint = endpoint.clone();
            let handler = handler.clone();
            async move {
                endpoint
                    .serve(handler, async {
                        let _ = rx.await;
                    })
                    .await
            }
        });
        Server { endpoint, addr, handler, shutdown, task }
    }

    /// Close the endpoint (peers are told) and wait for `serve` to return.
    pub async fn stop(self) {
        self.endpoint.close();
        self.task.await.unwrap();
    }
}

/// A bare quinn client, to put arbitrary bytes on a stream.
pub struct RawClient {
    _endpoint: quinn::Endpoint,
    conn: quinn::Connection,
}

impl RawClient {
    pub async fn connect(pki: &Pki, addr: SocketAddr) -> RawClient {
        let endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(pki.client_tls(true)).unwrap();
        let cfg = quinn::ClientConfig::new(Arc::new(crypto));
        let conn = endpoint.connect_with(cfg, addr, NAME).unwrap().await.unwrap();
        RawClient { _endpoint: endpoint, conn }
    }

    /// Write `bytes` (finishing the stream if `finish`), then read the whole response.
    pub async fn exchange(&self, bytes: &[u8], finish: bool) -> Result<Vec<u8>, quinn::ReadError> {
        let (mut send, mut recv) = self.conn.open_bi().await.unwrap();
        send.write_all(bytes).await.unwrap();
        if finish {
            send.finish().unwrap();
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        while let Some(n) = recv.read(&mut buf).await? {
            out.extend_from_slice(&buf[..n]);
        }
        Ok(out)
    }
}

/// A one-client UDP relay standing in for "the address a peer is reached at", so a test can make
/// the peer behind it vanish silently and another appear.
pub struct Proxy {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(addr: SocketAddr, upstream: SocketAddr) -> Proxy {
        let listen = UdpSocket::bind(addr).await.unwrap();
        let up = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        up.connect(upstream).await.unwrap();
        let task = tokio::spawn(async move {
            let mut client = None;
            let (mut a, mut b) = (vec![0u8; 65536], vec![0u8; 65536]);
            loop {
                tokio::select! {
                    Ok((n, from)) = listen.recv_from(&mut a) => {
                        client = Some(from);
                        let _ = up.send(&a[..n]).await;
                    }
                    Ok(n) = up.recv(&mut b) => {
                        if let Some(c) = client {
                            let _ = listen.send_to(&b[..n], c).await;
                        }
                    }
                }
            }
        });
        Proxy { addr, task }
    }

    /// Stop relaying to the old upstream (which never hears of it) and relay to `upstream`.
    pub async fn redirect(mut self, upstream: SocketAddr) -> Proxy {
        self.task.abort();
        let _ = (&mut self.task).await;
        Proxy::start(self.addr, upstream).await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
