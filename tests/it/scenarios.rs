//! The decision scenarios of `fixtures/scenarios/`: one file per scenario, replayed
//! through the library exactly as the edge decides. The same files drive the wasm and
//! worker tests.

use std::collections::BTreeMap;

use micromoment::view::{parse_rfc3339, parse_visitor, state_from_json, state_to_json};
use micromoment::{Budget, Bundle, Context, Options};
use serde_json::{json, Value as Json};

/// Loads every scenario file, sorted by name.
pub fn scenarios() -> Vec<(String, Json)> {
    let dir = crate::repo_path("fixtures/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/scenarios exists")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("readable");
            (
                name,
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
            )
        })
        .collect()
}

/// Compiles a fixture bundle by file name.
pub fn fixture_bundle(name: &str) -> Bundle {
    let text = std::fs::read_to_string(crate::repo_path(&format!("fixtures/{name}")))
        .expect("bundle readable");
    micromoment::bundle::compile(&text, Budget::default())
        .unwrap_or_else(|d| panic!("fixtures/{name} does not compile: {d:?}"))
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

/// Runs one scenario; the list of differences from its expectations.
pub fn run(bundles: &mut BTreeMap<String, Bundle>, scenario: &Json) -> Vec<String> {
    let bundle_name = scenario["bundle"].as_str().expect("bundle");
    let bundle = bundles
        .entry(bundle_name.to_owned())
        .or_insert_with(|| fixture_bundle(bundle_name));
    let visitor = parse_visitor(
        scenario["visitor"]
            .as_str()
            .unwrap_or("00000000000000000000000000000000"),
    )
    .expect("visitor");
    let now = parse_rfc3339(scenario["now"].as_str().expect("now")).expect("now");
    let prior = match scenario.get("state") {
        None | Some(Json::Null) => None,
        Some(state) => Some(state_from_json(bundle, state, visitor).expect("state")),
    };
    let mut context: Context =
        serde_json::from_value(scenario.get("context").cloned().unwrap_or(json!({})))
            .expect("context");
    if let Some(event) = scenario.get("event").and_then(Json::as_str) {
        context.event = Some(event.to_owned());
    }
    let slot_names: Vec<&str> = scenario["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s.as_str().expect("slot name"))
        .collect();
    let slots = bundle.resolve_slots(slot_names).expect("slots exist");
    let decision = micromoment::decide(
        bundle,
        prior.as_ref(),
        visitor,
        &context,
        now,
        &slots,
        Options::default(),
    );
    let expect = &scenario["expect"];
    let mut errors = Vec::new();
    let actual = serde_json::to_value(&decision).expect("serializes");
    contains(&actual["stage"], &expect["stage"], "stage", &mut errors);
    let decisions = actual["decisions"].as_array().cloned().unwrap_or_default();
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
        contains(
            &state_to_json(bundle, &decision.state),
            state,
            "state",
            &mut errors,
        );
    }
    if let Some(n) = expect.get("exposures").and_then(Json::as_u64) {
        if decision.exposures.len() as u64 != n {
            errors.push(format!(
                "exposures: expected {n}, got {}",
                decision.exposures.len()
            ));
        }
    }
    let persist = expect
        .get("persist")
        .and_then(Json::as_bool)
        .unwrap_or(true);
    if decision.persist != persist {
        errors.push(format!(
            "persist: expected {persist}, got {}",
            decision.persist
        ));
    }
    errors
}

#[test]
fn every_scenario_decides_as_expected() {
    let scenarios = scenarios();
    assert!(
        scenarios.len() >= 25,
        "at least 25 scenarios, found {}",
        scenarios.len()
    );
    let mut bundles = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, scenario) in &scenarios {
        let errors = run(&mut bundles, scenario);
        if !errors.is_empty() {
            failures.push(format!("{name}:\n  {}", errors.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n{}",
        failures.len(),
        scenarios.len(),
        failures.join("\n")
    );
}
