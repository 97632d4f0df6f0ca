//! Arbitrary text as authoring JSON: compiling must give a bundle or diagnostics, never
//! panic; a bundle that compiles must frame, load back equal, and decide.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::{Budget, Bundle, Context};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(bundle) = micromoment::bundle::compile(text, Budget::default()) else { return };
    let bytes = bundle.to_mmb(None).expect("a compiled bundle encodes");
    let (loaded, _) = Bundle::from_mmb(&bytes, None, &Budget::default()).expect("and loads back");
    assert_eq!(loaded, bundle);
    let slots = bundle.all_slots();
    let _ = micromoment::decide(&bundle, &micromoment::Visit { prior: None, new_visitor: [2; 16], context: &Context::default(), now: 1_790_000_000, explain: true, returning: true, feeds: None }, &slots);
});
