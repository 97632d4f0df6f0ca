//! Arbitrary bytes as a `.mmb`: loading must refuse or accept, never panic, and an
//! accepted bundle must decide for any slot without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::{Budget, Bundle, Context};

fuzz_target!(|data: &[u8]| {
    if let Ok((bundle, _)) = Bundle::from_mmb(data, None, &Budget::default()) {
        let slots = bundle.all_slots();
        let _ = micromoment::decide(&bundle, &micromoment::Visit { prior: None, new_visitor: [1; 16], context: &Context::default(), feeds: None, now: 1_790_000_000, explain: true, returning: true }, &slots);
    }
});
