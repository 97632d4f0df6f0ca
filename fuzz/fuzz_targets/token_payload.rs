//! Arbitrary bytes as a token *payload*, signed with a key the verifier knows, so every
//! input passes the MAC and reaches the wire decoder: nothing may panic, a payload that
//! decodes must give a state that re-signs and verifies to the same state. The first
//! byte picks the version: even `v1` (unlinked), odd `v2` (a linked device's).
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use micromoment::token::{self, Keys};
use sha2::Sha256;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        Keys::from_json(&format!(r#"{{"current":"k1","keys":{{"k1":"{KEY}"}}}}"#)).expect("keys")
    })
}

/// The token docs/api.md, "The journey token" describes, built from its sentence: HMAC-SHA256 over
/// `mm-v1 \0 kid \0 payload-text` (`mm-v2` for version 2).
fn seal(version: &str, payload: &[u8]) -> String {
    let key = URL_SAFE_NO_PAD.decode(KEY).expect("key");
    let text = URL_SAFE_NO_PAD.encode(payload);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("hmac");
    mac.update(format!("mm-{version}\0k1\0").as_bytes());
    mac.update(text.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{version}.k1.{text}.{tag}")
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let keys = keys();
    let text = seal(if pick % 2 == 0 { "v1" } else { "v2" }, payload);
    // Far in the past and the future: the clock checks come after the decoder.
    for now in [0, 1_790_000_000, i64::MAX / 2] {
        if let Ok(state) = token::verify(&text, keys, now) {
            let again = token::sign(&state, keys).expect("a decoded state signs");
            let back = token::verify(&again, keys, now).expect("and verifies");
            assert_eq!(back.visitor, state.visitor);
            assert_eq!(back.link, state.link);
        }
    }
});
