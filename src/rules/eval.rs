//! Evaluation of compiled rules. Total: every input has an answer, nothing panics.
//!
//! Every evaluation runs on a [`Fuel`] budget: each node evaluated and each list
//! element visited costs a step, each string or list built costs its bytes. A rule
//! whose data makes it grow (a `reduce` that doubles a list, nested `some`) stops when
//! the budget is spent: the rest of it evaluates to `null` at once, and the caller
//! learns that the rule ran out ([`Fuel::exhausted`]). The compiler refuses rules whose
//! worst case is over the budget, so a bundle that compiles never gets there.

use std::borrow::Cow;
use std::cell::Cell;
use std::cmp::Ordering;

use super::value::{compare, loose_eq, strict_eq, strict_eq_lit, Lit, Value};
use super::{Data, Node, Op};

/// What `var` reads: the data, or the current element of an iterating operator.
pub(crate) enum Scope<'s, 'a> {
    Top,
    Item(&'s Value<'a>),
    Reduce {
        current: &'s Value<'a>,
        accumulator: &'s Value<'a>,
    },
}

impl<'a> Scope<'_, 'a> {
    /// The value at a dotted path inside the current element.
    fn lookup<'p, I: Iterator<Item = &'p str>>(&self, mut path: I) -> Option<Value<'a>> {
        let mut value = match self {
            Scope::Top => return None,
            Scope::Item(item) => (*item).clone(),
            Scope::Reduce {
                current,
                accumulator,
            } => match path.next() {
                Some("current") => (*current).clone(),
                Some("accumulator") => (*accumulator).clone(),
                Some(_) => return None,
                // The whole of what the body reads, as json-logic-js builds it.
                None => Value::Object(vec![
                    ("current", (*current).clone()),
                    ("accumulator", (*accumulator).clone()),
                ]),
            },
        };
        for key in path {
            value = value.member(key)?;
        }
        Some(value)
    }
}

fn split_path(path: &str) -> impl Iterator<Item = &str> {
    // `"".split('.')` yields one empty segment; the empty path names the element.
    path.split('.').filter(move |_| !path.is_empty())
}

fn dynamic_lookup<'a, D: Data>(
    data: &'a D,
    scope: &Scope<'_, 'a>,
    path: &str,
) -> Option<Value<'a>> {
    match scope {
        Scope::Top => data.get_path(path),
        _ => scope.lookup(split_path(path)),
    }
}

/// What `{"var": name}` reads when the name is a value of the evaluation (a computed
/// `var`, a key of `missing`), as json-logic-js reads it: null and `""` name the whole
/// data; any other value names the dotted path its string spells. An array whose string
/// is empty (`[]`, `[null]`) is not itself `""`, so it names the member `""`.
fn read_name<'a, D: Data>(
    data: &'a D,
    scope: &Scope<'_, 'a>,
    name: &Value<'_>,
) -> Option<Value<'a>> {
    match name {
        Value::Null => dynamic_lookup(data, scope, ""),
        Value::Str(s) if s.is_empty() => dynamic_lookup(data, scope, ""),
        other => match other.to_js_string() {
            path if path.is_empty() => dynamic_lookup(data, scope, "")?.member(""),
            path => dynamic_lookup(data, scope, &path),
        },
    }
}

/// A work budget for one evaluation: steps (nodes evaluated, list elements visited)
/// and bytes (strings and lists built).
#[derive(Debug)]
pub struct Fuel {
    steps: Cell<u64>,
    bytes: Cell<u64>,
    exhausted: Cell<bool>,
    /// Whether a feed lookup found its feed unreadable.
    unavailable: Cell<bool>,
    limit: (u64, u64),
}

/// What one feed lookup costs in steps: a shard search, or a walk over the stores near
/// (bounded by the feed, not the rule), so that a rule repeating lookups (inside `map`,
/// `some`) is bounded by its budget.
pub(crate) const FEED_STEPS: u64 = 100;

/// The steps one evaluation of a rule may take.
pub const MAX_STEPS: u64 = 10_000;
/// The bytes of strings and lists one evaluation of a rule may build.
pub const MAX_BYTES: u64 = 256 * 1024;
/// What a list element costs in bytes, for the budget: the size of a value on a 64-bit
/// target, fixed so that every face (native, WASM) judges a rule the same.
pub(crate) const ITEM_BYTES: u64 = 32;

