//! Group commit on the leader: proposals that arrive while earlier ones are on their way to a quorum share one Raft
//! entry.
//!
//! openraft 0.9 turns every client write into its own entry and appends them one at a time, each waiting for its
//! fsync, so 64 concurrent writers meant 64 sequential fsyncs and commits. Here one task takes the proposals from a
//! queue in arrival order; when fewer than [`IN_FLIGHT`] entries are in flight it takes everything queued (up to
//! [`MAX_WEIGHT`]) into one entry, submits it to openraft in order, and hands each proposer its own command's result
//! when the entry is applied. A lone proposal on an idle leader goes out at once, so batching adds no latency; under
//! load the batch grows with the queue, which is what bounds latency.
//!
//! Commands of one entry are applied in order and share the entry's log index, so objects they write get the same
//! `Version.Index`; an update carrying a version read before the entry still conflicts as it should.

use crate::raft::{command_json, EntryError, Member, Proposal, Raft, TARGET_ENTRY_BYTES};
use crate::store::{ApplyResult, Command, Op};
use openraft::error::ClientWriteError;
use prometheus_client::metrics::histogram::Histogram;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Entries submitted and not yet applied. Two keep the disk busy while the previous entry replicates, without
/// starving the next batch of proposals to group.
pub const IN_FLIGHT: usize = 2;

/// Upper bound on an entry's [`weight`]: objects touched, so that an entry stays small enough to reach a follower and
/// be fsynced within one heartbeat interval (openraft's AppendEntries deadline).
pub const MAX_WEIGHT: usize = 256;

/// Queue depth before proposers wait (back-pressure, bounded memory).
const QUEUE: usize = 4096;

/// Why a proposal was not applied.
#[derive(Clone, Debug, thiserror::Error)]
pub enum WriteError {
    /// This manager is not the leader (any more); the leader, if known.
    #[error("not the leader")]
    ForwardToLeader(Option<Member>),
    /// Raft stopped or failed.
    #[error("{0}")]
    Unavailable(String),
    /// The command can never go into the log (too large, too deep): refused, not retried.
    #[error(transparent)]
    Refused(#[from] EntryError),
}

struct Pending {
    cmd: Command,
    /// Its JSON ([`command_json`]), made by the proposer so that the batching task only concatenates.
    json: Vec<u8>,
    reply: oneshot::Sender<Result<ApplyResult, WriteError>>,
}

/// The handle proposers use. Cheap to clone.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Pending>,
    /// Seconds from [`Batcher::write`] to its command applied, for each command that was.
    latency: Histogram,
}

/// How much of an entry a command takes: the objects it writes.
pub fn weight(op: &Op) -> usize {
    match op {
        Op::PutTasks { tasks } => tasks.len(),
        Op::ReportTaskStatus { updates } => updates.len(),
        Op::DeleteTasks { ids } => ids.len(),
        Op::Once { op, .. } => weight(op),
        _ => 1,
    }
    .max(1)
}

impl Batcher {
    /// Start the batching task for `raft`; it ends when every handle is dropped. Each applied command's latency
    /// goes to `latency`.
    pub fn start(raft: Raft, latency: Histogram) -> Batcher {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(raft, rx));
        Batcher { tx, latency }
    }

    /// Propose `cmd`; returns its result once the entry holding it is applied.
    pub async fn write(&self, cmd: Command) -> Result<ApplyResult, WriteError> {
        let began = tokio::time::Instant::now();
        let json = command_json(&cmd)?;
        let (reply, rx) = oneshot::channel();
        self.tx.send(Pending { cmd, json, reply }).await.map_err(|_| WriteError::Unavailable("raft stopped".into()))?;
        let applied = rx.await.map_err(|_| WriteError::Unavailable("raft stopped".into()))??;
        self.latency.observe(began.elapsed().as_secs_f64());
        Ok(applied)
    }
}

async fn run(raft: Raft, mut rx: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut carry: Option<Pending> = None;
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else { return };
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut w = weight(&first.cmd.op);
        let mut bytes = first.json.len() + 2;
        let mut batch = vec![first];
        while w < MAX_WEIGHT {
            match rx.try_recv() {
                Ok(p) => {
                    let pw = weight(&p.cmd.op);
                    if w + pw > MAX_WEIGHT || bytes + p.json.len() + 1 > TARGET_ENTRY_BYTES {
                        carry = Some(p);
                        break;
                    }
                    w += pw;
                    bytes += p.json.len() + 1;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        let (cmds, replies): (Vec<(Command, Vec<u8>)>, Vec<_>) =
            batch.into_iter().map(|p| ((p.cmd, p.json), p.reply)).unzip();
        // submitted here, in order; only the wait for the result runs beside the next batch
        let submitted = raft.client_write_ff(Proposal::from_json(cmds)).await;
        tokio::spawn(async move {
            let _permit = permit;
            let outcome = match submitted {
                Ok(rx) => match rx.await {
                    Ok(Ok(resp)) => Ok(resp.data),
                    Ok(Err(ClientWriteError::ForwardToLeader(f))) => Err(WriteError::ForwardToLeader(f.leader_node)),
                    Ok(Err(e)) => Err(WriteError::Unavailable(e.to_string())),
                    Err(_) => Err(WriteError::Unavailable("raft stopped".into())),
                },
                Err(e) => Err(WriteError::Unavailable(e.to_string())),
            };
            deliver(outcome, replies);
        });
    }
}

/// Hand each proposer its result; a missing result (never expected) is an error, not a hang.
fn deliver(outcome: Result<Vec<ApplyResult>, WriteError>, replies: Vec<oneshot::Sender<Result<ApplyResult, WriteError>>>) {
    match outcome {
        Ok(results) => {
            let mut results = results.into_iter();
            for r in replies {
                let _ = r.send(results.next().ok_or_else(|| WriteError::Unavailable("entry gave no result".into())));
            }
        }
        Err(e) => {
            for r in replies {
                let _ = r.send(Err(e.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Applied, StoreError};

    #[test]
    fn weight_counts_the_objects_a_command_writes() {
        assert_eq!(weight(&Op::KvPut { key: "k".into(), value: vec![] }), 1);
        assert_eq!(weight(&Op::DeleteTasks { ids: vec!["a".into(), "b".into()] }), 2);
        assert_eq!(weight(&Op::DeleteTasks { ids: vec![] }), 1);
    }

    #[tokio::test]
    async fn each_proposer_gets_its_own_result_or_the_shared_error() {
        let (a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        deliver(
            Ok(vec![Ok(Applied { index: 4, raft_id: None }), Err(StoreError::Conflict("x".into()))]),
            vec![a, b],
        );
        assert_eq!(ra.await.unwrap().unwrap(), Ok(Applied { index: 4, raft_id: None }));
        assert_eq!(rb.await.unwrap().unwrap(), Err(StoreError::Conflict("x".into())));
        let (a, ra) = oneshot::channel();
        let (b, rb) = oneshot::channel();
        deliver(Ok(vec![]), vec![a]);
        assert!(matches!(ra.await.unwrap(), Err(WriteError::Unavailable(_))));
        deliver(Err(WriteError::ForwardToLeader(None)), vec![b]);
        assert!(matches!(rb.await.unwrap(), Err(WriteError::ForwardToLeader(None))));
    }
}
