//! Triggers (DESIGN §11), the core's part: authoring diagnostics, the compiled form,
//! and which requests fire which triggers (stage entered, event, rule turned true),
//! within caps, never for crawlers or without consent.

use micromoment::context::DeviceType;
use micromoment::session::{self, Entropy, Request, Shape, Slots, Visitor};
use micromoment::token::State;
use micromoment::{Budget, Bundle, Context};
use serde_json::{json, Value as Json};

const NOW: i64 = 1_796_169_600; // 2026-12-02T00:00:00Z
const HOUR: i64 = 3600;
const DAY: i64 = 86_400;

fn source() -> Json {
    crate::read_json("fixtures/triggers.json")
}

fn compile(source: &Json) -> Bundle {
    micromoment::bundle::compile(&source.to_string(), Budget::default())
        .unwrap_or_else(|d| panic!("compiles: {d:?}"))
}

fn diagnostics(source: &Json) -> Vec<String> {
    match micromoment::bundle::compile(&source.to_string(), Budget::default()) {
        Ok(_) => Vec::new(),
        Err(d) => d
            .iter()
            .map(|d| format!("{}: {}", d.path, d.message))
            .collect(),
    }
}

/// One request; returns the triggers it fired (by id) and the new state.
fn request(
    bundle: &Bundle,
    state: Option<&State>,
    ctx: &Context,
    now: i64,
) -> (Vec<String>, State, Json) {
    let outcome = session::decide(
        bundle,
        None,
        &Request {
            slots: Slots::Names(&["hero"]),
            ..Request::new(
                state.map_or(Visitor::New, Visitor::State),
                ctx,
                now,
                Entropy::Fixed([7; 16]),
            )
        },
    )
    .unwrap();
    let fired = outcome
        .decision
        .triggers
        .iter()
        .map(|f| f.trigger.to_owned())
        .collect();
    let answer = session::answer(bundle, &outcome, Shape::Full);
    (fired, outcome.decision.state.clone(), answer)
}

fn page(path: &str) -> Context {
    let mut ctx = Context::default();
    ctx.page.path = Some(path.to_owned());
    ctx.device.kind = Some(DeviceType::Desktop);
    ctx
}

fn event(name: &str) -> Context {
    let mut ctx = page("/");
    ctx.event = Some(name.to_owned());
    ctx
}

#[test]
fn a_stage_entered_fires_once_within_its_cap() {
    let b = compile(&source());
    let (fired, s, _) = request(&b, None, &page("/models/x"), NOW);
    assert!(fired.is_empty(), "consideration has no trigger: {fired:?}");
    let (fired, s, answer) = request(&b, Some(&s), &event("test_drive_booked"), NOW + HOUR);
    assert_eq!(fired, ["test-drive-follow-up"]);
    assert_eq!(
        answer["triggers"],
        json!([{"trigger": "test-drive-follow-up", "send": ["crm"], "stage": "decision"}]),
        "tools show what fired"
    );
    // Staying in the stage is not entering it.
    let (fired, s, answer) = request(&b, Some(&s), &event("test_drive_booked"), NOW + 2 * HOUR);
    assert!(fired.is_empty());
    assert!(answer.get("triggers").is_none(), "no triggers, no field");
    // Back to awareness and in again within 30 days: the cap holds.
    let (_, s, _) = request(&b, Some(&s), &event("reset"), NOW + 3 * HOUR);
    let (fired, s, _) = request(&b, Some(&s), &event("test_drive_booked"), NOW + 4 * HOUR);
    assert!(fired.is_empty(), "capped at 1 per 30d: {fired:?}");
    // After the window: it fires again.
    let (_, s, _) = request(&b, Some(&s), &event("reset"), NOW + 31 * DAY);
    let (fired, _, _) = request(
        &b,
        Some(&s),
        &event("test_drive_booked"),
        NOW + 31 * DAY + HOUR,
    );
    assert_eq!(fired, ["test-drive-follow-up"]);
}

