//! Instruction counts per operation, for `valgrind --tool=callgrind` (see
//! `bench/callgrind.sh`): unlike wall-clock time they repeat exactly for the same binary
//! and inputs, whatever else the machine is doing, so a change to a hot path can be
//! judged on a busy machine. Each operation is set up first, outside the measured
//! function, then run `N` times inside `measured`, which callgrind's `--toggle-collect`
//! counts alone.
//!
//!   callgrind OPERATION [N]     OPERATION: decide, decide-only, decide-capped, answer,
//!                               verify, sign, load-10000, load-10000-unsigned, html,
//!                               html-tiny

mod common;

use std::hint::black_box;

use micromoment::bundle::{keygen, public_key_of};
use micromoment::html::{rewrite_each, SetSlot};
use micromoment::{session, token, Budget, Bundle};

/// A rewriter's fill for slots known in advance: `(slot, content, html)`.
fn fill<'a>(known: &'a [(&'a str, &'a str, &'a str)]) -> impl FnMut(&str, &mut SetSlot<'_>) + 'a {
    move |name, set| {
        if let Some((_, content, html)) = known.iter().find(|(s, _, _)| *s == name) {
            set(content, html);
        }
    }
}

#[inline(never)]
fn measured(n: usize, op: &mut dyn FnMut()) {
    for _ in 0..n {
        op();
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let (Some(op), n) = (args.first(), args.get(1).and_then(|n| n.parse().ok())) else {
        // `cargo bench` runs every bench target with no operation: nothing to count.
        eprintln!("callgrind: instruction counts are taken by bench/callgrind.sh");
        return;
    };
    let n: usize = n.unwrap_or(1000);
    match op.as_str() {
        "decide" | "decide-capped" => {
            let s = common::decision_scenario(if op == "decide" { 2 } else { 12 });
            let request = s.request();
            measured(n, &mut || {
                let _ = black_box(session::decide(
                    &s.bundle,
                    Some(&s.keys),
                    black_box(&request),
                ));
            });
        }
        "decide-only" => {
            let s = common::decision_scenario(2);
            let prior = token::verify(&s.token, &s.keys, s.now).expect("verifies");
            measured(n, &mut || {
                black_box(micromoment::decide(
                    &s.bundle,
                    &micromoment::Visit {
                        prior: Some(&prior),
                        new_visitor: [5; 16],
                        context: &s.context,
                        now: s.now,
                        explain: false,
                        returning: true,
                        feeds: None,
                    },
                    &s.slots,
                ));
            });
        }
        "answer" => {
            let s = common::decision_scenario(2);
            let request = s.request();
            let outcome = session::decide(&s.bundle, Some(&s.keys), &request).expect("slots");
            measured(n, &mut || {
                black_box(session::Answer::of(&s.bundle, &outcome, session::Shape::Full).to_text());
            });
        }
        "verify" | "sign" => {
            let s = common::decision_scenario(2);
            let state = token::verify(&s.token, &s.keys, s.now).expect("verifies");
            if op == "verify" {
                measured(n, &mut || {
                    black_box(token::verify(black_box(&s.token), &s.keys, s.now).ok());
                });
            } else {
                measured(n, &mut || {
                    black_box(token::sign(black_box(&state), &s.keys).ok());
                });
            }
        }
        "load-10000" | "load-10000-unsigned" => {
            let key = keygen([3; 32]);
            let public = public_key_of(&key.public_base64()).expect("public key");
            let source = common::generated_bundle(100, 100);
            let bundle =
                micromoment::bundle::compile(&source, Budget::default()).expect("compiles");
            let signed = op == "load-10000";
            let bytes = bundle.to_mmb(signed.then_some(&key)).expect("encodes");
            let public = signed.then_some(&public);
            measured(n, &mut || {
                black_box(Bundle::from_mmb(black_box(&bytes), public, &Budget::default()).ok());
            });
        }
        "html-tiny" => {
            let page = b"<html><body><div data-mm-slot=\"hero\">x</div></body></html>";
            measured(n, &mut || {
                black_box(rewrite_each(black_box(page), fill(&[("hero", "a", "<b>a</b>")])).ok());
            });
        }
        "html" => {
            let body: String = (0..300)
                .map(|i| format!("<p class=\"copy\">Paragraph {i}: the <a href=\"/models/{i}\">2027 range</a>, financing &amp; service.</p>\n"))
                .collect();
            let page = format!("<!doctype html><html><body><div data-mm-slot=\"hero\">x</div>{body}<aside data-mm-slot=\"sidebar\">y</aside></body></html>").into_bytes();
            let fills = [("hero", "a", "<b>a</b>"), ("sidebar", "b", "<b>b</b>")];
            println!("page: {} bytes", page.len());
            measured(n, &mut || {
                black_box(rewrite_each(black_box(&page), fill(&fills)).ok());
            });
        }
        other => {
            eprintln!("unknown operation {other}");
            std::process::exit(2);
        }
    }
}
