//! Rollback records (docs/api.md, "No accidental downgrade"): a record names exactly one
//! bundle and, for an edge with `BUNDLE_PUBKEY`, is signed by the bundle-signing key.

use micromoment::bundle::{keygen, public_key_of, RollbackRecord, MAX_ROLLBACK_RECORD};

#[test]
fn a_signed_record_verifies_for_its_bundle_only() {
    let key = keygen([9; 32]);
    let public = public_key_of(&key.public_base64()).expect("a key");
    let record =
        RollbackRecord::new("acme-autos", 7, "ab12", 9, 1_796_000_000, Some(&key)).to_json();
    let ok = RollbackRecord::check(
        record.as_bytes(),
        ("acme-autos", 7, "ab12"),
        9,
        Some(&public),
    );
    assert_eq!(ok.expect("verifies").version, 7);
    for (id, version, hash) in [
        ("acme-shop", 7, "ab12"),
        ("acme-autos", 6, "ab12"),
        ("acme-autos", 7, "cd34"),
    ] {
        let why = RollbackRecord::check(record.as_bytes(), (id, version, hash), 9, Some(&public))
            .expect_err("another bundle");
        assert!(why.contains("not this bundle"), "{why}");
    }
    // Another key's signature, and a record edited after signing.
    let other = public_key_of(&keygen([3; 32]).public_base64()).expect("a key");
    let why = RollbackRecord::check(
        record.as_bytes(),
        ("acme-autos", 7, "ab12"),
        9,
        Some(&other),
    )
    .expect_err("other key");
    assert!(why.contains("does not verify"), "{why}");
    let edited = record.replace("1796000000", "1796000001");
    // A record made over 9 does not allow going back below a 10 published after it.
    let why = RollbackRecord::check(
        record.as_bytes(),
        ("acme-autos", 7, "ab12"),
        10,
        Some(&public),
    )
    .expect_err("stale");
    assert!(why.contains("before version 10 was published"), "{why}");
    assert!(RollbackRecord::check(
        edited.as_bytes(),
        ("acme-autos", 7, "ab12"),
        9,
        Some(&public)
    )
    .is_err());
}

#[test]
fn an_unsigned_record_does_only_without_a_key() {
    let record = RollbackRecord::new("acme-autos", 7, "ab12", 9, 0, None).to_json();
    assert!(RollbackRecord::check(record.as_bytes(), ("acme-autos", 7, "ab12"), 9, None).is_ok());
    let public = public_key_of(&keygen([9; 32]).public_base64()).expect("a key");
    let why = RollbackRecord::check(
        record.as_bytes(),
        ("acme-autos", 7, "ab12"),
        9,
        Some(&public),
    )
    .expect_err("unsigned");
    assert!(why.contains("not signed"), "{why}");
}

#[test]
fn malformed_records_are_typed_errors() {
    for text in [
        &b"not json"[..],
        b"{}",
        b"{\"id\":\"a\",\"version\":-1,\"hash\":\"h\",\"at\":0}",
        b"[1,2]",
    ] {
        assert!(RollbackRecord::check(text, ("a", 1, "h"), 1, None).is_err());
    }
    let big = vec![b' '; MAX_ROLLBACK_RECORD + 1];
    assert!(RollbackRecord::check(&big, ("a", 1, "h"), 1, None)
        .expect_err("too big")
        .contains("over"));
    let extra = br#"{"id":"a","version":1,"hash":"h","over":1,"at":0,"admin":true}"#;
    assert!(
        RollbackRecord::check(extra, ("a", 1, "h"), 1, None).is_err(),
        "unknown fields are refused"
    );
}
