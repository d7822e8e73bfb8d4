//! The Raft log on disk: an append-only segment log of checksummed records, in the manner of etcd's WAL.
//!
//! A redb write transaction per append (a B-tree commit: several pages written in place, then the header, then an
//! fsync) cost a lone write more than etcd's WAL append of one record. Here an append writes its records at the end
//! of the current segment file, and one `fdatasync` (run by the log store's sync thread, see `log_store`) covers every
//! append written before it: group fsync. Nothing is acknowledged before that fsync.
//!
//! # Layout
//!
//! A directory of segment files `<seq:016x>.seg` (0600, the directory 0700), read in order of `seq`. A segment begins
//! with a 16-byte header (`SKEPWAL1`, the cipher, a CRC32 of both) and then records `[len u32][crc32 u32][body]`,
//! little-endian, the checksum over the body, the body at most [`MAX_RECORD`] bytes. Bodies:
//!
//! - entry: `1`, the index (u64), the stored entry (sealed by the log store);
//! - state: `2`, the vote, committed and purged log IDs (bincode); the newest one read is the one in force;
//! - truncate: `3`, an index: the entries from it on are gone (openraft's truncate of a conflicting suffix).
//!
//! Every segment starts with a state record, so deleting segments whose entries are all purged never loses the
//! newest vote. A new segment is made under a temporary name, fsynced, renamed and the directory fsynced.
//!
//! # Recovery
//!
//! A record that is cut short or fails its checksum ends the log if it is in the last segment and looks torn, as
//! etcd's WAL judges it: it runs past the end of the file, or one of the 512-byte sectors it covers is all zeros (a
//! write the crash interrupted). The file is then cut before it, since what it held was never fsynced and so never
//! acknowledged. Anywhere else, or not torn, it is a [`WalError::Corrupt`]: the manager does not start on a damaged
//! log.
//!
//! # A full disk
//!
//! A write refused for want of space (`ENOSPC`, a quota) is undone: the file is cut back to where the write began, so
//! that no part of it remains, and the error comes back as [`WalError::is_full`] without failing the log; the log
//! store tries it again once there is room (see [`super::space`]). A segment that cannot be made for want of space
//! is removed likewise. Any other failed write or fsync fails the log for good ([`WalError::Failed`]).

use super::failpoint;
use openraft::{LogId, Vote};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"SKEPWAL1";
const HEADER_LEN: u64 = 16;
const RECORD_HEADER: usize = 8;
const KIND_ENTRY: u8 = 1;
const KIND_STATE: u8 = 2;
const KIND_TRUNCATE: u8 = 3;
/// Largest record body: an entry of the largest command ([`super::MAX_ENTRY_BYTES`]) with room for its encoding and
/// sealing. A longer length read back is damage, never an allocation.
pub const MAX_RECORD: usize = 2 * super::MAX_ENTRY_BYTES;
/// A segment is closed and a new one begun once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// The unit a torn write is judged in.
const SECTOR: u64 = 512;

type NodeId = u64;

/// How the entries of a log are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cipher {
    /// Plaintext (a log an older skep wrote without a data key).
    None,
    /// AES-256-GCM with the manager's data key.
    Aes256Gcm,
}

impl Cipher {
    fn byte(self) -> u8 {
        match self {
            Cipher::None => 0,
            Cipher::Aes256Gcm => 1,
        }
    }
}

/// The log's metadata: the newest state record.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    /// The vote.
    pub vote: Option<Vote<NodeId>>,
    /// The committed log ID (a hint for a faster restart; openraft learns it again from the leader).
    pub committed: Option<LogId<NodeId>>,
    /// The last purged log ID.
    pub purged: Option<LogId<NodeId>>,
}

