//! Request bodies of the Docker API as the daemon decodes them (`skep_api::docker::decode::from_slice`: Go's
//! case-insensitive keys, null as the zero value, a depth bound), then the managers' validation of what decoded.
//! The first byte picks the body's type, the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skep_api::docker::decode::from_slice;
use skep_api::docker::{NetworkCreateRequest, NodeSpec, SecretSpec, ServiceSpec, SwarmSpec};
use skep_manager::control;

fuzz_target!(|data: &[u8]| {
    let Some((kind, body)) = data.split_first() else { return };
    match kind % 5 {
        0 => {
            if let Ok(spec) = from_slice::<ServiceSpec>(body) {
                let _ = control::services::validate_spec(spec);
            }
        }
        1 => {
            if let Ok(spec) = from_slice::<SwarmSpec>(body) {
                let _ = control::validate_spec(spec);
            }
        }
        2 => {
            let _ = from_slice::<NodeSpec>(body);
        }
        3 => {
            let _ = from_slice::<SecretSpec>(body);
        }
        _ => {
            let _ = from_slice::<NetworkCreateRequest>(body);
        }
    }
});
