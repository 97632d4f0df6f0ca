//! The worst case of a compiled rule: an upper bound on what one evaluation charges to
//! its [`super::Fuel`], worked out from the rule and the bounds of the variables it
//! reads, before the rule ever runs.
//!
//! It mirrors [`super::eval`] charge for charge: a step per node evaluated and per key
//! `missing` looks up (the body of an iterating operator is a node evaluated once per
//! element), and for every node whose value is a built string or list, that value's
//! bytes. A rule within the budget here cannot run out of fuel when it is evaluated, so
//! the compiler refuses the others (`reduce` over a list with a `merge` that doubles,
//! `some` nested over lists) with the figure: a marketer learns it when validating, not
//! from a slow site.

use super::eval::ITEM_BYTES;
use super::value::Lit;
use super::{Node, Op};

/// What a value can hold at most, as far as the cost of a rule goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VarBound {
    /// The longest list it can be (0 for a scalar or a string).
    pub items: u64,
    /// The longest text it converts to, in bytes.
    pub bytes: u64,
    /// The longest list any element (at any depth) can be.
    pub item_items: u64,
    /// The longest text any element (at any depth) converts to.
    pub item_bytes: u64,
    /// Whether reading it builds it (a list assembled per read, a copied element).
    pub built: bool,
}

impl VarBound {
    /// A number, a boolean, null.
    pub const SCALAR: VarBound = VarBound {
        items: 0,
        bytes: 24,
        item_items: 0,
        item_bytes: 0,
        built: false,
    };

    /// Text of at most `bytes` bytes, borrowed where it lives.
    pub const fn text(bytes: u64) -> VarBound {
        VarBound {
            items: 0,
            bytes,
            item_items: 0,
            item_bytes: 0,
            built: false,
        }
    }

    /// A list of at most `items` strings of at most `item_bytes` bytes, built per read.
    pub const fn list_of_text(items: u64, item_bytes: u64) -> VarBound {
        VarBound {
            items,
            bytes: items.saturating_mul(item_bytes.saturating_add(1)),
            item_items: 0,
            item_bytes,
            built: true,
        }
    }

    /// This bound, or text of `bytes` bytes, whichever is larger.
    pub fn max_text(self, bytes: u64) -> VarBound {
        self.max(VarBound::text(bytes))
    }

    fn max(self, other: VarBound) -> VarBound {
        VarBound {
            items: self.items.max(other.items),
            bytes: self.bytes.max(other.bytes),
            item_items: self.item_items.max(other.item_items),
            item_bytes: self.item_bytes.max(other.item_bytes),
            built: self.built || other.built,
        }
    }

    /// The bound of one element of this list.
    fn element(self) -> VarBound {
        VarBound {
            items: self.item_items,
            bytes: self.item_bytes,
            item_items: self.item_items,
            item_bytes: self.item_bytes,
            // An element read inside a body is a copy.
            built: true,
        }
    }

    /// What holding this value charges, when it is built.
    fn charge(self) -> u64 {
        if !self.built {
            return 0;
        }
        self.items.saturating_mul(ITEM_BYTES).max(self.bytes)
    }
}

/// An upper bound on one evaluation of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cost {
    /// Steps charged.
    pub steps: u64,
    /// Bytes charged.
    pub alloc: u64,
    /// The value's bound.
    pub value: VarBound,
}

fn add(a: u64, b: u64) -> u64 {
    a.saturating_add(b)
}

fn mul(a: u64, b: u64) -> u64 {
    a.saturating_mul(b)
}

/// What `var` reads inside an iterating operator's body.
#[derive(Clone, Copy)]
enum Scope {
    Top,
    Item(VarBound),
    Reduce {
        current: VarBound,
        accumulator: VarBound,
    },
}

impl Scope {
    /// The bound of whatever a `var` with a non-empty path inside this scope may read.
    fn any(self) -> VarBound {
        match self {
            Scope::Top => VarBound::SCALAR,
            Scope::Item(item) => item,
            Scope::Reduce {
                current,
                accumulator,
            } => current.max(accumulator),
        }
    }

