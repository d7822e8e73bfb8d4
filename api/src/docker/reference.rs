//! Image references (`[domain/]path[:tag][@digest]`), parsed as `distribution/reference`'s grammar
//! (`ParseNormalizedNamed`, github.com/distribution/reference) closely enough for the CLI's tag and digest handling,
//! the manager's digest pinning and the registry client. Strings that are not references (a program path such as
//! `/bin/sleep`) parse as `None`.

/// Docker Hub, whose name is dropped from the familiar form.
pub const DEFAULT_DOMAIN: &str = "docker.io";

/// The longest reference accepted (names are at most 255 characters in `distribution/reference`; tag and digest
/// add at most 200).
pub const MAX_REFERENCE: usize = 512;

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
        if s.len() > MAX_REFERENCE {
            return None;
        }
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
pub fn valid_digest(d: &str) -> bool {
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


impl Reference {
    /// The host to ask: Docker Hub's API is at `registry-1.docker.io`.
    pub fn registry_host(&self) -> &str {
        if self.domain == DEFAULT_DOMAIN {
            "registry-1.docker.io"
        } else {
            &self.domain
        }
    }

    /// What to ask the registry's manifest endpoint for: the digest when pinned, else the tag (`latest` when none).
    pub fn manifest_ref(&self) -> &str {
        self.digest.as_deref().or(self.tag.as_deref()).unwrap_or("latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:8307ed1ed4ba1e0a8a7c51b8a4a6a3f8c47c1f8d2c1b5c0b6c2b1a0f8e3d2c1b";

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

    #[test]
    fn what_to_ask_which_registry() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!((r.registry_host(), r.path.as_str(), r.manifest_ref()), ("registry-1.docker.io", "library/busybox", "latest"));
        let r = Reference::parse(&format!("10.0.0.1:5000/app:1@{D}")).unwrap();
        assert_eq!((r.registry_host(), r.manifest_ref()), ("10.0.0.1:5000", D));
        assert!(Reference::parse(&"a".repeat(5000)).is_none());
    }
}