/// Errors of the segment log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// I/O on a file of the log.
    #[error("raft log {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A damaged record or header that is not a torn tail (see the module docs).
    #[error("raft log {path} is corrupt at byte {offset}: {why}")]
    Corrupt {
        /// The segment.
        path: String,
        /// Where.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// A record larger than [`MAX_RECORD`] was refused.
    #[error("a raft log record of {0} bytes is larger than {MAX_RECORD}")]
    TooLarge(usize),
    /// An entry out of order was refused.
    #[error("raft log entry {index} cannot follow entry {last}")]
    OutOfOrder {
        /// The entry.
        index: u64,
        /// The last one in the log.
        last: u64,
    },
    /// An earlier write or fsync failed: what reached the disk is unknown, so nothing more is written.
    #[error("the raft log failed earlier and takes no more writes: {0}")]
    Failed(String),
    /// A state record could not be encoded.
    #[error("cannot encode the raft log state: {0}")]
    Encode(#[from] bincode::error::EncodeError),
}

impl WalError {
    /// Whether this is a write refused for want of space that left the log as it was: it may be tried again.
    pub fn is_full(&self) -> bool {
        matches!(self, WalError::Io { source, .. } if super::space::is_full(source))
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| WalError::Io { path: path.display().to_string(), source }
}

/// Where an entry's record lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    seq: u64,
    offset: u64,
    /// Body length.
    len: u32,
}

impl Loc {
    /// The stored entry's size in bytes.
    pub fn size(&self) -> usize {
        self.len as usize
    }
}

struct Segment {
    file: Arc<File>,
    /// The highest entry index recorded in it (live or truncated): it may go once that is purged.
    max_index: Option<u64>,
}

/// An open segment log. Not shared by itself: the log store keeps it behind a mutex.
pub struct Wal {
    dir: PathBuf,
    cipher: Cipher,
    segments: BTreeMap<u64, Segment>,
    /// The last segment's sequence number and length: records are written there.
    cur: u64,
    len: u64,
    /// The live entries.
    index: BTreeMap<u64, Loc>,
    meta: Meta,
    failed: Option<String>,
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:016x}.seg"))
}

fn header(cipher: Cipher) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8] = cipher.byte();
    let crc = crc32fast::hash(&h[..12]);
    h[12..].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Append one record `[len][crc][kind ‖ parts]` to `buf`.
fn put_record(buf: &mut Vec<u8>, kind: u8, parts: &[&[u8]]) -> Result<(), WalError> {
    let len = 1 + parts.iter().map(|p| p.len()).sum::<usize>();
    if len > MAX_RECORD {
        return Err(WalError::TooLarge(len));
    }
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    for p in parts {
        h.update(p);
    }
    buf.reserve(RECORD_HEADER + len);
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.push(kind);
    for p in parts {
        buf.extend_from_slice(p);
    }
    Ok(())
}

fn state_record(buf: &mut Vec<u8>, meta: &Meta) -> Result<(), WalError> {
    put_record(buf, KIND_STATE, &[&super::encode(meta)?])
}

fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(dir))
}

