//! Checks across the lowered slots: sequences that can never start, candidates that
//! can never win.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value as Json;

use super::super::model::*;
use super::offered;
use super::walker::{Path, Walker};

/// Reports contents whose `after` requirements form a cycle: none of them can ever be
/// shown first.
pub(super) fn sequence_cycles(w: &mut Walker<'_>, slots: &[Slot], contents: &[&str], path: &Path) {
    let mut edges: BTreeMap<u16, Vec<u16>> = BTreeMap::new();
    for slot in slots {
        for candidate in &slot.candidates {
            for c in offered(candidate) {
                edges
                    .entry(c)
                    .or_default()
                    .extend(candidate.after.iter().copied());
            }
        }
    }
    // Depth-first search with colours: 1 = on the stack, 2 = done.
    let mut colour: HashMap<u16, u8> = HashMap::new();
    let mut reported = false;
    for &start in edges.keys() {
        if reported {
            break;
        }
        let mut stack: Vec<(u16, usize)> = vec![(start, 0)];
        while let Some((node, next)) = stack.pop() {
            if next == 0 {
                if colour.get(&node) == Some(&2) {
                    continue;
                }
                colour.insert(node, 1);
            }
            let successors = edges.get(&node).map(Vec::as_slice).unwrap_or(&[]);
            match successors.get(next) {
                Some(&succ) => {
                    stack.push((node, next + 1));
                    match colour.get(&succ) {
                        Some(1) => {
                            let mut cycle: Vec<&str> = stack
                                .iter()
                                .skip_while(|(n, _)| *n != succ)
                                .map(|(n, _)| contents.get(usize::from(*n)).copied().unwrap_or("?"))
                                .collect();
                            cycle.push(contents.get(usize::from(succ)).copied().unwrap_or("?"));
                            w.report(
                                path,
                                format!(
                                    "sequence cycle: {} (each must be seen before the next)",
                                    cycle.join(" after ")
                                ),
                            );
                            reported = true;
                            break;
                        }
                        Some(2) => {}
                        _ => stack.push((succ, 0)),
                    }
                }
                None => {
                    colour.insert(node, 2);
                }
            }
        }
    }
}

/// Reports candidates that can never win because an unconditional candidate of higher
/// (or equal, earlier) priority always does. An unconditional candidate whose content
/// another slot may place first can lose to the one-message-per-page rule, so only
/// contents no other slot offers make it a certain winner.
pub(super) fn unreachable_candidates(
    w: &mut Walker<'_>,
    slots: &[Slot],
    document: &Json,
    path: &Path,
) {
    // Which slots can show each content (as their default or by a candidate).
    let mut slots_of: HashMap<u16, Vec<usize>> = HashMap::new();
    for (s, slot) in slots.iter().enumerate() {
        slots_of.entry(slot.default).or_default().push(s);
        for c in &slot.candidates {
            for content in offered(c) {
                slots_of.entry(content).or_default().push(s);
            }
        }
    }
    for (s, slot) in slots.iter().enumerate() {
        let offered_elsewhere = |content: u16| {
            slots_of
                .get(&content)
                .is_some_and(|owners| owners.iter().any(|&o| o != s))
        };
        let blocker = slot.candidates.iter().position(|c| {
            matches!(c.offer, Offer::Content(content) if !offered_elsewhere(content))
                && c.stages == u64::MAX
                && c.when.is_none()
                && c.cap.is_none()
                && c.after.is_empty()
                && c.campaign.is_none()
                && c.schedule.is_none()
        });
        let Some(blocker) = blocker else { continue };
        let Some(winner) = slot.candidates.get(blocker) else {
            continue;
        };
        for shadowed in slot.candidates.iter().skip(blocker + 1) {
            let index = source_index(document, &slot.name, &shadowed.name).unwrap_or(0);
            w.report(
                &path.key(&slot.name).key("candidates").index(index),
                format!(
                    "candidate \"{}\" is unreachable: \"{}\" (priority {}) has no conditions and always wins first",
                    shadowed.name,
                    winner.name,
                    crate::rules::Value::Number(winner.priority).to_json()
                ),
            );
        }
    }
}

/// The position of a candidate in its slot's authoring array (candidates are sorted
/// after lowering, diagnostics point at the source).
fn source_index(document: &Json, slot: &str, candidate: &str) -> Option<usize> {
    document
        .get("slots")?
        .get(slot)?
        .get("candidates")?
        .as_array()?
        .iter()
        .position(|c| c.get("id").and_then(Json::as_str) == Some(candidate))
}
