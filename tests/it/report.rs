//! The coverage report without a browser: the grid it reads from the rules, the
//! findings it makes by running the engine, and experiments shown as their split
//! rather than one visitor's draw. `tests/e2e/report.test.mjs` checks the page.

use micromoment::context::{Channel, DeviceType};
use micromoment::{Budget, Bundle, Context, Reason, Verdict};
use micromoment_cli::report::{self, Arm, Audience, ExperimentFact, Grid, Report, Split, Why};
use serde_json::{json, Value as Json};

const NOW: i64 = 1_795_000_000;

#[track_caller]
fn compile(source: &Json) -> Bundle {
    micromoment::bundle::compile(&source.to_string(), Budget::default())
        .unwrap_or_else(|d| panic!("the bundle compiles: {d:?}"))
}

/// A bundle whose rules read a country, a query parameter, a UTM tag, the daypart, an
/// intent and whether the visitor is returning.
fn rules_bundle() -> Bundle {
    compile(&json!({
        "id": "grid", "version": 1,
        "journey": {
            "stages": ["new", "known"],
            "intents": {"suv": {"cap": 100, "half_life_days": 7, "signals": [{"when": {"starts_with": [{"var": "utm.campaign"}, "suv-"]}, "add": 10}]}}
        },
        "content": {"a": {"html": "<p>A</p>"}, "b": {"html": "<p>B</p>"}, "d": {"html": "<p>D</p>"}},
        "slots": {"hero": {"default": "d", "candidates": [
            {"id": "local", "content": "a", "priority": 2,
             "when": {"and": [{"in": [{"var": "geo.country"}, ["FR", "DE"]]}, {"==": [{"var": "page.query.ref"}, "mail"]}]}},
            {"id": "evening", "content": "b", "priority": 1,
             "when": {"or": [{"==": [{"var": "time.daypart"}, "evening"]}, {">=": [{"var": "intent.suv"}, 30]}, {"==": [{"var": "returning"}, true]}]}}
        ]}}
    }))
}

/// The grid of `bundle` under `limit`: its dimensions (name, values, values left out)
/// and how many audiences it has.
#[track_caller]
fn check_grid(bundle: &Bundle, limit: usize, dimensions: &[(&str, Json, usize)], size: usize) {
    let grid = Grid::new(bundle, NOW, limit);
    let got: Vec<(&str, Json, usize)> = grid
        .dimensions()
        .iter()
        .map(|d| (d.name.as_str(), Json::from(d.values.clone()), d.dropped))
        .collect();
    assert_eq!(got, dimensions);
    assert_eq!(grid.size(), size);
    assert!(
        size <= limit.max(20),
        "{size} audiences for a limit of {limit}"
    );
    assert_eq!(grid.audiences().count(), size);
}

#[test]
fn the_grid_reads_its_dimensions_from_the_rules() {
    // Context variables by name, then the clock (an evening is 20 h), intents and the
    // visitor's history; "unknown" first, then each value the rules mention.
    check_grid(
        &rules_bundle(),
        report::MAX_CONTEXTS,
        &[
            ("geo.country", json!([null, "DE", "FR"]), 0),
            ("page.query.ref", json!([null, "mail"]), 0),
            ("utm.campaign", json!([null, "suv-example"]), 0),
            ("time.hour", json!([null, 20]), 0),
            ("intent.suv", json!([null, 30, 31]), 0),
            ("returning", json!([null, true]), 0),
        ],
        // 2 stages × 5 device types × 2 channels × 3 × 2 × 2 × 2 × 3 × 2.
        20 * 144,
    );
}

#[test]
fn a_grid_over_its_limit_leaves_values_out_then_dimensions() {
    let bundle = rules_bundle();
    // The largest dimensions lose their last values first.
    check_grid(
        &bundle,
        20 * 64,
        &[
            ("geo.country", json!([null, "DE"]), 1),
            ("page.query.ref", json!([null, "mail"]), 0),
            ("utm.campaign", json!([null, "suv-example"]), 0),
            ("time.hour", json!([null, 20]), 0),
            ("intent.suv", json!([null, 30]), 1),
            ("returning", json!([null, true]), 0),
        ],
        20 * 64,
    );
    // Then, every dimension down to one value, whole dimensions from the end.
    check_grid(
        &bundle,
        20 * 8,
        &[
            ("geo.country", json!([null, "DE"]), 1),
            ("page.query.ref", json!([null, "mail"]), 0),
            ("utm.campaign", json!([null, "suv-example"]), 0),
        ],
        20 * 8,
    );
    // Never below one audience per stage and column.
    check_grid(&bundle, 1, &[], 20);
}

