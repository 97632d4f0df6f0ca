//! Targeting rules: JSON Logic compiled once, evaluated many times.
//!
//! [`compile`] turns a JSON Logic rule into a [`Rule`]: operators become enum variants,
//! variables the caller's [`Schema`] knows become resolved handles (the engine uses an
//! index into its request context, so evaluation never looks a name up), literal arrays
//! and patterns are prepared once. [`Rule::eval`] then runs against any [`Data`].
//!
//! Semantics are those of the JSON Logic reference implementation (json-logic-js),
//! JavaScript's coercions and property reads included (`{"var": "list.length"}`);
//! `tests/it/rules.rs` runs the shared conformance suite, and `tests/e2e/jsonlogic.test.mjs`
//! compares the npm package with json-logic-js itself on random rules over random data,
//! with its few deliberate quirks listed there.
//! Extensions: `glob`, `starts_with`, `ends_with`, `sem_ver`, `seen`, `in_segment`, and
//! the feed lookups `stock` and `nearest_store` (docs/feeds.md), which read live data
//! through [`Data::feed`]: a lookup whose feed cannot be read makes the whole rule false.
//!
//! This module never fails at evaluation time and never panics: every type mismatch has
//! a JSON Logic answer (usually `false` or `null`). Everything that can be wrong with a
//! rule is found by [`compile`], with the path of the offending node.

mod compile;
mod cost;
mod eval;
mod glob;
mod json;
mod semver;
mod value;
mod wire;

pub use compile::{compile, CompileError, CompileErrorKind, Limits};
pub use cost::VarBound;
pub use eval::{Fuel, MAX_BYTES, MAX_STEPS};
pub use glob::Glob;
pub use json::{BoundedJsonSchema, JsonData, JsonSchema};
pub use semver::{SemOp, Version};
pub use value::{Lit, Value};

use crate::codec::{Decode, Encode};

/// Where a rule's variables come from at compile time.
pub trait Schema {
    /// The resolved form of a variable, stored in the compiled rule.
    type Var;

    /// Resolves a dotted variable path such as `geo.country` or `intent.suv`.
    fn resolve(&self, path: &str) -> Result<Self::Var, UnknownVariable>;

    /// The most a resolved variable can hold, for a rule's worst case
    /// ([`Limits::check_cost`]); unknown sizes are unbounded.
    fn bound(&self, _var: &Self::Var) -> VarBound {
        VarBound {
            built: true,
            ..VarBound::list_of_text(u64::MAX, u64::MAX)
        }
    }

    /// Whether the feed lookup `op` may be used: the message of a compile error if not.
    fn feed(&self, op: FeedOp) -> Result<(), String> {
        Err(format!(
            "`{}` reads a feed, and rules evaluated here have none",
            op.name()
        ))
    }

    /// The most whatever a computed path (`{"var": {"cat": …}}`) may name can hold.
    fn any_bound(&self) -> VarBound {
        VarBound {
            built: true,
            ..VarBound::list_of_text(u64::MAX, u64::MAX)
        }
    }
}

/// A rule evaluation that spent its whole work budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rule ran out of its work budget ({MAX_STEPS} steps, {MAX_BYTES} bytes)")]
pub struct OutOfFuel;

/// A variable the schema does not know, with the closest name it does know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnknownVariable {
    /// A plausible intended name, for a did-you-mean.
    pub suggestion: Option<String>,
}

/// The values a compiled rule reads at evaluation time.
pub trait Data {
    /// The resolved variable handle, as the matching [`Schema`] produced it.
    type Var;

    /// The value of a resolved variable; `None` when it is absent (so `var`'s default
    /// applies), `Some(Value::Null)` when it is present and null.
    fn get(&self, var: &Self::Var) -> Option<Value<'_>>;

    /// The value at a path computed at run time (`{"var": {"cat": …}}`, `missing`). The
    /// empty path names the whole data.
    fn get_path(&self, path: &str) -> Option<Value<'_>>;