impl Default for Fuel {
    fn default() -> Self {
        Fuel::new(MAX_STEPS, MAX_BYTES)
    }
}

impl Fuel {
    /// A budget of `steps` steps and `bytes` bytes.
    pub fn new(steps: u64, bytes: u64) -> Fuel {
        Fuel {
            steps: Cell::new(steps),
            bytes: Cell::new(bytes),
            exhausted: Cell::new(false),
            unavailable: Cell::new(false),
            limit: (steps, bytes),
        }
    }

    /// What was spent so far: `(steps, bytes)`.
    pub fn used(&self) -> (u64, u64) {
        (
            self.limit.0.saturating_sub(self.steps.get()),
            self.limit.1.saturating_sub(self.bytes.get()),
        )
    }

    /// Whether the budget ran out during the evaluation.
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    /// Whether a feed lookup found its feed unreadable during the evaluation.
    pub fn unavailable(&self) -> bool {
        self.unavailable.get()
    }

    /// Takes `n` steps; false (and exhausted) when they are not there.
    fn step(&self, n: u64) -> bool {
        take(&self.steps, n, &self.exhausted)
    }

    /// Takes `n` bytes; false (and exhausted) when they are not there.
    fn alloc(&self, n: u64) -> bool {
        take(&self.bytes, n, &self.exhausted)
    }

    /// Gives back bytes charged ahead of building a value that is charged whole.
    fn refund(&self, n: u64) {
        if !self.exhausted.get() {
            self.bytes.set(self.bytes.get().saturating_add(n));
        }
    }

    /// Charges what a value just built holds: a string's bytes, a list's elements, an
    /// object's members and what they hold.
    fn charge<'a>(&self, value: Value<'a>) -> Value<'a> {
        let cost = built_bytes(&value);
        if cost > 0 && !self.alloc(cost) {
            return Value::Null;
        }
        value
    }
}

/// What [`Fuel::charge`] charges for a value.
fn built_bytes(value: &Value<'_>) -> u64 {
    match value {
        Value::Str(Cow::Owned(s)) => s.len() as u64,
        Value::Array(items) => (items.len() as u64).saturating_mul(ITEM_BYTES),
        Value::Object(fields) => fields.iter().fold(0, |sum, (_, v)| {
            sum.saturating_add(ITEM_BYTES)
                .saturating_add(built_bytes(v))
        }),
        _ => 0,
    }
}

fn take(left: &Cell<u64>, n: u64, exhausted: &Cell<bool>) -> bool {
    if exhausted.get() {
        return false;
    }
    match left.get().checked_sub(n) {
        Some(rest) => {
            left.set(rest);
            true
        }
        None => {
            left.set(0);
            exhausted.set(true);
            false
        }
    }
}

fn arg<'a, D: Data>(
    args: &'a [Node<D::Var>],
    i: usize,
    data: &'a D,
    scope: &Scope<'_, 'a>,
    fuel: &Fuel,
) -> Value<'a> {
    args.get(i)
        .map_or(Value::Null, |node| eval(node, data, scope, fuel))
}

pub(crate) fn eval<'a, D: Data>(
    node: &'a Node<D::Var>,
    data: &'a D,
    scope: &Scope<'_, 'a>,
    fuel: &Fuel,
) -> Value<'a> {
    if !fuel.step(1) {
        return Value::Null;
    }
    let value = eval_node(node, data, scope, fuel);
    fuel.charge(value)
}

