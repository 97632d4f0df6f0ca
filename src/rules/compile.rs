//! JSON Logic → [`Rule`]: operator lookup, arity checks, variable resolution, limits.

use std::fmt;

use serde_json::Value as Json;

use super::glob::Glob;
use super::semver::{SemOp, Version};
use super::value::{js_number_to_string, Lit};
use super::{FeedOp, Node, Op, Rule, Schema};
use crate::suggest::{did_you_mean, hint};

/// Bounds on the size of one rule, checked before any work is spent on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The deepest nesting of operators and arrays.
    pub max_depth: usize,
    /// The most nodes (operators, literals, variables) in one rule.
    pub max_nodes: usize,
    /// Whether to refuse a rule whose worst case, over the schema's variable bounds,
    /// is over the work budget ([`super::MAX_STEPS`], [`super::MAX_BYTES`]). Rules
    /// over data of unknown size (`rule eval`) rely on the budget at evaluation.
    pub check_cost: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 32,
            max_nodes: 4096,
            check_cost: false,
        }
    }
}

/// Why a rule did not compile, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{kind}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct CompileError {
    /// The path of the offending node inside the rule, such as `and[1]`; empty for the
    /// rule itself. Callers prefix it with where the rule sits.
    pub path: String,
    /// What is wrong.
    pub kind: CompileErrorKind,
}

/// What is wrong with a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompileErrorKind {
    /// No such operator.
    #[error("unknown operator \"{op}\"{}", hint(suggestion.as_deref()))]
    UnknownOperator {
        /// The operator as written.
        op: String,
        /// The closest known operator.
        suggestion: Option<String>,
    },
    /// An operator got a number of arguments it cannot use.
    #[error("\"{op}\" takes {expected} arguments, got {got}")]
    Arity {
        /// The operator.
        op: &'static str,
        /// What it takes, such as `2` or `2 or 3`.
        expected: &'static str,
        /// What it got.
        got: usize,
    },
    /// Nested deeper than [`Limits::max_depth`].
    #[error("rule is nested deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// More nodes than [`Limits::max_nodes`].
    #[error("rule has more than {limit} nodes")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// A variable the schema does not know.
    #[error("unknown variable \"{name}\"{}", hint(suggestion.as_deref()))]
    UnknownVariable {
        /// The variable as written.
        name: String,
        /// The closest known variable.
        suggestion: Option<String>,
    },
    /// The rule's worst case is over the work budget.
    #[error("rule can take up to {} steps and build up to {} bytes per evaluation, over the budget of {} steps and {} bytes", figure(*steps), figure(*bytes), super::MAX_STEPS, super::MAX_BYTES)]
    TooCostly {
        /// The worst-case steps (`u64::MAX`: unbounded).
        steps: u64,
        /// The worst-case bytes built.
        bytes: u64,
    },
    /// An argument that must be known at compile time is not, or is malformed.
    #[error("\"{op}\": {reason}")]
    InvalidArgument {
        /// The operator.
        op: &'static str,
        /// What is wrong with the argument.
        reason: String,
    },
}

fn figure(n: u64) -> String {
    if n == u64::MAX {
        "unboundedly many".into()
    } else {
        n.to_string()
    }
}

