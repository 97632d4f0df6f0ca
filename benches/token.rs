//! Token costs on a typical state (20 impressions, 3 intents): what every request pays
//! to read the visitor's journey and write it back.

use criterion::{criterion_group, criterion_main, Criterion};
use micromoment::ids::{stable_id, IdKind};
use micromoment::time::{DAY, HOUR};
use micromoment::token::{self, Assignment, Consent, Impression, Intent, Keys, State};
use std::hint::black_box;

const NOW: i64 = 1_736_935_200;

fn typical() -> State {
    State {
        visitor: *b"0123456789abcdef",
        issued_at: NOW,
        expires_at: NOW + 30 * DAY,
        stage: Some(stable_id(IdKind::Stage, "decision")),
        stage_since: NOW - 3 * DAY,
        visits: 7,
        last_visit: NOW - 2 * HOUR,
        intents: ["suv", "ev", "financing"]
            .iter()
            .zip([62.5_f32, 18.0, 4.25])
            .map(|(topic, score)| Intent {
                topic: stable_id(IdKind::Topic, topic),
                score,
                updated_at: NOW - DAY,
            })
            .collect(),
        impressions: (0..20)
            .map(|n| Impression {
                id: stable_id(IdKind::Content, &format!("content-{n}")),
                count: n % 4,
                window_start: NOW - 6 * DAY,
                last_shown: NOW - i64::from(n) * HOUR,
                total: n,
            })
            .collect(),
        sequence: vec![stable_id(IdKind::Content, "content-0")],
        experiments: vec![Assignment {
            experiment: stable_id(IdKind::Experiment, "hero-test"),
            variant: 1,
            at: NOW,
        }],
        segments: vec!["vip".into()],
        consent: Consent(0),
        ..State::default()
    }
}

fn bench(c: &mut Criterion) {
    let keys = Keys::from_json(
        r#"{"current":"k2","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8","k2":"ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"}}"#,
    )
    .unwrap();
    let state = typical();
    let text = token::sign(&state, &keys).unwrap();
    let header = format!("_ga=GA1.2.123.456; theme=dark; mm={text}; consent=yes");
    eprintln!("typical token: {} bytes", text.len());

    c.bench_function("token/verify+decode", |b| {
        b.iter(|| token::verify(black_box(&text), &keys, NOW).unwrap())
    });
    c.bench_function("token/encode+sign", |b| {
        b.iter(|| token::sign(black_box(&state), &keys).unwrap())
    });
    c.bench_function("token/cookie+verify", |b| {
        b.iter(|| token::verify_cookie(black_box(&header), &keys, NOW).unwrap())
    });
    // A device linked to a profile: the `v2` token (the link and the person's visits
    // per device type on top).
    let mut linked = typical();
    linked.link = Some(token::Link {
        profile: [7; 16],
        seq: 12,
        devices: 2,
        linked_at: linked.issued_at - 86_400,
    });
    linked.visits_by = [3, 0, 4, 0, 0];
    let linked_text = token::sign(&linked, &keys).unwrap();
    eprintln!("typical linked token: {} bytes", linked_text.len());
    c.bench_function("token/verify+decode linked", |b| {
        b.iter(|| token::verify(black_box(&linked_text), &keys, NOW).unwrap())
    });
    c.bench_function("token/encode+sign linked", |b| {
        b.iter(|| token::sign(black_box(&linked), &keys).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
