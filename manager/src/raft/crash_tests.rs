//! Crash points in the log store, the snapshot build and the snapshot install, each followed by a restart that
//! recovers; and a full disk, which the stores wait out (see [`super::space`]).
//!
//! Each case drives a Raft follower (node 2) through openraft's own API, the test playing the leader: what the
//! follower answered with success (an append, a vote, an installed snapshot) is acknowledged. A failpoint
//! ([`super::failpoint`]) then returns an I/O error or panics at one persistence step; everything is dropped as a
//! crash would drop it, and the directory is opened again. Asserted: the log and snapshot open (no false corruption
//! verdict), every acknowledged entry and vote is there, an entry that was not acknowledged is either absent or
//! exactly what was sent (never garbage), and the restarted follower takes the writes it missed and new ones.
//!
//! Nothing here loses the page cache, so what was written before a crash is read back; a crash part-way through a
//! write is the `wal::write::torn` point, which leaves half of the records in the file.

use super::log_store::LogStore;
use super::state_machine::StateMachine;
use super::{Member, Proposal, Raft, TypeConfig};
use crate::store::{ClusterState, Command, Op};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, CommittedLeaderId, Entry, EntryPayload, LogId, Membership, RaftLogReader, Snapshot, SnapshotMeta,
    StoredMembership, Vote,
};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A network that reaches nobody: the follower under test never calls out (ticks are off).
struct NoNet;

impl RaftNetworkFactory<TypeConfig> for NoNet {
    type Network = NoNet;
    async fn new_client(&mut self, _: u64, _: &Member) -> NoNet {
        NoNet
    }
}

fn unreachable<E: std::error::Error>() -> RPCError<u64, Member, E> {
    RPCError::Unreachable(Unreachable::new(&AnyError::error("no network in this test")))
}

