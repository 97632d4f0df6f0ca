//! What changed between two authoring documents, in words, for the person about to
//! publish: `hero · hero-suv-campaign: priority 10 → 20`.
//!
//! The documents are compared as the format names things, not line by line: objects
//! key by key; lists of objects that carry an `id` (candidates) or a `to` (journey
//! transitions) item by item, so a moved candidate reads "moved from 3rd to 1st" rather
//! than as every later one changing; other lists (stages, variants) as one value.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::Value as Json;

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Where: the path's names joined by ` · ` (`hero · hero-order`, `content · winter-tyres`);
    /// slots and their candidates go by their names alone.
    pub at: String,
    /// The field changed (`priority`), or empty when the whole item at `at` is meant.
    pub field: String,
    /// What happened: `10 → 20`, `added`, `removed`, `moved from 3rd to 1st`.
    pub what: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.at.is_empty(), self.field.is_empty()) {
            (true, _) => write!(f, "{}: {}", self.field, self.what),
            (false, true) => write!(f, "{}: {}", self.at, self.what),
            (false, false) => write!(f, "{}: {} {}", self.at, self.field, self.what),
        }
    }
}

/// The longest value quoted in full in a change.
const SHOWN: usize = 60;

/// A value as a change quotes it: text in quotes, long values cut with `…`.
fn show(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() <= SHOWN {
        return text;
    }
    let cut: String = text.chars().take(SHOWN).collect();
    format!("{cut}…")
}

/// `1st`, `2nd`, `3rd`, `4th`…
fn ordinal(n: usize) -> String {
    let suffix = match (n % 10, n % 100) {
        (1, 11) | (2, 12) | (3, 13) => "th",
        (1, _) => "st",
        (2, _) => "nd",
        (3, _) => "rd",
        _ => "th",
    };
    format!("{n}{suffix}")
}

/// The key a list item is matched by: its `id`, or a transition's `to` with its place
/// among those to the same stage.
fn key_of(items: &[Json]) -> Option<Vec<String>> {
    let mut per_stage: HashMap<&str, usize> = HashMap::new();
    items
        .iter()
        .map(|item| {
            let object = item.as_object()?;
            if let Some(id) = object.get("id").and_then(Json::as_str) {
                return Some(id.to_owned());
            }
            let to = object.get("to").and_then(Json::as_str)?;
            let n = per_stage.entry(to).or_insert(0);
            *n += 1;
            Some(format!("to {to} #{n}"))
        })
        .collect()
}

/// The values of a longest increasing subsequence of `places` (patience sorting).
fn steady(places: &[usize]) -> std::collections::BTreeSet<usize> {
    // tails[k]: index in `places` of the smallest tail of a run of length k + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut back: Vec<Option<usize>> = vec![None; places.len()];
    for (i, &p) in places.iter().enumerate() {
        let at = tails.partition_point(|&t| places.get(t).is_some_and(|&v| v < p));
        if let Some(b) = back.get_mut(i) {
            *b = at.checked_sub(1).and_then(|k| tails.get(k).copied());
        }
        if at == tails.len() {
            tails.push(i);
        } else if let Some(slot) = tails.get_mut(at) {
            *slot = i;
        }
    }
    let mut out = std::collections::BTreeSet::new();
    let mut next = tails.last().copied();
    while let Some(i) = next {
        out.extend(places.get(i).copied());
        next = back.get(i).copied().flatten();
    }
    out
}

struct Walk {
    out: Vec<Change>,
}

impl Walk {
    fn push(&mut self, at: &[String], field: Option<&str>, what: String) {
        // `hero · hero-suv-campaign`, not `slots · hero · candidates · hero-suv-campaign`:
        // a slot and its candidates read by their names.
        let in_slots = at.first().is_some_and(|s| s == "slots");
        let named = |i: usize, step: &str| match (i, step) {
            (0, "slots") => false,
            (2, "candidates") => !in_slots,
            _ => true,
        };
        let shown: Vec<&str> = at
            .iter()
            .enumerate()
            .filter(|(i, step)| named(*i, step))
            .map(|(_, step)| step.as_str())
            .collect();
        self.out.push(Change {
            at: shown.join(" · "),
            field: field.unwrap_or("").to_owned(),
            what,
        });
    }

