//! The drivers of the [`dispatcher`](crate::dispatcher): the node session RPCs the leader serves (heartbeat,
//! assignments long poll, task status) and the two loops behind them, one publishing store versions to the long polls
//! and one proposing status reports in batches. The decisions are the dispatcher's; this holds the locks, waits and
//! proposes.

use super::{lock, werr, Manager};
use crate::dispatcher::assignments::{DISPATCH_GAP, LONG_POLL};
use crate::dispatcher::status::{assignment_delays, own_updates, StatusBatch, Update, STATUS_BATCH};
use crate::dispatcher::{heartbeat, Sent, UNKNOWN_NODE};
use crate::store::ClusterState;
use skep_api::wire::{ErrorKind, Heartbeat, Response};
use skep_pki::PeerIdentity;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// A node's status report on its way to the status loop, with where to say whether it was recorded.
pub(super) type Report = (Vec<Update>, oneshot::Sender<bool>);

impl Manager {
    pub(super) async fn handle_heartbeat(&self, id: PeerIdentity, hb: Heartbeat, from: SocketAddr) -> Response {
        if !self.leader_ready() {
            return self.not_leader();
        }
        let Some(beat) = heartbeat::heartbeat(&self.local_state(), &id.node_id, hb, from) else {
            // Not (yet) in this replica: a node that was removed is refused before this (`rpc::authorize`); anything
            // else is a race with its own join or init being applied. Retryable.
            return werr(ErrorKind::Unavailable, UNKNOWN_NODE);
        };
        self.lock_live().heartbeat(&id.node_id, Instant::now());
        for op in beat.ops {
            let m = self.clone();
            tokio::spawn(async move {
                if let Err(e) = m.propose_local(op).await {
                    tracing::debug!("recording a heartbeat: {e}");
                }
            });
        }
        Response::Heartbeat(beat.reply)
    }

    /// Publish store versions to the long polls, at most one per `DISPATCH_GAP`, with the assignment digests already
    /// computed. Every version used to wake every long poll and rebuild the digests (a scan of every task) at once;
    /// with a thousand nodes and a version per status batch, that was a third of the leader's CPU.
    pub(super) async fn dispatch_loop(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut changes = self.subscribe();
        loop {
            tokio::select! {
                r = changes.changed() => { if r.is_err() { return; } }
                _ = stop.changed() => return,
            }
            if *stop.borrow() {
                return;
            }
            let state = changes.borrow_and_update().clone();
            if self.leader_ready() {
                lock(&self.inner.assignments).refresh(&state);
                lock(&self.inner.sent).retain(&state);
            } else {
                *lock(&self.inner.sent) = Sent::default();
            }
            self.inner.dispatched.send_replace(state);
            tokio::time::sleep(DISPATCH_GAP).await;
        }
    }

    /// The assignments long poll: answer at once when the node's set or view differs from `known`, else when a
    /// published version changes it, else after `LONG_POLL` with the same set.
    pub(super) async fn handle_assignments(&self, id: PeerIdentity, known: u64) -> Response {
        if !self.leader_ready() {
            return self.not_leader();
        }
        let mut rx = self.inner.dispatched.subscribe();
        let deadline = Instant::now() + LONG_POLL;
        loop {
            let state = rx.borrow_and_update().clone();
            if !state.nodes.contains_key(&id.node_id) {
                return werr(ErrorKind::Unavailable, UNKNOWN_NODE);
            }
            let reply = |state: &Arc<ClusterState>| {
                let now = lock(&self.inner.assignments).get_with_view(state, &id.node_id);
                lock(&self.inner.sent).answer(&id.node_id, known, &now)
            };
            let d = lock(&self.inner.assignments).digest_with_view(&state, &id.node_id);
            if d != known {
                return reply(&state);
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) if self.leader_ready() => continue,
                Ok(Ok(())) => return self.not_leader(),
                _ => return reply(&state),
            }
        }
    }

    /// A node's task status report: its updates on its own tasks go to the status loop; answered once proposed.
    pub(super) async fn handle_task_status(&self, id: PeerIdentity, updates: Vec<Update>) -> Response {
        if !self.leader_ready() {
            return self.not_leader();
        }
        let state = self.local_state();
        let mine = own_updates(&state, &id.node_id, updates);
        if mine.is_empty() {
            return Response::Ok;
        }
        let delays = assignment_delays(&state, &mine, SystemTime::now());
        drop(state);
        let (tx, rx) = oneshot::channel();
        if self.inner.status_tx.send((mine, tx)).await.is_err() {
            return werr(ErrorKind::Unavailable, "shutting down");
        }
        match rx.await {
            Ok(true) => {
                // observed once recorded: a report that failed is sent again, and measured then
                delays.into_iter().for_each(|d| self.inner.metrics.assignment_duration.observe(d));
                Response::Ok
            }
            _ => werr(ErrorKind::Unavailable, "status not recorded; retry"),
        }
    }

    /// Gather status reports for `STATUS_BATCH` (at most `MAX_REPORTS`) and propose them as one command.
    pub(super) async fn status_loop(self, mut rx: mpsc::Receiver<Report>) {
        while let Some((updates, waiter)) = rx.recv().await {
            let mut batch = StatusBatch::new(updates, waiter);
            let until = Instant::now() + STATUS_BATCH;
            while let Ok(Some((updates, waiter))) = tokio::time::timeout_at(until, rx.recv()).await {
                batch.push(updates, waiter);
                if batch.is_full() {
                    break;
                }
            }
            let (op, waiters) = batch.into_op();
            let ok = self.propose(op).await.is_ok();
            for w in waiters {
                let _ = w.send(ok);
            }
        }
    }
}
