//! Bundles end to end: validation output, compile → inspect, tampering, budgets, and the
//! simulator as a marketer runs it.

use std::process::Command;

use micromoment::bundle::{keygen, LoadError};
use micromoment::{Budget, Bundle};

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn cli(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_micromoment"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the CLI runs");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("micromoment-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn validate_reports_all_five_planted_mistakes() {
    let run = cli(&["validate", "fixtures/invalid/five-mistakes.json"]);
    assert_eq!(run.code, Some(1));
    let expected = "\
fixtures/invalid/five-mistakes.json:81:22: slots.hero.candidates[0].content: unknown content \"test-drvie\" (did you mean \"test-drive\"?)
fixtures/invalid/five-mistakes.json:102:19: slots.hero.candidates[1].when.in[0].var: unknown variable \"geo.contry\" (did you mean \"geo.country\"?)
fixtures/invalid/five-mistakes.json:122:25: slots.hero.candidates[2].experiment.variants: variant weights sum to 90, expected 100 (or 1)
fixtures/invalid/five-mistakes.json:136:16: slots.sidebar: slot \"sidebar\" has no default content
fixtures/invalid/five-mistakes.json:156:9: slots.banner.candidates[1]: candidate \"banner-app\" is unreachable: \"banner-range\" (priority 10) has no conditions and always wins first
5 errors in fixtures/invalid/five-mistakes.json
";
    assert_eq!(run.stderr, expected);
    assert_eq!(run.stdout, "");
}

#[test]
fn validate_accepts_the_fixture_bundles() {
    for bundle in ["fixtures/automotive.json", "fixtures/retail.json"] {
        let run = cli(&["validate", bundle]);
        assert_eq!(run.code, Some(0), "{bundle}: {}", run.stderr);
    }
}

