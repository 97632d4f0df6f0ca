//! Slot rewriting of HTML pages with lol_html, the streaming rewriter Cloudflare itself
//! uses.
//!
//! A page marks its slots with `data-mm-slot="hero"`; the rewriter replaces each such
//! element's content with the chosen HTML and tags it `data-mm-content="<content id>"`
//! for click attribution. Elements naming a slot without a fill keep the page's own
//! content, which is the page's fallback. [`rewrite_each`] asks for each slot's fill as
//! the parser meets it, so a page is decided and rewritten in one pass, in document
//! order. Memory is bounded; a
//! page the parser cannot handle is an error the adapter answers by passing the page
//! through untouched. This module does no I/O.

use lol_html::html_content::ContentType;
use lol_html::{element, HtmlRewriter, MemorySettings, OutputSink, Settings};

/// The attribute that marks a slot.
pub const SLOT_ATTRIBUTE: &str = "data-mm-slot";

/// The attribute the rewriter adds with the content id shown.
pub const CONTENT_ATTRIBUTE: &str = "data-mm-content";

/// The most memory the parser may hold for one page (lol_html buffers only what a
/// single tag or a selector match needs, so this bounds hostile markup, not page size).
const MAX_PARSER_MEMORY: usize = 4 * 1024 * 1024;

/// Why a page could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("html rewriting failed: {0}")]
pub struct HtmlError(String);

fn settings_memory() -> MemorySettings {
    MemorySettings::new().with_max_allowed_memory_usage(MAX_PARSER_MEMORY)
}

/// What a `fill` callback calls to fill the slot it was asked for: `set(content, html)`.
pub type SetSlot<'s> = dyn FnMut(&str, &str) + 's;

/// A streaming slot rewriter: write the page in chunks, read the result from the sink.
pub struct SlotRewriter<'h, O: OutputSink> {
    inner: HtmlRewriter<'h, O>,
}

impl<'h, O: OutputSink> SlotRewriter<'h, O> {
    /// A rewriter asking `fill` for each `data-mm-slot` element as the parser meets it
    /// (document order): `fill(slot, set)` calls `set(content, html)` to replace the
    /// element's content (and tag it with the content id), or does nothing to keep the
    /// page's own.
    pub fn each<F>(mut fill: F, sink: O) -> Self
    where
        F: FnMut(&str, &mut SetSlot<'_>) + 'h,
    {
        let handler = element!("[data-mm-slot]", move |el| {
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
            Settings::new()
                .append_element_content_handler(handler)
                .with_memory_settings(settings_memory()),
            sink,
        );
        SlotRewriter { inner }
    }

    /// Feeds the next chunk of the page.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), HtmlError> {
        self.inner
            .write(chunk)
            .map_err(|e| HtmlError(e.to_string()))
    }

    /// Ends the page, flushing what is left.
    pub fn end(self) -> Result<(), HtmlError> {
        self.inner.end().map_err(|e| HtmlError(e.to_string()))
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
    inner: HtmlRewriter<'static, fn(&[u8])>,
    slots: std::rc::Rc<std::cell::RefCell<Vec<String>>>,
    done: std::rc::Rc<std::cell::Cell<bool>>,
}

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
                for name in content
                    .split([',', ' ', '\t', '\n'])
                    .filter(|n| !n.is_empty())
                {
                    if found.len() < MAX_ANNOUNCED && !found.iter().any(|f| f == name) {
                        found.push(name.to_owned());
                    }
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
            Settings::new()
                .append_element_content_handler(meta)
                .append_element_content_handler(head)
                .append_element_content_handler(body)
                .with_memory_settings(settings_memory()),
            discard as fn(&[u8]),
        );
        HeadScanner { inner, slots, done }
    }

    /// Reads the next chunk; an error when the page cannot be parsed.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), HtmlError> {
        self.inner
            .write(chunk)
            .map_err(|e| HtmlError(e.to_string()))
    }

    /// Whether the head is over.
    pub fn done(&self) -> bool {
        self.done.get()
    }

    /// The slots announced so far, in the order the page names them.
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
/// [`MAX_ANNOUNCED`] (none for a page the parser cannot read).
pub fn slot_names(page: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    let result = rewrite_each(page, |name, _| {
        if names.len() < MAX_ANNOUNCED && !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    });
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
}
