//! One request through the session layer, as every face runs it: token in, decision,
//! token out.

use micromoment::session::{self, Entropy, Request, Shape, Slots, Visitor};
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
    slots: &'a [&'a str],
    now: i64,
) -> Request<'a> {
    Request {
        slots: Slots::Names(slots),
        ..Request::new(
            token.map_or(Visitor::New, Visitor::Token),
            ctx,
            now,
            Entropy::Fixed([9; 16]),
        )
    }
}

/// `session::decide`, for slots the bundle has.
#[track_caller]
fn decide<'b>(
    bundle: &'b micromoment::Bundle,
    keys: &Keys,
    request: &Request<'_>,
) -> session::Outcome<'b> {
    session::decide(bundle, Some(keys), request).expect("known slots")
}

#[test]
fn a_visitor_returns_with_the_token_it_was_given() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let slots = ["hero", "sidebar"];
    let ctx = Context::default();
    let first = decide(&bundle, &keys, &request(None, &ctx, &slots, NOW));
    let token = first.token.clone().expect("a token for a new visitor");
    assert_eq!(first.token_rejected, None);
    let state = token::verify(&token, &keys, NOW).unwrap();
    assert_eq!(state.visits, 1);
    assert_eq!(state.expires_at, NOW + session::TOKEN_TTL);
    // Two hours later: a second visit, impressions carried over.
    let second = decide(
        &bundle,
        &keys,
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
    let answer = session::answer(&bundle, &second, Shape::Edge);
    assert_eq!(answer["token"], second.token.as_deref().unwrap());
    assert!(answer.get("state").is_none());
}

#[test]
fn a_bad_token_is_a_new_visitor_with_the_reason_kept_for_logs() {
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let slots = ["hero"];
    let ctx = Context::default();
    let outcome = decide(
        &bundle,
        &keys,
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
    let slots = ["hero"];
    let mut ctx = Context::default();
    ctx.consent.personalization = Some(false);
    let outcome = decide(&bundle, &keys, &request(None, &ctx, &slots, NOW));
    assert_eq!(outcome.token, None);
    assert!(outcome.decision.exposures.is_empty());
    assert_eq!(
        session::answer(&bundle, &outcome, Shape::Edge)["token"],
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
    let slots = ["hero"];
    let mut refused = Context::default();
    refused.consent.personalization = Some(false);
    let mut state = micromoment::token::State::new_visitor([3; 16], NOW, session::TOKEN_TTL);
    state.consent = micromoment::token::Consent(micromoment::token::Consent::OPTED_OUT);
    let token = micromoment::token::sign(&state, &keys).unwrap();
    // Remembered opt-out, no signal now: defaults, nothing written.
    let silent = decide(
        &bundle,
        &keys,
        &request(Some(&token), &Context::default(), &slots, NOW),
    );
    assert_eq!(silent.token, None);
    // Consent given now: personalized again, and the new token forgets the opt-out.
    let mut granted = Context::default();
    granted.consent.personalization = Some(true);
    let back = decide(
        &bundle,
        &keys,
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
    // The same as deciding the page's slots and rewriting in a second pass.
    let known = ["sidebar", "hero"];
    let two_pass = decide(&bundle, &keys, &request(None, &ctx, &known, NOW));
    let fills: Vec<(&str, &str, &str)> = two_pass
        .decision
        .decisions
        .iter()
        .map(|d| (d.slot, d.content, d.html.as_deref().unwrap()))
        .collect();
    let expected = rewrite(PAGE.as_bytes(), &fills);
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

/// A second pass with lol_html: each `data-mm-slot` element of a known fill replaced
/// and tagged, as the one-pass rewriter does.
fn rewrite(page: &[u8], fills: &[(&str, &str, &str)]) -> Vec<u8> {
    use lol_html::html_content::ContentType;
    let mut out = Vec::new();
    let mut rewriter = lol_html::HtmlRewriter::new(
        lol_html::Settings::new().append_element_content_handler(lol_html::element!(
            "[data-mm-slot]",
            |el| {
                let name = el.get_attribute("data-mm-slot").unwrap_or_default();
                if let Some((_, content, html)) = fills.iter().find(|(s, _, _)| *s == name) {
                    el.set_inner_content(html, ContentType::Html);
                    el.set_attribute("data-mm-content", content)?;
                }
                Ok(())
            }
        )),
        |c: &[u8]| out.extend_from_slice(c),
    );
    rewriter.write(page).unwrap();
    rewriter.end().unwrap();
    out
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

/// A streamed page (issue 18): its announced slots decided before the body is read are
/// the one-pass page's decisions and token, each chunk boundary gives the same page,
/// and a slot element that was not announced keeps the page's own content.
#[test]
fn announced_slots_fill_a_streamed_page_as_the_one_pass_page_is_filled() {
    use micromoment::html::SlotRewriter;
    let bundle = crate::scenarios::fixture_bundle("automotive.json");
    let keys = keys();
    let ctx: Context =
        serde_json::from_value(crate::read_json("fixtures/contexts/suv-shopper-lyon.json"))
            .unwrap();
    let request = request(None, &ctx, &[], NOW);
    let one_pass = session::personalize(&bundle, Some(&keys), &request, PAGE.as_bytes())
        .unwrap()
        .unwrap();
    let announced = session::announce(
        &bundle,
        Some(&keys),
        &request,
        &["sidebar", "hero", "sidebar", "not-in-bundle"],
    )
    .expect("the bundle knows the announced slots");
    assert_eq!(announced.outcome.token, one_pass.outcome.token);
    assert_eq!(
        announced.outcome.decision.state,
        one_pass.outcome.decision.state
    );
    let page = PAGE.as_bytes();
    for split in [1, 40, page.len() / 2, page.len() - 1] {
        let mut out = Vec::new();
        let mut filler = announced.filler();
        let mut rewriter = SlotRewriter::each(
            |name, set| filler.fill(name, set),
            |c: &[u8]| out.extend_from_slice(c),
        );
        rewriter.write(&page[..split]).unwrap();
        rewriter.write(&page[split..]).unwrap();
        rewriter.end().unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            String::from_utf8(one_pass.html.clone()).unwrap(),
            "split at {split}"
        );
    }
    // Only the sidebar announced: the hero elements keep the page's content.
    let sidebar = session::announce(&bundle, Some(&keys), &request, &["sidebar"]).unwrap();
    let mut out = Vec::new();
    let mut filler = sidebar.filler();
    let mut rewriter = SlotRewriter::each(
        |name, set| filler.fill(name, set),
        |c: &[u8]| out.extend_from_slice(c),
    );
    rewriter.write(page).unwrap();
    rewriter.end().unwrap();
    let html = String::from_utf8(out).unwrap();
    assert!(html.contains("origin hero") && html.contains("second hero"));
    assert_eq!(sidebar.outcome.decision.decisions.len(), 1);
    assert!(session::announce(&bundle, Some(&keys), &request, &["nowhere"]).is_none());
}
