//! Network namespaces as handles: iproute2's named namespaces (`/run/netns/NAME`, a bind mount of an nsfs inode)
//! and any other nsfs path (`/proc/PID/ns/net` of a container).
//!
//! Why a handle instead of `ip netns exec`: the data plane has to open netlink sockets, listening sockets (the DNS
//! server on 127.0.0.11) and veth peers *inside* a task's namespace from a long-running, multi-threaded daemon. Linux
//! ties a socket to the namespace of the thread that created it, for the socket's whole life, so the handle runs the
//! code that creates such sockets on a short-lived thread that has entered the namespace ([`Netns::run`]). The
//! daemon's own threads never change namespace: a tokio worker that `setns`'d would carry the wrong namespace into
//! every later task it polls.
//!
//! A [`Netns`] holds an open file descriptor of the namespace, so it stays valid (and keeps the namespace alive) even
//! when its name is deleted; dropping the last clone releases it.
//!
//! Named namespaces are made the way iproute2 makes them, so `ip netns list`/`ip netns exec` see ours and we see
//! theirs: `/run/netns` is a shared bind mount of itself (so the names propagate into mount namespaces made later), a
//! namespace is created by `unshare(CLONE_NEWNET)` on a throwaway thread and bind-mounted from
//! `/proc/thread-self/ns/net` onto an empty file `/run/netns/NAME`.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};
use nix::sys::statfs::{fstatfs, NSFS_MAGIC};

/// Where iproute2 (and so this crate) keeps named network namespaces.
pub const NETNS_RUN_DIR: &str = "/run/netns";

/// What can go wrong with a namespace. Kernel refusals are data, never panics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name that cannot be a file in `/run/netns`.
    #[error("invalid network namespace name {0:?}")]
    InvalidName(String),
    /// The path exists but is not a namespace file (nsfs).
    #[error("{0} is not a network namespace")]
    NotANamespace(PathBuf),
    /// A system call failed; `op` says which step.
    #[error("{op} {path}: {source}")]
    Io {
        /// The step that failed (`mount`, `setns`, …).
        op: &'static str,
        /// The file it was about.
        path: PathBuf,
        /// The kernel's answer.
        #[source]
        source: io::Error,
    },
    /// The helper thread could not be started.
    #[error("cannot start a thread for namespace {path}: {source}")]
    Thread {
        /// The namespace.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// No tokio runtime to run a netlink connection on.
    #[error("a netlink handle needs a tokio runtime")]
    NoRuntime,
}

impl Error {
    /// The OS error number behind this error, if there is one (for callers that treat, say, `EPERM` specially).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } | Error::Thread { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// Results of this module.
pub type Result<T> = std::result::Result<T, Error>;

fn io_err(op: &'static str, path: &Path, source: impl Into<io::Error>) -> Error {
    Error::Io {
        op,
        path: path.to_path_buf(),
        source: source.into(),
    }
}

/// Serialises the creation of named namespaces within this process: the first creation makes `/run/netns` a shared
/// mount, and two threads doing that at once would stack two bind mounts.
static CREATE_LOCK: Mutex<()> = Mutex::new(());

/// A network namespace: an open nsfs file, plus the name it was opened under when it is a named one.
///
/// Cloning is cheap (the descriptor is shared). The namespace lives at least as long as any clone.
#[derive(Clone, Debug)]
pub struct Netns {
    /// `Some` for a namespace under [`NETNS_RUN_DIR`]; `None` for, say, `/proc/PID/ns/net`.
    name: Option<String>,
    /// The path it was opened from; used by [`Netns::command`] (a child process cannot inherit our descriptor).
    path: PathBuf,
    /// Keeps the namespace alive and is what `setns` and `IFLA_NET_NS_FD` use: valid even after the name is gone.
    file: Arc<File>,
}

impl Netns {
    /// The path of the named namespace `name`.
    pub fn path_for(name: &str) -> PathBuf {
        Path::new(NETNS_RUN_DIR).join(name)
    }

