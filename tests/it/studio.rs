//! What the studio shows before a publish, from the report crate: the audiences whose
//! page changes between two bundles (`impact`) and the changes in words (`changes`).

use micromoment::bundle;
use micromoment::Budget;
use micromoment_cli::report::{changes, impact, MAX_IMPACT_CONTEXTS};
use serde_json::{json, Value as Json};

const NOW: i64 = 1_796_990_400; // 2026-12-12T12:00:00Z

fn compiled(doc: &Json) -> micromoment::Bundle {
    bundle::compile(&doc.to_string(), Budget::default()).expect("compiles")
}

/// The automotive example with the studio test's edits: winter-tyres first in hero for
/// consideration and decision visitors from FR or DE, and the sidebar's default split.
fn edited() -> (Json, Json) {
    let live = crate::read_json("fixtures/automotive.json");
    let mut draft = live.clone();
    draft["content"]["winter-tyres"] = json!({"html": "<section class=\"mm-hero\"><h1>Winter tyres fitted in {{geo.city}}</h1></section>"});
    let hero = draft["slots"]["hero"]["candidates"]
        .as_array_mut()
        .expect("hero");
    hero.insert(
        0,
        json!({"id": "hero-winter-tyres", "content": "winter-tyres", "priority": 60,
               "stages": ["consideration", "decision"],
               "when": {"in": [{"var": "geo.country"}, ["FR", "DE"]]},
               "cap": {"max": 3, "per": "7d"}}),
    );
    let sidebar = draft["slots"]["sidebar"]["candidates"]
        .as_array_mut()
        .expect("sidebar");
    sidebar.push(json!({"id": "sidebar-test", "priority": -10, "experiment": {
        "variants": [{"content": "model-range", "weight": 50}, {"content": "configurator-teaser", "weight": 50}],
        "holdout": 0.1}}));
    (live, draft)
}

#[test]
fn impact_lists_exactly_the_audiences_whose_page_changes() {
    let (live, draft) = edited();
    let (live, draft) = (compiled(&live), compiled(&draft));
    let found = impact(&live, &draft, NOW, MAX_IMPACT_CONTEXTS);
    assert!(found.audiences > 0 && found.audiences <= MAX_IMPACT_CONTEXTS);
    assert!(
        found.dimensions.iter().any(|d| d == "geo.country"),
        "{:?}",
        found.dimensions
    );
    let hero: Vec<_> = found.changed.iter().filter(|c| c.slot == "hero").collect();
    assert!(!hero.is_empty(), "the new hero shows somewhere");
    for c in &hero {
        let country = c
            .values
            .iter()
            .find(|(k, _)| k == "geo.country")
            .map(|(_, v)| v.clone());
        assert!(
            matches!(country.as_ref().and_then(Json::as_str), Some("FR" | "DE")),
            "{c:?}"
        );
        assert!(c.stage == "consideration" || c.stage == "decision", "{c:?}");
        assert_eq!(c.after, "winter-tyres");
    }
    // Every decision-stage, FR audience on a phone changes (with the cap fresh).
    assert!(hero
        .iter()
        .any(|c| c.stage == "decision" && c.column == "mobile/web"));
    let sidebar: Vec<_> = found
        .changed
        .iter()
        .filter(|c| c.slot == "sidebar")
        .collect();
    assert!(sidebar
        .iter()
        .any(|c| c.before == "model-range"
            && c.after == "model-range 55 % · configurator-teaser 45 %"));
    // Nothing else changes.
    assert!(found
        .changed
        .iter()
        .all(|c| c.slot == "hero" || c.slot == "sidebar"));
}

#[test]
fn impact_of_the_same_bundle_is_nothing() {
    let live = compiled(&crate::read_json("fixtures/automotive.json"));
    let found = impact(&live, &live, NOW, MAX_IMPACT_CONTEXTS);
    assert!(found.audiences > 0);
    assert_eq!(found.changed, vec![]);
}

#[test]
fn impact_reads_stages_by_name() {
    // A stage renamed in the draft: its audiences compare with nothing live.
    let live = crate::read_json("fixtures/automotive.json");
    let mut draft = live.clone();
    draft["journey"]["stages"][4] = json!("owners");
    let text = draft.to_string().replace("\"loyalty\"", "\"owners\"");
    let draft: Json = serde_json::from_str(&text).expect("json");
    let found = impact(
        &compiled(&live),
        &compiled(&draft),
        NOW,
        MAX_IMPACT_CONTEXTS,
    );
    assert!(
        found.changed.iter().all(|c| c.stage == "owners"),
        "only the renamed stage changes"
    );
}

#[test]
fn changes_are_said_in_words() {
    let (live, mut draft) = edited();
    draft["slots"]["hero"]["candidates"][3]["priority"] = json!(35);
    draft["goals"]["quote"]["value"] = json!(true);
    draft["journey"]["stages"] = json!(["awareness", "consideration", "decision", "purchase"]);
    let words: Vec<String> = changes(&live, &draft)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        words.contains(&"content · winter-tyres: added".to_owned()),
        "{words:#?}"
    );
    assert!(
        words.contains(&"hero · hero-winter-tyres: added (1st)".to_owned()),
        "{words:#?}"
    );
    assert!(
        words.contains(&"hero · hero-test-drive: priority 30 → 35".to_owned()),
        "{words:#?}"
    );
    assert!(
        words.contains(&"sidebar · sidebar-test: added (5th)".to_owned()),
        "{words:#?}"
    );
    assert!(
        words.contains(&"goals · quote: value added: true".to_owned()),
        "{words:#?}"
    );
    assert!(
        words.iter().any(|w| w.starts_with("journey: stages [")),
        "{words:#?}"
    );
    // Inserting a candidate first moves nobody: the others keep their order.
    assert!(!words.iter().any(|w| w.contains("moved")), "{words:#?}");
    assert_eq!(changes(&live, &live), vec![]);
}

#[test]
fn a_moved_candidate_is_one_change() {
    let live = crate::read_json("fixtures/automotive.json");
    let mut draft = live.clone();
    let hero = draft["slots"]["hero"]["candidates"]
        .as_array_mut()
        .expect("hero");
    let last = hero.pop().expect("a candidate");
    hero.insert(0, last);
    let words: Vec<String> = changes(&live, &draft)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        words,
        vec!["hero · hero-welcome-back: moved from 7th to 1st".to_owned()]
    );
}
