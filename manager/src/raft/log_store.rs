//! The Raft log, vote and committed index: openraft's log storage over the segment log of [`super::wal`].
//!
//! An append writes its entries at the end of the current segment and hands openraft's flush callback to the sync
//! thread, which fsyncs once for every append written before it (group fsync) and only then reports them flushed:
//! an acknowledged write is on disk on a quorum, and a lone write costs one `fdatasync` of one appended record
//! rather than a redb commit. The vote, truncations and purges are fsynced before they return; the committed index
//! is a hint (openraft learns it again from the leader) and reaches the disk with the next fsync. Every record is
//! checksummed (see [`super::wal`] on torn tails and damage).
//!
//! Entries are encrypted with the manager's data key when it has one (AES-256-GCM, `skep_pki::seal`; the entry's
//! index is bound into each one): the log holds the CA key, the join tokens and the secrets. The log records whether
//! it is encrypted when it is made: a log an older skep wrote in plaintext stays plaintext and is still read. The
//! vote and indexes are not secret and are only checksummed.
//!
//! A log in the format before this one (a redb file, `raft.redb`: one write transaction per append) is moved into a
//! new segment log when it is opened, entries as they were sealed, and the redb file is then deleted.
//!
//! The newest entries are also kept in memory (`Tail`, bounded in bytes): openraft reads every entry back right
//! after appending it, once per follower to replicate it and once to apply it, and decoding those from disk was most
//! of a busy leader's work.
//!
//! A write refused for want of space is tried again until it goes through rather than failed (openraft would stop
//! for good on the error): see [`super::space`].

use super::space::{self, Space};
use super::state_machine::DurableSnapshot;
use super::wal::{self, Cipher, Meta, Wal, WalError};
use super::{decode, encode, failpoint, TypeConfig};
use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, Entry, LogId, LogState, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use skep_pki::SecretKey;
use std::fmt::Debug;
use std::future::Future;
use std::ops::RangeBounds;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};

/// The segment log's directory under the Raft directory.
pub const LOG_DIR: &str = "raft.log";
/// The log of the format before it (redb), moved into [`LOG_DIR`] on open.
pub const LEGACY_FILE: &str = "raft.redb";

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
    /// The segment log failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Reading the log of the older format failed.
    #[error("the raft log of the older format ({LEGACY_FILE}): {0}")]
    Legacy(String),
    /// The log is encrypted and no data key was given, or an entry does not decrypt with it.
    #[error("{0}")]
    Key(String),
}

impl LogStoreError {
    /// A write refused for want of space that changed nothing (see [`WalError::is_full`]).
    pub fn is_full(&self) -> bool {
        matches!(self, LogStoreError::Wal(e) if e.is_full())
    }
}

fn legacy_err(e: impl std::fmt::Display) -> LogStoreError {
    LogStoreError::Legacy(e.to_string())
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> LogStoreError + '_ {
    move |source| WalError::Io { path: path.display().to_string(), source }.into()
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

/// What the log store's clones share.
struct Shared {
    wal: Arc<Mutex<Wal>>,
    tail: Mutex<Tail>,
    /// The data key entries are encrypted with; `None` for a plaintext log.
    dek: Option<SecretKey>,
    /// Flush callbacks to the sync thread; taken on drop, which ends the thread.
    sync_tx: Option<Mutex<mpsc::Sender<LogFlushed<TypeConfig>>>>,
    syncer: Option<std::thread::JoinHandle<()>>,
    /// Whether a write waits for space (shared with the state machine and the manager).
    space: Arc<Space>,
    /// How far the state machine's snapshot on disk reaches, once [`LogStore::follow_snapshots`] linked them: a
    /// purge waits for it to cover what it deletes.
    snapshots: std::sync::OnceLock<tokio::sync::watch::Receiver<DurableSnapshot>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.sync_tx.take();
        // the thread ends once it has reported what it was given; joined so that the files are closed when the
        // last clone is gone
        if let Some(h) = self.syncer.take() {
            let _ = h.join();
        }
    }
}

