//! Encryption at rest: a 256-bit key and authenticated encryption (AES-256-GCM) of byte strings with it.
//!
//! Two keys use it, as in swarmkit's design: each manager's **data key** (DEK) encrypts its Raft log entries and
//! snapshots, so the files alone do not give away the CA key, the join tokens or the secrets; with autolock, the
//! cluster's **unlock key** (KEK, shown to the operator as `SWMKEY-1-…`) encrypts each manager's data key and node
//! key on disk, so a stopped manager's disk is useless without it. A sealed value carries its own random nonce; the
//! caller names what it is (`aad`), so a value moved to another place (a log entry as a snapshot) does not open.

use crate::error::PkiError;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// Bytes of a key.
pub const KEY_LEN: usize = 32;
/// Bytes a sealed value has beyond its plaintext: the nonce and the tag.
pub const OVERHEAD: usize = NONCE_LEN + 16;
/// The prefix of an unlock key as the docker CLI shows it (swarmkit's human-readable key format, version 1).
const UNLOCK_KEY_PREFIX: &str = "SWMKEY-1-";

/// A 256-bit secret key. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(…)")
    }
}

impl SecretKey {
    /// A new random key from the operating system's generator.
    pub fn generate() -> Result<SecretKey, PkiError> {
        let mut k = [0u8; KEY_LEN];
        SystemRandom::new().fill(&mut k).map_err(|_| PkiError::Random)?;
        Ok(SecretKey(k))
    }

    /// The key's bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// A key from its bytes; anything but 32 bytes is refused.
    pub fn from_bytes(b: &[u8]) -> Result<SecretKey, PkiError> {
        let k: [u8; KEY_LEN] = b.try_into().map_err(|_| PkiError::Crypto(format!("a key is {KEY_LEN} bytes")))?;
        Ok(SecretKey(k))
    }

    /// The key as an unlock key: `SWMKEY-1-` and the key in unpadded base64, swarmkit's format.
    pub fn to_unlock_key(&self) -> String {
        format!("{UNLOCK_KEY_PREFIX}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(self.0))
    }

    /// Read an unlock key (`SWMKEY-1-…`); surrounding white space is ignored.
    pub fn from_unlock_key(s: &str) -> Result<SecretKey, PkiError> {
        let bad = || PkiError::Crypto("invalid key string".into());
        let body = s.trim().strip_prefix(UNLOCK_KEY_PREFIX).ok_or_else(bad)?;
        let b = base64::engine::general_purpose::STANDARD_NO_PAD.decode(body).map_err(|_| bad())?;
        SecretKey::from_bytes(&b).map_err(|_| bad())
    }

    fn aead(&self) -> LessSafeKey {
        // 32 bytes are always a valid AES-256 key
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("a 32-byte AES-256 key"))
    }

    /// Encrypt `plain`, bound to `aad`: `nonce ‖ ciphertext ‖ tag`.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, PkiError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| PkiError::Random)?;
        let mut out = Vec::with_capacity(plain.len() + OVERHEAD);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let tag = self
            .aead()
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut out[NONCE_LEN..])
            .map_err(|_| PkiError::Crypto("encryption failed".into()))?;
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypt what [`SecretKey::seal`] made with this key and the same `aad`; anything else (another key, another
    /// `aad`, a changed byte) is an error.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, PkiError> {
        if sealed.len() < OVERHEAD {
            return Err(PkiError::Crypto("sealed value too short".into()));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| PkiError::Crypto("bad nonce".into()))?;
        let mut buf = body.to_vec();
        let n = self
            .aead()
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| PkiError::Crypto("cannot decrypt: wrong key or damaged data".into()))?
            .len();
        buf.truncate(n);
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_and_aad_only() {
        let k = SecretKey::generate().unwrap();
        let s = k.seal(b"log", b"hello").unwrap();
        assert_eq!(s.len(), 5 + OVERHEAD);
        assert_eq!(k.open(b"log", &s).unwrap(), b"hello");
        assert!(k.open(b"snapshot", &s).is_err());
        assert!(SecretKey::generate().unwrap().open(b"log", &s).is_err());
        let mut bad = s.clone();
        bad[NONCE_LEN] ^= 1;
        assert!(k.open(b"log", &bad).is_err());
        assert!(k.open(b"log", &s[..OVERHEAD - 1]).is_err());
        // a fresh nonce each time: the same plaintext never seals the same
        assert_ne!(k.seal(b"log", b"hello").unwrap(), s);
        assert_eq!(k.open(b"log", &k.seal(b"log", b"").unwrap()).unwrap(), b"");
    }

    #[test]
    fn unlock_keys_round_trip_and_bad_ones_are_refused() {
        let k = SecretKey::generate().unwrap();
        let u = k.to_unlock_key();
        assert!(u.starts_with("SWMKEY-1-") && !u.ends_with('='), "{u}");
        assert_eq!(u.len(), 9 + 43);
        assert_eq!(SecretKey::from_unlock_key(&format!(" {u}\n")).unwrap(), k);
        for bad in ["", "SWMKEY-1-", "SWMKEY-2-abc", &u[..u.len() - 1], &format!("{u}A"), &u.replace("SWMKEY-1-", "")] {
            assert!(SecretKey::from_unlock_key(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{k:?}"), "SecretKey(…)");
    }
}
