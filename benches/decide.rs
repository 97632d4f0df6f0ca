//! The budgets of BENCHMARKS.md, natively: bundle load (decode + verify) at 1, 100 and 10,000
//! candidates, and one decision of 3 slots × 20 candidates with token verify + re-sign
//! (`common::decision_scenario`: signals, a transition, caps, an experiment per slot).

mod common;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use micromoment::bundle::{keygen, public_key_of};
use micromoment::session;
use micromoment::{Budget, Bundle};
use std::hint::black_box;

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
                // The loaded bundle is dropped outside the timing, as the V8 harness
                // frees it outside its own: a load is what an isolate pays once.
                b.iter_with_large_drop(|| {
                    Bundle::from_mmb(black_box(bytes), Some(&public), &Budget::default())
                        .expect("loads")
                })
            },
        );
    }
    group.finish();
}

fn decision(c: &mut Criterion) {
    for (history, label) in [(2, "returning visitor"), (12, "every candidate capped")] {
        let scenario = common::decision_scenario(history);
        let request = scenario.request();
        let outcome =
            session::decide(&scenario.bundle, Some(&scenario.keys), &request).expect("slots");
        assert!(outcome.token_rejected.is_none());
        println!(
            "{label}: token {} bytes; shows {:?}",
            scenario.token.len(),
            outcome
                .decision
                .decisions
                .iter()
                .map(|d| d.content)
                .collect::<Vec<_>>()
        );
        c.bench_function(
            &format!("decide 3x20, {label}: token verify + decide + re-sign"),
            |b| {
                b.iter(|| {
                    session::decide(
                        black_box(&scenario.bundle),
                        Some(&scenario.keys),
                        black_box(&request),
                    )
                })
            },
        );
        let prior = micromoment::token::verify(&scenario.token, &scenario.keys, scenario.now)
            .expect("verifies");
        c.bench_function(&format!("decide 3x20, {label}: decision only"), |b| {
            b.iter(|| {
                micromoment::decide(
                    black_box(&scenario.bundle),
                    &micromoment::Visit {
                        prior: Some(&prior),
                        new_visitor: [5; 16],
                        context: &scenario.context,
                        now: scenario.now,
                        explain: false,
                        returning: true,
                        feeds: None,
                    },
                    &scenario.slots,
                )
            })
        });
    }
}

criterion_group!(benches, load, decision);
criterion_main!(benches);
