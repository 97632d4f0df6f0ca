//! Arbitrary request parts (the headers and URL pieces a Worker reads), through the
//! request-to-context path and a decision, as the edge runs it: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::http::{self, RequestParts};
use micromoment::{Budget, Bundle};

fn bundle() -> &'static Bundle {
    static BUNDLE: std::sync::OnceLock<Bundle> = std::sync::OnceLock::new();
    BUNDLE.get_or_init(|| {
        let bytes = include_bytes!("../../fixtures/automotive.mmb");
        Bundle::from_mmb(bytes, None, &Budget::default()).expect("fixture").0
    })
}

fuzz_target!(|data: &[u8]| {
    // Fields separated by newlines: path, host, query string, user agent, client hint
    // mobile, client hint platform, referer, accept-language, sec-gpc, consent cookie,
    // app version, time zone.
    let text = String::from_utf8_lossy(data);
    let mut f = text.split('\n');
    let mut next = || f.next().filter(|s| !s.is_empty());
    let path = next().unwrap_or("/");
    let host = next();
    let query: Vec<(String, String)> = next()
        .map(|q| {
            q.split('&')
                .take(128)
                .map(|pair| match pair.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (pair.to_owned(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default();
    let user_agent = next();
    let ch_mobile = next();
    let ch_platform = next();
    let referer = next();
    let accept_language = next();
    let sec_gpc = next();
    let consent_cookie = next();
    let app_version = next();
    let timezone = next();
    let mut geo = micromoment::context::Geo::default();
    geo.timezone = timezone.map(str::to_owned);
    let parts = RequestParts {
        api: path.starts_with("/v1/"),
        path,
        host,
        query: &query,
        user_agent,
        ch_mobile,
        ch_platform,
        referer,
        accept_language,
        sec_gpc,
        consent_cookie,
        app_token: app_version.is_some(),
        app_version,
        geo,
        ..RequestParts::default()
    };
    let ctx = http::context(&parts);
    let slots = bundle().all_slots();
    let _ = micromoment::decide(bundle(), &micromoment::Visit { prior: None, new_visitor: [3; 16], context: &ctx, now: 1_790_000_000, explain: true, returning: true, feeds: None }, &slots);
});