/// The log store. Cheap to clone; clones share the segment log and the tail.
#[derive(Clone)]
pub struct LogStore {
    shared: Arc<Shared>,
}

/// What an entry's encryption is bound to: its place in the log.
fn entry_aad(index: u64) -> [u8; 16] {
    let mut a = *b"skep-log\0\0\0\0\0\0\0\0";
    a[8..].copy_from_slice(&index.to_le_bytes());
    a
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // every critical section leaves its data whole (the log marks itself failed on an error part-way)
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An entry from its stored form (`dek`: the log is encrypted).
fn open_entry(dek: Option<&SecretKey>, index: u64, stored: &[u8]) -> Result<Entry<TypeConfig>, LogStoreError> {
    let what = || format!("log entry {index}");
    let decode_it = |b: &[u8]| decode(b).map_err(|source| LogStoreError::Decode { what: what(), source });
    match dek {
        Some(k) => decode_it(
            &k.open(&entry_aad(index), stored).map_err(|e| LogStoreError::Key(format!("{}: {e}", what())))?,
        ),
        None => decode_it(stored),
    }
}

/// The sync thread's fsync, with its crash points.
fn fsync(file: &std::fs::File) -> std::io::Result<()> {
    failpoint!("log_store::sync::before", |e| e);
    file.sync_data()?;
    failpoint!("log_store::sync::after", |e| e);
    Ok(())
}

/// fsync whatever was written to the log, then report every callback given so far, until the store is dropped.
fn sync_loop(wal: Arc<Mutex<Wal>>, rx: mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        // the file is fsynced outside the lock, so appends go on meanwhile; a roll fsyncs the segment it closes
        let file = {
            let w = lock(&wal);
            w.check().map(|()| w.current())
        };
        let res = file.map_err(|e| e.to_string()).and_then(|file| {
            fsync(&file).map_err(|e| {
                let why = format!("fsync of the raft log: {e}");
                lock(&wal).fail(why.clone());
                why
            })
        });
        for cb in batch {
            cb.log_io_completed(res.clone().map_err(std::io::Error::other));
        }
    }
}

