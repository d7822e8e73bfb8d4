//! The Raft log, vote and committed index in redb.
//!
//! Every append is one redb write transaction, committed with `Durability::Immediate` (fsync) before openraft is told
//! the entries are flushed, so an acknowledged write is on disk on a quorum. Each stored entry and each metadata record
//! is `[crc32 LE][bincode]`; a checksum mismatch on read is a storage error, never silently used data.
//!
//! Entries are encrypted with the manager's data key when it has one (AES-256-GCM, `skep_pki::seal`; the entry's
//! index is bound into each one): the log holds the CA key, the join tokens and the secrets. The log records whether
//! it is encrypted (meta `cipher`, written when the log is made): a log an older skep wrote in plaintext stays
//! plaintext and is still read. The vote and indexes are not secret and are only checksummed.
//!
//! The newest entries are also kept in memory (`Tail`, bounded in bytes): openraft reads every entry back right
//! after appending it, once per follower to replicate it and once to apply it, and decoding those from redb was most
//! of a busy leader's work.

use super::{decode, encode, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use redb::{Database, ReadableTable, ReadableTableMetadata, TableDefinition};
use skep_pki::SecretKey;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::Arc;

const LOG: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("log");
const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
const KEY_VOTE: &str = "vote";
const KEY_COMMITTED: &str = "committed";
const KEY_PURGED: &str = "last_purged";
const KEY_CIPHER: &str = "cipher";
/// The `cipher` record of an encrypted log.
const CIPHER_AES: &str = "aes-256-gcm";
/// The `cipher` record of a plaintext one.
const CIPHER_NONE: &str = "none";

type NodeId = u64;
type SErr = StorageError<NodeId>;

/// Errors of the log store's own making.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogStoreError {
    /// The stored bytes do not match their checksum.
    #[error("checksum mismatch in {what}")]
    Checksum {
        /// Which record.
        what: String,
    },
    /// Shorter than a checksum.
    #[error("truncated record in {what}")]
    Truncated {
        /// Which record.
        what: String,
    },
    /// Decoding failed.
    #[error("cannot decode {what}: {source}")]
    Decode {
        /// Which record.
        what: String,
        /// Why.
        source: bincode::error::DecodeError,
    },
    /// Encoding failed.
    #[error("cannot encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// redb failed.
    #[error("redb: {0}")]
    Db(String),
    /// The log is encrypted and no data key was given, or an entry does not decrypt with it.
    #[error("{0}")]
    Key(String),
}

fn db_err(e: impl std::fmt::Display) -> LogStoreError {
    LogStoreError::Db(e.to_string())
}

/// Seal bytes with a CRC32.
fn seal(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + 4);
    v.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

/// Check and strip a CRC32.
fn unseal<'a>(what: &str, b: &'a [u8]) -> Result<&'a [u8], LogStoreError> {
    if b.len() < 4 {
        return Err(LogStoreError::Truncated { what: what.into() });
    }
    let (crc, payload) = b.split_at(4);
    if crc32fast::hash(payload).to_le_bytes() != crc {
        return Err(LogStoreError::Checksum { what: what.into() });
    }
    Ok(payload)
}

fn decode_sealed<T: serde::de::DeserializeOwned>(what: &str, b: &[u8]) -> Result<T, LogStoreError> {
    decode(unseal(what, b)?).map_err(|source| LogStoreError::Decode { what: what.into(), source })
}

/// Bytes of encoded entries the in-memory tail holds at most.
const TAIL_BYTES: usize = 32 * 1024 * 1024;

/// Bytes of encoded entries one AppendEntries carries at most (at least one entry, however large). openraft gives
/// every AppendEntries one heartbeat interval to reach a follower and be fsynced there, and sends a missed one again
/// whole: a batch of several 1 MiB entries could miss it every time on a busy host.
pub const REPLICATION_BATCH_BYTES: usize = super::TARGET_ENTRY_BYTES;

/// A byte budget for a run of entries: the first always fits, then each while the sum stays within the bound.
#[derive(Clone, Copy)]
struct Budget {
    left: usize,
    any: bool,
}

impl Budget {
    fn new(bytes: usize) -> Budget {
        Budget { left: bytes, any: false }
    }

    /// Whether an entry of `len` bytes fits; if so, it is counted.
    fn admit(&mut self, len: usize) -> bool {
        if self.any && len > self.left {
            return false;
        }
        self.left = self.left.saturating_sub(len);
        self.any = true;
        true
    }
}

