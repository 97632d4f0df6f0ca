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

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value as Json;

use super::findings::{self, percent, Cell};
use super::grid::{columns, dimensions, fit, merge, Grid};
use micromoment::bundle::{Bundle, Condition};
use micromoment::time::UnixSeconds;

/// The most audiences the impact decides: each is decided with both bundles, once per
/// arm of each experiment that decides a slot, in the browser after an edit.
pub const MAX_IMPACT_CONTEXTS: usize = 6_000;

/// The candidates a bundle of the default budget is sized for: past them, the budget
/// shrinks in proportion, so the browser's wait stays about the same.
const SIZED_FOR: usize = 200;

/// The fewest audiences the impact decides, however large the bundles.
const MIN_IMPACT_CONTEXTS: usize = 500;

/// How many audiences to decide for two bundles: [`MAX_IMPACT_CONTEXTS`] up to 200
/// candidates in the larger, fewer in proportion above (never below 500), since each
/// audience's decision costs about as much as its candidates.
pub fn impact_budget(live: &Bundle, draft: &Bundle) -> usize {
    let candidates = |b: &Bundle| b.slots.iter().map(|s| s.candidates.len()).sum::<usize>();
    let most = candidates(live).max(candidates(draft)).max(SIZED_FOR);
    (MAX_IMPACT_CONTEXTS * SIZED_FOR / most).max(MIN_IMPACT_CONTEXTS)
}

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
    /// How many audience and slot cells change, in all.
    pub cells: usize,
    /// The cells that change, in grid order, each with the most general audience: a
    /// cell whose values include another changed cell's (same stage, column, slot,
    /// before and after) is said by that one (`geo.country = FR` says `geo.country = FR,
    /// time.hour = 20` too).
    pub changed: Vec<Changed>,
}

/// Whether `general`'s values are all among `specific`'s: it says that cell too.
fn says(general: &Changed, specific: &Changed) -> bool {
    general.values.iter().all(|v| specific.values.contains(v))
}

/// The changed cells no more general one says (same stage, column, slot, before and
/// after, fewer values), in their order.
fn most_general(changed: Vec<Changed>) -> Vec<Changed> {
    type Key<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str);
    let mut groups: BTreeMap<Key<'_>, Vec<usize>> = BTreeMap::new();
    for (i, c) in changed.iter().enumerate() {
        let key = (&*c.stage, &*c.column, &*c.slot, &*c.before, &*c.after);
        groups.entry(key).or_default().push(i);
    }
    let mut keep = vec![false; changed.len()];
    for mut members in groups.into_values() {
        // Fewer values first, so the general cells are kept before those they say.
        members.sort_by_key(|&i| changed.get(i).map_or(0, |c| c.values.len()));
        let mut kept: Vec<&Changed> = Vec::new();
        for i in members {
            let Some(c) = changed.get(i) else { continue };
            if !kept.iter().any(|k| says(k, c)) {
                kept.push(c);
                if let Some(k) = keep.get_mut(i) {
                    *k = true;
                }
            }
        }
    }
    changed
        .into_iter()
        .zip(keep)
        .filter_map(|(c, k)| k.then_some(c))
        .collect()
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

/// The rules of the draft's candidates that are new or differ from the live bundle's
/// candidate of the same slot and name: the values they compare come first in the grid,
/// so that trimming it to its budget never drops what the change is about.
fn changed_rules<'d>(live: &Bundle, draft: &'d Bundle) -> Vec<&'d Condition> {
    let mut out = Vec::new();
    for slot in &draft.slots {
        let before = live.slots.iter().find(|s| s.name == slot.name);
        for c in &slot.candidates {
            let old = before.and_then(|s| s.candidates.iter().find(|o| o.name == c.name));
            if old.is_none_or(|o| o.when != c.when) {
                out.extend(c.when.as_ref());
            }
        }
    }
    out
}

/// The audiences and slots whose content changes from `live` to `draft` at `now`.
/// Slots are compared by name; a slot only the draft has is compared with nothing
/// (`before` is empty), one it dropped is not shown.
pub fn impact(live: &Bundle, draft: &Bundle, now: UnixSeconds, limit: usize) -> Impact {
    // The values the changed rules compare are kept whole (trimmed only when they alone
    // exceed the budget); every other value either bundle compares fills what is left.
    let base = draft.stages.len() * columns().len();
    let mut kept = dimensions(draft, changed_rules(live, draft).into_iter(), false, &[]);
    fit(&mut kept, base, limit);
    let size: usize = kept.iter().map(|d| d.values.len()).product();
    let mut others: Vec<_> = merge(
        Grid::new(draft, now, usize::MAX).into_dimensions(),
        Grid::new(live, now, usize::MAX).dimensions(),
    )
    .into_iter()
    .filter(|d| !kept.iter().any(|k| k.name == d.name))
    .collect();
    fit(&mut others, base.saturating_mul(size), limit);
    let mut dimensions = kept;
    dimensions.extend(others);
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
        cells: 0,
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
    impact.cells = impact.changed.len();
    impact.changed = most_general(std::mem::take(&mut impact.changed));
    impact
}
