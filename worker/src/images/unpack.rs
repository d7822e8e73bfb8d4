//! Unpacking one layer into an empty directory of its own, safely: nothing a layer says can write outside that
//! directory or past a size limit.
//!
//! - Entry paths are taken relative to the layer (a leading `/` or `./` dropped); a `..` component refuses the layer.
//! - Every directory on an entry's way is checked with `lstat`: a symbolic link there (one the layer made itself,
//!   to send a later entry elsewhere) refuses the layer. Links are never followed while unpacking: a symbolic link's
//!   target is stored as written (absolute targets are normal in images and resolve inside the task's root once
//!   it is the root), files are created with `O_NOFOLLOW | O_EXCL` after removing what was there.
//! - A hard link must name an earlier regular file of the same layer, by a path that stays inside it.
//! - Device nodes are refused (a task gets its `/dev` from the engine); FIFOs are made.
//! - The uncompressed stream is counted: past `max_bytes` (or `max_entries`), the layer is refused. It is also
//!   hashed (by a thread of its own, while the files are written), and checked against the image config's `diff_id`.
//! - Whiteouts become overlayfs whiteouts (a `0:0` character device, made by the engine, not the layer), an opaque
//!   directory marker (`.wh..wh..opq`) the `trusted.overlay.opaque` attribute, so each layer is a ready overlayfs
//!   lower directory (the OCI image spec's `layer.md` describes both markers).
//! - Modes (the permission bits, setuid/setgid/sticky included) and owners are applied as recorded; PAX `SCHILY.xattr`
//!   attributes in the `user.` and `trusted.` namespaces where the filesystem takes them.
//! - Modification times are restored as `tar -x` and Docker do (the PAX `mtime` record, else the header's; the access
//!   time the same): a file's on its descriptor, a symbolic link's or FIFO's with `AT_SYMLINK_NOFOLLOW`, and every
//!   directory's once the whole layer is written (writing into a directory changes its time), after an `lstat` of
//!   each directory on its way again.

use nix::sys::stat::{futimens, utimensat, UtimensatFlags};
use nix::sys::time::TimeSpec;
use skep_registry::manifest::Compression;
use skep_registry::{Digest, Hasher};
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;

/// Bounds on one layer.
#[derive(Clone, Copy, Debug)]
pub struct UnpackLimits {
    /// Most uncompressed bytes (the tar stream, headers included).
    pub max_bytes: u64,
    /// Most entries.
    pub max_entries: u64,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        UnpackLimits { max_bytes: 8 << 30, max_entries: 1 << 20 }
    }
}

/// Why a layer was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UnpackError {
    /// The layer tries something no image needs (escaping paths, devices, links through links).
    #[error("layer refused: {0}")]
    Hostile(String),
    /// Past a limit.
    #[error("layer refused: more than {0}")]
    TooLarge(String),
    /// Not a tar (or gzip) stream, or an unsupported entry.
    #[error("invalid layer: {0}")]
    Invalid(String),
    /// The uncompressed content is not the one the image config names.
    #[error("layer content does not match its diff_id: expected {expected}, got {actual}")]
    DiffId {
        /// From the config.
        expected: String,
        /// Computed.
        actual: String,
    },
    /// Writing the directory failed.
    #[error("unpacking {0}: {1}")]
    Io(String, #[source] io::Error),
}

/// What unpacking found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpacked {
    /// The uncompressed stream's digest.
    pub diff_id: Digest,
    /// Its size.
    pub bytes: u64,
    /// Entries.
    pub entries: u64,
}

/// Reads the uncompressed stream, counting it (past the limit it fails) and passing it on in chunks to a thread that
/// hashes it while this one writes the files: hashing was the unpacker's largest cost of its own on large files
/// (`bench/unpack`, profiled with `perf`).
struct Counted<R> {
    inner: R,
    n: u64,
    limit: u64,
    /// Read and not passed on yet.
    chunk: Vec<u8>,
    /// To the hashing thread (`None` once the stream is over).
    chunks: Option<mpsc::SyncSender<Vec<u8>>>,
    /// Chunks the hashing thread is done with, to fill again.
    spare: mpsc::Receiver<Vec<u8>>,
}

