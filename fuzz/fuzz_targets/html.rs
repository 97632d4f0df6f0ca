//! Arbitrary bytes as an origin page, through the page personalizer the proxy and the
//! npm package use: it must give a page or an error, never panic; the output of a
//! personalized page holds at most 64 filled slot elements.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::session::{self, Entropy, Request, Visitor};
use micromoment::{Budget, Bundle, Context};

fn bundle() -> &'static Bundle {
    static BUNDLE: std::sync::OnceLock<Bundle> = std::sync::OnceLock::new();
    BUNDLE.get_or_init(|| {
        let bytes = include_bytes!("../../fixtures/automotive.mmb");
        Bundle::from_mmb(bytes, None, &Budget::default()).expect("fixture").0
    })
}

fuzz_target!(|page: &[u8]| {
    let mut ctx = Context::default();
    ctx.geo.city = Some("Lyon<script>".into());
    let request = Request::new(Visitor::New, &ctx, 1_790_000_000, Entropy::Fixed([7; 16]));
    if let Ok(Some(filled)) = session::personalize(bundle(), None, &request, page) {
        let tags = filled.html.windows(16).filter(|w| w == b"data-mm-content=").count();
        assert!(tags <= session::MAX_FILLED_ELEMENTS + page.windows(16).filter(|w| w == b"data-mm-content=").count());
    }
});
