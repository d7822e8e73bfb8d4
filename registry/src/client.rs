//! Talking to one repository of one registry: the distribution API's manifest and blob endpoints
//! (github.com/opencontainers/distribution-spec, `spec.md`), with the auth challenge answered once per session and
//! every document and blob checked against its digest and bounded in size.

use crate::auth::{Challenge, Credentials};
use crate::http::{self, Call};
use crate::manifest::{self, Descriptor, Fetched, ImageConfig, Manifest, Platform};
use crate::{Digest, Hasher, RegistryError};
use bytes::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use skep_api::docker::reference::Reference;
use std::sync::Mutex;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use url::Url;

/// The registries this node may reach over plain HTTP (`--insecure-registry HOST:PORT`, as dockerd's flag); every
/// other registry is HTTPS.
#[derive(Clone, Debug, Default)]
pub struct Client {
    insecure: Vec<String>,
}

/// The top of an image: what `GET /distribution/{name}/json` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The manifest or index the reference names (its digest is what a service is pinned to).
    pub descriptor: Descriptor,
    /// The platforms it can run on.
    pub platforms: Vec<Platform>,
}

/// An image's manifest for one platform, and its config.
#[derive(Clone, Debug)]
pub struct Image {
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The manifest.
    pub manifest: Manifest,
    /// Its config (verified against `manifest.config`).
    pub config: ImageConfig,
    /// The config's raw bytes.
    pub config_raw: Bytes,
}

impl Client {
    /// A client that reaches `insecure` registries (`host:port`) over plain HTTP.
    pub fn new(insecure: Vec<String>) -> Client {
        Client { insecure }
    }

    /// Whether `host` (`host:port`, as in a reference) is reached over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.insecure.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// A session with the repository of `image` (a reference, not a program path), for pulling.
    pub fn session(&self, image: &str, creds: Credentials) -> Result<Session, RegistryError> {
        let r = Reference::parse(image).ok_or_else(|| RegistryError::InvalidReference(crate::digest::truncate(image).into()))?;
        self.session_for(r, creds, image)
    }

    /// `docker login`'s check (`POST /auth`): `GET /v2/` of registry `server` with `creds`, answering its challenge
    /// (a token asked for without a repository scope, as Docker's login does). `server` is what the CLI sends: a
    /// `host[:port]`, or a URL (`https://index.docker.io/v1/` for Docker Hub). Returns the URL that was checked.
    pub async fn login(&self, server: &str, creds: Credentials) -> Result<String, RegistryError> {
        let host = server.trim().trim_start_matches("https://").trim_start_matches("http://");
        let host = host.split('/').next().unwrap_or_default();
        let domain = match host {
            "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
                skep_api::docker::reference::DEFAULT_DOMAIN
            }
            h => h,
        };
        if domain.len() > 255 || !domain.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)) {
            let server = crate::digest::truncate(server);
            return Err(RegistryError::InvalidReference(format!("invalid registry address {server:?}")));
        }
        let r = Reference { domain: domain.to_string(), path: String::new(), tag: None, digest: None };
        let session = self.session_for(r, creds, server)?;
        let url = session.url("v2/")?;
        let resp = session.call(Call::get(url.clone())).await?;
        session.check(url.to_string(), resp).await?;
        Ok(url.to_string())
    }

    fn session_for(&self, r: Reference, creds: Credentials, image: &str) -> Result<Session, RegistryError> {
        let host = r.registry_host().to_string();
        let scheme = if self.is_insecure(&r.domain) { "http" } else { "https" };
        let base = Url::parse(&format!("{scheme}://{host}/"))
            .map_err(|e| RegistryError::InvalidReference(format!("{image}: {e}")))?;
        Ok(Session { insecure: scheme == "http", base, host, reference: r, creds, push: false, auth: Mutex::new(None) })
    }
}

/// One repository, with the authorization its challenge asked for, kept for the session's next requests.
pub struct Session {
    base: Url,
    host: String,
    insecure: bool,
    /// The parsed reference (its path is the repository).
    pub reference: Reference,
    creds: Credentials,
    /// Ask for push scope too.
    push: bool,
    /// The `Authorization` value that worked (a bearer token, or basic credentials).
    auth: Mutex<Option<String>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("base", &self.base.as_str()).field("repo", &self.reference.path).finish()
    }
}