/// Make segment `seq` holding the header and `meta`, durably; returns it open and its length.
fn create_segment(dir: &Path, seq: u64, cipher: Cipher, meta: &Meta) -> Result<(File, u64), WalError> {
    let path = segment_path(dir, seq);
    let tmp = path.with_extension("tmp");
    let mut buf = header(cipher).to_vec();
    state_record(&mut buf, meta)?;
    let made = (|| -> Result<File, WalError> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(&tmp))?;
        failpoint!("wal::segment::before_write", io_err(&tmp));
        f.write_all(&buf).and_then(|()| f.sync_all()).map_err(io_err(&tmp))?;
        Ok(f)
    })();
    let f = match made {
        Ok(f) => f,
        Err(e) => {
            // never renamed, so never read: removed so that a full disk gets its space back (`open` removes one a
            // crash left)
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    failpoint!("wal::segment::before_rename", io_err(&tmp));
    std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
    failpoint!("wal::segment::after_rename", io_err(&path));
    sync_dir(dir)?;
    Ok((f, buf.len() as u64))
}

impl Wal {
    /// Make a new log in `dir` (which must not exist; its parent must) with `meta` as its state.
    pub fn create(dir: &Path, cipher: Cipher, meta: Meta) -> Result<Wal, WalError> {
        std::fs::DirBuilder::new().mode(0o700).create(dir).map_err(io_err(dir))?;
        let (f, len) = create_segment(dir, 1, cipher, &meta)?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
        let segments = BTreeMap::from([(1, Segment { file: Arc::new(f), max_index: None })]);
        Ok(Wal { dir: dir.to_path_buf(), cipher, segments, cur: 1, len, index: BTreeMap::new(), meta, failed: None })
    }

    /// Open the log in `dir`, reading every segment (see the module docs on recovery).
    pub fn open(dir: &Path) -> Result<Wal, WalError> {
        let mut seqs = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
            let p = e.map_err(io_err(dir))?.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.ends_with(".tmp") {
                // a segment whose making a crash interrupted: never used
                std::fs::remove_file(&p).map_err(io_err(&p))?;
            } else if let Some(seq) = name.strip_suffix(".seg").and_then(|s| u64::from_str_radix(s, 16).ok()) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let Some(&last) = seqs.last() else {
            return Err(WalError::Corrupt { path: dir.display().to_string(), offset: 0, why: "no segment".into() });
        };
        let mut wal = Wal {
            dir: dir.to_path_buf(),
            cipher: Cipher::None,
            segments: BTreeMap::new(),
            cur: last,
            len: 0,
            index: BTreeMap::new(),
            meta: Meta::default(),
            failed: None,
        };
        for (i, &seq) in seqs.iter().enumerate() {
            wal.replay_segment(seq, i == 0, seq == last)?;
        }
        Ok(wal)
    }

    fn replay_segment(&mut self, seq: u64, first: bool, last: bool) -> Result<(), WalError> {
        let path = segment_path(&self.dir, seq);
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).map_err(io_err(&path))?;
        let size = file.metadata().map_err(io_err(&path))?.len();
        let corrupt = |offset: u64, why: String| WalError::Corrupt { path: path.display().to_string(), offset, why };
        let mut h = [0u8; HEADER_LEN as usize];
        if size < HEADER_LEN {
            return Err(corrupt(0, "shorter than its header".into()));
        }
        file.read_exact_at(&mut h, 0).map_err(io_err(&path))?;
        let cipher = match h {
            _ if h == header(Cipher::None) => Cipher::None,
            _ if h == header(Cipher::Aes256Gcm) => Cipher::Aes256Gcm,
            _ => return Err(corrupt(0, "bad segment header".into())),
        };
        if first {
            self.cipher = cipher;
        } else if cipher != self.cipher {
            return Err(corrupt(0, "a segment of another cipher than the first".into()));
        }
        let file = Arc::new(file);
        let mut seg = Segment { file: file.clone(), max_index: None };
        let mut r = std::io::BufReader::with_capacity(256 * 1024, &*file);
        std::io::Seek::seek(&mut r, std::io::SeekFrom::Start(HEADER_LEN)).map_err(io_err(&path))?;
        let mut off = HEADER_LEN;
        while off < size {
            let left = size - off;
            // a damaged record ending (by its header) at `claimed`; `past_eof`: a length in bounds that runs past
            // the end of the file
            let bad = |why: &str, claimed: u64, past_eof: bool| -> Result<Option<String>, WalError> {
                if last && torn(&file, off, claimed.min(size), past_eof).map_err(io_err(&path))? {
                    Ok(Some(why.to_string()))
                } else {
                    Err(corrupt(off, why.to_string()))
                }
            };
            let verdict = if left < RECORD_HEADER as u64 {
                bad("a record header cut short", size, true)?
            } else {
                let mut rh = [0u8; RECORD_HEADER];
                r.read_exact(&mut rh).map_err(io_err(&path))?;
                let len = u32::from_le_bytes(rh[..4].try_into().expect("4 bytes")) as u64;
                let crc = u32::from_le_bytes(rh[4..].try_into().expect("4 bytes"));
                let end = off + RECORD_HEADER as u64 + len;
                if len == 0 || len > MAX_RECORD as u64 {
                    // never written (zeros), or a header torn across two sectors, or damage
                    bad(&format!("a record length of {len}"), off + RECORD_HEADER as u64, false)?
                } else if end > size {
                    bad("a record cut short", end, true)?
                } else {
                    // bounded above: len <= MAX_RECORD and within the file
                    let mut body = vec![0u8; len as usize];
                    r.read_exact(&mut body).map_err(io_err(&path))?;
                    if crc32fast::hash(&body) != crc {
                        bad("checksum mismatch", end, false)?
                    } else {
                        let loc = Loc { seq, offset: off, len: len as u32 };
                        self.replay_record(&mut seg, loc, &body).map_err(|why| corrupt(off, why))?;
                        off = end;
                        None
                    }
                }
            };
            if let Some(why) = verdict {
                tracing::warn!(segment = %path.display(), offset = off, why,
                    "the raft log ends in a torn record (a write a crash interrupted, never acknowledged): cut there");
                file.set_len(off).and_then(|()| file.sync_all()).map_err(io_err(&path))?;
                break;
            }
        }
        if last {
            self.len = off;
        }
        self.segments.insert(seq, seg);
        Ok(())
    }

    fn replay_record(&mut self, seg: &mut Segment, loc: Loc, body: &[u8]) -> Result<(), String> {
        let (kind, rest) = body.split_first().ok_or("an empty record")?;
        match *kind {
            KIND_ENTRY => {
                let index = u64_at(rest).ok_or("an entry record without its index")?;
                if let Some((&last, _)) = self.index.last_key_value() {
                    if index <= last {
                        return Err(format!("entry {index} after entry {last} without a truncation"));
                    }
                }
                self.index.insert(index, loc);
                seg.max_index = seg.max_index.max(Some(index));
            }
            KIND_STATE => {
                self.meta = super::decode(rest).map_err(|e| format!("a state record: {e}"))?;
                if let Some(p) = self.meta.purged {
                    self.index = self.index.split_off(&(p.index + 1));
                }
            }
            KIND_TRUNCATE => {
                let from = u64_at(rest).ok_or("a truncation without its index")?;
                drop(self.index.split_off(&from));
            }
            k => return Err(format!("a record of unknown kind {k}")),
        }
        Ok(())
    }

    /// The cipher the log was made with.
    pub fn cipher(&self) -> Cipher {
        self.cipher
    }

    /// The state in force.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Whether the log holds no entries and no state but the default.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty() && self.meta == Meta::default()
    }

    /// Whether the log still takes writes.
    pub fn check(&self) -> Result<(), WalError> {
        match &self.failed {
            Some(why) => Err(WalError::Failed(why.clone())),
            None => Ok(()),
        }
    }

    /// Record a failure that leaves the disk in an unknown state; the log takes no more writes.
    pub fn fail(&mut self, why: String) {
        self.failed.get_or_insert(why);
    }

    /// Whether the current segment is full, so that the next write should [`Wal::roll`] first (which fsyncs).
    pub fn roll_due(&self) -> bool {
        // tests roll a segment at every write without writing 64 MiB
        #[cfg(test)]
        fail::fail_point!("wal::roll_due", |_| true);
        self.len >= SEGMENT_BYTES
    }

    /// Close the current segment (fsynced) and begin the next one.
    pub fn roll(&mut self) -> Result<(), WalError> {
        self.check()?;
        let res = self.roll_inner();
        match &res {
            // no new segment was made: the current one stays as it was
            Err(e) if e.is_full() => {}
            Err(e) => self.fail(e.to_string()),
            Ok(()) => {}
        }
        res
    }

    fn roll_inner(&mut self) -> Result<(), WalError> {
        self.current().sync_data().map_err(io_err(&segment_path(&self.dir, self.cur)))?;
        let seq = self.cur + 1;
        let (f, len) = create_segment(&self.dir, seq, self.cipher, &self.meta)?;
        self.segments.insert(seq, Segment { file: Arc::new(f), max_index: None });
        self.cur = seq;
        self.len = len;
        Ok(())
    }

    /// The segment written to: what an fsync must cover (a roll fsyncs the one before).
    pub fn current(&self) -> Arc<File> {
        self.segments[&self.cur].file.clone()
    }

    /// Write `buf` at the end of the current segment (not fsynced).
    fn write(&mut self, buf: &[u8]) -> Result<(), WalError> {
        self.check()?;
        let path = segment_path(&self.dir, self.cur);
        failpoint!("wal::write::before", io_err(&path));
        // a crash part-way through the write: half of it reached the file
        #[cfg(test)]
        fail::fail_point!("wal::write::torn", |_| {
            super::fired("wal::write::torn");
            let _ = self.current().write_all_at(&buf[..buf.len() / 2], self.len);
            Err(io_err(&path)(std::io::Error::other("wal::write::torn: crashed part-way (injected)")))
        });
        let res = self.current().write_all_at(buf, self.len);
        #[cfg(test)]
        let res = res.and_then(|()| {
            fail::fail_point!("wal::write::enospc_after_part", |_| Err(super::injected("wal::write::enospc_after_part", Some("enospc"))));
            Ok(())
        });
        match res {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) if super::space::is_full(&e) && self.current().set_len(self.len).is_ok() => {
                // whatever part of it reached the file is cut off again: the log is as it was before the write
                Err(io_err(&path)(e))
            }
            Err(e) => {
                // a partial write may have reached the file: nothing may be written after it
                self.fail(e.to_string());
                Err(io_err(&path)(e))
            }
        }
    }

    /// Write entries (index, stored form) after the last one, not fsynced: the caller has the current segment
    /// fsynced before it acknowledges them.
    pub fn append<'a>(&mut self, entries: impl IntoIterator<Item = (u64, &'a [u8])>) -> Result<(), WalError> {
        let mut buf = Vec::new();
        let mut locs = Vec::new();
        let mut last = self.index.last_key_value().map(|(i, _)| *i);
        for (index, stored) in entries {
            if let Some(l) = last.filter(|l| index <= *l) {
                return Err(WalError::OutOfOrder { index, last: l });
            }
            let offset = self.len + buf.len() as u64;
            put_record(&mut buf, KIND_ENTRY, &[&index.to_le_bytes(), stored])?;
            let len = (buf.len() as u64 + self.len - offset) as u32 - RECORD_HEADER as u32;
            locs.push((index, Loc { seq: self.cur, offset, len }));
            last = Some(index);
        }
        self.write(&buf)?;
        let seg = self.segments.get_mut(&self.cur).expect("the current segment");
        seg.max_index = seg.max_index.max(last);
        self.index.extend(locs);
        Ok(())
    }

    /// Replace the state; with `sync`, durably before this returns.
    pub fn set_meta(&mut self, meta: Meta, sync: bool) -> Result<(), WalError> {
        let mut buf = Vec::new();
        state_record(&mut buf, &meta)?;
        self.write(&buf)?;
        self.meta = meta;
        failpoint!("wal::meta::before_sync", io_err(&self.dir));
        if sync {
            self.sync()?;
        }
        Ok(())
    }

    /// Remove the entries from `from` on, durably.
    pub fn truncate(&mut self, from: u64) -> Result<(), WalError> {
        let mut buf = Vec::new();
        put_record(&mut buf, KIND_TRUNCATE, &[&from.to_le_bytes()])?;
        self.write(&buf)?;
        failpoint!("wal::truncate::before_sync", io_err(&self.dir));
        self.sync()?;
        failpoint!("wal::truncate::after_sync", io_err(&self.dir));
        drop(self.index.split_off(&from));
        Ok(())
    }

    /// Record `purged` durably, forget the entries up to it and delete the segments that hold nothing after it.
    pub fn purge(&mut self, purged: LogId<NodeId>) -> Result<(), WalError> {
        let meta = Meta { purged: Some(purged), ..self.meta.clone() };
        self.set_meta(meta, true)?;
        failpoint!("wal::purge::before_delete", io_err(&self.dir));
        self.index = self.index.split_off(&(purged.index + 1));
        let gone: Vec<u64> = self
            .segments
            .iter()
            .filter(|(seq, s)| **seq != self.cur && s.max_index.is_none_or(|m| m <= purged.index))
            .map(|(seq, _)| *seq)
            .collect();
        // in order, oldest first: a crash part-way leaves a prefix deleted, never a hole
        for seq in &gone {
            let p = segment_path(&self.dir, *seq);
            std::fs::remove_file(&p).map_err(io_err(&p))?;
            self.segments.remove(seq);
            failpoint!("wal::purge::after_one_delete", io_err(&p));
        }
        if !gone.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// fsync the current segment.
    pub fn sync(&mut self) -> Result<(), WalError> {
        self.check()?;
        let res = self.current().sync_data();
        res.map_err(|e| {
            self.fail(e.to_string());
            io_err(&segment_path(&self.dir, self.cur))(e)
        })
    }

    /// The live entries in `start..end` (`None`: to the last), with the file each lies in.
    pub fn locate(&self, start: u64, end: Option<u64>) -> Vec<(u64, Arc<File>, Loc)> {
        let range = match end {
            Some(e) if e <= start => self.index.range(start..start),
            Some(e) => self.index.range(start..e),
            None => self.index.range(start..),
        };
        range.map(|(i, loc)| (*i, self.segments[&loc.seq].file.clone(), *loc)).collect()
    }

    /// The last live entry's index.
    pub fn last_index(&self) -> Option<u64> {
        self.index.last_key_value().map(|(i, _)| *i)
    }

    /// The segment files, oldest first.
    #[cfg(test)]
    pub fn segment_paths(&self) -> Vec<PathBuf> {
        self.segments.keys().map(|s| segment_path(&self.dir, *s)).collect()
    }
}

