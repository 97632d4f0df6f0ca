//! Rules over plain JSON data: what `rule eval --data` and the conformance suite use.
//!
//! Every path is a valid variable here, since JSON data has no fixed shape; the engine's
//! request context has its own schema that knows its fields.

use super::cost::VarBound;
use super::value::{Lit, Value};
use super::{Data, Schema, UnknownVariable};

/// The schema of arbitrary JSON: any dotted path resolves to itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSchema;

impl Schema for JsonSchema {
    type Var = Vec<String>;

    fn resolve(&self, path: &str) -> Result<Vec<String>, UnknownVariable> {
        Ok(if path.is_empty() {
            Vec::new()
        } else {
            path.split('.').map(str::to_owned).collect()
        })
    }
}

/// [`JsonSchema`] with every variable bounded by the size of one JSON document: the
/// schema a rule's worst case over that data is worked out with.
#[derive(Debug, Clone, Copy)]
pub struct BoundedJsonSchema {
    bound: VarBound,
}

impl BoundedJsonSchema {
    /// The schema of `data`: any variable holds at most what `data` holds anywhere.
    pub fn of(data: &serde_json::Value) -> BoundedJsonSchema {
        fn walk(json: &serde_json::Value, depth: usize, out: &mut VarBound) -> u64 {
            let bytes = match json {
                serde_json::Value::String(s) => s.len() as u64,
                serde_json::Value::Array(items) => {
                    out.items = out.items.max(items.len() as u64);
                    if depth > 0 {
                        out.item_items = out.item_items.max(items.len() as u64);
                    }
                    let inner: u64 = items
                        .iter()
                        .map(|i| walk(i, depth + 1, out).saturating_add(1))
                        .sum();
                    inner
                }
                serde_json::Value::Object(map) => {
                    for v in map.values() {
                        walk(v, depth + 1, out);
                    }
                    15
                }
                _ => 24,
            };
            out.bytes = out.bytes.max(bytes);
            if depth > 0 {
                out.item_bytes = out.item_bytes.max(bytes);
            }
            bytes
        }
        let mut bound = VarBound::SCALAR;
        walk(data, 0, &mut bound);
        // Lists nested in objects are elements too, as far as a path reaching them goes.
        bound.item_items = bound.item_items.max(bound.items);
        bound.item_bytes = bound.item_bytes.max(bound.bytes);
        BoundedJsonSchema { bound }
    }
}

impl Schema for BoundedJsonSchema {
    type Var = Vec<String>;

    fn resolve(&self, path: &str) -> Result<Vec<String>, UnknownVariable> {
        JsonSchema.resolve(path)
    }

    fn bound(&self, _var: &Vec<String>) -> VarBound {
        self.bound
    }

    fn any_bound(&self) -> VarBound {
        self.bound
    }
}

/// JSON data for rules compiled with [`JsonSchema`].
#[derive(Debug, Clone, PartialEq)]
pub struct JsonData(pub Lit);

impl JsonData {
    /// Wraps parsed JSON.
    pub fn new(json: &serde_json::Value) -> JsonData {
        JsonData(Lit::from_json(json))
    }

    fn walk<'a, 'p>(&'a self, path: impl Iterator<Item = &'p str>) -> Option<Value<'a>> {
        let mut value = Value::from_lit(&self.0);
        for key in path {
            value = value.member(key)?;
        }
        Some(value)
    }
}

impl Data for JsonData {
    type Var = Vec<String>;

    fn get(&self, var: &Vec<String>) -> Option<Value<'_>> {
        self.walk(var.iter().map(String::as_str))
    }

    fn get_path(&self, path: &str) -> Option<Value<'_>> {
        if path.is_empty() {
            return Some(Value::from_lit(&self.0));
        }
        self.walk(path.split('.'))
    }
}
