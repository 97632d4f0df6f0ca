//! The decision scenarios of `fixtures/scenarios/`: one file per scenario, replayed
//! through the library exactly as the edge decides. The same files drive the wasm and
//! worker tests.

use std::collections::BTreeMap;

use micromoment::ids::parse_hex128 as parse_visitor;
use micromoment::time::parse_rfc3339;
use micromoment::token::Keys;
use micromoment::view::state_from_json;
use micromoment::{session, Budget, Bundle, Context};
use serde_json::Value as Json;

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

/// Runs one scenario through the library as the edge does; the differences from its
/// expectations.
pub fn run(bundles: &mut BTreeMap<String, Bundle>, scenario: &Json) -> Vec<String> {
    let bundle_name = scenario["bundle"].as_str().expect("bundle");
    let bundle = bundles
        .entry(bundle_name.to_owned())
        .or_insert_with(|| fixture_bundle(bundle_name));
    let options = crate::scenario_check::options(scenario);
    let visitor = parse_visitor(options["visitor"].as_str().expect("visitor")).expect("visitor");
    let now = parse_rfc3339(options["now"].as_str().expect("now")).expect("now");
    let prior = options
        .get("state")
        .map(|state| state_from_json(bundle, state, visitor).expect("state"));
    let context: Context = serde_json::from_value(options["context"].clone()).expect("context");
    let slot_names: Vec<&str> = options["slots"]
        .as_array()
        .expect("slots")
        .iter()
        .map(|s| s.as_str().expect("slot name"))
        .collect();
    let keys = Keys::from_json(crate::scenario_check::KEYS).expect("keys");
    let request = session::Request {
        slots: session::Slots::Names(&slot_names),
        ..session::Request::new(
            prior
                .as_ref()
                .map_or(session::Visitor::New, session::Visitor::State),
            &context,
            now,
            session::Entropy::Fixed(visitor),
        )
    };
    let outcome = session::decide(bundle, Some(&keys), &request).expect("slots exist");
    crate::scenario_check::check(
        scenario,
        &session::answer(bundle, &outcome, session::Shape::Full),
    )
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
