//! A feed's rows as a shop pushes them: NDJSON, one JSON object per line, read against
//! the feed's declaration. Every line is checked before any is kept, and the first bad
//! one is refused with its line number: a push is applied whole or not at all.

use serde_json::Value as Json;

use super::spec::{FeedKind, FeedSpec};
use crate::codec::{Decode, Encode};

/// The longest line of a push.
pub const MAX_LINE_BYTES: usize = 4096;
/// The most rows one push may carry (a full feed is pushed in parts of this many).
pub const MAX_ROWS_PER_PUSH: usize = 100_000;
/// The longest key or text value, in bytes.
const MAX_TEXT_BYTES: usize = 256;

/// A field's value in a row.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Cell {
    Null,
    Number(f64),
    Text(String),
    Flag(bool),
}

/// A row: its key columns and its fields, in the feed's order.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct Row {
    pub key: Vec<String>,
    pub values: Vec<Cell>,
}

impl Row {
    /// The value of field `i`.
    pub fn value(&self, i: u16) -> &Cell {
        self.values.get(usize::from(i)).unwrap_or(&Cell::Null)
    }

    /// The row as the JSON line it was pushed as.
    pub fn to_json(&self, spec: &FeedSpec) -> Json {
        let mut map = serde_json::Map::new();
        for (name, k) in spec.key.iter().zip(&self.key) {
            map.insert(name.clone(), Json::String(k.clone()));
        }
        for (field, v) in spec.fields.iter().zip(&self.values) {
            let json = match v {
                Cell::Null => Json::Null,
                Cell::Number(n) => {
                    serde_json::Number::from_f64(*n).map_or(Json::Null, Json::Number)
                }
                Cell::Text(s) => Json::String(s.clone()),
                Cell::Flag(b) => Json::Bool(*b),
            };
            map.insert(field.name.clone(), json);
        }
        Json::Object(map)
    }
}

/// One line of a push: a row written whole, or a key removed (`"_delete": true`).
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub enum Change {
    Put(Row),
    Delete(Vec<String>),
}

impl Change {
    /// The key it changes.
    pub fn key(&self) -> &[String] {
        match self {
            Change::Put(row) => &row.key,
            Change::Delete(key) => key,
        }
    }
}

/// Why a push was refused: the first bad line, 1-based, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RowError {
    pub line: usize,
    pub message: String,
}

/// Reads a push against its feed's declaration; blank lines are skipped.
pub fn parse_ndjson(spec: &FeedSpec, text: &str) -> Result<Vec<Change>, RowError> {
    let mut changes = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let number = i + 1;
        let fail = |message: String| RowError {
            line: number,
            message,
        };
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(fail(format!(
                "{} bytes, over the {MAX_LINE_BYTES} a row may take",
                line.len()
            )));
        }
        if changes.len() == MAX_ROWS_PER_PUSH {
            return Err(fail(format!(
                "more than {MAX_ROWS_PER_PUSH} rows in one push: push the feed in parts"
            )));
        }
        let json: Json =
            serde_json::from_str(line).map_err(|e| fail(format!("not a JSON object: {e}")))?;
        changes.push(row(spec, &json).map_err(fail)?);
    }
    Ok(changes)
}

/// One row read against the declaration.
fn row(spec: &FeedSpec, json: &Json) -> Result<Change, String> {
    let Json::Object(map) = json else {
        return Err("expected a JSON object".into());
    };
    let delete = match map.get("_delete") {
        None | Some(Json::Bool(false)) => false,
        Some(Json::Bool(true)) => true,
        Some(_) => return Err("`_delete` must be true or false".into()),
    };
    for name in map.keys() {
        let known = name == "_delete"
            || spec.key.iter().any(|k| k == name)
            || spec.fields.iter().any(|f| &f.name == name);
        if !known {
            let columns: Vec<&str> = spec
                .key
                .iter()
                .map(String::as_str)
                .chain(spec.fields.iter().map(|f| f.name.as_str()))
                .collect();
            return Err(format!(
                "unknown column `{name}` (the feed `{}` has {})",
                spec.name,
                columns.join(", ")
            ));
        }
    }
    let mut key = Vec::with_capacity(spec.key.len());
    for name in spec.key.iter() {
        match map.get(name) {
            Some(Json::String(s)) if s.chars().any(char::is_control) => {
                return Err(format!("key column `{name}` holds a control character"));
            }
            Some(Json::String(s)) if !s.is_empty() && s.len() <= MAX_TEXT_BYTES => {
                key.push(s.clone());
            }
            Some(Json::String(s)) if s.is_empty() => {
                return Err(format!("key column `{name}` is empty"));
            }
            Some(Json::String(s)) => {
                return Err(format!(
                    "key column `{name}` is {} bytes, over {MAX_TEXT_BYTES}",
                    s.len()
                ));
            }
            Some(other) => {
                return Err(format!(
                    "key column `{name}` must be a string, not {}",
                    kind_of(other)
                ));
            }
            None => return Err(format!("missing key column `{name}`")),
        }
    }
    if delete {
        return Ok(Change::Delete(key));
    }
    let mut values = Vec::with_capacity(spec.fields.len());
    for field in spec.fields.iter() {
        let value = match (field.kind, map.get(&field.name)) {
            (_, None | Some(Json::Null)) => Cell::Null,
            (FeedKind::Number, Some(Json::Number(n))) => match n.as_f64() {
                Some(n) if n.is_finite() => Cell::Number(n),
                _ => return Err(format!("`{}` is not a finite number", field.name)),
            },
            (FeedKind::Text, Some(Json::String(s))) if s.len() <= MAX_TEXT_BYTES => {
                Cell::Text(s.clone())
            }
            (FeedKind::Text, Some(Json::String(s))) => {
                return Err(format!(
                    "`{}` is {} bytes, over {MAX_TEXT_BYTES}",
                    field.name,
                    s.len()
                ));
            }
            (FeedKind::Flag, Some(Json::Bool(b))) => Cell::Flag(*b),
            (kind, Some(other)) => {
                return Err(format!(
                    "`{}` must be a {}, not {}",
                    field.name,
                    kind.as_str(),
                    kind_of(other)
                ));
            }
        };
        values.push(value);
    }
    Ok(Change::Put(Row { key, values }))
}

fn kind_of(json: &Json) -> &'static str {
    match json {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}