/// A delayed trigger fires only for a returning visitor (a request with a valid token):
/// a cookie-less request, which anyone can send in a loop, schedules nothing.
#[test]
fn an_event_fires_with_its_delay_and_cancelling_event() {
    let b = compile(&source());
    let (fired, first, _) = request(&b, None, &event("basket_add"), NOW - 60);
    assert!(
        fired.is_empty(),
        "a new visitor schedules nothing: {fired:?}"
    );
    let basket_rescue =
        micromoment::ids::stable_id(micromoment::ids::IdKind::Trigger, "basket-rescue");
    assert!(
        !first.impressions.iter().any(|i| i.id == basket_rescue),
        "nor counts against the trigger's cap"
    );
    let outcome = session::decide(
        &b,
        None,
        &Request {
            slots: Slots::Names(&["hero"]),
            ..Request::new(
                Visitor::State(&first),
                &event("basket_add"),
                NOW,
                Entropy::Fixed([1; 16]),
            )
        },
    )
    .unwrap();
    let fired = &outcome.decision.triggers;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].trigger, "basket-rescue");
    assert_eq!(fired[0].send, ["crm", "cdp"]);
    assert_eq!(fired[0].delay_secs, Some(HOUR));
    assert_eq!(fired[0].unless, Some("order_completed"));
    // The second basket of the week starts nothing.
    let state = outcome.decision.state.clone();
    let (again, _, _) = request(&b, Some(&state), &event("basket_add"), NOW + DAY);
    assert!(again.is_empty());
}

#[test]
fn a_rule_fires_when_this_request_turned_it_true() {
    let b = compile(&source());
    let (fired, s, _) = request(&b, None, &page("/models/suv/x5"), NOW);
    assert!(fired.is_empty(), "30 of 50: {fired:?}");
    let (fired, s, _) = request(&b, Some(&s), &page("/models/suv/x5"), NOW + 60);
    assert_eq!(fired, ["suv-keen"], "60 ≥ 50: turned true now");
    let (fired, _, _) = request(&b, Some(&s), &page("/models/suv/x5"), NOW + 120);
    assert!(fired.is_empty(), "still true is not turned true: {fired:?}");
}

#[test]
fn crawlers_prefetches_and_no_consent_fire_nothing() {
    let b = compile(&source());
    let mut bot = event("basket_add");
    bot.device.kind = Some(DeviceType::Bot);
    assert!(request(&b, None, &bot, NOW).0.is_empty());
    let mut prefetch = event("basket_add");
    prefetch.prefetch = true;
    assert!(request(&b, None, &prefetch, NOW).0.is_empty());
    let mut refused = event("basket_add");
    refused.consent.personalization = Some(false);
    assert!(request(&b, None, &refused, NOW).0.is_empty());
}

#[test]
fn several_events_of_one_request_fire_in_order() {
    let b = compile(&source());
    let names = ["basket_add".to_owned(), "test_drive_booked".to_owned()];
    let fired_for = |visitor: Visitor<'_>| -> Vec<String> {
        session::events(
            &b,
            None,
            &Request::new(visitor, &page("/"), NOW, Entropy::Fixed([2; 16])),
            &names,
        )
        .decision
        .triggers
        .iter()
        .map(|f| f.trigger.to_owned())
        .collect()
    };
    let (_, seen, _) = request(&b, None, &page("/"), NOW - 60);
    assert_eq!(
        fired_for(Visitor::State(&seen)),
        ["basket-rescue", "test-drive-follow-up"]
    );
    // A cookie-less request's later events do not make it a returning visitor's.
    assert_eq!(fired_for(Visitor::New), ["test-drive-follow-up"]);
}

#[test]
fn triggers_survive_the_compiled_form() {
    let b = compile(&source());
    let bytes = b.to_mmb(None).unwrap();
    let (loaded, _) = Bundle::from_mmb(&bytes, None, &Budget::default()).unwrap();
    assert_eq!(loaded, b);
    assert_eq!((b.counts().destinations, b.counts().triggers), (2, 3));
}

