//! Join tokens: `SWMTKN-1-<CA digest>-<secret>`, as swarmkit makes them.
//!
//! The digest lets a joining node authenticate the manager (it only talks to a holder of that CA);
//! the secret authenticates the joining node to the manager and selects its role.

use std::fmt;

use rand::RngCore;

use crate::base36;
use crate::ca::DIGEST_LEN;
use crate::PkiError;

/// The fixed start of every token.
pub const TOKEN_PREFIX: &str = "SWMTKN";
/// The only token format version.
pub const TOKEN_VERSION: &str = "1";
/// Length of the secret part: base36 of 128 bits.
pub const SECRET_LEN: usize = 25;
/// Length of a well-formed token.
pub const TOKEN_LEN: usize =
    TOKEN_PREFIX.len() + 1 + TOKEN_VERSION.len() + 1 + DIGEST_LEN + 1 + SECRET_LEN;

/// A join token. `Display` prints the whole token; `Debug` never prints the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// [`crate::RootCa::digest`] of the CA the token belongs to.
    pub ca_digest: String,
    /// 25 lowercase base36 characters.
    pub secret: String,
}

impl JoinToken {
    /// A token with a fresh secret (128 random bits from the operating system).
    ///
    /// # Panics
    /// If the operating system's random source fails, which leaves nothing safe to do.
    pub fn generate(ca_digest: &str) -> JoinToken {
        Self::generate_with(ca_digest, &mut rand::rngs::OsRng)
    }

    /// [`JoinToken::generate`] with the random source given (must be a CSPRNG outside tests).
    pub fn generate_with(ca_digest: &str, rng: &mut (impl RngCore + rand::CryptoRng)) -> JoinToken {
        let mut secret = [0u8; 16];
        rng.fill_bytes(&mut secret);
        JoinToken {
            ca_digest: ca_digest.to_owned(),
            secret: base36::encode_padded(&secret, SECRET_LEN),
        }
    }

    /// Parse a token, strictly: `SWMTKN-1-` then 50 and 25 lowercase base36 characters. No trimming.
    pub fn parse(s: &str) -> Result<JoinToken, PkiError> {
        let bad = |msg: String| Err(PkiError::InvalidJoinToken(msg));
        if s.is_empty() {
            return bad("the token is empty".into());
        }
        if s.len() > 2 * TOKEN_LEN {
            return bad(format!(
                "the token is {} bytes long; a token is {TOKEN_LEN}",
                s.len()
            ));
        }
        let parts: Vec<&str> = s.split('-').collect();
        if parts[0] != TOKEN_PREFIX {
            return bad(format!("a token starts with {TOKEN_PREFIX}-"));
        }
        if parts.len() != 4 {
            return bad(format!(
                "expected 4 dash-separated parts ({TOKEN_PREFIX}-{TOKEN_VERSION}-<CA digest>-<secret>), found {}",
                parts.len()
            ));
        }
        let (version, digest, secret) = (parts[1], parts[2], parts[3]);
        if version != TOKEN_VERSION {
            return bad(format!(
                "unsupported token version {:?}; only {TOKEN_VERSION} is known",
                version
            ));
        }
        if digest.len() != DIGEST_LEN {
            return bad(format!(
                "the CA digest must be {DIGEST_LEN} characters, found {}",
                digest.len()
            ));
        }
        if !base36::is_base36(digest) {
            return bad("the CA digest must be lowercase base36 (0-9, a-z)".into());
        }
        if secret.len() != SECRET_LEN {
            return bad(format!(
                "the secret must be {SECRET_LEN} characters, found {}",
                secret.len()
            ));
        }
        if !base36::is_base36(secret) {
            return bad("the secret must be lowercase base36 (0-9, a-z)".into());
        }
        Ok(JoinToken {
            ca_digest: digest.to_owned(),
            secret: secret.to_owned(),
        })
    }

