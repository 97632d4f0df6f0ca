//! Values as JSON Logic sees them, and JavaScript's coercions between them.
//!
//! JSON Logic is defined by its JavaScript reference implementation, so `==`, `<`, `+`
//! and `cat` coerce exactly as JavaScript does (`"1" == 1`, `[] < 1`, `parseFloat` for
//! `+` and `*`). Values borrow from the compiled rule and from the request context
//! wherever they can, so the common comparisons never allocate.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::codec::Encode;

/// A JSON literal inside a compiled rule, or JSON data given to `rule eval`. Decoded by
/// hand (`codec`), with a depth bound.
#[derive(Debug, Clone, PartialEq, Encode)]
pub enum Lit {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// Any JSON number, as JavaScript holds it.
    Number(f64),
    /// A string.
    String(String),
    /// An array of literals.
    Array(Vec<Lit>),
    /// An object, in source order.
    Object(Vec<(String, Lit)>),
}

impl Lit {
    /// Converts parsed JSON into a literal.
    pub fn from_json(json: &serde_json::Value) -> Lit {
        match json {
            serde_json::Value::Null => Lit::Null,
            serde_json::Value::Bool(b) => Lit::Bool(*b),
            serde_json::Value::Number(n) => Lit::Number(n.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(s) => Lit::String(s.clone()),
            serde_json::Value::Array(items) => {
                Lit::Array(items.iter().map(Lit::from_json).collect())
            }
            serde_json::Value::Object(map) => Lit::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Lit::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// The property `key` as JavaScript reads it (`value[key]`): an object's member, an
    /// array's element at a canonical index (`"1"`, not `"01"` or `"+1"`) or its `length`,
    /// a string's UTF-16 unit or its `length`.
    pub(crate) fn member(&self, key: &str) -> Option<Value<'_>> {
        match self {
            Lit::Object(fields) => fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| Value::from_lit(v)),
            Lit::Array(items) => {
                array_member(items.len(), key, |i| items.get(i).map(Value::from_lit))
            }
            Lit::String(s) => string_member(s, key, Cow::Borrowed),
            Lit::Null | Lit::Bool(_) | Lit::Number(_) => None,
        }
    }
}

/// The index an array property names: JavaScript's canonical array index, the decimal
/// digits of a number below 2^32 - 1 with no sign and no leading zero.
fn array_index(key: &str) -> Option<usize> {
    let canonical = !key.is_empty()
        && key.bytes().all(|b| b.is_ascii_digit())
        && (key == "0" || !key.starts_with('0'));
    let index = key.parse::<u32>().ok().filter(|_| canonical)?;
    (index != u32::MAX).then_some(index as usize)
}

/// An array's property `key`: an element, through `get`, or its `length`.
fn array_member<'a>(
    len: usize,
    key: &str,
    get: impl FnOnce(usize) -> Option<Value<'a>>,
) -> Option<Value<'a>> {
    if key == "length" {
        return Some(Value::Number(len as f64));
    }
    array_index(key).and_then(get)
}

/// A string's property `key`: its `length` in UTF-16 units, or the unit at an index, as
/// a one-character string (`text` borrows or copies it out of `s`). Half of a character
/// outside the BMP is a lone surrogate in JavaScript, which a Rust string cannot hold:
/// U+FFFD stands for it.
fn string_member<'s, 'a>(
    s: &'s str,
    key: &str,
    text: impl FnOnce(&'s str) -> Cow<'a, str>,
) -> Option<Value<'a>> {
    if key == "length" {
        return Some(Value::Number(s.encode_utf16().count() as f64));
    }
    let index = array_index(key)?;
    let mut unit = 0;
    for (at, c) in s.char_indices() {
        let width = c.len_utf16();
        if index < unit + width {
            return Some(Value::Str(text(if width == 1 {
                s.get(at..at + c.len_utf8())?
            } else {
                "\u{fffd}"
            })));
        }
        unit += width;
    }
    None
}

