//! Where each `{{placeholder}}` of an `html` rendition sits, decided when the bundle is
//! compiled, so a value from the request (a UTM tag, a query parameter, a referrer) can
//! never become markup, script or style, nor pick the site a URL points to.
//!
//! A placeholder's value is HTML-escaped when it is rendered. Escaping is enough in
//! element text and in quoted attribute values, and nowhere else: in an unquoted value a
//! space ends the attribute, in an event handler or a `javascript:` URL the escaped text
//! is still script, in `<script>`, `<style>` and foreign (SVG, MathML) content the
//! parser decodes or ignores the escapes. So the compiler parses the rendition with
//! lol_html (the parser the edge rewrites pages with), finds the token each placeholder
//! falls in by its byte offset, and accepts only those two places. Even there, a static
//! `&` right before a placeholder (`&`, `&#`, `&am`) is refused: escaping keeps `&` out
//! of the value, not the letters and digits that would complete a character reference
//! the browser then decodes (`&` and `#106;` make `j`).
//!
//! In URL attributes (`href`, `src`, `action`, …) the static text before a placeholder
//! is read as the browser reads it (character references decoded, tabs and newlines
//! dropped, leading spaces trimmed): a placeholder that can reach the URL's scheme is
//! marked for a check at render time (its value may only make the URL relative or
//! http(s)); one right after a lone `/` or `\` is marked for another (its value may not
//! start with a second one, which would make the URL scheme-relative, `//evil.example`);
//! one in the URL's authority (`https://{{x}}.example.com/`, `//{{x}}`), where it would
//! pick the host, is refused, and so is one in a list of URLs (`srcset`, `ping`), where
//! a value could add a URL of its own.
//!
//! This module reads only the rendition it is given; it does no I/O.

use std::cell::RefCell;
use std::fmt;
use std::ops::Range;

use lol_html::html_content::{Comment, TextChunk};
use lol_html::{doc_comments, doc_text, element, text, HtmlRewriter, Settings};

/// Where a placeholder may go, and how it is rendered there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// Element text, or a quoted attribute value that is not a URL: escaped.
    Escaped,
    /// A quoted URL attribute value at a position that can set the URL's scheme:
    /// escaped, and rendered only when it keeps the URL relative or http(s).
    /// `at_start`: the placeholder begins the value (an http(s) URL is allowed then).
    Url { at_start: bool },
    /// A quoted URL attribute value right after its lone leading `/` (or `\`): escaped,
    /// and rendered only when it does not start with another, which would make the URL
    /// scheme-relative (`//evil.example/`) and let the value pick the host.
    RootPath,
}

/// Why a placeholder cannot go where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unsafe {
    /// In an attribute value written without quotes.
    Unquoted { attribute: String },
    /// In an event handler attribute (`onclick`, …).
    EventHandler { attribute: String },
    /// In an attribute whose value is CSS or HTML (`style`, `srcdoc`).
    Active { attribute: String },
    /// In a URL attribute whose scheme runs scripts, or as part of the scheme itself.
    ScriptUrl { attribute: String },
    /// In an element whose attributes or content load or run code (`<script>`,
    /// `<style>`, `<iframe>`, `<object>`, `<base>`, `<link>`, `<meta>`, …).
    Element { tag: String },
    /// In SVG or MathML, where escaped text is decoded again.
    Foreign { tag: String },
    /// In an HTML comment.
    Comment,
    /// In markup: a tag or attribute name, an end tag, a doctype.
    Markup,
    /// Right after a static `&` (and letters, digits or `#`): the value could complete
    /// a character reference (`&` and `#106;` make `j`).
    CharRef,
    /// In a URL's authority (`https://{{x}}.example.com/`, `//{{x}}`): the value would
    /// pick the host.
    Host { attribute: String },
    /// In an attribute that holds a list of URLs (`srcset`, `ping`): the value could
    /// add a URL of its own.
    UrlList { attribute: String },
}

