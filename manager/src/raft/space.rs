//! A full disk under the Raft directory: the log store and the snapshot writer wait for space rather than fail.
//!
//! openraft 0.9 treats every storage error as fatal: the Raft core stops and only a restart of the daemon brings the
//! manager back. A write refused with `ENOSPC` (or a quota) changed nothing, though: the log cuts off whatever part of
//! the record reached the file ([`super::wal`]) and a snapshot removes its temporary file, so the write can simply be
//! made again later. So instead of failing, the write waits, trying again every [`RETRY`], until it goes through:
//! to Raft this manager is a very slow disk, which it already survives (a paused manager is the same to the others).
//! Meanwhile [`Space::is_full`] is true and the manager answers its clients 503 with [`NO_SPACE`], rather than
//! holding their requests, and does not act as leader. Once space returns the waiting write completes and the
//! manager catches up by itself; nobody restarts the daemon.
//!
//! Checking free space before each write (a margin) was the other design: it needs `statvfs` (no `unsafe` here), a
//! margin that fits every filesystem, and it still has to handle the `ENOSPC` that a race or another writer causes;
//! waiting on the error alone covers both. Any other I/O error still fails the log: the state of a file after a
//! failed `fsync` is unknown, so nothing more may be written to it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;

/// How often a write that met a full disk is tried again.
pub const RETRY: Duration = Duration::from_millis(500);

/// What clients are told while this manager's disk is full (503).
pub const NO_SPACE: &str = "this manager's disk is full (no space left on device for its Raft log): it acknowledges \
    nothing until space is freed, then resumes by itself; use another manager meanwhile";

/// Whether an I/O error is a full filesystem or quota: a write that changed nothing and may be tried again.
pub fn is_full(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded)
}

/// Shared by the log store, the state machine and the manager: whether a write of theirs waits for space.
#[derive(Debug)]
pub struct Space {
    full: watch::Sender<bool>,
    /// Writers waiting, by what they write: the flag clears when the last one got through.
    waiting: Mutex<usize>,
    /// Set when the manager shuts down: waiting writes give up (with their error) so that Raft can stop.
    closed: AtomicBool,
}

impl Default for Space {
    fn default() -> Self {
        Space { full: watch::channel(false).0, waiting: Mutex::new(0), closed: AtomicBool::new(false) }
    }
}

/// A writer's wait for space; dropping it (written, or given up) ends the wait.
pub struct Waiting<'a> {
    space: &'a Space,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let mut n = self.space.waiting.lock().unwrap_or_else(|p| p.into_inner());
        *n -= 1;
        if *n == 0 {
            self.space.full.send_replace(false);
            tracing::info!("space is available again: this manager writes its Raft log and acknowledges again");
        }
    }
}

impl Space {
    /// Whether a write waits for space now.
    pub fn is_full(&self) -> bool {
        *self.full.borrow()
    }

    /// Follow [`Space::is_full`].
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.full.subscribe()
    }

    /// Whether the manager is shutting down (waits give up).
    pub fn closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Make every wait give up.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// A writer starts waiting after `why` (the error it met writing `what`).
    pub fn wait(&self, what: &str, why: &dyn std::fmt::Display) -> Waiting<'_> {
        let mut n = self.waiting.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        if *n == 1 {
            tracing::error!("{what}: {why}. {NO_SPACE}");
            self.full.send_replace(true);
        }
        Waiting { space: self }
    }
}