/// A value during evaluation.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// `null`; also what an unknown context field reads as.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number (JavaScript's double).
    Number(f64),
    /// A string, borrowed from the rule or the context where possible.
    Str(Cow<'a, str>),
    /// An array or object borrowed from a rule literal or JSON data.
    Lit(&'a Lit),
    /// An array built during evaluation (`map`, `merge`, an array of rules).
    Array(Vec<Value<'a>>),
    /// An object built during evaluation: `{"current": …, "accumulator": …}`, what the
    /// body of `reduce` reads as `{"var": ""}`.
    Object(Vec<(&'static str, Value<'a>)>),
}

impl<'a> Value<'a> {
    /// A borrowed view of a literal: scalars become scalars, composites stay borrowed.
    pub fn from_lit(lit: &'a Lit) -> Value<'a> {
        match lit {
            Lit::Null => Value::Null,
            Lit::Bool(b) => Value::Bool(*b),
            Lit::Number(n) => Value::Number(*n),
            Lit::String(s) => Value::Str(Cow::Borrowed(s)),
            Lit::Array(_) | Lit::Object(_) => Value::Lit(lit),
        }
    }

    /// A borrowed string value.
    pub fn str(s: &'a str) -> Value<'a> {
        Value::Str(Cow::Borrowed(s))
    }

    /// JSON Logic truthiness: JavaScript's, except that an empty array is false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Null => false,
            Value::Bool(b) => *b,
            Value::Number(n) => *n != 0.0 && !n.is_nan(),
            Value::Str(s) => !s.is_empty(),
            Value::Lit(Lit::Array(items)) => !items.is_empty(),
            Value::Lit(_) | Value::Object(_) => true,
            Value::Array(items) => !items.is_empty(),
        }
    }

    /// Whether this is an array (borrowed or built).
    pub fn is_array(&self) -> bool {
        matches!(self, Value::Lit(Lit::Array(_)) | Value::Array(_))
    }

    /// The elements of an array; nothing for any other value.
    pub fn items(&self) -> Items<'_, 'a> {
        match self {
            Value::Lit(Lit::Array(items)) => Items::Lit(items.iter()),
            Value::Array(items) => Items::Owned(items.iter()),
            _ => Items::Empty,
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The property `key` as JavaScript reads it, for `var` paths: see [`Lit::member`].
    pub(crate) fn member(&self, key: &str) -> Option<Value<'a>> {
        match self {
            Value::Lit(lit) => lit.member(key),
            Value::Array(items) => array_member(items.len(), key, |i| items.get(i).cloned()),
            Value::Object(fields) => fields
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone()),
            Value::Str(Cow::Borrowed(s)) => string_member(s, key, Cow::Borrowed),
            Value::Str(Cow::Owned(s)) => string_member(s, key, |t| Cow::Owned(t.to_owned())),
            Value::Null | Value::Bool(_) | Value::Number(_) => None,
        }
    }

    /// JavaScript's `ToNumber`.
    pub fn to_number(&self) -> f64 {
        match self {
            Value::Null => 0.0,
            Value::Bool(b) => f64::from(u8::from(*b)),
            Value::Number(n) => *n,
            Value::Str(s) => js_string_to_number(s),
            Value::Lit(Lit::Object(_)) | Value::Object(_) => f64::NAN,
            Value::Lit(_) | Value::Array(_) => js_string_to_number(&self.to_js_string()),
        }
    }

    /// JavaScript's `parseFloat(String(value))`, which `+` and `*` use.
    pub fn parse_float(&self) -> f64 {
        match self {
            // `String(-0)` is "0".
            Value::Number(n) if *n == 0.0 => 0.0,
            Value::Number(n) => *n,
            Value::Str(s) => js_parse_float(s),
            other => js_parse_float(&other.to_js_string()),
        }
    }

    /// JavaScript's `String(value)`.
    pub fn to_js_string(&self) -> Cow<'_, str> {
        match self {
            Value::Null => Cow::Borrowed("null"),
            Value::Bool(true) => Cow::Borrowed("true"),
            Value::Bool(false) => Cow::Borrowed("false"),
            Value::Number(n) => Cow::Owned(js_number_to_string(*n)),
            Value::Str(s) => Cow::Borrowed(s),
            Value::Lit(Lit::Object(_)) | Value::Object(_) => Cow::Borrowed("[object Object]"),
            Value::Lit(_) | Value::Array(_) => {
                let mut out = String::new();
                for (i, item) in self.items().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    // Array.prototype.join writes null and undefined as nothing.
                    if !matches!(item, Value::Null) {
                        out.push_str(&item.to_js_string());
                    }
                }
                Cow::Owned(out)
            }
        }
    }

    /// Converts to JSON; non-finite numbers become `null` as in `JSON.stringify`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => number_to_json(*n),
            Value::Str(s) => serde_json::Value::String(s.to_string()),
            Value::Lit(lit) => lit_to_json(lit),
            Value::Array(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(fields) => serde_json::Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// The elements of an array value.
pub enum Items<'v, 'a> {
    /// Elements of a borrowed literal array.
    Lit(std::slice::Iter<'a, Lit>),
    /// Elements of an array built during evaluation.
    Owned(std::slice::Iter<'v, Value<'a>>),
    /// Not an array.
    Empty,
}

impl<'a> Iterator for Items<'_, 'a> {
    type Item = Value<'a>;

    fn next(&mut self) -> Option<Value<'a>> {
        match self {
            Items::Lit(iter) => iter.next().map(Value::from_lit),
            Items::Owned(iter) => iter.next().cloned(),
            Items::Empty => None,
        }
    }
}

fn lit_to_json(lit: &Lit) -> serde_json::Value {
    match lit {
        Lit::Null => serde_json::Value::Null,
        Lit::Bool(b) => serde_json::Value::Bool(*b),
        Lit::Number(n) => number_to_json(*n),
        Lit::String(s) => serde_json::Value::String(s.clone()),
        Lit::Array(items) => serde_json::Value::Array(items.iter().map(lit_to_json).collect()),
        Lit::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), lit_to_json(v)))
                .collect(),
        ),
    }
}

