//! A minimal HTTP/1.1 client over hyper's connection API: one connection per request (a pull makes a handful),
//! TLS through rustls with the system's roots, plain HTTP only when the caller says so (an `--insecure-registry`),
//! redirects followed (blobs are often served from elsewhere) without carrying the registry's credentials to
//! another host, and every step under a timeout.

use crate::RegistryError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::net::TcpStream;
use url::Url;

/// Connecting and getting the response headers.
pub(crate) const HEADERS_TIMEOUT: Duration = Duration::from_secs(30);
/// Most time without a byte of a body.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most redirects followed.
const MAX_REDIRECTS: usize = 5;

/// One request to send.
#[derive(Clone, Debug)]
pub(crate) struct Call {
    pub method: hyper::Method,
    pub url: Url,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
}

impl Call {
    pub(crate) fn get(url: Url) -> Call {
        Call { method: hyper::Method::GET, url, headers: vec![], body: Bytes::new() }
    }
}

/// Whether a URL may be fetched over plain HTTP.
pub(crate) type AllowPlain<'a> = &'a (dyn Fn(&Url) -> bool + Sync);

/// Sends `call`, following redirects for GET and HEAD (the `Authorization` header is dropped when the host changes).
pub(crate) async fn send(mut call: Call, allow_plain: AllowPlain<'_>) -> Result<Response<Incoming>, RegistryError> {
    for _ in 0..=MAX_REDIRECTS {
        let resp = send_once(&call, allow_plain).await?;
        let redirect = matches!(resp.status(), StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND | StatusCode::SEE_OTHER | StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT);
        if !redirect || !(call.method == hyper::Method::GET || call.method == hyper::Method::HEAD) {
            return Ok(resp);
        }
        let loc = resp
            .headers()
            .get(hyper::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| RegistryError::Protocol("redirect without a location".into()))?;
        let next = call.url.join(loc).map_err(|e| RegistryError::Protocol(format!("bad redirect location: {e}")))?;
        if next.host_str() != call.url.host_str() || next.port_or_known_default() != call.url.port_or_known_default() {
            call.headers.retain(|(k, _)| !k.eq_ignore_ascii_case("authorization"));
        }
        call.url = next;
    }
    Err(RegistryError::Protocol(format!("more than {MAX_REDIRECTS} redirects")))
}

fn host_port(url: &Url) -> String {
    format!("{}:{}", url.host_str().unwrap_or(""), url.port_or_known_default().unwrap_or(0))
}

async fn send_once(call: &Call, allow_plain: AllowPlain<'_>) -> Result<Response<Incoming>, RegistryError> {
    let url = &call.url;
    let host = url.host_str().ok_or_else(|| RegistryError::Protocol(format!("no host in {url}")))?.to_string();
    let hp = host_port(url);
    let unreachable = |reason: String| RegistryError::Unreachable { host: hp.clone(), reason };
    let tls = match url.scheme() {
        "https" => true,
        "http" if allow_plain(url) => false,
        "http" => return Err(RegistryError::Protocol(format!("refusing plain HTTP to {hp} (not an insecure registry)"))),
        other => return Err(RegistryError::Protocol(format!("unsupported URL scheme {other:?}"))),
    };
    let mut path = url.path().to_string();
    if let Some(q) = url.query() {
        path.push('?');
        path.push_str(q);
    }
    let mut req = Request::builder().method(call.method.clone()).uri(path).header(hyper::header::HOST, url[url::Position::BeforeHost..url::Position::AfterPort].to_string()).header(hyper::header::USER_AGENT, concat!("skep/", env!("CARGO_PKG_VERSION")));
    for (k, v) in &call.headers {
        req = req.header(*k, v);
    }
    let req = req.body(Full::new(call.body.clone())).map_err(|e| RegistryError::Protocol(format!("bad request: {e}")))?;
    let fut = async {
        let tcp = TcpStream::connect(&hp).await.map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        if tls {
            let name = rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| unreachable(e.to_string()))?;
            let stream = tokio_rustls::TlsConnector::from(tls_config()).connect(name, tcp).await.map_err(|e| unreachable(format!("TLS: {e}")))?;
            exchange(TokioIo::new(stream), req).await.map_err(|e| unreachable(e.to_string()))
        } else {
            exchange(TokioIo::new(tcp), req).await.map_err(|e| unreachable(e.to_string()))
        }
    };
    tokio::time::timeout(HEADERS_TIMEOUT, fut).await.map_err(|_| unreachable(format!("no answer within {HEADERS_TIMEOUT:?}")))?
}

async fn exchange<T>(io: TokioIo<T>, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, hyper::Error>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await
}

fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default protocol versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// Reads a whole body of at most `limit` bytes.
pub(crate) async fn read_body(what: &str, resp: Response<Incoming>, limit: u64) -> Result<Bytes, RegistryError> {
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while let Some(frame) = next_frame(what, &mut body).await? {
        if out.len() as u64 + frame.len() as u64 > limit {
            return Err(RegistryError::TooLarge { what: what.into(), limit });
        }
        out.extend_from_slice(&frame);
    }
    Ok(out.into())
}

/// The next chunk of a body (`None` at its end), under [`IDLE_TIMEOUT`].
pub(crate) async fn next_frame(what: &str, body: &mut Incoming) -> Result<Option<Bytes>, RegistryError> {
    loop {
        let frame = tokio::time::timeout(IDLE_TIMEOUT, body.frame())
            .await
            .map_err(|_| RegistryError::Protocol(format!("{what}: no data for {IDLE_TIMEOUT:?}")))?;
        match frame {
            None => return Ok(None),
            Some(Err(e)) => return Err(RegistryError::Protocol(format!("{what}: {e}"))),
            Some(Ok(f)) => {
                if let Ok(data) = f.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}
