//! Arbitrary bytes as the body of an OFREP evaluation (`POST /ofrep/v1/evaluate/flags`,
//! anyone can send one), read into a context as the Worker reads it: nothing may panic,
//! an accepted context stays within the bounds a header-made one has, and reading is a
//! function of the bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::context::Context;
use micromoment::http::MAX_HEADER;
use micromoment::ofrep::{self, Endpoint};

fuzz_target!(|data: &[u8]| {
    for endpoint in [Endpoint::Bulk, Endpoint::Single] {
        let mut first = Context::default();
        first.consent.personalization = Some(false);
        let read = ofrep::apply(data, &mut first, endpoint, true);
        let mut second = Context::default();
        second.consent.personalization = Some(false);
        assert_eq!(read, ofrep::apply(data, &mut second, endpoint, true));
        assert_eq!(first, second);
        if read.is_ok() {
            // A refusal of personalization is never granted back.
            assert_eq!(first.consent.personalization, Some(false));
            for text in [&first.geo.city, &first.geo.country, &first.page.path, &first.app.version, &first.event] {
                assert!(text.as_ref().is_none_or(|t| t.len() <= MAX_HEADER));
            }
            assert!(first.page.query.len() <= 64);
            if endpoint == Endpoint::Single {
                assert_eq!(first.event, None);
            }
        }
    }
});