/// Every operator name, for lookups and suggestions.
const OPERATORS: &[(&str, Syntax)] = &[
    ("var", Syntax::Var),
    ("if", Syntax::Op(Op::If)),
    ("?:", Syntax::Op(Op::If)),
    ("==", Syntax::Op(Op::Eq)),
    ("===", Syntax::Op(Op::StrictEq)),
    ("!=", Syntax::Op(Op::Ne)),
    ("!==", Syntax::Op(Op::StrictNe)),
    ("!", Syntax::Op(Op::Not)),
    ("!!", Syntax::Op(Op::NotNot)),
    ("or", Syntax::Op(Op::Or)),
    ("and", Syntax::Op(Op::And)),
    ("<", Syntax::Op(Op::Lt)),
    ("<=", Syntax::Op(Op::Le)),
    (">", Syntax::Op(Op::Gt)),
    (">=", Syntax::Op(Op::Ge)),
    ("max", Syntax::Op(Op::Max)),
    ("min", Syntax::Op(Op::Min)),
    ("+", Syntax::Op(Op::Add)),
    ("-", Syntax::Op(Op::Sub)),
    ("*", Syntax::Op(Op::Mul)),
    ("/", Syntax::Op(Op::Div)),
    ("%", Syntax::Op(Op::Mod)),
    ("map", Syntax::Op(Op::Map)),
    ("filter", Syntax::Op(Op::Filter)),
    ("reduce", Syntax::Op(Op::Reduce)),
    ("all", Syntax::Op(Op::All)),
    ("none", Syntax::Op(Op::None)),
    ("some", Syntax::Op(Op::Some)),
    ("merge", Syntax::Op(Op::Merge)),
    ("in", Syntax::Op(Op::In)),
    ("cat", Syntax::Op(Op::Cat)),
    ("substr", Syntax::Op(Op::Substr)),
    ("missing", Syntax::Op(Op::Missing)),
    ("missing_some", Syntax::Op(Op::MissingSome)),
    ("log", Syntax::Op(Op::Log)),
    ("starts_with", Syntax::Op(Op::StartsWith)),
    ("ends_with", Syntax::Op(Op::EndsWith)),
    ("glob", Syntax::Glob),
    ("sem_ver", Syntax::SemVer),
    ("seen", Syntax::Seen),
    ("in_segment", Syntax::InSegment),
    ("stock", Syntax::Feed(FeedOp::Stock)),
    ("nearest_store", Syntax::Feed(FeedOp::NearestStore)),
];

#[derive(Debug, Clone, Copy)]
enum Syntax {
    Op(Op),
    Var,
    Glob,
    SemVer,
    Seen,
    InSegment,
    Feed(FeedOp),
}

/// The argument counts an operator accepts; JSON Logic is lenient where a count still
/// has an answer (`{"if": []}` is null), strict where it would only hide a mistake.
fn arity(op: Op) -> Option<(usize, usize, &'static str)> {
    Some(match op {
        Op::Eq | Op::StrictEq | Op::Ne | Op::StrictNe | Op::Gt | Op::Ge | Op::Div | Op::Mod => {
            (2, 2, "2")
        }
        Op::In | Op::StartsWith | Op::EndsWith | Op::MissingSome => (2, 2, "2"),
        Op::Map | Op::Filter | Op::All | Op::None | Op::Some => (2, 2, "2"),
        Op::Lt | Op::Le | Op::Reduce | Op::Substr => (2, 3, "2 or 3"),
        Op::Not | Op::NotNot => (1, 1, "1"),
        Op::Sub => (1, 2, "1 or 2"),
        Op::Mul | Op::Log => (1, usize::MAX, "1 or more"),
        _ => return None,
    })
}

/// A path inside the rule, kept as a chain of borrowed segments so nothing is
/// formatted unless an error is reported.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(parent, key) => {
                parent.fmt(f)?;
                if matches!(parent, Path::Root) {
                    write!(f, "{key}")
                } else {
                    write!(f, ".{key}")
                }
            }
            Path::Index(parent, i) => {
                parent.fmt(f)?;
                write!(f, "[{i}]")
            }
        }
    }
}

struct Compiler<'s, S> {
    schema: &'s S,
    limits: Limits,
    nodes: usize,
}

/// Compiles a JSON Logic rule, resolving its variables through `schema`.
pub fn compile<S: Schema>(
    rule: &Json,
    schema: &S,
    limits: Limits,
) -> Result<Rule<S::Var>, CompileError> {
    let mut compiler = Compiler {
        schema,
        limits,
        nodes: 0,
    };
    let root = compiler.node(rule, &Path::Root, 0, false)?;
    if limits.check_cost {
        let cost = super::cost::cost(&root, &|v| schema.bound(v), schema.any_bound());
        if cost.steps > super::MAX_STEPS || cost.alloc > super::MAX_BYTES {
            return Err(error(
                &Path::Root,
                CompileErrorKind::TooCostly {
                    steps: cost.steps,
                    bytes: cost.alloc,
                },
            ));
        }
    }
    Ok(Rule { root })
}

fn error(path: &Path<'_>, kind: CompileErrorKind) -> CompileError {
    CompileError {
        path: path.to_string(),
        kind,
    }
}

