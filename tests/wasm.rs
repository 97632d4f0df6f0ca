//! The npm package's API under Node (wasm-bindgen-test): every scenario of
//! `fixtures/scenarios/` replayed through `Bundle.decide`, the same expectations as the
//! native tests, and tokens minted and inspected through the JS functions.
//!
//! `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
//!  cargo test --target wasm32-unknown-unknown --no-default-features --features js --test wasm`
#![cfg(target_arch = "wasm32")]

use std::collections::BTreeMap;

use micromoment_npm::{inspect_token, mint_token, Bundle};
use serde_json::{json, Value as Json};
use wasm_bindgen::prelude::*;
use wasm_bindgen_test::wasm_bindgen_test;

#[path = "common/scenario.rs"]
mod scenario;

#[wasm_bindgen(module = "fs")]
extern "C" {
    #[wasm_bindgen(js_name = readFileSync)]
    fn read_text(path: &str, encoding: &str) -> String;
    #[wasm_bindgen(js_name = readFileSync)]
    fn read_bytes(path: &str) -> js_sys::Uint8Array;
    #[wasm_bindgen(js_name = readdirSync)]
    fn read_dir(path: &str) -> js_sys::Array;
}

fn repo(relative: &str) -> String {
    format!("{}/../../{relative}", env!("CARGO_MANIFEST_DIR"))
}

fn to_js(value: &Json) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).expect("JSON")
}

fn from_js(value: &JsValue) -> Json {
    serde_json::from_str(
        &js_sys::JSON::stringify(value)
            .expect("JSON")
            .as_string()
            .expect("text"),
    )
    .expect("parses")
}