impl LogStore {
    /// Open (or create) the log in the Raft directory `dir` (in [`LOG_DIR`], moving a [`LEGACY_FILE`] into it). A new
    /// log is encrypted with `dek` if one is given; an existing one is read as it was made (an encrypted one needs its
    /// key; a plaintext one, from before encryption, stays plaintext).
    pub fn open(dir: &Path, dek: Option<SecretKey>) -> Result<LogStore, LogStoreError> {
        let log_dir = dir.join(LOG_DIR);
        let legacy = dir.join(LEGACY_FILE);
        if !log_dir.exists() {
            // made whole under another name, then renamed: a crash part-way leaves no half-made log
            let tmp = dir.join(format!("{LOG_DIR}.tmp"));
            if tmp.exists() {
                std::fs::remove_dir_all(&tmp).map_err(io_err(&tmp))?;
            }
            if legacy.exists() {
                migrate(&legacy, &tmp, dek.as_ref())?;
            } else {
                let cipher = if dek.is_some() { Cipher::Aes256Gcm } else { Cipher::None };
                Wal::create(&tmp, cipher, Meta::default())?;
            }
            std::fs::rename(&tmp, &log_dir).map_err(io_err(&log_dir))?;
            std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))?;
        }
        let wal = Wal::open(&log_dir)?;
        if legacy.exists() {
            // everything it held is in the new log
            std::fs::remove_file(&legacy).map_err(io_err(&legacy))?;
        }
        let dek = match wal.cipher() {
            Cipher::Aes256Gcm => Some(dek.ok_or_else(|| {
                LogStoreError::Key("the Raft log is encrypted and this manager has no data key for it".into())
            })?),
            Cipher::None => {
                if dek.is_some() {
                    tracing::warn!(log = %log_dir.display(), "this Raft log was written without encryption by an \
                        older skep and stays so; demoting and promoting this manager again makes it anew, encrypted");
                }
                None
            }
        };
        let wal = Arc::new(Mutex::new(wal));
        let (tx, rx) = mpsc::channel();
        let w = wal.clone();
        let syncer = std::thread::Builder::new()
            .name("raft-log-sync".into())
            .spawn(move || sync_loop(w, rx))
            .map_err(io_err(&log_dir))?;
        let shared = Shared {
            wal,
            tail: Default::default(),
            dek,
            sync_tx: Some(Mutex::new(tx)),
            syncer: Some(syncer),
            space: Default::default(),
            snapshots: Default::default(),
        };
        Ok(LogStore { shared: Arc::new(shared) })
    }

    /// Whether a write waits for space; the state machine and the manager share it (see [`super::space`]).
    pub fn space(&self) -> Arc<Space> {
        self.shared.space.clone()
    }

    /// Run `attempt` again, every [`space::RETRY`], while it is refused for want of space and the manager is not
    /// shutting down (see [`super::space`]); `what` names the write for the operator.
    async fn until_space<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, LogStoreError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, LogStoreError>>,
    {
        let space = &self.shared.space;
        let mut waiting = None;
        loop {
            match attempt().await {
                Err(e) if e.is_full() && !space.closed() => {
                    waiting.get_or_insert_with(|| space.wait(what, &e));
                    tokio::time::sleep(space::RETRY).await;
                }
                r => return r,
            }
        }
    }

    /// Purge no entry that the state machine's snapshot on disk does not cover (see [`super::state_machine`]): a
    /// purge waits for the snapshot being written, and fails if writing it failed. Without it (tests, tools that
    /// own both), a purge deletes at once.
    pub fn follow_snapshots(&self, durable: tokio::sync::watch::Receiver<DurableSnapshot>) {
        let _ = self.shared.snapshots.set(durable);
    }

    /// Whether entries are encrypted.
    pub fn encrypted(&self) -> bool {
        self.shared.dek.is_some()
    }

    /// An entry's stored form: encrypted if the log is.
    fn seal_entry(&self, index: u64, encoded: Vec<u8>) -> Result<Vec<u8>, LogStoreError> {
        match &self.shared.dek {
            Some(k) => k.seal(&entry_aad(index), &encoded).map_err(|e| LogStoreError::Key(e.to_string())),
            None => Ok(encoded),
        }
    }

    fn wal(&self) -> MutexGuard<'_, Wal> {
        lock(&self.shared.wal)
    }

    fn lock_tail(&self) -> MutexGuard<'_, Tail> {
        lock(&self.shared.tail)
    }

    /// Change the state record (fsynced before this returns when `sync`).
    async fn update_meta(
        &self,
        sync: bool,
        f: impl Fn(&mut Meta) + Clone + Send + 'static,
    ) -> Result<(), LogStoreError> {
        let apply = move |w: &mut Wal| {
            let mut meta = w.meta().clone();
            f(&mut meta);
            w.set_meta(meta, sync)
        };
        self.until_space("writing the Raft log's vote and indexes", || {
            let apply = apply.clone();
            let wal = self.shared.wal.clone();
            async move {
                if !sync {
                    return Ok(apply(&mut lock(&wal))?);
                }
                blocking(move || Ok(apply(&mut lock(&wal))?)).await
            }
        })
        .await
    }

    /// Entries in `start..end`: from the in-memory tail where it covers them, the rest from disk.
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
        // the tail's part first, in one look: what lies below its first entry was written to the log before that
        // entry was appended, so reading it from disk afterwards is safe; no more of it is cloned than the budget can
        // take
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

    /// Entries on disk in `start..end`, while their stored sizes fit `budget` (which they are counted against).
    fn read_disk(
        &self,
        start: u64,
        end: Option<u64>,
        budget: &mut Budget,
    ) -> Result<Vec<Entry<TypeConfig>>, LogStoreError> {
        let locs = self.wal().locate(start, end);
        let mut out = Vec::new();
        for (index, file, loc) in locs {
            if !budget.admit(loc.size()) {
                break;
            }
            let stored = wal::read_entry(&file, loc, index)
                .map_err(|why| LogStoreError::Checksum { what: format!("log entry {index}: {why}") })?;
            out.push(open_entry(self.shared.dek.as_ref(), index, &stored)?);
        }
        Ok(out)
    }

    fn last_entry_id(&self) -> Result<Option<LogId<NodeId>>, LogStoreError> {
        if let Some(id) = self.lock_tail().last_id() {
            return Ok(Some(id));
        }
        let Some(last) = self.wal().last_index() else { return Ok(None) };
        Ok(self.read_disk(last, None, &mut Budget::new(usize::MAX))?.last().map(|e| e.log_id))
    }

    /// Write sealed entries to the log (a full segment is closed first, off the async workers).
    async fn write_entries(&self, rows: &[(u64, Vec<u8>)]) -> Result<(), LogStoreError> {
        self.until_space("appending to the Raft log", || async {
            if self.wal().roll_due() {
                let wal = self.shared.wal.clone();
                blocking(move || Ok(lock(&wal).roll()?)).await?;
            }
            Ok(self.wal().append(rows.iter().map(|(i, b)| (*i, b.as_slice())))?)
        })
        .await
    }
}

