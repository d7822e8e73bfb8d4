//! The state machine: [`ClusterState`] in memory, published to readers through a `watch` channel, and snapshotted to
//! a checksummed file, encrypted with the manager's data key when it has one (`skep_pki::seal`): the snapshot holds
//! the CA key, the join tokens and the secrets. A plaintext snapshot (an older skep's) is still read.
//!
//! On restart the last snapshot is loaded and openraft re-applies the committed log after it, so the state survives a
//! full-cluster restart. A snapshot file whose checksum does not match is refused (the manager then fails to start
//! rather than serve corrupted state).
//!
//! A snapshot is written to a temporary file, fsynced, renamed over the last one and the directory fsynced: a crash
//! at any step leaves the old snapshot or the new one, whole (a temporary file left over is removed on open). A write
//! refused for want of space removes its temporary file and is tried again until it goes through (see
//! [`super::space`]).
//!
//! The log store purges no entry that a snapshot on disk does not cover ([`DurableSnapshot`]): openraft 0.9, when
//! it installs a snapshot a leader sent, purges the log as soon as it has handed the snapshot to the state machine,
//! without waiting for it to be written; a crash in between left a manager with neither the entries nor the
//! snapshot (found by `crash_tests`).

use super::space::{self, Space};
use super::{failpoint, EntryResult, Member, TypeConfig};
use crate::store::{Applied, ClusterState};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError,
    StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use skep_pki::SecretKey;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

type NodeId = u64;
type SErr = StorageError<NodeId>;

const MAGIC: &[u8; 8] = b"SKEPSNP1";
/// The header of an encrypted snapshot: the checksum and length are over the sealed body.
const MAGIC_SEALED: &[u8; 8] = b"SKEPSNE1";
/// What a snapshot's encryption is bound to.
const SNAPSHOT_AAD: &[u8] = b"skep-snapshot";

/// What a snapshot file holds.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, Member>,
    state: ClusterState,
}

struct Inner {
    last_applied: Option<LogId<NodeId>>,
    last_membership: StoredMembership<NodeId, Member>,
    snapshot: Option<(SnapshotMeta<NodeId, Member>, Vec<u8>)>,
    snapshot_seq: u64,
}

/// How far the snapshot on disk reaches, for the log store (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DurableSnapshot {
    /// The last log index the snapshot file covers (fsynced and renamed into place).
    pub index: Option<u64>,
    /// Writing a snapshot failed (Raft stops on that): a purge waiting for it gives up.
    pub failed: bool,
}

/// Marks the snapshot write failed unless disarmed: an error and a panic alike end a purge's wait.
struct FailUnlessDone<'a>(&'a watch::Sender<DurableSnapshot>, bool);

impl Drop for FailUnlessDone<'_> {
    fn drop(&mut self) {
        if !self.1 {
            self.0.send_modify(|d| d.failed = true);
        }
    }
}

/// The state machine. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct StateMachine {
    inner: Arc<Mutex<Inner>>,
    state: Arc<watch::Sender<Arc<ClusterState>>>,
    path: PathBuf,
    /// The data key snapshots are written with (`None`: plaintext).
    dek: Option<Arc<SecretKey>>,
    /// Whether a write waits for space (the log store's, once [`StateMachine::with_space`] shares it).
    space: Arc<Space>,
    /// How far the snapshot on disk reaches (the log store follows it).
    durable: Arc<watch::Sender<DurableSnapshot>>,
}

/// Snapshot file errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Wrong magic, short file or checksum mismatch.
    #[error("snapshot {path} is corrupt: {why}")]
    Corrupt {
        /// File.
        path: String,
        /// Why.
        why: String,
    },
    /// I/O.
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    /// JSON.
    #[error("snapshot encoding: {0}")]
    Json(#[from] serde_json::Error),
    /// Encrypted without a key given, or not opening with it.
    #[error("snapshot {path}: {why}")]
    Key {
        /// File.
        path: String,
        /// Why.
        why: String,
    },
}

