//! Every XSS payload of the corpus (fixtures/xss: OWASP's filter-evasion cheat sheet and
//! PayloadsAllTheThings) through every context variable a request controls, in every
//! place a placeholder may stand in an `html` rendition: the rendered slot is parsed
//! and must hold exactly the elements and attributes the bundle's author wrote, no
//! event handler, and no URL with a script scheme. The places a placeholder may not
//! stand are compile errors, pinned verbatim.

use lol_html::{element, HtmlRewriter, Settings};
use micromoment::session::{self, Entropy, Request, Visitor};
use micromoment::{Budget, Context};

/// Variables whose value comes from the request (URL, headers), as the Worker fills
/// them; `geo.*` comes from the platform, but development headers set it too.
const VARIABLES: &[&str] = &[
    "utm.source",
    "utm.medium",
    "utm.campaign",
    "utm.term",
    "utm.content",
    "page.query.q",
    "page.path",
    "page.host",
    "referrer.host",
    "geo.city",
    "geo.region",
    "app.version",
];

/// Each allowed place, with the variable `{v}` in it.
const PLACES: &[&str] = &[
    "<p class=\"promo\">Hello {v}, welcome</p>",
    "<p title=\"{v}\">quoted attribute</p><p data-x='{v}'>single quotes</p>",
    "<a href=\"{v}\">a link that starts with the value</a>",
    "<a href=\"/offers?c={v}&amp;x=1\">a link with the value in its query</a>",
    "<img src=\"{v}\" alt=\"{v}\">",
    "<form action=\"{v}\"><button formaction=\"https://shop.example/{v}\">go</button></form>",
    "<textarea>{v}</textarea><title>{v}</title>",
];

fn payloads() -> Vec<String> {
    let owasp = std::fs::read_to_string(crate::repo_path("fixtures/xss/payloads.txt")).unwrap();
    let patt =
        std::fs::read_to_string(crate::repo_path("fixtures/xss/payloadsallthethings.txt")).unwrap();
    owasp
        .lines()
        .map(|l| l.replace("\\n", "\n"))
        .chain(patt.lines().map(str::to_owned))
        .filter(|l| !l.is_empty())
        .collect()
}

fn bundle() -> micromoment::Bundle {
    let html: String = VARIABLES
        .iter()
        .flat_map(|var| {
            PLACES
                .iter()
                .map(move |p| p.replace("{v}", &format!("{{{{{var}}}}}")))
        })
        .collect();
    let source = serde_json::json!({
        "id": "xss", "version": 1,
        "journey": {"stages": ["any"]},
        "content": {"all-places": {"html": html}},
        "slots": {"hero": {"default": "all-places"}}
    });
    micromoment::bundle::compile(&source.to_string(), Budget::default()).expect("compiles")
}

fn context(value: &str) -> Context {
    let mut ctx = Context::default();
    ctx.utm.source = Some(value.into());
    ctx.utm.medium = Some(value.into());
    ctx.utm.campaign = Some(value.into());
    ctx.utm.term = Some(value.into());
    ctx.utm.content = Some(value.into());
    ctx.page.query.insert("q".into(), value.into());
    ctx.page.path = Some(value.into());
    ctx.page.host = Some(value.into());
    ctx.referrer.host = Some(value.into());
    ctx.geo.city = Some(value.into());
    ctx.geo.region = Some(value.into());
    ctx.app.version = Some(value.into());
    ctx
}

/// What a rendered fragment is made of: each element's name and attribute names, in
/// order, and the verdicts on what could run.
#[derive(Debug, PartialEq)]
struct Shape {
    elements: Vec<(String, Vec<String>)>,
}

/// Why a fragment could run script, if it could.
fn script_bearing(html: &str) -> Option<String> {
    let mut found = None;
    let mut rewriter = HtmlRewriter::new(
        Settings::new().append_element_content_handler(element!("*", |el| {
            let tag = el.tag_name();
            if [
                "script", "iframe", "object", "embed", "svg", "math", "style", "base", "link",
                "meta",
            ]
            .contains(&tag.as_str())
            {
                found.get_or_insert(format!("element <{tag}>"));
            }
            for attr in el.attributes() {
                let name = attr.name();
                let value: String = attr
                    .value()
                    .chars()
                    .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
                    .collect::<String>()
                    .trim_start_matches(|c: char| c <= ' ')
                    .to_ascii_lowercase();
                if name.starts_with("on") || name == "style" || name == "srcdoc" {
                    found.get_or_insert(format!("attribute {name} on <{tag}>"));
                }
                let url = [
                    "href",
                    "src",
                    "action",
                    "formaction",
                    "xlink:href",
                    "poster",
                    "srcset",
                    "background",
                ]
                .contains(&name.as_str());
                if url
                    && ["javascript:", "vbscript:", "data:"]
                        .iter()
                        .any(|s| value.starts_with(s))
                {
                    found.get_or_insert(format!("{name}=\"{value}\" on <{tag}>"));
                }
            }
            Ok(())
        })),
        |_: &[u8]| {},
    );
    rewriter.write(html.as_bytes()).unwrap();
    rewriter.end().unwrap();
    found
}