#[test]
fn an_audience_is_a_context_a_state_and_a_clock() {
    let bundle = rules_bundle();
    let grid = Grid::new(&bundle, NOW, report::MAX_CONTEXTS);
    // France, from the newsletter link, an SUV campaign, in the evening, SUV intent 30,
    // returning.
    let audience = Audience {
        stage: 1,
        device: DeviceType::Tablet,
        channel: Channel::App,
        picks: vec![2, 1, 1, 1, 1, 1],
    };
    let context: Context = serde_json::from_value(json!({
        "channel": "app",
        "device": {"type": "tablet"},
        "geo": {"country": "FR"},
        "page": {"path": "/", "query": {"ref": "mail"}},
        "utm": {"campaign": "suv-example"}
    }))
    .unwrap();
    assert_eq!(grid.context(&audience), context);
    let state = grid.state(&audience);
    assert_eq!(
        state.stage.and_then(|id| bundle.stage_name(id)),
        Some("known")
    );
    assert_eq!(state.visits, 3, "returning");
    let intents: Vec<f32> = state.intents.iter().map(|i| i.score).collect();
    assert_eq!(intents, [30.0]);
    assert!(state.experiments.is_empty());
    assert_eq!(grid.clock(&audience), NOW - NOW % 86_400 + 20 * 3600);
    // The baseline: nothing known but the stage, the device and the channel, at noon.
    let baseline = grid.baseline(0, DeviceType::Mobile, Channel::Web);
    let context: Context = serde_json::from_value(json!({
        "device": {"type": "mobile"}, "page": {"path": "/"}
    }))
    .unwrap();
    assert_eq!(grid.context(&baseline), context);
    let state = grid.state(&baseline);
    assert_eq!(
        state.stage.and_then(|id| bundle.stage_name(id)),
        Some("new")
    );
    assert_eq!((state.visits, state.intents.len()), (1, 0));
    assert_eq!(grid.clock(&baseline), NOW - NOW % 86_400 + 12 * 3600);
}

/// What a report finds.
struct Findings<'a> {
    /// (slot, candidate, why).
    unreachable: &'a [(&'a str, &'a str, Why<'a>)],
    default_only: &'a [&'a str],
    never_shown: &'a [&'a str],
}

