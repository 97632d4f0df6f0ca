//! `analyze` (DESIGN §12): goals in the bundle, the log join, the statistics and the
//! attribution models, and the command as a marketer runs it.

use micromoment::{bundle, Budget};

/// Compiles a bundle with `goals` and returns its diagnostics as `path: message` lines.
#[track_caller]
fn check_goals(goals: &str, expected: &[&str]) {
    let source = format!(
        r#"{{"id": "g", "version": 1, "journey": {{"stages": ["a"]}},
  "content": {{"x": {{"html": "x"}}}}, "slots": {{"hero": {{"default": "x"}}}},
  "goals": {goals}}}"#
    );
    let found: Vec<String> = match bundle::compile(&source, Budget::default()) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(found, expected, "goals {goals}");
}

#[test]
fn goals_are_validated_with_paths_and_positions() {
    check_goals(
        r#"{"purchase": {"event": "order_completed", "value": true}, "test-drive": {"event": "test_drive_booked"}}"#,
        &[],
    );
    check_goals(
        r#"{"purchase": {"event": "order_completed", "value": "yes"}}"#,
        &["3:63: goals.purchase.value: expected a boolean, found a string"],
    );
    check_goals(
        r#"{"lead": {"event": ""}}"#,
        &["3:31: goals.lead.event: must not be empty"],
    );
    check_goals(
        r#"{"signup": {"evnt": "signed_up"}}"#,
        &[
            "3:32: goals.signup.evnt: unknown field \"evnt\" (did you mean \"event\"?)",
            "3:23: goals.signup.event: missing required field",
        ],
    );
    check_goals(
        r#"{"": {"event": "e"}}"#,
        &["3:17: goals[\"\"]: a goal name must not be empty"],
    );
    check_goals(
        r#"["purchase"]"#,
        &["3:12: goals: expected an object, found an array"],
    );
}

#[test]
fn the_fixtures_declare_goals_and_experiments() {
    let text = std::fs::read_to_string(crate::repo_path("fixtures/automotive.json")).unwrap();
    let b = bundle::compile(&text, Budget::default()).unwrap();
    let goals: Vec<_> = b.goals().map(|g| (g.name, g.event, g.value)).collect();
    assert_eq!(
        goals,
        [
            ("purchase", "order_completed", true),
            ("test-drive", "test_drive_booked", false),
            ("quote", "quote_requested", false)
        ]
    );
    let experiments = b.experiments();
    let hero = experiments.iter().find(|e| e.name == "hero-test").unwrap();
    assert_eq!(hero.slot, "hero");
    assert_eq!(hero.holdout, 0.1);
    let variants: Vec<(&str, f64)> = hero
        .variants
        .iter()
        .map(|&(c, share)| (c, (share * 1e9).round() / 1e9))
        .collect();
    assert_eq!(variants, [("suv-teaser", 0.45), ("ev-teaser", 0.45)]);
}
