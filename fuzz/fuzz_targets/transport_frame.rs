//! Transport frames: every node decodes what any peer that reached its port sends (`skep_transport::codec::decode`,
//! header check and bincode with a byte limit) as a request, and what a manager answers as a response. Nothing a peer
//! sends may panic the decoder or make it allocate without bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skep_api::wire::{Request, Response};
use skep_transport::codec::{decode, DEFAULT_MAX_FRAME};

fuzz_target!(|data: &[u8]| {
    let _ = decode::<Request>(data, DEFAULT_MAX_FRAME);
    let _ = decode::<Response>(data, DEFAULT_MAX_FRAME);
});