#[test]
fn compile_then_inspect_each_fixture_signed_and_unsigned() {
    let dir = temp_dir("compile");
    let keys = dir.join("keys");
    let run = cli(&["keygen", "ed25519", "-o", keys.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let sign_key = keys.join("bundle-signing.key");
    let pubkey = keys.join("bundle-signing.pub");
    for (name, id) in [("automotive", "acme-autos"), ("retail", "northwind-retail")] {
        let out = dir.join(format!("{name}.mmb"));
        let source = format!("fixtures/{name}.json");
        let run = cli(&[
            "compile",
            &source,
            "-o",
            out.to_str().unwrap(),
            "--sign-key",
            sign_key.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let run = cli(&[
            "inspect",
            out.to_str().unwrap(),
            "--pubkey",
            pubkey.to_str().unwrap(),
        ]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
        assert_eq!(report["id"], id);
        assert_eq!(report["signature"], "valid");
        assert!(report["counts"]["candidates"].as_u64().unwrap() > 5);
        assert_eq!(report["hash"].as_str().unwrap().len(), 64);
        // The compiled bundle decides exactly like the source it came from.
        let text = std::fs::read_to_string(crate::repo_path(&source)).unwrap();
        let from_source = micromoment::bundle::compile(&text, Budget::default()).unwrap();
        let (from_mmb, _) =
            Bundle::from_mmb(&std::fs::read(&out).unwrap(), None, &Budget::default()).unwrap();
        assert_eq!(from_source, from_mmb);
    }
    std::fs::remove_dir_all(&dir).ok();
}

fn automotive() -> Bundle {
    crate::scenarios::fixture_bundle("automotive.json")
}

#[test]
fn tampering_is_caught_with_the_matching_error() {
    let bundle = automotive();
    let key = keygen([7; 32]);
    let public: [u8; 32] = micromoment::bundle::public_key_of(&key.public_base64()).unwrap();
    let signed = bundle.to_mmb(Some(&key)).unwrap();
    let budget = Budget::default();
    assert!(Bundle::from_mmb(&signed, Some(&public), &budget).is_ok());

    // A payload byte: the signature no longer verifies; without a key to check it, the
    // content hash no longer matches.
    let mut payload_flip = signed.clone();
    let middle = payload_flip.len() / 2;
    payload_flip[middle] ^= 0x01;
    assert_eq!(
        Bundle::from_mmb(&payload_flip, Some(&public), &budget).unwrap_err(),
        LoadError::BadSignature
    );
    assert_eq!(
        Bundle::from_mmb(&payload_flip, None, &budget).unwrap_err(),
        LoadError::HashMismatch
    );

    // A header byte (the version): the hash holds, the signature does not.
    let mut header_flip = signed.clone();
    let version_at = 4 + 2 + 2 + bundle.id().len();
    header_flip[version_at] ^= 0x01;
    assert_eq!(
        Bundle::from_mmb(&header_flip, Some(&public), &budget).unwrap_err(),
        LoadError::BadSignature
    );

    // A signature byte.
    let mut sig_flip = signed.clone();
    let last = sig_flip.len() - 1;
    sig_flip[last] ^= 0x80;
    assert_eq!(
        Bundle::from_mmb(&sig_flip, Some(&public), &budget).unwrap_err(),
        LoadError::BadSignature
    );

    // Another key.
    let other: [u8; 32] =
        micromoment::bundle::public_key_of(&keygen([8; 32]).public_base64()).unwrap();
    assert_eq!(
        Bundle::from_mmb(&signed, Some(&other), &budget).unwrap_err(),
        LoadError::BadSignature
    );

    // Unsigned when a key is required; fine without one.
    let unsigned = bundle.to_mmb(None).unwrap();
    assert_eq!(
        Bundle::from_mmb(&unsigned, Some(&public), &budget).unwrap_err(),
        LoadError::Unsigned
    );
    assert!(Bundle::from_mmb(&unsigned, None, &budget).is_ok());

    // Framing errors.
    assert_eq!(
        Bundle::from_mmb(b"PK\x03\x04", None, &budget).unwrap_err(),
        LoadError::BadMagic
    );
    let mut future = unsigned.clone();
    future[4] = 9;
    assert_eq!(
        Bundle::from_mmb(&future, None, &budget).unwrap_err(),
        LoadError::UnsupportedVersion {
            found: 9,
            supported: 2
        }
    );
    assert_eq!(
        Bundle::from_mmb(&unsigned[..unsigned.len() - 10], None, &budget).unwrap_err(),
        LoadError::Truncated
    );
    let mut trailing = unsigned.clone();
    trailing.extend_from_slice(b"xyz");
    assert_eq!(
        Bundle::from_mmb(&trailing, None, &budget).unwrap_err(),
        LoadError::TrailingBytes(3)
    );
}

#[test]
fn an_oversized_bundle_names_the_budget_it_broke() {
    let bundle = automotive();
    let bytes = bundle.to_mmb(None).unwrap();
    let small = Budget {
        max_bundle_bytes: 1000,
        ..Budget::default()
    };
    let err = Bundle::from_mmb(&bytes, None, &small).unwrap_err();
    assert_eq!(
        err,
        LoadError::TooLarge {
            size: bytes.len(),
            limit: 1000
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "bundle is {} bytes, over the budget of 1000 (max_bundle_bytes)",
            bytes.len()
        )
    );

    let text = std::fs::read_to_string(crate::repo_path("fixtures/automotive.json")).unwrap();
    let tight = Budget {
        max_candidates_per_slot: 2,
        ..Budget::default()
    };
    let diagnostics = micromoment::bundle::compile(&text, tight).unwrap_err();
    assert!(
        diagnostics.iter().any(|d| d
            .message
            .ends_with("over the budget of 2 (max_candidates_per_slot)")),
        "{diagnostics:?}"
    );
}

#[test]
fn a_generated_bundle_with_ten_thousand_candidates_compiles_and_loads() {
    let source = crate::generated_bundle(100, 100);
    let bundle = micromoment::bundle::compile(&source, Budget::default()).expect("compiles");
    assert_eq!(bundle.counts().candidates, 10_000);
    let bytes = bundle.to_mmb(None).unwrap();
    assert!(
        bytes.len() < Budget::default().max_bundle_bytes,
        "{} bytes",
        bytes.len()
    );
    let (loaded, _) = Bundle::from_mmb(&bytes, None, &Budget::default()).expect("loads");
    assert_eq!(loaded, bundle);
}

#[test]
fn simulate_explains_a_decision_as_a_marketer_reads_it() {
    let run = cli(&[
        "simulate",
        "fixtures/automotive.json",
        "--slots",
        "hero",
        "--context",
        "fixtures/contexts/suv-shopper-lyon.json",
        "--now",
        "2026-11-23T18:00:00Z",
        "--visitor",
        "0123456789abcdef0123456789abcdef",
        "--explain",
    ]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let out: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    assert!(out["stage"].is_string());
    assert_eq!(out["decisions"][0]["slot"], "hero");
    assert!(out["decisions"][0]["html"].is_string());
    assert!(!out["trace"]["slots"][0]["candidates"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(out["state"]["visits"], 1);
    // Same inputs, same bytes.
    let again = cli(&[
        "simulate",
        "fixtures/automotive.json",
        "--slots",
        "hero",
        "--context",
        "fixtures/contexts/suv-shopper-lyon.json",
        "--now",
        "2026-11-23T18:00:00Z",
        "--visitor",
        "0123456789abcdef0123456789abcdef",
        "--explain",
    ]);
    assert_eq!(run.stdout, again.stdout);
    let unknown = cli(&["simulate", "fixtures/automotive.json", "--slots", "heor"]);
    assert_eq!(unknown.code, Some(2));
    assert_eq!(
        unknown.stderr,
        "error: unknown slot \"heor\" (did you mean \"hero\"?)\n"
    );
}

#[test]
fn schema_is_json_schema() {
    let run = cli(&["schema"]);
    assert_eq!(run.code, Some(0));
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["properties"]["slots"].is_object());
}

#[test]
fn the_embedded_default_bundle_is_the_compiled_automotive_fixture() {
    let embedded = std::fs::read(crate::repo_path("fixtures/automotive.mmb"))
        .expect("fixtures/automotive.mmb");
    let compiled = automotive().to_mmb(None).unwrap();
    assert!(
        embedded == compiled,
        "fixtures/automotive.mmb is stale: run `micromoment compile fixtures/automotive.json -o fixtures/automotive.mmb`"
    );
}
