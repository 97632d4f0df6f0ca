//! Sufficient statistics → the report docs/results.md describes (`--json` and the HTML page).

use serde::Serialize;

use super::attribution::{credit, Model};
use super::stats::{compare, srm_p_value, Comparison, Metric, Moments, SRM_THRESHOLD};
use super::{Sufficient, Window};
use micromoment::bundle::Bundle;

/// The whole result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The window, as given.
    pub window: String,
    /// People with at least one exposure.
    pub people: u64,
    /// Per experiment and goal.
    pub experiments: Vec<ExperimentResult>,
    /// Per goal and model.
    pub attribution: Vec<AttributionResult>,
}

/// One experiment against one goal.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentResult {
    /// The experiment (its candidate id).
    pub experiment: String,
    /// Its slot.
    pub slot: String,
    /// The goal.
    pub goal: String,
    /// Whether the goal carries a value: then the `value_*` fields compare mean values.
    pub value_goal: bool,
    /// The sample-ratio check's p-value.
    pub srm_p: f64,
    /// Whether it is below 0.001: the split is not what the bundle configured.
    pub srm: bool,
    /// The variants in bundle order (the first is the control), then the holdout.
    pub variants: Vec<VariantResult>,
}

/// One arm. The comparison fields are absent on the control and `null` where the
/// comparison is undefined (then `error` says why, in gbstats' words).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariantResult {
    /// The content id, or `holdout`.
    pub variant: String,
    /// The share of visitors the bundle gives it.
    pub share: f64,
    /// People whose first exposure was this arm.
    pub people: u64,
    /// Of them, people who converted within the window.
    pub conversions: u64,
    /// conversions / people.
    pub rate: f64,
    /// The goal's value per person, averaged over people.
    pub mean_value: f64,
    /// Σ value, for recomputing.
    pub value_sum: f64,
    /// Σ value², for recomputing.
    pub value_sum_squares: f64,
    /// Relative lift of the rate against the control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lift: Option<Option<f64>>,
    /// Its 95 % confidence interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci: Option<Option<[f64; 2]>>,
    /// The two-sided p-value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<Option<f64>>,
    /// The Bayesian chance to beat the control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chance_to_win: Option<Option<f64>>,
    /// Why the rate comparison is undefined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<Option<&'static str>>,
    /// For a value goal: the relative lift of the mean value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_lift: Option<Option<f64>>,
    /// Its 95 % confidence interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_ci: Option<Option<[f64; 2]>>,
    /// Its p-value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_p_value: Option<Option<f64>>,
    /// Its chance to beat the control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_chance_to_win: Option<Option<f64>>,
    /// Why the value comparison is undefined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_error: Option<Option<&'static str>>,
}

/// One goal in one slot under one model. Attribution is per slot: a page shows several
/// slots at once, and each slot's path is the sequence of what it showed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributionResult {
    /// The goal.
    pub goal: String,
    /// The slot whose touches are credited.
    pub slot: String,
    /// The model's name: `last_touch`, `first_touch`, `linear`, `time_decay`,
    /// `position_based` or `markov`.
    pub model: &'static str,
    /// Conversions attributed (those with a touch of this slot within the window).
    pub conversions: f64,
    /// Their value.
    pub value: f64,
    /// The goal's conversions with no touch of this slot within the window.
    pub unattributed: f64,
    /// Per touch, most conversions first.
    pub rows: Vec<AttributionRow>,
}

/// A touch's credit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AttributionRow {
    /// The content.
    pub content: String,
    /// The slot.
    pub slot: String,
    /// The candidate (null for a default).
    pub candidate: Option<String>,
    /// The channel.
    pub channel: String,
    /// Conversions credited.
    pub conversions: f64,
    /// Value credited.
    pub value: f64,
    /// For `markov`: the removal effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removal_effect: Option<f64>,
}

