//! An answer as it crosses into JavaScript: numbers and one string, no JSON for what the
//! bundle already holds.
//!
//! Every `&'b str` of an outcome borrows from the bundle (or is `'static`): slot, content,
//! candidate, experiment and variant ids, stage names, reasons, stored renditions. The
//! first time an answer names one, it is sent once as text and appended to a JavaScript
//! array the bundle handle keeps (its *table*); from then on it is its index there, and
//! the JavaScript side hands out the same string object every time. What a request makes
//! (the token, a rendered template, the visitor id, the state image) travels inline.
//!
//! The numbers (`Float64Array`, read in place from WebAssembly memory during the call):
//!
//! ```text
//! table length before this answer, fresh count, fresh UTF-16 lengths…,
//! inline count, inline UTF-16 lengths…,
//! stage, token, state image, triggers (JSON), trace (JSON),
//! decisions count, per decision: slot content candidate experiment variant reason html json text,
//! exposures count, per exposure: visitor bundle bundle_version slot content candidate
//!                                experiment variant reason stage at
//!   or, when there is one exposure per decision repeating it (the usual case):
//! -2, visitor bundle bundle_version at
//! ```
//!
//! and the text is the fresh strings then the inline ones, back to back. A string is named
//! by a reference: `-1` none (`null`, or a field left out), `k ≥ 0` the table's `k`th, and
//! `-(2 + i)` the `i`th inline string. Numbers (`bundle_version`, `at`) are themselves.
//! `answerObject` (in `crates/npm/js/wire.js`, the JavaScript half of this format, bound
//! below) reads it: a change to what this module writes is a change to what that file
//! reads. Nothing of an answer is left in WebAssembly memory once it is read.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use micromoment::session::Outcome;
use wasm_bindgen::prelude::*;

// The JavaScript half of this format (`js/wire.js`): answerObject reads what
// [`Wire::build`] writes, and builds the answer.
#[wasm_bindgen(module = "/js/wire.js")]
extern "C" {
    /// The answer object of a message; throws when the two sides of the string table
    /// disagree (the caller then starts both again).
    #[wasm_bindgen(js_name = answerObject, catch)]
    pub(super) fn answer_object(
        nums: &[f64],
        text: &str,
        table: &js_sys::Array,
        state_of: &JsValue,
        html: Option<&JsValue>,
    ) -> Result<JsValue, JsValue>;
}

/// No string: `null`, or a field the answer leaves out.
const NONE: f64 = -1.0;

/// The strings of one bundle already in its JavaScript table, by address and length.
#[derive(Default)]
pub(super) struct Table {
    index: HashMap<(usize, usize), u32, BuildHasherDefault<AddressHasher>>,
}

impl Table {
    /// Forgets every string (the JavaScript table was emptied with it).
    pub(super) fn clear(&mut self) {
        self.index.clear();
    }

    /// How many strings the JavaScript table holds, as this side counts them.
    fn len(&self) -> usize {
        self.index.len()
    }
}

/// Multiplicative hashing of an address: the keys are distinct pointers, not attacker
/// input, so SipHash's protection buys nothing here and costs most of a lookup.
#[derive(Default)]
struct AddressHasher(u64);

impl Hasher for AddressHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(29) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 29)
    }
}

/// One answer's numbers and text, reused from call to call.
#[derive(Default)]
pub(super) struct Wire {
    /// The whole message's numbers, heads first (filled by [`Wire::build`]).
    pub nums: Vec<f64>,
    /// Fresh strings, then inline strings.
    pub text: String,
    fresh_lens: Vec<f64>,
    inline_lens: Vec<f64>,
    inline: String,
    body: Vec<f64>,
    /// The state image of the answer being built, its bytes and its base64 text.
    pub image: Vec<u8>,
    pub image_text: String,
}

/// A string's length as JavaScript counts it (UTF-16 code units).
fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.encode_utf16().count()
    }
}

