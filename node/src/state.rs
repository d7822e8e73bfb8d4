//! What a node keeps on disk under its data root, and how it is written (atomically, fsynced).
//!
//! ```text
//! <data-root>/swarm/state.json   node ID, cluster ID, role, Raft ID, addresses, known managers
//! <data-root>/swarm/node.key     the node's private key (0600; sealed with the unlock key under autolock)
//! <data-root>/swarm/node.crt     its certificate
//! <data-root>/swarm/ca.crt       the cluster's root CA certificate
//! <data-root>/swarm/raft/        the Raft log and snapshot, and their data key `dek.json` (managers only)
//! ```
//! Leaving the swarm removes `swarm/` entirely. The keys' encryption is `crate::keys`.

use serde::{Deserialize, Serialize};
use skep_api::docker::{NodeRole, Peer};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The persisted swarm membership of this node (`state.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Membership {
    /// This node's ID.
    pub node_id: String,
    /// The cluster's ID.
    pub cluster_id: String,
    /// What this node currently runs as (required in the file: never guessed).
    pub role: NodeRole,
    /// Raft ID while a manager.
    pub raft_id: Option<u64>,
    /// Where the cluster port listens.
    pub listen_addr: String,
    /// The cluster address others reach this node at.
    pub advertise_addr: String,
    /// Managers known at last contact.
    pub managers: Vec<Peer>,
    /// While this manager's corrupt Raft data is being rebuilt from the others: the Raft ID it lost. The node runs
    /// as a worker until the store gives it another ID, and never takes this one back (see `RaftReseat`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reseat: Option<u64>,
}

/// Paths under the data root.
#[derive(Clone, Debug)]
pub struct Paths {
    /// `<root>/swarm`.
    pub swarm: PathBuf,
}

impl Paths {
    /// Paths for `root`.
    pub fn new(root: &Path) -> Paths {
        Paths { swarm: root.join("swarm") }
    }
    /// state.json
    pub fn state(&self) -> PathBuf {
        self.swarm.join("state.json")
    }
    /// node.key
    pub fn key(&self) -> PathBuf {
        self.swarm.join("node.key")
    }
    /// node.crt
    pub fn cert(&self) -> PathBuf {
        self.swarm.join("node.crt")
    }
    /// ca.crt
    pub fn ca(&self) -> PathBuf {
        self.swarm.join("ca.crt")
    }
    /// raft/
    pub fn raft(&self) -> PathBuf {
        self.swarm.join("raft")
    }

    /// Load the node state, if this node is in a swarm.
    pub fn load(&self) -> anyhow::Result<Option<Membership>> {
        let p = self.state();
        if !p.exists() {
            return Ok(None);
        }
        let b = std::fs::read(&p)?;
        let s: Membership = serde_json::from_slice(&b)
            .map_err(|e| anyhow::anyhow!("{} is not a valid node state: {e}", p.display()))?;
        Ok(Some(s))
    }

    /// Save the node state.
    pub fn save(&self, s: &Membership) -> anyhow::Result<()> {
        write_file(&self.state(), &serde_json::to_vec_pretty(s)?, 0o600)
    }

    /// Forget the swarm.
    pub fn wipe(&self) -> anyhow::Result<()> {
        if self.swarm.exists() {
            std::fs::remove_dir_all(&self.swarm)?;
        }
        Ok(())
    }
}

/// Write `body` to `path` atomically: temp file, fsync, rename, fsync the directory.
pub fn write_file(path: &Path, body: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().ok_or_else(|| anyhow::anyhow!("{} has no parent", path.display()))?;
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700).create(dir)?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(mode).open(&tmp)?;
        f.set_permissions(<std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(mode))?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_unknown_fields_are_refused() {
        let dir = std::env::temp_dir().join(format!("skep-state-{}", std::process::id()));
        let p = Paths::new(&dir);
        assert!(p.load().unwrap().is_none());
        let s = Membership { node_id: "n".into(), role: NodeRole::Worker, ..Default::default() };
        p.save(&s).unwrap();
        assert_eq!(p.load().unwrap(), Some(s));
        std::fs::write(p.state(), br#"{"node_id":"n","bogus":1}"#).unwrap();
        assert!(p.load().is_err());
        p.wipe().unwrap();
        assert!(p.load().unwrap().is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// `state.json` as this build's predecessor wrote it (the role was a string then; it is the same word now).
    const WRITTEN: &str = r#"{
  "node_id": "n1",
  "cluster_id": "c1",
  "role": "manager",
  "raft_id": 1,
  "listen_addr": "0.0.0.0:2377",
  "advertise_addr": "10.0.0.1:2377",
  "managers": [
    {
      "NodeID": "n1",
      "Addr": "10.0.0.1:2377"
    }
  ]
}"#;

    #[test]
    fn a_state_file_written_before_the_role_was_typed_reads_and_writes_back_the_same() {
        let s: Membership = serde_json::from_str(WRITTEN).unwrap();
        assert_eq!((s.role, s.raft_id), (NodeRole::Manager, Some(1)));
        assert_eq!(String::from_utf8(serde_json::to_vec_pretty(&s).unwrap()).unwrap(), WRITTEN);
        for bad in [r#""role": """#, r#""role": "Manager""#] {
            let json = WRITTEN.replace(r#""role": "manager""#, bad);
            assert!(serde_json::from_str::<Membership>(&json).is_err(), "{bad}");
        }
    }
}
