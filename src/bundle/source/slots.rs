//! Slots and their candidates: contents, experiments, priorities, stages, rules, caps,
//! sequences and campaigns.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use super::super::model::*;
use super::super::BundleSchema;
use super::walker::{Index, Path, Walker};
use crate::bucket;
use crate::ids::{stable_id, IdKind};

/// What candidates may name: the document's stages, contents and campaigns, and the
/// variables its rules may read.
pub(super) struct Declared<'n> {
    pub(super) stages: Index<'n>,
    pub(super) contents: Index<'n>,
    pub(super) campaigns: Index<'n>,
    pub(super) schema: BundleSchema<'n>,
}

const CANDIDATE_KEYS: &[&str] = &[
    "id",
    "content",
    "experiment",
    "priority",
    "stages",
    "when",
    "cap",
    "schedule",
    "after",
    "campaign",
    "description",
];

pub(super) fn slots(
    w: &mut Walker<'_>,
    value: Option<&Json>,
    path: &Path,
    declared: &Declared<'_>,
) -> Option<Vec<Slot>> {
    let map = w.named(value, path, true)?;
    if map.len() > w.budget.max_slots {
        w.report(
            path,
            format!(
                "{} slots are over the budget of {} (max_slots)",
                map.len(),
                w.budget.max_slots
            ),
        );
    }
    let mut candidate_ids: BTreeMap<String, Path> = BTreeMap::new();
    let mut total = 0usize;
    let mut out = Vec::new();
    for (name, slot) in map {
        let path = path.key(name);
        let Some(slot_map) = w.object(slot, &path, &["default", "candidates", "description"])
        else {
            continue;
        };
        w.string(slot_map.get("description"), &path.key("description"), false);
        let default = match slot_map.get("default") {
            None => {
                w.report(&path, format!("slot \"{name}\" has no default content"));
                None
            }
            Some(d) => w.reference(Some(d), &path.key("default"), &declared.contents),
        };
        let items = match slot_map.get("candidates") {
            Some(c) => w.array(
                c,
                &path.key("candidates"),
                w.budget.max_candidates_per_slot,
                "max_candidates_per_slot",
            ),
            None => &[],
        };
        total += items.len();
        let mut candidates = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = path.key("candidates").index(i);
            if let Some(c) = candidate(w, item, &path, declared, &mut candidate_ids) {
                candidates.push(c);
            }
        }
        // Highest priority first; `sort_by` is stable, so ties keep bundle order.
        candidates.sort_by(|a, b| b.priority.total_cmp(&a.priority));
        if let Some(default) = default {
            out.push(Slot {
                name: name.clone(),
                default,
                candidates: candidates.into(),
            });
        }
    }
    if total > w.budget.max_candidates {
        w.report(
            path,
            format!(
                "{total} candidates are over the budget of {} (max_candidates)",
                w.budget.max_candidates
            ),
        );
    }
    Some(out)
}