impl StateMachine {
    /// Open the state machine whose snapshot lives at `path` (loaded if present); snapshots are written encrypted
    /// with `dek` if one is given.
    pub fn open(path: &Path, dek: Option<SecretKey>) -> Result<StateMachine, SnapshotError> {
        let mut inner = Inner {
            last_applied: None,
            last_membership: StoredMembership::default(),
            snapshot: None,
            snapshot_seq: 0,
        };
        let mut state = ClusterState::default();
        let tmp = path.with_extension("tmp");
        if tmp.exists() {
            // a snapshot whose writing a crash interrupted: never renamed, so never in force
            std::fs::remove_file(&tmp)?;
        }
        if path.exists() {
            let f = read_snapshot_file(path, dek.as_ref())?;
            inner.last_applied = f.meta.last_log_id;
            inner.last_membership = f.meta.last_membership.clone();
            state = f.state.clone();
            inner.snapshot = Some((f.meta, serde_json::to_vec(&f.state)?));
        }
        let (tx, _) = watch::channel(Arc::new(state));
        let dek = dek.map(Arc::new);
        let durable = DurableSnapshot { index: inner.last_applied.map(|l| l.index), failed: false };
        Ok(StateMachine {
            inner: Arc::new(Mutex::new(inner)),
            state: Arc::new(tx),
            path: path.to_path_buf(),
            dek,
            space: Default::default(),
            durable: Arc::new(watch::channel(durable).0),
        })
    }

    /// Follow how far the snapshot on disk reaches (for `LogStore::follow_snapshots`).
    pub fn durable(&self) -> watch::Receiver<DurableSnapshot> {
        self.durable.subscribe()
    }

    /// Share `space` (the log store's: see [`super::space`]).
    pub fn with_space(mut self, space: Arc<Space>) -> StateMachine {
        self.space = space;
        self
    }

    /// The current state (cheap: a pointer clone).
    pub fn state(&self) -> Arc<ClusterState> {
        self.state.borrow().clone()
    }

    /// Subscribe to state changes.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterState>> {
        self.state.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // a poisoned lock means a panic while applying: the state is suspect, but refusing to continue is worse
        // for a reader than seeing the last consistent value, which is what the watch channel holds.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Write the snapshot file (blocking), again every [`space::RETRY`] while the disk is full.
    fn write_snapshot(&self, meta: &SnapshotMeta<NodeId, Member>, state: &ClusterState) -> Result<Vec<u8>, SnapshotError> {
        let mut waiting = None;
        let mut done = FailUnlessDone(&self.durable, false);
        loop {
            match write_snapshot_file(&self.path, meta, state, self.dek.as_deref()) {
                Err(SnapshotError::Io(e)) if space::is_full(&e) && !self.space.closed() => {
                    waiting.get_or_insert_with(|| self.space.wait("writing a Raft snapshot", &e));
                    std::thread::sleep(space::RETRY);
                }
                r => {
                    r?;
                    done.1 = true;
                    let index = meta.last_log_id.map(|l| l.index);
                    self.durable.send_modify(|d| d.index = d.index.max(index));
                    return Ok(serde_json::to_vec(state)?);
                }
            }
        }
    }

    /// The last applied log ID and the state as of it, read together.
    pub fn applied(&self) -> (Option<LogId<NodeId>>, Arc<ClusterState>) {
        let i = self.lock();
        (i.last_applied, self.state())
    }
}

/// Write a snapshot file (checksummed, atomically; encrypted with `dek` if given) for `state` as of `meta`.
pub(crate) fn write_snapshot_file(
    path: &Path,
    meta: &SnapshotMeta<NodeId, Member>,
    state: &ClusterState,
    dek: Option<&SecretKey>,
) -> Result<(), SnapshotError> {
    let file = SnapshotFile { meta: meta.clone(), state: state.clone() };
    let body = serde_json::to_vec(&file)?;
    match dek {
        Some(k) => {
            let sealed = k
                .seal(SNAPSHOT_AAD, &body)
                .map_err(|e| SnapshotError::Key { path: path.display().to_string(), why: e.to_string() })?;
            write_atomically(path, MAGIC_SEALED, &sealed)
        }
        None => write_atomically(path, MAGIC, &body),
    }
}

