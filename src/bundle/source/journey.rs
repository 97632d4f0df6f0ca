//! The journey: stages, transitions and intent topics.

use std::collections::HashMap;

use serde_json::{Map, Value as Json};

use super::super::model::*;
use super::super::BundleSchema;
use super::walker::{Index, Path, Walker};
use crate::ids::{stable_id, IdKind};

pub(super) fn stages(w: &mut Walker<'_>, value: Option<&Json>, path: &Path) -> Vec<String> {
    let Some(value) = value else {
        w.report(path, "missing required field");
        return Vec::new();
    };
    let items = w.array(value, path, w.budget.max_stages, "max_stages");
    if items.is_empty() && value.is_array() {
        w.report(path, "a journey needs at least one stage");
    }
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(name) = w.string(Some(item), &path.index(i), true) {
            if names.iter().any(|n| n == name) {
                w.report(&path.index(i), format!("duplicate stage \"{name}\""));
            } else {
                names.push(name.to_owned());
            }
        }
    }
    names
}

pub(super) fn check_collisions(w: &mut Walker<'_>, names: &[&str], kind: IdKind, path: &Path) {
    let mut seen: HashMap<u32, &str> = HashMap::new();
    for name in names {
        if let Some(other) = seen.insert(stable_id(kind, name), name) {
            w.report(
                &path.key(name),
                format!("\"{name}\" and \"{other}\" have the same stable id; rename one"),
            );
        }
    }
}

pub(super) fn transitions(
    w: &mut Walker<'_>,
    value: Option<&Json>,
    path: &Path,
    stages: &Index<'_>,
    schema: &BundleSchema<'_>,
) -> Vec<Transition> {
    let Some(value) = value else {
        return Vec::new();
    };
    let items = w.array(value, path, w.budget.max_transitions, "max_transitions");
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = path.index(i);
        let Some(map) = w.object(item, &path, &["to", "when", "from", "back", "description"])
        else {
            continue;
        };
        w.string(map.get("description"), &path.key("description"), false);
        let to = w.reference(map.get("to"), &path.key("to"), stages);
        let from = match map.get("from") {
            Some(v) => w.stage_list(v, &path.key("from"), stages),
            None => Some(u64::MAX),
        };
        let back = w.flag(map.get("back"), &path.key("back"));
        let when = match map.get("when") {
            Some(rule) => w.rule(rule, &path.key("when"), schema).map(Some),
            None => Some(None),
        };
        if let (Some(to), Some(from), Some(back), Some(when)) = (to, from, back, when) {
            out.push(Transition {
                to,
                from,
                back,
                when,
            });
        }
    }
    out
}

pub(super) fn topics(
    w: &mut Walker<'_>,
    intents: &Map<String, Json>,
    path: &Path,
    schema: &BundleSchema<'_>,
) -> Vec<Topic> {
    if intents.len() > w.budget.max_topics {
        w.report(
            path,
            format!(
                "{} intents are over the budget of {} (max_topics)",
                intents.len(),
                w.budget.max_topics
            ),
        );
    }
    let mut out = Vec::new();
    for (name, value) in intents {
        let path = path.key(name);
        let Some(map) = w.object(
            value,
            &path,
            &["signals", "cap", "half_life_days", "description"],
        ) else {
            continue;
        };
        w.string(map.get("description"), &path.key("description"), false);
        let cap = w
            .number(map.get("cap"), &path.key("cap"))
            .filter(|c| *c > 0.0);
        if cap.is_none() {
            w.report(&path.key("cap"), "expected a positive number");
        }
        let half_life = w
            .number(map.get("half_life_days"), &path.key("half_life_days"))
            .filter(|h| *h > 0.0);
        if half_life.is_none() {
            w.report(
                &path.key("half_life_days"),
                "expected a positive number of days",
            );
        }
        let mut signals = Vec::new();
        match map.get("signals") {
            Some(value) => {
                let items = w.array(value, &path.key("signals"), 64, "max_signals");
                for (i, item) in items.iter().enumerate() {
                    let path = path.key("signals").index(i);
                    let Some(signal) = w.object(item, &path, &["when", "add", "description"])
                    else {
                        continue;
                    };
                    let add = w.number(signal.get("add"), &path.key("add"));
                    if add.is_none() {
                        w.report(&path.key("add"), "expected a number");
                    }
                    let when = match signal.get("when") {
                        Some(rule) => w.rule(rule, &path.key("when"), schema),
                        None => {
                            w.report(&path.key("when"), "missing required field");
                            None
                        }
                    };
                    if let (Some(when), Some(add)) = (when, add) {
                        signals.push(Signal { when, add });
                    }
                }
            }
            None => w.report(&path.key("signals"), "missing required field"),
        }
        if let (Some(cap), Some(half_life)) = (cap, half_life) {
            out.push(Topic {
                name: name.clone(),
                id: stable_id(IdKind::Topic, name),
                cap,
                half_life_secs: half_life * crate::time::DAY as f64,
                signals: signals.into(),
            });
        }
    }
    out
}
