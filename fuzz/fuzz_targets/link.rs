//! Arbitrary bytes as an identity link: as the `mm_link` text (through the envelope),
//! and as a link *payload* signed with a key the verifier knows (`mm-link-v1`), so every
//! input passes the MAC and reaches the decoder. Nothing may panic; a link that verifies
//! re-signs to one that verifies to the same link.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use micromoment::token::{IdentityLink, Keys};
use sha2::Sha256;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

fn keys() -> &'static Keys {
    static KEYS: std::sync::OnceLock<Keys> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        Keys::from_json(&format!(r#"{{"current":"k1","keys":{{"k1":"{KEY}"}}}}"#)).expect("keys")
    })
}

/// the link of docs/profiles.md, from its sentence: `l1.<kid>.<payload>.<tag>`, HMAC-SHA256 with
/// the domain bytes `mm-link-v1`.
fn seal(payload: &[u8]) -> String {
    let key = URL_SAFE_NO_PAD.decode(KEY).expect("key");
    let text = URL_SAFE_NO_PAD.encode(payload);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("hmac");
    mac.update(b"mm-link-v1\0k1\0");
    mac.update(text.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("l1.k1.{text}.{tag}")
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    let sealed = seal(data);
    let as_text = String::from_utf8_lossy(data);
    for text in [sealed.as_str(), &*as_text] {
        for now in [0, 1_790_000_000, i64::MAX / 2] {
            if let Ok(link) = IdentityLink::verify(text, keys, now) {
                let again = link.sign(keys);
                assert_eq!(IdentityLink::verify(&again, keys, now).as_ref(), Ok(&link));
            }
        }
    }
});