fn write_atomically(path: &Path, magic: &[u8; 8], body: &[u8]) -> Result<(), SnapshotError> {
    let tmp = path.with_extension("tmp");
    failpoint!("snapshot::write::before_tmp", SnapshotError::Io);
    let written = write_tmp(&tmp, magic, body);
    if written.is_err() {
        // never renamed, so never read: removed so that a full disk gets its space back
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    failpoint!("snapshot::write::before_rename", SnapshotError::Io);
    std::fs::rename(&tmp, path)?;
    failpoint!("snapshot::write::after_rename", SnapshotError::Io);
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// The snapshot file under its temporary name, fsynced.
fn write_tmp(tmp: &Path, magic: &[u8; 8], body: &[u8]) -> Result<(), SnapshotError> {
    {
        // the snapshot holds the CA key and the join tokens: 0600 from creation, never wider
        let mut f = {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(tmp)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            f
        };
        f.write_all(magic)?;
        f.write_all(&crc32fast::hash(body).to_le_bytes())?;
        f.write_all(&(body.len() as u64).to_le_bytes())?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    Ok(())
}

fn read_snapshot_file(path: &Path, dek: Option<&SecretKey>) -> Result<SnapshotFile, SnapshotError> {
    let b = std::fs::read(path)?;
    let corrupt = |why: &str| SnapshotError::Corrupt { path: path.display().to_string(), why: why.into() };
    if b.len() < 20 || (&b[..8] != MAGIC && &b[..8] != MAGIC_SEALED) {
        return Err(corrupt("bad header"));
    }
    let sealed = &b[..8] == MAGIC_SEALED;
    let crc = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
    let len = u64::from_le_bytes(b[12..20].try_into().expect("8 bytes")) as usize;
    let body = &b[20..];
    if body.len() != len {
        return Err(corrupt("length mismatch"));
    }
    if crc32fast::hash(body) != crc {
        return Err(corrupt("checksum mismatch"));
    }
    if !sealed {
        return Ok(serde_json::from_slice(body)?);
    }
    let key_err = |why: String| SnapshotError::Key { path: path.display().to_string(), why };
    let dek = dek.ok_or_else(|| key_err("encrypted, and this manager has no data key for it".into()))?;
    let plain = dek.open(SNAPSHOT_AAD, body).map_err(|e| key_err(e.to_string()))?;
    Ok(serde_json::from_slice(&plain)?)
}

fn sm_err(e: impl std::error::Error + 'static) -> SErr {
    StorageIOError::write_state_machine(AnyError::new(&e)).into()
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, SErr> {
        let state = self.state();
        let meta = {
            let mut i = self.lock();
            i.snapshot_seq += 1;
            let id = match i.last_applied {
                Some(l) => format!("{}-{}-{}", l.leader_id, l.index, i.snapshot_seq),
                None => format!("none-{}", i.snapshot_seq),
            };
            SnapshotMeta { last_log_id: i.last_applied, last_membership: i.last_membership.clone(), snapshot_id: id }
        };
        let this = self.clone();
        let meta2 = meta.clone();
        let data = tokio::task::spawn_blocking(move || this.write_snapshot(&meta2, &state))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::error(e.to_string())))?
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        self.lock().snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot { meta, snapshot: Box::new(Cursor::new(data)) })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Member>), SErr> {
        let i = self.lock();
        Ok((i.last_applied, i.last_membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResult>, SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut results = Vec::new();
        let mut state = self.state();
        let mut changed = false;
        {
            let mut i = self.lock();
            for e in entries {
                i.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => results.push(vec![Ok(Applied { index: e.log_id.index, raft_id: None })]),
                    EntryPayload::Normal(p) => {
                        let st = Arc::make_mut(&mut state);
                        results.push(p.commands().iter().map(|cmd| st.apply(e.log_id.index, cmd)).collect());
                        changed = true;
                    }
                    EntryPayload::Membership(m) => {
                        i.last_membership = StoredMembership::new(Some(e.log_id), m);
                        results.push(vec![Ok(Applied { index: e.log_id.index, raft_id: None })]);
                    }
                }
            }
        }
        if changed {
            self.state.send_replace(state);
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, SErr> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Member>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), SErr> {
        failpoint!("snapshot::install::before", sm_err);
        let data = snapshot.into_inner();
        let state: ClusterState = serde_json::from_slice(&data).map_err(sm_err)?;
        let this = self.clone();
        let (meta2, state2) = (meta.clone(), state.clone());
        tokio::task::spawn_blocking(move || this.write_snapshot(&meta2, &state2))
            .await
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::error(e.to_string())))?
            .map_err(|e| StorageIOError::write_snapshot(None, AnyError::new(&e)))?;
        failpoint!("snapshot::install::after_write", sm_err);
        {
            let mut i = self.lock();
            i.last_applied = meta.last_log_id;
            i.last_membership = meta.last_membership.clone();
            i.snapshot = Some((meta.clone(), data));
        }
        self.state.send_replace(Arc::new(state));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, SErr> {
        let i = self.lock();
        Ok(i.snapshot.as_ref().map(|(meta, data)| Snapshot { meta: meta.clone(), snapshot: Box::new(Cursor::new(data.clone())) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_file_round_trips_and_a_flipped_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("snap");
        let st = ClusterState { index: 42, ..Default::default() };
        let meta = SnapshotMeta { last_log_id: None, last_membership: StoredMembership::default(), snapshot_id: "s".into() };
        write_atomically(&p, MAGIC, &serde_json::to_vec(&SnapshotFile { meta, state: st.clone() }).unwrap()).unwrap();
        let sm = StateMachine::open(&p, None).unwrap();
        assert_eq!(sm.state().index, 42);
        let mut b = std::fs::read(&p).unwrap();
        let n = b.len();
        b[n - 2] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(matches!(StateMachine::open(&p, None), Err(SnapshotError::Corrupt { .. })));
        std::fs::write(&p, b"short").unwrap();
        assert!(matches!(StateMachine::open(&p, None), Err(SnapshotError::Corrupt { .. })));
    }

    #[test]
    fn an_encrypted_snapshot_holds_no_plaintext_and_opens_with_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("snap");
        let marker = "SWMTKN-1-in-the-snapshot";
        let mut st = ClusterState { index: 7, ..Default::default() };
        st.removed.insert(marker.into());
        let meta =
            SnapshotMeta { last_log_id: None, last_membership: StoredMembership::default(), snapshot_id: "s".into() };
        let key = SecretKey::generate().unwrap();
        write_snapshot_file(&p, &meta, &st, Some(&key)).unwrap();
        let b = std::fs::read(&p).unwrap();
        assert!(!b.windows(marker.len()).any(|w| w == marker.as_bytes()), "plaintext in the snapshot file");
        assert_eq!(StateMachine::open(&p, Some(key)).unwrap().state().index, 7);
        assert!(matches!(StateMachine::open(&p, None), Err(SnapshotError::Key { .. })));
        let wrong = StateMachine::open(&p, Some(SecretKey::generate().unwrap()));
        assert!(matches!(wrong, Err(SnapshotError::Key { .. })));
        // a plaintext one (an older skep's) is read whatever the key
        write_snapshot_file(&p, &meta, &st, None).unwrap();
        assert_eq!(StateMachine::open(&p, Some(SecretKey::generate().unwrap())).unwrap().state().index, 7);
    }
}
