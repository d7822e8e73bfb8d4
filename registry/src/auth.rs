//! Registry credentials and challenges.
//!
//! Credentials come as Docker's `X-Registry-Auth` header: base64url of an `AuthConfig` JSON object
//! (`api/types/registry/authconfig.go`, github.com/moby/moby). A registry asks for them with a `WWW-Authenticate`
//! challenge (the distribution spec's token flow, `docs/spec/auth/token.md`, github.com/distribution/distribution):
//! `Basic realm=…` means send them on every request; `Bearer realm=…,service=…,scope=…` means trade them at the realm
//! for a token scoped to the repository. [`Credentials`] never print their secrets (`Debug` redacts).

use crate::RegistryError;
use base64::Engine as _;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The largest `X-Registry-Auth` header accepted.
pub const MAX_AUTH_HEADER: usize = 16 << 10;

/// What to authenticate with.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// User name (with `password`).
    pub username: String,
    /// Password.
    pub password: String,
    /// An OAuth refresh token (`docker login` against a token server), traded at the realm.
    pub identity_token: String,
    /// A bearer token to send as is.
    pub registry_token: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // never a password or token in a log
        f.debug_struct("Credentials").field("username", &self.username).field("secrets", &"<redacted>").finish()
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct AuthConfig {
    username: String,
    password: String,
    auth: String,
    identitytoken: String,
    registrytoken: String,
}

impl Credentials {
    /// None at all.
    pub fn is_empty(&self) -> bool {
        self.username.is_empty() && self.identity_token.is_empty() && self.registry_token.is_empty()
    }

    /// Decodes an `X-Registry-Auth` value (base64url, padded or not; standard base64 accepted too). An empty header
    /// is no credentials; `{}` too.
    pub fn from_header(value: &str) -> Result<Credentials, RegistryError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Credentials::default());
        }
        if value.len() > MAX_AUTH_HEADER {
            return Err(RegistryError::Protocol(format!("X-Registry-Auth is too long (at most {MAX_AUTH_HEADER} bytes)")));
        }
        let bad = || RegistryError::Protocol("invalid X-Registry-Auth header: not base64 JSON".into());
        let trimmed = value.trim_end_matches('=');
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(trimmed)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed))
            .map_err(|_| bad())?;
        let c: AuthConfig = serde_json::from_slice(&raw).map_err(|_| bad())?;
        let (mut username, mut password) = (c.username, c.password);
        if username.is_empty() && !c.auth.is_empty() {
            let pair = base64::engine::general_purpose::STANDARD.decode(c.auth.trim()).map_err(|_| bad())?;
            let pair = String::from_utf8(pair).map_err(|_| bad())?;
            let (u, p) = pair.split_once(':').ok_or_else(bad)?;
            (username, password) = (u.to_string(), p.to_string());
        }
        Ok(Credentials { username, password, identity_token: c.identitytoken, registry_token: c.registrytoken })
    }

    /// The `X-Registry-Auth` value for these credentials (how the docker CLI encodes them).
    pub fn to_header(&self) -> String {
        let v = serde_json::json!({
            "username": self.username, "password": self.password,
            "identitytoken": self.identity_token, "registrytoken": self.registry_token,
        });
        base64::engine::general_purpose::URL_SAFE.encode(v.to_string())
    }

    /// `Basic base64(user:password)`.
    pub(crate) fn basic(&self) -> Option<String> {
        (!self.username.is_empty()).then(|| {
            let pair = format!("{}:{}", self.username, self.password);
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        })
    }
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Challenge {
    /// Send the user name and password with each request.
    Basic,
    /// Get a token at `realm` for `service` and `scope`.
    Bearer { realm: String, params: BTreeMap<String, String> },
}

impl Challenge {
    /// Parses `Scheme k="v", k2="v2"`; `None` for a scheme skep does not speak.
    pub(crate) fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim();
        let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
        let params = parse_params(rest);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => Some(Challenge::Basic),
            "bearer" => {
                let realm = params.get("realm")?.clone();
                Some(Challenge::Bearer { realm, params })
            }
            _ => None,
        }
    }
}

/// `k="v", k2=v2` (values quoted or not; a quoted value may hold commas).
fn parse_params(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else { break };
        let key = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(q) = after.strip_prefix('"') {
            match q.find('"') {
                Some(end) => (&q[..end], &q[end + 1..]),
                None => (q, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        out.insert(key, value.to_string());
        rest = next.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x_registry_auth_decodes_like_dockers() {
        let c = Credentials { username: "u".into(), password: "p@ss:w".into(), ..Default::default() };
        let back = Credentials::from_header(&c.to_header()).unwrap();
        assert_eq!(back, c);
        // the `auth` form, standard base64 without padding
        let h = base64::engine::general_purpose::STANDARD_NO_PAD.encode(r#"{"auth":"dTpw"}"#);
        let c = Credentials::from_header(&h).unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p"));
        assert!(Credentials::from_header("").unwrap().is_empty());
        assert!(Credentials::from_header("e30=").unwrap().is_empty()); // {}
        assert!(Credentials::from_header("!!!").is_err());
        assert!(Credentials::from_header(&"A".repeat(MAX_AUTH_HEADER + 1)).is_err());
        let dbg = format!("{:?}", Credentials { password: "hunter2".into(), ..Default::default() });
        assert!(!dbg.contains("hunter2"), "{dbg}");
    }

    #[test]
    fn challenges_parse() {
        assert_eq!(Challenge::parse(r#"Basic realm="Registry Realm""#), Some(Challenge::Basic));
        let Some(Challenge::Bearer { realm, params }) = Challenge::parse(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        ) else {
            panic!()
        };
        assert_eq!(realm, "https://auth.docker.io/token");
        assert_eq!(params["service"], "registry.docker.io");
        assert_eq!(params["scope"], "repository:library/busybox:pull,push");
        assert_eq!(Challenge::parse("Negotiate x"), None);
        assert_eq!(Challenge::parse("Bearer service=x"), None);
    }
}