fn eval_node<'a, D: Data>(
    node: &'a Node<D::Var>,
    data: &'a D,
    scope: &Scope<'_, 'a>,
    fuel: &Fuel,
) -> Value<'a> {
    match node {
        Node::Lit(lit) => Value::from_lit(lit),
        Node::Array(items) => {
            Value::Array(items.iter().map(|n| eval(n, data, scope, fuel)).collect())
        }
        Node::Var(var, default) => match data.get(var) {
            Some(value) => value,
            None => default
                .as_ref()
                .map_or(Value::Null, |d| eval(d, data, scope, fuel)),
        },
        Node::Local(path, default) => match scope.lookup(path.iter().map(String::as_str)) {
            Some(value) => value,
            None => default
                .as_ref()
                .map_or(Value::Null, |d| eval(d, data, scope, fuel)),
        },
        Node::DynVar(key, default, _) => {
            let key = eval(key, data, scope, fuel);
            match read_name(data, scope, &key) {
                Some(value) => value,
                None => default
                    .as_ref()
                    .map_or(Value::Null, |d| eval(d, data, scope, fuel)),
            }
        }
        Node::Glob(subject, glob) => Value::Bool(
            eval(subject, data, scope, fuel)
                .as_str()
                .is_some_and(|s| glob.matches(s)),
        ),
        Node::SemVer(subject, op, target) => {
            let subject = eval(subject, data, scope, fuel);
            let text = match &subject {
                Value::Str(s) => Some(Cow::Borrowed(s.as_ref())),
                Value::Number(_) => Some(subject.to_js_string()),
                _ => None,
            };
            let version = text.as_deref().and_then(super::Version::parse);
            Value::Bool(version.is_some_and(|v| op.holds(&v, target)))
        }
        Node::InSegment(var, segment) => {
            let segment = eval(segment, data, scope, fuel);
            Value::Bool(segment.as_str().is_some_and(|s| data.list_contains(var, s)))
        }
        Node::Feed(op, args) => {
            if !fuel.step(FEED_STEPS) {
                return Value::Null;
            }
            let values: smallvec::SmallVec<[Value<'a>; 2]> =
                args.iter().map(|a| eval(a, data, scope, fuel)).collect();
            match data.feed(*op, &values) {
                Some(value) => value,
                None => {
                    fuel.unavailable.set(true);
                    Value::Null
                }
            }
        }
        Node::Op(op, args) => operator(*op, args, data, scope, fuel),
    }
}

/// A rule's JSON Logic truthiness, as `when` conditions use it: what
/// `eval(node).truthy()` gives, without building the intermediate values of `and`, `or`,
/// `!`, `!!`, `glob` and the [`fast_path`] shapes. Evaluation has no side effects, so
/// deciding truthiness alone (and short-circuiting as `and` and `or` do) gives the same
/// answer.
pub(crate) fn test<'a, D: Data>(node: &'a Node<D::Var>, data: &'a D, fuel: &Fuel) -> bool {
    if !fuel.step(1) {
        return false;
    }
    match node {
        // An empty `and` or `or` is null: false.
        Node::Op(Op::And, args) => !args.is_empty() && args.iter().all(|n| test(n, data, fuel)),
        Node::Op(Op::Or, args) => args.iter().any(|n| test(n, data, fuel)),
        Node::Op(Op::Not, args) => !args.first().is_some_and(|n| test(n, data, fuel)),
        Node::Op(Op::NotNot, args) => args.first().is_some_and(|n| test(n, data, fuel)),
        Node::Op(op, args) => match fast_path(*op, args, data) {
            Some(answer) => answer,
            None => operator(*op, args, data, &Scope::Top, fuel).truthy(),
        },
        Node::Glob(subject, glob) => eval(subject, data, &Scope::Top, fuel)
            .as_str()
            .is_some_and(|s| glob.matches(s)),
        _ => eval_node(node, data, &Scope::Top, fuel).truthy(),
    }
}

fn number_fold<'a, D: Data>(
    args: &'a [Node<D::Var>],
    data: &'a D,
    scope: &Scope<'_, 'a>,
    fuel: &Fuel,
    init: f64,
    convert: fn(&Value<'_>) -> f64,
    fold: fn(f64, f64) -> f64,
) -> f64 {
    args.iter().fold(init, |acc, n| {
        fold(acc, convert(&eval(n, data, scope, fuel)))
    })
}

