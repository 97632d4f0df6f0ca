//! One request through the session layer, as every face runs it: token in, decision,
//! token out.

use micromoment::session::{self, Entropy, Request, Visitor};
use micromoment::token::{self, Keys, TokenError};
use micromoment::view::state_to_json;
use micromoment::Context;

const NOW: i64 = 1_795_000_000;

fn keys() -> Keys {
    Keys::from_json(
        r#"{"current":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#,
    )
    .unwrap()
}

fn request<'a>(
    token: Option<&'a str>,
    ctx: &'a Context,
    slots: &'a [micromoment::SlotRef],
    now: i64,
) -> Request<'a> {
    Request {
        visitor: token.map_or(Visitor::New, Visitor::Token),
        context: ctx,
        slots,
        now,
        entropy: Entropy::Fixed([9; 16]),
        explain: false,
    }
}

#[test]
fn a_visitor_returns_with_the_token_it_was_given() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let slots = bundle.resolve_slots(["hero", "sidebar"]).unwrap();
    let ctx = Context::default();
    let first = session::decide(&bundle, Some(&keys), &request(None, &ctx, &slots, NOW));
    let token = first.token.clone().expect("a token for a new visitor");
    assert_eq!(first.token_rejected, None);
    let state = token::verify(&token, &keys, NOW).unwrap();
    assert_eq!(state.visits, 1);
    assert_eq!(state.expires_at, NOW + session::TOKEN_TTL);
    // Two hours later: a second visit, impressions carried over.
    let second = session::decide(
        &bundle,
        Some(&keys),
        &request(Some(&token), &ctx, &slots, NOW + 7200),
    );
    assert_eq!(second.decision.state.visits, 2);
    assert_eq!(second.decision.state.visitor, [9; 16]);
    // What the first request showed is still counted after the round trip.
    let view = state_to_json(&bundle, &second.decision.state);
    let first_hero = first.decision.decisions[0].content;
    let expected = if second.decision.decisions[0].content == first_hero {
        2
    } else {
        1
    };
    assert_eq!(view["impressions"][first_hero]["total"], expected);
    let answer = session::answer(&bundle, &second, false);
    assert_eq!(answer["token"], second.token.as_deref().unwrap());
    assert!(answer.get("state").is_none());
}

#[test]
fn a_bad_token_is_a_new_visitor_with_the_reason_kept_for_logs() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let slots = bundle.resolve_slots(["hero"]).unwrap();
    let ctx = Context::default();
    let outcome = session::decide(
        &bundle,
        Some(&keys),
        &request(Some("v1.k1.AAAA.BBBB"), &ctx, &slots, NOW),
    );
    assert!(matches!(
        outcome.token_rejected,
        Some(TokenError::BadTag | TokenError::BadBase64)
    ));
    assert_eq!(outcome.decision.state.visits, 1);
    assert!(outcome.token.is_some());
}

#[test]
fn without_consent_nothing_is_written() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let slots = bundle.resolve_slots(["hero"]).unwrap();
    let mut ctx = Context::default();
    ctx.consent.personalization = Some(false);
    let outcome = session::decide(&bundle, Some(&keys), &request(None, &ctx, &slots, NOW));
    assert_eq!(outcome.token, None);
    assert!(outcome.decision.exposures.is_empty());
    assert_eq!(
        session::answer(&bundle, &outcome, false)["token"],
        serde_json::Value::Null
    );
}

#[test]
fn events_move_the_journey_without_showing_anything() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let ctx = Context::default();
    let outcome = session::events(
        &bundle,
        Some(&keys),
        &request(None, &ctx, &[], NOW),
        &["order_completed".to_owned()],
    );
    assert_eq!(outcome.decision.stage, "purchase");
    assert!(outcome.decision.state.impressions.is_empty());
    let token = outcome.token.expect("a token");
    assert_eq!(token::verify(&token, &keys, NOW).unwrap().visits, 1);
    assert_eq!(
        session::set_cookie("abc"),
        format!(
            "mm=abc; Path=/; Max-Age={}; HttpOnly; Secure; SameSite=Lax",
            session::TOKEN_TTL
        )
    );
}

#[test]
fn several_events_raise_the_request_intents_once() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let mut ctx = Context::default();
    ctx.page.path = Some("/models/suv/terra".into());
    let names = [
        "quote_requested".to_owned(),
        "brochure_downloaded".to_owned(),
        "configurator_saved".to_owned(),
    ];
    let once = session::events(
        &bundle,
        Some(&keys),
        &request(None, &ctx, &[], NOW),
        &names[..1],
    );
    let thrice = session::events(&bundle, Some(&keys), &request(None, &ctx, &[], NOW), &names);
    let suv = |o: &session::Outcome<'_>| {
        state_to_json(&bundle, &o.decision.state)["intents"]["suv"]["score"].clone()
    };
    assert_eq!(suv(&once), suv(&thrice));
    assert_eq!(thrice.decision.stage, "decision");
}

