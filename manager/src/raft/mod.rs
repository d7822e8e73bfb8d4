//! Raft for the cluster store, on openraft 0.9 (storage v2).
//!
//! Raft node IDs are `u64`s handed out by the store, separate from node IDs; a member's [`Member`] info carries the
//! node ID and the QUIC address. The log is an append-only segment log ([`log_store`], [`wal`]), fsynced before an
//! append is acknowledged and checksummed per record; the state machine is in memory and snapshotted to a checksummed file ([`state_machine`]).
//! Messages to other managers go over the QUIC transport ([`network`]).
//!
//! Store commands travel as JSON inside the bincode frames, because the Docker shapes hold free-form JSON values that
//! bincode cannot decode (see [`Proposal`]). One entry carries a batch of commands: openraft 0.9 appends and fsyncs
//! every client write as its own entry, one after the other, so concurrent proposals are grouped into one entry
//! before they reach it (group commit, see `runtime::batch`).

pub mod force;
pub mod log_store;
pub mod network;
pub mod space;
pub mod state_machine;
pub mod wal;

/// A named crash point at a persistence step, for the storage tests (the `fail` crate, configured with
/// `fail::cfg(name, "return")`, `"return(enospc)"` or `"panic"`; see docs/design/faults.md). `$map` turns the
/// injected `std::io::Error` into the function's error. Compiled into this crate's unit tests only: `fail` is a
/// dev-dependency, so no other build (the skep binary the multi-host tests run included) has a failpoint.
macro_rules! failpoint {
    ($name:literal, $map:expr) => {
        #[cfg(test)]
        #[allow(clippy::result_large_err)] // openraft's StorageError, in the functions that return it anyway
        {
            fail::fail_point!($name, |arg: Option<String>| Err(($map)($crate::raft::injected($name, arg.as_deref()))));
        }
    };
}
pub(crate) use failpoint;

/// Failpoints that fired, in order, so that a test knows its crash happened (see `crash_tests`).
#[cfg(test)]
pub(crate) static FIRED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// Record that failpoint `name` fired.
#[cfg(test)]
pub(crate) fn fired(name: &str) {
    FIRED.lock().unwrap_or_else(|p| p.into_inner()).push(name.to_string());
}

/// The error a [`failpoint`] returns: a full disk for `return(enospc)`, any other I/O error otherwise.
#[cfg(test)]
pub(crate) fn injected(name: &str, arg: Option<&str>) -> std::io::Error {
    fired(name);
    match arg {
        Some("enospc") => std::io::Error::new(std::io::ErrorKind::StorageFull, format!("{name}: no space (injected)")),
        _ => std::io::Error::other(format!("{name}: injected failure")),
    }
}

/// A Raft log entry's ID (term, leader, index), as backups and snapshots record it.
pub use openraft::LogId;

use crate::store::{ApplyResult, Command};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::io::Cursor;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A Raft member: which node it is and where its QUIC endpoint listens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Node ID.
    pub node_id: String,
    /// `IP:port`.
    pub addr: String,
}

impl fmt::Display for Member {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.node_id, self.addr)
    }
}

/// Largest JSON of one Raft entry. An AppendEntries frame carries entries to a follower within the transport's
/// 16 MiB frame limit (`skep_transport::codec::DEFAULT_MAX_FRAME`); an entry past this bound could never reach one
/// and would be retried forever, so a command this large is refused at proposal.
pub const MAX_ENTRY_BYTES: usize = 8 * 1024 * 1024;

/// The size entries aim at: batches of proposals and chunks of tasks stop short of it, so only one command larger
/// than this (a spec near the API's 1 MiB bound) makes a larger entry. openraft gives each AppendEntries one heartbeat
/// interval to reach a follower, be decoded and fsynced there; multi-MiB entries missed it on a busy host, and a
/// missed AppendEntries is sent again whole, so replication to that follower never caught up.
pub const TARGET_ENTRY_BYTES: usize = 1024 * 1024;