/// Bytes passed to the hashing thread at a time, and the most chunks waiting for it.
const HASH_CHUNK: usize = 256 << 10;
const HASH_QUEUE: usize = 4;

impl<R> Counted<R> {
    /// Passes the chunk on (all of it, however short, when `last`; then the hashing thread ends).
    fn pass(&mut self, last: bool) -> io::Result<()> {
        if self.chunk.len() >= HASH_CHUNK || (last && !self.chunk.is_empty()) {
            let next = self.spare.try_recv().unwrap_or_else(|_| Vec::with_capacity(2 * HASH_CHUNK));
            let full = std::mem::replace(&mut self.chunk, next);
            let tx = self.chunks.as_ref().ok_or_else(|| io::Error::other("the layer's stream is over"))?;
            tx.send(full).map_err(|_| io::Error::other("the thread hashing the layer is gone"))?;
        }
        if last {
            self.chunks = None;
        }
        Ok(())
    }
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        if self.n > self.limit {
            return Err(io::Error::new(io::ErrorKind::FileTooLarge, "size limit"));
        }
        self.chunk.extend_from_slice(&buf[..k]);
        self.pass(false)?;
        Ok(k)
    }
}

/// Unpacks `layer` (compressed as said) into `dest`, an empty directory; checks the diff_id when given. On an error
/// `dest` holds a partial layer: the caller removes it.
pub fn unpack(layer: impl Read, compression: Compression, dest: &Path, limits: UnpackLimits, diff_id: Option<&str>) -> Result<Unpacked, UnpackError> {
    let reader: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::read::GzDecoder::new(layer)),
        Compression::None => Box::new(layer),
    };
    std::thread::scope(|scope| {
        let (chunks, to_hash) = mpsc::sync_channel::<Vec<u8>>(HASH_QUEUE);
        let (spare_tx, spare) = mpsc::channel();
        let hashing = std::thread::Builder::new()
            .name("layer-hash".into())
            .spawn_scoped(scope, move || {
                let mut hasher = Hasher::new();
                for mut chunk in to_hash {
                    hasher.update(&chunk);
                    chunk.clear();
                    // fails only once the reading side is gone (the unpack failed): the chunk is then just freed
                    let _ = spare_tx.send(chunk);
                }
                hasher.finish()
            })
            .map_err(|e| UnpackError::Io("a thread to hash the layer".into(), e))?;
        let chunk = Vec::with_capacity(2 * HASH_CHUNK);
        let mut counted = Counted { inner: reader, n: 0, limit: limits.max_bytes, chunk, chunks: Some(chunks), spare };
        let entries = write_entries(&mut counted, dest, limits)?;
        // the rest of the stream (tar padding) is part of the digest
        io::copy(&mut counted, &mut io::sink()).and_then(|_| counted.pass(true)).map_err(|e| stream_err(e, limits))?;
        let bytes = counted.n;
        let actual = hashing.join().map_err(|_| UnpackError::Invalid("hashing the layer failed".into()))?;
        if let Some(expected) = diff_id {
            if actual.as_str() != expected {
                return Err(UnpackError::DiffId { expected: expected.into(), actual: actual.to_string() });
            }
        }
        Ok(Unpacked { diff_id: actual, bytes, entries })
    })
}

/// A failed read of the layer's stream: past the size limit, or not a tar.
fn stream_err(e: io::Error, limits: UnpackLimits) -> UnpackError {
    if e.kind() == io::ErrorKind::FileTooLarge {
        UnpackError::TooLarge(format!("{} bytes", limits.max_bytes))
    } else {
        UnpackError::Invalid(e.to_string())
    }
}

