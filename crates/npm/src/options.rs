//! `decide`'s options read without JSON: `packOptions` (in `crates/npm/js/options.js`,
//! the JavaScript half of this format, bound below) walks the options object and writes
//! what it finds as one string of fields, each a tag character, the value, and a NUL;
//! this module reads it back into the same [`DecideOptions`] the JSON path makes. A
//! change to what that file writes is a change to what this one reads.
//!
//! The packed form is a fast path, not a second grammar: `packOptions` writes it only
//! for the well-typed cases (plain objects with known keys, strings without NUL, finite
//! numbers, booleans), and anything else here (an enum value the engine does not know,
//! a number that does not read back) answers `None`. Either way the caller then takes
//! the JSON path, whose answer, and whose error message, is the reference. So a packed
//! request means exactly what its JSON means. This module never reads what the options
//! mean beyond their types: that is `lib.rs`'s, for both paths.
//!
//! Tags. The options: `t` token, `e` event, `v` visitor, `n` now (Unix ms), `m` now
//! (text), `x` explain, `s` slots given, `l` one slot name (in order), `q` the keys'
//! JSON and `i` packOptions' number for that text, `k` the keys the handle holds under
//! that number (no text sent: packOptions is told which number the handle holds),
//! `j` the state's JSON, `c` a context given. The context's fields have the tags of
//! the table of variables (`micromoment::context::PACKED_FIELDS`, uppercase letters and
//! digits): packOptions is given that table ([`context_tags`]), and this module reads a
//! field by its tag through the same table (`Context::field_by_tag`), by the field's
//! kind: text as it is, a number as `String(n)` wrote it, a flag as `1` or `0`, a
//! keyword by its name, and a query parameter as its name, then its value in the next
//! field.

use std::borrow::Cow;

use wasm_bindgen::prelude::*;

use super::{DecideOptions, Instant};
use micromoment::context::{Channel, Context, FieldMut, Keyword, PACKED_FIELDS};

// The JavaScript half of this format (`js/options.js`): packOptions writes what
// `unpack` reads.
#[wasm_bindgen(module = "/js/options.js")]
extern "C" {
    /// The options' JSON as UTF-8, `None` when `JSON.stringify` fails.
    #[wasm_bindgen(js_name = optionsJson)]
    pub(super) fn options_json(options: &JsValue) -> Option<Vec<u8>>;
    #[wasm_bindgen(js_name = packOptions)]
    fn pack_options(
        options: &JsValue,
        memo: &js_sys::Object,
        tags: &JsValue,
        memory: &JsValue,
        ptr: u32,
        cap: u32,
        keys_held: u32,
    ) -> i32;
    /// A JavaScript string as UTF-8 (`TextEncoder.encode`, a native copy).
    pub(super) fn utf8(text: &js_sys::JsString) -> Vec<u8>;
    #[wasm_bindgen(js_name = contextTags)]
    fn context_tags_table(json: &str) -> JsValue;
}

thread_local! {
    /// The context's packed fields as `packOptions` reads them, made once from the table
    /// of variables.
    static TAGS: JsValue = context_tags_table(&context_tags());
}

/// `options` packed by `packOptions` into `buffer` (grown to fit), or `None` for "read
/// their JSON"; `held` is the number of the keys the handle holds (0 none).
pub(super) fn pack<'a>(
    options: &JsValue,
    memo: &js_sys::Object,
    memory: &JsValue,
    buffer: &'a mut Vec<u8>,
    held: u32,
) -> Option<&'a str> {
    for _ in 0..2 {
        let cap = u32::try_from(buffer.len()).ok()?;
        let at = buffer.as_mut_ptr() as usize as u32;
        let packed = TAGS.with(|tags| pack_options(options, memo, tags, memory, at, cap, held));
        match packed {
            -1 => return None,
            written if written >= 0 => {
                let bytes = buffer.get(..usize::try_from(written).ok()?)?;
                return std::str::from_utf8(bytes).ok();
            }
            needed => buffer.resize(needed.unsigned_abs() as usize, 0),
        }
    }
    None
}