/// Deepest JSON nesting of one command. Every manager reads entries with serde_json, whose recursion limit is 128;
/// the proposal's list adds one level. A command past this is refused at proposal rather than written into a log
/// that no manager (the leader after a restart included) could read back.
pub const MAX_COMMAND_DEPTH: usize = 100;

/// Why a command cannot go into the log.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Its JSON is larger than [`MAX_ENTRY_BYTES`].
    #[error("the change is too large to replicate: {bytes} bytes, at most {MAX_ENTRY_BYTES}")]
    TooLarge {
        /// Its size.
        bytes: usize,
    },
    /// Its JSON nests deeper than [`MAX_COMMAND_DEPTH`].
    #[error("the change nests deeper than {MAX_COMMAND_DEPTH} levels and could not be read back")]
    TooDeep,
    /// It cannot be encoded at all.
    #[error("the change cannot be encoded: {0}")]
    Encode(String),
}

/// The deepest nesting of arrays and objects in JSON text (see `skep_api::docker::decode::json_depth`).
pub use skep_api::docker::decode::json_depth;

/// One command's JSON, checked against the bounds of an entry.
pub fn command_json(cmd: &Command) -> Result<Vec<u8>, EntryError> {
    let json = serde_json::to_vec(cmd).map_err(|e| EntryError::Encode(e.to_string()))?;
    if json.len() > MAX_ENTRY_BYTES {
        return Err(EntryError::TooLarge { bytes: json.len() });
    }
    if json_depth(&json) > MAX_COMMAND_DEPTH {
        return Err(EntryError::TooDeep);
    }
    Ok(json)
}

/// The store commands of one Raft entry, applied in order, as JSON bytes (see the module docs).
///
/// An entry is encoded for the log and for every follower, and read back for replication and apply; the commands sit
/// behind an `Arc` and their JSON is made once and kept (a decoded proposal keeps the bytes it came from), so none of
/// that repeats the JSON work.
#[derive(Clone, Debug)]
pub struct Proposal {
    cmds: Arc<Vec<Command>>,
    json: Arc<OnceLock<Vec<u8>>>,
}

impl Proposal {
    /// The entry for `cmds`.
    pub fn new(cmds: Vec<Command>) -> Proposal {
        Proposal { cmds: Arc::new(cmds), json: Arc::new(OnceLock::new()) }
    }

    /// The entry for commands whose JSON is already made ([`command_json`]): the entry's JSON is their list.
    pub fn from_json(cmds: Vec<(Command, Vec<u8>)>) -> Proposal {
        let mut json = Vec::with_capacity(cmds.iter().map(|(_, j)| j.len() + 1).sum::<usize>() + 2);
        json.push(b'[');
        let mut list = Vec::with_capacity(cmds.len());
        for (i, (c, j)) in cmds.into_iter().enumerate() {
            if i > 0 {
                json.push(b',');
            }
            json.extend_from_slice(&j);
            list.push(c);
        }
        json.push(b']');
        Proposal { cmds: Arc::new(list), json: Arc::new(OnceLock::from(json)) }
    }

    /// The commands, in order.
    pub fn commands(&self) -> &[Command] {
        &self.cmds
    }

    /// The JSON of the commands, made on first use.
    fn json(&self) -> Result<&[u8], serde_json::Error> {
        if let Some(j) = self.json.get() {
            return Ok(j);
        }
        let j = serde_json::to_vec(&*self.cmds)?;
        Ok(self.json.get_or_init(|| j))
    }
}

impl PartialEq for Proposal {
    fn eq(&self, other: &Self) -> bool {
        self.cmds == other.cmds
    }
}

impl Serialize for Proposal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.json().map_err(serde::ser::Error::custom)?)
    }
}