#[wasm_bindgen_test]
fn every_scenario_decides_through_the_js_api() {
    let mut names: Vec<String> = read_dir(&repo("fixtures/scenarios"))
        .iter()
        .filter_map(|v| v.as_string())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    assert!(names.len() >= 25, "found {} scenarios", names.len());
    let mut bundles: BTreeMap<String, Bundle> = BTreeMap::new();
    let mut failures = Vec::new();
    for name in &names {
        let scenario: Json = serde_json::from_str(&read_text(
            &repo(&format!("fixtures/scenarios/{name}")),
            "utf8",
        ))
        .expect("scenario");
        let bundle_name = scenario["bundle"].as_str().expect("bundle").to_owned();
        let bundle = bundles.entry(bundle_name.clone()).or_insert_with(|| {
            Bundle::compile(&read_text(
                &repo(&format!("fixtures/{bundle_name}")),
                "utf8",
            ))
            .unwrap_or_else(|_| panic!("{bundle_name} compiles"))
        });
        let answer = match bundle.decide(to_js(&scenario::options(&scenario))) {
            Ok(answer) => from_js(&answer),
            Err(_) => {
                failures.push(format!("{name}: decide threw"));
                continue;
            }
        };
        let errors = scenario::check(&scenario, &answer);
        if !errors.is_empty() {
            failures.push(format!("{name}:\n  {}", errors.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

#[wasm_bindgen_test]
fn the_embedded_bundle_loads_from_mmb_bytes() {
    let bytes = read_bytes(&repo("fixtures/automotive.mmb")).to_vec();
    let bundle = Bundle::load(&bytes, None).unwrap_or_else(|_| panic!("loads"));
    assert_eq!(bundle.id(), "acme-autos");
    assert_eq!(bundle.hash().map(|h| h.len()), Some(64));
    assert!(bundle.slots().contains(&"hero".to_owned()));
    assert!(Bundle::load(b"not a bundle", None).is_err());
}

fn get(object: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(object, &JsValue::from_str(key)).expect("readable")
}

#[wasm_bindgen_test]
fn an_answer_reads_as_one_object_whatever_is_read_first() {
    let bundle = Bundle::compile(&read_text(&repo("fixtures/automotive.json"), "utf8"))
        .unwrap_or_else(|_| panic!("compiles"));
    let keys: Json = serde_json::from_str(scenario::KEYS).expect("keys");
    let options = json!({
        "keys": keys, "context": {"geo": {"country": "FR", "city": "Lyon"}, "page": {"path": "/models/suv"}},
        "visitor": "0123456789abcdef0123456789abcdef", "now": "2026-11-23T10:00:00Z"
    });
    let whole = from_js(
        &bundle
            .decide(to_js(&options))
            .unwrap_or_else(|_| panic!("decides")),
    );
    let keys_in_order: Vec<&str> = whole
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys_in_order,
        ["stage", "decisions", "token", "state", "exposures"]
    );
    assert_eq!(
        whole["state"]["visitor"],
        "0123456789abcdef0123456789abcdef"
    );
    assert!(!whole["exposures"].as_array().expect("exposures").is_empty());

    // Read property by property, state before anything is serialized: the same answer.
    let answer = bundle
        .decide(to_js(&options))
        .unwrap_or_else(|_| panic!("decides"));
    assert_eq!(from_js(&get(&answer, "state")), whole["state"]);
    assert_eq!(from_js(&get(&answer, "exposures")), whole["exposures"]);
    assert_eq!(from_js(&get(&answer, "decisions")), whole["decisions"]);
    assert!(js_sys::Reflect::has(&answer, &"exposures".into()).expect("has"));
    assert!(
        get(&answer, "trace").is_undefined(),
        "no trace without explain"
    );
    assert_eq!(from_js(&answer), whole);

    // Properties can be replaced, and the replacement is what is serialized.
    let answer = bundle
        .decide(to_js(&options))
        .unwrap_or_else(|_| panic!("decides"));
    js_sys::Reflect::set(&answer, &"exposures".into(), &js_sys::Array::new()).expect("settable");
    assert_eq!(from_js(&answer)["exposures"], json!([]));
    assert_eq!(from_js(&answer)["state"], whole["state"]);
    js_sys::Reflect::set(&answer, &"state".into(), &JsValue::UNDEFINED).expect("settable");
    assert!(
        get(&answer, "state").is_undefined(),
        "a state set to undefined stays so"
    );

    // With explain, the trace comes last.
    let mut explained = options.clone();
    explained["explain"] = json!(true);
    let traced = from_js(
        &bundle
            .decide(to_js(&explained))
            .unwrap_or_else(|_| panic!("decides")),
    );
    assert_eq!(
        traced
            .as_object()
            .expect("object")
            .keys()
            .next_back()
            .map(String::as_str),
        Some("trace")
    );
    assert_eq!(traced["state"], whole["state"]);
}

#[wasm_bindgen_test]
fn tokens_minted_in_js_inspect_in_js() {
    let keys: Json = serde_json::from_str(scenario::KEYS).expect("keys");
    let token = mint_token(to_js(&json!({
        "keys": keys, "stage": "decision", "segments": ["vip"],
        "visitor": "0123456789abcdef0123456789abcdef", "now": "2026-11-23T10:00:00Z"
    })))
    .unwrap_or_else(|_| panic!("mints"));
    let state = from_js(
        &inspect_token(&token, to_js(&keys), to_js(&json!("2026-11-23T11:00:00Z")))
            .unwrap_or_else(|_| panic!("verifies")),
    );
    assert_eq!(state["visitor"], "0123456789abcdef0123456789abcdef");
    assert_eq!(state["segments"], json!(["vip"]));
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert!(inspect_token(&tampered, to_js(&keys), JsValue::UNDEFINED).is_err());
}

/// The JSON of a context whose field `name` (dotted) is `value`.
fn context_with(name: &str, value: Json) -> Json {
    name.split('.')
        .rev()
        .fold(value, |inner, key| json!({ key: inner }))
}

/// Every field of the table of variables that the npm package packs: packed by the
/// JavaScript from the table it is given, read back by `options.rs` through the same
/// table, into the context its JSON makes; each alone, then all together.
#[wasm_bindgen_test]
fn every_packed_field_is_packed_and_read_back_as_its_json_reads() {
    use micromoment::context::{Context, FieldKind, FieldMut, PACKED_FIELDS};
    let mut all = json!({});
    for field in PACKED_FIELDS {
        let value = match field.kind {
            FieldKind::Text => json!("K\u{f6}ln \u{1f697}"),
            FieldKind::Number => json!(-45.25),
            FieldKind::Flag => json!(false),
            FieldKind::Switch => json!(true),
            FieldKind::Channel => json!("push"),
            FieldKind::Query => json!({"utm_source": "a", "k\u{e9}y": "v"}),
            FieldKind::Keyword => match Context::default().field_by_tag(field.tag) {
                Some(FieldMut::Keyword(words)) => json!(words.words().last()),
                other => panic!("{}: {other:?}", field.name),
            },
        };
        let context = context_with(field.name, value);
        let expected: Context = serde_json::from_value(context.clone()).expect("context");
        let packed = micromoment_npm::packed_context(&to_js(&json!({ "context": context })))
            .unwrap_or_else(|| panic!("{} is packed", field.name));
        assert_eq!(
            packed,
            serde_json::to_string(&expected).expect("JSON"),
            "{}",
            field.name
        );
        // A field the JSON reads as unknown when null is left out; any other is left
        // to the JSON path, which words the error.
        let null = to_js(&json!({ "context": context_with(field.name, Json::Null) }));
        assert_eq!(
            micromoment_npm::packed_context(&null).is_some(),
            field.kind.nullable(),
            "{}: null",
            field.name
        );
        merge(&mut all, &context);
    }
    let expected: Context = serde_json::from_value(all.clone()).expect("context");
    assert_eq!(
        micromoment_npm::packed_context(&to_js(&json!({ "context": all }))),
        serde_json::to_string(&expected).ok()
    );
}

fn merge(into: &mut Json, from: &Json) {
    match (into, from) {
        (Json::Object(into), Json::Object(from)) => {
            for (key, value) in from {
                merge(into.entry(key.clone()).or_insert(Json::Null), value);
            }
        }
        (into, from) => *into = from.clone(),
    }
}
