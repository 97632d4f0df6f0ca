//! Who will see something different: the audiences of the grid of two bundles (the
//! live one and a draft) whose page changes, slot by slot.
//!
//! The audiences are those of both bundles' grids together ([`merge`]): every stage of
//! the draft × device type × channel, crossed with the values either bundle's rules
//! compare variables to, so a draft that targets France adds a country axis with `FR`
//! even though the live bundle never read the country. Each audience is decided with
//! each bundle as the report's matrix decides a cell (experiments by arm, with their
//! split), and what the visitor sees is compared: the contents and their shares, not
//! which candidate chose them, so renaming a candidate changes nothing.

use serde::Serialize;
use serde_json::Value as Json;

use super::findings::{self, percent, Cell};
use super::grid::{columns, fit, merge, Grid};
use micromoment::bundle::Bundle;
use micromoment::time::UnixSeconds;

/// The most audiences the impact decides: each is decided with both bundles, once per
/// arm of each experiment that decides a slot, in the browser after an edit.
pub const MAX_IMPACT_CONTEXTS: usize = 6_000;

/// One audience and slot whose content changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Changed {
    /// The journey stage.
    pub stage: String,
    /// `device/channel`.
    pub column: String,
    /// The audience's other values: `(variable, value)`, unknown ones left out.
    pub values: Vec<(String, Json)>,
    /// The slot.
    pub slot: String,
    /// What it shows with the live bundle: `brand-film`, or a split
    /// `suv-teaser 45 % · ev-teaser 45 % · brand-film 10 %`.
    pub before: String,
    /// What it shows with the draft.
    pub after: String,
}

/// The impact of publishing a draft over a live bundle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Impact {
    /// How many audiences were decided with both.
    pub audiences: usize,
    /// The variables the audiences vary besides stage, device and channel.
    pub dimensions: Vec<String>,
    /// Example values the grid had to leave out to stay within its budget.
    pub dropped: usize,
    /// Every audience and slot that changes, in grid order.
    pub changed: Vec<Changed>,
}

/// What a visitor of a cell sees: each content with its share of the audience, merged by
/// content, in order of first appearance.
fn seen(cell: &Cell) -> Vec<(String, f64)> {
    let Some(split) = &cell.split else {
        return vec![(cell.content.clone(), 1.0)];
    };
    let mut out: Vec<(String, f64)> = Vec::new();
    for arm in &split.arms {
        match out.iter_mut().find(|(c, _)| *c == arm.content) {
            Some((_, share)) => *share += arm.share,
            None => out.push((arm.content.clone(), arm.share)),
        }
    }
    out
}

/// `brand-film`, or `suv-teaser 45 % · ev-teaser 45 % · brand-film 10 %`.
fn words(seen: &[(String, f64)]) -> String {
    match seen {
        [(content, _)] => content.clone(),
        _ => seen
            .iter()
            .map(|(c, share)| format!("{c} {}", percent(*share)))
            .collect::<Vec<_>>()
            .join(" · "),
    }
}

/// Whether two cells show the same contents in the same shares (to a thousandth).
fn same(a: &[(String, f64)], b: &[(String, f64)]) -> bool {
    a.len() == b.len()
        && a.iter().all(|(content, share)| {
            b.iter()
                .any(|(c, s)| c == content && (s - share).abs() < 1e-3)
        })
}

/// The audiences and slots whose content changes from `live` to `draft` at `now`.
/// Slots are compared by name; a slot only the draft has is compared with nothing
/// (`before` is empty), one it dropped is not shown.
pub fn impact(live: &Bundle, draft: &Bundle, now: UnixSeconds, limit: usize) -> Impact {
    let mut dimensions = merge(
        Grid::new(draft, now, limit).into_dimensions(),
        Grid::new(live, now, limit).dimensions(),
    );
    fit(&mut dimensions, draft.stages.len() * columns().len(), limit);
    let new = Grid::named(draft, now, &dimensions);
    let old = Grid::named(live, now, &dimensions);
    let (new_arms, old_arms) = (
        findings::experiment_arms(draft),
        findings::experiment_arms(live),
    );
    let mut impact = Impact {
        audiences: 0,
        dimensions: dimensions.iter().map(|d| d.name.clone()).collect(),
        dropped: dimensions.iter().map(|d| d.dropped).sum(),
        changed: Vec::new(),
    };
    for audience in new.audiences() {
        let Some(after) = findings::cells(draft, &new, &new_arms, &audience) else {
            continue;
        };
        let before = findings::cells(live, &old, &old_arms, &new.translate(&audience, &old))
            .unwrap_or_default();
        impact.audiences += 1;
        for (slot, cell) in draft.slots.iter().zip(&after) {
            let after = seen(cell);
            let before = live
                .slots
                .iter()
                .position(|s| s.name == slot.name)
                .and_then(|s| before.get(s))
                .map(seen)
                .unwrap_or_default();
            if !same(&before, &after) {
                impact.changed.push(Changed {
                    stage: new.stage_name(&audience).to_owned(),
                    column: format!("{}/{}", audience.device.as_str(), audience.channel.as_str()),
                    values: new.picked(&audience),
                    slot: slot.name.clone(),
                    before: words(&before),
                    after: words(&after),
                });
            }
        }
    }
    impact
}
