//! Rules over plain JSON data: what `rule eval --data` and the conformance suite use.
//!
//! Every path is a valid variable here, since JSON data has no fixed shape; the engine's
//! request context has its own schema that knows its fields.

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

/// JSON data for rules compiled with [`JsonSchema`].
#[derive(Debug, Clone, PartialEq)]
pub struct JsonData(pub Lit);

impl JsonData {
    /// Wraps parsed JSON.
    pub fn new(json: &serde_json::Value) -> JsonData {
        JsonData(Lit::from_json(json))
    }

    fn walk<'a, 'p>(&'a self, path: impl Iterator<Item = &'p str>) -> Option<Value<'a>> {
        let mut lit = &self.0;
        for key in path {
            lit = lit.member(key)?;
        }
        Some(Value::from_lit(lit))
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
