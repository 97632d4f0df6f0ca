//! Where each `{{placeholder}}` of an `html` rendition sits, decided when the bundle is
//! compiled, so a value from the request (a UTM tag, a query parameter, a referrer) can
//! never become markup, script or style.
//!
//! A placeholder's value is HTML-escaped when it is rendered. Escaping is enough in
//! element text and in quoted attribute values, and nowhere else: in an unquoted value a
//! space ends the attribute, in an event handler or a `javascript:` URL the escaped text
//! is still script, in `<script>`, `<style>` and foreign (SVG, MathML) content the
//! parser decodes or ignores the escapes. So the compiler parses the rendition with
//! lol_html (the parser the edge rewrites pages with), finds the token each placeholder
//! falls in by its byte offset, and accepts only those two places. In URL attributes
//! (`href`, `src`, `action`, …) a placeholder that can reach the URL's scheme is marked
//! for a check at render time: its value may only make the URL relative or http(s).
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
                        placement = url_placement(html, range.start, start, &regions)
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
            placement
        })
        .collect()
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
/// `value_start`: whether static text before it already fixes the URL's scheme (or
/// makes it a path), and whether static text after it could complete a scheme.
fn url_placement(
    html: &str,
    value_start: usize,
    start: usize,
    regions: &Regions,
) -> Result<Placement, Unsafe> {
    let attribute = regions.url_attribute(value_start);
    let before = html.get(value_start..start).unwrap_or("");
    if before.contains(['/', '?', '#', ':']) {
        return Ok(Placement::Escaped);
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
        at_start: before.trim_start_matches(is_url_space).is_empty(),
    })
}

/// What a browser trims off the start of a URL.
fn is_url_space(c: char) -> bool {
    c <= ' '
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
    let cleaned: String = value
        .trim_start_matches(is_url_space)
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .take(16)
        .collect::<String>()
        .to_ascii_lowercase();
    ["javascript:", "vbscript:", "data:"]
        .into_iter()
        .any(|scheme| cleaned.starts_with(scheme))
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
                r#"<p class="x {{a}}" title='{{b}}'>Hi {{c}}</p><textarea>{{d}}</textarea><title>{{e}}</title>< {{f}} &{{g}}"#
            ),
            vec![Ok(Placement::Escaped); 7]
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
                r#"<a href="{{a}}">x</a><a href="/offers?c={{b}}">y</a><img src=" {{c}}/x.png"><a href="x{{d}}">z</a><a href="https://{{e}}/">w</a>"#
            ),
            vec![
                Ok(Placement::Url { at_start: true }),
                Ok(Placement::Escaped),
                Ok(Placement::Url { at_start: true }),
                Ok(Placement::Url { at_start: false }),
                Ok(Placement::Escaped),
            ]
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
    }
}
