//! Invariants of the decision engine over random request sequences (proptest).

use micromoment::view::state_to_json;
use micromoment::{Budget, Bundle, Context};
use proptest::prelude::*;
use serde_json::json;

/// A bundle that exercises every mechanism: a capped candidate, a campaign cap shared
/// by two candidates, a sequence, an experiment with holdout, and two slots competing
/// for the same contents.
fn bundle() -> Bundle {
    let source = json!({
        "id": "props", "version": 1,
        "journey": {"stages": ["new", "engaged", "buyer"],
            "transitions": [{"to": "engaged", "when": {"==": [{"var": "event"}, "engage"]}},
                            {"to": "buyer", "when": {"==": [{"var": "event"}, "buy"]}},
                            {"to": "new", "back": true, "when": {"==": [{"var": "event"}, "reset"]}}],
            "intents": {"shoes": {"signals": [{"when": {"glob": [{"var": "page.path"}, "/shoes/**"]}, "add": 25}],
                                  "cap": 100, "half_life_days": 1}}},
        "content": {
            "a": {"html": "A"}, "b": {"html": "B"}, "c": {"html": "C"}, "d": {"html": "D"},
            "x": {"html": "X"}, "y": {"html": "Y"}, "fallback": {"html": "F"}, "other": {"html": "O"}
        },
        "campaigns": {"promo": {"cap": {"max": 3, "per": "1d"}}},
        "slots": {
            "hero": {"default": "fallback", "candidates": [
                {"id": "capped-a", "content": "a", "priority": 10, "cap": {"max": 2, "per": "12h"}},
                {"id": "story-b", "content": "b", "priority": 9, "after": ["a"]},
                {"id": "promo-c", "content": "c", "priority": 8, "campaign": "promo"},
                {"id": "test", "experiment": {"variants": [{"content": "x", "weight": 50}, {"content": "y", "weight": 50}],
                                              "holdout": 0.1}, "stages": ["engaged"], "priority": 20},
                {"id": "shoes-d", "content": "d", "priority": 5, "when": {">=": [{"var": "intent.shoes"}, 30]}}
            ]},
            "side": {"default": "fallback", "candidates": [
                {"id": "side-a", "content": "a", "priority": 3, "cap": {"max": 2, "per": "12h"}},
                {"id": "promo-d", "content": "d", "priority": 2, "campaign": "promo"},
                {"id": "side-other", "content": "other", "priority": 1}
            ]}
        }
    });
    micromoment::bundle::compile(&source.to_string(), Budget::default())
        .expect("the property bundle compiles")
}

#[derive(Debug, Clone)]
struct Request {
    advance_secs: i64,
    path: &'static str,
    event: Option<&'static str>,
    slots: Vec<&'static str>,
}

fn request() -> impl Strategy<Value = Request> {
    (
        prop_oneof![0i64..120, 1800i64..7200, 3600i64..86400],
        prop::sample::select(vec!["/", "/shoes/red", "/shoes/blue/42", "/hats"]),
        prop::option::of(prop::sample::select(vec!["engage", "buy", "reset"])),
        prop::sample::select(vec![
            vec!["hero"],
            vec!["side"],
            vec!["hero", "side"],
            vec!["side", "hero"],
        ]),
    )
        .prop_map(|(advance_secs, path, event, slots)| Request {
            advance_secs,
            path,
            event,
            slots,
        })
}

fn context(r: &Request) -> Context {
    let mut ctx = Context::default();
    ctx.page.path = Some(r.path.to_owned());
    ctx.event = r.event.map(str::to_owned);
    ctx
}

/// Every counting window (opened by the first show after the previous one closed) holds
/// at most `max` shows: the cap semantics the token can carry, recomputed independently
/// from the show times.
fn windows_respect(shows: &[i64], period: i64, max: usize) -> bool {
    let mut start: Option<i64> = None;
    let mut count = 0;
    for &t in shows {
        match start {
            Some(s) if t - s < period => count += 1,
            _ => {
                start = Some(t);
                count = 1;
            }
        }
        if count > max {
            return false;
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn caps_sequences_and_one_content_per_page_hold(
        visitor in any::<[u8; 16]>(),
        requests in prop::collection::vec(request(), 1..40),
    ) {
        let bundle = bundle();
        let mut state = None;
        let mut now = 1_790_000_000i64;
        let mut a_shows = Vec::new();
        let mut promo_shows = Vec::new();
        let mut a_seen = false;
        for r in &requests {
            now += r.advance_secs;
            let ctx = context(r);
            let ask = || crate::Ask { state: state.as_ref(), visitor, context: &ctx, now, slots: &r.slots };
            let decision = crate::decide(&bundle, ask());
            // Deterministic: the same inputs give the same decision.
            let again = crate::decide(&bundle, ask());
            prop_assert_eq!(&decision, &again);
            let mut page: Vec<&str> = Vec::new();
            for d in &decision.decisions {
                let by_candidate = d.candidate.is_some() && d.content != "fallback";
                if by_candidate {
                    // No content in two slots of one page, unless one is a default.
                    prop_assert!(!page.contains(&d.content), "{} twice on one page", d.content);
                    page.push(d.content);
                }
                if d.content == "a" { a_shows.push(now); }
                if d.content == "b" { prop_assert!(a_seen, "b shown before a was ever seen"); }
                if matches!(d.candidate, Some("promo-c" | "promo-d")) { promo_shows.push(now); }
            }
            if decision.decisions.iter().any(|d| d.content == "a") { a_seen = true; }
            state = Some(decision.state);
        }
        prop_assert!(windows_respect(&a_shows, 12 * 3600, 2), "content cap exceeded: {:?}", a_shows);
        prop_assert!(windows_respect(&promo_shows, 86400, 3), "campaign cap exceeded: {:?}", promo_shows);
        if let Some(state) = &state {
            // The state always renders by names.
            prop_assert!(state_to_json(&bundle, state).is_object());
        }
    }
}

#[test]
fn experiment_split_follows_the_weights_over_100000_visitors() {
    let bundle = bundle();
    let ctx = Context {
        event: Some("engage".into()),
        ..Context::default()
    };
    let (mut x, mut y, mut holdout) = (0u32, 0u32, 0u32);
    let mut seed = 42u64;
    let n = 100_000;
    for _ in 0..n {
        let visitor = next_visitor(&mut seed);
        let decision = crate::decide(
            &bundle,
            crate::Ask {
                state: None,
                visitor,
                context: &ctx,
                now: 1_790_000_000,
                slots: &["hero"],
            },
        );
        match decision.decisions[0].variant {
            Some("x") => x += 1,
            Some("y") => y += 1,
            Some("holdout") => holdout += 1,
            other => panic!("unexpected variant {other:?}"),
        }
    }
    let share = |k: u32| f64::from(k) / f64::from(n);
    // 50/50 of the 90 % covered; 10 % held out.
    assert!((share(x) - 0.45).abs() < 0.01, "x {}", share(x));
    assert!((share(y) - 0.45).abs() < 0.01, "y {}", share(y));
    assert!(
        (share(holdout) - 0.10).abs() < 0.005,
        "holdout {}",
        share(holdout)
    );
}

/// SplitMix64: a fixed, well-mixed stream of visitor ids.
fn next_visitor(seed: &mut u64) -> [u8; 16] {
    let mut word = || {
        *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&word().to_le_bytes());
    out[8..].copy_from_slice(&word().to_le_bytes());
    out
}