fn u64_at(b: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(..8)?.try_into().ok()?))
}

/// Read the stored form of entry `index` at `loc` of `file`, checking its checksum again.
pub fn read_entry(file: &File, loc: Loc, index: u64) -> Result<Vec<u8>, String> {
    // `loc.len` was checked against MAX_RECORD when the record was written or read back
    let mut b = vec![0u8; RECORD_HEADER + loc.size()];
    file.read_exact_at(&mut b, loc.offset).map_err(|e| e.to_string())?;
    let len = u32::from_le_bytes(b[..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(b[4..8].try_into().expect("4 bytes"));
    if len != loc.len || crc32fast::hash(&b[RECORD_HEADER..]) != crc {
        return Err(format!("checksum mismatch in the record at byte {}", loc.offset));
    }
    if b[RECORD_HEADER] != KIND_ENTRY || u64_at(&b[RECORD_HEADER + 1..]) != Some(index) {
        return Err(format!("the record at byte {} is not entry {index}", loc.offset));
    }
    Ok(b.split_off(RECORD_HEADER + 9))
}

/// Whether the damaged record at `off`, claimed to end at `end` (clamped to the file), is a torn write: cut short
/// by the end of the file, or covering a sector of zeros.
fn torn(file: &File, off: u64, end: u64, past_eof: bool) -> std::io::Result<bool> {
    if past_eof {
        return Ok(true);
    }
    let mut s = off;
    let mut buf = vec![0u8; SECTOR as usize];
    while s < end.max(off + 1) {
        let next = ((s / SECTOR) + 1) * SECTOR;
        let chunk = (next.min(end.max(off + 1)) - s) as usize;
        let b = &mut buf[..chunk];
        file.read_exact_at(b, s)?;
        if b.iter().all(|&x| x == 0) {
            return Ok(true);
        }
        s = next;
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;

    fn lid(index: u64) -> LogId<NodeId> {
        LogId::new(CommittedLeaderId::new(1, 1), index)
    }

    fn entries(wal: &Wal) -> Vec<(u64, Vec<u8>)> {
        wal.locate(0, None).into_iter().map(|(i, f, l)| (i, read_entry(&f, l, i).unwrap())).collect()
    }

    fn new_wal(dir: &Path) -> Wal {
        Wal::create(&dir.join("log"), Cipher::None, Meta::default()).unwrap()
    }

    #[test]
    fn entries_state_truncation_and_purge_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = new_wal(dir.path());
        w.append((1..=5u64).map(|i| (i, &b"abcdef"[..i as usize]))).unwrap();
        w.sync().unwrap();
        let vote = Vote::new(3, 2);
        w.set_meta(Meta { vote: Some(vote), ..Meta::default() }, true).unwrap();
        w.truncate(4).unwrap();
        w.append([(4u64, &b"new"[..])]).unwrap();
        assert!(matches!(w.append([(3u64, &b"x"[..])]), Err(WalError::OutOfOrder { index: 3, last: 4 })));
        w.purge(lid(2)).unwrap();
        w.sync().unwrap();
        let want = vec![(3, b"abc".to_vec()), (4, b"new".to_vec())];
        assert_eq!(entries(&w), want);
        drop(w);
        let w = Wal::open(&dir.path().join("log")).unwrap();
        assert_eq!(entries(&w), want);
        assert_eq!(w.meta().vote, Some(vote));
        assert_eq!(w.meta().purged, Some(lid(2)));
        // a gap (after a snapshot was installed and everything purged) is fine
        let mut w = w;
        w.purge(lid(10)).unwrap();
        w.append([(11u64, &b"after"[..])]).unwrap();
        w.sync().unwrap();
        drop(w);
        let w = Wal::open(&dir.path().join("log")).unwrap();
        assert_eq!(entries(&w), vec![(11, b"after".to_vec())]);
    }

    #[test]
    fn segments_roll_and_purged_ones_are_deleted_keeping_the_vote() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = new_wal(dir.path());
        let vote = Vote::new(7, 1);
        w.set_meta(Meta { vote: Some(vote), ..Meta::default() }, true).unwrap();
        for i in 1..=6u64 {
            w.append([(i, &b"entry"[..])]).unwrap();
            if i % 2 == 0 {
                w.roll().unwrap();
            }
        }
        w.sync().unwrap();
        assert_eq!(w.segment_paths().len(), 4);
        w.purge(lid(4)).unwrap();
        // segments 1 and 2 held entries up to 4; 3 holds 5 and 6; 4 is the current one
        assert_eq!(w.segment_paths().len(), 2);
        for p in w.segment_paths() {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o600);
        }
        drop(w);
        let w = Wal::open(&dir.path().join("log")).unwrap();
        assert_eq!(w.meta().vote, Some(vote));
        assert_eq!(entries(&w).iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![5, 6]);
    }

    fn last_segment(dir: &Path) -> PathBuf {
        let mut v: Vec<_> = std::fs::read_dir(dir.join("log"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        v.sort();
        v.pop().unwrap()
    }

    /// A log of entries 1..=3 (the third 2000 bytes long), with the third's offset and the file's path.
    fn three(dir: &Path) -> (u64, PathBuf) {
        let mut w = new_wal(dir);
        let big = vec![7u8; 2000];
        w.append([(1u64, &b"one"[..]), (2, &b"two"[..])]).unwrap();
        w.append([(3u64, big.as_slice())]).unwrap();
        w.sync().unwrap();
        let off = w.locate(3, None)[0].2.offset;
        (off, last_segment(dir))
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_good_record() {
        let dir = tempfile::tempdir().unwrap();
        let (off, seg) = three(dir.path());
        // the last record cut short
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        let size = f.metadata().unwrap().len();
        f.set_len(size - 100).unwrap();
        let mut w = Wal::open(&dir.path().join("log")).unwrap();
        assert_eq!(w.last_index(), Some(2));
        assert_eq!(std::fs::metadata(&seg).unwrap().len(), off);
        // written again after the cut, read back
        w.append([(3u64, &b"three"[..])]).unwrap();
        w.sync().unwrap();
        drop(w);
        let w = Wal::open(&dir.path().join("log")).unwrap();
        assert_eq!(entries(&w).last().unwrap(), &(3, b"three".to_vec()));
        drop(w);
        // a sector of the last record never written (zeros): torn as well
        let dir = tempfile::tempdir().unwrap();
        let (off, seg) = three(dir.path());
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        let s = (off / SECTOR + 2) * SECTOR;
        f.write_all_at(&[0u8; SECTOR as usize], s).unwrap();
        assert_eq!(Wal::open(&dir.path().join("log")).unwrap().last_index(), Some(2));
    }

    #[test]
    fn a_flipped_bit_that_is_no_torn_write_is_a_fatal_error() {
        let dir = tempfile::tempdir().unwrap();
        let (off, seg) = three(dir.path());
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        // in the first record, before good ones: not a tail
        f.write_all_at(b"X", HEADER_LEN + 10).unwrap();
        let err = Wal::open(&dir.path().join("log")).err().expect("opened a damaged log");
        assert!(matches!(err, WalError::Corrupt { .. }), "{err}");
        // in the last record, with no zeros: damage, not a torn write
        let dir = tempfile::tempdir().unwrap();
        let (off2, seg) = three(dir.path());
        assert_eq!(off, off2);
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(b"X", off + 1000).unwrap();
        let err = Wal::open(&dir.path().join("log")).err().expect("opened a damaged log");
        assert!(err.to_string().contains("checksum"), "{err}");
        // a length past the bound is never allocated, and is damage here
        let dir = tempfile::tempdir().unwrap();
        let (_, seg) = three(dir.path());
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(&u32::MAX.to_le_bytes(), HEADER_LEN).unwrap();
        let err = Wal::open(&dir.path().join("log")).err().expect("opened a damaged log");
        assert!(err.to_string().contains("record length"), "{err}");
        // damage in an earlier segment is never taken for a torn tail
        let dir = tempfile::tempdir().unwrap();
        let mut w = new_wal(dir.path());
        w.append([(1u64, &b"one"[..])]).unwrap();
        w.roll().unwrap();
        w.append([(2u64, &b"two"[..])]).unwrap();
        w.sync().unwrap();
        let first = w.segment_paths()[0].clone();
        drop(w);
        let f = std::fs::OpenOptions::new().write(true).open(&first).unwrap();
        let size = f.metadata().unwrap().len();
        f.set_len(size - 2).unwrap();
        assert!(matches!(Wal::open(&dir.path().join("log")), Err(WalError::Corrupt { .. })));
    }

    #[test]
    fn reading_an_entry_checks_it_again() {
        let dir = tempfile::tempdir().unwrap();
        let (off, seg) = three(dir.path());
        let w = Wal::open(&dir.path().join("log")).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
        f.write_all_at(b"X", off + 100).unwrap();
        let (i, file, loc) = w.locate(3, None).pop().unwrap();
        assert!(read_entry(&file, loc, i).unwrap_err().contains("checksum"));
        let (_, file, loc) = w.locate(2, Some(3)).pop().unwrap();
        assert!(read_entry(&file, loc, 7).unwrap_err().contains("not entry 7"));
    }
}
