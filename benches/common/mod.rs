//! Shared by the benchmarks and the tests: a generated bundle of any size.
#![allow(dead_code)]

/// An authoring bundle with `slots` slots of `per_slot` candidates each, every candidate
/// with a stage list, a rule and a cap, for load tests and benchmarks.
pub fn generated_bundle(slots: usize, per_slot: usize) -> String {
    use serde_json::json;
    let stages = [
        "awareness",
        "consideration",
        "decision",
        "purchase",
        "loyalty",
    ];
    let mut content = serde_json::Map::new();
    let mut slot_map = serde_json::Map::new();
    for s in 0..slots {
        content.insert(
            format!("default-{s}"),
            json!({"html": format!("<p>default {s}</p>")}),
        );
        let mut candidates = Vec::new();
        for c in 0..per_slot {
            let id = format!("c-{s}-{c}");
            content.insert(
                id.clone(),
                json!({"html": format!("<p>{id} for {{{{geo.city}}}}</p>"), "json": {"id": id}}),
            );
            candidates.push(json!({
                "id": id, "content": id, "priority": (c % 7) as f64,
                "stages": [stages[c % 5], stages[(c + 1) % 5]],
                "when": {"and": [{"in": [{"var": "geo.country"}, ["FR", "DE", "IT"]]},
                                 {">=": [{"var": "intent.suv"}, (c % 50) as f64]},
                                 {"glob": [{"var": "page.path"}, format!("/models/*/{}/**", c % 3)]}]},
                "cap": {"max": 3, "per": "7d"}
            }));
        }
        slot_map.insert(
            format!("slot-{s}"),
            json!({"default": format!("default-{s}"), "candidates": candidates}),
        );
    }
    serde_json::to_string_pretty(&json!({
        "id": "generated", "version": 1,
        "journey": {"stages": stages,
            "transitions": [{"to": "consideration", "when": {"glob": [{"var": "page.path"}, "/models/**"]}}],
            "intents": {"suv": {"signals": [{"when": {"glob": [{"var": "page.path"}, "/models/suv/**"]}, "add": 10}],
                                "cap": 100, "half_life_days": 14}}},
        "content": content,
        "slots": slot_map
    }))
    .expect("serializes")
}