/// Writes the entries of the tar read from `stream` into `dest`; the number of entries.
fn write_entries(stream: &mut impl Read, dest: &Path, limits: UnpackLimits) -> Result<u64, UnpackError> {
    let too_large = |e: &io::Error| e.kind() == io::ErrorKind::FileTooLarge;
    let mut archive = tar::Archive::new(stream);
    let root = nix::unistd::geteuid().is_root();
    let mut u = Unpacker { dest, root, entries: 0, limits, buf: vec![0; COPY_BUF], dirs: Vec::new() };
    let iter = archive.entries().map_err(|e| UnpackError::Invalid(e.to_string()))?;
    for entry in iter {
        let entry = entry.map_err(|e| stream_err(e, limits))?;
        u.entry(entry).map_err(|e| match e {
            UnpackError::Io(_, ref io) if too_large(io) => UnpackError::TooLarge(format!("{} bytes", limits.max_bytes)),
            e => e,
        })?;
    }
    u.dir_times()?;
    Ok(u.entries)
}

struct Unpacker<'a> {
    dest: &'a Path,
    root: bool,
    entries: u64,
    limits: UnpackLimits,
    /// A file's content goes through this buffer: `io::copy`'s 8 KiB one made the write calls the cost on large
    /// files (`bench/unpack`).
    buf: Vec<u8>,
    /// Each directory entry (path inside the layer) and its time, set once the layer is written.
    dirs: Vec<(PathBuf, TimeSpec)>,
}

/// The size of [`Unpacker::buf`].
const COPY_BUF: usize = 1 << 20;

/// Copies `from` to `to` through `buf`; the bytes copied.
fn copy_with(from: &mut impl Read, to: &mut impl io::Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut n = 0;
    loop {
        let k = match from.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// The overlayfs opaque marker and whiteout prefix (OCI `layer.md`).
const OPAQUE: &str = ".wh..wh..opq";
const WHITEOUT: &str = ".wh.";

/// A path inside the layer: `/a/./b` → `a/b`; `..` anywhere refuses it; empty means the layer's root.
pub(crate) fn inside(raw: &[u8]) -> Result<PathBuf, UnpackError> {
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(UnpackError::Hostile(format!("path {:?} leaves the layer", String::from_utf8_lossy(raw))))
            }
        }
    }
    Ok(out)
}

fn io_err(path: &Path, e: io::Error) -> UnpackError {
    UnpackError::Io(path.display().to_string(), e)
}

/// The entry's modification time: its PAX `mtime` record when it has one (seconds with an optional fraction),
/// else the header's seconds.
fn mtime<R: Read>(e: &mut tar::Entry<'_, R>) -> Result<TimeSpec, UnpackError> {
    if let Ok(Some(exts)) = e.pax_extensions() {
        for ext in exts.flatten() {
            if ext.key_bytes() == b"mtime" {
                let raw = ext.value_bytes();
                let bad = || UnpackError::Invalid(format!("PAX mtime {:?}", String::from_utf8_lossy(raw)));
                return pax_time(raw).ok_or_else(bad);
            }
        }
    }
    let secs = e.header().mtime().map_err(|x| UnpackError::Invalid(x.to_string()))?;
    Ok(TimeSpec::new(i64::try_from(secs).unwrap_or(i64::MAX), 0))
}

/// A PAX time, `[-]seconds[.fraction]` (POSIX `pax`, "pax Extended Header"); digits past nanoseconds are dropped.
fn pax_time(raw: &[u8]) -> Option<TimeSpec> {
    let s = std::str::from_utf8(raw).ok()?;
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !(frac.is_empty() || digits(frac)) {
        return None;
    }
    let secs: i64 = whole.parse().ok()?;
    let mut nanos = 0i64;
    for i in 0..9 {
        nanos = nanos * 10 + frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
    }
    Some(match (neg, nanos) {
        (false, _) => TimeSpec::new(secs, nanos),
        (true, 0) => TimeSpec::new(-secs, 0),
        (true, _) => TimeSpec::new(-secs - 1, 1_000_000_000 - nanos),
    })
}

