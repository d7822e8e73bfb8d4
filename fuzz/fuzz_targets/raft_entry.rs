//! Raft messages as a manager decodes them from a peer (`skep_manager::raft::decode`, bincode with a byte limit):
//! AppendEntries with their entries (each entry's proposal is JSON commands inside), votes and snapshot chunks.
//! A decoded AppendEntries is encoded again and must decode to the same entries: what a follower writes to its log
//! is what it read.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use skep_manager::raft::{decode, encode, TypeConfig};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = decode::<AppendEntriesRequest<TypeConfig>>(data) {
        let again = encode(&req).expect("a decoded request encodes");
        let back: AppendEntriesRequest<TypeConfig> = decode(&again).expect("an encoded request decodes");
        assert_eq!(back.entries, req.entries);
    }
    let _ = decode::<VoteRequest<u64>>(data);
    let _ = decode::<InstallSnapshotRequest<TypeConfig>>(data);
});
