//! Device and bot classification per user agent, over the real corpora of
//! `fixtures/user-agents/` (12,142 browsers, 2,118 crawlers): `is_bot` (isbot's 206
//! patterns behind the literal prefilter), the whole `device_type`, and, for scale, the
//! 11 substring checks that stood for bot detection before.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use micromoment::http::{device_type, is_bot};
use std::hint::black_box;

fn corpus(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/fixtures/user-agents/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

/// The bot check `device_type` had before isbot's patterns.
fn substrings(ua: &str) -> bool {
    let lower = ua.to_ascii_lowercase();
    lower.is_empty()
        || [
            "bot",
            "crawl",
            "spider",
            "slurp",
            "curl/",
            "wget/",
            "python-requests",
            "headlesschrome",
            "lighthouse",
            "facebookexternalhit",
            "preview",
        ]
        .iter()
        .any(|n| lower.contains(n))
}

fn user_agents(c: &mut Criterion) {
    let browsers_tsv = corpus("browsers.tsv");
    let browsers: Vec<&str> = browsers_tsv
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(_, ua)| ua))
        .collect();
    let crawlers_txt = corpus("crawlers.txt");
    let crawlers: Vec<&str> = crawlers_txt.lines().collect();
    // The first call compiles the pattern list; keep it out of the measurements.
    black_box(is_bot("warm-up"));
    for (name, uas) in [("browsers", &browsers), ("crawlers", &crawlers)] {
        let mut group = c.benchmark_group(format!("user_agents/{name}"));
        group.throughput(Throughput::Elements(uas.len() as u64));
        group.bench_function("is_bot", |b| {
            b.iter(|| uas.iter().filter(|ua| is_bot(black_box(ua))).count())
        });
        group.bench_function("device_type", |b| {
            b.iter(|| {
                uas.iter()
                    .map(|ua| device_type(black_box(ua), None) as u8 as usize)
                    .sum::<usize>()
            })
        });
        group.bench_function("old substring check", |b| {
            b.iter(|| uas.iter().filter(|ua| substrings(black_box(ua))).count())
        });
        group.finish();
    }
}

criterion_group!(benches, user_agents);
criterion_main!(benches);
