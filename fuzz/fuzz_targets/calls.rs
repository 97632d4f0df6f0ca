//! Arbitrary bytes as the body of an API call: a device's `POST /v1/events` (anyone can
//! send one) and every backend route (behind the bearer token, but read twice: by the
//! Worker, then by the profile's object). Nothing may panic; a call that reads reads the
//! same the second time (the object's reading is the Worker's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::calls::{self, Method};

const ROUTES: [&str; 6] = ["", "events", "decide", "links", "links/000102030405060708090a0b0c0d0e0f", "links/x"];

fuzz_target!(|data: &[u8]| {
    if let Ok(events) = calls::device_events(data) {
        assert!(events.len() <= calls::MAX_EVENTS);
        assert!(events.iter().all(|e| !e.name.is_empty() && e.name.len() <= calls::MAX_EVENT_NAME));
    }
    for method in [Method::Get, Method::Post, Method::Delete, Method::Other] {
        for route in ROUTES {
            let first = calls::backend_call(method, route, data);
            assert_eq!(first, calls::backend_call(method, route, data));
        }
    }
    let _ = calls::idempotency_key(Some(String::from_utf8_lossy(data).into_owned()));
});
