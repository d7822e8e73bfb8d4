//! Content digests (`sha256:<64 hex>`): the only algorithm accepted, since every blob is verified and sha512 is not
//! used by any registry skep pulls from.

use crate::RegistryError;
use ring::digest::{Context, SHA256};
use std::fmt;

/// A validated `sha256:` digest.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(String);

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`.
    pub fn parse(s: &str) -> Result<Digest, RegistryError> {
        let ok = s
            .strip_prefix("sha256:")
            .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        if ok {
            Ok(Digest(s.to_string()))
        } else {
            Err(RegistryError::Protocol(format!("unsupported digest {:?} (sha256 only)", truncate(s))))
        }
    }

    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        let mut h = Hasher::new();
        h.update(data);
        h.finish()
    }

    /// The 64 hex digits (a file name in a content-addressed store).
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks that `data` has this digest.
    pub fn verify(&self, what: &str, data: &[u8]) -> Result<(), RegistryError> {
        let actual = Digest::of(data);
        if &actual != self {
            return Err(RegistryError::DigestMismatch { what: what.into(), expected: self.0.clone(), actual: actual.0 });
        }
        Ok(())
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A running sha256, for content streamed to disk.
pub struct Hasher(Context);

impl Hasher {
    /// A fresh hash.
    pub fn new() -> Hasher {
        Hasher(Context::new(&SHA256))
    }
    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    /// The digest of everything added.
    pub fn finish(self) -> Digest {
        let d = self.0.finish();
        let mut s = String::with_capacity(71);
        s.push_str("sha256:");
        for b in d.as_ref() {
            s.push_str(&format!("{b:02x}"));
        }
        Digest(s)
    }
}

impl Default for Hasher {
    fn default() -> Self {
        Hasher::new()
    }
}

/// At most 100 characters of something untrusted, for a message.
pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(100) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_and_verified() {
        let d = Digest::of(b"");
        assert_eq!(d.as_str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(Digest::parse(d.as_str()).unwrap(), d);
        assert!(d.verify("x", b"").is_ok());
        let e = d.verify("blob x", b"y").unwrap_err();
        assert!(e.to_string().starts_with("digest mismatch for blob x: expected sha256:e3b0"), "{e}");
        assert!(Digest::parse("sha512:abc").is_err());
        assert!(Digest::parse("sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855").is_err());
        assert!(Digest::parse("sha256:../../etc").is_err());
    }
}