impl<'de> Deserialize<'de> for Proposal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = skep_api::wire::as_bytes::deserialize(d)?;
        let cmds: Vec<Command> = serde_json::from_slice(&bytes).map_err(serde::de::Error::custom)?;
        Ok(Proposal { cmds: Arc::new(cmds), json: Arc::new(OnceLock::from(bytes)) })
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} command(s)", self.cmds.len())
    }
}

/// What applying one entry gives: a result per command of its [`Proposal`] (one for a blank or membership entry).
pub type EntryResult = Vec<ApplyResult>;

openraft::declare_raft_types!(
    /// skep's Raft types.
    pub TypeConfig:
        D = Proposal,
        R = EntryResult,
        NodeId = u64,
        Node = Member,
);

/// The openraft handle.
pub type Raft = openraft::Raft<TypeConfig>;

/// Timing derived from the swarm spec's Raft settings.
#[derive(Clone, Copy, Debug)]
pub struct RaftTiming {
    /// Leader heartbeat.
    pub heartbeat: Duration,
    /// Lower bound of the randomised election timeout.
    pub election_min: Duration,
    /// Upper bound.
    pub election_max: Duration,
    /// Log entries between snapshots.
    pub snapshot_interval: u64,
    /// Entries kept after a snapshot for slow followers.
    pub keep_for_followers: u64,
}

impl Default for RaftTiming {
    fn default() -> Self {
        use skep_api::docker::defaults::*;
        RaftTiming::from_ticks(HEARTBEAT_TICK, ELECTION_TICK, SNAPSHOT_INTERVAL, LOG_ENTRIES_FOR_SLOW_FOLLOWERS)
    }
}

impl RaftTiming {
    /// skep ticks are 100 ms; the leader heartbeats every `HeartbeatTick` × 250 ms, because openraft 0.9 uses the
    /// heartbeat interval as the hard deadline of every AppendEntries and of the leadership confirmation behind a
    /// linearizable read (follower fsync and round trip included), and 100 ms is too tight on a busy host.
    /// openraft makes a follower wait for the leader's lease (`election_timeout_max`) plus its own election timeout
    /// (random in [min, max]) after the last heartbeat before it campaigns. With min = 35% and max = 50% of
    /// ElectionTick, the default ElectionTick 10 (1 s) starts an election 0.85–1.0 s after the leader's last
    /// heartbeat: openraft checks that only on its tick (every 1.5 heartbeats, which also paces the heartbeats: 375
    /// ms), so the manager checks it every 20 ms as well (`runtime::election`).
    pub fn from_ticks(heartbeat_tick: i64, election_tick: i64, snapshot_interval: u64, keep: u64) -> RaftTiming {
        let tick = skep_api::docker::defaults::RAFT_TICK_MS;
        let hb = heartbeat_tick.clamp(1, 100) as u64 * 250;
        let el = (election_tick.clamp(2, 1000) as u64 * tick).max(hb * 4);
        RaftTiming {
            heartbeat: Duration::from_millis(hb),
            election_min: Duration::from_millis((el * 35 / 100).max(hb + 50)),
            election_max: Duration::from_millis((el / 2).max(hb * 2)),
            snapshot_interval: snapshot_interval.max(100),
            keep_for_followers: keep,
        }
    }

    /// The openraft configuration.
    pub fn config(&self, cluster_name: &str) -> openraft::Config {
        openraft::Config {
            cluster_name: cluster_name.to_string(),
            heartbeat_interval: self.heartbeat.as_millis() as u64,
            election_timeout_min: self.election_min.as_millis() as u64,
            election_timeout_max: self.election_max.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_interval),
            max_in_snapshot_log_to_keep: self.keep_for_followers,
            install_snapshot_timeout: 10_000,
            // small AppendEntries: each must reach a follower and be fsynced within one heartbeat interval
            max_payload_entries: 64,
            // a leader that hears from no quorum for this long stops acting as leader
            enable_heartbeat: true,
            // elections start in `runtime::election`, after a pre-vote (`runtime::prevote`): openraft 0.9 has none
            enable_elect: false,
            ..Default::default()
        }
    }
}