fn candidate(
    w: &mut Walker<'_>,
    value: &Json,
    path: &Path,
    declared: &Declared<'_>,
    ids: &mut BTreeMap<String, Path>,
) -> Option<Candidate> {
    let map = w.object(value, path, CANDIDATE_KEYS)?;
    w.string(map.get("description"), &path.key("description"), false);
    let name = w.string(map.get("id"), &path.key("id"), true)?.to_owned();
    if let Some(first) = ids.get(&name) {
        let first = first.to_string();
        w.report(
            &path.key("id"),
            format!("duplicate candidate id \"{name}\", first used at {first}"),
        );
    } else {
        ids.insert(name.clone(), path.clone());
    }
    let offer = match (map.get("content"), map.get("experiment")) {
        (Some(_), Some(_)) => {
            w.report(
                path,
                "a candidate has either \"content\" or \"experiment\", not both",
            );
            None
        }
        (None, None) => {
            w.report(path, "a candidate needs \"content\" or \"experiment\"");
            None
        }
        (Some(content), None) => w
            .reference(Some(content), &path.key("content"), &declared.contents)
            .map(Offer::Content),
        (None, Some(experiment)) => experiment_offer(
            w,
            experiment,
            &path.key("experiment"),
            &name,
            &declared.contents,
        ),
    };
    let priority = match map.get("priority") {
        None => Some(0.0),
        Some(p) => w.number(Some(p), &path.key("priority")),
    };
    let stage_mask = match map.get("stages") {
        None => Some(u64::MAX),
        Some(s) => w.stage_list(s, &path.key("stages"), &declared.stages),
    };
    let when = match map.get("when") {
        None => Some(None),
        Some(rule) => w.rule(rule, &path.key("when"), &declared.schema).map(Some),
    };
    let cap = match map.get("cap") {
        None => Some(None),
        Some(cap) => w.cap(cap, &path.key("cap")).map(Some),
    };
    let after = match map.get("after") {
        None => Some(Vec::new()),
        Some(list) => {
            let items = w.array(list, &path.key("after"), 16, "max_after");
            let resolved: Vec<Option<u16>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    w.reference(Some(item), &path.key("after").index(i), &declared.contents)
                })
                .collect();
            resolved.into_iter().collect::<Option<Vec<u16>>>()
        }
    };
    let campaign = match map.get("campaign") {
        None => Some(None),
        Some(c) => w
            .reference(Some(c), &path.key("campaign"), &declared.campaigns)
            .map(Some),
    };
    let schedule = match map.get("schedule") {
        None => Some(None),
        Some(s) => w.schedule(s, &path.key("schedule")).map(Some),
    };
    Some(Candidate {
        name,
        offer: offer?,
        priority: priority?,
        stages: stage_mask?,
        when: when?,
        cap: cap?,
        after: after?.into(),
        campaign: campaign?,
        schedule: schedule?,
    })
}

fn experiment_offer(
    w: &mut Walker<'_>,
    value: &Json,
    path: &Path,
    candidate: &str,
    contents: &Index<'_>,
) -> Option<Offer> {
    let map = w.object(value, path, &["variants", "holdout"])?;
    let holdout = match map.get("holdout") {
        None => Some(0.0),
        Some(h) => match w.number(Some(h), &path.key("holdout")) {
            Some(h) if (0.0..1.0).contains(&h) => Some(h),
            Some(h) => {
                w.report(
                    &path.key("holdout"),
                    format!("holdout {h} is not in [0, 1)"),
                );
                None
            }
            None => None,
        },
    };
    let Some(variants_json) = map.get("variants") else {
        w.report(&path.key("variants"), "missing required field");
        return None;
    };
    let items = w.array(variants_json, &path.key("variants"), 16, "max_variants");
    if items.is_empty() && variants_json.is_array() {
        w.report(
            &path.key("variants"),
            "an experiment needs at least one variant",
        );
    }
    let mut variants = Vec::new();
    let mut weights = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = path.key("variants").index(i);
        let Some(variant) = w.object(item, &path, &["content", "weight"]) else {
            continue;
        };
        let content = w.reference(variant.get("content"), &path.key("content"), contents);
        let weight = match w.number(variant.get("weight"), &path.key("weight")) {
            Some(weight) if weight > 0.0 => Some(weight),
            Some(weight) => {
                w.report(
                    &path.key("weight"),
                    format!("weight {weight} must be positive"),
                );
                None
            }
            None => {
                w.report(&path.key("weight"), "missing required field");
                None
            }
        };
        if let (Some(c), Some(weight)) = (content, weight) {
            variants.push(c);
            weights.push(weight);
        }
    }
    let sum: f64 = weights.iter().sum();
    let sums_up = (sum - 100.0).abs() < 1e-6 || (sum - 1.0).abs() < 1e-9;
    if !weights.is_empty() && !sums_up {
        w.report(
            &path.key("variants"),
            format!(
                "variant weights sum to {}, expected 100 (or 1)",
                crate::rules::Value::Number(sum).to_json()
            ),
        );
        return None;
    }
    let holdout = holdout?;
    if variants.len() != items.len() || variants.is_empty() {
        return None;
    }
    let normalized: Vec<f64> = weights.iter().map(|w| w / sum).collect();
    Some(Offer::Experiment(Experiment {
        id: stable_id(IdKind::Experiment, candidate),
        ranges: bucket::bucket_ranges(variants.len(), 1.0 - holdout, Some(&normalized)).into(),
        variants: variants.into(),
        holdout,
    }))
}