/// Sets `path`'s access and modification times to `t`, on the path itself when it is a symbolic link.
fn set_times(path: &Path, t: TimeSpec) -> Result<(), UnpackError> {
    utimensat(nix::fcntl::AT_FDCWD, path, &t, &t, UtimensatFlags::NoFollowSymlink).map_err(|e| io_err(path, e.into()))
}

impl Unpacker<'_> {
    /// The directory `rel` inside the layer, made when missing; a symbolic link (or a file) on the way refuses it.
    fn dir(&self, rel: &Path) -> Result<PathBuf, UnpackError> {
        let mut cur = self.dest.to_path_buf();
        for c in rel.components() {
            cur.push(c);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_dir() => {}
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(UnpackError::Hostile(format!("{} goes through a symbolic link", rel.display())))
                }
                Ok(_) => return Err(UnpackError::Invalid(format!("{} is not a directory", rel.display()))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::create_dir(&cur).map_err(|e| io_err(&cur, e))?;
                }
                Err(e) => return Err(io_err(&cur, e)),
            }
        }
        Ok(cur)
    }

    /// Gives each directory entry its time, in entry order (a later entry for the same directory wins; setting a
    /// directory's times leaves its parent's alone, so depth does not matter). Every directory on the way is looked
    /// at again with `lstat`: a later entry may have replaced the directory or one above it (by a symbolic link,
    /// even), and then the time is not set, so nothing is reached through a link.
    fn dir_times(&self) -> Result<(), UnpackError> {
        'dirs: for (rel, t) in &self.dirs {
            let mut cur = self.dest.to_path_buf();
            for c in rel.components() {
                cur.push(c);
                match std::fs::symlink_metadata(&cur) {
                    Ok(m) if m.file_type().is_dir() => {}
                    Ok(_) => continue 'dirs,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue 'dirs,
                    Err(e) => return Err(io_err(&cur, e)),
                }
            }
            set_times(&cur, *t)?;
        }
        Ok(())
    }

    /// Removes whatever is at `path` (not following it), so the entry replaces it (a directory only by another
    /// kind of entry).
    fn clear(&self, path: &Path, keep_dir: bool) -> Result<(), UnpackError> {
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_dir() => {
                if keep_dir {
                    Ok(())
                } else {
                    std::fs::remove_dir_all(path).map_err(|e| io_err(path, e))
                }
            }
            Ok(_) => std::fs::remove_file(path).map_err(|e| io_err(path, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(path, e)),
        }
    }

    fn entry<R: Read>(&mut self, mut e: tar::Entry<'_, R>) -> Result<(), UnpackError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(UnpackError::TooLarge(format!("{} entries", self.limits.max_entries)));
        }
        let kind = e.header().entry_type();
        if matches!(kind, tar::EntryType::XGlobalHeader | tar::EntryType::XHeader | tar::EntryType::GNULongName | tar::EntryType::GNULongLink) {
            return Ok(());
        }
        let rel = inside(&e.path_bytes())?;
        let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
            // the layer's root itself: its time is taken (as `tar -x` does), its mode and owner stay the store's
            if kind == tar::EntryType::Directory {
                let time = mtime(&mut e)?;
                self.dirs.push((rel, time));
            }
            return Ok(());
        };
        let parent_rel = rel.parent().unwrap_or(Path::new(""));
        let parent = self.dir(parent_rel)?;
        let name_bytes = name.as_bytes();
        if name_bytes == OPAQUE.as_bytes() {
            return set_xattr(&parent, "trusted.overlay.opaque", b"y");
        }
        if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
                return Err(UnpackError::Hostile(format!("bad whiteout {}", rel.display())));
            }
            let path = parent.join(OsStr::from_bytes(hidden));
            self.clear(&path, false)?;
            return mknod_whiteout(&path);
        }
        let path = parent.join(&name);
        let mode = e.header().mode().map_err(|x| UnpackError::Invalid(x.to_string()))? & 0o7777;
        let uid = e.header().uid().unwrap_or(0);
        let gid = e.header().gid().unwrap_or(0);
        let time = mtime(&mut e)?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                self.clear(&path, false)?;
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(nix::libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|x| io_err(&path, x))?;
                copy_with(&mut e, &mut f, &mut self.buf).map_err(|x| io_err(&path, x))?;
                self.owner(&path, uid, gid)?;
                f.set_permissions(std::fs::Permissions::from_mode(mode)).map_err(|x| io_err(&path, x))?;
                futimens(&f, &time, &time).map_err(|x| io_err(&path, x.into()))?;
            }
            tar::EntryType::Directory => {
                self.clear(&path, true)?;
                if !path.is_dir() {
                    std::fs::create_dir(&path).map_err(|x| io_err(&path, x))?;
                }
                self.owner(&path, uid, gid)?;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(|x| io_err(&path, x))?;
                self.dirs.push((rel.clone(), time));
            }
            tar::EntryType::Symlink => {
                let target = e.link_name_bytes().ok_or_else(|| UnpackError::Invalid(format!("{}: symbolic link without a target", rel.display())))?;
                self.clear(&path, false)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &path).map_err(|x| io_err(&path, x))?;
                self.owner(&path, uid, gid)?;
                set_times(&path, time)?;
            }
            tar::EntryType::Link => {
                let raw = e.link_name_bytes().ok_or_else(|| UnpackError::Invalid(format!("{}: hard link without a target", rel.display())))?;
                let target_rel = inside(&raw)?;
                let target_parent = target_rel.parent().unwrap_or(Path::new(""));
                // the target's directories must exist and be real ones (never made here)
                let mut cur = self.dest.to_path_buf();
                for c in target_parent.components() {
                    cur.push(c);
                    let m = std::fs::symlink_metadata(&cur).map_err(|_| UnpackError::Hostile(format!("hard link {} to {} outside the layer's files", rel.display(), target_rel.display())))?;
                    if !m.file_type().is_dir() {
                        return Err(UnpackError::Hostile(format!("hard link {} goes through {}", rel.display(), cur.display())));
                    }
                }
                let target = self.dest.join(&target_rel);
                match std::fs::symlink_metadata(&target) {
                    Ok(m) if m.file_type().is_file() => {}
                    _ => return Err(UnpackError::Hostile(format!("hard link {} to {}: not a file of this layer", rel.display(), target_rel.display()))),
                }
                self.clear(&path, false)?;
                // the link shares its target's inode, and time, given by the target's entry
                std::fs::hard_link(&target, &path).map_err(|x| io_err(&path, x))?;
            }
            tar::EntryType::Fifo => {
                self.clear(&path, false)?;
                nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(mode)).map_err(|x| io_err(&path, x.into()))?;
                self.owner(&path, uid, gid)?;
                set_times(&path, time)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(UnpackError::Hostile(format!("device node {}", rel.display())));
            }
            other => return Err(UnpackError::Invalid(format!("{}: unsupported entry type {other:?}", rel.display()))),
        }
        if let Ok(Some(exts)) = e.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(attr) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                    if attr.starts_with(b"user.") || attr.starts_with(b"trusted.") || attr.starts_with(b"security.capability") {
                        // where possible: a filesystem without the namespace keeps the file without it
                        let _ = set_xattr(&path, std::str::from_utf8(attr).unwrap_or(""), ext.value_bytes());
                    }
                }
            }
        }
        Ok(())
    }

    fn owner(&self, path: &Path, uid: u64, gid: u64) -> Result<(), UnpackError> {
        if !self.root {
            return Ok(());
        }
        let (uid, gid) = (u32::try_from(uid).unwrap_or(0), u32::try_from(gid).unwrap_or(0));
        std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(|e| io_err(path, e))
    }
}