    /// A key added or removed: a named item (a content, a slot) is said whole, a field
    /// with its value.
    fn whole(&mut self, at: &mut Vec<String>, key: &str, value: &Json, field_what: String) {
        if value.is_object() {
            at.push(key.to_owned());
            let what = if field_what == "removed" {
                "removed"
            } else {
                "added"
            };
            self.push(at, None, what.into());
            at.pop();
        } else {
            self.push(at, Some(key), field_what);
        }
    }

    /// Compares `before` and `after` found at `at` (under `field` of it, when a field).
    fn value(&mut self, at: &mut Vec<String>, field: Option<&str>, before: &Json, after: &Json) {
        if before == after {
            return;
        }
        match (before, after) {
            (Json::Object(b), Json::Object(a)) => {
                if let Some(f) = field {
                    at.push(f.to_owned());
                }
                for (k, bv) in b {
                    match a.get(k) {
                        Some(av) => self.value(at, Some(k), bv, av),
                        None => self.whole(at, k, bv, "removed".into()),
                    }
                }
                for (k, av) in a.iter().filter(|(k, _)| !b.contains_key(*k)) {
                    self.whole(at, k, av, format!("added: {}", show(av)));
                }
                if field.is_some() {
                    at.pop();
                }
            }
            (Json::Array(b), Json::Array(a)) => match (key_of(b), key_of(a)) {
                (Some(bk), Some(ak)) => {
                    if let Some(f) = field {
                        at.push(f.to_owned());
                    }
                    self.list(at, (b, &bk), (a, &ak));
                    if field.is_some() {
                        at.pop();
                    }
                }
                _ => self.push(at, field, format!("{} → {}", show(before), show(after))),
            },
            _ => self.push(at, field, format!("{} → {}", show(before), show(after))),
        }
    }

    /// Compares two lists of keyed items: removed, added, moved, then changed.
    fn list(
        &mut self,
        at: &mut Vec<String>,
        before: (&[Json], &[String]),
        after: (&[Json], &[String]),
    ) {
        let (b, bk) = before;
        let (a, ak) = after;
        let places: HashMap<&str, usize> = bk
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let after_keys: HashSet<&str> = ak.iter().map(String::as_str).collect();
        for key in bk.iter().filter(|k| !after_keys.contains(k.as_str())) {
            at.push(key.clone());
            self.push(at, None, "removed".into());
            at.pop();
        }
        // The items both have that kept their order are the longest run in the same order
        // (a longest increasing subsequence of their old places); the rest moved.
        let kept: Vec<usize> = ak
            .iter()
            .filter_map(|k| places.get(k.as_str()).copied())
            .collect();
        let stayed = steady(&kept);
        for (i, key) in ak.iter().enumerate() {
            at.push(key.clone());
            match places.get(key.as_str()).copied() {
                None => self.push(at, None, format!("added ({})", ordinal(i + 1))),
                Some(j) => {
                    if !stayed.contains(&j) {
                        self.push(
                            at,
                            None,
                            format!("moved from {} to {}", ordinal(j + 1), ordinal(i + 1)),
                        );
                    }
                    if let (Some(bv), Some(av)) = (b.get(j), a.get(i)) {
                        self.value(at, None, bv, av);
                    }
                }
            }
            at.pop();
        }
    }
}

/// Every change from `before` to `after`, in document order.
pub fn changes(before: &Json, after: &Json) -> Vec<Change> {
    let mut walk = Walk { out: Vec::new() };
    walk.value(&mut Vec::new(), None, before, after);
    walk.out
}
