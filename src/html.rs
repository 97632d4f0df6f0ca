//! Slot rewriting of HTML pages with lol_html, the streaming rewriter Cloudflare itself
//! uses.
//!
//! A page marks its slots with `data-mm-slot="hero"`; the rewriter replaces each such
//! element's content with the chosen HTML and tags it `data-mm-content="<content id>"`
//! for click attribution. Elements naming a slot without a fill keep the page's own
//! content, which is the page's fallback, and so does a slot on an element whose content
//! is raw text to a browser (`<script>`, `<style>`, `<textarea>`, …: escaped text is not
//! safe there), which is never even asked about. [`rewrite_each`] asks for each slot's
//! fill as the parser meets it, so a page is decided and rewritten in one pass, in
//! document order. Memory is bounded. A rewriter that fails never breaks the page: its
//! sink has received every byte it was given, the rest as it came ([`HtmlError`]), so a
//! stream goes on with the origin's own bytes. This module does no I/O, and never fills
//! anything but the content of a `data-mm-slot` element.

use lol_html::errors::RewritingError;
use lol_html::html_content::ContentType;
pub use lol_html::OutputSink;
use lol_html::{element, HtmlRewriter, MemorySettings, Settings};

/// The attribute that marks a slot.
pub const SLOT_ATTRIBUTE: &str = "data-mm-slot";

/// The attribute the rewriter adds with the content id shown.
pub const CONTENT_ATTRIBUTE: &str = "data-mm-content";

/// The most memory the parser may hold for one page (lol_html buffers only what a
/// single tag or a selector match needs, so this bounds hostile markup, not page size).
const MAX_PARSER_MEMORY: usize = 4 * 1024 * 1024;

/// The elements whose content a browser reads as raw text (or, for `<template>`, keeps
/// out of the document): a slot on one of them keeps the page's content, since the
/// escaping that makes a value safe in HTML does not make it safe in a script, a style
/// sheet or a title.
const RAW_TEXT: [&str; 11] = [
    "script",
    "style",
    "textarea",
    "title",
    "xmp",
    "iframe",
    "noembed",
    "noframes",
    "noscript",
    "plaintext",
    "template",
];

/// Why a page could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("html rewriting failed: {message}")]
pub struct HtmlError {
    message: String,
    sent_input: bool,
}

impl HtmlError {
    fn from_lol(e: &RewritingError) -> HtmlError {
        // The rewriters here bail out gracefully on both of these (see `settings`):
        // lol_html flushes every byte it was given and had not emitted, as it came,
        // before it returns the error. A parsing ambiguity only happens in strict mode,
        // which they do not use.
        let sent_input = matches!(
            e,
            RewritingError::MemoryLimitExceeded(_) | RewritingError::ContentHandlerError(_)
        );
        HtmlError {
            message: e.to_string(),
            sent_input,
        }
    }

    fn spent() -> HtmlError {
        HtmlError {
            message: "the rewriter failed before".to_owned(),
            sent_input: false,
        }
    }

    /// Whether the sink has every byte the rewriter was given, the failing chunk
    /// included: rewritten up to where it failed, as it came from there on. The caller
    /// then writes the rest of the page to its output as it is, and nothing is lost or
    /// sent twice. When `false` (a rewriter written to after it failed), the failing
    /// chunk was not taken at all.
    pub fn sent_input(&self) -> bool {
        self.sent_input
    }
}

/// The parser's settings for every rewriter here.
///
/// Not strict. In strict mode lol_html refuses markup where a streaming parser cannot
/// tell whether a tag starts raw text (a `<noscript>` or an `<iframe>` inside an
/// unclosed `<select>`, which real pages have), and that refusal is the one error it
/// cannot recover from: the bytes it holds are lost, and the page with them. Strict
/// mode guards rewriters that act on markup a page's visitors may have shaped, so that
/// a parser out of step with the browser cannot be steered; these only look for
/// `data-mm-slot` elements and `<meta name="mm-slots">` in the origin's own markup,
/// which every visitor gets anyway. Out of strict mode such a tag is read as a page's
/// body reads it (raw text follows): where a browser ignores it, the parser takes for
/// text what the browser reads as markup, and a slot element there keeps the page's
/// content. Only markup built for it (such a tag, then a `<script>` whose text closes
/// it) could show the parser a slot the browser reads as script text; the origin's page
/// would have to carry it, and the fill is still the bundle's HTML, every request value
/// escaped.
fn settings<'h>() -> Settings<'h, 'static> {
    Settings::new()
        .with_strict(false)
        .with_graceful_bail_out_on_content_handler_error(true)
}

