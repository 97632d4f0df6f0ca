//! Shared by the benchmarks and the tests: a generated bundle of any size, and the
//! decision scenario of BENCHMARKS.md (3 slots × 20 candidates, a returning visitor's token).
#![allow(dead_code)]

use micromoment::session::{self, Entropy, Request, Slots, Visitor};
use micromoment::token::Keys;
use micromoment::{Budget, Bundle, Context, SlotRef};

/// The candidate of each slot that is an experiment in [`decision_scenario`] (priority 6,
/// the highest of the slot, as in the V8 comparison's scenario).
pub const EXPERIMENT_AT: usize = 6;

/// An authoring bundle with `slots` slots of `per_slot` candidates each, every candidate
/// with a stage list, a rule and a cap, for load tests and benchmarks.
pub fn generated_bundle(slots: usize, per_slot: usize) -> String {
    generated_bundle_with(slots, per_slot, None)
}

/// [`generated_bundle`], with candidate `experiment_at` of each slot (when given) a
/// 50/50 experiment with a 10 % holdout instead of a plain content.
pub fn generated_bundle_with(
    slots: usize,
    per_slot: usize,
    experiment_at: Option<usize>,
) -> String {
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
            let mut candidate = json!({
                "id": id, "priority": (c % 7) as f64,
                "stages": [stages[c % 5], stages[(c + 1) % 5]],
                "when": {"and": [{"in": [{"var": "geo.country"}, ["FR", "DE", "IT"]]},
                                 {">=": [{"var": "intent.suv"}, (c % 50) as f64]},
                                 {"glob": [{"var": "page.path"}, format!("/models/*/{}/**", c % 3)]}]},
                "cap": {"max": 3, "per": "7d"}
            });
            let offered: Vec<String> = if experiment_at == Some(c) {
                let variants = vec![format!("{id}-a"), format!("{id}-b")];
                candidate["experiment"] = json!({
                    "variants": [{"content": variants[0], "weight": 50},
                                 {"content": variants[1], "weight": 50}],
                    "holdout": 0.1
                });
                variants
            } else {
                candidate["content"] = json!(id);
                vec![id]
            };
            for name in offered {
                content.insert(
                    name.clone(),
                    json!({"html": format!("<p>{name} for {{{{geo.city}}}}</p>"), "json": {"id": name}}),
                );
            }
            candidates.push(candidate);
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

/// The bench time: 2026-11-18.
pub const NOW: i64 = 1_795_000_000;

/// One decision of BENCHMARKS.md: [`generated_bundle_with`]`(3, 20, EXPERIMENT_AT)`, a
/// visitor from Lyon on an SUV model page (the intent signal fires, the transition
/// to consideration applies), with the token a number of earlier requests left.
pub struct DecisionScenario {
    pub bundle: Bundle,
    pub keys: Keys,
    pub context: Context,
    pub slots: Vec<SlotRef>,
    /// The token of the visitor's previous request.
    pub token: String,
    /// When the measured request happens.
    pub now: i64,
}

impl DecisionScenario {
    /// The measured request.
    pub fn request(&self) -> Request<'_> {
        Request {
            slots: Slots::Refs(&self.slots),
            ..Request::new(
                Visitor::Token(&self.token),
                &self.context,
                self.now,
                Entropy::Fixed([5; 16]),
            )
        }
    }
}

/// The scenario after `history` earlier requests of the same visitor, an hour apart.
/// With 2, the visitor has seen one content per slot twice and every cap (3 per 7 days)
/// still allows it: a typical returning visitor. With 12, every candidate the visitor
/// qualifies for is capped and each slot evaluates all of its candidates before
/// falling back to its default: the worst case.
pub fn decision_scenario(history: usize) -> DecisionScenario {
    let source = generated_bundle_with(3, 20, Some(EXPERIMENT_AT));
    let bundle = micromoment::bundle::compile(&source, Budget::default()).expect("compiles");
    let keys = Keys::from_json(
        r#"{"current":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#,
    )
    .expect("keys");
    let slots = bundle.all_slots();
    let mut context = Context::default();
    context.page.path = Some("/models/suv/2/gallery".into());
    context.geo.country = Some("FR".into());
    context.geo.city = Some("Lyon".into());
    context.geo.timezone = Some("Europe/Paris".into());
    let mut token: Option<String> = None;
    let mut now = NOW;
    for _ in 0..history {
        let request = Request {
            slots: Slots::Refs(&slots),
            ..Request::new(
                token.as_deref().map_or(Visitor::New, Visitor::Token),
                &context,
                now,
                Entropy::Fixed([5; 16]),
            )
        };
        token = session::decide(&bundle, Some(&keys), &request)
            .expect("every slot")
            .token;
        now += 3600;
    }
    DecisionScenario {
        bundle,
        keys,
        context,
        slots,
        token: token.expect("a token"),
        now,
    }
}