    /// The bound of what `{"var": ""}` reads: the element, or in `reduce` the object
    /// that holds a copy of the current element and of the accumulator.
    fn whole(self) -> VarBound {
        match self {
            Scope::Reduce {
                current,
                accumulator,
            } => {
                let fields = [current, accumulator];
                let items = fields
                    .iter()
                    .map(|f| f.items.max(f.item_items))
                    .fold(0, u64::max);
                // Each member is charged as a list element, plus what it holds.
                let bytes = fields
                    .iter()
                    .map(|f| {
                        add(
                            ITEM_BYTES,
                            mul(f.items, ITEM_BYTES).max(f.bytes).max(f.item_bytes),
                        )
                    })
                    .fold(0, add);
                VarBound {
                    items,
                    bytes,
                    item_items: items,
                    item_bytes: bytes,
                    built: true,
                }
            }
            other => other.any(),
        }
    }
}

/// The worst case of a rule. `bound` gives each variable's bound, `any` the bound of
/// whatever a computed `var` path may name.
pub(crate) fn cost<V>(node: &Node<V>, bound: &dyn Fn(&V) -> VarBound, any: VarBound) -> Cost {
    Estimator { bound, any }.node(node, Scope::Top)
}

struct Estimator<'b, V> {
    bound: &'b dyn Fn(&V) -> VarBound,
    any: VarBound,
}

fn lit_bound(lit: &Lit) -> VarBound {
    match lit {
        Lit::Null | Lit::Bool(_) | Lit::Number(_) => VarBound::SCALAR,
        Lit::String(s) => VarBound::text(s.len() as u64),
        Lit::Array(items) => {
            // Each element's bound once: twice per level would be exponential in the
            // nesting (a fuzzer's 33 nested arrays took minutes).
            let bounds: Vec<VarBound> = items.iter().map(lit_bound).collect();
            let elements = bounds.iter().fold(VarBound::text(0), |acc, b| VarBound {
                items: acc.items.max(b.items).max(b.item_items),
                bytes: 0,
                item_items: 0,
                item_bytes: acc.item_bytes.max(b.bytes).max(b.item_bytes),
                built: false,
            });
            VarBound {
                items: items.len() as u64,
                bytes: bounds.iter().map(|b| add(b.bytes, 1)).fold(0, add),
                item_items: elements.items,
                item_bytes: elements.item_bytes,
                built: false,
            }
        }
        Lit::Object(_) => VarBound::text(15),
    }
}

/// Several values in one list: its elements are any of them, or their elements.
fn elements_of(values: &[VarBound]) -> (u64, u64) {
    values.iter().fold((0, 0), |(items, bytes), v| {
        (
            items.max(v.items).max(v.item_items),
            bytes.max(v.bytes).max(v.item_bytes),
        )
    })
}