fn shape(html: &str) -> Shape {
    let mut elements = Vec::new();
    let mut rewriter = HtmlRewriter::new(
        Settings::new().append_element_content_handler(element!("*", |el| {
            elements.push((
                el.tag_name(),
                el.attributes().iter().map(|a| a.name()).collect(),
            ));
            Ok(())
        })),
        |_: &[u8]| {},
    );
    rewriter.write(html.as_bytes()).unwrap();
    rewriter.end().unwrap();
    Shape { elements }
}

fn render(bundle: &micromoment::Bundle, value: &str) -> String {
    let ctx = context(value);
    let request = Request::new(Visitor::New, &ctx, 1_790_000_000, Entropy::Fixed([1; 16]));
    let outcome = session::decide(bundle, None, &request).expect("every slot");
    outcome.decision.decisions[0]
        .html
        .as_deref()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn the_checker_sees_what_runs() {
    // The test below can only fail if this one sees script where there is script.
    for (html, why) in [
        (
            "<a href=/x onclick=alert(1)>x</a>",
            "attribute onclick on <a>",
        ),
        ("<img src=x onerror=alert(1)>", "attribute onerror on <img>"),
        (
            "<a href=\" JaVa\tScript:alert(1)\">x</a>",
            "href=\"javascript:alert(1)\" on <a>",
        ),
        ("<p>x</p><script>alert(1)</script>", "element <script>"),
        ("<svg><animate onbegin=alert(1)>", "element <svg>"),
    ] {
        assert_eq!(script_bearing(html).as_deref(), Some(why), "{html}");
    }
    assert_eq!(script_bearing("<a href=\"/x?q=javascript:1\">x</a>"), None);
    // Text that reads like a script URL outside a URL is text.
    assert_eq!(
        script_bearing("<p title=\"javascript:alert(1)\">x</p>"),
        None
    );
}

#[test]
fn every_payload_through_every_request_variable_renders_inert() {
    let bundle = bundle();
    let payloads = payloads();
    assert_eq!(payloads.len(), 139 + 1356);
    let benign = shape(&render(&bundle, "benign-value"));
    assert_eq!(benign.elements.len(), VARIABLES.len() * 10);
    let mut failures = Vec::new();
    let mut emptied = 0;
    for payload in &payloads {
        let html = render(&bundle, payload);
        if let Some(why) = script_bearing(&html) {
            failures.push(format!("{payload:?}: {why}"));
        }
        let shape = shape(&html);
        if shape != benign {
            failures.push(format!(
                "{payload:?}: the markup changed: {:?}",
                shape.elements.len()
            ));
        }
        // A value that would set a URL's scheme renders empty there.
        if html.contains("href=\"\"") {
            emptied += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} payloads:\n{}",
        failures.len(),
        payloads.len(),
        failures.join("\n")
    );
    println!(
        "{} payloads x {} variables x {} places inert; {emptied} blanked at a URL's start",
        payloads.len(),
        VARIABLES.len(),
        PLACES.len()
    );
    assert!(
        emptied > 100,
        "javascript: payloads are blanked where they would start a URL"
    );
}

#[test]
fn the_unsafe_places_are_compile_errors() {
    let place = |html: &str| {
        let source = serde_json::json!({
            "id": "x", "version": 1, "journey": {"stages": ["any"]},
            "content": {"c": {"html": html}}, "slots": {"s": {"default": "c"}}
        });
        let diagnostics =
            micromoment::bundle::compile(&source.to_string(), Budget::default()).unwrap_err();
        diagnostics
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        place("<a href=/offers?c={{utm.campaign}}>x</a>"),
        "1:75: content.c.html: placeholder \"utm.campaign\" is in the unquoted value of attribute \"href\": quote the value; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<button onclick=\"track('{{utm.source}}')\">x</button>"),
        "1:75: content.c.html: placeholder \"utm.source\" is in the event handler attribute \"onclick\"; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<a href=\"javascript:go('{{page.query.q}}')\">x</a>"),
        "1:75: content.c.html: placeholder \"page.query.q\" can set the scheme of the URL in attribute \"href\"; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<script>var c = \"{{utm.campaign}}\";</script>"),
        "1:75: content.c.html: placeholder \"utm.campaign\" is inside <script>; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<style>.x { content: \"{{geo.city}}\" }</style>"),
        "1:75: content.c.html: placeholder \"geo.city\" is inside <style>; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<p style=\"color: {{utm.term}}\">x</p>"),
        "1:75: content.c.html: placeholder \"utm.term\" is in the attribute \"style\"; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<!-- {{referrer.host}} --><p>x</p>"),
        "1:75: content.c.html: placeholder \"referrer.host\" is inside an HTML comment; placeholders go in text or quoted attribute values"
    );
}