    /// A feed lookup's answer for its evaluated arguments; `None` when the feed cannot
    /// be read (missing, late, stale), which makes the whole rule false.
    fn feed<'d>(&'d self, _op: FeedOp, _args: &[Value<'_>]) -> Option<Value<'d>> {
        None
    }

    /// Whether the list variable `var` holds the string `item` (`in_segment`).
    fn list_contains(&self, var: &Self::Var, item: &str) -> bool {
        self.get(var)
            .is_some_and(|list| list.items().any(|v| v.as_str() == Some(item)))
    }
}

/// A compiled rule. Decoded by hand (`codec`), as its nodes are.
#[derive(Debug, Clone, PartialEq, Encode)]
pub struct Rule<V> {
    pub(crate) root: Node<V>,
}

/// A rule's truthiness, or the news that it ran out of its work budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The rule is true.
    True,
    /// The rule is false.
    False,
    /// The rule spent its [`Fuel`] before it was decided: it counts as false.
    OutOfFuel,
    /// A feed it reads could not be read: it counts as false.
    NoData,
}

/// A lookup in live data (docs/feeds.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum FeedOp {
    /// `{"stock": [sku, store]}`: the quantity, or null.
    Stock,
    /// `{"nearest_store": [sku, km]}`: the nearest store within `km` holding the sku.
    NearestStore,
}

impl FeedOp {
    /// The operator's name in a rule.
    pub fn name(self) -> &'static str {
        match self {
            FeedOp::Stock => "stock",
            FeedOp::NearestStore => "nearest_store",
        }
    }
}

impl<V> Rule<V> {
    /// Evaluates the rule to a value on a default [`Fuel`] budget; `Err` with the
    /// partial value when the budget ran out.
    pub fn eval<'a, D: Data<Var = V>>(&'a self, data: &'a D) -> Result<Value<'a>, OutOfFuel> {
        let fuel = Fuel::default();
        let value = eval::eval(&self.root, data, &eval::Scope::Top, &fuel);
        if fuel.exhausted() {
            Err(OutOfFuel)
        } else {
            Ok(value)
        }
    }

    /// The rule's JSON Logic truthiness, as `when` conditions use it, on a default
    /// [`Fuel`] budget.
    pub fn verdict<D: Data<Var = V>>(&self, data: &D) -> Verdict {
        let fuel = Fuel::default();
        let truthy = eval::test(&self.root, data, &fuel);
        match (fuel.exhausted(), truthy) {
            _ if fuel.unavailable() => Verdict::NoData,
            (true, _) => Verdict::OutOfFuel,
            (false, true) => Verdict::True,
            (false, false) => Verdict::False,
        }
    }

    /// Evaluates the rule on the given budget, which keeps what it spent.
    pub fn eval_with<'a, D: Data<Var = V>>(&'a self, data: &'a D, fuel: &Fuel) -> Value<'a> {
        eval::eval(&self.root, data, &eval::Scope::Top, fuel)
    }

    /// The most one evaluation can charge to its [`Fuel`], over the variable bounds of
    /// `schema`: `(steps, bytes)`, `u64::MAX` when unbounded.
    pub fn worst_case<S: Schema<Var = V>>(&self, schema: &S) -> (u64, u64) {
        let cost = cost::cost(&self.root, &|v| schema.bound(v), schema.any_bound());
        (cost.steps, cost.alloc)
    }

    /// The rule's nesting depth and node count, as [`Limits`] bound them (arrays of
    /// literals count as one node, as the compiler counts them).
    pub fn shape(&self) -> (usize, usize) {
        let mut nodes = 0;
        let depth = self.root.shape(0, &mut nodes);
        (depth, nodes)
    }

    /// Whether the rule holds: [`Rule::verdict`], a rule out of fuel being false.
    pub fn matches<D: Data<Var = V>>(&self, data: &D) -> bool {
        self.verdict(data) == Verdict::True
    }