/// The shapes most targeting rules are made of, `{"in": [{"var": …}, [literals]]}` and
/// `{">=": [{"var": …}, number]}`, decided without evaluating their literal operand into
/// a value first. Exactly the generic path's answers: the same `strict_eq` and `compare`,
/// with the variable read as `Var` reads it (no default: absent is null).
#[inline]
fn fast_path<'a, D: Data>(op: Op, args: &'a [Node<D::Var>], data: &'a D) -> Option<bool> {
    let (var, lit) = match args {
        [Node::Var(var, None), Node::Lit(lit)] => (var, lit),
        _ => return None,
    };
    let value = || data.get(var).unwrap_or(Value::Null);
    let pass: fn(Ordering) -> bool = match (op, lit) {
        (Op::In, Lit::Array(items)) => {
            let needle = value();
            return Some(items.iter().any(|item| strict_eq_lit(item, &needle)));
        }
        (Op::Gt, Lit::Number(_)) => |o| o == Ordering::Greater,
        (Op::Ge, Lit::Number(_)) => |o| o != Ordering::Less,
        (Op::Lt, Lit::Number(_)) => |o| o == Ordering::Less,
        (Op::Le, Lit::Number(_)) => |o| o != Ordering::Greater,
        _ => return None,
    };
    let Lit::Number(n) = lit else { return None };
    Some(compare(&value(), &Value::Number(*n)).is_some_and(pass))
}

