//! HTML slot rewriting throughput, as the page proxy does it: one lol_html pass that
//! decides each slot as it meets it (BENCHMARKS.md: ≥ 50 MB/s in WASM; these are the native
//! figures, `node bench/v8/compare.mjs` has the WASM ones).

mod common;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use micromoment::html::rewrite_each;
use micromoment::session::{self, Entropy, Request, Visitor};
use micromoment::{Budget, Context};
use std::hint::black_box;

/// A page of `paragraphs` tag-dense paragraphs with the hero, sidebar and banner slots
/// of the automotive fixture.
fn page(paragraphs: usize) -> Vec<u8> {
    let body: String = (0..paragraphs)
        .map(|i| format!("<p class=\"copy\">Paragraph {i}: the <a href=\"/models/{i}\">2027 range</a>, financing &amp; service.</p>\n"))
        .collect();
    format!(
        "<!doctype html><html><head><title>Acme</title></head><body><div data-mm-slot=\"hero\"><p>origin hero</p></div>\n{body}\
<aside data-mm-slot=\"sidebar\">origin</aside><footer data-mm-slot=\"banner\">origin</footer></body></html>"
    )
    .into_bytes()
}

fn html(c: &mut Criterion) {
    // Fills known in advance: the rewriter alone, without a decision.
    let fills = [
        (
            "hero",
            "test-drive",
            "<a href=/test-drive>Book a test drive in Lyon</a>",
        ),
        ("sidebar", "finance", "<aside>0 % for 24 months</aside>"),
        ("banner", "winter", "<b>Winter check</b>"),
    ];
    let fill = |name: &str, set: &mut micromoment::html::SetSlot<'_>| {
        if let Some((_, content, html)) = fills.iter().find(|(s, _, _)| *s == name) {
            set(content, html);
        }
    };
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/automotive.json"
    ))
    .expect("fixture");
    let bundle = micromoment::bundle::compile(&source, Budget::default()).expect("compiles");
    let scenario = common::decision_scenario(1);
    let mut ctx = Context::default();
    ctx.geo.city = Some("Lyon".into());
    let request = Request::new(Visitor::New, &ctx, common::NOW, Entropy::Fixed([5; 16]));
    let mut group = c.benchmark_group("html");
    for paragraphs in [100, 2000] {
        let page = page(paragraphs);
        group.throughput(Throughput::Bytes(page.len() as u64));
        let kib = page.len() / 1024;
        group.bench_function(format!("rewrite, {kib} KiB page"), |b| {
            b.iter(|| rewrite_each(black_box(&page), fill).expect("rewrites"))
        });
        group.bench_function(
            format!("decide + rewrite + sign (the proxy), {kib} KiB page"),
            |b| {
                b.iter(|| {
                    session::personalize(&bundle, Some(&scenario.keys), &request, black_box(&page))
                        .expect("parses")
                        .expect("has slots")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, html);
criterion_main!(benches);