/// The report of `bundle`, with these findings; returned for its matrix.
#[track_caller]
fn check<'b>(bundle: &'b Bundle, findings: Findings<'_>) -> Report<'b> {
    let report = report::build(bundle, "hash", 1000, NOW);
    let unreachable: Vec<(&str, &str, Why<'_>)> = report
        .unreachable
        .iter()
        .map(|u| (u.slot.as_str(), u.candidate.as_str(), u.why))
        .collect();
    assert_eq!(unreachable, findings.unreachable, "unreachable");
    assert_eq!(report.default_only, findings.default_only, "default only");
    assert_eq!(report.never_shown, findings.never_shown, "never shown");
    assert_eq!(
        report.has_findings(),
        !findings.unreachable.is_empty() || !findings.default_only.is_empty()
    );
    report
}

#[test]
fn the_findings_say_what_no_audience_gets_and_why() {
    let bundle = compile(&json!({
        "id": "planted", "version": 1,
        "journey": {"stages": ["new", "known"]},
        "content": {"a": {"html": "<p>A</p>"}, "b": {"html": "<p>B</p>"}, "c": {"html": "<p>C</p>"}, "d": {"html": "<p>D</p>"}},
        "slots": {
            // `always-a` has no conditions and outranks `never-b`.
            "first": {"default": "d", "candidates": [
                {"id": "always-a", "content": "a", "priority": 10},
                {"id": "never-b", "content": "b", "priority": 5}
            ]},
            // No country is both: the slot only ever shows its default.
            "second": {"default": "a", "candidates": [
                {"id": "fr-and-de", "content": "c",
                 "when": {"and": [{"==": [{"var": "geo.country"}, "FR"]}, {"==": [{"var": "geo.country"}, "DE"]}]}}
            ]}
        }
    }));
    check(
        &bundle,
        Findings {
            unreachable: &[
                ("first", "never-b", Why::Shadowed),
                ("second", "fr-and-de", Why::Verdict(Verdict::When)),
            ],
            default_only: &["second"],
            never_shown: &["b", "c", "d"],
        },
    );
}

/// One slot running `hero-trial`: dealer-offer and test-drive at 50/50, 10 % held out,
/// with `others` after it. The name matters: the grid's visitor id of old fell in its
/// holdout, so a report that decided one visitor saw only the default.
fn experiment_bundle(others: Json, top: Json) -> Bundle {
    let mut candidates = vec![json!({"id": "hero-trial", "priority": 10, "experiment": {
        "variants": [{"content": "dealer-offer", "weight": 50}, {"content": "test-drive", "weight": 50}],
        "holdout": 0.1
    }})];
    candidates.extend(others.as_array().cloned().unwrap_or_default());
    compile(&json!({
        "id": "split", "version": 1,
        "journey": {"stages": ["visitor"]},
        "content": {
            "brand": {"html": "<p>brand</p>"}, "dealer-offer": {"html": "<p>dealer</p>"},
            "test-drive": {"html": "<p>drive</p>"}, "fallback": {"html": "<p>fallback</p>"}
        },
        "slots": {"top": top, "hero": {"default": "brand", "candidates": candidates}}
    }))
}

/// The trial's arms in bundle order, with their shares: 45 % + 45 % + 10 % held out.
const ARMS: [(&str, f64); 3] = [
    ("dealer-offer", 0.45),
    ("test-drive", 0.45),
    ("holdout", 0.1),
];

/// What each arm of the trial sees: (content, candidate, reason).
type Sees<'a> = [(&'a str, &'a str, Reason); 3];

/// The trial as drawn: each variant its content, the holdout the slot's default.
const AS_DRAWN: Sees<'static> = [
    ("dealer-offer", "hero-trial", Reason::Experiment),
    ("test-drive", "hero-trial", Reason::Experiment),
    ("brand", "hero-trial", Reason::Holdout),
];

/// Every cell of the hero matrix shows the trial's split, each arm seeing what `sees`
/// says, and shows its largest arm (the first).
#[track_caller]
fn check_split(report: &Report<'_>, sees: Sees<'_>) {
    let hero = report.matrix.iter().find(|m| m.slot == "hero").unwrap();
    let arms: Vec<Arm> = ARMS
        .iter()
        .zip(sees)
        .map(|((variant, share), (content, candidate, reason))| Arm {
            variant: (*variant).into(),
            share: *share,
            content: content.into(),
            candidate: Some(candidate.into()),
            reason,
        })
        .collect();
    let split = Split {
        experiment: "hero-trial".into(),
        arms,
    };
    let (content, candidate, reason) = sees[0];
    for (stage, cells) in &hero.rows {
        assert_eq!(cells.len(), 10, "{stage}");
        for cell in cells {
            assert_eq!(cell.split.as_ref(), Some(&split), "{stage}");
            assert_eq!(
                (
                    cell.content.as_str(),
                    cell.candidate.as_deref(),
                    cell.reason
                ),
                (content, Some(candidate), reason)
            );
        }
    }
    // The JSON report carries it per cell.
    let json = serde_json::to_value(report).unwrap();
    let hero = json["matrix"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["slot"] == "hero"))
        .unwrap();
    let cell = &hero["rows"][0][1][0];
    assert_eq!(cell["split"]["experiment"], "hero-trial");
    assert_eq!(cell["split"]["arms"][0]["share"], 0.45);
    assert_eq!(cell["split"]["arms"][2]["variant"], "holdout");
}

