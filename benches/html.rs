//! HTML slot rewriting throughput, as the page proxy does it: one scan for the slots,
//! one rewrite pass (DESIGN §9: ≥ 50 MB/s in WASM; this is the native figure).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use micromoment::html::{rewrite_page, scan_slots, Fill};
use std::hint::black_box;

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
    let fills = [
        Fill {
            slot: "hero",
            content: "test-drive",
            html: "<a href=/test-drive>Book a test drive in Lyon</a>",
        },
        Fill {
            slot: "sidebar",
            content: "finance",
            html: "<aside>0 % for 24 months</aside>",
        },
        Fill {
            slot: "banner",
            content: "winter",
            html: "<b>Winter check</b>",
        },
    ];
    let mut group = c.benchmark_group("html");
    for paragraphs in [100, 2000] {
        let page = page(paragraphs);
        group.throughput(Throughput::Bytes(page.len() as u64));
        group.bench_function(
            format!("scan + rewrite, {} KiB page", page.len() / 1024),
            |b| {
                b.iter(|| {
                    let slots = scan_slots(black_box(&page)).expect("scans");
                    assert_eq!(slots.len(), 3);
                    rewrite_page(black_box(&page), &fills).expect("rewrites")
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, html);
criterion_main!(benches);