    /// Creates the named namespace `/run/netns/NAME`, or opens it if it already exists (idempotent).
    pub fn create(name: &str) -> Result<Netns> {
        check_name(name)?;
        let path = Self::path_for(name);
        let _guard = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ns) = Self::open_if_namespace(&path)? {
            return Ok(ns);
        }
        prepare_run_dir()?;
        // An empty file to mount onto. If a crashed run left one behind (no nsfs on it: it failed the check above),
        // it is reused.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_err("create", &path, e))?;
        let target = path.clone();
        let made = std::thread::Builder::new()
            .name("netns-create".into())
            .spawn(move || -> Result<()> {
                // Only this thread moves to the new namespace; it ends right after the bind mount pins it.
                unshare(CloneFlags::CLONE_NEWNET).map_err(|e| io_err("unshare(CLONE_NEWNET) for", &target, e))?;
                mount(
                    Some("/proc/thread-self/ns/net"),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| io_err("bind mount onto", &target, e))
            })
            .map_err(|source| Error::Thread {
                path: path.clone(),
                source,
            })?
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Err(e) = made {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Self::open(&path)
    }

    /// Opens any namespace file: a named one, `/proc/PID/ns/net` of a container, `/proc/thread-self/ns/net`.
    pub fn open(path: impl AsRef<Path>) -> Result<Netns> {
        let path = path.as_ref();
        Self::open_if_namespace(path)?.ok_or_else(|| io_err("open", path, io::Error::from(io::ErrorKind::NotFound)))
    }

    /// Opens the named namespace `name` if it exists.
    pub fn open_named(name: &str) -> Result<Option<Netns>> {
        check_name(name)?;
        Self::open_if_namespace(&Self::path_for(name))
    }

    /// The namespace of the calling thread (for the daemon: its node's namespace).
    pub fn current() -> Result<Netns> {
        Self::open("/proc/thread-self/ns/net")
    }

    /// Removes the named namespace: unmounts and unlinks `/run/netns/NAME`. A name that is not there is not an
    /// error. The namespace itself lives on while anything still holds it (a [`Netns`], a socket, a process).
    pub fn delete(name: &str) -> Result<()> {
        check_name(name)?;
        let path = Self::path_for(name);
        match umount2(&path, MntFlags::MNT_DETACH) {
            // EINVAL: not a mount point (a leftover empty file); ENOENT: not there.
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(io_err("umount", &path, e)),
        }
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("remove", &path, e)),
        }
    }

    /// The names in `/run/netns` (empty when the directory does not exist).
    pub fn list() -> Result<Vec<String>> {
        let dir = Path::new(NETNS_RUN_DIR);
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", dir, e)),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io_err("read", dir, e))?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Whether the named namespace exists (an nsfs mount at `/run/netns/NAME`).
    pub fn exists(name: &str) -> bool {
        matches!(Self::open_named(name), Ok(Some(_)))
    }

    /// The name under `/run/netns`, if this is a named namespace.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The path this namespace was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open descriptor, valid while this handle lives (for netlink's `IFLA_NET_NS_FD`).
    pub fn raw_fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Runs `f` on a new thread that has entered this namespace, and returns its result.
    ///
    /// Sockets `f` creates belong to this namespace for their whole life, also after the thread ends. Threads that
    /// `f` spawns inherit the namespace. The calling thread never changes namespace; it blocks until `f` returns, so
    /// keep `f` short when calling from async code (or use [`Netns::run_async`]).
    ///
    /// # Panics
    /// A panic in `f` is resumed on the calling thread.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|scope| {
            let thread = std::thread::Builder::new()
                .name("netns-run".into())
                .spawn_scoped(scope, || -> Result<T> {
                    self.enter()?;
                    Ok(f())
                })
                .map_err(|source| Error::Thread {
                    path: self.path.clone(),
                    source,
                })?;
            thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// [`Netns::run`] without blocking the calling thread: `f` runs on its own thread and the future waits for it.
    pub async fn run_async<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ns = self.clone();
        std::thread::Builder::new()
            .name("netns-run".into())
            .spawn(move || {
                let result = ns
                    .enter()
                    .map(|()| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
                let _ = tx.send(result);
            })
            .map_err(|source| Error::Thread {
                path: self.path.clone(),
                source,
            })?;
        match rx.await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(panic))) => std::panic::resume_unwind(panic),
            Ok(Err(e)) => Err(e),
            // The thread ended without sending: only possible if it was killed from outside.
            Err(_) => Err(Error::Thread {
                path: self.path.clone(),
                source: io::Error::other("thread vanished"),
            }),
        }
    }

    /// A command that runs `program` inside this namespace, through `nsenter --net=PATH -- program` (util-linux).
    ///
    /// Why nsenter rather than `setns` in `pre_exec`: the workspace forbids `unsafe`, and `pre_exec` is unsafe. The
    /// command uses the *path*, so a named namespace must still have its name when the command is spawned.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> std::process::Command {
        let mut net = std::ffi::OsString::from("--net=");
        net.push(self.path.as_os_str());
        let mut cmd = std::process::Command::new("nsenter");
        cmd.arg(net).arg("--").arg(program);
        cmd
    }

    /// An rtnetlink handle whose socket lives in this namespace; its connection runs on the current tokio runtime
    /// and ends when the last clone of the handle is dropped.
    pub async fn netlink(&self) -> Result<rtnetlink::Handle> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let rt = runtime.clone();
        let made = self
            .run_async(move || {
                // The socket registers with the runtime's reactor, which needs the runtime's context on this thread.
                let _context = rt.enter();
                rtnetlink::new_connection()
            })
            .await?;
        let (connection, handle, _unsolicited) = made.map_err(|e| io_err("netlink socket in", &self.path, e))?;
        runtime.spawn(connection);
        Ok(handle)
    }

    /// Moves the calling thread into this namespace. Only ever called on threads this module made.
    fn enter(&self) -> Result<()> {
        setns(self.file.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| io_err("setns", &self.path, e))
    }

    /// Opens `path` if it is a namespace; `None` if it does not exist or is a plain file (a name whose mount is gone).
    fn open_if_namespace(path: &Path) -> Result<Option<Netns>> {
        let file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("open", path, e)),
        };
        let fs = fstatfs(&file).map_err(|e| io_err("statfs", path, e))?;
        if fs.filesystem_type() != NSFS_MAGIC {
            if path.starts_with(NETNS_RUN_DIR) {
                return Ok(None);
            }
            return Err(Error::NotANamespace(path.to_path_buf()));
        }
        let name = match path.parent() {
            Some(dir) if dir == Path::new(NETNS_RUN_DIR) => path.file_name().and_then(|n| n.to_str()).map(String::from),
            _ => None,
        };
        Ok(Some(Netns {
            name,
            path: path.to_path_buf(),
            file: Arc::new(file),
        }))
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A name must be one plain file name (iproute2 accepts the same).
fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::InvalidName(name.to_string()));
    }
    Ok(())
}