impl fmt::Display for Unsafe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsafe::Unquoted { attribute } => write!(
                f,
                "is in the unquoted value of attribute \"{attribute}\": quote the value"
            ),
            Unsafe::EventHandler { attribute } => {
                write!(f, "is in the event handler attribute \"{attribute}\"")
            }
            Unsafe::Active { attribute } => write!(f, "is in the attribute \"{attribute}\""),
            Unsafe::ScriptUrl { attribute } => write!(
                f,
                "can set the scheme of the URL in attribute \"{attribute}\""
            ),
            Unsafe::Element { tag } => write!(f, "is inside <{tag}>"),
            Unsafe::Foreign { tag } => write!(f, "is inside <{tag}> (SVG or MathML)"),
            Unsafe::Comment => f.write_str("is inside an HTML comment"),
            Unsafe::Markup => f.write_str("is inside a tag, outside any quoted attribute value"),
            Unsafe::CharRef => f.write_str(
                "follows \"&\": a value could complete a character reference (write &amp; for a literal &)",
            ),
            Unsafe::Host { attribute } => {
                write!(f, "can set the host of the URL in attribute \"{attribute}\"")
            }
            Unsafe::UrlList { attribute } => write!(
                f,
                "is in attribute \"{attribute}\", a list of URLs a value could add to"
            ),
        }
    }
}

/// Elements whose attributes load or run code, or whose content is not HTML text: no
/// placeholder goes anywhere in them.
const CODE_ELEMENTS: &[&str] = &[
    "script",
    "style",
    "iframe",
    "frame",
    "frameset",
    "object",
    "embed",
    "applet",
    "base",
    "link",
    "meta",
    "xmp",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
];

/// Attributes whose value is a URL.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "action",
    "formaction",
    "poster",
    "cite",
    "background",
    "data",
    "ping",
    "srcset",
    "imagesrcset",
    "longdesc",
    "lowsrc",
    "dynsrc",
    "usemap",
    "codebase",
    "manifest",
    "icon",
    "archive",
    "profile",
    "xlink:href",
];

/// URL attributes whose value is a list of URLs (split at spaces or commas).
const URL_LIST_ATTRIBUTES: &[&str] = &["srcset", "imagesrcset", "ping", "archive"];

/// The schemes whose URLs have a host after any mix of `/` and `\` (WHATWG URL's
/// special schemes).
const SPECIAL_SCHEMES: &[&str] = &["http", "https", "ws", "wss", "ftp", "file"];

/// Schemes whose URLs run code.
const SCRIPT_SCHEMES: &[&str] = &["javascript", "vbscript", "data"];

/// Attributes whose value is CSS or markup.
const ACTIVE_ATTRIBUTES: &[&str] = &["style", "srcdoc"];

/// What the parse found: each token's byte range with the verdict for placeholders in it.
#[derive(Default)]
struct Regions {
    found: Vec<(Range<usize>, Result<RegionKind, Unsafe>)>,
    /// The attribute name of each URL value, by the value's first byte.
    url_names: Vec<(usize, String)>,
}

#[derive(Debug, Clone, Copy)]
enum RegionKind {
    Text,
    Attribute,
    /// A URL attribute's value, starting at this byte.
    Url,
}

/// The placement of each placeholder of `html` (given by the byte offset of its `{{`),
/// in order.
pub(crate) fn classify(html: &str, starts: &[usize]) -> Vec<Result<Placement, Unsafe>> {
    let regions = RefCell::new(Regions::default());
    let parsed = parse(html, &regions);
    let regions = regions.into_inner();
    starts
        .iter()
        .map(|&start| {
            if parsed.is_err() {
                return Err(Unsafe::Markup);
            }
            // Regions nest (text inside <script> is text, and script text): any refusal
            // wins; a placeholder in no region is in markup.
            let mut placement = Err(Unsafe::Markup);
            for (range, kind) in regions.found.iter().filter(|(r, _)| r.contains(&start)) {
                match kind {
                    Err(e) => return Err(e.clone()),
                    Ok(RegionKind::Url) => {
                        placement = Ok(url_placement(html, range.start, start, &regions)?)
                    }
                    Ok(RegionKind::Text) if opens_markup(html, start) => {
                        return Err(Unsafe::Markup)
                    }
                    Ok(RegionKind::Text | RegionKind::Attribute) => {
                        if placement.is_err() {
                            placement = Ok(Placement::Escaped);
                        }
                    }
                }
            }
            if placement.is_ok() && follows_open_reference(html, start) {
                return Err(Unsafe::CharRef);
            }
            placement
        })
        .collect()
}