fn operator<'a, D: Data>(
    op: Op,
    args: &'a [Node<D::Var>],
    data: &'a D,
    scope: &Scope<'_, 'a>,
    fuel: &Fuel,
) -> Value<'a> {
    if let Some(answer) = fast_path(op, args, data) {
        return Value::Bool(answer);
    }
    let a = |i| arg(args, i, data, scope, fuel);
    let cmp =
        |i: usize, j: usize, pass: fn(Ordering) -> bool| compare(&a(i), &a(j)).is_some_and(pass);
    match op {
        Op::If => {
            let mut i = 0;
            while i + 1 < args.len() {
                if a(i).truthy() {
                    return a(i + 1);
                }
                i += 2;
            }
            if i < args.len() {
                a(i)
            } else {
                Value::Null
            }
        }
        Op::Eq => Value::Bool(loose_eq(&a(0), &a(1))),
        Op::Ne => Value::Bool(!loose_eq(&a(0), &a(1))),
        Op::StrictEq => Value::Bool(strict_eq(&a(0), &a(1))),
        Op::StrictNe => Value::Bool(!strict_eq(&a(0), &a(1))),
        Op::Not => Value::Bool(!a(0).truthy()),
        Op::NotNot => Value::Bool(a(0).truthy()),
        Op::Or | Op::And => {
            let want = op == Op::Or;
            let mut last = Value::Null;
            for node in args {
                last = eval(node, data, scope, fuel);
                if last.truthy() == want {
                    return last;
                }
            }
            last
        }
        Op::Lt | Op::Le => {
            let pass: fn(Ordering) -> bool = if op == Op::Lt {
                |o| o == Ordering::Less
            } else {
                |o| o != Ordering::Greater
            };
            if args.len() == 3 {
                let middle = a(1);
                Value::Bool(
                    compare(&a(0), &middle).is_some_and(pass)
                        && compare(&middle, &a(2)).is_some_and(pass),
                )
            } else {
                Value::Bool(cmp(0, 1, pass))
            }
        }
        Op::Gt => Value::Bool(cmp(0, 1, |o| o == Ordering::Greater)),
        Op::Ge => Value::Bool(cmp(0, 1, |o| o != Ordering::Less)),
        Op::Max => Value::Number(number_fold(
            args,
            data,
            scope,
            fuel,
            f64::NEG_INFINITY,
            |v| v.to_number(),
            js_max,
        )),
        Op::Min => Value::Number(number_fold(
            args,
            data,
            scope,
            fuel,
            f64::INFINITY,
            |v| v.to_number(),
            |x, y| -js_max(-x, -y),
        )),
        Op::Add => Value::Number(number_fold(
            args,
            data,
            scope,
            fuel,
            0.0,
            |v| v.parse_float(),
            |x, y| x + y,
        )),
        // json-logic-js multiplies with a `reduce` that has no initial value: a single
        // argument comes back as it is, unconverted.
        Op::Mul if args.len() == 1 => a(0),
        Op::Mul => Value::Number(number_fold(
            args,
            data,
            scope,
            fuel,
            1.0,
            |v| v.parse_float(),
            |x, y| x * y,
        )),
        Op::Sub => {
            if args.len() == 1 {
                Value::Number(-a(0).to_number())
            } else {
                Value::Number(a(0).to_number() - a(1).to_number())
            }
        }
        Op::Div => Value::Number(a(0).to_number() / a(1).to_number()),
        Op::Mod => Value::Number(a(0).to_number() % a(1).to_number()),
        Op::Map | Op::Filter | Op::All | Op::None | Op::Some => {
            let list = a(0);
            let body = args.get(1);
            let test = |item: &Value<'a>| {
                body.is_some_and(|b| eval(b, data, &Scope::Item(item), fuel).truthy())
            };
            match op {
                Op::Map => Value::Array(
                    list.items()
                        .map(|item| {
                            body.map_or(Value::Null, |b| eval(b, data, &Scope::Item(&item), fuel))
                        })
                        .collect(),
                ),
                Op::Filter => Value::Array(list.items().filter(|item| test(item)).collect()),
                Op::All => {
                    let mut items = list.items().peekable();
                    Value::Bool(items.peek().is_some() && items.all(|item| test(&item)))
                }
                Op::None => Value::Bool(!list.items().any(|item| test(&item))),
                _ => Value::Bool(list.items().any(|item| test(&item))),
            }
        }
        Op::Reduce => {
            let list = a(0);
            let mut accumulator = a(2);
            if let Some(body) = args.get(1) {
                for current in list.items() {
                    if fuel.exhausted() {
                        return Value::Null;
                    }
                    accumulator = eval(
                        body,
                        data,
                        &Scope::Reduce {
                            current: &current,
                            accumulator: &accumulator,
                        },
                        fuel,
                    );
                }
            }
            accumulator
        }
        Op::Merge => {
            let mut out = Vec::new();
            for node in args {
                let value = eval(node, data, scope, fuel);
                // Copying the elements is work the result's charge comes after: charge
                // it before, so a doubling merge stops before it copies.
                let len = if value.is_array() {
                    value.items().count()
                } else {
                    1
                };
                if !fuel.alloc((len as u64).saturating_mul(ITEM_BYTES)) {
                    return Value::Null;
                }
                if value.is_array() {
                    out.extend(value.items());
                } else {
                    out.push(value);
                }
            }
            // Charged element by element above.
            fuel.refund((out.len() as u64).saturating_mul(ITEM_BYTES));
            Value::Array(out)
        }
        Op::In => {
            let needle = a(0);
            let haystack = a(1);
            match &haystack {
                // An empty string is falsy: json-logic-js answers false before searching.
                Value::Str(s) if s.is_empty() => Value::Bool(false),
                Value::Str(s) => Value::Bool(s.contains(needle.to_js_string().as_ref())),
                h if h.is_array() => Value::Bool(h.items().any(|item| strict_eq(&item, &needle))),
                _ => Value::Bool(false),
            }
        }
        Op::Cat => {
            // `Array.prototype.join` of the arguments: null (and a missing value) is "".
            let mut out = String::new();
            for node in args {
                let value = eval(node, data, scope, fuel);
                if matches!(value, Value::Null) {
                    continue;
                }
                let text = value.to_js_string();
                if !fuel.alloc(text.len() as u64) {
                    return Value::Null;
                }
                out.push_str(&text);
            }
            // Charged piece by piece above.
            fuel.refund(out.len() as u64);
            Value::Str(Cow::Owned(out))
        }
        Op::Substr => substr(
            &a(0),
            &a(1),
            args.get(2).map(|n| eval(n, data, scope, fuel)),
        ),
        Op::Missing => Value::Array(missing(args, data, scope, fuel)),
        Op::MissingSome => {
            let need = a(0).to_number();
            let options = a(1);
            // json-logic-js asks `{"missing": options}`, so a first option that is an
            // array is the list of keys, and anything but an array is the one key; and it
            // counts `options.length`: a string's length, nothing (NaN) for the rest.
            let (missing, total) = match options.items().next() {
                Some(first) if first.is_array() => (
                    missing_keys(first.items(), data, scope, fuel),
                    options.items().count() as f64,
                ),
                _ if options.is_array() => (
                    missing_keys(options.items(), data, scope, fuel),
                    options.items().count() as f64,
                ),
                _ => (
                    missing_keys(std::iter::once(options.clone()), data, scope, fuel),
                    match options.member("length") {
                        Some(Value::Number(n)) => n,
                        _ => f64::NAN,
                    },
                ),
            };
            // `total - missing` present keys satisfy the requirement.
            if total - missing.len() as f64 >= need {
                Value::Array(Vec::new())
            } else {
                Value::Array(missing)
            }
        }
        Op::Log => a(0),
        Op::StartsWith | Op::EndsWith => {
            let (subject, affix) = (a(0), a(1));
            let result = match (subject.as_str(), affix.as_str()) {
                (Some(s), Some(x)) if op == Op::StartsWith => s.starts_with(x),
                (Some(s), Some(x)) => s.ends_with(x),
                _ => false,
            };
            Value::Bool(result)
        }
    }
}

