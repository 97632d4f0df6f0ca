//! Every XSS payload of the corpus (fixtures/xss: OWASP's filter-evasion cheat sheet and
//! PayloadsAllTheThings) through every context variable a request controls, in every
//! place a placeholder may stand in an `html` rendition: the rendered slot is parsed
//! and must hold exactly the elements and attributes the bundle's author wrote, no
//! event handler, no URL with a script scheme (character references decoded, as the
//! browser decodes them), and no URL whose host the value picked where the author fixed
//! it. The places a placeholder may not stand are compile errors, pinned verbatim.

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
    "<a data-host href=\"/{v}\">a link from the site's root</a>",
    "<img data-host src=\"\\{v}\" alt=\"a backslash reads as a slash\">",
];

/// Values aimed at the gaps escaping alone leaves in URLs: completing a character
/// reference, making a root-relative URL scheme-relative (`/` + `/evil.example`).
const URL_PAYLOADS: &[&str] = &[
    "#106;avascript:alert(1)",
    "&#106;avascript:alert(1)",
    "/evil.example/x",
    "\\evil.example/x",
    "\t/evil.example/x",
    "\n\\evil.example/x",
    "/\\evil.example/x",
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
        .chain(URL_PAYLOADS.iter().map(|p| (*p).to_owned()))
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
            let fixed_host = el.has_attribute("data-host");
            for attr in el.attributes() {
                let name = attr.name();
                let value = url_as_read(&attr.value());
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
                // Where the author wrote a path, the value may not make it
                // scheme-relative (browsers read `\` as `/`).
                let scheme_relative = value.starts_with(['/', '\\'])
                    && value.get(1..).is_some_and(|v| v.starts_with(['/', '\\']));
                if url && fixed_host && scheme_relative {
                    found.get_or_insert(format!("{name}=\"{value}\" on <{tag}> picks the host"));
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

/// An attribute value as a URL parser gets it: character references decoded (numeric
/// ones, and the named ones that make a URL's punctuation), tabs and newlines dropped,
/// leading spaces and controls trimmed; lowercased.
fn url_as_read(value: &str) -> String {
    const NAMED: &[(&str, char)] = &[
        ("amp;", '&'),
        ("colon;", ':'),
        ("sol;", '/'),
        ("bsol;", '\\'),
        ("Tab;", '\t'),
        ("NewLine;", '\n'),
        ("num;", '#'),
        ("quest;", '?'),
        ("lt;", '<'),
        ("gt;", '>'),
        ("quot;", '"'),
    ];
    let mut decoded = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        decoded.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        let (radix, digits) = match rest.strip_prefix('#') {
            Some(r) => match r.strip_prefix(['x', 'X']) {
                Some(hex) => (16, hex),
                None => (10, r),
            },
            None => (0, rest),
        };
        let len = if radix == 0 {
            0
        } else {
            digits.chars().take_while(|c| c.is_digit(radix)).count()
        };
        if len > 0 {
            let code = u32::from_str_radix(&digits[..len], radix).unwrap_or(0xFFFD);
            decoded.push(char::from_u32(code).unwrap_or('\u{fffd}'));
            rest = digits[len..].strip_prefix(';').unwrap_or(&digits[len..]);
        } else if let Some((name, c)) = NAMED.iter().find(|(n, _)| rest.starts_with(n)) {
            decoded.push(*c);
            rest = &rest[name.len()..];
        } else {
            decoded.push('&');
        }
    }
    decoded.push_str(rest);
    decoded
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect::<String>()
        .trim_start_matches(|c: char| c <= ' ')
        .to_ascii_lowercase()
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
        (
            "<a href=\"&#106;ava&Tab;script&colon;alert(1)\">x</a>",
            "href=\"javascript:alert(1)\" on <a>",
        ),
        (
            "<a data-host href=\"/&bsol;evil.example/x\">x</a>",
            "href=\"/\\evil.example/x\" on <a> picks the host",
        ),
    ] {
        assert_eq!(script_bearing(html).as_deref(), Some(why), "{html}");
    }
    assert_eq!(script_bearing("<a href=\"/x?q=javascript:1\">x</a>"), None);
    // An escaped `&` stays a `&`; a scheme-relative URL the author wrote is theirs.
    assert_eq!(
        script_bearing("<a href=\"&amp;#106;avascript:alert(1)\">x</a>"),
        None
    );
    assert_eq!(script_bearing("<a href=\"//cdn.example/x\">x</a>"), None);
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
    assert_eq!(payloads.len(), 139 + 1356 + URL_PAYLOADS.len());
    let benign = shape(&render(&bundle, "benign-value"));
    assert_eq!(benign.elements.len(), VARIABLES.len() * 12);
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
    // `&` and the value `#106;avascript:alert(1)` would make `javascript:`.
    assert_eq!(
        place("<a href=\"&{{utm.content}}\">x</a>"),
        "1:75: content.c.html: placeholder \"utm.content\" follows \"&\": a value could complete a character reference (write &amp; for a literal &); placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<p>Tom&amp;Jerry &#{{utm.term}}</p>"),
        "1:75: content.c.html: placeholder \"utm.term\" follows \"&\": a value could complete a character reference (write &amp; for a literal &); placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<a href=\"https://{{utm.content}}.example.com/\">x</a>"),
        "1:75: content.c.html: placeholder \"utm.content\" can set the host of the URL in attribute \"href\"; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<img src=\"//{{geo.region}}\">"),
        "1:75: content.c.html: placeholder \"geo.region\" can set the host of the URL in attribute \"src\"; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<img srcset=\"/a.png 1x, /{{utm.term}}.png 2x\">"),
        "1:75: content.c.html: placeholder \"utm.term\" is in attribute \"srcset\", a list of URLs a value could add to; placeholders go in text or quoted attribute values"
    );
    assert_eq!(
        place("<a href=\"javascript&colon;go('{{page.query.q}}')\">x</a>"),
        "1:75: content.c.html: placeholder \"page.query.q\" can set the scheme of the URL in attribute \"href\"; placeholders go in text or quoted attribute values"
    );
}

