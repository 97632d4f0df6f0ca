//! Wycheproof's Ed25519 vectors, read in place, through the bundle signature check.

use micromoment::bundle::verify_signature;

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn wycheproof_ed25519() {
    let suite = crate::read_json("tests/conformance/wycheproof/ed25519_test.json");
    let mut ran = 0;
    let mut failures = Vec::new();
    for group in suite["testGroups"].as_array().unwrap() {
        let key = unhex(group["publicKey"]["pk"].as_str().unwrap());
        let key: [u8; 32] = key.try_into().unwrap();
        for test in group["tests"].as_array().unwrap() {
            ran += 1;
            let msg = unhex(test["msg"].as_str().unwrap());
            let sig = unhex(test["sig"].as_str().unwrap());
            let expected = test["result"].as_str().unwrap() == "valid";
            if verify_signature(&key, &msg, &sig) != expected {
                failures.push(format!(
                    "tcId {} ({}): expected {expected}",
                    test["tcId"], test["comment"]
                ));
            }
        }
    }
    assert_eq!(ran, 151, "every vector ran");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