    /// Every resolved variable the rule reads, each with example values that the rule
    /// compares it to: the literals of `==`, `in`, `>=`…, a path matching a `glob`, a
    /// string with a `starts_with` prefix, a `sem_ver` target, an `in_segment` name. The
    /// coverage report builds its grid of contexts from these, so it never needs to
    /// know what a bundle's rules are about.
    pub fn examples(&self) -> Vec<(&V, Vec<serde_json::Value>)> {
        let mut out = Vec::new();
        self.root.examples(&mut out);
        out
    }

    /// The first argument (the item) of every feed lookup in the rule, as a rule of its
    /// own: what a face evaluates before deciding, to load the shards it needs.
    pub fn feed_keys(&self) -> Vec<(FeedOp, Rule<V>)>
    where
        V: Clone,
    {
        let mut out = Vec::new();
        self.root.feed_keys(&mut out);
        out
    }
}

/// A node of a compiled rule. Decoded by hand (`codec`), with a depth bound.
#[derive(Debug, Clone, PartialEq, Encode)]
pub(crate) enum Node<V> {
    /// A literal, including arrays whose elements are all literals.
    Lit(Lit),
    /// An array with rules inside, evaluated element by element.
    Array(Vec<Node<V>>),
    /// A variable of the data, resolved at compile time, with its default.
    Var(V, Option<Box<Node<V>>>),
    /// A path into the current element inside `map`, `filter`, `reduce`, `all`, `none`
    /// and `some`.
    Local(Vec<String>, Option<Box<Node<V>>>),
    /// A variable whose path is computed at run time; `bool` is whether it reads the
    /// current element rather than the data.
    DynVar(Box<Node<V>>, Option<Box<Node<V>>>, bool),
    /// An operator applied to its arguments.
    Op(Op, Vec<Node<V>>),
    /// `glob` with its pattern compiled.
    Glob(Box<Node<V>>, Glob),
    /// `sem_ver` with its operator and target parsed.
    SemVer(Box<Node<V>>, SemOp, Version),
    /// `in_segment`: whether the segments variable holds the argument.
    InSegment(V, Box<Node<V>>),
    /// A feed lookup with its arguments.
    Feed(FeedOp, Vec<Node<V>>),
}

impl<V> Node<V> {
    /// The depth below this node (itself at `depth`), counting nodes into `nodes`.
    fn shape(&self, depth: usize, nodes: &mut usize) -> usize {
        *nodes += 1;
        let children: Vec<&Node<V>> = match self {
            Node::Lit(_) => Vec::new(),
            Node::Array(items) | Node::Op(_, items) | Node::Feed(_, items) => {
                items.iter().collect()
            }
            Node::Var(_, default) | Node::Local(_, default) => {
                default.iter().map(AsRef::as_ref).collect()
            }
            Node::DynVar(key, default, _) => std::iter::once(key.as_ref())
                .chain(default.iter().map(AsRef::as_ref))
                .collect(),
            Node::Glob(arg, _) | Node::SemVer(arg, _, _) | Node::InSegment(_, arg) => {
                vec![arg.as_ref()]
            }
        };
        children
            .into_iter()
            .map(|c| c.shape(depth + 1, nodes))
            .max()
            .unwrap_or(depth)
    }

