//! Requests that are not views: a crawler's, and a page the browser fetches ahead of
//! time. Both are served the page's decisions, and neither is counted as an exposure.

use micromoment::http::{context, RequestParts};

const NOW: i64 = 1_795_000_000;

const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// The number of decisions and of exposures for a page request with these headers.
#[track_caller]
fn check(user_agent: &str, purpose: Option<&str>, expected_exposures: usize) {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let ctx = context(&RequestParts {
        path: "/",
        user_agent: Some(user_agent),
        purpose,
        ..RequestParts::default()
    });
    let decision = crate::decide(
        &bundle,
        crate::Ask {
            state: None,
            visitor: [7; 16],
            context: &ctx,
            now: NOW,
            slots: &["hero", "sidebar"],
        },
    );
    assert_eq!(decision.decisions.len(), 2, "served either way");
    assert_eq!(
        decision.exposures.len(),
        expected_exposures,
        "{user_agent} with purpose {purpose:?}"
    );
}

#[test]
fn only_views_are_counted() {
    check(CHROME, None, 2);
    check(GOOGLEBOT, None, 0);
    for purpose in ["prefetch", "prefetch;prerender", "preview"] {
        check(CHROME, Some(purpose), 0);
    }
    // A purpose header that says something else is a view.
    check(CHROME, Some("navigate"), 2);
}