#[test]
fn authoring_mistakes_are_diagnostics_with_paths() {
    let mut s = source();
    s["triggers"] = json!([
        {"id": "a", "on": {"stage": "decison"}, "send": ["crm"]},
        {"id": "b", "on": {"event": "x"}, "send": ["cmr"]},
        {"id": "c", "on": {"stage": "awareness", "event": "x"}, "send": ["crm"]},
        {"id": "d", "on": {"event": "x"}, "send": ["crm"], "unless": {"event": "y"}},
        {"id": "e", "on": {"event": "x"}, "send": ["crm"], "delay": "31d", "unless": {"event": "y"}},
        {"id": "f", "on": {"event": "x"}, "send": []},
        {"id": "a", "on": {"event": "x"}, "send": ["crm", "crm"]},
        {"id": "g", "on": {"when": {"bogus": [1]}}, "send": ["crm"]}
    ]);
    s["destinations"]["bad"] =
        json!({"kind": "webhok", "url": "https://crm.example/hook", "secret": "MM_X"});
    s["journey"]["stages"] = json!(["awareness", "consideration", "decision", "orphan"]);
    let mut orphan = source();
    orphan["journey"]["stages"] = json!(["awareness", "consideration", "decision", "orphan"]);
    orphan["triggers"] = json!([{"id": "o", "on": {"stage": "orphan"}, "send": ["crm"]}]);
    assert_eq!(
        diagnostics(&orphan),
        ["triggers[0].on.stage: no transition leads to this stage, so no visitor ever enters it: the trigger can never fire"]
    );
    let got = diagnostics(&s);
    // The kinds a bundle may name are their table's (webhook, segment, …).
    let kinds = micromoment::bundle::DestinationKind::choices();
    let unknown_kind = format!(
        r#"destinations.bad.kind: unknown destination kind "webhok" (did you mean "webhook"?): use {kinds}"#
    );
    let expected = [
        unknown_kind.as_str(),
        r#"destinations.bad.url: "https://crm.example/hook" is not the name of a Worker var or secret (MM_DEST_ then A-Z, 0-9, _; e.g. MM_DEST_CRM_URL): a destination names where its url is set, never the value"#,
        r#"destinations.bad.secret: "MM_X" does not start with MM_DEST_: a destination names only the Worker vars and secrets meant for destinations (e.g. MM_DEST_CRM_SECRET), so no bundle can send another secret of the Worker"#,
        r#"triggers[0].on.stage: unknown stage "decison" (did you mean "decision"?)"#,
        r#"triggers[1].send[0]: unknown destination "cmr" (did you mean "crm"?)"#,
        r#"triggers[2].on: name exactly one moment: {"stage": …}, {"event": …} or {"when": …}"#,
        "triggers[3].unless: `unless` needs a `delay`: without one the trigger is sent at once, before any later event could cancel it",
        "triggers[4].delay: a delay is at most 30d",
        "triggers[5].send: name at least one destination",
        r#"triggers[6].id: trigger "a" is declared twice"#,
        "triggers[6].send[1]: this destination is named twice",
    ];
    for e in expected {
        assert!(got.iter().any(|g| g == e), "missing {e:?} in {got:#?}");
    }
    assert!(
        got.iter().any(|g| g.starts_with("triggers[7].on.when")),
        "{got:#?}"
    );
}

/// A destination names only Worker vars and secrets meant for destinations: a bundle
/// that named `JOURNEY_KEYS` as a Segment write key would have the Worker post the
/// journey keys, as HTTP Basic auth, to a URL of the bundle's choosing.
#[test]
fn destinations_name_only_mm_dest_vars() {
    let with = |url: Json, secret: Json| {
        let mut s = source();
        s["destinations"]["cdp"] = json!({"kind": "segment", "url": url, "secret": secret});
        diagnostics(&s)
    };
    assert_eq!(
        with(json!("MM_DEST_X_URL"), json!("JOURNEY_KEYS")),
        [
            r#"destinations.cdp.secret: "JOURNEY_KEYS" does not start with MM_DEST_: a destination names only the Worker vars and secrets meant for destinations (e.g. MM_DEST_CRM_SECRET), so no bundle can send another secret of the Worker"#
        ]
    );
    assert_eq!(
        with(json!("ORIGIN"), json!("MM_DEST_")),
        [
            r#"destinations.cdp.url: "ORIGIN" does not start with MM_DEST_: a destination names only the Worker vars and secrets meant for destinations (e.g. MM_DEST_CRM_URL), so no bundle can send another secret of the Worker"#,
            r#"destinations.cdp.secret: "MM_DEST_" is 8 bytes: a destination var is MM_DEST_ and a name, 9 to 64 bytes (e.g. MM_DEST_CRM_SECRET)"#,
        ]
    );
    let long = format!("MM_DEST_{}", "K".repeat(57));
    assert_eq!(
        with(json!("MM_DEST_X_URL"), json!(long)),
        [format!("destinations.cdp.secret: \"{long}\" is 65 bytes: a destination var is MM_DEST_ and a name, 9 to 64 bytes (e.g. MM_DEST_CRM_SECRET)")]
    );
    // A value where the name belongs: a secret pasted in is not repeated.
    assert_eq!(
        with(json!("MM_DEST_X_URL"), json!("whsec_c2VjcmV0LXNlY3JldA==")),
        ["destinations.cdp.secret: this is not the name of a Worker var or secret (MM_DEST_ then A-Z, 0-9, _; e.g. MM_DEST_CRM_SECRET): a destination names where its secret is set, never the value"]
    );
    assert_eq!(
        with(json!("MM_DEST_X_URL"), json!("mm_dest_crm_secret")),
        ["destinations.cdp.secret: this is not the name of a Worker var or secret (MM_DEST_ then A-Z, 0-9, _; e.g. MM_DEST_CRM_SECRET): a destination names where its secret is set, never the value"]
    );
    assert!(with(
        json!("MM_DEST_X_URL"),
        json!(format!("MM_DEST_X_{}", "K".repeat(54)))
    )
    .is_empty());
    assert!(with(json!("MM_DEST_0_A"), json!("MM_DEST_0_B")).is_empty());
    // A url and a secret of two destinations: one's secret would go to the other's URL.
    assert_eq!(
        with(json!("MM_DEST_ZAPIER_URL"), json!("MM_DEST_CRM_SECRET")),
        [
            r#"destinations.cdp.secret: "MM_DEST_CRM_SECRET" and the url "MM_DEST_ZAPIER_URL" are not one destination's vars: a destination's url and secret share their name up to the last _ (e.g. MM_DEST_CRM_URL and MM_DEST_CRM_SECRET), so no bundle can send one destination's secret to another's URL"#
        ]
    );
    assert_eq!(
        with(json!("MM_DEST_URL"), json!("MM_DEST_KEY")).len(),
        1,
        "no destination name before the last _"
    );
}