/// Whether the text right before `start` is a `&` and letters, digits or `#` that the
/// value could complete into a character reference: escaping keeps `&` out of the
/// value, not what follows one.
fn follows_open_reference(html: &str, start: usize) -> bool {
    html.get(..start)
        .unwrap_or("")
        .trim_end_matches(|c: char| c.is_ascii_alphanumeric() || c == '#')
        .ends_with('&')
}

/// Whether the text right before `start` is a `<` (or `</`, `<!`, `<?`) that the value
/// would complete into a tag: escaping keeps `<` out of the value, not letters after it.
fn opens_markup(html: &str, start: usize) -> bool {
    let before = html.get(..start).unwrap_or("");
    let before = before.strip_suffix(['/', '!', '?']).unwrap_or(before);
    before.ends_with('<')
}

/// Whether a character can be part of a URL scheme.
fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

/// The placement of a placeholder at `start` in a URL attribute value starting at
/// `value_start`, from the static text before it as the browser reads it: whether that
/// text already fixes the URL's scheme and host, leaves the host to the value, or leaves
/// the scheme to it (and then whether static text after it could complete one).
fn url_placement(
    html: &str,
    value_start: usize,
    start: usize,
    regions: &Regions,
) -> Result<Placement, Unsafe> {
    let attribute = regions.url_attribute(value_start);
    let raw = html.get(value_start..start).unwrap_or("");
    // Placeholders before this one count as empty, which any of them may render.
    let before = url_text(&without_placeholders(raw));
    match url_prefix(&before) {
        Prefix::Script => return Err(Unsafe::ScriptUrl { attribute }),
        Prefix::Authority => return Err(Unsafe::Host { attribute }),
        Prefix::Root => return Ok(Placement::RootPath),
        Prefix::Fixed => return Ok(Placement::Escaped),
        Prefix::Open => {}
    }
    // Static scheme characters right after the placeholder, up to a ':' (or an entity
    // that could be one), would let its value start a scheme they complete.
    let mut after = html
        .get(start..)
        .and_then(|rest| rest.find("}}").and_then(|close| rest.get(close + 2..)))
        .unwrap_or("");
    loop {
        if let Some(rest) = after.strip_prefix("{{") {
            // A later placeholder is checked on its own.
            match rest.find("}}") {
                Some(close) => after = rest.get(close + 2..).unwrap_or(""),
                None => break,
            }
            continue;
        }
        match after.chars().next() {
            Some(':' | '&') => return Err(Unsafe::ScriptUrl { attribute }),
            Some(c) if is_scheme_char(c) || matches!(c, '\t' | '\n' | '\r') => {
                after = after.get(c.len_utf8()..).unwrap_or("");
            }
            _ => break,
        }
    }
    Ok(Placement::Url {
        at_start: before.is_empty() && !raw.contains("{{"),
    })
}

/// What the static text of a URL before a placeholder leaves to its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prefix {
    /// Nothing fixed yet: the value may still set the scheme.
    Open,
    /// A script scheme (`javascript:`): whatever follows runs.
    Script,
    /// A lone `/` or `\`: the value starts the path, or makes the URL scheme-relative
    /// if it starts with another.
    Root,
    /// Inside the authority: the value picks the host.
    Authority,
    /// The scheme and host are fixed: the value is in a path, a query, a fragment or
    /// an opaque URL (`mailto:`).
    Fixed,
}

/// What `before` (a URL's static start, as [`url_text`] reads it) leaves to a value
/// that follows it, as the WHATWG URL parser reads it: special schemes (`https:`) skip
/// any mix of `/` and `\` before the authority, and a relative URL that starts with two
/// of them is scheme-relative.
fn url_prefix(before: &str) -> Prefix {
    let delimiters = ['/', '\\', '?', '#'];
    if let Some((scheme, rest)) = split_scheme(before) {
        if SCRIPT_SCHEMES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
        {
            return Prefix::Script;
        }
        let authority = if SPECIAL_SCHEMES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
        {
            Some(rest.trim_start_matches(['/', '\\']))
        } else {
            rest.strip_prefix("//")
        };
        return match authority {
            Some(authority) if !authority.contains(delimiters) => Prefix::Authority,
            _ => Prefix::Fixed,
        };
    }
    let path = before.trim_start_matches(['/', '\\']);
    match before.len() - path.len() {
        0 if before.contains(delimiters) || before.contains(':') => Prefix::Fixed,
        0 => Prefix::Open,
        1 if path.is_empty() => Prefix::Root,
        1 => Prefix::Fixed,
        _ if path.contains(delimiters) => Prefix::Fixed,
        _ => Prefix::Authority,
    }
}