/// `href="/{{x}}"`: a value that starts with `/` or `\\` would make `//evil.example/x`,
/// which browsers load from evil.example. It renders empty there (the link stays on the
/// site's root); a value that starts the URL may still be any http(s) URL.
#[test]
fn a_value_cannot_make_a_root_relative_url_scheme_relative() {
    let source = serde_json::json!({
        "id": "x", "version": 1, "journey": {"stages": ["any"]},
        "content": {"c": {"html": "<a href=\"/{{utm.content}}\">a</a><a href=\"{{utm.content}}\">b</a>"}},
        "slots": {"s": {"default": "c"}}
    });
    let bundle = micromoment::bundle::compile(&source.to_string(), Budget::default()).unwrap();
    for (value, html) in [
        (
            "offers/suv",
            r#"<a href="/offers/suv">a</a><a href="offers/suv">b</a>"#,
        ),
        (
            "offers//x",
            r#"<a href="/offers//x">a</a><a href="offers//x">b</a>"#,
        ),
        (
            "/evil.example/x",
            r#"<a href="/">a</a><a href="/evil.example/x">b</a>"#,
        ),
        (
            "\\evil.example/x",
            r#"<a href="/">a</a><a href="\evil.example/x">b</a>"#,
        ),
        (
            "\t/evil.example/x",
            "<a href=\"/\">a</a><a href=\"\t/evil.example/x\">b</a>",
        ),
        (
            "https://evil.example/",
            r#"<a href="/https://evil.example/">a</a><a href="https://evil.example/">b</a>"#,
        ),
        (
            "javascript:alert(1)",
            r#"<a href="/javascript:alert(1)">a</a><a href="">b</a>"#,
        ),
    ] {
        assert_eq!(render(&bundle, value), html, "{value:?}");
    }
}
