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
        .current_dir(crate::repo_root())
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
            supported: micromoment::bundle::FORMAT_VERSION
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
    // A destination's var names, as the compiler and the loader check them.
    let destination = &schema["properties"]["destinations"]["additionalProperties"];
    let pattern = format!(
        "^{}[A-Z0-9_]{{1,{}}}$",
        micromoment::bundle::DESTINATION_VAR_PREFIX,
        micromoment::bundle::MAX_DESTINATION_VAR_BYTES
            - micromoment::bundle::DESTINATION_VAR_PREFIX.len()
    );
    assert_eq!(pattern, "^MM_DEST_[A-Z0-9_]{1,56}$");
    for field in ["url", "secret"] {
        assert_eq!(
            destination["properties"][field]["pattern"], pattern,
            "{field}"
        );
    }
    // The kinds, from their table: each name, what it does, whether it needs a url.
    let kinds: Vec<&str> = micromoment::bundle::DestinationKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    let kind = &destination["properties"]["kind"];
    assert_eq!(kind["enum"], serde_json::json!(kinds));
    assert_eq!(kinds[..2], ["webhook", "segment"]);
    let said = kind["description"].as_str().unwrap();
    assert!(
        said.starts_with("webhook: Standard Webhooks v1, signed (url required); segment: a Segment track call (url optional, else https://api.segment.io/v1/track)"),
        "{said}"
    );
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

/// The decoded size is what an isolate pays: counted while decoding, against
/// `max_decoded_bytes`, whatever the byte size says.
#[test]
fn the_decoded_size_is_bounded_while_decoding() {
    let budget = Budget::default();
    // The largest bundle the budgets allow in candidates fits with room to spare.
    let source = crate::generated_bundle(100, 199);
    let bundle = micromoment::bundle::compile(&source, budget).expect("compiles");
    assert_eq!(bundle.counts().candidates, 19_900);
    assert_eq!(bundle.counts().contents, 20_000);
    let bytes = bundle.to_mmb(None).unwrap();
    let (_, header) = Bundle::from_mmb(&bytes, None, &budget).expect("loads");
    println!(
        "19,900 candidates, 20,000 contents: {} bytes as .mmb, {} bytes of lists and nodes decoded",
        header.total_bytes, header.decoded_bytes
    );
    assert!(header.decoded_bytes > header.payload_bytes);
    assert!(header.decoded_bytes < budget.max_decoded_bytes);
    // The same bytes under a smaller decoded budget are refused, typed, before the
    // memory is taken.
    let tight = Budget {
        max_decoded_bytes: header.decoded_bytes / 2,
        ..budget
    };
    let err = Bundle::from_mmb(&bytes, None, &tight).unwrap_err();
    assert_eq!(
        err.to_string(),
        "payload does not decode: invalid encoding: Other(\"decoded size over budget (max_decoded_bytes)\")"
    );
}

/// `micromoment … | head`: a reader that stops reading is not an error (ripgrep's
/// rule): exit 0, nothing on stderr, no panic.
#[test]
fn cli_output_survives_a_closed_pipe() {
    for args in [
        &[
            "report",
            "fixtures/automotive.json",
            "--json",
            "--now",
            "2026-11-23T12:00:00Z",
        ][..],
        &["schema"][..],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_micromoment"))
            .args(args)
            .current_dir(crate::repo_path(""))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end before the command writes anything.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{args:?}");
    }
}

