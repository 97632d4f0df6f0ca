//! OFREP's halves in the core (docs/ofrep.md): a context read and decided as the Worker
//! does it, each slot's evaluation, the bulk answer's ETag, and the docs' list of what an
//! app may set against the table of variables.

use micromoment::ofrep::{self, Endpoint, Flag, Value};
use micromoment::session::{self, Entropy, Request, Slots, Visitor};
use micromoment::token::{self, Keys};
use micromoment::Context;

const NOW: i64 = 1_795_000_000;

fn keys() -> Keys {
    Keys::from_json(
        r#"{"current":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#,
    )
    .unwrap()
}

fn context(body: &str) -> Context {
    let mut context = Context::default();
    ofrep::apply(body.as_bytes(), &mut context, Endpoint::Bulk, true).expect("a valid body");
    context
}

#[test]
fn every_slot_is_a_flag_with_the_json_rendition_or_the_content_id() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let ctx = context(r#"{"context": {"page.path": "/garage", "device.type": "mobile"}}"#);
    let outcome = session::decide(
        &bundle,
        Some(&keys),
        &Request::new(Visitor::New, &ctx, NOW, Entropy::Fixed([7; 16])),
    )
    .unwrap();
    let token = outcome.token.as_deref();
    let flags: Vec<Flag<'_>> = outcome
        .decision
        .decisions
        .iter()
        .map(|d| Flag::of(d, outcome.decision.stage, token))
        .collect();
    assert_eq!(flags.len(), 5);
    let card = flags.iter().find(|f| f.key == "app-card").unwrap();
    assert_eq!(card.variant, "app-garage");
    assert!(matches!(card.value, Value::Json(json) if json["title"] == "My garage"));
    assert_eq!(card.reason, "DEFAULT");
    let hero = serde_json::to_value(flags.iter().find(|f| f.key == "hero").unwrap()).unwrap();
    assert_eq!(hero["metadata"]["stage"], "awareness");
    assert_eq!(hero["metadata"]["token"].as_str(), token);
    assert!(
        hero["metadata"].get("candidate").is_none(),
        "absent, not null: {hero}"
    );
    // The app banner on a phone has no JSON rendition: its id; a candidate's rule matched.
    let banner = flags.iter().find(|f| f.key == "banner").unwrap();
    assert_eq!(banner.value, Value::Id("app-download"));
    assert_eq!(banner.reason, "TARGETING_MATCH");
    assert_eq!(banner.metadata.candidate, Some("banner-app"));
}

/// The flags of a decision, and its new token.
fn evaluate<'b>(
    bundle: &'b micromoment::Bundle,
    keys: &Keys,
    visitor: Visitor<'_>,
    ctx: &Context,
    now: i64,
) -> session::Outcome<'b> {
    session::decide(
        bundle,
        Some(keys),
        &Request {
            slots: Slots::All,
            ..Request::new(visitor, ctx, now, Entropy::Fixed([7; 16]))
        },
    )
    .unwrap()
}

fn flags<'o>(outcome: &'o session::Outcome<'_>) -> Vec<Flag<'o>> {
    let decision = &outcome.decision;
    decision
        .decisions
        .iter()
        .map(|d| Flag::of(d, decision.stage, outcome.token.as_deref()))
        .collect()
}

#[test]
fn the_etag_names_the_flags_the_context_and_the_token_held() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let ctx = context(r#"{"context": {"page.path": "/garage"}}"#);
    let first = evaluate(&bundle, &keys, Visitor::New, &ctx, NOW);
    let token = first.token.clone().unwrap();
    // The ETag the answer carries: with the state the client's next request will read.
    let held = token::verify(&token, &keys, NOW).unwrap();
    let sent = ofrep::etag(&flags(&first), &ctx, Some(&held));

    // A poll a second later with that token and context gets the same flags, and the
    // ETag computed with the state it comes with is the one it sent.
    let prior = token::verify(&token, &keys, NOW + 1).unwrap();
    let poll = evaluate(&bundle, &keys, Visitor::Token(&token), &ctx, NOW + 1);
    let polled = flags(&poll);
    let variants = |flags: &[Flag<'_>]| -> Vec<String> {
        flags.iter().map(|f| f.variant.to_owned()).collect()
    };
    assert_eq!(variants(&polled), variants(&flags(&first)));
    assert_eq!(ofrep::etag(&polled, &ctx, Some(&prior)), sent);
    assert!(ofrep::may_answer_unchanged(Some(&prior), NOW + 1));

    // Another context, or no token held: another ETag.
    let other = context(r#"{"context": {"page.path": "/offers"}}"#);
    assert_ne!(ofrep::etag(&polled, &other, Some(&prior)), sent);
    assert_ne!(ofrep::etag(&polled, &ctx, None), sent);
    // The next answer's token (a state that moved on) is another holder.
    let next = token::verify(poll.token.as_deref().unwrap(), &keys, NOW + 1).unwrap();
    assert_ne!(ofrep::etag(&polled, &ctx, Some(&next)), sent);
    // A day on, the token is due for renewal: no 304.
    let late = NOW + ofrep::RENEW_AFTER_SECS + 1;
    assert!(!ofrep::may_answer_unchanged(Some(&prior), late));
}

#[test]
fn the_docs_list_every_name_an_app_may_set() {
    let docs = std::fs::read_to_string(crate::repo_path("docs/ofrep.md")).unwrap();
    let section = docs
        .split("## The evaluation context")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .unwrap();
    for name in ofrep::settable() {
        assert!(
            section.contains(&format!("`{name}`")),
            "docs/ofrep.md does not list `{name}`"
        );
    }
}

#[test]
fn the_openapi_description_has_the_protocols_routes() {
    let yaml = std::fs::read_to_string(crate::repo_path("openapi.yaml")).unwrap();
    for path in [
        "/ofrep/v1/evaluate/flags:",
        "/ofrep/v1/evaluate/flags/{key}:",
        "/v1/decide:",
        "/v1/events:",
        "/v1/bundle:",
    ] {
        assert!(yaml.contains(path), "openapi.yaml lacks {path}");
    }
}