/// Paths grouped by their slot, in bundle order (slots the bundle lacks last).
type BySlot<'d> =
    std::collections::BTreeMap<(usize, &'d str), Vec<(&'d [u32], &'d super::PathStat)>>;

/// The touches with any credit.
fn rows_of(
    credit: &super::attribution::Credit,
    touches: &[super::TouchKey],
) -> Vec<AttributionRow> {
    touches
        .iter()
        .enumerate()
        .filter_map(|(t, key)| {
            let conversions = credit.conversions.get(t).copied().unwrap_or(0.0);
            let value = credit.value.get(t).copied().unwrap_or(0.0);
            let removal_effect = credit
                .removal_effects
                .as_ref()
                .and_then(|re| re.get(t).copied());
            (conversions > 0.0 || value > 0.0 || removal_effect.is_some_and(|r| r > 0.0)).then(
                || AttributionRow {
                    content: key.content.clone(),
                    slot: key.slot.clone(),
                    candidate: key.candidate.clone(),
                    channel: key.channel.clone(),
                    conversions,
                    value,
                    removal_effect,
                },
            )
        })
        .collect()
}

/// People counts are whole numbers (sample-weighted sums are too).
fn count(x: f64) -> u64 {
    if x.is_finite() && x > 0.0 {
        x.round() as u64
    } else {
        0
    }
}

/// lift, ci, p-value, chance to win, and why they are undefined.
type Fields = (
    Option<f64>,
    Option<[f64; 2]>,
    Option<f64>,
    Option<f64>,
    Option<&'static str>,
);

fn comparison_fields(c: &Comparison) -> Fields {
    match &c.test {
        Ok(t) => (
            c.lift,
            Some([t.ci.0, t.ci.1]),
            Some(t.p_value),
            Some(t.chance_to_win),
            None,
        ),
        Err(why) => (c.lift, None, None, None, Some(why.code())),
    }
}

/// The report of `data` for `bundle`.
pub fn results(bundle: &Bundle, data: &Sufficient, window: &Window) -> Report {
    let goals: Vec<_> = bundle.goals().collect();
    let mut experiments = Vec::new();
    for (spec, per_goal) in bundle.experiments().iter().zip(&data.arms) {
        for (goal, arms) in goals.iter().zip(per_goal) {
            let mut names: Vec<(&str, f64)> = spec.variants.clone();
            names.push(("holdout", spec.holdout));
            // The holdout is listed only when the bundle has one (or people are in it).
            let listed: Vec<((&str, f64), &super::ArmCounts)> = names
                .iter()
                .copied()
                .zip(arms)
                .enumerate()
                .filter(|(i, ((_, share), counts))| {
                    *i < spec.variants.len() || *share > 0.0 || counts.people > 0.0
                })
                .map(|(_, x)| x)
                .collect();
            let people: Vec<f64> = listed.iter().map(|(_, c)| c.people).collect();
            let shares: Vec<f64> = listed.iter().map(|((_, s), _)| *s).collect();
            let srm_p = srm_p_value(&people, &shares);
            let rate = |c: &super::ArmCounts| Moments {
                n: c.people,
                sum: c.conversions,
                sum_squares: c.conversions,
            };
            let value = |c: &super::ArmCounts| Moments {
                n: c.people,
                sum: c.value_sum,
                sum_squares: c.value_sum_squares,
            };
            let control = listed.first().map(|(_, c)| **c).unwrap_or_default();
            let variants = listed
                .iter()
                .enumerate()
                .map(|(i, ((name, share), c))| {
                    let mut v = VariantResult {
                        variant: (*name).to_owned(),
                        share: *share,
                        people: count(c.people),
                        conversions: count(c.conversions),
                        rate: rate(c).mean(),
                        mean_value: value(c).mean(),
                        value_sum: c.value_sum,
                        value_sum_squares: c.value_sum_squares,
                        lift: None,
                        ci: None,
                        p_value: None,
                        chance_to_win: None,
                        error: None,
                        value_lift: None,
                        value_ci: None,
                        value_p_value: None,
                        value_chance_to_win: None,
                        value_error: None,
                    };
                    if i > 0 {
                        let (lift, ci, p, ctw, err) = comparison_fields(&compare(
                            &rate(&control),
                            &rate(c),
                            Metric::Proportion,
                        ));
                        (v.lift, v.ci, v.p_value, v.chance_to_win, v.error) =
                            (Some(lift), Some(ci), Some(p), Some(ctw), Some(err));
                        if goal.value {
                            let (lift, ci, p, ctw, err) = comparison_fields(&compare(
                                &value(&control),
                                &value(c),
                                Metric::Mean,
                            ));
                            (
                                v.value_lift,
                                v.value_ci,
                                v.value_p_value,
                                v.value_chance_to_win,
                                v.value_error,
                            ) = (Some(lift), Some(ci), Some(p), Some(ctw), Some(err));
                        }
                    }
                    v
                })
                .collect();
            experiments.push(ExperimentResult {
                experiment: spec.name.to_owned(),
                slot: spec.slot.to_owned(),
                goal: goal.name.to_owned(),
                value_goal: goal.value,
                srm_p,
                srm: srm_p < SRM_THRESHOLD,
                variants,
            });
        }
    }
    let mut attribution = Vec::new();
    let slot_order: Vec<&str> = bundle.slot_names().collect();
    for ((goal, paths), &(total, _)) in goals.iter().zip(&data.paths).zip(&data.totals) {
        let mut by_slot: BySlot<'_> = BySlot::new();
        for (path, stat) in &paths.map {
            let slot = path
                .first()
                .and_then(|&t| data.touches.get(usize::try_from(t).ok()?))
                .map_or("", |k| k.slot.as_str());
            let order = slot_order
                .iter()
                .position(|s| *s == slot)
                .unwrap_or(usize::MAX);
            by_slot
                .entry((order, slot))
                .or_default()
                .push((path.as_slice(), stat));
        }
        for ((_, slot), slot_paths) in &mut by_slot {
            // In path order, so sums come out the same bit for bit on every run.
            slot_paths.sort_by(|a, b| a.0.cmp(b.0));
            let (conversions, value) = slot_paths.iter().fold((0.0, 0.0), |(c, v), (_, s)| {
                (c + s.conversions, v + s.value)
            });
            for model in Model::ALL {
                let credit = credit(model, slot_paths.iter().copied(), data.touches.len());
                let mut rows = rows_of(&credit, &data.touches);
                rows.sort_by(|a, b| {
                    b.conversions
                        .total_cmp(&a.conversions)
                        .then_with(|| b.value.total_cmp(&a.value))
                        .then_with(|| {
                            (&a.content, &a.candidate, &a.channel).cmp(&(
                                &b.content,
                                &b.candidate,
                                &b.channel,
                            ))
                        })
                });
                attribution.push(AttributionResult {
                    goal: goal.name.to_owned(),
                    slot: (*slot).to_owned(),
                    model: model.name(),
                    conversions,
                    value,
                    unattributed: (total - conversions).max(0.0),
                    rows,
                });
            }
        }
    }
    Report {
        window: window.text.clone(),
        people: count(data.people),
        experiments,
        attribution,
    }
}