    fn examples<'r>(&'r self, out: &mut Vec<(&'r V, Vec<serde_json::Value>)>) {
        let lit = |node: &Node<V>| match node {
            Node::Lit(l) => Some(Value::from_lit(l).to_json()),
            _ => None,
        };
        let children: Vec<&Node<V>> = match self {
            Node::Lit(_) | Node::Local(..) => Vec::new(),
            Node::Var(var, default) => {
                out.push((var, Vec::new()));
                default.iter().map(AsRef::as_ref).collect()
            }
            Node::DynVar(key, default, _) => std::iter::once(key.as_ref())
                .chain(default.iter().map(AsRef::as_ref))
                .collect(),
            Node::Array(items) | Node::Feed(_, items) => items.iter().collect(),
            Node::Glob(arg, glob) => {
                if let Node::Var(var, _) = arg.as_ref() {
                    out.push((var, vec![serde_json::Value::String(glob.example())]));
                }
                vec![arg.as_ref()]
            }
            Node::SemVer(arg, _, target) => {
                if let Node::Var(var, _) = arg.as_ref() {
                    // The target satisfies `=`, `>=`, `^`, `~`; the lowest version `<`.
                    out.push((var, vec![target.to_string().into(), "0.0.0".into()]));
                }
                vec![arg.as_ref()]
            }
            Node::InSegment(var, arg) => {
                out.push((var, lit(arg).into_iter().collect()));
                vec![arg.as_ref()]
            }
            Node::Op(op, args) => {
                let pair = match args.as_slice() {
                    [Node::Var(var, _), other, ..] | [other, Node::Var(var, _), ..] => {
                        Some((var, other))
                    }
                    _ => None,
                };
                if let Some((var, Node::Lit(value))) = pair {
                    let values: Vec<serde_json::Value> = match (op, value) {
                        (Op::StartsWith, Lit::String(p)) => vec![format!("{p}example").into()],
                        (Op::EndsWith, Lit::String(p)) => vec![format!("example{p}").into()],
                        (_, Lit::Array(items)) if op.compares() => {
                            items.iter().map(|i| Value::from_lit(i).to_json()).collect()
                        }
                        // A number and the next one: between them every comparison
                        // with the literal can go either way.
                        (_, Lit::Number(n)) if op.compares() => vec![
                            Value::Number(*n).to_json(),
                            Value::Number(n + 1.0).to_json(),
                        ],
                        (_, other) if op.compares() => vec![Value::from_lit(other).to_json()],
                        _ => Vec::new(),
                    };
                    out.push((var, values));
                }
                args.iter().collect()
            }
        };
        for child in children {
            child.examples(out);
        }
    }
}

impl<V: Clone> Node<V> {
    fn feed_keys(&self, out: &mut Vec<(FeedOp, Rule<V>)>) {
        let children: Vec<&Node<V>> = match self {
            Node::Lit(_) | Node::Local(..) => Vec::new(),
            Node::Array(items) | Node::Op(_, items) => items.iter().collect(),
            Node::Feed(op, items) => {
                if let Some(first) = items.first() {
                    out.push((
                        *op,
                        Rule {
                            root: first.clone(),
                        },
                    ));
                }
                items.iter().collect()
            }
            Node::Var(_, default) => default.iter().map(AsRef::as_ref).collect(),
            Node::DynVar(key, default, _) => std::iter::once(key.as_ref())
                .chain(default.iter().map(AsRef::as_ref))
                .collect(),
            Node::Glob(arg, _) | Node::SemVer(arg, _, _) | Node::InSegment(_, arg) => {
                vec![arg.as_ref()]
            }
        };
        for child in children {
            child.feed_keys(out);
        }
    }
}

/// The standard JSON Logic operators plus the plain-argument extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub(crate) enum Op {
    If,
    Eq,
    StrictEq,
    Ne,
    StrictNe,
    Not,
    NotNot,
    Or,
    And,
    Lt,
    Le,
    Gt,
    Ge,
    Max,
    Min,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Map,
    Filter,
    Reduce,
    All,
    None,
    Some,
    Merge,
    In,
    Cat,
    Substr,
    Missing,
    MissingSome,
    Log,
    StartsWith,
    EndsWith,
}

impl Op {
    fn compares(self) -> bool {
        matches!(
            self,
            Op::Eq
                | Op::StrictEq
                | Op::Ne
                | Op::StrictNe
                | Op::Lt
                | Op::Le
                | Op::Gt
                | Op::Ge
                | Op::In
        )
    }
}