/// Run blocking log work (fsyncs) off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, LogStoreError> + Send + 'static,
) -> Result<T, LogStoreError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| LogStoreError::Legacy(format!("storage task failed: {e}")))?
}

/// Move the redb log at `legacy` into a new segment log at `to`: its vote, committed and purged records and its
/// entries as they were sealed, each checked (checksum, and that it opens with `dek`) on the way.
fn migrate(legacy: &Path, to: &Path, dek: Option<&SecretKey>) -> Result<(), LogStoreError> {
    use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};
    const LOG: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("log");
    const META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");
    let db = redb::Database::open(legacy).map_err(legacy_err)?;
    let tx = db.begin_read().map_err(legacy_err)?;
    let log = tx.open_table(LOG).map_err(legacy_err)?;
    let meta_t = tx.open_table(META).map_err(legacy_err)?;
    fn get<T: serde::de::DeserializeOwned>(
        t: &redb::ReadOnlyTable<&'static str, &'static [u8]>,
        key: &str,
    ) -> Result<Option<T>, LogStoreError> {
        match t.get(key).map_err(legacy_err)? {
            Some(v) => {
                let b = unseal(key, v.value())?;
                Ok(Some(decode(b).map_err(|source| LogStoreError::Decode { what: key.into(), source })?))
            }
            None => Ok(None),
        }
    }
    let empty = log.is_empty().map_err(legacy_err)? && meta_t.is_empty().map_err(legacy_err)?;
    let cipher = match get::<String>(&meta_t, "cipher")?.as_deref() {
        Some("aes-256-gcm") => Cipher::Aes256Gcm,
        Some("none") => Cipher::None,
        Some(other) => return Err(LogStoreError::Key(format!("the Raft log's cipher {other:?} is unknown"))),
        // made by a skep from before encryption if it holds anything; a new log otherwise
        None if empty && dek.is_some() => Cipher::Aes256Gcm,
        None => Cipher::None,
    };
    let dek = match cipher {
        Cipher::Aes256Gcm => Some(dek.ok_or_else(|| {
            LogStoreError::Key("the Raft log is encrypted and this manager has no data key for it".into())
        })?),
        Cipher::None => None,
    };
    let meta = Meta {
        vote: get::<Vote<NodeId>>(&meta_t, "vote")?,
        committed: get::<Option<LogId<NodeId>>>(&meta_t, "committed")?.flatten(),
        purged: get::<LogId<NodeId>>(&meta_t, "last_purged")?,
    };
    let mut wal = Wal::create(to, cipher, meta)?;
    for item in log.iter().map_err(legacy_err)? {
        let (k, v) = item.map_err(legacy_err)?;
        let index = k.value();
        let stored = unseal(&format!("log entry {index}"), v.value())?;
        open_entry(dek, index, stored)?;
        if wal.roll_due() {
            wal.roll()?;
        }
        wal.append([(index, stored)])?;
    }
    wal.sync()?;
    tracing::info!(from = %legacy.display(), to = %to.display(), "the Raft log moved to the segment log format");
    Ok(())
}