/// Makes `/run/netns` exist and be a shared mount, as iproute2's `netns_add` does, so that namespaces mounted there
/// are seen from mount namespaces created afterwards (a task's own mount namespace, say).
fn prepare_run_dir() -> Result<()> {
    let dir = Path::new(NETNS_RUN_DIR);
    std::fs::create_dir_all(dir).map_err(|e| io_err("mkdir", dir, e))?;
    let shared = || {
        mount(
            None::<&str>,
            dir,
            Some("none"),
            MsFlags::MS_SHARED | MsFlags::MS_REC,
            None::<&str>,
        )
    };
    match shared() {
        Ok(()) => Ok(()),
        // Not a mount point yet: bind it onto itself first.
        Err(nix::errno::Errno::EINVAL) => {
            mount(
                Some(dir),
                dir,
                Some("none"),
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            )
            .map_err(|e| io_err("bind mount", dir, e))?;
            shared().map_err(|e| io_err("make shared", dir, e))
        }
        Err(e) => Err(io_err("make shared", dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_file_names() {
        assert!(check_name("skep-n4096").is_ok());
        for bad in ["", ".", "..", "a/b", "x\0"] {
            assert!(matches!(check_name(bad), Err(Error::InvalidName(_))), "{bad:?}");
        }
    }

    #[test]
    fn command_enters_by_path() {
        let ns = Netns {
            name: Some("x".into()),
            path: Netns::path_for("x"),
            file: Arc::new(File::open("/dev/null").expect("open /dev/null")),
        };
        let cmd = ns.command("ip");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(cmd.get_program(), "nsenter");
        assert_eq!(args, ["--net=/run/netns/x", "--", "ip"]);
    }
}
