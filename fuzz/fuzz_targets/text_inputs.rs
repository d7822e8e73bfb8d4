//! The short texts a client hands the API or the CLI: `filters=` JSON, placement constraints, join tokens, image
//! references, timestamps (`since`/`until`). The first byte picks the parser, the rest is the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skep_api::docker::reference::Reference;
use skep_api::filters::Filters;
use skep_manager::scheduler::check_constraints;
use skep_pki::token::JoinToken;

fuzz_target!(|data: &[u8]| {
    let Some((kind, rest)) = data.split_first() else { return };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    match kind % 5 {
        0 => {
            let _ = Filters::parse(text);
        }
        1 => {
            let constraints: Vec<String> = text.split('\n').map(str::to_owned).collect();
            let _ = check_constraints(&constraints);
        }
        2 => {
            if let Ok(t) = JoinToken::parse(text) {
                assert_eq!(t.to_string(), text, "a token parses only from its own text");
            }
        }
        3 => {
            let _ = Reference::parse(text);
        }
        _ => {
            let _ = skep_api::time::parse(text);
        }
    }
});