/// A number as `String(n)` wrote it, read as serde_json reads the same text in JSON
/// (`JSON.stringify` writes numbers as `String` does), so both paths agree to the bit.
fn number(value: &str) -> Option<f64> {
    // Whole numbers below 2^53 (clocks in ms), exactly as serde_json reads them.
    if (1..=15).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(|n| n as f64);
    }
    serde_json::from_str::<f64>(value)
        .ok()
        .filter(|n| n.is_finite())
}

fn flag(value: &str) -> Option<bool> {
    match value {
        "1" => Some(true),
        "0" => Some(false),
        _ => None,
    }
}

/// The NUL-terminated fields of a packed string, found with `memchr` (SIMD in
/// WebAssembly too) rather than `str::split`'s general searcher: a NUL is ASCII, so every
/// piece between two is a `str`.
struct Fields<'a> {
    text: &'a str,
    start: usize,
    nuls: memchr::Memchr<'a>,
}

impl<'a> Fields<'a> {
    fn new(text: &'a str) -> Self {
        Fields {
            text,
            start: 0,
            nuls: memchr::memchr_iter(0, text.as_bytes()),
        }
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let end = self.nuls.next()?;
        let field = self.text.get(self.start..end)?;
        self.start = end + 1;
        Some(field)
    }
}

impl Fields<'_> {
    /// Whether every byte was in a field: the text ended with a NUL (or was empty).
    fn all_read(&self) -> bool {
        self.start == self.text.len()
    }
}

/// The options `packed` holds, or `None` when the JSON path must read them.
pub(super) fn unpack(packed: &str) -> Option<DecideOptions<'_>> {
    let mut options = DecideOptions::default();
    let mut fields = Fields::new(packed);
    // The string ends with a NUL: the fields are the pieces before each one.
    while let Some(field) = fields.next() {
        let mut chars = field.chars();
        let Some(tag) = chars.next() else {
            continue;
        };
        let value = chars.as_str();
        match tag {
            't' => options.token = Some(Cow::Borrowed(value)),
            'e' => options.event = Some(Cow::Borrowed(value)),
            'v' => options.visitor = Some(Cow::Borrowed(value)),
            'n' => options.now = Some(Instant::Millis(number(value)?)),
            'm' => options.now = Some(Instant::Text(value.to_owned())),
            'x' => options.explain = true,
            's' => options.slots = Some(Vec::new()),
            'l' => options.slots.as_mut()?.push(Cow::Borrowed(value)),
            'q' => options.keys_text = Some(value),
            'i' => options.keys_id = Some(value.parse().ok().filter(|&id| id != 0)?),
            'k' => options.keys_held = Some(value.parse().ok()?),
            'j' => options.state = Some(serde_json::from_str(value).ok()?),
            'c' => options.context = Some(Context::default()),
            _ => {
                let context = options.context.as_mut()?;
                context_field(context, tag, value, &mut fields)?;
            }
        }
    }
    // Text after the last NUL is no field packOptions writes: the JSON path reads these.
    fields.all_read().then_some(options)
}

fn context_field<'a>(
    c: &mut Context,
    tag: char,
    value: &str,
    fields: &mut impl Iterator<Item = &'a str>,
) -> Option<()> {
    match c.field_by_tag(tag)? {
        FieldMut::Text(field) => *field = Some(value.to_owned()),
        FieldMut::Number(field) => *field = Some(number(value)?),
        FieldMut::Flag(field) => *field = Some(flag(value)?),
        FieldMut::Keyword(field) => field.set(Some(value))?,
        FieldMut::Channel(field) => *field = Channel::named(value)?,
        FieldMut::Switch(field) => *field = flag(value)?,
        FieldMut::Query(query) => {
            let given = fields.next()?;
            query.insert(value.to_owned(), given.to_owned());
        }
    }
    Some(())
}

/// The table packOptions packs a context with, as JSON: `[name, tag, kind, nullable]`
/// for each of [`PACKED_FIELDS`] (`nullable`: JSON's `null` means unknown, so the field
/// can be left out rather than sent to the JSON path).
pub(super) fn context_tags() -> String {
    let rows: Vec<(&str, String, &str, bool)> = PACKED_FIELDS
        .iter()
        .map(|f| {
            (
                f.name,
                f.tag.to_string(),
                f.kind.as_str(),
                f.kind.nullable(),
            )
        })
        .collect();
    serde_json::to_string(&rows).unwrap_or_default()
}