/// Integral numbers print as integers (`2`, not `2.0`), as JavaScript prints them.
fn number_to_json(n: f64) -> serde_json::Value {
    const MAX_SAFE: f64 = 9_007_199_254_740_991.0;
    if n.fract() == 0.0 && n.abs() <= MAX_SAFE {
        // The range check above makes the cast exact.
        #[allow(clippy::cast_possible_truncation)]
        return serde_json::Value::from(n as i64);
    }
    serde_json::Number::from_f64(n).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// JavaScript's `Number.prototype.toString()` for the values rules meet.
pub(crate) fn js_number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if n == 0.0 {
        return "0".into();
    }
    let abs = n.abs();
    if (1e-6..1e21).contains(&abs) {
        return format!("{n}");
    }
    // JavaScript switches to exponent form outside [1e-6, 1e21) and signs the exponent.
    let formatted = format!("{n:e}");
    match formatted.split_once('e') {
        Some((mantissa, exp)) if !exp.starts_with('-') => format!("{mantissa}e+{exp}"),
        _ => formatted,
    }
}

fn is_js_whitespace(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// JavaScript's `ToNumber` applied to a string: the whole trimmed string must be a
/// number literal; an empty string is zero.
pub(crate) fn js_string_to_number(s: &str) -> f64 {
    let t = s.trim_matches(is_js_whitespace);
    if t.is_empty() {
        return 0.0;
    }
    let radix = |prefix: &[&str], radix: u32| -> Option<f64> {
        let rest = prefix.iter().find_map(|p| t.strip_prefix(p))?;
        if rest.is_empty() {
            return Some(f64::NAN);
        }
        Some(u64::from_str_radix(rest, radix).map_or(f64::NAN, |v| v as f64))
    };
    if let Some(v) = radix(&["0x", "0X"], 16)
        .or_else(|| radix(&["0o", "0O"], 8))
        .or_else(|| radix(&["0b", "0B"], 2))
    {
        return v;
    }
    match t {
        "Infinity" | "+Infinity" => return f64::INFINITY,
        "-Infinity" => return f64::NEG_INFINITY,
        _ => {}
    }
    if decimal_literal_len(t) == t.len() {
        t.parse().unwrap_or(f64::NAN)
    } else {
        f64::NAN
    }
}

/// JavaScript's `parseFloat`: the longest decimal literal at the start, after white space.
pub(crate) fn js_parse_float(s: &str) -> f64 {
    let t = s.trim_start_matches(is_js_whitespace);
    let unsigned = t.strip_prefix(['+', '-']).unwrap_or(t);
    if unsigned.starts_with("Infinity") {
        return if t.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    let len = decimal_literal_len(t);
    t.get(..len)
        .and_then(|lit| lit.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The length of the longest prefix of `s` that is a decimal literal such as `-1.5e3`,
/// or 0 when there is none.
fn decimal_literal_len(s: &str) -> usize {
    let b = s.as_bytes();
    let digits = |mut i: usize| {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    };
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let int_end = digits(i);
    let mut has_digits = int_end > i;
    i = int_end;
    if b.get(i) == Some(&b'.') {
        let frac_end = digits(i + 1);
        has_digits |= frac_end > i + 1;
        i = frac_end;
    }
    if !has_digits {
        return 0;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let exp_end = digits(j);
        if exp_end > j {
            i = exp_end;
        }
    }
    i
}

/// JavaScript's `==`.
pub fn loose_eq(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Bool(x), other) => loose_eq(&Value::Number(f64::from(u8::from(*x))), other),
        (other, Value::Bool(y)) => loose_eq(other, &Value::Number(f64::from(u8::from(*y)))),
        (Value::Number(x), Value::Str(s)) | (Value::Str(s), Value::Number(x)) => {
            *x == js_string_to_number(s)
        }
        // Two arrays or objects are equal only if they are the same object.
        (
            Value::Lit(_) | Value::Array(_) | Value::Object(_),
            Value::Lit(_) | Value::Array(_) | Value::Object(_),
        ) => same_object(a, b),
        (composite @ (Value::Lit(_) | Value::Array(_) | Value::Object(_)), primitive)
        | (primitive, composite @ (Value::Lit(_) | Value::Array(_) | Value::Object(_))) => {
            loose_eq(
                &Value::Str(Cow::Owned(composite.to_js_string().into_owned())),
                primitive,
            )
        }
    }
}

/// JavaScript's `===`.
pub fn strict_eq(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Number(x), Value::Number(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => same_object(a, b),
    }
}

/// [`strict_eq`] of a rule literal and a value, without making the literal a value
/// first (the `in` of most targeting rules tests a few literals per request).
pub fn strict_eq_lit(lit: &Lit, b: &Value<'_>) -> bool {
    match (lit, b) {
        (Lit::Null, Value::Null) => true,
        (Lit::Number(x), Value::Number(y)) => x == y,
        (Lit::String(x), Value::Str(y)) => x.as_str() == &**y,
        (Lit::Bool(x), Value::Bool(y)) => x == y,
        (Lit::Array(_) | Lit::Object(_), Value::Lit(y)) => std::ptr::eq(lit, *y),
        _ => false,
    }
}

/// Whether two values are the same JavaScript object: the same array or object of the
/// data read twice (`{"==": [{"var": "a"}, {"var": "a"}]}`). A rule's own arrays are
/// built afresh by json-logic-js each time they are evaluated, and so are the lists that
/// `map`, `merge`… build, so those are never the same object as anything else; a literal
/// node cannot meet its own value of another evaluation, as `reduce` would need.
fn same_object(a: &Value<'_>, b: &Value<'_>) -> bool {
    match (a, b) {
        (Value::Lit(x), Value::Lit(y)) => std::ptr::eq(*x, *y),
        _ => false,
    }
}

/// JavaScript's abstract relational comparison: strings compare as strings, anything
/// else as numbers; `None` when a NaN makes every comparison false.
pub fn compare(a: &Value<'_>, b: &Value<'_>) -> Option<Ordering> {
    let prim = |v: &Value<'_>| -> Option<String> {
        match v {
            Value::Lit(Lit::Object(_)) | Value::Object(_) => Some("[object Object]".into()),
            Value::Lit(_) | Value::Array(_) => Some(v.to_js_string().into_owned()),
            _ => None,
        }
    };
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(js_string_cmp(x, y)),
        (Value::Number(x), Value::Number(y)) => x.partial_cmp(y),
        _ => {
            let (pa, pb) = (prim(a), prim(b));
            if pa.is_none() && pb.is_none() {
                return a.to_number().partial_cmp(&b.to_number());
            }
            let a = pa.map_or_else(|| a.clone(), |s| Value::Str(Cow::Owned(s)));
            let b = pb.map_or_else(|| b.clone(), |s| Value::Str(Cow::Owned(s)));
            match (&a, &b) {
                (Value::Str(x), Value::Str(y)) => Some(js_string_cmp(x, y)),
                _ => a.to_number().partial_cmp(&b.to_number()),
            }
        }
    }
}