/// `missing`: a first argument that is an array is the list of keys, as in json-logic-js.
fn missing<'a, D: Data>(
    args: &'a [Node<D::Var>],
    data: &'a D,
    scope: &Scope<'_, 'a>,
    fuel: &Fuel,
) -> Vec<Value<'a>> {
    let Some(first) = args.first().map(|n| eval(n, data, scope, fuel)) else {
        return Vec::new();
    };
    if first.is_array() {
        missing_keys(first.items(), data, scope, fuel)
    } else {
        let keys: Vec<Value<'a>> = std::iter::once(first)
            .chain(args.iter().skip(1).map(|n| eval(n, data, scope, fuel)))
            .collect();
        missing_keys(keys.into_iter(), data, scope, fuel)
    }
}

fn missing_keys<'a, D: Data>(
    keys: impl Iterator<Item = Value<'a>>,
    data: &'a D,
    scope: &Scope<'_, 'a>,
    fuel: &Fuel,
) -> Vec<Value<'a>> {
    keys.filter(|key| {
        if !fuel.step(1) {
            return false;
        }
        // json-logic-js looks each key up as `{"var": key}`, so an array key is `var`'s
        // arguments: the name and a default.
        let found = if key.is_array() {
            let mut parts = key.items();
            let name = parts.next().unwrap_or(Value::Null);
            read_name(data, scope, &name).or_else(|| parts.next())
        } else {
            read_name(data, scope, key)
        };
        match found {
            None | Some(Value::Null) => true,
            Some(Value::Str(s)) => s.is_empty(),
            Some(_) => false,
        }
    })
    .collect()
}

/// JavaScript's `Math.max` of two numbers: NaN wins, and +0 is above -0.
fn js_max(x: f64, y: f64) -> f64 {
    if x.is_nan() || y.is_nan() {
        f64::NAN
    } else if x == y {
        if x.is_sign_positive() {
            x
        } else {
            y
        }
    } else {
        x.max(y)
    }
}

/// json-logic-js's `substr`: JavaScript's `String(source).substr(start, length)`, in
/// UTF-16 units as JavaScript counts them, where a negative length stops that many units
/// before the end (`temp.substr(0, temp.length + length)`; a length that is negative
/// but not a number makes that `+` a string concatenation, which is no characters).
/// Half of a character outside the BMP becomes U+FFFD: a Rust string has no lone
/// surrogates.
fn substr<'a>(source: &Value<'_>, start: &Value<'_>, length: Option<Value<'_>>) -> Value<'a> {
    // JavaScript's ToIntegerOrInfinity.
    let integer = |n: f64| if n.is_nan() { 0.0 } else { n.trunc() };
    let units: Vec<u16> = source.to_js_string().encode_utf16().collect();
    let size = units.len() as f64;
    let start = integer(start.to_number());
    let from = if start < 0.0 {
        (size + start).max(0.0)
    } else {
        start.min(size)
    };
    let rest = size - from;
    let count = match length {
        None => rest,
        Some(Value::Number(n)) if n < 0.0 => integer(rest + n),
        Some(l) => match l.to_number() {
            n if n < 0.0 => 0.0,
            n => integer(n),
        },
    };
    let to = from + count.clamp(0.0, rest);
    // Both bounds are clamped to [0, size] above, so the casts are exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (from, to) = (from as usize, to as usize);
    Value::Str(Cow::Owned(String::from_utf16_lossy(
        units.get(from..to).unwrap_or(&[]),
    )))
}
