//! Keys at rest on a manager: its Raft data key and, with autolock, the sealing of both it and the node key.
//!
//! A manager's Raft log and snapshots are encrypted with its own data key (DEK), kept beside them in
//! `<data-root>/swarm/raft/dek.json`. Without autolock that file and `node.key` hold their keys as they are (0600,
//! root only), as swarmkit keeps them: the Raft files alone (a copied disk image, a backup of the directory) then give
//! away nothing. With autolock both are sealed with the cluster's unlock key (KEK, `SWMKEY-1-…`), which no file of
//! the node holds: a manager that restarts cannot read its log or even prove who it is until an operator gives the
//! key (`swarm unlock`). The unlock key lives in the replicated store; each manager reseals its two files when it
//! changes (autolock turned on or off, the key rotated). Workers never seal: their key is needed to come back.

use crate::state::{write_file, Paths};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use skep_pki::{NodeTls, SecretKey};
use std::path::PathBuf;

/// The first line of a sealed node key; the rest is the sealed PEM in base64.
const SEALED_KEY_HEADER: &str = "skep sealed node key v1";
/// What a sealed node key is bound to.
const NODE_KEY_AAD: &[u8] = b"skep-node-key";
/// What a sealed data key is bound to.
const DEK_AAD: &[u8] = b"skep-raft-dek";

/// The benchmark's switch (`bench/`'s A/B of encryption at rest): with it set to `1` in the daemon's environment, a
/// manager's new Raft log and its snapshots are not encrypted. Nothing but that benchmark should set it.
pub const PLAINTEXT_RAFT_ENV: &str = "SKEP_BENCH_PLAINTEXT_RAFT";

/// Whether [`PLAINTEXT_RAFT_ENV`] is set.
pub fn plaintext_raft() -> bool {
    std::env::var(PLAINTEXT_RAFT_ENV).is_ok_and(|v| v == "1")
}

/// Why keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Sealed, and no unlock key was given: the manager is locked.
    #[error("the node's keys are sealed with the swarm's unlock key")]
    Locked,
    /// Sealed with another key than the one given (or damaged).
    #[error("the unlock key does not open the node's keys")]
    WrongKey,
    /// A file could not be read, written or parsed.
    #[error("{0:#}")]
    Io(#[from] anyhow::Error),
}

/// `dek.json`: exactly one of the two.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DekFile {
    /// The key, base64 (no autolock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dek: Option<String>,
    /// The key sealed with the unlock key, base64 (autolock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sealed_dek: Option<String>,
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

fn open_with(kek: Option<&SecretKey>, aad: &[u8], b64_sealed: &str) -> Result<Vec<u8>, KeyError> {
    let kek = kek.ok_or(KeyError::Locked)?;
    let sealed = b64().decode(b64_sealed.trim()).map_err(|e| KeyError::Io(anyhow::anyhow!("sealed key: {e}")))?;
    kek.open(aad, &sealed).map_err(|_| KeyError::WrongKey)
}

fn seal_with(kek: &SecretKey, aad: &[u8], plain: &[u8]) -> anyhow::Result<String> {
    Ok(b64().encode(kek.seal(aad, plain)?))
}

impl Paths {
    /// `raft/dek.json`.
    pub fn dek(&self) -> PathBuf {
        self.raft().join("dek.json")
    }

    /// Whether the node key on disk is sealed (this node is locked until it is given the unlock key).
    pub fn key_is_sealed(&self) -> anyhow::Result<bool> {
        let k = std::fs::read_to_string(self.key())?;
        Ok(k.starts_with(SEALED_KEY_HEADER))
    }