#[test]
fn an_experiment_shows_its_split_and_is_not_default_only() {
    let bundle = experiment_bundle(json!([]), json!({"default": "fallback"}));
    let report = check(
        &bundle,
        Findings {
            unreachable: &[],
            // 90 % of visitors see a variant: not default-only, both variants shown.
            default_only: &["top"],
            never_shown: &[],
        },
    );
    check_split(&report, AS_DRAWN);
    let fact = ExperimentFact {
        slot: "hero".into(),
        experiment: "hero-trial".into(),
        variants: vec![("dealer-offer".into(), 0.5), ("test-drive".into(), 0.5)],
        holdout: 0.1,
    };
    assert_eq!(report.experiments, [fact]);
}

#[test]
fn the_holdout_sees_the_default_not_a_lower_candidate() {
    // The experiment decides every visitor, the held-out ones included: the candidate
    // below it is never looked at.
    let bundle = experiment_bundle(
        json!([{"id": "below", "content": "fallback", "priority": 1}]),
        json!({"default": "brand"}),
    );
    let report = check(
        &bundle,
        Findings {
            unreachable: &[("hero", "below", Why::Shadowed)],
            default_only: &["top"],
            never_shown: &["fallback"],
        },
    );
    check_split(&report, AS_DRAWN);
}

#[test]
fn an_arm_whose_variant_is_already_on_the_page_shows_what_comes_next() {
    // `top` shows dealer-offer first: visitors assigned that variant get the next
    // candidate in the hero, the others the experiment.
    let bundle = experiment_bundle(
        json!([{"id": "below", "content": "fallback", "priority": 1}]),
        json!({"default": "brand", "candidates": [{"id": "top-offer", "content": "dealer-offer"}]}),
    );
    let report = check(
        &bundle,
        Findings {
            unreachable: &[],
            default_only: &[],
            never_shown: &[],
        },
    );
    check_split(
        &report,
        [
            ("fallback", "below", Reason::Candidate),
            AS_DRAWN[1],
            AS_DRAWN[2],
        ],
    );
}

/// Which moments fire which triggers (docs/triggers.md): the engine over the grid of the
/// transitions, signals and trigger rules, three requests in a row per audience.
#[test]
fn the_report_shows_the_moments_that_fire_each_trigger() {
    let mut source = crate::read_json("fixtures/triggers.json");
    // A rule on the request alone is as true before the request's signals as after:
    // it never turns true, and the report says so.
    source["triggers"].as_array_mut().unwrap().push(json!(
        {"id": "french", "on": {"when": {"==": [{"var": "geo.country"}, "FR"]}}, "send": ["crm"]}
    ));
    let bundle = compile(&source);
    let r = report::build(&bundle, "hash", 1, NOW);
    let of = |id: &str| r.triggers.iter().find(|t| t.trigger == id).unwrap();
    let follow_up = of("test-drive-follow-up");
    assert_eq!(follow_up.on, "stage decision");
    assert_eq!(follow_up.cap.as_deref(), Some("1 per 30d"));
    assert!(follow_up.audiences > 0);
    assert!(follow_up.moments.iter().all(|m| m.to == "decision"
        && m.stage != "decision"
        && m.signals.contains(&"event = test_drive_booked".to_owned())));
    let rescue = of("basket-rescue");
    assert_eq!(
        (rescue.delay.as_deref(), rescue.unless.as_deref()),
        (Some("1h"), Some("order_completed"))
    );
    assert!(rescue
        .moments
        .iter()
        .all(|m| m.signals.contains(&"event = basket_add".to_owned())));
    // Built up over requests: the SUV pages twice from no intent at all.
    let keen = of("suv-keen");
    assert!(keen
        .moments
        .iter()
        .any(|m| m.request == 2 && !m.signals.iter().any(|s| s.starts_with("intent."))));
    assert_eq!(of("french").audiences, 0);
    assert!(
        r.has_findings(),
        "--strict fails on a trigger no moment fires"
    );
    let page = report::html(&r);
    assert!(page.contains("<section id=triggers>"));
    assert!(page.contains("no moment of the grid fires it"));
}
