//! The `feeds` section (docs/feeds.md): the live data a bundle's rules and
//! placeholders read, each with its key columns, typed fields and `stale_after`.

use serde_json::{Map, Value as Json};

use super::super::model::Period;
use super::walker::{Path, Walker};
use crate::codec::List;
use crate::feed::{FeedField, FeedKind, FeedSpec, MAX_FEEDS};

/// The most key columns and fields a feed may have.
const MAX_COLUMNS: usize = 32;

/// Every well-formed feed, in name order; each problem reported at its field.
pub(super) fn feeds(w: &mut Walker<'_>, map: &Map<String, Json>, path: &Path) -> Vec<FeedSpec> {
    if map.len() > MAX_FEEDS {
        w.report(
            path,
            format!(
                "{} feeds are over the most a bundle may declare ({MAX_FEEDS})",
                map.len()
            ),
        );
        return Vec::new();
    }
    map.iter()
        .filter_map(|(name, value)| feed(w, name, value, &path.key(name)))
        .collect()
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn feed(w: &mut Walker<'_>, name: &str, value: &Json, path: &Path) -> Option<FeedSpec> {
    let map = w.object(
        value,
        path,
        &["key", "fields", "stale_after", "description"],
    )?;
    let mut ok = true;
    if !valid_name(name) {
        w.report(
            path,
            "a feed's name is 1 to 64 lowercase letters, digits, `_` or `-` (it is part of its URL)",
        );
        ok = false;
    }
    w.string(map.get("description"), &path.key("description"), false);
    let key_path = path.key("key");
    let mut key = Vec::new();
    match map.get("key") {
        Some(value) => {
            let items = w.array(value, &key_path, MAX_COLUMNS, "key columns");
            if items.is_empty() {
                w.report(&key_path, "a feed needs at least one key column");
                ok = false;
            }
            for (i, item) in items.iter().enumerate() {
                match w.string(Some(item), &key_path.index(i), true) {
                    Some(column) if valid_name(column) && !key.iter().any(|k| k == column) => {
                        key.push(column.to_owned());
                    }
                    Some(column) => {
                        w.report(
                            &key_path.index(i),
                            format!("`{column}` is not a column name, or is named twice"),
                        );
                        ok = false;
                    }
                    None => ok = false,
                }
            }
        }
        None => {
            w.report(&key_path, "missing required field");
            ok = false;
        }
    }
    let fields_path = path.key("fields");
    let mut fields = Vec::new();
    let empty = Map::new();
    let declared = w
        .named(map.get("fields"), &fields_path, false)
        .unwrap_or(&empty);
    if declared.len() > MAX_COLUMNS {
        w.report(&fields_path, format!("more than {MAX_COLUMNS} fields"));
        ok = false;
    }
    for (field, kind) in declared {
        let at = fields_path.key(field);
        if !valid_name(field) || key.iter().any(|k| k == field) || field == "_delete" {
            w.report(
                &at,
                format!("`{field}` is not a field name, or is also a key column"),
            );
            ok = false;
            continue;
        }
        match kind.as_str().and_then(FeedKind::parse) {
            Some(kind) => fields.push(FeedField {
                name: field.clone(),
                kind,
            }),
            None => {
                w.report(&at, "a field is \"number\", \"string\" or \"boolean\"");
                ok = false;
            }
        }
    }
    let stale_after = match map.get("stale_after") {
        None => None,
        Some(Json::String(s)) => {
            match Period::parse(s) {
                Some(Period::Seconds(secs)) => Some(secs),
                _ => {
                    w.report(
                    &path.key("stale_after"),
                    format!("\"{s}\" is not a duration: use a count and a unit such as 30m, 12h, 7d"),
                );
                    ok = false;
                    None
                }
            }
        }
        Some(_) => {
            w.report(&path.key("stale_after"), "expected a duration such as 1h");
            ok = false;
            None
        }
    };
    ok.then(|| FeedSpec {
        name: name.to_owned(),
        key: List::from(key),
        fields: List::from(fields),
        stale_after,
    })
}