/// The newest entries, contiguous by index, as appended (entries are cheap to clone: see `Proposal`).
#[derive(Default)]
struct Tail {
    entries: std::collections::BTreeMap<u64, (Entry<TypeConfig>, usize)>,
    bytes: usize,
}

impl Tail {
    /// Add appended entries; if they do not follow on from the tail, it starts over from them.
    fn push(&mut self, entries: Vec<(Entry<TypeConfig>, usize)>) {
        let Some(newest) = entries.first().map(|(e, _)| e.log_id.index) else { return };
        for (e, len) in entries {
            let i = e.log_id.index;
            if self.entries.last_key_value().is_some_and(|(last, _)| *last + 1 != i) {
                self.entries.clear();
                self.bytes = 0;
            }
            self.bytes += len;
            self.entries.insert(i, (e, len));
        }
        // the entries just pushed stay (they may not be on disk yet), however large
        while self.bytes > TAIL_BYTES && self.first().is_some_and(|f| f < newest) {
            if let Some((_, (_, len))) = self.entries.pop_first() {
                self.bytes -= len;
            }
        }
    }

    /// Drop entries with index >= `from` (truncation).
    fn truncate(&mut self, from: u64) {
        for (_, (_, len)) in self.entries.split_off(&from) {
            self.bytes -= len;
        }
    }

    /// Drop entries with index <= `upto` (purge).
    fn purge(&mut self, upto: u64) {
        let keep = self.entries.split_off(&(upto + 1));
        for (_, (_, len)) in std::mem::replace(&mut self.entries, keep) {
            self.bytes -= len;
        }
    }

    fn first(&self) -> Option<u64> {
        self.entries.first_key_value().map(|(k, _)| *k)
    }

    fn last_id(&self) -> Option<LogId<NodeId>> {
        self.entries.last_key_value().map(|(_, (e, _))| e.log_id)
    }

    /// Entries in `start..end` from the tail, with their encoded sizes.
    fn range(&self, start: u64, end: Option<u64>) -> impl Iterator<Item = (Entry<TypeConfig>, usize)> + '_ {
        let it = match end {
            Some(e) if e <= start => self.entries.range(start..start),
            Some(e) => self.entries.range(start..e),
            None => self.entries.range(start..),
        };
        it.map(|(_, (e, len))| (e.clone(), *len))
    }
}

/// The log store. Cheap to clone; clones share the database and the tail.
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    tail: Arc<std::sync::Mutex<Tail>>,
    /// The data key entries are encrypted with; `None` for a plaintext log.
    dek: Option<Arc<SecretKey>>,
}

/// What an entry's encryption is bound to: its place in the log.
fn entry_aad(index: u64) -> [u8; 16] {
    let mut a = *b"skep-log\0\0\0\0\0\0\0\0";
    a[8..].copy_from_slice(&index.to_le_bytes());
    a
}

impl LogStore {
    /// Open (or create) the log at `path`. A new log is encrypted with `dek` if one is given; an existing one is read
    /// as it was made (an encrypted one needs its key; a plaintext one, from before encryption, stays plaintext).
    pub fn open(path: &Path, dek: Option<SecretKey>) -> Result<LogStore, LogStoreError> {
        // the log holds the CA key and the join tokens: the file is made 0600 before redb writes into it (and an
        // older, wider one is narrowed)
        {
            use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
            let f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(path).map_err(db_err)?;
            f.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(db_err)?;
        }
        let db = Database::create(path).map_err(db_err)?;
        let tx = db.begin_write().map_err(db_err)?;
        {
            tx.open_table(LOG).map_err(db_err)?;
            tx.open_table(META).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)?;
        let mut store = LogStore { db: Arc::new(db), tail: Default::default(), dek: None };
        let cipher: Option<String> = store.read_meta(KEY_CIPHER)?;
        let encrypted = match cipher.as_deref() {
            Some(CIPHER_AES) => true,
            Some(CIPHER_NONE) => false,
            Some(other) => return Err(LogStoreError::Key(format!("the Raft log's cipher {other:?} is unknown"))),
            // made by a skep from before encryption if it holds anything; a new log otherwise
            None if store.is_empty()? => {
                let name = if dek.is_some() { CIPHER_AES } else { CIPHER_NONE };
                store.put_meta_now(KEY_CIPHER, &name.to_string())?;
                dek.is_some()
            }
            None => false,
        };
        if encrypted {
            let dek = dek.ok_or_else(|| {
                LogStoreError::Key("the Raft log is encrypted and this manager has no data key for it".into())
            })?;
            store.dek = Some(Arc::new(dek));
        } else if dek.is_some() {
            tracing::warn!(log = %path.display(), "this Raft log was written without encryption by an older skep and \
                stays so; demoting and promoting this manager again makes it anew, encrypted");
        }
        Ok(store)
    }

