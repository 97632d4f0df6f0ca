//! The saved real-world pages of `fixtures/pages/` and their manifest: each page is the
//! bytes the manifest names (by SHA-256), each slot selector matches exactly one element,
//! the one whose start tag is at the recorded offset, and inserting the slot attribute
//! there gives a page whose only slot is `hero`. Each such page streamed through the
//! slot rewriter, in any chunks, is the page rewritten whole; and a page with a tag past
//! the parser's memory limit goes out whole, the origin's bytes from the tag on.

use lol_html::{element, HtmlRewriter, Settings};
use serde_json::Value as Json;
use sha2::{Digest, Sha256};

/// What the manifest says of one page.
struct Page {
    file: String,
    sha256: String,
    selector: String,
    tag: String,
    offset: usize,
    insert_at: usize,
}

fn pages() -> Vec<Page> {
    let manifest = crate::read_json("fixtures/pages/manifest.json");
    let field = |p: &Json, path: &[&str]| -> Json { path.iter().fold(p, |v, k| &v[*k]).clone() };
    manifest["pages"]
        .as_array()
        .expect("pages")
        .iter()
        .map(|p| Page {
            file: field(p, &["file"]).as_str().expect("file").to_owned(),
            sha256: field(p, &["sha256"]).as_str().expect("sha256").to_owned(),
            selector: field(p, &["slot", "selector"])
                .as_str()
                .expect("selector")
                .to_owned(),
            tag: field(p, &["slot", "tag"]).as_str().expect("tag").to_owned(),
            offset: field(p, &["slot", "offset"]).as_u64().expect("offset") as usize,
            insert_at: field(p, &["slot", "insert_at"])
                .as_u64()
                .expect("insert_at") as usize,
        })
        .collect()
}

/// The byte offsets of the start tags `selector` matches, in document order.
fn matches(page: &[u8], selector: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut rewriter = HtmlRewriter::new(
        Settings::new().append_element_content_handler(element!(selector, |el| {
            starts.push(el.source_location().bytes().start);
            Ok(())
        })),
        |_: &[u8]| {},
    );
    rewriter.write(page).expect("parses");
    rewriter.end().expect("ends");
    starts
}

#[track_caller]
fn check(page: &Page) {
    let path = crate::repo_path(&format!("fixtures/pages/{}", page.file));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let digest: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(digest, page.sha256, "{}: bytes changed", page.file);
    let tag_open = format!("<{}", page.tag);
    assert!(
        bytes
            .get(page.offset..page.offset + tag_open.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(tag_open.as_bytes())),
        "{}: no {tag_open} at byte {}",
        page.file,
        page.offset
    );
    assert_eq!(
        page.insert_at,
        page.offset + tag_open.len(),
        "{}",
        page.file
    );
    assert_eq!(
        matches(&bytes, &page.selector),
        vec![page.offset],
        "{}: {:?} must match exactly the element at byte {}",
        page.file,
        page.selector,
        page.offset
    );
    let mut slotted = bytes[..page.insert_at].to_vec();
    slotted.extend_from_slice(b" data-mm-slot=\"hero\"");
    slotted.extend_from_slice(&bytes[page.insert_at..]);
    let mut slots = Vec::new();
    micromoment::html::rewrite_each(&slotted, |name, _| slots.push(name.to_owned()))
        .expect("parses");
    assert_eq!(slots, ["hero"], "{}", page.file);
    let whole = micromoment::html::rewrite_each(&slotted, fill).expect("parses");
    for size in [61, 4096] {
        let chunks: Vec<&[u8]> = slotted.chunks(size).collect();
        assert!(
            streamed(&chunks) == whole,
            "{}: streamed in chunks of {size}, not the page rewritten whole",
            page.file
        );
    }
}

/// The fill every test here gives the hero slot.
fn fill(name: &str, set: &mut micromoment::html::SetSlot<'_>) {
    if name == "hero" {
        set("c", "<p>filled</p>");
    }
}

/// A page as the proxy streams it: each chunk through the slot rewriter until it fails,
/// then as it is (the failing chunk too, unless the rewriter sent it itself).
fn streamed(chunks: &[&[u8]]) -> Vec<u8> {
    use std::cell::RefCell;
    use std::rc::Rc;
    let out: Rc<RefCell<Vec<u8>>> = Rc::default();
    let sink = out.clone();
    let mut rewriter = Some(micromoment::html::SlotRewriter::each(
        fill,
        move |c: &[u8]| sink.borrow_mut().extend_from_slice(c),
    ));
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
        rewriter.end().expect("ends");
    }
    out.take()
}

#[test]
fn a_tag_past_the_parser_memory_limit_goes_out_as_the_origin_sent_it() {
    // A 5 MiB inline image after the slot, streamed in 64 KiB chunks: the parser gives
    // up on the image tag (4 MiB at most), and every byte from there on is the origin's.
    let before = b"<html><head><title>t</title></head><body><div data-mm-slot=hero>origin</div>";
    let mut page = before.to_vec();
    page.extend_from_slice(b"<img alt=x src=\"data:image/png;base64,");
    page.extend(std::iter::repeat_n(b'A', 5 << 20));
    page.extend_from_slice(b"\"><div data-mm-slot=hero>kept</div><p>after</p></body></html>");
    let filled = b"<div data-mm-slot=hero data-mm-content=\"c\"><p>filled</p></div>";
    let mut expected = b"<html><head><title>t</title></head><body>".to_vec();
    expected.extend_from_slice(filled);
    expected.extend_from_slice(&page[before.len()..]);
    let chunks: Vec<&[u8]> = page.chunks(64 << 10).collect();
    let got = streamed(&chunks);
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "the origin's bytes from the image on");
}

#[test]
fn every_saved_page_has_one_slot_where_the_manifest_says() {
    let pages = pages();
    assert!((12..=20).contains(&pages.len()), "{} pages", pages.len());
    let mut total = 0;
    for page in &pages {
        check(page);
        total += std::fs::metadata(crate::repo_path(&format!("fixtures/pages/{}", page.file)))
            .expect("page")
            .len();
    }
    assert!(total < 6 << 20, "{total} bytes of pages");
    // Every page in the folder is in the manifest.
    let listed: Vec<&str> = pages.iter().map(|p| p.file.as_str()).collect();
    for entry in std::fs::read_dir(crate::repo_path("fixtures/pages")).expect("folder") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if name.ends_with(".html") {
            assert!(
                listed.contains(&name.as_str()),
                "{name} is not in the manifest"
            );
        }
    }
}
