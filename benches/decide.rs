//! The budgets of DESIGN §9, natively: bundle load (decode + verify) at 1, 100 and 10,000
//! candidates, and one decision of 3 slots × 20 candidates with token verify + re-sign.

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use micromoment::bundle::{keygen, public_key_of};
use micromoment::session::{self, Request};
use micromoment::token::Keys;
use micromoment::{Budget, Bundle, Context};
use std::hint::black_box;

const NOW: i64 = 1_795_000_000;

fn load(c: &mut Criterion) {
    let key = keygen([3; 32]);
    let public = public_key_of(&key.public_base64()).expect("public key");
    let mut group = c.benchmark_group("bundle load (decode + verify)");
    for (slots, per_slot) in [(1, 1), (5, 20), (100, 100)] {
        let source = common::generated_bundle(slots, per_slot);
        let bundle = micromoment::bundle::compile(&source, Budget::default()).expect("compiles");
        let bytes = bundle.to_mmb(Some(&key)).expect("encodes");
        let candidates = slots * per_slot;
        group.bench_with_input(
            BenchmarkId::from_parameter(candidates),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    Bundle::from_mmb(black_box(bytes), Some(&public), &Budget::default())
                        .expect("loads")
                })
            },
        );
    }
    group.finish();
}

fn decision(c: &mut Criterion) {
    let source = common::generated_bundle(3, 20);
    let bundle = micromoment::bundle::compile(&source, Budget::default()).expect("compiles");
    let keys = Keys::from_json(
        r#"{"current":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}"#,
    )
    .expect("keys");
    let slots = bundle.all_slots();
    let mut ctx = Context::default();
    ctx.page.path = Some("/models/suv/2/gallery".into());
    ctx.geo.country = Some("FR".into());
    ctx.geo.city = Some("Lyon".into());
    ctx.geo.timezone = Some("Europe/Paris".into());
    // A returning visitor with history: run a few requests to build a realistic token.
    let mut token: Option<String> = None;
    for i in 0..12 {
        let request = Request {
            token: token.as_deref(),
            context: &ctx,
            slots: &slots,
            now: NOW + i * 3600,
            entropy: [5; 16],
            explain: false,
        };
        token = session::decide(&bundle, Some(&keys), &request).token;
    }
    let token = token.expect("a token");
    let now = NOW + 13 * 3600;
    let request = Request {
        token: Some(&token),
        context: &ctx,
        slots: &slots,
        now,
        entropy: [5; 16],
        explain: false,
    };
    let outcome = session::decide(&bundle, Some(&keys), &request);
    assert!(outcome.token_rejected.is_none());
    println!(
        "token: {} bytes; decisions: {:?}",
        token.len(),
        outcome
            .decision
            .decisions
            .iter()
            .map(|d| d.content)
            .collect::<Vec<_>>()
    );
    c.bench_function(
        "decide: 3 slots x 20 candidates, token verify + re-sign",
        |b| b.iter(|| session::decide(black_box(&bundle), Some(&keys), black_box(&request))),
    );
    c.bench_function("decide: 3 slots x 20 candidates, decision only", |b| {
        let prior = micromoment::token::verify(&token, &keys, now).expect("verifies");
        b.iter(|| {
            micromoment::decide(
                black_box(&bundle),
                Some(&prior),
                [5; 16],
                &ctx,
                now,
                &slots,
                micromoment::Options::default(),
            )
        })
    });
}

criterion_group!(benches, load, decision);
criterion_main!(benches);