    /// Whether the log has no entries, vote or purge record (just made).
    fn is_empty(&self) -> Result<bool, LogStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let log = tx.open_table(LOG).map_err(db_err)?;
        let meta = tx.open_table(META).map_err(db_err)?;
        Ok(log.is_empty().map_err(db_err)? && meta.is_empty().map_err(db_err)?)
    }

    /// Write a meta record at once, durably (while opening).
    fn put_meta_now<T: serde::Serialize>(&self, key: &str, v: &T) -> Result<(), LogStoreError> {
        let bytes = seal(&encode(v)?);
        let tx = self.db.begin_write().map_err(db_err)?;
        {
            let mut t = tx.open_table(META).map_err(db_err)?;
            t.insert(key, bytes.as_slice()).map_err(db_err)?;
        }
        tx.commit().map_err(db_err)
    }

    /// Whether entries are encrypted.
    pub fn encrypted(&self) -> bool {
        self.dek.is_some()
    }

    /// An entry's stored form: encrypted (if the log is) and checksummed.
    fn seal_entry(&self, index: u64, encoded: &[u8]) -> Result<Vec<u8>, LogStoreError> {
        match &self.dek {
            Some(k) => {
                let c = k.seal(&entry_aad(index), encoded).map_err(|e| LogStoreError::Key(e.to_string()))?;
                Ok(seal(&c))
            }
            None => Ok(seal(encoded)),
        }
    }

    /// An entry from its stored form.
    fn open_entry(&self, index: u64, stored: &[u8]) -> Result<Entry<TypeConfig>, LogStoreError> {
        let what = || format!("log entry {index}");
        let payload = unseal(&what(), stored)?;
        let decode_it = |b: &[u8]| decode(b).map_err(|source| LogStoreError::Decode { what: what(), source });
        match &self.dek {
            Some(k) => decode_it(
                &k.open(&entry_aad(index), payload).map_err(|e| LogStoreError::Key(format!("{}: {e}", what())))?,
            ),
            None => decode_it(payload),
        }
    }

    fn read_meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, LogStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(META).map_err(db_err)?;
        match t.get(key).map_err(db_err)? {
            Some(v) => Ok(Some(decode_sealed(key, v.value())?)),
            None => Ok(None),
        }
    }

    async fn write_meta<T: serde::Serialize>(&self, key: &'static str, v: &T) -> Result<(), LogStoreError> {
        self.write_meta_with(key, v, redb::Durability::Immediate).await
    }

    async fn write_meta_with<T: serde::Serialize>(
        &self,
        key: &'static str,
        v: &T,
        durability: redb::Durability,
    ) -> Result<(), LogStoreError> {
        let bytes = seal(&encode(v)?);
        let db = self.db.clone();
        blocking(move || {
            let mut tx = db.begin_write().map_err(db_err)?;
            tx.set_durability(durability);
            {
                let mut t = tx.open_table(META).map_err(db_err)?;
                t.insert(key, bytes.as_slice()).map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }

    fn lock_tail(&self) -> std::sync::MutexGuard<'_, Tail> {
        // the tail is only ever changed by whole operations under the lock; a panic elsewhere leaves it consistent
        self.tail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries in `start..end`: from the in-memory tail where it covers them, the rest from redb.
    fn read_range(&self, start: u64, end: Option<u64>) -> Result<Vec<Entry<TypeConfig>>, LogStoreError> {
        self.read_range_within(start, end, usize::MAX)
    }

    /// Entries from `start` on, stopping before `end` or before their encoded sizes pass `budget` bytes: at least
    /// one entry whenever the range holds one.
    fn read_range_within(
        &self,
        start: u64,
        end: Option<u64>,
        budget: usize,
    ) -> Result<Vec<Entry<TypeConfig>>, LogStoreError> {
        // the tail's part first, in one look: what lies below its first entry was flushed before that entry was
        // appended, so reading it from redb afterwards is safe; no more of it is cloned than the budget can take
        let (first, from_tail): (Option<u64>, Vec<_>) = {
            let t = self.lock_tail();
            let first = t.first();
            let mut alone = Budget::new(budget);
            let within = |(_, len): &(Entry<TypeConfig>, usize)| alone.admit(*len);
            (first, first.map(|f| t.range(start.max(f), end).take_while(within).collect()).unwrap_or_default())
        };
        let disk_end = match (first, end) {
            (Some(f), Some(e)) => Some(f.min(e)),
            (Some(f), None) => Some(f),
            (None, e) => e,
        };
        let mut left = Budget::new(budget);
        let mut out = match disk_end {
            Some(d) if d <= start => Vec::new(),
            _ => self.read_disk(start, disk_end, &mut left)?,
        };
        out.extend(from_tail.into_iter().take_while(|(_, len)| left.admit(*len)).map(|(e, _)| e));
        Ok(out)
    }

    /// Entries of redb in `start..end`, while their stored sizes fit `budget` (which they are counted against).
    fn read_disk(
        &self,
        start: u64,
        end: Option<u64>,
        budget: &mut Budget,
    ) -> Result<Vec<Entry<TypeConfig>>, LogStoreError> {
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(LOG).map_err(db_err)?;
        let iter = match end {
            Some(e) => t.range(start..e),
            None => t.range(start..),
        }
        .map_err(db_err)?;
        let mut out = Vec::new();
        for item in iter {
            let (k, v) = item.map_err(db_err)?;
            if !budget.admit(v.value().len()) {
                break;
            }
            out.push(self.open_entry(k.value(), v.value())?);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, LogStoreError> {
        if let Some(id) = self.lock_tail().last_id() {
            return Ok(Some(id));
        }
        let tx = self.db.begin_read().map_err(db_err)?;
        let t = tx.open_table(LOG).map_err(db_err)?;
        let last = t.last().map_err(db_err)?;
        match last {
            Some((k, v)) => {
                let e = self.open_entry(k.value(), v.value())?;
                Ok(Some(e.log_id))
            }
            None => Ok(None),
        }
    }

    /// Delete entries with index in `range` (inclusive start, exclusive end; `None` = to the end).
    async fn delete(&self, start: u64, end: Option<u64>) -> Result<(), LogStoreError> {
        let db = self.db.clone();
        blocking(move || {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(LOG).map_err(db_err)?;
                match end {
                    Some(e) => t.retain_in(start..e, |_, _| false),
                    None => t.retain_in(start.., |_, _| false),
                }
                .map_err(db_err)?;
            }
            tx.commit().map_err(db_err)
        })
        .await
    }
}

/// Run blocking redb work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogStoreError> + Send + 'static,
) -> Result<T, LogStoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LogStoreError::Db(format!("storage task failed: {e}")))?
}