    /// Load the node's TLS material, opening a sealed key with `kek`.
    pub fn load_tls(&self, kek: Option<&SecretKey>) -> Result<NodeTls, KeyError> {
        let read = |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()));
        let key = read(self.key())?;
        let key_pem = match key.strip_prefix(SEALED_KEY_HEADER) {
            Some(sealed) => String::from_utf8(open_with(kek, NODE_KEY_AAD, sealed)?)
                .map_err(|_| KeyError::Io(anyhow::anyhow!("the sealed node key is not PEM")))?,
            None => key,
        };
        Ok(NodeTls { key_pem, cert_pem: read(self.cert())?, ca_pem: read(self.ca())? })
    }

    /// Save the node's TLS material, the key sealed with `kek` if one is given.
    pub fn save_tls(&self, tls: &NodeTls, kek: Option<&SecretKey>) -> anyhow::Result<()> {
        let key = match kek {
            Some(k) => format!("{SEALED_KEY_HEADER}\n{}\n", seal_with(k, NODE_KEY_AAD, tls.key_pem.as_bytes())?),
            None => tls.key_pem.clone(),
        };
        write_file(&self.key(), key.as_bytes(), 0o600)?;
        write_file(&self.cert(), tls.cert_pem.as_bytes(), 0o600)?;
        write_file(&self.ca(), tls.ca_pem.as_bytes(), 0o600)
    }

    /// The manager's data key, opened with `kek` if sealed; made (and saved, sealed with `kek` if given) when there
    /// is none yet, before any Raft file is written with it.
    pub fn load_or_make_dek(&self, kek: Option<&SecretKey>) -> Result<SecretKey, KeyError> {
        let p = self.dek();
        if !p.exists() {
            let dek = SecretKey::generate().map_err(anyhow::Error::from)?;
            self.save_dek(&dek, kek)?;
            return Ok(dek);
        }
        let f: DekFile = serde_json::from_slice(&std::fs::read(&p).map_err(anyhow::Error::from)?)
            .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let bytes = match (f.dek, f.sealed_dek) {
            (Some(d), None) => b64().decode(d).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
            (None, Some(s)) => open_with(kek, DEK_AAD, &s)?,
            _ => return Err(KeyError::Io(anyhow::anyhow!("{}: not a data key file", p.display()))),
        };
        Ok(SecretKey::from_bytes(&bytes).map_err(anyhow::Error::from)?)
    }

    fn save_dek(&self, dek: &SecretKey, kek: Option<&SecretKey>) -> anyhow::Result<()> {
        let f = match kek {
            Some(k) => DekFile { sealed_dek: Some(seal_with(k, DEK_AAD, dek.as_bytes())?), ..Default::default() },
            None => DekFile { dek: Some(b64().encode(dek.as_bytes())), ..Default::default() },
        };
        write_file(&self.dek(), &serde_json::to_vec(&f)?, 0o600)
    }

    /// Rewrite the node key and (if there is one) the data key, opened with `old`, sealed with `new` (`None`: kept
    /// as they are, autolock off).
    pub fn reseal(&self, old: Option<&SecretKey>, new: Option<&SecretKey>) -> Result<(), KeyError> {
        let tls = self.load_tls(old)?;
        let dek = if self.dek().exists() { Some(self.load_or_make_dek(old)?) } else { None };
        // the data key first: a crash between the two leaves the node key openable with the old key, and the data
        // key with the new one, which `swarm unlock` then reports as a wrong key for one of them; never a lost key
        if let Some(d) = &dek {
            self.save_dek(d, new)?;
        }
        self.save_tls(&tls, new)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn has(dir: &std::path::Path, needle: &str) -> bool {
        walk(dir).iter().any(|p| std::fs::read(p).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes()))
    }

    fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn keys_sealed_with_the_unlock_key_open_with_it_only_and_unseal_again() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::new(dir.path());
        let tls = NodeTls {
            key_pem: "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n".into(),
            cert_pem: "CERT".into(),
            ca_pem: "CA".into(),
        };
        paths.save_tls(&tls, None).unwrap();
        let dek = paths.load_or_make_dek(None).unwrap();
        assert!(!paths.key_is_sealed().unwrap());
        assert_eq!(paths.load_or_make_dek(None).unwrap(), dek, "made once, then read");

        let kek = SecretKey::generate().unwrap();
        paths.reseal(None, Some(&kek)).unwrap();
        assert!(paths.key_is_sealed().unwrap());
        assert!(!has(dir.path(), "PRIVATE KEY"), "a sealed key leaves no PEM on disk");
        assert!(matches!(paths.load_tls(None), Err(KeyError::Locked)));
        assert!(matches!(paths.load_or_make_dek(None), Err(KeyError::Locked)));
        let other = SecretKey::generate().unwrap();
        assert!(matches!(paths.load_tls(Some(&other)), Err(KeyError::WrongKey)));
        assert!(matches!(paths.load_or_make_dek(Some(&other)), Err(KeyError::WrongKey)));
        assert_eq!(paths.load_tls(Some(&kek)).unwrap().key_pem, tls.key_pem);
        assert_eq!(paths.load_or_make_dek(Some(&kek)).unwrap(), dek);

        // rotation: the new key opens, the old one no longer does
        paths.reseal(Some(&kek), Some(&other)).unwrap();
        assert!(matches!(paths.load_tls(Some(&kek)), Err(KeyError::WrongKey)));
        assert_eq!(paths.load_or_make_dek(Some(&other)).unwrap(), dek);
        // autolock off
        paths.reseal(Some(&other), None).unwrap();
        assert!(!paths.key_is_sealed().unwrap());
        assert_eq!(paths.load_tls(None).unwrap().key_pem, tls.key_pem);
        assert_eq!(paths.load_or_make_dek(None).unwrap(), dek);
        for p in walk(dir.path()) {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o077, 0, "{}", p.display());
        }
    }
}