/// Encode a value for the wire (bincode, standard config).
pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, bincode::error::EncodeError> {
    bincode::serde::encode_to_vec(v, bincode::config::standard())
}

/// Decode a value from the wire with a byte limit.
pub fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, bincode::error::DecodeError> {
    let cfg = bincode::config::standard().with_limit::<{ skep_api::wire::MAX_FRAME }>();
    let (v, used) = bincode::serde::decode_from_slice(b, cfg)?;
    if used != b.len() {
        return Err(bincode::error::DecodeError::OtherString(format!("{} trailing bytes", b.len() - used)));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Op;

    #[test]
    fn proposals_round_trip_through_bincode_even_with_free_form_json() {
        let mut spec = skep_api::docker::SwarmSpec::default().with_defaults();
        spec.task_defaults.log_driver = Some(skep_api::docker::Driver { name: "json-file".into(), ..Default::default() });
        spec.ca_config.external_cas = Some(serde_json::json!([{"Protocol": "cfssl", "URL": "https://ca"}]));
        let p = Proposal::new(vec![
            Command {
                at: "t".into(),
                op: Op::UpdateCluster {
                    version: 3,
                    spec: Box::new(spec),
                    tokens: Default::default(),
                    unlock_key: String::new(),
                    root_ca: None,
                },
            },
            Command { at: "u".into(), op: Op::KvPut { key: "k".into(), value: vec![1, 2] } },
        ]);
        let b = encode(&p).unwrap();
        let back: Proposal = decode(&b).unwrap();
        assert_eq!(back, p);
        // a decoded proposal re-encodes to the same bytes (its JSON is kept, not made again)
        assert_eq!(encode(&back).unwrap(), b);
        assert!(decode::<Proposal>(&b[..b.len() - 1]).is_err());
        let mut extra = b.clone();
        extra.push(0);
        assert!(decode::<Proposal>(&extra).is_err());
    }

    #[test]
    fn default_timing_fails_over_within_a_second() {
        let t = RaftTiming::default();
        assert_eq!(t.heartbeat, Duration::from_millis(250));
        assert_eq!(t.election_min, Duration::from_millis(350));
        assert_eq!(t.election_max, Duration::from_millis(500));
        let c = t.config("x");
        assert!(c.validate().is_ok());
    }
}

#[cfg(test)]
mod crash_tests;

#[cfg(test)]
mod suite {
    //! openraft's storage conformance suite, run against our segment log store and snapshotting state machine.
    use super::log_store::LogStore;
    use super::state_machine::StateMachine;
    use super::TypeConfig;
    use openraft::testing::{StoreBuilder, Suite};
    use openraft::{AnyError, StorageError, StorageIOError};

    /// Stores encrypted with a data key (as managers run them) or plaintext (as an older skep wrote them).
    struct Builder {
        encrypted: bool,
    }

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for Builder {
        async fn build(&self) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
            let io = |e: &dyn std::fmt::Display| StorageIOError::write(AnyError::error(e.to_string()));
            let dir = tempfile::tempdir().map_err(|e| io(&e))?;
            let dek = if self.encrypted { Some(skep_pki::SecretKey::generate().map_err(|e| io(&e))?) } else { None };
            let log = LogStore::open(dir.path(), dek.clone()).map_err(|e| io(&e))?;
            let sm = StateMachine::open(&dir.path().join("snapshot"), dek).map_err(|e| io(&e))?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    #[allow(clippy::result_large_err)] // the suite's own error type
    fn log_store_and_state_machine_pass_the_openraft_suite() -> Result<(), StorageError<u64>> {
        Suite::test_all(Builder { encrypted: true })?;
        Suite::test_all(Builder { encrypted: false })
    }
}
