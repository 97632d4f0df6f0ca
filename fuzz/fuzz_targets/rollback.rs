//! Arbitrary bytes as a rollback record from KV (`rollback:<hash>`), checked as the edge
//! checks one, with and without a public key. Nothing may panic; a record that passes
//! names exactly the bundle asked about.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::bundle::{keygen, public_key_of, RollbackRecord};

fuzz_target!(|data: &[u8]| {
    let key = keygen([5; 32]);
    let public = public_key_of(&key.public_base64()).expect("a key");
    for public in [None, Some(&public)] {
        if let Ok(record) = RollbackRecord::check(data, ("acme", 7, "ab"), 9, public) {
            assert_eq!((record.id.as_str(), record.version, record.hash.as_str()), ("acme", 7, "ab"));
        }
    }
    // A record signed here always verifies for its bundle.
    let text = String::from_utf8_lossy(data);
    let signed = RollbackRecord::new(&text, 7, "ab", 9, 0, Some(&key)).to_json();
    let public = public_key_of(&key.public_base64()).expect("a key");
    assert!(RollbackRecord::check(signed.as_bytes(), (&text, 7, "ab"), 9, Some(&public)).is_ok() || signed.len() > micromoment::bundle::MAX_ROLLBACK_RECORD);
});