/// Check and strip the CRC32 the older format put before each record.
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
        let purged = self.wal().meta().purged;
        let last = self.last_entry_id().map_err(|e| StorageIOError::read_logs(AnyError::new(&e)))?;
        Ok(LogState { last_purged_log_id: purged, last_log_id: last.or(purged) })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), SErr> {
        let vote = *vote;
        failpoint!("log_store::vote::before", |e| StorageIOError::write_vote(AnyError::error(e)).into());
        self.update_meta(true, move |m| m.vote = Some(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, SErr> {
        Ok(self.wal().meta().vote)
    }

    /// The committed index is a hint for faster recovery (openraft re-learns it from the leader), so it is written
    /// without an fsync of its own: it reaches the disk with the next one. It follows in the log the entries it
    /// covers, so a crash that loses them loses it too (see [`super::wal`] on torn tails).
    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> Result<(), SErr> {
        self.update_meta(false, move |m| m.committed = committed)
            .await
            .map_err(|e| StorageIOError::write(AnyError::new(&e)).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, SErr> {
        Ok(self.wal().meta().committed)
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
            let len = b.len();
            let row = self
                .seal_entry(e.log_id.index, b)
                .map_err(|err| StorageIOError::write_log_entry(e.log_id, AnyError::new(&err)))?;
            rows.push((e.log_id.index, row));
            kept.push((e, len));
        }
        // readable at once (openraft may read an entry before it is flushed); gone again if the write fails
        let from = kept.first().map(|(e, _)| e.log_id.index);
        self.lock_tail().push(kept);
        match self.write_entries(&rows).await {
            Ok(()) => {
                // flushed (reported) by the sync thread's next fsync
                let sent = match &self.shared.sync_tx {
                    Some(tx) => lock(tx).send(callback).map_err(|e| e.0),
                    None => Err(callback),
                };
                if let Err(callback) = sent {
                    callback.log_io_completed(Err(std::io::Error::other("the raft log's sync thread is gone")));
                }
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
        self.until_space("truncating the Raft log", || {
            let wal = self.shared.wal.clone();
            blocking(move || Ok(lock(&wal).truncate(log_id.index)?))
        })
        .await
        .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)).into())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), SErr> {
        if let Some(rx) = self.shared.snapshots.get() {
            let mut rx = rx.clone();
            let covered =
                rx.wait_for(|d| d.failed || d.index >= Some(log_id.index)).await.is_ok_and(|d| !d.failed);
            if !covered {
                let why = format!("not purging the Raft log up to {log_id}: no snapshot on disk covers it");
                return Err(StorageIOError::write_logs(AnyError::error(why)).into());
            }
        }
        self.until_space("purging the Raft log", || {
            let wal = self.shared.wal.clone();
            blocking(move || Ok(lock(&wal).purge(log_id)?))
        })
        .await
        .map_err(|e| StorageIOError::write_logs(AnyError::new(&e)))?;
        self.lock_tail().purge(log_id.index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::{Database, TableDefinition};

    const OLD_LOG: TableDefinition<'static, u64, &[u8]> = TableDefinition::new("log");
    const OLD_META: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("meta");

    /// Bytes with the CRC32 the older format put before each record.
    fn crc_sealed(payload: &[u8]) -> Vec<u8> {
        let mut v = crc32fast::hash(payload).to_le_bytes().to_vec();
        v.extend_from_slice(payload);
        v
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

    /// Write entries straight to the log on disk, sealed as the store seals them, bypassing the tail.
    fn put_on_disk(store: &LogStore, entries: impl IntoIterator<Item = Entry<TypeConfig>>) {
        let rows: Vec<(u64, Vec<u8>)> = entries
            .into_iter()
            .map(|e| (e.log_id.index, store.seal_entry(e.log_id.index, encode(&e).unwrap()).unwrap()))
            .collect();
        let mut w = store.wal();
        w.append(rows.iter().map(|(i, b)| (*i, b.as_slice()))).unwrap();
        w.sync().unwrap();
    }

    #[tokio::test]
    async fn reads_join_what_is_on_disk_with_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = LogStore::open(dir.path(), None).unwrap();
        put_on_disk(&store, (1..=3).map(|i| entry(i).0));
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

    /// Whether a file under `dir` holds `needle`.
    fn files_have(dir: &Path, needle: &str) -> bool {
        std::fs::read_dir(dir).unwrap().any(|e| {
            let p = e.unwrap().path();
            if p.is_dir() {
                return files_have(&p, needle);
            }
            std::fs::read(p).unwrap().windows(needle.len()).any(|w| w == needle.as_bytes())
        })
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.read_disk(0, None, &mut Budget::new(usize::MAX)).unwrap().iter().map(|e| e.log_id.index).collect()
    }

    #[test]
    fn an_encrypted_log_keeps_no_plaintext_and_opens_with_its_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate().unwrap();
        let marker = "SWMTKN-1-marker-in-the-log";
        {
            let store = LogStore::open(dir.path(), Some(key.clone())).unwrap();
            assert!(store.encrypted());
            put_on_disk(&store, (1..=3).map(|i| entry_with(i, marker)));
            assert_eq!(indexes(&store), vec![1, 2, 3]);
            // an entry moved to another index does not open there
            let moved = store.seal_entry(7, encode(&entry_with(7, marker)).unwrap()).unwrap();
            assert!(matches!(open_entry(Some(&key), 8, &moved), Err(LogStoreError::Key(_))));
        }
        assert!(!files_have(dir.path(), marker), "the marker is in the log in plaintext");
        let err = LogStore::open(dir.path(), None).err().expect("opened without its key");
        assert!(err.to_string().contains("no data key"), "{err}");
        let wrong = LogStore::open(dir.path(), Some(SecretKey::generate().unwrap())).unwrap();
        assert!(matches!(wrong.read_disk(0, None, &mut Budget::new(usize::MAX)), Err(LogStoreError::Key(_))));
        drop(wrong);
        let again = LogStore::open(dir.path(), Some(key)).unwrap();
        assert_eq!(again.last_entry_id().unwrap().map(|l| l.index), Some(3));
    }

    /// A redb log as the format before the segment log wrote it: `meta` (each value CRC32-sealed bincode) and
    /// entries sealed with `key` (or plaintext), each with a CRC32 in front.
    fn write_legacy(path: &Path, key: Option<&SecretKey>, meta: &[(&str, Vec<u8>)], entries: &[Entry<TypeConfig>]) {
        let db = Database::create(path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut m = tx.open_table(OLD_META).unwrap();
            for (k, v) in meta {
                m.insert(*k, crc_sealed(v).as_slice()).unwrap();
            }
            let mut t = tx.open_table(OLD_LOG).unwrap();
            for e in entries {
                let i = e.log_id.index;
                let b = encode(e).unwrap();
                let stored = match key {
                    Some(k) => k.seal(&entry_aad(i), &b).unwrap(),
                    None => b,
                };
                t.insert(i, crc_sealed(&stored).as_slice()).unwrap();
            }
        }
        tx.commit().unwrap();
    }

    #[tokio::test]
    async fn a_log_of_the_redb_format_is_moved_into_the_segment_log_with_its_vote_and_encryption() {
        use openraft::CommittedLeaderId;
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate().unwrap();
        let marker = "SWMTKN-1-in-the-old-log";
        let vote = Vote::new(4, 2);
        let purged = LogId::new(CommittedLeaderId::new(3, 1), 9);
        let committed = Some(LogId::new(CommittedLeaderId::new(4, 2), 11));
        let meta = [
            ("cipher", encode(&"aes-256-gcm".to_string()).unwrap()),
            ("vote", encode(&vote).unwrap()),
            ("last_purged", encode(&purged).unwrap()),
            ("committed", encode(&committed).unwrap()),
        ];
        let entries: Vec<_> = (10..=12).map(|i| entry_with(i, marker)).collect();
        write_legacy(&dir.path().join(LEGACY_FILE), Some(&key), &meta, &entries);
        // without its key it is refused, and left as it was
        assert!(LogStore::open(dir.path(), None).is_err());
        assert!(dir.path().join(LEGACY_FILE).exists() && !dir.path().join(LOG_DIR).exists());

        let mut store = LogStore::open(dir.path(), Some(key.clone())).unwrap();
        assert!(store.encrypted());
        assert!(!dir.path().join(LEGACY_FILE).exists(), "the old file is gone once moved");
        assert!(!files_have(dir.path(), marker), "the marker is in the log in plaintext");
        assert_eq!(store.read_vote().await.unwrap(), Some(vote));
        assert_eq!(store.read_committed().await.unwrap(), committed);
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(purged));
        assert_eq!(state.last_log_id.map(|l| l.index), Some(12));
        let got = store.try_get_log_entries(10..).await.unwrap();
        assert_eq!(got, entries);
        drop(store);
        // and opens again as a segment log
        assert_eq!(indexes(&LogStore::open(dir.path(), Some(key)).unwrap()), vec![10, 11, 12]);
    }

    #[test]
    fn a_plaintext_log_from_before_encryption_is_still_read_and_stays_plaintext() {
        let dir = tempfile::tempdir().unwrap();
        // as an older skep made it: entries, no cipher record
        write_legacy(&dir.path().join(LEGACY_FILE), None, &[], &[entry_with(1, "old")]);
        let store = LogStore::open(dir.path(), Some(SecretKey::generate().unwrap())).unwrap();
        assert!(!store.encrypted());
        assert_eq!(store.last_entry_id().unwrap().map(|l| l.index), Some(1));
        // a new log without a key is plaintext, and says so when opened again with one
        let fresh = tempfile::tempdir().unwrap();
        drop(LogStore::open(fresh.path(), None).unwrap());
        assert!(!LogStore::open(fresh.path(), Some(SecretKey::generate().unwrap())).unwrap().encrypted());
    }

    #[test]
    fn a_corrupted_entry_on_disk_is_a_storage_error_not_data() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path(), None).unwrap();
        put_on_disk(&store, [entry_with(1, "x")]);
        let seg = store.wal().current();
        let size = seg.metadata().unwrap().len();
        std::os::unix::fs::FileExt::write_all_at(&*seg, b"\xff", size - 1).unwrap();
        let err = store.read_disk(0, None, &mut Budget::new(usize::MAX)).unwrap_err();
        assert!(matches!(err, LogStoreError::Checksum { .. }), "{err}");
        drop(store);
        // and when opened again: damage that is no torn write is fatal
        let err = LogStore::open(dir.path(), None).err().expect("opened a damaged log");
        assert!(matches!(err, LogStoreError::Wal(WalError::Corrupt { .. })), "{err}");
    }

    #[tokio::test]
    async fn truncation_and_purge_are_durable_and_the_files_are_private() {
        // appends through openraft's callback are exercised by its suite (`raft::suite`), which can make one
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate().unwrap();
        let mut store = LogStore::open(dir.path(), Some(key.clone())).unwrap();
        put_on_disk(&store, (1..=50).map(|i| entry_with(i, "a")));
        store.truncate(LogId::new(Default::default(), 41)).await.unwrap();
        store.purge(LogId::new(Default::default(), 10)).await.unwrap();
        drop(store);
        let store = LogStore::open(dir.path(), Some(key)).unwrap();
        assert_eq!(indexes(&store), (11..=40).collect::<Vec<_>>());
        for p in std::fs::read_dir(dir.path().join(LOG_DIR)).unwrap() {
            use std::os::unix::fs::PermissionsExt;
            let mode = p.unwrap().metadata().unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(dir.path().join(LOG_DIR)).unwrap().permissions().mode() & 0o777, 0o700);
    }
}