/// A registry's error body: `{"errors":[{"code":…,"message":…}]}`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    errors: Vec<ErrorItem>,
}
#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorItem {
    code: String,
    message: String,
}

impl Session {
    /// This session asks for push access too (`import`).
    pub fn for_push(mut self) -> Session {
        self.push = true;
        self
    }

    fn what(&self) -> String {
        format!("{}/{}", self.reference.domain, self.reference.path)
    }

    fn url(&self, path: &str) -> Result<Url, RegistryError> {
        self.base.join(path).map_err(|e| RegistryError::Protocol(format!("bad URL {path}: {e}")))
    }

    /// Sends a call with the session's authorization; on a 401, answers the challenge once and sends it again.
    async fn call(&self, mut call: Call) -> Result<hyper::Response<hyper::body::Incoming>, RegistryError> {
        let insecure_host = self.host.clone();
        let insecure = self.insecure;
        let allow_plain = move |u: &Url| insecure && format!("{}:{}", u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0)) == insecure_host_port(&insecure_host);
        let base_headers = call.headers.clone();
        let current = self.auth.lock().expect("poisoned").clone();
        if let Some(a) = &current {
            call.headers.push(("authorization", a.clone()));
        }
        let resp = http::send(call.clone(), &allow_plain).await?;
        if resp.status() != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        let challenge = resp.headers().get(hyper::header::WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()).and_then(Challenge::parse);
        let message = error_message(resp).await;
        let unauthorized = |message: String| RegistryError::Unauthorized { what: self.what(), message };
        let auth = match challenge {
            Some(Challenge::Basic) => self.creds.basic().ok_or_else(|| unauthorized(message.clone()))?,
            Some(Challenge::Bearer { realm, params }) => format!("Bearer {}", self.token(&realm, &params, &allow_plain).await?),
            None => return Err(unauthorized(message)),
        };
        if current.as_deref() == Some(auth.as_str()) {
            return Err(unauthorized(message));
        }
        *self.auth.lock().expect("poisoned") = Some(auth.clone());
        call.headers = base_headers;
        call.headers.push(("authorization", auth));
        let resp = http::send(call, &allow_plain).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            return Err(unauthorized(error_message(resp).await));
        }
        Ok(resp)
    }

    /// Trades the credentials for a token at `realm` (anonymously when there are none).
    async fn token(&self, realm: &str, params: &std::collections::BTreeMap<String, String>, allow_plain: http::AllowPlain<'_>) -> Result<String, RegistryError> {
        if !self.creds.registry_token.is_empty() {
            return Ok(self.creds.registry_token.clone());
        }
        let mut url = Url::parse(realm).map_err(|e| RegistryError::Protocol(format!("bad token realm {realm:?}: {e}")))?;
        // a login session (no repository) asks for no scope
        let scope = match self.reference.path.as_str() {
            "" => String::new(),
            path => format!("repository:{path}:{}", if self.push { "pull,push" } else { "pull" }),
        };
        let service = params.get("service").cloned().unwrap_or_default();
        let call = if !self.creds.identity_token.is_empty() {
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "refresh_token")
                .append_pair("service", &service)
                .append_pair("scope", &scope)
                .append_pair("client_id", "skep")
                .append_pair("refresh_token", &self.creds.identity_token)
                .finish();
            Call { method: Method::POST, url, headers: vec![("content-type", "application/x-www-form-urlencoded".into())], body: form.into() }
        } else {
            url.query_pairs_mut().append_pair("service", &service);
            if !scope.is_empty() {
                url.query_pairs_mut().append_pair("scope", &scope);
            }
            let mut c = Call::get(url);
            if let Some(b) = self.creds.basic() {
                c.headers.push(("authorization", b));
            }
            c
        };
        let resp = http::send(call, allow_plain).await?;
        if !resp.status().is_success() {
            let status = resp.status();
            let message = error_message(resp).await;
            return Err(RegistryError::Unauthorized { what: self.what(), message: format!("token server answered {status}: {message}") });
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Token {
            token: String,
            access_token: String,
        }
        let body = http::read_body("token", resp, 64 << 10).await?;
        let t: Token = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol(format!("bad token answer: {e}")))?;
        let t = if t.token.is_empty() { t.access_token } else { t.token };
        if t.is_empty() {
            return Err(RegistryError::Protocol("the token server answered no token".into()));
        }
        Ok(t)
    }

    /// Turns a non-success answer into the error the registry meant.
    async fn check(&self, what: String, resp: hyper::Response<hyper::body::Incoming>) -> Result<hyper::Response<hyper::body::Incoming>, RegistryError> {
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let message = error_message(resp).await;
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => RegistryError::Unauthorized { what: self.what(), message },
            StatusCode::NOT_FOUND => RegistryError::NotFound { what, message },
            _ => RegistryError::Protocol(format!("registry {} answered {status} for {what}: {message}", self.reference.domain)),
        })
    }

    /// The manifest or index `reference` (a tag or digest) names, its digest (checked when asked by digest) and
    /// its media type and size.
    pub async fn manifest(&self, reference: &str) -> Result<(Fetched, Descriptor), RegistryError> {
        let what = if reference.starts_with("sha256:") { format!("{}@{reference}", self.what()) } else { format!("{}:{reference}", self.what()) };
        let mut call = Call::get(self.url(&format!("v2/{}/manifests/{reference}", self.reference.path))?);
        call.headers.push(("accept", manifest::ACCEPT_MANIFESTS.into()));
        let resp = self.check(what.clone(), self.call(call).await?).await?;
        let ct = resp.headers().get(hyper::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let body = http::read_body(&what, resp, manifest::MAX_MANIFEST).await?;
        let digest = Digest::of(&body);
        if reference.starts_with("sha256:") {
            Digest::parse(reference)?.verify(&what, &body)?;
        }
        let fetched = manifest::parse_manifest(&ct, &body)?;
        let media_type = match &fetched {
            Fetched::Index(i) if !i.media_type.is_empty() => i.media_type.clone(),
            Fetched::Index(_) => manifest::OCI_INDEX.into(),
            Fetched::Manifest(m) if !m.media_type.is_empty() => m.media_type.clone(),
            Fetched::Manifest(_) => manifest::OCI_MANIFEST.into(),
        };
        Ok((fetched, Descriptor { media_type, digest: digest.to_string(), size: body.len() as i64, platform: None }))
    }

    /// What the reference names (digest, media type, size) and its platforms: those of an index's entries, or the
    /// one a single manifest's config says.
    pub async fn resolve(&self) -> Result<Resolved, RegistryError> {
        let (fetched, descriptor) = self.manifest(self.reference.manifest_ref()).await?;
        let platforms = match &fetched {
            Fetched::Index(i) => manifest::platforms(i),
            Fetched::Manifest(m) => {
                let config = manifest::parse_config(&self.blob(&m.config, manifest::MAX_CONFIG).await?)?;
                vec![Platform { architecture: config.architecture, os: config.os, variant: String::new() }]
            }
        };
        Ok(Resolved { descriptor, platforms })
    }

    /// The image for `platform`: through the index when the reference names one, and its config.
    pub async fn image(&self, platform: &Platform) -> Result<Image, RegistryError> {
        let (fetched, mut descriptor) = self.manifest(self.reference.manifest_ref()).await?;
        let manifest = match fetched {
            Fetched::Manifest(m) => m,
            Fetched::Index(i) => {
                let entry = manifest::select_platform(&i, platform)
                    .ok_or_else(|| RegistryError::NoPlatform { what: self.reference.familiar(), platform: platform.to_string() })?;
                let d = entry.checked_digest()?;
                let (fetched, desc) = self.manifest(d.as_str()).await?;
                descriptor = desc;
                match fetched {
                    Fetched::Manifest(m) => m,
                    Fetched::Index(_) => return Err(RegistryError::Protocol("an index inside an index".into())),
                }
            }
        };
        let config_raw = self.blob(&manifest.config, manifest::MAX_CONFIG).await?;
        let config = manifest::parse_config(&config_raw)?;
        Ok(Image { manifest_digest: Digest::parse(&descriptor.digest)?, manifest, config, config_raw })
    }

    /// A small blob (a config), whole in memory.
    pub async fn blob(&self, d: &Descriptor, limit: u64) -> Result<Bytes, RegistryError> {
        let mut buf = Vec::new();
        self.blob_to(d, limit, &mut buf).await?;
        Ok(buf.into())
    }

    /// Streams a blob to `out`, hashing as it goes: more bytes than the descriptor says, or more than `limit`, stop
    /// the download; a digest that does not match is an error (the caller discards what was written).
    pub async fn blob_to<W: AsyncWrite + Unpin>(&self, d: &Descriptor, limit: u64, out: &mut W) -> Result<u64, RegistryError> {
        let digest = d.checked_digest()?;
        let what = format!("blob {digest}");
        let size = d.checked_size(&what, limit)?;
        let call = Call::get(self.url(&format!("v2/{}/blobs/{digest}", self.reference.path))?);
        let resp = self.check(what.clone(), self.call(call).await?).await?;
        let mut body = resp.into_body();
        let mut h = Hasher::new();
        let mut n = 0u64;
        while let Some(chunk) = http::next_frame(&what, &mut body).await? {
            n += chunk.len() as u64;
            if n > size {
                return Err(RegistryError::TooLarge { what, limit: size });
            }
            h.update(&chunk);
            out.write_all(&chunk).await?;
        }
        out.flush().await?;
        let actual = h.finish();
        if actual != digest {
            return Err(RegistryError::DigestMismatch { what, expected: digest.to_string(), actual: actual.to_string() });
        }
        if n != size {
            return Err(RegistryError::Protocol(format!("{what}: {n} bytes, announced {size}")));
        }
        Ok(n)
    }

    /// Uploads a blob (monolithic: `POST` then `PUT ?digest=`), unless the registry has it already.
    pub async fn push_blob(&self, media_type: &str, data: Bytes) -> Result<Descriptor, RegistryError> {
        let digest = Digest::of(&data);
        let desc = Descriptor { media_type: media_type.into(), digest: digest.to_string(), size: data.len() as i64, platform: None };
        let head = Call { method: Method::HEAD, ..Call::get(self.url(&format!("v2/{}/blobs/{digest}", self.reference.path))?) };
        if self.call(head).await?.status().is_success() {
            return Ok(desc);
        }
        let post = Call { method: Method::POST, ..Call::get(self.url(&format!("v2/{}/blobs/uploads/", self.reference.path))?) };
        let resp = self.check("blob upload".into(), self.call(post).await?).await?;
        let loc = resp.headers().get(hyper::header::LOCATION).and_then(|v| v.to_str().ok()).ok_or_else(|| RegistryError::Protocol("upload without a location".into()))?;
        let mut url = self.base.join(loc).map_err(|e| RegistryError::Protocol(format!("bad upload location: {e}")))?;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let len = data.len().to_string();
        let put = Call { method: Method::PUT, url, headers: vec![("content-type", "application/octet-stream".into()), ("content-length", len)], body: data };
        self.check(format!("blob {digest}"), self.call(put).await?).await?;
        Ok(desc)
    }

    /// Uploads a manifest or index under `reference` (a tag, or its digest).
    pub async fn push_manifest(&self, reference: &str, media_type: &str, data: Bytes) -> Result<Descriptor, RegistryError> {
        let digest = Digest::of(&data);
        let url = self.url(&format!("v2/{}/manifests/{reference}", self.reference.path))?;
        let desc = Descriptor { media_type: media_type.into(), digest: digest.to_string(), size: data.len() as i64, platform: None };
        let len = data.len().to_string();
        let put = Call { method: Method::PUT, url, headers: vec![("content-type", media_type.into()), ("content-length", len)], body: data };
        self.check(format!("manifest {reference}"), self.call(put).await?).await?;
        Ok(desc)
    }
}

/// `host[:port]` with the default port made explicit, to compare with a URL's.
fn insecure_host_port(host: &str) -> String {
    if host.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())) && !host.ends_with(']') {
        host.to_string()
    } else {
        format!("{host}:80")
    }
}

/// The registry's message from an error body (or the status when it has none), bounded.
async fn error_message(resp: hyper::Response<hyper::body::Incoming>) -> String {
    let status = resp.status();
    let body = http::read_body("error", resp, 64 << 10).await.unwrap_or_default();
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
    match parsed.errors.first() {
        Some(e) if !e.message.is_empty() => format!("{} ({})", e.message, e.code),
        _ => status.to_string(),
    }
}
