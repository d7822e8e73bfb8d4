//! `swarm init --force-new-cluster`: a manager that lost its quorum keeps the cluster's state and becomes the single
//! member of a new Raft membership, as Docker's flag does.
//!
//! Raft itself cannot do this (a membership change needs the old quorum), so it is done on disk while the manager is
//! stopped: the state this manager had applied is written as a snapshot whose membership holds only this manager,
//! and the log starts empty after it, with a vote at the snapshot's term so that the next election moves past every
//! term the old cluster used. openraft, started on that, purges its log up to the snapshot and elects itself. Entries
//! this manager had received but not applied (not known committed) are dropped: the cluster keeps every write this
//! manager knew to be committed. The old files are kept beside the new ones, renamed, for an operator who wants them.

use super::log_store::{LogStore, LogStoreError, LEGACY_FILE, LOG_DIR};
use super::state_machine::{write_snapshot_file, SnapshotError};
use super::Member;
use crate::store::ClusterState;
use openraft::storage::RaftLogStorage;
use openraft::{LogId, Membership, SnapshotMeta, StoredMembership, Vote};
use std::collections::{BTreeMap, BTreeSet};
use skep_pki::SecretKey;
use std::path::Path;

/// Why the data root could not be rewritten.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForceError {
    /// Nothing was ever applied: there is no state to keep.
    #[error("this manager has applied no state to keep")]
    NoState,
    /// Moving the old files aside.
    #[error("keeping the old raft files: {0}")]
    Io(#[from] std::io::Error),
    /// Writing the snapshot.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// Writing the new log.
    #[error("writing the new raft log: {0}")]
    Log(String),
}

impl From<LogStoreError> for ForceError {
    fn from(e: LogStoreError) -> Self {
        ForceError::Log(e.to_string())
    }
}

/// The state the new cluster starts from: `state` with every other manager out of the Raft membership (their
/// records keep their manager role, so they stay listed, unreachable, until they are demoted and removed; demoting
/// them costs no quorum).
pub fn keep_only_voter(state: &ClusterState, raft_id: u64) -> ClusterState {
    let mut s = state.clone();
    let others: Vec<String> =
        s.nodes.iter().filter(|(_, r)| r.raft_id.is_some_and(|r| r != raft_id)).map(|(id, _)| id.clone()).collect();
    for id in others {
        if let Some(r) = s.nodes.get_mut(&id) {
            r.raft_id = None;
        }
    }
    s
}

/// The suffix of the old files kept beside the new ones.
pub const KEPT_SUFFIX: &str = "before-force-new-cluster";

/// Rewrite the Raft files under `dir` (the manager must be stopped) so that `raft_id`, reachable as `member`, is the
/// only voter, keeping `state` as applied up to `last_applied` (with the other managers out of the membership, see
/// [`keep_only_voter`]).
pub async fn single_member(
    dir: &Path,
    raft_id: u64,
    member: Member,
    last_applied: Option<LogId<u64>>,
    state: &ClusterState,
    dek: Option<SecretKey>,
) -> Result<(), ForceError> {
    let last = last_applied.ok_or(ForceError::NoState)?;
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    for name in [LEGACY_FILE, LOG_DIR, "snapshot.json"] {
        let p = dir.join(name);
        if p.exists() {
            std::fs::rename(&p, dir.join(format!("{name}.{KEPT_SUFFIX}-{stamp}")))?;
        }
    }
    let membership = Membership::new(vec![BTreeSet::from([raft_id])], BTreeMap::from([(raft_id, member)]));
    let meta = SnapshotMeta {
        last_log_id: Some(last),
        last_membership: StoredMembership::new(Some(last), membership),
        snapshot_id: format!("force-new-cluster-{}-{}", last.leader_id, last.index),
    };
    write_snapshot_file(&dir.join("snapshot.json"), &meta, &keep_only_voter(state, raft_id), dek.as_ref())?;
    let mut log = LogStore::open(dir, dek)?;
    log.save_vote(&Vote::new(last.leader_id.term, raft_id)).await.map_err(|e| ForceError::Log(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::state_machine::StateMachine;
    use openraft::storage::{RaftLogReader, RaftStateMachine};
    use openraft::CommittedLeaderId;

    #[tokio::test]
    async fn the_rewritten_files_hold_the_state_one_voter_and_a_vote_at_the_old_term() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("snapshot.json"), b"old").unwrap();
        let state = ClusterState { next_raft_id: 7, ..Default::default() };
        let last = LogId::new(CommittedLeaderId::new(5, 2), 42);
        let me = Member { node_id: "n1".into(), addr: "10.0.0.1:2377".into() };
        let dek = skep_pki::SecretKey::generate().unwrap();
        single_member(dir.path(), 3, me.clone(), Some(last), &state, Some(dek.clone())).await.unwrap();

        let kept: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.contains(KEPT_SUFFIX))
            .collect();
        assert_eq!(kept.len(), 1, "the old snapshot is kept: {kept:?}");
        let mut sm = StateMachine::open(&dir.path().join("snapshot.json"), Some(dek.clone())).unwrap();
        let (applied, membership) = sm.applied_state().await.unwrap();
        assert_eq!(applied, Some(last));
        assert_eq!(membership.membership().voter_ids().collect::<Vec<_>>(), vec![3]);
        assert_eq!(membership.membership().get_node(&3), Some(&me));
        assert_eq!(sm.state().next_raft_id, 7);
        let mut log = LogStore::open(dir.path(), Some(dek)).unwrap();
        assert!(log.encrypted());
        assert_eq!(log.read_vote().await.unwrap(), Some(Vote::new(5, 3)));
        assert!(log.try_get_log_entries(0..100).await.unwrap().is_empty());

        assert!(matches!(single_member(dir.path(), 3, me, None, &state, None).await, Err(ForceError::NoState)));
    }
}