fn settings_memory(limit: usize) -> MemorySettings {
    MemorySettings::new()
        .with_max_allowed_memory_usage(limit)
        .with_graceful_bail_out_on_memory_limit_exceeded(true)
}

/// The longest slot name an announcement or a proxy's memory keeps.
pub const MAX_SLOT_NAME: usize = 64;

/// Whether `name` may be announced or remembered: 1 to [`MAX_SLOT_NAME`] bytes of
/// `[A-Za-z0-9_-]`.
pub fn is_slot_name(name: &str) -> bool {
    (1..=MAX_SLOT_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Adds `name` to `names` if it is a slot name ([`is_slot_name`]) not there yet, while
/// `names` has fewer than [`MAX_ANNOUNCED`].
pub fn note_slot(names: &mut Vec<String>, name: &str) {
    if names.len() < MAX_ANNOUNCED && is_slot_name(name) && !names.iter().any(|n| n == name) {
        names.push(name.to_owned());
    }
}

/// What a `fill` callback calls to fill the slot it was asked for: `set(content, html)`.
pub type SetSlot<'s> = dyn FnMut(&str, &str) + 's;

/// A streaming slot rewriter: write the page in chunks, read the result from the sink.
pub struct SlotRewriter<'h, O: OutputSink> {
    /// `None` once it failed (lol_html panics if a failed rewriter is used again).
    inner: Option<HtmlRewriter<'h, O>>,
}

impl<'h, O: OutputSink> SlotRewriter<'h, O> {
    /// A rewriter asking `fill` for each `data-mm-slot` element as the parser meets it
    /// (document order): `fill(slot, set)` calls `set(content, html)` to replace the
    /// element's content (and tag it with the content id), or does nothing to keep the
    /// page's own. A slot on a raw-text element ([`RAW_TEXT`]) is not asked about.
    pub fn each<F>(fill: F, sink: O) -> Self
    where
        F: FnMut(&str, &mut SetSlot<'_>) + 'h,
    {
        Self::within(MAX_PARSER_MEMORY, fill, sink)
    }

    /// [`SlotRewriter::each`] with the parser's memory bounded by `limit` bytes.
    fn within<F>(limit: usize, mut fill: F, sink: O) -> Self
    where
        F: FnMut(&str, &mut SetSlot<'_>) + 'h,
    {
        let handler = element!("[data-mm-slot]", move |el| {
            let tag = el.tag_name();
            if RAW_TEXT.iter().any(|raw| tag.eq_ignore_ascii_case(raw)) {
                return Ok(());
            }
            let Some(name) = el.get_attribute(SLOT_ATTRIBUTE) else {
                return Ok(());
            };
            let mut failed = None;
            fill(&name, &mut |content: &str, html: &str| {
                el.set_inner_content(html, ContentType::Html);
                if let Err(e) = el.set_attribute(CONTENT_ATTRIBUTE, content) {
                    failed = Some(e);
                }
            });
            match failed {
                Some(e) => Err(e.into()),
                None => Ok(()),
            }
        });
        let inner = HtmlRewriter::new(
            settings()
                .append_element_content_handler(handler)
                .with_memory_settings(settings_memory(limit)),
            sink,
        );
        SlotRewriter { inner: Some(inner) }
    }

    /// Feeds the next chunk of the page. After an error the rewriter is spent: the
    /// rest of the page goes to the output as it is ([`HtmlError::sent_input`]).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), HtmlError> {
        let inner = self.inner.as_mut().ok_or_else(HtmlError::spent)?;
        inner.write(chunk).map_err(|e| {
            self.inner = None;
            HtmlError::from_lol(&e)
        })
    }

    /// Ends the page, flushing what is left (on an error too, as it came).
    pub fn end(self) -> Result<(), HtmlError> {
        let inner = self.inner.ok_or_else(HtmlError::spent)?;
        inner.end().map_err(|e| HtmlError::from_lol(&e))
    }
}

/// The attribute-free marker of a page's slots in its head, for streaming:
/// `<meta name="mm-slots" content="hero, promo">`.
pub const SLOTS_META: &str = "mm-slots";

/// The most slot names a page may announce.
pub const MAX_ANNOUNCED: usize = 32;

/// Reads the head of a page as it streams in: the slots its `<meta name="mm-slots">`
/// announces, and whether the head is over (`</head>` or `<body>` seen), so a proxy
/// can decide the page's slots and send its headers before the body arrives.
pub struct HeadScanner {
    /// `None` once it failed.
    inner: Option<HtmlRewriter<'static, Discard>>,
    slots: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    done: std::rc::Rc<std::cell::Cell<bool>>,
}

/// The head scanner's sink: it reads, and writes nothing.
type Discard = fn(&[u8]);

fn discard(_: &[u8]) {}

impl HeadScanner {
    /// A scanner at the start of a page.
    pub fn new() -> HeadScanner {
        use std::cell::{Cell, RefCell};
        use std::rc::Rc;
        let slots: Rc<RefCell<Vec<String>>> = Rc::default();
        let done: Rc<Cell<bool>> = Rc::default();
        let (found, head_end, body_start) = (slots.clone(), done.clone(), done.clone());
        let meta = element!("meta[name]", move |el| {
            let named = el
                .get_attribute("name")
                .is_some_and(|n| n.eq_ignore_ascii_case(SLOTS_META));
            if let (true, Some(content)) = (named, el.get_attribute("content")) {
                let mut found = found.borrow_mut();
                for name in content.split([',', ' ', '\t', '\n']) {
                    note_slot(&mut found, name);
                }
            }
            Ok(())
        });
        let head = element!("head", move |el| {
            let done = head_end.clone();
            if let Some(handlers) = el.end_tag_handlers() {
                let on_end: lol_html::EndTagHandler<'static> = Box::new(move |_| {
                    done.set(true);
                    Ok(())
                });
                handlers.push(on_end);
            }
            Ok(())
        });
        // `<body>`, or any element a head cannot hold (the head then ends implicitly).
        let body = element!("*", move |el| {
            const HEAD: [&str; 11] = [
                "html", "head", "title", "meta", "link", "style", "script", "base", "noscript",
                "template", "object",
            ];
            let tag = el.tag_name();
            if !HEAD.iter().any(|h| tag.eq_ignore_ascii_case(h)) {
                body_start.set(true);
            }
            Ok(())
        });
        let inner = HtmlRewriter::new(
            settings()
                .append_element_content_handler(meta)
                .append_element_content_handler(head)
                .append_element_content_handler(body)
                .with_memory_settings(settings_memory(MAX_PARSER_MEMORY)),
            discard as Discard,
        );
        HeadScanner {
            inner: Some(inner),
            slots,
            done,
        }
    }

    /// Reads the next chunk; an error when the page cannot be parsed (the scanner is
    /// then spent, and what it found so far stays).
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), HtmlError> {
        let inner = self.inner.as_mut().ok_or_else(HtmlError::spent)?;
        inner.write(chunk).map_err(|e| {
            self.inner = None;
            HtmlError::from_lol(&e)
        })
    }

    /// Whether the head is over.
    pub fn done(&self) -> bool {
        self.done.get()
    }

    /// The slots announced so far, in the order the page names them: at most
    /// [`MAX_ANNOUNCED`], each a slot name ([`is_slot_name`]; others are skipped).
    pub fn slots(&self) -> Vec<String> {
        self.slots.borrow().clone()
    }
}

