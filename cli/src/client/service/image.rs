//! Image references as docker's client handles them for services: the tag added before a create or update
//! (`nginx` → `nginx:latest`), the digest pinning through `GET /distribution/{image}/json`
//! (`shared/reference/docker-api.md` §5.1), and the digest stripped for display (`nginx:1.27@sha256:…` →
//! `nginx:1.27`).
//!
//! The parser follows `distribution/reference`'s grammar closely enough for these three uses. Strings that are not
//! references (a program path such as `/bin/sleep`, which skep's process engine accepts as the "image") are left
//! alone, as docker leaves them.

use super::super::ApiClient;
use serde::Deserialize;
use skep_api::docker::{Platform, TaskSpec};

/// Docker Hub, whose name is dropped from the familiar form.
const DEFAULT_DOMAIN: &str = "docker.io";

/// A parsed reference: `[domain/]path[:tag][@digest]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    /// Registry host (`docker.io` when none was written).
    pub domain: String,
    /// Repository path (`library/nginx`).
    pub path: String,
    /// Tag, if any.
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<String>,
}

impl Reference {
    /// `reference.ParseNormalizedNamed`; `None` for anything that is not a valid reference.
    pub fn parse(s: &str) -> Option<Reference> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return None; // docker refuses 64-hex names (they look like IDs)
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (r, Some(d)),
            None => (s, None),
        };
        if let Some(d) = digest {
            if !valid_digest(d) {
                return None;
            }
        }
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(t) = tag {
            if !valid_tag(t) {
                return None;
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((d, p)) if d.contains(['.', ':']) || d == "localhost" || d.to_lowercase() != d => {
                (d.to_string(), p.to_string())
            }
            _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
        };
        let domain = if domain == "index.docker.io" {
            DEFAULT_DOMAIN.to_string()
        } else {
            domain
        };
        if !valid_domain(&domain) || path.is_empty() || !path.split('/').all(valid_component) {
            return None;
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        Some(Reference {
            domain,
            path,
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// `reference.FamiliarString`: Docker Hub's domain and `library/` dropped.
    pub fn familiar(&self) -> String {
        let mut s = if self.domain == DEFAULT_DOMAIN {
            match self.path.strip_prefix("library/") {
                Some(p) if !p.contains('/') => p.to_string(),
                _ => self.path.clone(),
            }
        } else {
            format!("{}/{}", self.domain, self.path)
        };
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }
}

/// `[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-')) {
            return false;
        }
    }
    true
}

/// Host names, IPv4, `[v6]`, each with an optional `:port`.
fn valid_domain(d: &str) -> bool {
    let is_port = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if let Some(rest) = d.strip_prefix('[') {
        let Some((h, p)) = rest.split_once(']') else {
            return false;
        };
        let port_ok = p.is_empty() || p.strip_prefix(':').is_some_and(is_port);
        return port_ok && h.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (d, None),
    };
    if port.is_some_and(|p| !is_port(p)) {
        return false;
    }
    !host.is_empty()
        && host.split('.').all(|c| {
            !c.is_empty()
                && !c.starts_with('-')
                && !c.ends_with('-')
                && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `[\w][\w.-]{0,127}`.
fn valid_tag(t: &str) -> bool {
    let w = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && w(b[0])
        && b[1..].iter().all(|&x| w(x) || x == b'.' || x == b'-')
}

/// `algorithm:hex` with at least 32 hex digits (sha256 needs exactly 64).
fn valid_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let alg_ok = !alg.is_empty()
        && alg.as_bytes()[0].is_ascii_alphabetic()
        && alg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'.'));
    let hex_ok = hex.len() >= 32 && hex.bytes().all(|b| b.is_ascii_hexdigit());
    alg_ok && hex_ok && (alg != "sha256" || hex.len() == 64)
}

/// docker's `imageWithTagString`: a reference without tag or digest gets `:latest`; anything else is unchanged.
pub fn with_default_tag(image: &str) -> String {
    match Reference::parse(image) {
        Some(mut r) if r.tag.is_none() && r.digest.is_none() => {
            r.tag = Some("latest".into());
            r.familiar()
        }
        _ => image.to_string(),
    }
}

/// The image as `service ls` and `service ps` show it: a tagged reference loses its digest.
pub fn display(image: &str) -> String {
    match Reference::parse(image) {
        Some(mut r) if r.tag.is_some() => {
            r.digest = None;
            r.familiar()
        }
        _ => image.to_string(),
    }
}