impl Wire {
    /// Writes `outcome` (with its state image, in base64 in `image_text`) as one
    /// message, `table` learning the bundle strings it meets for the first time.
    pub(super) fn build(&mut self, table: &mut Table, outcome: &Outcome<'_>) {
        let start = table.len();
        let image_text = std::mem::take(&mut self.image_text);
        self.text.clear();
        self.inline.clear();
        self.fresh_lens.clear();
        self.inline_lens.clear();
        self.body.clear();
        let mut w = Writer { wire: self, table };
        let decision = &outcome.decision;

        let stage = w.bundle_str(decision.stage);
        let token = outcome.token.as_deref().map_or(NONE, |t| w.inline(t));
        let image = w.inline(&image_text);
        let triggers = if decision.triggers.is_empty() {
            NONE
        } else {
            // Serializing our own types into memory cannot fail.
            let json = serde_json::to_string(&decision.triggers).unwrap_or_default();
            w.inline(&json)
        };
        let trace = match &decision.trace {
            Some(trace) => {
                let json = serde_json::to_string(trace).unwrap_or_default();
                w.inline(&json)
            }
            None => NONE,
        };
        w.push(&[stage, token, image, triggers, trace]);

        w.push(&[decision.decisions.len() as f64]);
        for d in &decision.decisions {
            let slot = w.bundle_str(d.slot);
            let content = w.bundle_str(d.content);
            let candidate = w.bundle_opt(d.candidate);
            let experiment = w.bundle_opt(d.experiment);
            let variant = w.bundle_opt(d.variant);
            let reason = w.bundle_str(d.reason.as_str());
            let html = w.rendition(d.html.as_ref());
            let json = match &d.json {
                Some(value) => {
                    let json = serde_json::to_string(value).unwrap_or_default();
                    w.inline(&json)
                }
                None => NONE,
            };
            let text = w.rendition(d.text.as_ref());
            w.push(&[
                slot, content, candidate, experiment, variant, reason, html, json, text,
            ]);
        }

        let per_decision = one_per_decision(decision);
        if let Some(first) = per_decision {
            // Each exposure says what its decision says, for the same visitor, bundle,
            // stage and time: sent once, and the decisions' fields are read again.
            let mut buf = [0u8; 32];
            let visitor = w.inline(micromoment::ids::hex128(&first.visitor, &mut buf));
            let bundle = w.bundle_str(first.bundle);
            w.push(&[
                PER_DECISION,
                visitor,
                bundle,
                first.bundle_version as f64,
                first.at as f64,
            ]);
        } else {
            w.push(&[decision.exposures.len() as f64]);
        }
        let listed = if per_decision.is_some() {
            &[][..]
        } else {
            &decision.exposures[..]
        };
        let mut last_visitor: Option<([u8; 16], f64)> = None;
        for e in listed {
            let visitor = match last_visitor {
                Some((id, r)) if id == e.visitor => r,
                _ => {
                    let mut buf = [0u8; 32];
                    let r = w.inline(micromoment::ids::hex128(&e.visitor, &mut buf));
                    last_visitor = Some((e.visitor, r));
                    r
                }
            };
            let bundle = w.bundle_str(e.bundle);
            let slot = w.bundle_str(e.slot);
            let content = w.bundle_str(e.content);
            let candidate = w.bundle_opt(e.candidate);
            let experiment = w.bundle_opt(e.experiment);
            let variant = w.bundle_opt(e.variant);
            let reason = w.bundle_str(e.reason.as_str());
            let stage = w.bundle_str(e.stage);
            w.push(&[
                visitor,
                bundle,
                e.bundle_version as f64,
                slot,
                content,
                candidate,
                experiment,
                variant,
                reason,
                stage,
                e.at as f64,
            ]);
        }

        self.image_text = image_text;
        self.nums.clear();
        self.nums.push(start as f64);
        self.nums.push(self.fresh_lens.len() as f64);
        self.nums.extend_from_slice(&self.fresh_lens);
        self.nums.push(self.inline_lens.len() as f64);
        self.nums.extend_from_slice(&self.inline_lens);
        self.nums.extend_from_slice(&self.body);
        self.text.push_str(&self.inline);
    }
}

/// The exposures' count in the message when there is one per decision, in order, each
/// repeating its decision's fields and the answer's stage: then only what they share
/// follows (visitor, bundle, bundle version, time).
const PER_DECISION: f64 = -2.0;

/// The same text, by address first (an exposure's strings are its decision's).
fn same(a: &str, b: &str) -> bool {
    (a.as_ptr() == b.as_ptr() && a.len() == b.len()) || a == b
}

fn same_opt(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The first exposure, when the exposures are one per decision as [`PER_DECISION`]
/// sends them; `None` for any other list (none included), which goes whole.
fn one_per_decision<'d, 'b>(
    decision: &'d micromoment::Decision<'b>,
) -> Option<&'d micromoment::Exposure<'b>> {
    let first = decision.exposures.first()?;
    let aligned = decision.exposures.len() == decision.decisions.len()
        && decision
            .exposures
            .iter()
            .zip(&decision.decisions)
            .all(|(e, d)| {
                e.visitor == first.visitor
                    && same(e.bundle, first.bundle)
                    && e.bundle_version == first.bundle_version
                    && e.at == first.at
                    && same(e.stage, decision.stage)
                    && same(e.slot, d.slot)
                    && same(e.content, d.content)
                    && same_opt(e.candidate, d.candidate)
                    && same_opt(e.experiment, d.experiment)
                    && same_opt(e.variant, d.variant)
                    && e.reason == d.reason
            });
    aligned.then_some(first)
}

struct Writer<'w> {
    wire: &'w mut Wire,
    table: &'w mut Table,
}

impl Writer<'_> {
    fn push(&mut self, nums: &[f64]) {
        self.wire.body.extend_from_slice(nums);
    }

    /// A string the request made: sent with this answer only.
    fn inline(&mut self, s: &str) -> f64 {
        let i = self.wire.inline_lens.len();
        self.wire.inline_lens.push(utf16_len(s) as f64);
        self.wire.inline.push_str(s);
        -2.0 - i as f64
    }

    /// A string the bundle holds (or a `'static` one): its index in the table, sent the
    /// first time.
    fn bundle_str(&mut self, s: &str) -> f64 {
        let next = self.table.index.len() as u32;
        let index = *self
            .table
            .index
            .entry((s.as_ptr() as usize, s.len()))
            .or_insert(next);
        if index == next {
            self.wire.fresh_lens.push(utf16_len(s) as f64);
            self.wire.text.push_str(s);
        }
        f64::from(index)
    }

    fn bundle_opt(&mut self, s: Option<&str>) -> f64 {
        s.map_or(NONE, |s| self.bundle_str(s))
    }

    /// A rendition: the stored one by index, a rendered template inline.
    fn rendition(&mut self, r: Option<&std::borrow::Cow<'_, str>>) -> f64 {
        match r {
            None => NONE,
            Some(std::borrow::Cow::Borrowed(s)) => self.bundle_str(s),
            Some(std::borrow::Cow::Owned(s)) => self.inline(s),
        }
    }
}