impl Default for HeadScanner {
    fn default() -> Self {
        HeadScanner::new()
    }
}

/// The slot names a page has, in document order, each once, at most
/// [`MAX_ANNOUNCED`], each a slot name ([`is_slot_name`]); none for a page the parser
/// cannot read.
pub fn slot_names(page: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let result = rewrite_each(page, |name, _| note_slot(&mut names, name));
    match result {
        Ok(_) => names,
        Err(_) => Vec::new(),
    }
}

/// Rewrites a whole page in one pass, asking `fill` for each slot as the parser meets
/// it (see [`SlotRewriter::each`]): a slot can be decided when its element is reached,
/// so the page is read once.
pub fn rewrite_each<F>(page: &[u8], fill: F) -> Result<Vec<u8>, HtmlError>
where
    F: FnMut(&str, &mut SetSlot<'_>),
{
    let mut out = Vec::with_capacity(page.len() + 1024);
    let mut rewriter = SlotRewriter::each(fill, |chunk: &[u8]| out.extend_from_slice(chunk));
    rewriter.write(page)?;
    rewriter.end()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fill of known slots, as a test gives them.
    fn fills<'a>(
        known: &'a [(&'a str, &'a str, &'a str)],
    ) -> impl FnMut(&str, &mut SetSlot<'_>) + 'a {
        move |name, set| {
            if let Some((_, content, html)) = known.iter().find(|(s, _, _)| *s == name) {
                set(content, html);
            }
        }
    }

    #[test]
    fn fills_named_slots_and_keeps_the_rest() {
        let page = br#"<html><body><div data-mm-slot="hero"><p>fallback</p></div>
<aside data-mm-slot='sidebar'>old</aside><div data-mm-slot="unknown">keep</div>
<div data-mm-slot=hero>second hero</div></body></html>"#;
        let known = [
            ("hero", "test-drive", "<a href=/td>Book</a>"),
            ("sidebar", "offer", "<b>10%</b>"),
        ];
        let out = String::from_utf8(rewrite_each(page, fills(&known)).unwrap()).unwrap();
        assert_eq!(
            out,
            "<html><body><div data-mm-slot=\"hero\" data-mm-content=\"test-drive\"><a href=/td>Book</a></div>\n\
<aside data-mm-slot='sidebar' data-mm-content=\"offer\"><b>10%</b></aside><div data-mm-slot=\"unknown\">keep</div>\n\
<div data-mm-slot=hero data-mm-content=\"test-drive\"><a href=/td>Book</a></div></body></html>"
        );
    }

    #[test]
    fn the_head_scanner_reads_the_announced_slots_and_sees_the_head_end() {
        let page = b"<!doctype html><html><head><title>t</title>\
<meta name=\"MM-Slots\" content=\"hero, promo,hero\"><meta name=other content=x></head>";
        for split in 1..page.len() {
            let mut scanner = HeadScanner::new();
            scanner.write(&page[..split]).unwrap();
            scanner.write(&page[split..]).unwrap();
            assert!(scanner.done(), "split at {split}");
            assert_eq!(scanner.slots(), ["hero", "promo"]);
        }
        let mut open = HeadScanner::new();
        open.write(b"<html><head><meta name=mm-slots content=hero>")
            .unwrap();
        assert!(!open.done(), "the head is not over yet");
        open.write(b"<div data-mm-slot=hero>").unwrap();
        assert!(open.done(), "an element of the body ends an open head");
        let mut bodyless = HeadScanner::new();
        bodyless.write(b"<p>no head at all</p>").unwrap();
        assert!(bodyless.done() && bodyless.slots().is_empty());
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let page = b"<div data-mm-slot=\"hero\">x</div><p>tail</p>";
        let known = [("hero", "c", "<i>y</i>")];
        let whole = rewrite_each(page, fills(&known)).unwrap();
        for split in 1..page.len() {
            let mut out = Vec::new();
            let mut r = SlotRewriter::each(fills(&known), |c: &[u8]| out.extend_from_slice(c));
            r.write(&page[..split]).unwrap();
            r.write(&page[split..]).unwrap();
            r.end().unwrap();
            assert_eq!(out, whole, "split at {split}");
        }
    }

    /// A page as a proxy streams it: each chunk through the rewriter until it fails,
    /// then as it is (the failing chunk too, unless the rewriter sent it).
    fn streamed(rewriter: SlotRewriter<'_, Sink>, out: &Out, chunks: &[&[u8]]) -> Vec<u8> {
        let mut rewriter = Some(rewriter);
        for chunk in chunks {
            match rewriter.as_mut().map(|r| r.write(chunk)) {
                Some(Ok(())) => {}
                Some(Err(e)) => {
                    rewriter = None;
                    if !e.sent_input() {
                        out.borrow_mut().extend_from_slice(chunk);
                    }
                }
                None => out.borrow_mut().extend_from_slice(chunk),
            }
        }
        if let Some(rewriter) = rewriter {
            rewriter.end().unwrap();
        }
        out.take()
    }

    type Out = std::rc::Rc<std::cell::RefCell<Vec<u8>>>;

    struct Sink(Out);

    impl OutputSink for Sink {
        fn handle_chunk(&mut self, chunk: &[u8]) {
            self.0.borrow_mut().extend_from_slice(chunk);
        }
    }

    /// An unclosed `<select>` followed by tags a browser ignores there: strict lol_html
    /// refuses it at `<noscript>` and loses the bytes it holds.
    const SELECT_PAGE: &[u8] =
        b"<!doctype html><html><head><meta name=\"mm-slots\" content=\"hero\">\
<title>t</title></head><body><div data-mm-slot=\"hero\"><p>origin hero</p></div>\
<form><select name=s><option>1</form><p>dup me</p><noscript><iframe src=\"/ns\"></iframe>\
</noscript><p>tail</p><div data-mm-slot=\"hero\">second</div></body></html>";

    #[test]
    fn a_page_with_an_unclosed_select_is_filled_the_same_in_any_chunks() {
        let known = [("hero", "c", "<i>y</i>")];
        let whole = rewrite_each(SELECT_PAGE, fills(&known)).unwrap();
        let text = String::from_utf8(whole.clone()).unwrap();
        assert_eq!(
            text.matches("<div data-mm-slot=\"hero\" data-mm-content=\"c\"><i>y</i></div>")
                .count(),
            2,
            "both slot elements are filled: {text}"
        );
        assert_eq!(
            text.replace(
                "<div data-mm-slot=\"hero\" data-mm-content=\"c\"><i>y</i></div>",
                ""
            ),
            String::from_utf8_lossy(SELECT_PAGE)
                .replace("<div data-mm-slot=\"hero\"><p>origin hero</p></div>", "")
                .replace("<div data-mm-slot=\"hero\">second</div>", ""),
            "the same outside the slots"
        );
        let page = SELECT_PAGE;
        let mut chunkings: Vec<Vec<&[u8]>> = (1..page.len())
            .map(|split| vec![&page[..split], &page[split..]])
            .collect();
        chunkings.push(page.chunks(1).collect());
        chunkings.push(page.chunks(7).collect());
        for chunks in chunkings {
            let out = Out::default();
            let rewriter = SlotRewriter::each(fills(&known), Sink(out.clone()));
            let got = streamed(rewriter, &out, &chunks);
            assert_eq!(
                String::from_utf8_lossy(&got),
                text,
                "chunks of {:?}",
                chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn past_the_memory_limit_every_byte_goes_out_once_as_it_came() {
        // A slot, then a tag longer than the parser may hold, then another slot: the
        // first is filled, the rest of the page is the origin's, byte for byte.
        let mut page =
            b"<p>before</p><div data-mm-slot=hero>origin</div><img src=\"data:image/png;base64,"
                .to_vec();
        page.extend(std::iter::repeat_n(b'A', 40 * 1024));
        page.extend_from_slice(b"\"><div data-mm-slot=hero>kept</div><p>after</p>");
        let expected = String::from_utf8(page.clone()).unwrap().replacen(
            "<div data-mm-slot=hero>origin</div>",
            "<div data-mm-slot=hero data-mm-content=\"c\"><i>y</i></div>",
            1,
        );
        let known = [("hero", "c", "<i>y</i>")];
        // Only a tag that spans chunks is held: in one chunk the page is all filled.
        let out = Out::default();
        let rewriter = SlotRewriter::within(16 * 1024, fills(&known), Sink(out.clone()));
        let whole = streamed(rewriter, &out, &[&page]);
        assert!(whole == rewrite_each(&page, fills(&known)).unwrap());
        assert!(!String::from_utf8(whole).unwrap().contains("kept"));
        for size in [1, 100, 4000, 4096, 10_000, 30_000] {
            let out = Out::default();
            let rewriter = SlotRewriter::within(16 * 1024, fills(&known), Sink(out.clone()));
            let chunks: Vec<&[u8]> = page.chunks(size).collect();
            let got = streamed(rewriter, &out, &chunks);
            assert_eq!(got.len(), expected.len(), "chunks of {size}");
            assert!(got == expected.as_bytes(), "chunks of {size}");
        }
        // The bail-out says the input went out, and the spent rewriter refuses more
        // without taking it.
        let out = Out::default();
        let mut rewriter = SlotRewriter::within(16 * 1024, fills(&known), Sink(out.clone()));
        let (start, rest) = page.split_at(100);
        rewriter.write(start).unwrap();
        let e = rewriter.write(rest).unwrap_err();
        assert!(e.sent_input(), "{e}");
        assert!(out.borrow().as_slice() == expected.as_bytes());
        let spent = rewriter.write(b"<p>more</p>").unwrap_err();
        assert!(!spent.sent_input());
        assert_eq!(
            spent.to_string(),
            "html rewriting failed: the rewriter failed before"
        );
        assert_eq!(rewriter.end().unwrap_err(), spent);
    }

    #[test]
    fn a_slot_on_a_raw_text_element_keeps_the_page_content_and_is_not_asked_about() {
        for tag in RAW_TEXT {
            let page = format!(
                "<html><head><{tag} data-mm-slot=hero>var a = 1;</{tag}></head>\
<body><div data-mm-slot=promo>p</div></body></html>"
            );
            let mut asked = Vec::new();
            let out = rewrite_each(page.as_bytes(), |name, set| {
                asked.push(name.to_owned());
                set("c", "<b>\"x\"</b>");
            })
            .unwrap();
            let expected = page.replace(
                "<div data-mm-slot=promo>p</div>",
                "<div data-mm-slot=promo data-mm-content=\"c\"><b>\"x\"</b></div>",
            );
            // `<plaintext>` makes the rest of the page text: nothing after it is a slot.
            if tag == "plaintext" {
                assert!(asked.is_empty());
                assert_eq!(String::from_utf8(out).unwrap(), page);
            } else {
                assert_eq!(asked, ["promo"], "<{tag}>");
                assert_eq!(String::from_utf8(out).unwrap(), expected, "<{tag}>");
            }
        }
        // Any case, any chunks.
        let page = b"<SCRIPT data-mm-slot=hero>go()</SCRIPT><Style data-mm-slot=hero>a{}</Style>";
        assert_eq!(
            rewrite_each(page, fills(&[("hero", "c", "x")])).unwrap(),
            page
        );
        assert!(slot_names(page).is_empty());
        for split in 1..page.len() {
            let out = Out::default();
            let rewriter = SlotRewriter::each(fills(&[("hero", "c", "x")]), Sink(out.clone()));
            let got = streamed(rewriter, &out, &[&page[..split], &page[split..]]);
            assert_eq!(got, page, "split at {split}");
        }
    }

    #[test]
    fn only_short_plain_names_are_announced_or_listed() {
        let long = "a".repeat(MAX_SLOT_NAME);
        let longer = "a".repeat(MAX_SLOT_NAME + 1);
        let mut scanner = HeadScanner::new();
        scanner
            .write(
                format!(
                    "<head><meta name=mm-slots content=\"hero {long} {longer} a.b <x> h\u{e9} side_bar-2\"></head>"
                )
                .as_bytes(),
            )
            .unwrap();
        assert_eq!(scanner.slots(), ["hero", long.as_str(), "side_bar-2"]);
        let many: String = (0..MAX_ANNOUNCED + 5).map(|i| format!("s{i},")).collect();
        let mut scanner = HeadScanner::new();
        scanner
            .write(format!("<meta name=mm-slots content=\"{many}\">").as_bytes())
            .unwrap();
        assert_eq!(scanner.slots().len(), MAX_ANNOUNCED);
        let page = format!(
            "<div data-mm-slot=\"{longer}\"></div><div data-mm-slot=\"a b\"></div><div data-mm-slot=ok></div>"
        );
        assert_eq!(slot_names(page.as_bytes()), ["ok"]);
    }
}