/// The arguments of an operator: JSON Logic lets a single argument skip its array.
fn arguments(arg: &Json) -> Vec<&Json> {
    match arg {
        Json::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

impl<S: Schema> Compiler<'_, S> {
    fn node(
        &mut self,
        json: &Json,
        path: &Path<'_>,
        depth: usize,
        local: bool,
    ) -> Result<Node<S::Var>, CompileError> {
        if depth > self.limits.max_depth {
            return Err(error(
                path,
                CompileErrorKind::TooDeep {
                    limit: self.limits.max_depth,
                },
            ));
        }
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(error(
                path,
                CompileErrorKind::TooLarge {
                    limit: self.limits.max_nodes,
                },
            ));
        }
        match json {
            Json::Array(items) => {
                let nodes = items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.node(item, &Path::Index(path, i), depth + 1, local))
                    .collect::<Result<Vec<_>, _>>()?;
                if nodes.iter().all(|n| matches!(n, Node::Lit(_))) {
                    let lits = nodes
                        .into_iter()
                        .filter_map(|n| match n {
                            Node::Lit(lit) => Some(lit),
                            _ => None,
                        })
                        .collect();
                    Ok(Node::Lit(Lit::Array(lits)))
                } else {
                    Ok(Node::Array(nodes))
                }
            }
            Json::Object(map) if map.len() == 1 => match map.iter().next() {
                Some((op, arg)) => self.operator(op, arg, path, depth, local),
                None => Ok(Node::Lit(Lit::from_json(json))),
            },
            // Objects with other than one key are data, as in json-logic-js.
            other => Ok(Node::Lit(Lit::from_json(other))),
        }
    }

    fn operator(
        &mut self,
        name: &str,
        arg: &Json,
        path: &Path<'_>,
        depth: usize,
        local: bool,
    ) -> Result<Node<S::Var>, CompileError> {
        let Some((op_name, syntax)) = OPERATORS.iter().find(|(n, _)| *n == name).copied() else {
            return Err(error(
                path,
                CompileErrorKind::UnknownOperator {
                    op: name.to_owned(),
                    suggestion: did_you_mean(name, OPERATORS.iter().map(|(n, _)| *n))
                        .map(str::to_owned),
                },
            ));
        };
        let here = Path::Key(path, op_name);
        let args = arguments(arg);
        let in_array = matches!(arg, Json::Array(_));
        let arg_path = |i: usize| arg_path(&here, in_array, i);
        let check_count = |min: usize, max: usize, expected: &'static str| {
            if args.len() < min || args.len() > max {
                Err(error(
                    &here,
                    CompileErrorKind::Arity {
                        op: op_name,
                        expected,
                        got: args.len(),
                    },
                ))
            } else {
                Ok(())
            }
        };
        match syntax {
            Syntax::Var => {
                check_count(0, 2, "0 to 2")?;
                self.var(&args, &here, in_array, depth, local)
            }
            Syntax::Op(op) => {
                if let Some((min, max, expected)) = arity(op) {
                    check_count(min, max, expected)?;
                }
                let iterates = matches!(
                    op,
                    Op::Map | Op::Filter | Op::Reduce | Op::All | Op::None | Op::Some
                );
                let nodes = args
                    .iter()
                    .enumerate()
                    .map(|(i, a)| {
                        // The second argument of an iterating operator runs once per
                        // element, with `var` reading that element.
                        let body = iterates && i == 1;
                        self.node(a, &arg_path(i), depth + 1, local || body)
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Node::Op(op, nodes))
            }
            Syntax::Glob => {
                check_count(2, 2, "2")?;
                let pattern =
                    literal_string(args.get(1).copied(), "glob", "the pattern", &arg_path(1))?;
                let subject = self.arg(&args, 0, &arg_path(0), depth, local)?;
                Ok(Node::Glob(Box::new(subject), Glob::new(pattern)))
            }
            Syntax::SemVer => {
                check_count(3, 3, "3")?;
                let op_text = literal_string(
                    args.get(1).copied(),
                    "sem_ver",
                    "the operator",
                    &arg_path(1),
                )?;
                let sem_op = SemOp::parse(op_text).ok_or_else(|| {
                    error(
                        &arg_path(1),
                        CompileErrorKind::InvalidArgument {
                            op: "sem_ver",
                            reason: format!(
                                "unknown operator \"{op_text}\", expected one of {}",
                                SemOp::NAMES.join(" ")
                            ),
                        },
                    )
                })?;
                let target_text =
                    literal_string(args.get(2).copied(), "sem_ver", "the version", &arg_path(2))?;
                let target = Version::parse(target_text).ok_or_else(|| {
                    error(
                        &arg_path(2),
                        CompileErrorKind::InvalidArgument {
                            op: "sem_ver",
                            reason: format!("\"{target_text}\" is not a semantic version"),
                        },
                    )
                })?;
                let subject = self.arg(&args, 0, &arg_path(0), depth, local)?;
                Ok(Node::SemVer(Box::new(subject), sem_op, target))
            }
            Syntax::Seen => {
                check_count(1, 1, "1")?;
                let content = literal_string(
                    args.first().copied(),
                    "seen",
                    "the content id",
                    &arg_path(0),
                )?;
                let var = self.resolve(&format!("seen.{content}"), &arg_path(0))?;
                // A content never seen has been seen zero times.
                Ok(Node::Var(var, Some(Box::new(Node::Lit(Lit::Number(0.0))))))
            }
            Syntax::InSegment => {
                check_count(1, 1, "1")?;
                let var = self.resolve("segments", &here)?;
                let segment = self.arg(&args, 0, &arg_path(0), depth, local)?;
                Ok(Node::InSegment(var, Box::new(segment)))
            }
            Syntax::Feed(op) => {
                check_count(2, 2, "2")?;
                self.schema.feed(op).map_err(|reason| {
                    error(
                        &here,
                        CompileErrorKind::InvalidArgument {
                            op: op.name(),
                            reason,
                        },
                    )
                })?;
                let items = (0..2)
                    .map(|i| self.arg(&args, i, &arg_path(i), depth, local))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Node::Feed(op, items))
            }
        }
    }

    fn arg(
        &mut self,
        args: &[&Json],
        i: usize,
        path: &Path<'_>,
        depth: usize,
        local: bool,
    ) -> Result<Node<S::Var>, CompileError> {
        match args.get(i) {
            Some(arg) => self.node(arg, path, depth + 1, local),
            None => Ok(Node::Lit(Lit::Null)),
        }
    }

    fn var(
        &mut self,
        args: &[&Json],
        here: &Path<'_>,
        in_array: bool,
        depth: usize,
        local: bool,
    ) -> Result<Node<S::Var>, CompileError> {
        let arg_path = |i: usize| arg_path(here, in_array, i);
        let default = match args.get(1) {
            Some(d) => Some(Box::new(self.node(d, &arg_path(1), depth + 1, local)?)),
            None => None,
        };
        let name = match args.first() {
            None | Some(Json::Null) => String::new(),
            Some(Json::String(s)) => s.clone(),
            Some(Json::Number(n)) => js_number_to_string(n.as_f64().unwrap_or(f64::NAN)),
            Some(Json::Bool(b)) => b.to_string(),
            Some(computed) => {
                let key = self.node(computed, &arg_path(0), depth + 1, local)?;
                return Ok(Node::DynVar(Box::new(key), default, local));
            }
        };
        if local {
            let path = if name.is_empty() {
                Vec::new()
            } else {
                name.split('.').map(str::to_owned).collect()
            };
            return Ok(Node::Local(path, default));
        }
        let var = self.resolve(&name, here)?;
        Ok(Node::Var(var, default))
    }

    fn resolve(&self, name: &str, path: &Path<'_>) -> Result<S::Var, CompileError> {
        self.schema.resolve(name).map_err(|unknown| {
            error(
                path,
                CompileErrorKind::UnknownVariable {
                    name: name.to_owned(),
                    suggestion: unknown.suggestion,
                },
            )
        })
    }
}

/// The path of argument `i`: written as an array element, or as the operator's value
/// when the single argument skipped its array.
fn arg_path<'p>(here: &'p Path<'p>, in_array: bool, i: usize) -> Path<'p> {
    if in_array {
        Path::Index(here, i)
    } else {
        *here
    }
}

fn literal_string<'j>(
    arg: Option<&'j Json>,
    op: &'static str,
    what: &str,
    path: &Path<'_>,
) -> Result<&'j str, CompileError> {
    match arg {
        Some(Json::String(s)) => Ok(s),
        _ => Err(error(
            path,
            CompileErrorKind::InvalidArgument {
                op,
                reason: format!("{what} must be a literal string"),
            },
        )),
    }
}