/// JavaScript's string order: by UTF-16 code units, where a character outside the BMP
/// sorts before U+E000..U+FFFF (UTF-8 bytes would sort it after).
fn js_string_cmp(x: &str, y: &str) -> Ordering {
    if x.is_ascii() || y.is_ascii() {
        // The first difference involves an ASCII character: bytes order it the same.
        return x.cmp(y);
    }
    x.encode_utf16().cmp(y.encode_utf16())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_literal_is_strictly_equal_where_its_value_is() {
        let lits = [
            Lit::Null,
            Lit::Bool(true),
            Lit::Bool(false),
            Lit::Number(1.0),
            Lit::Number(f64::NAN),
            Lit::Number(0.0),
            Lit::Number(-0.0),
            Lit::String("FR".into()),
            Lit::String("1".into()),
            Lit::String(String::new()),
            Lit::Array(vec![Lit::Number(1.0)]),
            Lit::Object(vec![]),
        ];
        let other = Lit::Array(vec![Lit::Number(1.0)]);
        let mut values: Vec<Value<'_>> = lits.iter().map(Value::from_lit).collect();
        values.push(Value::Lit(&other));
        values.push(Value::Str(Cow::Owned("FR".into())));
        values.push(Value::Array(vec![Value::Number(1.0)]));
        for lit in &lits {
            for value in &values {
                assert_eq!(
                    strict_eq_lit(lit, value),
                    strict_eq(&Value::from_lit(lit), value),
                    "{lit:?} === {value:?}"
                );
            }
        }
    }

    #[test]
    fn number_strings_follow_javascript() {
        assert_eq!(js_number_to_string(1.0), "1");
        assert_eq!(js_number_to_string(0.5), "0.5");
        assert_eq!(js_number_to_string(1e21), "1e+21");
        assert_eq!(js_number_to_string(1e-7), "1e-7");
        assert_eq!(js_number_to_string(-0.0), "0");
        assert_eq!(js_string_to_number(" 12 "), 12.0);
        assert_eq!(js_string_to_number(""), 0.0);
        assert!(js_string_to_number("12px").is_nan());
        assert!(js_string_to_number("inf").is_nan());
        assert_eq!(js_string_to_number("0x1f"), 31.0);
        assert_eq!(js_parse_float("12px"), 12.0);
        assert_eq!(js_parse_float(".5e1x"), 5.0);
        assert!(js_parse_float("").is_nan());
        assert!(js_parse_float("null").is_nan());
    }

    #[test]
    fn loose_equality_follows_javascript() {
        let n = Value::Number;
        assert!(loose_eq(&n(1.0), &Value::str("1")));
        assert!(loose_eq(&Value::Bool(true), &n(1.0)));
        assert!(!loose_eq(&Value::Null, &n(0.0)));
        assert!(loose_eq(&Value::Array(vec![n(1.0)]), &n(1.0)));
        assert!(!strict_eq(&n(1.0), &Value::str("1")));
    }
}