/// An overlayfs whiteout: a `0:0` character device (needs root, as overlayfs does).
fn mknod_whiteout(path: &Path) -> Result<(), UnpackError> {
    nix::sys::stat::mknod(path, nix::sys::stat::SFlag::S_IFCHR, nix::sys::stat::Mode::empty(), 0)
        .map_err(|e| io_err(path, io::Error::from(e)))
}

fn set_xattr(path: &Path, name: &str, value: &[u8]) -> Result<(), UnpackError> {
    xattr::set(path, name, value).map_err(|e| io_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use skep_registry::build::{self, Entry};

    fn unpack_entries(entries: &[Entry], limits: UnpackLimits) -> (tempfile::TempDir, Result<Unpacked, UnpackError>) {
        let dir = tempfile::tempdir().unwrap();
        let layer = dir.path().join("layer");
        std::fs::create_dir(&layer).unwrap();
        let tar = build::tar(entries).unwrap();
        let r = unpack(&tar[..], Compression::None, &layer, limits, None);
        (dir, r)
    }

    fn file(path: &str, data: &str) -> Entry {
        Entry::File { path: path.into(), mode: 0o644, data: data.into() }
    }

    /// Everything under `dir` (relative paths), to show nothing landed elsewhere.
    fn tree(dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    stack.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn files_dirs_links_and_modes_are_unpacked() {
        let entries = [
            Entry::Dir { path: "bin/".into(), mode: 0o755 },
            Entry::File { path: "bin/busybox".into(), mode: 0o4755, data: "#!".into() },
            Entry::Symlink { path: "bin/sh".into(), target: "/bin/busybox".into() },
            Entry::Hardlink { path: "bin/ls".into(), target: "bin/busybox".into() },
            file("./etc/passwd", "root:x:0:0::/root:/bin/sh\n"),
        ];
        let (dir, r) = unpack_entries(&entries, UnpackLimits::default());
        let u = r.unwrap();
        assert_eq!(u.entries, 5);
        let l = dir.path().join("layer");
        let m = std::fs::metadata(l.join("bin/busybox")).unwrap();
        assert_eq!(m.permissions().mode() & 0o7777, 0o4755);
        assert_eq!(std::fs::read_link(l.join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(l.join("bin/ls")).unwrap().ino(), m.ino());
        assert_eq!(std::fs::read_to_string(l.join("etc/passwd")).unwrap(), "root:x:0:0::/root:/bin/sh\n");
    }

    /// A tar whose entries carry times (`build::tar` writes 0): `(path, kind, link target, mtime, PAX mtime)`.
    fn timed_tar(entries: &[(&str, tar::EntryType, &str, u64, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for &(path, kind, target, mtime, pax) in entries {
            if let Some(pax) = pax {
                // one record, "<length> mtime=<value>\n", its length counting its own digits
                let body = format!(" mtime={pax}\n");
                let mut len = body.len() + 1;
                while format!("{len}{body}").len() != len {
                    len += 1;
                }
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::XHeader);
                h.set_path("PaxHeaders/x").unwrap();
                h.set_size(len as u64);
                h.set_cksum();
                b.append(&h, format!("{len}{body}").as_bytes()).unwrap();
            }
            let mut h = tar::Header::new_ustar();
            h.set_entry_type(kind);
            if path == "./" {
                h.as_old_mut().name[..2].copy_from_slice(b"./"); // `set_path` makes it empty
            } else {
                h.set_path(path).unwrap();
            }
            h.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
            h.set_mtime(mtime);
            let data: &[u8] = if kind == tar::EntryType::Regular { b"data" } else { b"" };
            if kind == tar::EntryType::Symlink {
                h.set_link_name(target).unwrap();
            }
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn modification_times_are_restored_without_following_links() {
        use std::os::unix::fs::MetadataExt;
        use tar::EntryType::{Directory, Regular, Symlink};
        let dir = tempfile::tempdir().unwrap();
        // a directory outside the layer that a replaced directory's time must not reach through a link
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(outside.join("s")).unwrap();
        let outside_before = std::fs::metadata(outside.join("s")).unwrap().mtime();
        let outside = outside.to_str().unwrap();
        let tar = timed_tar(&[
            ("./", Directory, "", 900_000_000, None),
            ("d/", Directory, "", 1_000_000_000, None),
            ("d/f", Regular, "", 1_100_000_000, None),
            // relative to d/f, which keeps its own time: the link's is set on the link
            ("d/l", Symlink, "f", 1_200_000_000, None),
            ("d/sub/", Directory, "", 1_300_000_000, None),
            // written into d/sub after its entry: the directory's time still ends as its entry says
            ("d/sub/g", Regular, "", 1_100_000_000, None),
            ("p", Regular, "", 5, Some("1400000000.25")),
            ("r/", Directory, "", 1_500_000_000, None),
            ("r/s/", Directory, "", 1_500_000_000, None),
            // replaces r: r/s's recorded time must not land on <outside>/s
            ("r", Symlink, outside, 1_600_000_000, None),
        ]);
        let layer = dir.path().join("layer");
        std::fs::create_dir(&layer).unwrap();
        unpack(&tar[..], Compression::None, &layer, UnpackLimits::default(), None).unwrap();
        let m = |p: &str| std::fs::symlink_metadata(layer.join(p)).unwrap();
        assert_eq!(m("").mtime(), 900_000_000);
        assert_eq!(m("d").mtime(), 1_000_000_000);
        assert_eq!(m("d/f").mtime(), 1_100_000_000);
        assert!(m("d/l").file_type().is_symlink());
        assert_eq!(m("d/l").mtime(), 1_200_000_000);
        assert_eq!(m("d/sub").mtime(), 1_300_000_000);
        assert_eq!(m("d/sub/g").mtime(), 1_100_000_000);
        assert_eq!((m("p").mtime(), m("p").mtime_nsec()), (1_400_000_000, 250_000_000));
        assert_eq!(m("r").mtime(), 1_600_000_000);
        assert_eq!(std::fs::metadata(Path::new(outside).join("s")).unwrap().mtime(), outside_before);
    }

    #[test]
    fn pax_times_are_parsed() {
        let t = |s: &str| pax_time(s.as_bytes()).map(|t| (t.tv_sec(), t.tv_nsec()));
        assert_eq!(t("1400000000"), Some((1_400_000_000, 0)));
        assert_eq!(t("1400000000.123456789123"), Some((1_400_000_000, 123_456_789)));
        assert_eq!(t("-1.5"), Some((-2, 500_000_000)));
        assert_eq!(t("-3"), Some((-3, 0)));
        for bad in ["", ".5", "1.x", "1e9", "+1", "x", "99999999999999999999"] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_layers_are_refused_and_write_nothing_outside() {
        let cases: Vec<(&str, Vec<Entry>)> = vec![
            ("dotdot", vec![file("../escaped", "x")]),
            ("dotdot inside", vec![file("a/../../escaped", "x")]),
            ("through an absolute symlink", vec![Entry::Symlink { path: "evil".into(), target: "/tmp".into() }, file("evil/escaped", "x")]),
            ("through an escaping symlink", vec![Entry::Symlink { path: "evil".into(), target: "../..".into() }, file("evil/escaped", "x")]),
            ("hardlink out", vec![Entry::Hardlink { path: "h".into(), target: "../../etc/passwd".into() }]),
            ("hardlink absolute", vec![Entry::Hardlink { path: "h".into(), target: "/etc/passwd".into() }]),
            ("hardlink through a symlink", vec![Entry::Symlink { path: "s".into(), target: "/etc".into() }, Entry::Hardlink { path: "h".into(), target: "s/passwd".into() }]),
            ("device", vec![Entry::CharDevice { path: "dev/mem".into() }]),
        ];
        for (what, entries) in cases {
            let (dir, r) = unpack_entries(&entries, UnpackLimits::default());
            let e = r.expect_err(what);
            assert!(matches!(e, UnpackError::Hostile(_)), "{what}: {e}");
            assert!(!dir.path().join("escaped").exists() && !Path::new("/tmp/escaped").exists(), "{what}");
            assert!(tree(dir.path()).iter().all(|p| p.starts_with("layer")), "{what}: {:?}", tree(dir.path()));
        }
        // an absolute symlink is data: kept, never followed
        let (dir, r) = unpack_entries(&[Entry::Symlink { path: "etc-link".into(), target: "/etc".into() }], UnpackLimits::default());
        r.unwrap();
        assert!(dir.path().join("layer/etc-link").symlink_metadata().unwrap().file_type().is_symlink());
    }

    #[test]
    fn a_size_bomb_stops_at_the_limit() {
        let big = "0".repeat(1 << 20);
        let entries: Vec<Entry> = (0..8).map(|i| file(&format!("f{i}"), &big)).collect();
        let tar = build::tar(&entries).unwrap();
        let gz = build::gzip(&tar).unwrap();
        assert!(gz.len() < 64 << 10, "compresses well: {}", gz.len());
        let dir = tempfile::tempdir().unwrap();
        let limits = UnpackLimits { max_bytes: 2 << 20, max_entries: 100 };
        let e = unpack(&gz[..], Compression::Gzip, dir.path(), limits, None).unwrap_err();
        assert!(matches!(e, UnpackError::TooLarge(_)), "{e}");
        let written: u64 = tree(dir.path()).iter().map(|p| std::fs::metadata(dir.path().join(p)).map_or(0, |m| m.len())).sum();
        assert!(written <= 2 << 20, "{written}");
        let (_d, r) = unpack_entries(&(0..5).map(|i| file(&format!("f{i}"), "")).collect::<Vec<_>>(), UnpackLimits { max_bytes: 1 << 20, max_entries: 3 });
        assert!(matches!(r.unwrap_err(), UnpackError::TooLarge(_)));
    }

    #[test]
    fn the_diff_id_is_checked() {
        let tar = build::tar(&[file("a", "1")]).unwrap();
        let good = Digest::of(&tar);
        let dir = tempfile::tempdir().unwrap();
        let u = unpack(&build::gzip(&tar).unwrap()[..], Compression::Gzip, dir.path(), UnpackLimits::default(), Some(good.as_str())).unwrap();
        assert_eq!(u.diff_id, good);
        let dir = tempfile::tempdir().unwrap();
        let wrong = Digest::of(b"x");
        let e = unpack(&tar[..], Compression::None, dir.path(), UnpackLimits::default(), Some(wrong.as_str())).unwrap_err();
        assert!(matches!(e, UnpackError::DiffId { .. }), "{e}");
    }

    #[test]
    fn whiteouts_and_opaque_dirs_become_overlay_markers() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: whiteouts need root");
            return;
        }
        let entries = [Entry::Dir { path: "etc/".into(), mode: 0o755 }, file("etc/.wh.motd", ""), Entry::Dir { path: "var/".into(), mode: 0o755 }, file("var/.wh..wh..opq", "")];
        let (dir, r) = unpack_entries(&entries, UnpackLimits::default());
        r.unwrap();
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let m = std::fs::symlink_metadata(dir.path().join("layer/etc/motd")).unwrap();
        assert!(m.file_type().is_char_device() && m.rdev() == 0);
        // tmpfs takes trusted.* xattrs (as root); some filesystems do not, which unpacking then reports
        if let Ok(v) = xattr::get(dir.path().join("layer/var"), "trusted.overlay.opaque") {
            assert_eq!(v.as_deref(), Some(&b"y"[..]));
        }
    }
}