#[test]
fn consent_given_now_clears_an_earlier_opt_out() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let slots = bundle.resolve_slots(["hero"]).unwrap();
    let mut refused = Context::default();
    refused.consent.personalization = Some(false);
    let mut state = micromoment::token::State::new_visitor([3; 16], NOW, session::TOKEN_TTL);
    state.consent = micromoment::token::Consent(micromoment::token::Consent::OPTED_OUT);
    let token = micromoment::token::sign(&state, &keys).unwrap();
    // Remembered opt-out, no signal now: defaults, nothing written.
    let silent = session::decide(
        &bundle,
        Some(&keys),
        &request(Some(&token), &Context::default(), &slots, NOW),
    );
    assert_eq!(silent.token, None);
    // Consent given now: personalized again, and the new token forgets the opt-out.
    let mut granted = Context::default();
    granted.consent.personalization = Some(true);
    let back = session::decide(
        &bundle,
        Some(&keys),
        &request(Some(&token), &granted, &slots, NOW),
    );
    let fresh =
        micromoment::token::verify(back.token.as_deref().expect("a token"), &keys, NOW).unwrap();
    assert!(!fresh.consent.opted_out());
    let _ = refused;
}

/// A page as sites mark it: two known slots, a slot the bundle does not know, the hero
/// twice, and a decoy `data-mm-slot` inside a comment and a script, which are not
/// elements.
const PAGE: &str = r#"<!doctype html><html><body>
<!-- <div data-mm-slot="banner">not an element</div> -->
<div data-mm-slot="sidebar"><p>origin sidebar</p></div>
<script>document.write('<div data-mm-slot="banner">x</div>')</script>
<main><div data-mm-slot="hero" class="hero">origin hero</div>
<div data-mm-slot="nowhere">kept as it is</div></main>
<footer data-mm-slot=hero>second hero</footer></body></html>"#;

#[test]
fn a_page_is_decided_and_filled_in_one_pass_in_document_order() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let ctx: Context =
        serde_json::from_value(crate::read_json("fixtures/contexts/suv-shopper-lyon.json"))
            .unwrap();
    let page = session::personalize(
        &bundle,
        Some(&keys),
        &request(None, &ctx, &[], NOW),
        PAGE.as_bytes(),
    )
    .unwrap()
    .expect("the page has slots the bundle knows");
    let decisions = &page.outcome.decision.decisions;
    // Document order, each slot once; the comment, the script and the unknown slot
    // are not decided.
    let slots: Vec<&str> = decisions.iter().map(|d| d.slot).collect();
    assert_eq!(slots, ["sidebar", "hero"]);
    // The same as deciding the scanned slots and rewriting in a second pass.
    let scanned = micromoment::html::scan_slots(PAGE.as_bytes()).unwrap();
    assert_eq!(scanned, ["sidebar", "hero", "nowhere"]);
    let known = bundle.resolve_slots(["sidebar", "hero"]).unwrap();
    let two_pass = session::decide(&bundle, Some(&keys), &request(None, &ctx, &known, NOW));
    let fills: Vec<micromoment::html::Fill<'_>> = two_pass
        .decision
        .decisions
        .iter()
        .map(|d| micromoment::html::Fill {
            slot: d.slot,
            content: d.content,
            html: d.html.as_deref().unwrap(),
        })
        .collect();
    let expected = micromoment::html::rewrite_page(PAGE.as_bytes(), &fills).unwrap();
    assert_eq!(
        String::from_utf8(page.html.clone()).unwrap(),
        String::from_utf8(expected).unwrap()
    );
    assert_eq!(page.outcome.token, two_pass.token);
    assert_eq!(page.outcome.decision.state, two_pass.decision.state);
    let html = String::from_utf8(page.html).unwrap();
    assert!(html.contains("kept as it is"));
    assert!(html.contains("<!-- <div data-mm-slot=\"banner\">not an element</div> -->"));
    assert_eq!(
        html.matches(&format!("data-mm-content=\"{}\"", decisions[1].content))
            .count(),
        2
    );
}

#[test]
fn a_page_without_known_slots_is_not_personalized() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let ctx = Context::default();
    let page = br#"<html><body><div data-mm-slot="nowhere">x</div><p>no slots</p></body></html>"#;
    let outcome =
        session::personalize(&bundle, Some(&keys()), &request(None, &ctx, &[], NOW), page).unwrap();
    assert!(outcome.is_none(), "nothing decided, nothing to write");
}
