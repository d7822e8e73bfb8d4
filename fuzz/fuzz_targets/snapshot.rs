//! A snapshot as a follower installs it: the JSON of the whole store (`ClusterState`), from a leader or a file.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skep_manager::store::ClusterState;

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<ClusterState>(data);
});
