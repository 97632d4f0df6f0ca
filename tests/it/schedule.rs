//! Schedules (DESIGN §14): a candidate or a campaign shows only from `from` until
//! `until`; outside, it is skipped with the trace saying `scheduled`, and the slot falls
//! to its next candidate.

use micromoment::bundle;
use micromoment::time::parse_rfc3339;
use micromoment::{Budget, Context};
use serde_json::{json, Value as Json};

fn at(text: &str) -> i64 {
    parse_rfc3339(text).expect("a time")
}

/// One slot with a scheduled candidate above an unscheduled one, and a scheduled campaign.
fn doc(schedule: Json, campaign: Json) -> Json {
    json!({
        "id": "sched", "version": 1,
        "journey": {"stages": ["visit"]},
        "content": {"sale": {"html": "<b>sale</b>"}, "winter": {"html": "<b>winter</b>"},
                    "base": {"html": "<b>base</b>"}},
        "campaigns": {"winter-push": {"cap": {"max": 5, "per": "7d"}, "schedule": campaign}},
        "slots": {"hero": {"default": "base", "candidates": [
            {"id": "hero-sale", "content": "sale", "priority": 20, "schedule": schedule},
            {"id": "hero-winter", "content": "winter", "priority": 10, "campaign": "winter-push"}
        ]}}
    })
}

fn shown(bundle: &micromoment::Bundle, now: &str) -> (String, Vec<String>) {
    use micromoment::session::{self, Entropy, Mode, Request, Slots, Visitor};
    let context = Context::default();
    let request = Request {
        slots: Slots::Names(&["hero"]),
        mode: Mode::Explain,
        ..Request::new(Visitor::New, &context, at(now), Entropy::Fixed([7; 16]))
    };
    let decision = session::decide(bundle, None, &request)
        .expect("decides")
        .decision;
    let content = decision.decisions[0].content.to_owned();
    let why = decision.trace.expect("a trace").slots[0]
        .candidates
        .iter()
        .map(|c| format!("{}: {}", c.candidate, c.why))
        .collect();
    (content, why)
}

#[test]
fn a_scheduled_candidate_shows_only_inside_its_window() {
    let source = doc(
        json!({"from": "2026-12-01T00:00:00Z", "until": "2026-12-24T00:00:00Z"}),
        json!({"from": "2026-11-01T00:00:00Z"}),
    );
    let bundle = bundle::compile(&source.to_string(), Budget::default()).expect("compiles");
    let (content, _) = shown(&bundle, "2026-12-10T12:00:00Z");
    assert_eq!(content, "sale");
    let (content, why) = shown(&bundle, "2026-11-30T23:59:59Z");
    assert_eq!(content, "winter");
    assert_eq!(
        why[0],
        "hero-sale: scheduled: from 2026-12-01T00:00:00Z until 2026-12-24T00:00:00Z"
    );
    // `until` is excluded.
    let (content, _) = shown(&bundle, "2026-12-24T00:00:00Z");
    assert_eq!(content, "winter");
    // Before the campaign starts, its candidates are skipped too.
    let (content, why) = shown(&bundle, "2026-10-15T00:00:00Z");
    assert_eq!(content, "base");
    assert_eq!(
        why[1],
        "hero-winter: scheduled (campaign winter-push): from 2026-11-01T00:00:00Z"
    );
}

#[test]
fn a_schedule_survives_the_mmb() {
    let source = doc(
        json!({"until": "2027-01-01T00:00:00Z"}),
        json!({"from": "2026-01-01T00:00:00Z"}),
    );
    let bundle = bundle::compile(&source.to_string(), Budget::default()).expect("compiles");
    let bytes = bundle.to_mmb(None).expect("encodes");
    let (loaded, _) =
        micromoment::Bundle::from_mmb(&bytes, None, &Budget::default()).expect("loads");
    assert_eq!(shown(&loaded, "2027-01-01T00:00:00Z").0, "winter");
    assert_eq!(shown(&loaded, "2026-06-01T00:00:00Z").0, "sale");
}

#[test]
fn a_bad_schedule_is_refused_at_its_field() {
    let cases = [
        (json!({"from": "tomorrow"}), "slots.hero.candidates[0].schedule.from: \"tomorrow\" is not a time: use RFC 3339, such as 2026-12-01T00:00:00Z"),
        (json!({"from": "2026-12-02T00:00:00Z", "until": "2026-12-01T00:00:00Z"}), "slots.hero.candidates[0].schedule.until: until must be after from"),
        (json!({}), "slots.hero.candidates[0].schedule: a schedule needs from, until or both"),
        (json!({"form": "2026-12-02T00:00:00Z"}), "slots.hero.candidates[0].schedule.form: unknown field \"form\" (did you mean \"from\"?)"),
        (json!({"until": 5}), "slots.hero.candidates[0].schedule.until: expected an RFC 3339 time, such as 2026-12-01T00:00:00Z"),
    ];
    for (schedule, expected) in cases {
        let source = doc(schedule, json!({"from": "2026-01-01T00:00:00Z"}));
        let errors = bundle::compile(&source.to_string(), Budget::default()).expect_err("refused");
        let found: Vec<String> = errors
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect();
        assert!(
            found.iter().any(|f| f.starts_with(expected)),
            "{expected}\n{found:#?}"
        );
    }
}

#[test]
fn the_report_lists_schedules_and_says_why_a_candidate_is_out() {
    let source = doc(
        json!({"from": "2026-12-01T00:00:00Z", "until": "2026-12-24T00:00:00Z"}),
        json!({"from": "2026-11-01T00:00:00Z"}),
    );
    let bundle = bundle::compile(&source.to_string(), Budget::default()).expect("compiles");
    let report = micromoment_cli::report::build(&bundle, "hash", 0, at("2026-11-15T00:00:00Z"));
    assert_eq!(
        report.schedules,
        vec![
            (
                "hero-sale".to_owned(),
                "from 2026-12-01T00:00:00Z until 2026-12-24T00:00:00Z".to_owned()
            ),
            (
                "campaign winter-push".to_owned(),
                "from 2026-11-01T00:00:00Z".to_owned()
            ),
        ]
    );
    let out = report
        .unreachable
        .iter()
        .find(|u| u.candidate == "hero-sale")
        .expect("out of its window");
    assert!(
        out.why
            .to_string()
            .starts_with("scheduled: from 2026-12-01"),
        "{}",
        out.why
    );
    assert!(micromoment_cli::report::html(&report).contains("<h3>Schedules</h3>"));
}