impl<V> Estimator<'_, V> {
    /// A node: one step, what its parts charge, and its value when that is built.
    fn node(&self, node: &Node<V>, scope: Scope) -> Cost {
        let inner = self.inner(node, scope);
        Cost {
            steps: add(inner.steps, 1),
            alloc: add(inner.alloc, inner.value.charge()),
            value: inner.value,
        }
    }

    fn inner(&self, node: &Node<V>, scope: Scope) -> Cost {
        match node {
            Node::Lit(lit) => Cost {
                steps: 0,
                alloc: 0,
                value: lit_bound(lit),
            },
            Node::Array(items) => {
                let costs: Vec<Cost> = items.iter().map(|n| self.node(n, scope)).collect();
                let values: Vec<VarBound> = costs.iter().map(|c| c.value).collect();
                let (item_items, item_bytes) = elements_of(&values);
                Cost {
                    steps: costs.iter().map(|c| c.steps).fold(0, add),
                    alloc: costs.iter().map(|c| c.alloc).fold(0, add),
                    value: VarBound {
                        items: costs.len() as u64,
                        bytes: values.iter().map(|v| add(v.bytes, 1)).fold(0, add),
                        item_items,
                        item_bytes,
                        built: true,
                    },
                }
            }
            Node::Var(var, default) => self.read((self.bound)(var), default.as_deref(), scope),
            Node::Local(path, default) => {
                let found = if path.is_empty() {
                    scope.whole()
                } else {
                    scope.any()
                };
                self.read(found, default.as_deref(), scope)
            }
            Node::DynVar(key, default, local) => {
                let key = self.node(key, scope);
                let found = if *local {
                    scope.any().max(scope.whole())
                } else {
                    self.any
                };
                let read = self.read(found, default.as_deref(), scope);
                Cost {
                    steps: add(read.steps, key.steps),
                    alloc: add(read.alloc, key.alloc),
                    value: read.value,
                }
            }
            Node::Glob(subject, _) | Node::SemVer(subject, _, _) | Node::InSegment(_, subject) => {
                let s = self.node(subject, scope);
                Cost {
                    steps: s.steps,
                    alloc: s.alloc,
                    value: VarBound::SCALAR,
                }
            }
            Node::Op(op, args) => self.operator(*op, args, scope),
            Node::Feed(_, args) => {
                let mut cost = Cost {
                    steps: super::eval::FEED_STEPS,
                    alloc: 0,
                    // A quantity, or a store id (a key: at most 256 bytes).
                    value: VarBound::text(256),
                };
                for arg in args {
                    let a = self.node(arg, scope);
                    cost.steps = add(cost.steps, a.steps);
                    cost.alloc = add(cost.alloc, a.alloc);
                }
                cost
            }
        }
    }

    /// A variable read: its value, or (when absent) its default's.
    fn read(&self, found: VarBound, default: Option<&Node<V>>, scope: Scope) -> Cost {
        match default {
            None => Cost {
                steps: 0,
                alloc: 0,
                value: found,
            },
            Some(d) => {
                let d = self.node(d, scope);
                Cost {
                    steps: d.steps,
                    alloc: d.alloc,
                    // The default's value passes through this node: charged again.
                    value: found.max(VarBound {
                        built: d.value.built,
                        ..d.value
                    }),
                }
            }
        }
    }

    fn operator(&self, op: Op, args: &[Node<V>], scope: Scope) -> Cost {
        if matches!(
            op,
            Op::Map | Op::Filter | Op::All | Op::None | Op::Some | Op::Reduce
        ) {
            return self.iterate(op, args, scope);
        }
        let costs: Vec<Cost> = args.iter().map(|n| self.node(n, scope)).collect();
        let steps = costs.iter().map(|c| c.steps).fold(0, add);
        let alloc = costs.iter().map(|c| c.alloc).fold(0, add);
        let values: Vec<VarBound> = costs.iter().map(|c| c.value).collect();
        let value = match op {
            // One of the arguments, passed through (and charged again when built); `*`
            // gives back a single argument as it is.
            Op::If | Op::Or | Op::And | Op::Log => values
                .iter()
                .copied()
                .reduce(VarBound::max)
                .unwrap_or(VarBound::SCALAR),
            Op::Mul if values.len() == 1 => values.first().copied().unwrap_or(VarBound::SCALAR),
            Op::Cat | Op::Substr => {
                let bytes = if op == Op::Cat {
                    values.iter().map(|v| v.bytes).fold(0, add)
                } else {
                    values.first().map_or(0, |v| v.bytes)
                };
                VarBound {
                    built: true,
                    ..VarBound::text(bytes)
                }
            }
            Op::Merge => {
                let items = values
                    .iter()
                    .map(|v| if v.items > 0 { v.items } else { 1 })
                    .fold(0, add);
                let (mut item_items, mut item_bytes) = (0, 0);
                for v in &values {
                    if v.items > 0 {
                        item_items = item_items.max(v.item_items);
                        item_bytes = item_bytes.max(v.item_bytes);
                    } else {
                        item_bytes = item_bytes.max(v.bytes);
                    }
                }
                VarBound {
                    items,
                    bytes: values.iter().map(|v| add(v.bytes, 1)).fold(0, add),
                    item_items,
                    item_bytes,
                    built: true,
                }
            }
            Op::Missing | Op::MissingSome => {
                // A list's keys, or those of its first element when that is a list
                // (`missing_some` reads `[[keys…], …]` so).
                let keys = values
                    .iter()
                    .map(|v| {
                        if v.items > 0 {
                            v.items.max(v.item_items)
                        } else {
                            1
                        }
                    })
                    .fold(0, add);
                let (_, key_bytes) = elements_of(&values);
                return Cost {
                    // One step per key looked up.
                    steps: add(steps, keys),
                    alloc,
                    value: VarBound {
                        built: true,
                        ..VarBound::list_of_text(keys, key_bytes)
                    },
                };
            }
            _ => VarBound::SCALAR,
        };
        Cost {
            steps,
            alloc,
            value,
        }
    }

    /// `map`, `filter`, `all`, `none`, `some` and `reduce`: the body is a node evaluated
    /// once per element, with `var` reading that element.
    fn iterate(&self, op: Op, args: &[Node<V>], scope: Scope) -> Cost {
        let list = args.first().map_or(self.zero(), |n| self.node(n, scope));
        let element = list.value.element();
        let n = list.value.items;
        if op == Op::Reduce {
            return self.reduce(args, scope, list);
        }
        let body = args
            .get(1)
            .map_or(self.zero(), |b| self.node(b, Scope::Item(element)));
        let steps = add(list.steps, mul(n, body.steps));
        let alloc = add(list.alloc, mul(n, body.alloc));
        let value = match op {
            Op::Map => VarBound {
                items: n,
                bytes: mul(n, add(body.value.bytes, 1)),
                item_items: body.value.items.max(body.value.item_items),
                item_bytes: body.value.bytes.max(body.value.item_bytes),
                built: true,
            },
            Op::Filter => VarBound {
                built: true,
                ..list.value
            },
            _ => VarBound::SCALAR,
        };
        Cost {
            steps,
            alloc,
            value,
        }
    }

    fn zero(&self) -> Cost {
        Cost {
            steps: 0,
            alloc: 0,
            value: VarBound::SCALAR,
        }
    }

    /// `reduce`: the accumulator's bound grows with each element the body sees (a
    /// `merge` of the accumulator with itself doubles it), so the body is estimated
    /// element by element until its bound stops growing or the budget is past.
    fn reduce(&self, args: &[Node<V>], scope: Scope, list: Cost) -> Cost {
        let init = args.get(2).map_or(self.zero(), |n| self.node(n, scope));
        let mut steps = add(list.steps, init.steps);
        let mut alloc = add(list.alloc, init.alloc);
        let mut accumulator = init.value;
        let Some(body) = args.get(1) else {
            return Cost {
                steps,
                alloc,
                value: init.value,
            };
        };
        let current = list.value.element();
        let mut seen = 0u64;
        while seen < list.value.items {
            let round = self.node(
                body,
                Scope::Reduce {
                    current,
                    accumulator,
                },
            );
            seen += 1;
            steps = add(steps, round.steps);
            alloc = add(alloc, round.alloc);
            let next = accumulator.max(round.value);
            if next == accumulator {
                // A fixed point: every later element costs the same.
                let rest = list.value.items - seen;
                steps = add(steps, mul(rest, round.steps));
                alloc = add(alloc, mul(rest, round.alloc));
                break;
            }
            accumulator = next;
            if steps > super::MAX_STEPS || alloc > super::MAX_BYTES {
                // Over budget already: the exact figure no longer matters.
                return Cost {
                    steps: u64::MAX,
                    alloc: u64::MAX,
                    value: accumulator,
                };
            }
        }
        Cost {
            steps,
            alloc,
            value: accumulator,
        }
    }
}