/// The scheme of `url` and what follows its `:`, if it starts with one.
fn split_scheme(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once(':')?;
    let mut chars = scheme.chars();
    (chars.next()?.is_ascii_alphabetic() && chars.all(is_scheme_char)).then_some((scheme, rest))
}

/// `text` without its `{{placeholders}}`.
fn without_placeholders(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(rest.get(..open).unwrap_or(""));
        rest = rest.get(open..).unwrap_or("");
        match rest.find("}}") {
            Some(close) => rest = rest.get(close + 2..).unwrap_or(""),
            None => rest = "",
        }
    }
    out.push_str(rest);
    out
}

/// A URL attribute's static text as the URL parser gets it: character references
/// decoded, leading spaces and control characters trimmed, tabs and newlines dropped.
fn url_text(raw: &str) -> String {
    decode_references(raw)
        .trim_start_matches(is_url_space)
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// What a browser trims off the start of a URL.
fn is_url_space(c: char) -> bool {
    c <= ' '
}

/// The named character references whose text has an ASCII character: WHATWG's table,
/// the names that end in `;`. Every other name decodes to characters no URL parser
/// reads as a scheme, a delimiter or a space, or is no reference at all and stays as
/// written; the legacy names without `;` (`&amp`, `&lt`, …) decode to `&<>"`, which no
/// URL parser reads as such either.
const ASCII_REFERENCES: &[(&str, &str)] = &[
    ("Tab", "\t"),
    ("NewLine", "\n"),
    ("excl", "!"),
    ("QUOT", "\""),
    ("quot", "\""),
    ("num", "#"),
    ("dollar", "$"),
    ("percnt", "%"),
    ("AMP", "&"),
    ("amp", "&"),
    ("apos", "'"),
    ("lpar", "("),
    ("rpar", ")"),
    ("ast", "*"),
    ("midast", "*"),
    ("plus", "+"),
    ("comma", ","),
    ("period", "."),
    ("sol", "/"),
    ("colon", ":"),
    ("semi", ";"),
    ("LT", "<"),
    ("lt", "<"),
    ("nvlt", "<\u{20d2}"),
    ("equals", "="),
    ("bne", "=\u{20e5}"),
    ("GT", ">"),
    ("gt", ">"),
    ("nvgt", ">\u{20d2}"),
    ("quest", "?"),
    ("commat", "@"),
    ("lbrack", "["),
    ("lsqb", "["),
    ("bsol", "\\"),
    ("rbrack", "]"),
    ("rsqb", "]"),
    ("Hat", "^"),
    ("UnderBar", "_"),
    ("lowbar", "_"),
    ("DiacriticalGrave", "`"),
    ("grave", "`"),
    ("fjlig", "fj"),
    ("lbrace", "{"),
    ("lcub", "{"),
    ("VerticalLine", "|"),
    ("verbar", "|"),
    ("vert", "|"),
    ("rbrace", "}"),
    ("rcub", "}"),
];

/// `text` with its character references decoded as far as a URL's shape can tell:
/// numeric ones to their character (U+FFFD where the HTML parser puts one or another
/// non-ASCII character), the names of [`ASCII_REFERENCES`] to their text; anything else
/// is kept as written.
fn decode_references(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        let after = rest.get(amp + 1..).unwrap_or("");
        match reference(after, &mut out) {
            Some(len) => rest = after.get(len..).unwrap_or(""),
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Decodes the character reference `after` starts with (the text after a `&`) onto
/// `out`, and says how many bytes it took; `None` when it starts none.
fn reference(after: &str, out: &mut String) -> Option<usize> {
    let (radix, skip) = match after.as_bytes() {
        [b'#', b'x' | b'X', ..] => (16, 2),
        [b'#', ..] => (10, 1),
        _ => {
            let (name, text) = ASCII_REFERENCES
                .iter()
                .find(|(name, _)| after.strip_prefix(name).is_some_and(|r| r.starts_with(';')))?;
            out.push_str(text);
            return Some(name.len() + 1);
        }
    };
    let digits = after.get(skip..)?;
    let len = digits
        .bytes()
        .take_while(|b| char::from(*b).is_digit(radix))
        .count();
    if len == 0 {
        return None;
    }
    let code = digits
        .get(..len)?
        .chars()
        .filter_map(|c| c.to_digit(radix))
        .fold(0u32, |code, d| code.saturating_mul(radix).saturating_add(d));
    // NUL and C1 controls become U+FFFD or a Windows-1252 character: not ASCII.
    let c = match code {
        0 | 0x80..=0x9F => char::REPLACEMENT_CHARACTER,
        code => char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
    };
    out.push(c);
    let semicolon = digits.get(len..).is_some_and(|r| r.starts_with(';'));
    Some(skip + len + usize::from(semicolon))
}

impl Regions {
    fn push(&mut self, range: Range<usize>, kind: Result<RegionKind, Unsafe>) {
        self.found.push((range, kind));
    }

    fn url_attribute(&self, value_start: usize) -> String {
        self.url_names
            .iter()
            .find(|(start, _)| *start == value_start)
            .map(|(_, name)| name.clone())
            .unwrap_or_default()
    }
}

fn parse(html: &str, regions: &RefCell<Regions>) -> Result<(), lol_html::errors::RewritingError> {
    let mut settings = Settings::new().append_element_content_handler(element!("*", |el| {
        let tag = el.tag_name();
        let html_ns = el.namespace_uri() == "http://www.w3.org/1999/xhtml";
        let mut regions = regions.borrow_mut();
        for attr in el.attributes() {
            if let Some(name) = attr.name_source_location() {
                regions.push(name.bytes(), Err(Unsafe::Markup));
            }
            let Some(value) = attr.value_source_location() else {
                continue;
            };
            let range = value.bytes();
            let quoted = range
                .start
                .checked_sub(1)
                .and_then(|i| html.as_bytes().get(i))
                .is_some_and(|b| matches!(b, b'"' | b'\''));
            let name = attr.name();
            let kind = if !html_ns {
                Err(Unsafe::Foreign { tag: tag.clone() })
            } else if CODE_ELEMENTS.contains(&tag.as_str()) {
                Err(Unsafe::Element { tag: tag.clone() })
            } else if name.starts_with("on") {
                Err(Unsafe::EventHandler { attribute: name })
            } else if ACTIVE_ATTRIBUTES.contains(&name.as_str()) {
                Err(Unsafe::Active { attribute: name })
            } else if !quoted {
                Err(Unsafe::Unquoted { attribute: name })
            } else if URL_LIST_ATTRIBUTES.contains(&name.as_str()) {
                Err(Unsafe::UrlList { attribute: name })
            } else if URL_ATTRIBUTES.contains(&name.as_str()) {
                if script_scheme(html.get(range.clone()).unwrap_or("")) {
                    Err(Unsafe::ScriptUrl { attribute: name })
                } else {
                    regions.url_names.push((range.start, name));
                    Ok(RegionKind::Url)
                }
            } else {
                Ok(RegionKind::Attribute)
            };
            regions.push(range, kind);
        }
        Ok(())
    }));
    for &tag in CODE_ELEMENTS {
        settings =
            settings.append_element_content_handler(text!(tag, move |t: &mut TextChunk<'_>| {
                regions.borrow_mut().push(
                    t.source_location().bytes(),
                    Err(Unsafe::Element { tag: tag.into() }),
                );
                Ok(())
            }));
    }
    for (selector, tag) in [("svg, svg *", "svg"), ("math, math *", "math")] {
        settings =
            settings.append_element_content_handler(text!(selector, move |t: &mut TextChunk<
                '_,
            >| {
                regions.borrow_mut().push(
                    t.source_location().bytes(),
                    Err(Unsafe::Foreign { tag: tag.into() }),
                );
                Ok(())
            }));
    }
    settings = settings
        .append_document_content_handler(doc_text!(|t| {
            regions
                .borrow_mut()
                .push(t.source_location().bytes(), Ok(RegionKind::Text));
            Ok(())
        }))
        .append_document_content_handler(doc_comments!(|c: &mut Comment<'_>| {
            regions
                .borrow_mut()
                .push(c.source_location().bytes(), Err(Unsafe::Comment));
            Ok(())
        }));
    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    rewriter.write(html.as_bytes())?;
    rewriter.end()
}

/// Whether a URL attribute's static text starts with a scheme that runs code.
fn script_scheme(value: &str) -> bool {
    split_scheme(&url_text(value)).is_some_and(|(scheme, _)| {
        SCRIPT_SCHEMES
            .iter()
            .any(|s| s.eq_ignore_ascii_case(scheme))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(html: &str) -> Vec<Result<Placement, String>> {
        let starts: Vec<usize> = html.match_indices("{{").map(|(i, _)| i).collect();
        classify(html, &starts)
            .into_iter()
            .map(|r| r.map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn text_and_quoted_attributes_are_escaped() {
        assert_eq!(
            check(
                r#"<p class="x {{a}}" title='{{b}}'>Hi {{c}}</p><textarea>{{d}}</textarea><title>{{e}}</title>< {{f}} & {{g}} &amp;{{h}} &#38;{{i}}"#
            ),
            vec![Ok(Placement::Escaped); 9]
        );
        // `</` and a character that cannot start a tag name opens a bogus comment.
        assert_eq!(
            check("a </{{a}}"),
            [Err("is inside an HTML comment".to_owned())]
        );
    }

    #[test]
    fn url_attributes_are_checked_where_the_scheme_can_be_set() {
        assert_eq!(
            check(
                r#"<a href="{{a}}">x</a><a href="/offers?c={{b}}">y</a><img src=" {{c}}/x.png"><a href="x{{d}}">z</a><a href="https://shop.example/{{e}}">w</a><a href="mailto:{{f}}">v</a><a href="&#32;{{g}}">u</a><a href="{{h}}{{i}}">t</a><a href="x&amp;{{j}}">s</a>"#
            ),
            vec![
                Ok(Placement::Url { at_start: true }),
                Ok(Placement::Escaped),
                Ok(Placement::Url { at_start: true }),
                Ok(Placement::Url { at_start: false }),
                Ok(Placement::Escaped),
                Ok(Placement::Escaped),
                Ok(Placement::Url { at_start: true }),
                Ok(Placement::Url { at_start: true }),
                Ok(Placement::Url { at_start: false }),
                Ok(Placement::Url { at_start: false }),
            ]
        );
    }

    /// After a lone `/` or `\` a value could add the second that makes the URL
    /// scheme-relative; after `/x` or `//host/` it is in the path.
    #[test]
    fn a_value_after_a_lone_slash_is_checked_for_another() {
        assert_eq!(
            check(
                r#"<a href="/{{a}}">x</a><a href="\{{b}}">x</a><a href=" /{{c}}">x</a><a href="&#47;{{d}}">x</a><a href="&sol;{{e}}">x</a><a href="/&#9;{{f}}">x</a><a href="/{{g}}{{h}}">x</a><a href="{{i}}/{{j}}">x</a><a href="/x/{{k}}">x</a><a href="//cdn.example/{{l}}">x</a><a href="https://shop.example/{{m}}">x</a>"#
            ),
            vec![
                Ok(Placement::RootPath),
                Ok(Placement::RootPath),
                Ok(Placement::RootPath),
                Ok(Placement::RootPath),
                Ok(Placement::RootPath),
                Ok(Placement::RootPath),
                Ok(Placement::RootPath),
                Ok(Placement::RootPath),
                Ok(Placement::Url { at_start: true }),
                Ok(Placement::RootPath),
                Ok(Placement::Escaped),
                Ok(Placement::Escaped),
                Ok(Placement::Escaped),
            ]
        );
    }

    #[test]
    fn a_value_that_would_pick_the_host_is_refused() {
        let host = Err("can set the host of the URL in attribute \"href\"".to_owned());
        assert_eq!(
            check(
                r#"<a href="https://{{a}}.example.com/">x</a><a href="//{{b}}">x</a><a href="\\{{c}}">x</a><a href="https:{{d}}">x</a><a href="HTTPS:\/{{e}}">x</a><a href="https://shop.example{{f}}">x</a><a href="https://user@{{g}}/">x</a><a href="/{{h}}/{{i}}">x</a><a href="app://{{j}}">x</a><a href="https&colon;//{{k}}">x</a><a href="&#x2F;&#x2f;{{l}}">x</a><a href="{{m}}//{{n}}">x</a>"#
            ),
            vec![
                host.clone(),
                host.clone(),
                host.clone(),
                host.clone(),
                host.clone(),
                host.clone(),
                host.clone(),
                Ok(Placement::RootPath),
                host.clone(),
                host.clone(),
                host.clone(),
                host.clone(),
                Ok(Placement::Url { at_start: true }),
                host,
            ]
        );
        // A scheme that is not special has a host only after `//`.
        assert_eq!(
            check(r#"<a href="app:{{a}}">x</a><a href="app://h/{{b}}">x</a>"#),
            vec![Ok(Placement::Escaped); 2]
        );
    }

    /// `&` then `#106;` is `j`: a value after a static `&` could complete a reference,
    /// in text and in attribute values alike.
    #[test]
    fn a_value_after_an_open_character_reference_is_refused() {
        let open = Err(
            "follows \"&\": a value could complete a character reference (write &amp; for a literal &)"
                .to_owned(),
        );
        assert_eq!(
            check(
                r#"<a href="&{{a}}">x</a><p>&{{b}}</p><p title="&#{{c}}">x</p><p>Tom&Je{{d}}</p><img src="/x?a=1&amp{{e}}"><a href="&#x6a{{f}}">x</a>"#
            ),
            vec![open; 6]
        );
    }

    /// Static text that only reads as a script URL once its references are decoded is
    /// refused as one.
    #[test]
    fn references_are_decoded_before_the_scheme_is_read() {
        let script = Err("can set the scheme of the URL in attribute \"href\"".to_owned());
        assert_eq!(
            check(
                r#"<a href="javascript&colon;{{a}}">x</a><a href="&#106;avascript:{{b}}">x</a><a href="java&#x73;cript:x({{c}})">x</a><a href="jav&Tab;ascript:{{d}}">x</a><a href=" &#1;vbscript:{{e}}">x</a><a href="DATA&#58;{{f}}">x</a>"#
            ),
            vec![script; 6]
        );
        assert_eq!(
            decode_references("&#106;&#x61;&#X76;&#97 &colon;&sol;&bsol;&Tab;&fjlig;&amp;&ampx&#;&#x;&nbsp;&unknown;&#0;&#x110000;&#128;&#99999999999999999999"),
            "java :/\\\tfj&&ampx&#;&#x;&nbsp;&unknown;\u{fffd}\u{fffd}\u{fffd}\u{fffd}"
        );
    }

    #[test]
    fn everything_else_is_refused() {
        let refused = |html: &str| {
            check(html)
                .into_iter()
                .map(|r| r.unwrap_err())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            refused(
                r#"<a href=/offers?c={{a}}>x</a><p onclick="go('{{b}}')" style="color: {{c}}">y</p>"#
            ),
            [
                "is in the unquoted value of attribute \"href\": quote the value",
                "is in the event handler attribute \"onclick\"",
                "is in the attribute \"style\"",
            ]
        );
        assert_eq!(
            refused(
                r#"<script>var c = "{{a}}";</script><style>.x{content:"{{b}}"}</style><!-- {{c}} --><a href="javascript:go('{{d}}')">x</a>"#
            ),
            [
                "is inside <script>",
                "is inside <style>",
                "is inside an HTML comment",
                "can set the scheme of the URL in attribute \"href\"",
            ]
        );
        assert_eq!(
            refused(
                r#"<div {{a}}>x</div><{{b}} src=x>y</p><a href="{{c}}script:x">z</a><svg><text>{{d}}</text></svg><svg><a href="{{e}}">q</a></svg><iframe src="{{f}}"></iframe><noscript><p>{{g}}</p></noscript>"#
            ),
            [
                "is inside a tag, outside any quoted attribute value",
                "is inside a tag, outside any quoted attribute value",
                "can set the scheme of the URL in attribute \"href\"",
                "is inside <svg> (SVG or MathML)",
                "is inside <a> (SVG or MathML)",
                "is inside <iframe>",
                "is inside <noscript>",
            ]
        );
        assert_eq!(
            refused(r#"<img srcset="/a.png 1x, /{{a}}.png 2x"><a href="/x" ping="{{b}}">x</a>"#),
            [
                "is in attribute \"srcset\", a list of URLs a value could add to",
                "is in attribute \"ping\", a list of URLs a value could add to",
            ]
        );
    }
}
