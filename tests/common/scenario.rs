//! Scenario expectations, shared by every face that replays `fixtures/scenarios/`: the
//! native test binary and the wasm-bindgen tests of the npm package API. Pure: callers
//! read the files and run the decision; this compares the full answer (`stage`,
//! `decisions`, `token`, `state`, `exposures`) with the scenario's `expect`.

use serde_json::{json, Value as Json};

/// The keys every face signs scenario tokens with.
pub const KEYS: &str =
    r#"{"current":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#;

/// The npm package's `decide` options for a scenario.
pub fn options(scenario: &Json) -> Json {
    let mut context = scenario.get("context").cloned().unwrap_or(json!({}));
    if let (Some(event), Some(map)) = (
        scenario.get("event").and_then(Json::as_str),
        context.as_object_mut(),
    ) {
        map.insert("event".into(), json!(event));
    }
    let mut options = json!({
        "keys": serde_json::from_str::<Json>(KEYS).expect("keys"),
        "context": context,
        "slots": scenario["slots"],
        "now": scenario["now"],
        "visitor": scenario.get("visitor").cloned().unwrap_or(json!("00000000000000000000000000000000")),
    });
    if let Some(state) = scenario.get("state").filter(|s| !s.is_null()) {
        options["state"] = state.clone();
    }
    options
}

/// Whether `actual` holds everything `expected` says: objects by the keys given, numbers
/// to two decimals, everything else exactly.
fn contains(actual: &Json, expected: &Json, path: &str, errors: &mut Vec<String>) {
    match (actual, expected) {
        (Json::Object(a), Json::Object(e)) => {
            for (k, v) in e {
                match a.get(k) {
                    Some(av) => contains(av, v, &format!("{path}.{k}"), errors),
                    None if v.is_null() => {}
                    None => errors.push(format!("{path}.{k}: missing, expected {v}")),
                }
            }
        }
        (Json::Number(a), Json::Number(e)) => {
            let (a, e) = (
                a.as_f64().unwrap_or(f64::NAN),
                e.as_f64().unwrap_or(f64::NAN),
            );
            if (a - e).abs() > 0.005 {
                errors.push(format!("{path}: expected {e}, got {a}"));
            }
        }
        _ if actual == expected => {}
        _ => errors.push(format!("{path}: expected {expected}, got {actual}")),
    }
}

/// The differences between a full answer and the scenario's expectations.
pub fn check(scenario: &Json, answer: &Json) -> Vec<String> {
    let expect = &scenario["expect"];
    let mut errors = Vec::new();
    contains(&answer["stage"], &expect["stage"], "stage", &mut errors);
    let decisions = answer["decisions"].as_array().cloned().unwrap_or_default();
    for (i, expected) in expect["decisions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let got = decisions.get(i).cloned().unwrap_or(Json::Null);
        // Renditions are compared separately, by slot.
        let mut want = expected.clone();
        if let Some(map) = want.as_object_mut() {
            map.retain(|k, _| !matches!(k.as_str(), "html" | "json" | "text"));
        }
        contains(&got, &want, &format!("decisions[{i}]"), &mut errors);
    }
    for rendition in ["html", "json", "text"] {
        if let Some(map) = expect.get(rendition).and_then(Json::as_object) {
            for (slot, want) in map {
                let got = decisions
                    .iter()
                    .find(|d| d["slot"] == json!(slot))
                    .map(|d| d.get(rendition).cloned().unwrap_or(Json::Null))
                    .unwrap_or(Json::Null);
                if &got != want {
                    errors.push(format!("{rendition}.{slot}: expected {want}, got {got}"));
                }
            }
        }
    }
    if let Some(state) = expect.get("state") {
        contains(&answer["state"], state, "state", &mut errors);
    }
    if let Some(n) = expect.get("exposures").and_then(Json::as_u64) {
        let got = answer["exposures"].as_array().map_or(0, Vec::len) as u64;
        if got != n {
            errors.push(format!("exposures: expected {n}, got {got}"));
        }
    }
    // With keys, a state that may be written comes back as a token.
    let persist = expect
        .get("persist")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    if answer["token"].is_string() != persist {
        errors.push(format!(
            "persist: expected {persist}, got token {}",
            answer["token"]
        ));
    }
    errors
}