    /// Whether `other_secret` equals this token's secret, in time independent of where they differ.
    pub fn secret_matches(&self, other_secret: &str) -> bool {
        let (a, b) = (self.secret.as_bytes(), other_secret.as_bytes());
        // The length is public (always SECRET_LEN for real tokens); the contents are not.
        if a.len() != b.len() {
            return false;
        }
        let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
        std::hint::black_box(diff) == 0
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}-{TOKEN_VERSION}-{}-{}",
            self.ca_digest, self.secret
        )
    }
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinToken")
            .field("ca_digest", &self.ca_digest)
            .field("secret", &"[elided]")
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "4nb7oofka9ml8nasnokxxc1unhmtpr1wxsuwhpd9km3vt5as31";
    const SECRET: &str = "f5lxx1zz5pnorynqglhzmsp33";

    fn err(s: &str) -> String {
        match JoinToken::parse(s) {
            Err(PkiError::InvalidJoinToken(msg)) => msg,
            other => panic!("{s:?} should be rejected, got {other:?}"),
        }
    }

    #[test]
    fn round_trip() {
        let t = JoinToken::generate(DIGEST);
        let text = t.to_string();
        assert_eq!(text.len(), TOKEN_LEN);
        assert!(text.starts_with(&format!("SWMTKN-1-{DIGEST}-")));
        assert_eq!(t.secret.len(), SECRET_LEN);
        assert!(base36::is_base36(&t.secret));
        assert_eq!(JoinToken::parse(&text).unwrap(), t);
        assert_ne!(JoinToken::generate(DIGEST).secret, t.secret);
    }

    #[test]
    fn debug_hides_the_secret() {
        let t = JoinToken {
            ca_digest: DIGEST.into(),
            secret: SECRET.into(),
        };
        let dbg = format!("{t:?}");
        assert!(!dbg.contains(SECRET), "{dbg}");
        assert!(dbg.contains(DIGEST));
        assert_eq!(t.to_string(), format!("SWMTKN-1-{DIGEST}-{SECRET}"));
    }

    #[test]
    fn parse_rejects_malformed_tokens() {
        let good = format!("SWMTKN-1-{DIGEST}-{SECRET}");
        assert!(JoinToken::parse(&good).is_ok());
        assert!(err("").contains("empty"));
        assert!(err(&format!("SWMTKX-1-{DIGEST}-{SECRET}")).contains("starts with"));
        assert!(err(&format!("swmtkn-1-{DIGEST}-{SECRET}")).contains("starts with"));
        assert!(err(&format!("SWMTKN-2-{DIGEST}-{SECRET}")).contains("version"));
        assert!(err(&format!("SWMTKN-1-{}-{SECRET}", &DIGEST[1..])).contains("50 characters"));
        assert!(err(&format!("SWMTKN-1-{DIGEST}-{}", &SECRET[1..])).contains("25 characters"));
        assert!(err(&format!("SWMTKN-1-{}-{SECRET}", DIGEST.to_uppercase())).contains("lowercase"));
        assert!(err(&format!("SWMTKN-1-{DIGEST}-{}", SECRET.to_uppercase())).contains("lowercase"));
        assert!(err(&format!("SWMTKN-1-{DIGEST}-{SECRET}-x")).contains("4 dash-separated"));
        assert!(err(&format!("SWMTKN-1-{DIGEST}--{SECRET}")).contains("4 dash-separated"));
        assert!(err(&format!("SWMTKN-1-{DIGEST}")).contains("4 dash-separated"));
        assert!(err(&format!(" {good}")).contains("starts with"));
        assert!(err(&format!("{good}\n")).contains("25 characters"));
        assert!(err(&"a".repeat(10 * 1024)).contains("bytes long"));
        assert!(err(&format!("SWMTKN-1-{}-{SECRET}", "é".repeat(25))).contains("lowercase"));
    }

    #[test]
    fn secret_matches_only_the_same_secret() {
        let t = JoinToken {
            ca_digest: DIGEST.into(),
            secret: SECRET.into(),
        };
        assert!(t.secret_matches(SECRET));
        assert!(!t.secret_matches(&SECRET.replace('f', "g")));
        assert!(!t.secret_matches(&SECRET[..24]));
        assert!(!t.secret_matches(""));
        assert!(!t.secret_matches(&format!("{SECRET}0")));
    }
}