fn range_start_end<RB: RangeBounds<u64>>(range: &RB) -> (u64, Option<u64>) {
    use std::ops::Bound::*;
    let start = match range.start_bound() {
        Included(s) => *s,
        Excluded(s) => s + 1,
        Unbounded => 0,
    };
    let end = match range.end_bound() {
        Included(e) => Some(e + 1),
        Excluded(e) => Some(*e),
        Unbounded => None,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        let (s, e) = range_start_end(&range);
        self.read_range(s, e).map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }

    /// What replication sends: bounded in bytes ([`REPLICATION_BATCH_BYTES`]), not only in entries.
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry<TypeConfig>>, SErr> {
        self.read_range_within(start, Some(end), REPLICATION_BATCH_BYTES)
            .map_err(|e| StorageIOError::read_logs(AnyError::new(&e)).into())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, SErr> {
        let purged: Option<LogId<NodeId>> =
            self.read_meta(KEY_PURGED).map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
        let last = self.last_entry_id().map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
        Ok(LogState { last_purged_log_id: purged, last_log_id: last.or(purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        self.write_meta(KEY_VOTE, vote).await.map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        self.read_meta(KEY_VOTE).map_err(|e| StorageIOError::read_vote(AnyError::new(&e)).into())
    }

    /// The committed index is a hint for faster recovery (openraft re-learns it from the leader), so it is written
    /// without an fsync of its own: it reaches the disk with the next durable commit.
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        self.write_meta_with(KEY_COMMITTED, &committed, redb::Durability::None)
            .await
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        let c: Option<Option<LogId<NodeId>>> =
            self.read_meta(KEY_COMMITTED).map_err(|e| StorageIOError::read(AnyError::new(&e)))?;
        Ok(c.flatten())
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), SErr>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut rows = Vec::new();
        let mut kept = Vec::new();
        for e in entries {
            let b = encode(&e).map_err(|err| StorageIOError::write_log_entry(e.log_id, AnyError::new(&err)))?;
            let row = self
                .seal_entry(e.log_id.index, &b)
                .map_err(|err| StorageIOError::write_log_entry(e.log_id, AnyError::new(&err)))?;
            rows.push((e.log_id.index, row));
            kept.push((e, b.len()));
        }
        // readable at once (openraft may read an entry before it is flushed); gone again if the write fails
        let from = kept.first().map(|(e, _)| e.log_id.index);
        self.lock_tail().push(kept);
        let db = self.db.clone();
        let res = blocking(move || {
            let tx = db.begin_write().map_err(db_err)?;
            {
                let mut t = tx.open_table(LOG).map_err(db_err)?;
                for (i, b) in &rows {
                    t.insert(*i, b.as_slice()).map_err(db_err)?;
                }
            }
            tx.commit().map_err(db_err)
        })
        .await;
        match res {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                if let Some(f) = from {
                    self.lock_tail().truncate(f);
                }
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(StorageIOError::write_logs(AnyError::new(&e)).into())
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.lock_tail().truncate(log_id.index);
        self.delete(log_id.index, None).await.map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        self.write_meta(KEY_PURGED, &log_id)
            .await
            .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        self.lock_tail().purge(log_id.index);
        self.delete(0, Some(log_id.index + 1)).await.map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_detects_a_flipped_bit_and_truncation() {
        let s = seal(b"hello");
        assert_eq!(unseal("x", &s).unwrap(), b"hello");
        let mut bad = s.clone();
        bad[6] ^= 1;
        assert!(matches!(unseal("x", &bad), Err(LogStoreError::Checksum { .. })));
        assert!(matches!(unseal("x", &s[..3]), Err(LogStoreError::Truncated { .. })));
    }

    fn entry(index: u64) -> (Entry<TypeConfig>, usize) {
        let mut e = Entry::<TypeConfig>::default();
        e.log_id.index = index;
        (e, TAIL_BYTES / 4)
    }

    #[test]
    fn the_tail_stays_contiguous_and_bounded_and_keeps_what_was_just_pushed() {
        let mut t = Tail::default();
        t.push((1..=3).map(entry).collect());
        assert_eq!(t.range(2, None).map(|(e, _)| e.log_id.index).collect::<Vec<_>>(), vec![2, 3]);
        assert_eq!(t.range(3, Some(3)).count(), 0);
        // over the byte bound: the oldest go, never the ones just pushed
        t.push((4..=9).map(entry).collect());
        assert_eq!(t.first(), Some(4));
        assert_eq!(t.last_id().map(|l| l.index), Some(9));
        t.truncate(7);
        assert_eq!(t.last_id().map(|l| l.index), Some(6));
        assert_eq!(t.bytes, 3 * (TAIL_BYTES / 4));
        t.purge(4);
        assert_eq!(t.first(), Some(5));
        // a gap (entries appended after a snapshot install) starts the tail over
        t.push(vec![entry(20)]);
        assert_eq!(t.first(), Some(20));
        assert_eq!(t.bytes, TAIL_BYTES / 4);
    }

    #[tokio::test]
    async fn reads_join_what_is_on_disk_with_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(&dir.path().join("raft.redb"), None).unwrap();
        let tx = store.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(LOG).unwrap();
            for i in 1..=3u64 {
                let (e, _) = entry(i);
                t.insert(i, seal(&encode(&e).unwrap()).as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
        store.lock_tail().push((4..=5).map(entry).collect());
        let got = |v: Vec<Entry<TypeConfig>>| v.iter().map(|e| e.log_id.index).collect::<Vec<_>>();
        assert_eq!(got(store.try_get_log_entries(2..5).await.unwrap()), vec![2, 3, 4]);
        assert_eq!(got(store.try_get_log_entries(..).await.unwrap()), vec![1, 2, 3, 4, 5]);
        assert_eq!(got(store.try_get_log_entries(5..).await.unwrap()), vec![5]);
        assert_eq!(got(store.try_get_log_entries(1..2).await.unwrap()), vec![1]);
        // replication's reads stop at the byte budget (the tail's entries count 8 MiB each), never empty-handed
        assert_eq!(got(store.limited_get_log_entries(1, 6).await.unwrap()), vec![1, 2, 3]);
        assert_eq!(got(store.limited_get_log_entries(4, 6).await.unwrap()), vec![4]);
        assert_eq!(got(store.limited_get_log_entries(5, 6).await.unwrap()), vec![5]);
    }

    /// An entry whose commands carry `marker`.
    fn entry_with(index: u64, marker: &str) -> Entry<TypeConfig> {
        use crate::store::{Command, Op};
        let cmd = Command { at: "t".into(), op: Op::RemoveNode { id: marker.into() } };
        let mut e = Entry::<TypeConfig>::default();
        e.log_id.index = index;
        e.payload = openraft::EntryPayload::Normal(super::super::Proposal::new(vec![cmd]));
        e
    }

    fn file_has(path: &Path, needle: &str) -> bool {
        std::fs::read(path).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    #[test]
    fn an_encrypted_log_keeps_no_plaintext_and_opens_with_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let key = SecretKey::generate().unwrap();
        let marker = "SWMTKN-1-marker-in-the-log";
        {
            let store = LogStore::open(&path, Some(key.clone())).unwrap();
            assert!(store.encrypted());
            let tx = store.db.begin_write().unwrap();
            {
                let mut t = tx.open_table(LOG).unwrap();
                for i in 1..=3u64 {
                    let b = encode(&entry_with(i, marker)).unwrap();
                    t.insert(i, store.seal_entry(i, &b).unwrap().as_slice()).unwrap();
                }
            }
            tx.commit().unwrap();
            let got = store.read_disk(0, None, &mut Budget::new(usize::MAX)).unwrap();
            assert_eq!(got.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![1, 2, 3]);
            // an entry moved to another index does not open there
            let moved = store.seal_entry(7, &encode(&entry_with(7, marker)).unwrap()).unwrap();
            assert!(matches!(store.open_entry(8, &moved), Err(LogStoreError::Key(_))));
        }
        assert!(!file_has(&path, marker), "the marker is in the log file in plaintext");
        let err = LogStore::open(&path, None).err().expect("opened without its key");
        assert!(err.to_string().contains("no data key"), "{err}");
        let wrong = LogStore::open(&path, Some(SecretKey::generate().unwrap())).unwrap();
        assert!(matches!(wrong.read_disk(0, None, &mut Budget::new(usize::MAX)), Err(LogStoreError::Key(_))));
        drop(wrong);
        let again = LogStore::open(&path, Some(key)).unwrap();
        assert_eq!(again.last_entry_id().unwrap().map(|l| l.index), Some(3));
    }

    #[test]
    fn a_plaintext_log_from_before_encryption_is_still_read_and_stays_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        {
            // as an older skep made it: entries, no cipher record
            let db = Database::create(&path).unwrap();
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_table(LOG).unwrap();
                t.insert(1u64, seal(&encode(&entry_with(1, "old")).unwrap()).as_slice()).unwrap();
                tx.open_table(META).unwrap();
            }
            tx.commit().unwrap();
        }
        let store = LogStore::open(&path, Some(SecretKey::generate().unwrap())).unwrap();
        assert!(!store.encrypted());
        assert_eq!(store.last_entry_id().unwrap().map(|l| l.index), Some(1));
        // a new log without a key is plaintext, and says so when opened again with one
        let fresh = dir.path().join("plain.redb");
        drop(LogStore::open(&fresh, None).unwrap());
        assert!(!LogStore::open(&fresh, Some(SecretKey::generate().unwrap())).unwrap().encrypted());
    }

    #[test]
    fn a_corrupted_entry_on_disk_is_a_storage_error_not_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("raft.redb");
        let store = LogStore::open(&path, None).unwrap();
        let tx = store.db.begin_write().unwrap();
        {
            let mut t = tx.open_table(LOG).unwrap();
            let mut b = seal(&encode(&Entry::<TypeConfig>::default()).unwrap());
            let last = b.len() - 1;
            b[last] ^= 0xff;
            t.insert(1u64, b.as_slice()).unwrap();
        }
        tx.commit().unwrap();
        let err = store.read_disk(0, None, &mut Budget::new(usize::MAX)).unwrap_err();
        assert!(matches!(err, LogStoreError::Checksum { .. }), "{err}");
    }
}
