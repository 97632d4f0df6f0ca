//! Arbitrary bytes as a `Cookie` header, through the cookie parser and the token
//! verifier: nothing may panic, and whatever verifies must re-sign and verify again.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use micromoment::token::{self, Keys};

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        Keys::from_json(
            r#"{"current":"k2","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","k2":"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"}}"#,
        )
        .expect("fuzz keys load")
    })
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let now = 1_736_935_200;
    let header = String::from_utf8_lossy(data);
    for value in token::cookie_values(&header, token::COOKIE_NAME) {
        let _ = token::verify(value, keys, now);
    }
    if let Ok(state) = token::verify_cookie(&header, keys, now) {
        let again = token::sign(&state, keys).expect("a verified state signs");
        let _ = token::verify(&again, keys, now).expect("a re-signed state verifies");
    }
    let _ = token::verify_bytes(data, keys, now);
});