/// `publish` refuses what the edge would refuse without a word to anyone: an unsigned
/// bundle, or one signed by another key, when the Worker verifies with BUNDLE_PUBKEY.
#[test]
fn publish_refuses_a_bundle_the_edge_would_not_verify() {
    let dir = temp_dir("publish");
    let d = |name: &str| dir.join(name).display().to_string();
    assert_eq!(cli(&["keygen", "ed25519", "-o", &d("keys")]).code, Some(0));
    assert_eq!(cli(&["keygen", "ed25519", "-o", &d("other")]).code, Some(0));
    let public = std::fs::read_to_string(dir.join("keys/bundle-signing.pub")).unwrap();
    std::fs::write(
        dir.join("wrangler.toml"),
        format!(
            "name = \"x\"\n[vars]\nORIGIN = \"\"\nBUNDLE_PUBKEY = \"{}\" # the key\n",
            public.trim()
        ),
    )
    .unwrap();
    let compile = |out: &str, key: Option<&str>| {
        let mut args = vec!["compile", "fixtures/automotive.json", "-o", out];
        if let Some(key) = key {
            args.extend(["--sign-key", key]);
        }
        assert_eq!(cli(&args).code, Some(0));
    };
    compile(&d("unsigned.mmb"), None);
    compile(&d("other.mmb"), Some(&d("other/bundle-signing.key")));
    compile(&d("signed.mmb"), Some(&d("keys/bundle-signing.key")));
    // `false` as wrangler: reaching it would fail with exit 2, not 1.
    let publish = |file: &str| {
        cli(&[
            "publish",
            file,
            "--local",
            "--config",
            &d("wrangler.toml"),
            "--wrangler",
            "/bin/false",
        ])
    };
    let unsigned = publish(&d("unsigned.mmb"));
    assert_eq!(unsigned.code, Some(1));
    assert_eq!(
        unsigned.stderr.trim(),
        format!("{}: bundle is not signed, and a public key requires a signature (the edge verifies bundles with BUNDLE_PUBKEY and would refuse it; compile with --sign-key)", d("unsigned.mmb"))
    );
    let other = publish(&d("other.mmb"));
    assert_eq!(other.code, Some(1));
    assert!(other.stderr.contains("bad signature"), "{}", other.stderr);
    // The right signature gets as far as wrangler.
    let signed = publish(&d("signed.mmb"));
    assert_eq!(signed.code, Some(2), "{}", signed.stderr);
    assert!(
        signed.stderr.contains("/bin/false kv key put"),
        "{}",
        signed.stderr
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The brief's attack, as `validate` shows it: a Segment destination whose write key is
/// `JOURNEY_KEYS` would have the Worker post the journey keys to the bundle's URL.
#[test]
fn validate_refuses_a_destination_that_names_another_secret() {
    let dir = temp_dir("destination-var");
    let path = dir.join("attack.json");
    std::fs::write(
        &path,
        r#"{"id": "attack", "version": 1,
 "journey": {"stages": ["a"]},
 "content": {"c": {"html": "<p>hi</p>"}},
 "slots": {"s": {"default": "c"}},
 "destinations": {"cdp": {"kind": "segment", "url": "MM_DEST_X_URL", "secret": "JOURNEY_KEYS"}},
 "triggers": [{"id": "t", "on": {"event": "x"}, "send": ["cdp"]}]}
"#,
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let output = format!("{path}.mmb");
    for args in [vec!["validate", path], vec!["compile", path, "-o", &output]] {
        let command = args[0];
        let run = cli(&args);
        assert_eq!(run.code, Some(1), "{command}");
        assert_eq!(
            run.stderr,
            format!("{path}:5:80: destinations.cdp.secret: \"JOURNEY_KEYS\" does not start with MM_DEST_: a destination names only the Worker vars and secrets meant for destinations (e.g. MM_DEST_CRM_SECRET), so no bundle can send another secret of the Worker\n1 error in {path}\n"),
            "{command}"
        );
        assert_eq!(run.stdout, "", "{command}");
    }
    assert!(!std::path::Path::new(&output).exists());
    std::fs::remove_dir_all(&dir).ok();
}

/// A signer who compiles with a compiler of their own can put any name in a
/// destination; the edge's loader refuses it, signature and hash notwithstanding.
#[test]
fn a_bundle_made_around_the_compiler_cannot_name_another_secret() {
    use ed25519_dalek::Signer as _;
    use sha2::{Digest as _, Sha256};

    let mut source = crate::read_json("fixtures/triggers.json");
    // As long as `JOURNEY_KEYS`, so the forgery only swaps bytes (a Segment destination
    // without a url: its secret needs no url's name).
    source["destinations"]["cdp"]["secret"] = serde_json::json!("MM_DEST_ABCD");
    source["destinations"]["cdp"]
        .as_object_mut()
        .unwrap()
        .remove("url");
    let bundle = micromoment::bundle::compile(&source.to_string(), Budget::default()).unwrap();
    let frame = bundle.to_mmb(None).unwrap();
    let id_len = usize::from(u16::from_le_bytes([frame[6], frame[7]]));
    let hash_at = 4 + 2 + 2 + id_len + 8;
    let payload_at = hash_at + 32 + 4;
    let seed = [7; 32];
    let public = micromoment::bundle::public_key_of(&keygen(seed).public_base64()).unwrap();
    // The frame again around `payload`, its hash and the signer's signature.
    let forge = |payload: &[u8]| {
        let mut forged = frame[..payload_at].to_vec();
        forged[hash_at..hash_at + 32].copy_from_slice(&Sha256::digest(payload));
        forged.extend_from_slice(payload);
        let signature = ed25519_dalek::SigningKey::from_bytes(&seed).sign(&forged);
        forged.extend_from_slice(&signature.to_bytes());
        forged
    };
    let payload = &frame[payload_at..];
    let budget = Budget::default();
    let (loaded, _) = Bundle::from_mmb(&forge(payload), Some(&public), &budget)
        .expect("the forgery itself is sound");
    assert_eq!(loaded, bundle);

    let at = payload
        .windows(12)
        .position(|w| w == b"MM_DEST_ABCD")
        .expect("the name is in the payload");
    let mut evil = payload.to_vec();
    evil[at..at + 12].copy_from_slice(b"JOURNEY_KEYS");
    let forged = forge(&evil);
    assert_eq!(
        Bundle::from_mmb(&forged, Some(&public), &budget).unwrap_err(),
        LoadError::DestinationVar {
            destination: "cdp".into(),
            field: "secret"
        }
    );

    // And `inspect` (the edge's loader) says so.
    let dir = temp_dir("forged");
    let path = dir.join("forged.mmb");
    std::fs::write(&path, &forged).unwrap();
    let path = path.to_str().unwrap();
    let run = cli(&["inspect", path]);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        format!("{path}: destination \"cdp\": its secret names a Worker setting that is not a destination var (MM_DEST_ then A-Z, 0-9, _; 9 to 64 bytes); compile the bundle again\n")
    );
    std::fs::remove_dir_all(&dir).ok();

    // A secret of another destination for this one's url: refused too.
    let paired = crate::read_json("fixtures/triggers.json");
    let bundle = micromoment::bundle::compile(&paired.to_string(), Budget::default()).unwrap();
    let frame = bundle.to_mmb(None).unwrap();
    let id_len = usize::from(u16::from_le_bytes([frame[6], frame[7]]));
    let payload_at = 4 + 2 + 2 + id_len + 8 + 32 + 4;
    let mut evil = frame[payload_at..].to_vec();
    let at = evil
        .windows(19)
        .position(|w| w == b"MM_DEST_SEGMENT_KEY")
        .expect("the name is in the payload");
    evil[at..at + 19].copy_from_slice(b"MM_DEST_CRMABCD_KEY");
    let mut forged = frame[..payload_at].to_vec();
    forged[payload_at - 36..payload_at - 4].copy_from_slice(&Sha256::digest(&evil));
    forged.extend_from_slice(&evil);
    let signature = ed25519_dalek::SigningKey::from_bytes(&seed).sign(&forged);
    forged.extend_from_slice(&signature.to_bytes());
    assert_eq!(
        Bundle::from_mmb(&forged, Some(&public), &budget).unwrap_err(),
        LoadError::DestinationPair {
            destination: "cdp".into()
        }
    );
}