impl RaftNetwork<TypeConfig> for NoNet {
    async fn append_entries(
        &mut self,
        _: AppendEntriesRequest<TypeConfig>,
        _: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        Err(unreachable())
    }
    async fn install_snapshot(
        &mut self,
        _: InstallSnapshotRequest<TypeConfig>,
        _: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, RPCError<u64, Member, RaftError<u64, InstallSnapshotError>>> {
        Err(unreachable())
    }
    async fn vote(
        &mut self,
        _: VoteRequest<u64>,
        _: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, Member, RaftError<u64>>> {
        Err(unreachable())
    }
}

/// How long one call to the follower may take before the test calls it hung (a write waiting for space, a core
/// that stopped): a liveness bound, never a measure.
const CALL: Duration = Duration::from_secs(5);

/// Longer than the leader's lease (`election_timeout_max` below), during which a follower refuses votes.
const LEASE: Duration = Duration::from_millis(200);

/// The follower under test, on a directory it can be restarted on.
struct Follower {
    raft: Raft,
    sm: StateMachine,
    space: Arc<super::space::Space>,
}

fn lid(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

/// The leader of `term` (node 1), as a committed vote.
fn leader(term: u64) -> Vote<u64> {
    Vote::new_committed(term, 1)
}

/// Entry `index` of `term`: the membership of nodes 1–3 at index 0 (openraft's first), else a put of `k<index>` =
/// `<value>`.
fn entry(term: u64, index: u64, value: &str) -> Entry<TypeConfig> {
    let payload = if index == 0 {
        let nodes: BTreeMap<u64, Member> =
            (1..=3).map(|i| (i, Member { node_id: format!("n{i}"), addr: format!("10.0.0.{i}:2377") })).collect();
        EntryPayload::Membership(Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes))
    } else {
        let op = Op::KvPut { key: format!("k{index}"), value: value.as_bytes().to_vec() };
        EntryPayload::Normal(Proposal::new(vec![Command { at: "t".into(), op }]))
    };
    Entry { log_id: lid(term, index), payload }
}

fn entries(term: u64, range: std::ops::RangeInclusive<u64>, value: &str) -> Vec<Entry<TypeConfig>> {
    range.map(|i| entry(term, i, value)).collect()
}

impl Follower {
    async fn start(dir: &Path) -> Follower {
        let log = LogStore::open(dir, None).expect("the log opens after the crash");
        let space = log.space();
        let sm = StateMachine::open(&dir.join("snapshot.json"), None).expect("the snapshot opens after the crash");
        let sm = sm.with_space(space.clone());
        log.follow_snapshots(sm.durable());
        let config = openraft::Config {
            enable_tick: false,
            enable_heartbeat: false,
            enable_elect: false,
            snapshot_policy: openraft::SnapshotPolicy::Never,
            max_in_snapshot_log_to_keep: 0,
            purge_batch_size: 1,
            // the leader's lease (a vote is refused while it holds) runs out quickly: the vote test campaigns
            heartbeat_interval: 10,
            election_timeout_min: 50,
            election_timeout_max: 60,
            ..Default::default()
        };
        let raft = Raft::new(2, Arc::new(config.validate().unwrap()), NoNet, log, sm.clone()).await.unwrap();
        Follower { raft, sm, space }
    }

    /// The leader's AppendEntries; `Ok(true)`: acknowledged.
    async fn append(&self, term: u64, prev: Option<LogId<u64>>, es: Vec<Entry<TypeConfig>>, commit: u64) -> bool {
        let req =
            AppendEntriesRequest { vote: leader(term), prev_log_id: prev, entries: es, leader_commit: Some(lid(term, commit)) };
        matches!(tokio::time::timeout(CALL, self.raft.append_entries(req)).await, Ok(Ok(AppendEntriesResponse::Success)))
    }

    async fn applied(&self, index: u64) -> ClusterState {
        self.raft.wait(Some(CALL)).applied_index_at_least(Some(index), "applied").await.expect("applied");
        (*self.sm.state()).clone()
    }

    /// Drop everything as a crash would: the core, its storage, the sync thread.
    async fn crash(self) {
        let _ = tokio::time::timeout(CALL, self.raft.shutdown()).await;
        drop(self.raft);
        drop(self.sm);
        // the storage goes with the core's task, which ends once it has seen the shutdown
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What the log on disk holds, read through openraft's storage API on a store opened afresh.
async fn on_disk(dir: &Path) -> (Option<Vote<u64>>, Vec<Entry<TypeConfig>>) {
    let mut log = LogStore::open(dir, None).expect("the log opens after the crash");
    (log.read_vote().await.unwrap(), log.try_get_log_entries(..).await.expect("every entry reads back"))
}

/// Every entry on disk is one that was sent for its index: `acked` (which must all be there) or one of `sent`.
fn check_log(got: &[Entry<TypeConfig>], acked: &[Entry<TypeConfig>], sent: &[Entry<TypeConfig>], point: &str) {
    for a in acked {
        assert!(got.contains(a), "{point}: acknowledged entry {} lost: {got:?}", a.log_id);
    }
    for g in got {
        assert!(acked.contains(g) || sent.contains(g), "{point}: entry {} on disk was never sent: {g:?}", g.log_id);
    }
    for w in got.windows(2) {
        assert_eq!(w[0].log_id.index + 1, w[1].log_id.index, "{point}: a hole in the log");
    }
}

/// A crash: the failpoint returns an I/O error (`return`) or panics there (`panic`).
#[derive(Clone, Copy, Debug)]
enum Crash {
    Error,
    Panic,
}

/// Arm `point` to crash; what fired is recorded in [`super::FIRED`].
fn arm(point: &'static str, how: Crash) {
    super::FIRED.lock().unwrap().clear();
    match how {
        Crash::Error => fail::cfg(point, "return").unwrap(),
        Crash::Panic => fail::cfg_callback(point, move || {
            super::fired(point);
            panic!("crash at {point} (injected)");
        })
        .unwrap(),
    }
}

fn fired(point: &str) -> bool {
    super::FIRED.lock().unwrap().iter().any(|p| p == point)
}

async fn wait_fired(point: &str) {
    for _ in 0..200 {
        if fired(point) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("failpoint {point} never fired");
}

/// Points on the way of an append (a segment roll included when `roll`).
const APPEND_POINTS: &[(&str, bool)] = &[
    ("wal::write::before", false),
    ("wal::write::torn", false),
    ("log_store::sync::before", false),
    ("log_store::sync::after", false),
    ("wal::segment::before_write", true),
    ("wal::segment::before_rename", true),
    ("wal::segment::after_rename", true),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_step_of_an_append_keeps_every_acknowledged_entry_and_the_log_takes_new_ones() {
    let _scenario = fail::FailScenario::setup();
    for &(point, roll) in APPEND_POINTS {
        for how in [Crash::Error, Crash::Panic] {
            let what = format!("{point} ({how:?})");
            let dir = tempfile::tempdir().unwrap();
            let f = Follower::start(dir.path()).await;
            let acked = entries(1, 0..=5, "a");
            assert!(f.append(1, None, acked.clone(), 3).await, "{what}: setup");
            if roll {
                fail::cfg("wal::roll_due", "return").unwrap();
            }
            arm(point, how);
            let sent = entries(1, 6..=8, "b");
            let took = f.append(1, Some(lid(1, 5)), sent.clone(), 5).await;
            wait_fired(point).await;
            fail::remove(point);
            fail::remove("wal::roll_due");
            assert!(!took, "{what}: acknowledged an append that crashed");
            f.crash().await;

            let (vote, got) = on_disk(dir.path()).await;
            assert_eq!(vote, Some(leader(1)), "{what}");
            check_log(&got, &acked, &sent, &what);
            assert!(!dir.path().join("raft.log").read_dir().unwrap().any(|e| {
                e.unwrap().path().extension().is_some_and(|x| x == "tmp")
            }), "{what}: a temporary segment left");

            // restarted: the leader sends again from what the follower has, and then more
            let f = Follower::start(dir.path()).await;
            let last = got.last().unwrap().log_id;
            let missing: Vec<_> = sent.iter().filter(|e| e.log_id.index > last.index).cloned().collect();
            assert!(f.append(1, Some(last), missing, 8).await, "{what}: the missed entries");
            let new = entry(1, 9, "c");
            assert!(f.append(1, Some(lid(1, 8)), vec![new.clone()], 9).await, "{what}: a new entry");
            let st = f.applied(9).await;
            for i in 2..=9 {
                assert!(st.kv.get(&format!("k{i}")).is_some(), "{what}: k{i} not applied");
            }
            f.crash().await;
            let later: Vec<_> = sent.iter().cloned().chain([new]).collect();
            check_log(&on_disk(dir.path()).await.1, &entries(1, 0..=5, "a"), &later, &what);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_truncating_a_conflicting_suffix_keeps_the_committed_prefix() {
    let _scenario = fail::FailScenario::setup();
    for point in ["wal::truncate::before_sync", "wal::truncate::after_sync"] {
        for how in [Crash::Error, Crash::Panic] {
            let what = format!("{point} ({how:?})");
            let dir = tempfile::tempdir().unwrap();
            let f = Follower::start(dir.path()).await;
            let old = entries(1, 0..=5, "old");
            assert!(f.append(1, None, old.clone(), 3).await, "{what}: setup");
            // the leader of term 2 has other entries from index 4 on: the follower truncates 4.. first
            arm(point, how);
            let new = entries(2, 4..=5, "new");
            let took = f.append(2, Some(lid(1, 3)), new.clone(), 3).await;
            wait_fired(point).await;
            fail::remove(point);
            assert!(!took, "{what}: acknowledged");
            f.crash().await;

            let (_, got) = on_disk(dir.path()).await;
            // 0..=3 were committed; 4 and 5 may be the old ones or gone, and never a mix that was never sent
            let sent: Vec<_> = old.iter().chain(&new).cloned().collect();
            check_log(&got, &old[..4], &sent, &what);
            let f = Follower::start(dir.path()).await;
            assert!(f.append(2, Some(lid(1, 3)), new.clone(), 5).await, "{what}: the new leader's entries");
            let st = f.applied(5).await;
            assert_eq!(st.kv.get("k5").map(|v| v.as_slice()), Some(&b"new"[..]), "{what}");
            f.crash().await;
            let (_, got) = on_disk(dir.path()).await;
            assert_eq!(got[4..], new[..], "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_saving_a_vote_keeps_the_granted_one() {
    let _scenario = fail::FailScenario::setup();
    for point in ["log_store::vote::before", "wal::meta::before_sync"] {
        for how in [Crash::Error, Crash::Panic] {
            let what = format!("{point} ({how:?})");
            let dir = tempfile::tempdir().unwrap();
            let f = Follower::start(dir.path()).await;
            let acked = entries(1, 0..=3, "a");
            assert!(f.append(1, None, acked.clone(), 3).await, "{what}: setup");
            // node 3 campaigns for term 2, once the leader's lease ran out
            tokio::time::sleep(LEASE).await;
            arm(point, how);
            let ask = VoteRequest::new(Vote::new(2, 3), Some(lid(1, 3)));
            let granted = tokio::time::timeout(CALL, f.raft.vote(ask.clone())).await;
            wait_fired(point).await;
            fail::remove(point);
            assert!(!matches!(granted, Ok(Ok(VoteResponse { vote_granted: true, .. }))), "{what}: granted");
            f.crash().await;

            let (vote, got) = on_disk(dir.path()).await;
            assert!(vote == Some(leader(1)) || vote == Some(Vote::new(2, 3)), "{what}: vote {vote:?}");
            check_log(&got, &acked, &[], &what);
            let f = Follower::start(dir.path()).await;
            // a restarted follower gives the leader of its vote a lease too
            tokio::time::sleep(LEASE).await;
            let again = tokio::time::timeout(CALL, f.raft.vote(ask)).await;
            assert!(matches!(again, Ok(Ok(VoteResponse { vote_granted: true, .. }))), "{what}: {again:?}");
            f.crash().await;
            assert_eq!(on_disk(dir.path()).await.0, Some(Vote::new(2, 3)), "{what}");
        }
    }
}

/// Entries 0..=6 (a segment each), committed, then a snapshot armed at `point`.
async fn snapshot_then_crash(dir: &Path, point: &'static str, how: Crash) -> Vec<Entry<TypeConfig>> {
    let f = Follower::start(dir).await;
    let acked = entries(1, 0..=6, "a");
    fail::cfg("wal::roll_due", "return").unwrap();
    for e in &acked {
        let prev = e.log_id.index.checked_sub(1).map(|i| lid(1, i));
        assert!(f.append(1, prev, vec![e.clone()], e.log_id.index).await, "setup of {point}");
    }
    fail::remove("wal::roll_due");
    f.applied(6).await;
    arm(point, how);
    f.raft.trigger().snapshot().await.unwrap();
    wait_fired(point).await;
    fail::remove(point);
    f.crash().await;
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_building_a_snapshot_or_purging_after_it_restarts_with_every_entry() {
    let _scenario = fail::FailScenario::setup();
    let points = [
        "snapshot::write::before_tmp",
        "snapshot::write::before_rename",
        "snapshot::write::after_rename",
        "wal::purge::before_delete",
        "wal::purge::after_one_delete",
    ];
    for point in points {
        for how in [Crash::Error, Crash::Panic] {
            let what = format!("{point} ({how:?})");
            let dir = tempfile::tempdir().unwrap();
            let acked = snapshot_then_crash(dir.path(), point, how).await;
            let (vote, got) = on_disk(dir.path()).await;
            assert_eq!(vote, Some(leader(1)), "{what}");
            // what is left of the log is a suffix of it (a purge may have gone part or all of the way)
            check_log(&got, &[], &acked, &what);
            assert!(got.last().is_none_or(|e| e.log_id == lid(1, 6)), "{what}");
            let f = Follower::start(dir.path()).await;
            assert!(!dir.path().join("snapshot.tmp").exists(), "{what}: a temporary snapshot left after the open");
            assert!(f.append(1, Some(lid(1, 6)), vec![entry(1, 7, "c")], 7).await, "{what}: a new entry");
            let st = f.applied(7).await;
            for i in 2..=7 {
                assert!(st.kv.get(&format!("k{i}")).is_some(), "{what}: k{i} lost");
            }
            f.crash().await;
        }
    }
}

/// A snapshot of entries 0..=9 of term 1 as a leader would send it.
fn leader_snapshot() -> Snapshot<TypeConfig> {
    let mut st = ClusterState::default();
    for e in entries(1, 1..=9, "s") {
        if let EntryPayload::Normal(p) = &e.payload {
            for c in p.commands() {
                st.apply(e.log_id.index, c).unwrap();
            }
        }
    }
    let EntryPayload::Membership(m) = entry(1, 0, "").payload else { unreachable!("entry 0 is the membership") };
    let meta = SnapshotMeta {
        last_log_id: Some(lid(1, 9)),
        last_membership: StoredMembership::new(Some(lid(1, 0)), m),
        snapshot_id: "leader-9".into(),
    };
    Snapshot { meta, snapshot: Box::new(Cursor::new(serde_json::to_vec(&st).unwrap())) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_while_installing_a_snapshot_restarts_on_the_old_state_or_the_new_one() {
    let _scenario = fail::FailScenario::setup();
    let points = [
        "snapshot::install::before",
        "snapshot::write::before_tmp",
        "snapshot::write::before_rename",
        "snapshot::write::after_rename",
        "snapshot::install::after_write",
    ];
    for point in points {
        for how in [Crash::Error, Crash::Panic] {
            let what = format!("{point} ({how:?})");
            let dir = tempfile::tempdir().unwrap();
            let f = Follower::start(dir.path()).await;
            let acked = entries(1, 0..=3, "a");
            assert!(f.append(1, None, acked.clone(), 3).await, "{what}: setup");
            arm(point, how);
            let installed = tokio::time::timeout(CALL, f.raft.install_full_snapshot(leader(1), leader_snapshot())).await;
            wait_fired(point).await;
            fail::remove(point);
            assert!(!matches!(installed, Ok(Ok(_))), "{what}: acknowledged");
            f.crash().await;

            // the snapshot file is the new one, whole, or none (there was none before); the acknowledged entries
            // are in the log unless that snapshot covers them
            let mut sm = StateMachine::open(&dir.path().join("snapshot.json"), None).expect("the snapshot opens");
            let (applied, _) = sm.applied_state().await.unwrap();
            assert!(applied.is_none() || applied == Some(lid(1, 9)), "{what}: {applied:?}");
            drop(sm);
            let (_, got) = on_disk(dir.path()).await;
            match applied {
                None => check_log(&got, &acked, &[], &what),
                Some(_) => check_log(&got, &[], &acked, &what),
            }

            let f = Follower::start(dir.path()).await;
            let again = tokio::time::timeout(CALL, f.raft.install_full_snapshot(leader(1), leader_snapshot())).await;
            assert!(matches!(again, Ok(Ok(_))), "{what}: installed again: {again:?}");
            assert!(f.append(1, Some(lid(1, 9)), vec![entry(1, 10, "c")], 10).await, "{what}: a new entry");
            let st = f.applied(10).await;
            assert_eq!(st.kv.get("k9").map(|v| v.as_slice()), Some(&b"s"[..]), "{what}");
            assert!(st.kv.get("k10").is_some(), "{what}");
            f.crash().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_appends_and_snapshots_until_space_returns_and_corrupts_nothing() {
    let _scenario = fail::FailScenario::setup();
    // a record refused part-way (cut off again), a segment that could not be made, a snapshot file
    let cases: [(&str, &str, bool); 4] = [
        ("wal::write::before", "return(enospc)", false),
        ("wal::write::enospc_after_part", "return", false),
        ("wal::segment::before_write", "return(enospc)", true),
        ("snapshot::write::before_tmp", "return(enospc)", false),
    ];
    for (point, action, roll) in cases {
        let dir = tempfile::tempdir().unwrap();
        let f = Follower::start(dir.path()).await;
        let acked = entries(1, 0..=5, "a");
        assert!(f.append(1, None, acked.clone(), 5).await, "{point}: setup");
        f.applied(5).await;
        if roll {
            fail::cfg("wal::roll_due", "return").unwrap();
        }
        super::FIRED.lock().unwrap().clear();
        fail::cfg(point, action).unwrap();
        let sent = entries(1, 6..=7, "b");
        let waiting = {
            let raft = f.raft.clone();
            let snapshot = point.starts_with("snapshot");
            let sent = sent.clone();
            tokio::spawn(async move {
                if snapshot {
                    raft.trigger().snapshot().await.unwrap();
                    return raft.wait(Some(Duration::from_secs(60))).snapshot(lid(1, 5), "built").await.is_ok();
                }
                let req = AppendEntriesRequest {
                    vote: leader(1),
                    prev_log_id: Some(lid(1, 5)),
                    entries: sent,
                    leader_commit: Some(lid(1, 7)),
                };
                matches!(raft.append_entries(req).await, Ok(AppendEntriesResponse::Success))
            })
        };
        wait_fired(point).await;
        let mut full = f.space.subscribe();
        tokio::time::timeout(CALL, full.wait_for(|f| *f)).await.expect("the manager says its disk is full").unwrap();
        // it waits rather than fails: still waiting a while later, nothing acknowledged
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiting.is_finished() && f.space.is_full(), "{point}: gave up on a full disk");
        fail::remove(point);
        fail::remove("wal::roll_due");
        let done = tokio::time::timeout(CALL, waiting).await.expect("the write goes through once there is room");
        assert!(done.unwrap(), "{point}: refused after space returned");
        assert!(!f.space.is_full(), "{point}");
        if !point.starts_with("snapshot") {
            assert_eq!(f.applied(7).await.kv.get("k7").map(|v| v.as_slice()), Some(&b"b"[..]), "{point}");
        }
        f.crash().await;
        let (_, got) = on_disk(dir.path()).await;
        if point.starts_with("snapshot") {
            assert!(StateMachine::open(&dir.path().join("snapshot.json"), None).unwrap().state().kv.get("k5").is_some());
        } else {
            let all: Vec<_> = acked.iter().chain(&sent).cloned().collect();
            assert_eq!(got, all, "{point}: the log after the full disk");
        }
    }
}