/// The body of `GET /distribution/{name}/json`, as far as the client reads it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
struct DistributionInspect {
    descriptor: Descriptor,
    #[serde(deserialize_with = "skep_api::docker::null_default")]
    platforms: Vec<OciPlatform>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Descriptor {
    digest: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OciPlatform {
    architecture: String,
    os: String,
}

/// docker's warning when the registry could not be asked for the digest.
pub fn digest_warning(image: &str) -> String {
    format!(
        "image {image} could not be accessed on a registry to record\nits digest. Each node will access {image} \
         independently,\npossibly leading to different nodes running different\nversions of the image.\n"
    )
}

/// docker's `resolveContainerSpecImage`: `GET /distribution/{image}/json`; a valid digest pins the image and copies
/// the platforms into the placement. Returns the warning to print when the lookup failed (the service is created
/// anyway). Images that are not references (program paths) are not looked up.
pub async fn pin_digest(c: &ApiClient, task: &mut TaskSpec) -> Option<String> {
    let spec = task.container_spec.as_mut()?;
    let r = Reference::parse(&spec.image)?;
    let reply: DistributionInspect =
        match c.get(&format!("/distribution/{}/json", spec.image)).await {
            Ok(d) => d,
            Err(_) => return Some(digest_warning(&spec.image)),
        };
    if r.digest.is_none() && valid_digest(&reply.descriptor.digest) {
        let mut pinned = r;
        pinned.digest = Some(reply.descriptor.digest.clone());
        spec.image = pinned.familiar();
    }
    if !reply.platforms.is_empty() {
        let platforms = reply
            .platforms
            .iter()
            .map(|p| Platform {
                // docker blanks "arm": images say arm, nodes say armv7l
                architecture: if p.architecture.eq_ignore_ascii_case("arm") {
                    String::new()
                } else {
                    p.architecture.clone()
                },
                os: p.os.clone(),
            })
            .collect();
        task.placement
            .get_or_insert_with(Default::default)
            .platforms = platforms;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:8307ed1ed4ba1e0a8a7c51b8a4a6a3f8c47c1f8d2c1b5c0b6c2b1a0f8e3d2c1b";

    #[test]
    fn default_tag_like_docker() {
        assert_eq!(with_default_tag("nginx"), "nginx:latest");
        assert_eq!(with_default_tag("nginx:alpine"), "nginx:alpine");
        assert_eq!(with_default_tag("library/nginx"), "nginx:latest");
        assert_eq!(with_default_tag("docker.io/library/nginx"), "nginx:latest");
        assert_eq!(with_default_tag("foo/bar"), "foo/bar:latest");
        assert_eq!(
            with_default_tag("registry:5000/foo/bar"),
            "registry:5000/foo/bar:latest"
        );
        assert_eq!(with_default_tag("localhost/app"), "localhost/app:latest");
        let pinned = format!("nginx@{D}");
        assert_eq!(with_default_tag(&pinned), pinned);
        // not references: left alone
        assert_eq!(with_default_tag("/bin/sleep"), "/bin/sleep");
        assert_eq!(with_default_tag("Nginx"), "Nginx");
        assert_eq!(with_default_tag("./run.sh"), "./run.sh");
    }

    #[test]
    fn display_strips_the_digest_of_tagged_images() {
        assert_eq!(display(&format!("nginx:alpine@{D}")), "nginx:alpine");
        assert_eq!(
            display(&format!("registry:5000/a/b:1@{D}")),
            "registry:5000/a/b:1"
        );
        assert_eq!(display(&format!("nginx@{D}")), format!("nginx@{D}"));
        assert_eq!(display("busybox:latest"), "busybox:latest");
        assert_eq!(display("/bin/sleep"), "/bin/sleep");
    }

    #[test]
    fn references_parse() {
        let r = Reference::parse(&format!("a.io:5000/x/y:t@{D}")).unwrap();
        assert_eq!(
            (r.domain.as_str(), r.path.as_str(), r.tag.as_deref()),
            ("a.io:5000", "x/y", Some("t"))
        );
        assert!(Reference::parse("a b").is_none());
        assert!(Reference::parse("nginx:").is_none());
        assert!(Reference::parse("nginx@sha256:abc").is_none());
        assert!(Reference::parse("a__b").is_some());
        assert!(Reference::parse("a___b").is_none());
        assert!(Reference::parse(&"a".repeat(64)).is_none());
    }
}