/// A trigger's cap is the person's once linked (DESIGN §11): the phone's follow-up
/// reaches the profile with its push, and the laptop, synced, does not send another
/// one within the 30 days.
#[test]
fn a_trigger_cap_holds_across_a_persons_devices() {
    use micromoment::profile::{self, Message, Op, Profile, Reply, Sync};
    use micromoment::token::Link;
    let b = compile(&source());
    let link = Some(Link {
        profile: [0x42; 16],
        seq: 0,
        devices: 1,
        linked_at: 0,
    });
    let mut store = Profile::default();
    let sync = |store: &mut Profile, state: &State, now: i64| -> State {
        let reply = store.exchange(
            &b,
            Message {
                op: Op::Sync,
                device: state.visitor,
                seq: state.link.map_or(0, |l| l.seq),
                kind: None,
                now,
                state: state.clone(),
            },
        );
        let Reply::Synced { view, seq, devices } = reply else {
            panic!("{reply:?}");
        };
        let mut adopted = profile::adopt(state, &view, devices);
        if let Some(l) = adopted.link.as_mut() {
            l.seq = seq;
        }
        adopted
    };
    // The phone books a test drive: the follow-up fires, and the push shares it.
    let mut phone = State::new_visitor([1; 16], NOW, 30 * DAY);
    phone.link = link;
    let phone = sync(&mut store, &phone, NOW);
    let ctx = event("test_drive_booked");
    let (fired, mut next, _) = request(&b, Some(&phone), &ctx, NOW + 60);
    assert_eq!(fired, ["test-drive-follow-up"]);
    let push = profile::plan_push(&b, &ctx, &phone, &mut next, Sync::Adopted, NOW + 60)
        .expect("the request shares its changes");
    assert!(matches!(store.exchange(&b, push), Reply::Pushed { .. }));
    // A request whose only change is the follow-up's record still shares it (the
    // slot's content has no cap, so its record alone would not).
    let mut without = next.clone();
    without.impressions.clear();
    assert!(
        profile::shares_changes(&b, &without, &next),
        "a capped trigger's record is a change the other devices must see"
    );
    // The laptop is linked the next day, goes back and enters decision again: capped.
    let mut laptop = State::new_visitor([2; 16], NOW + DAY, 30 * DAY);
    laptop.link = link;
    let laptop = sync(&mut store, &laptop, NOW + DAY);
    let (_, laptop, _) = request(&b, Some(&laptop), &event("reset"), NOW + DAY + 60);
    let (fired, _, _) = request(
        &b,
        Some(&laptop),
        &event("test_drive_booked"),
        NOW + DAY + 120,
    );
    assert!(fired.is_empty(), "1 per 30d for the person: {fired:?}");
}
