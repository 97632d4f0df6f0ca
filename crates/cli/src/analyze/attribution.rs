//! Attribution models over path counts (docs/results.md).
//!
//! A path is the touches of one journey in time order, consecutive repeats collapsed;
//! it ends in a conversion or in nothing (null). Every model here reads only the path
//! counts: the heuristic ones split each conversion over its path's positions, the
//! data-driven one is a first-order Markov chain (start → touches → conversion | null)
//! whose removal effects are **solved exactly** from the transition counts, never
//! simulated:
//!
//! With `Q` the transitions between transient states (start and the touches) and `N =
//! (I − Q)⁻¹` its fundamental matrix, the chance of converting from state `i` is `hᵢ =
//! (N r)ᵢ`, `r` the one-step chance of converting. Removing a state `s` sends every
//! visit of it to null, so the chance of converting becomes the chance of converting
//! without ever visiting `s`: `h_start − f(s)·h_s`, where `f(s) = N_start,s / N_s,s` is
//! the chance of ever reaching `s` (the strong Markov property at its first visit). One
//! inversion gives every removal effect `RE(s) = 1 − P(conv without s) / P(conv)`;
//! a touch is credited `total × RE(s) / Σ RE`. Value is credited the same way with `r`
//! weighted by the value of the conversions that follow each state.

use super::PathStat;

/// An attribution model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// The whole conversion to the last touch.
    LastTouch,
    /// The whole conversion to the first touch.
    FirstTouch,
    /// Equal shares.
    Linear,
    /// Shares halving every 7 days before the conversion.
    TimeDecay,
    /// 40 % first, 40 % last, 20 % shared by the touches between (one touch: all of
    /// it; two: half each).
    PositionBased,
    /// The Markov chain removal effect.
    Markov,
}

impl Model {
    /// Every model, in the order reports list them.
    pub const ALL: [Model; 6] = [
        Model::LastTouch,
        Model::FirstTouch,
        Model::Linear,
        Model::TimeDecay,
        Model::PositionBased,
        Model::Markov,
    ];

    /// Its name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Model::LastTouch => "last_touch",
            Model::FirstTouch => "first_touch",
            Model::Linear => "linear",
            Model::TimeDecay => "time_decay",
            Model::PositionBased => "position_based",
            Model::Markov => "markov",
        }
    }

    /// Its name for people.
    pub fn title(self) -> &'static str {
        match self {
            Model::LastTouch => "Last touch",
            Model::FirstTouch => "First touch",
            Model::Linear => "Linear",
            Model::TimeDecay => "Time decay (7-day half-life)",
            Model::PositionBased => "Position-based (40/20/40)",
            Model::Markov => "Data-driven (Markov removal effect)",
        }
    }
}

/// Credit per touch: conversions and value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Credit {
    /// Conversions credited to each touch id.
    pub conversions: Vec<f64>,
    /// Value credited to each touch id.
    pub value: Vec<f64>,
    /// For the Markov model, each touch's removal effect.
    pub removal_effects: Option<Vec<f64>>,
}

/// The share of each position of a path of `len` touches.
fn shares(model: Model, len: usize) -> Vec<f64> {
    let mut s = vec![0.0; len];
    let n = len as f64;
    match model {
        Model::LastTouch => {
            if let Some(x) = s.last_mut() {
                *x = 1.0;
            }
        }
        Model::FirstTouch => {
            if let Some(x) = s.first_mut() {
                *x = 1.0;
            }
        }
        Model::Linear => s.iter_mut().for_each(|x| *x = 1.0 / n),
        Model::PositionBased => match len {
            0 => {}
            1 => s.iter_mut().for_each(|x| *x = 1.0),
            2 => s.iter_mut().for_each(|x| *x = 0.5),
            _ => {
                let middle = 0.2 / (n - 2.0);
                s.iter_mut().for_each(|x| *x = middle);
                if let Some(x) = s.first_mut() {
                    *x = 0.4;
                }
                if let Some(x) = s.last_mut() {
                    *x = 0.4;
                }
            }
        },
        Model::TimeDecay | Model::Markov => {}
    }
    s
}

/// Credits every touch under `model`, from the path counts.
pub fn credit<'p, I>(model: Model, paths: I, touches: usize) -> Credit
where
    I: IntoIterator<Item = (&'p [u32], &'p PathStat)> + Clone,
{
    if model == Model::Markov {
        return markov(paths, touches);
    }
    let mut credit = Credit {
        conversions: vec![0.0; touches],
        value: vec![0.0; touches],
        removal_effects: None,
    };
    for (path, stat) in paths {
        if stat.conversions == 0.0 {
            continue;
        }
        let split: Vec<(f64, f64)> = match model {
            Model::TimeDecay => stat
                .time_decay
                .iter()
                .copied()
                .zip(stat.time_decay_value.iter().copied())
                .collect(),
            _ => shares(model, path.len())
                .into_iter()
                .map(|s| (s * stat.conversions, s * stat.value))
                .collect(),
        };
        for (&touch, (c, v)) in path.iter().zip(split) {
            let i = usize::try_from(touch).unwrap_or(usize::MAX);
            if let Some(x) = credit.conversions.get_mut(i) {
                *x += c;
            }
            if let Some(x) = credit.value.get_mut(i) {
                *x += v;
            }
        }
    }
    credit
}

/// The removal effects of a first-order Markov chain, solved exactly.
fn markov<'p, I>(paths: I, touches: usize) -> Credit
where
    I: IntoIterator<Item = (&'p [u32], &'p PathStat)>,
{
    // States: 0 is start, touch t is state t + 1 (only touches on some path matter, but
    // the others have no transitions and get no credit).
    let m = touches + 1;
    let mut counts = vec![vec![0.0; m]; m];
    let mut out = vec![0.0; m];
    let mut to_conv = vec![0.0; m];
    let mut to_value = vec![0.0; m];
    let (mut total_conv, mut total_value) = (0.0, 0.0);
    let state = |t: u32| usize::try_from(t).map_or(usize::MAX, |t| t + 1);
    for (path, stat) in paths {
        let weight = stat.conversions + stat.nulls;
        if weight == 0.0 || path.is_empty() {
            continue;
        }
        total_conv += stat.conversions;
        total_value += stat.value;
        let mut from = 0usize;
        for &t in path {
            let to = state(t);
            if let Some(c) = counts.get_mut(from).and_then(|row| row.get_mut(to)) {
                *c += weight;
            }
            if let Some(o) = out.get_mut(from) {
                *o += weight;
            }
            from = to;
        }
        if let Some(o) = out.get_mut(from) {
            *o += weight;
        }
        if let Some(c) = to_conv.get_mut(from) {
            *c += stat.conversions;
        }
        if let Some(v) = to_value.get_mut(from) {
            *v += stat.value;
        }
    }
    // I − Q, and the one-step rewards (chance of converting, value on converting).
    let mut a = vec![vec![0.0; m]; m];
    let mut r = vec![0.0; m];
    let mut rv = vec![0.0; m];
    for (i, row) in a.iter_mut().enumerate() {
        let total = out.get(i).copied().unwrap_or(0.0);
        if let Some(x) = row.get_mut(i) {
            *x = 1.0;
        }
        if total > 0.0 {
            let counts_row = counts.get(i).map(Vec::as_slice).unwrap_or(&[]);
            for (x, &c) in row.iter_mut().zip(counts_row) {
                *x -= c / total;
            }
            if let Some(x) = r.get_mut(i) {
                *x = to_conv.get(i).copied().unwrap_or(0.0) / total;
            }
            if let Some(x) = rv.get_mut(i) {
                *x = to_value.get(i).copied().unwrap_or(0.0) / total;
            }
        }
    }
    let n = invert(a).unwrap_or_default();
    let dot = |row: &[f64], v: &[f64]| row.iter().zip(v).map(|(a, b)| a * b).sum::<f64>();
    let h: Vec<f64> = n.iter().map(|row| dot(row, &r)).collect();
    let hv: Vec<f64> = n.iter().map(|row| dot(row, &rv)).collect();
    let start_row = n.first().map(Vec::as_slice).unwrap_or(&[]);
    let (p, pv) = (
        h.first().copied().unwrap_or(0.0),
        hv.first().copied().unwrap_or(0.0),
    );
    let mut effects = vec![0.0; touches];
    let mut value_effects = vec![0.0; touches];
    for (t, (e, ev)) in effects.iter_mut().zip(value_effects.iter_mut()).enumerate() {
        let s = t + 1;
        let n_ss = n.get(s).and_then(|row| row.get(s)).copied().unwrap_or(0.0);
        let n_start_s = start_row.get(s).copied().unwrap_or(0.0);
        if n_ss <= 0.0 || n_start_s <= 0.0 {
            continue;
        }
        let reach = n_start_s / n_ss;
        if p > 0.0 {
            let without = p - reach * h.get(s).copied().unwrap_or(0.0);
            *e = (1.0 - without / p).clamp(0.0, 1.0);
        }
        if pv > 0.0 {
            let without = pv - reach * hv.get(s).copied().unwrap_or(0.0);
            *ev = (1.0 - without / pv).clamp(0.0, 1.0);
        }
    }
    let sum: f64 = effects.iter().sum();
    let sum_v: f64 = value_effects.iter().sum();
    Credit {
        conversions: effects
            .iter()
            .map(|e| if sum > 0.0 { total_conv * e / sum } else { 0.0 })
            .collect(),
        value: value_effects
            .iter()
            .map(|e| {
                if sum_v > 0.0 {
                    total_value * e / sum_v
                } else {
                    0.0
                }
            })
            .collect(),
        removal_effects: Some(effects),
    }
}

/// Gauss–Jordan inversion with partial pivoting; `None` for a singular matrix (a chain
/// with a loop that never ends, which path counts cannot produce).
fn invert(mut a: Vec<Vec<f64>>) -> Option<Vec<Vec<f64>>> {
    let m = a.len();
    let mut inv: Vec<Vec<f64>> = (0..m)
        .map(|i| (0..m).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    for k in 0..m {
        let pivot = (k..m).max_by(|&i, &j| {
            let at = |r: usize| a.get(r).and_then(|row| row.get(k)).map_or(0.0, |x| x.abs());
            at(i).total_cmp(&at(j))
        })?;
        a.swap(k, pivot);
        inv.swap(k, pivot);
        let d = a.get(k).and_then(|row| row.get(k)).copied()?;
        if d.abs() < 1e-300 {
            return None;
        }
        let mut pivot_row = a.get(k)?.clone();
        let mut pivot_inv = inv.get(k)?.clone();
        pivot_row.iter_mut().for_each(|x| *x /= d);
        pivot_inv.iter_mut().for_each(|x| *x /= d);
        for (i, (row, row_inv)) in a.iter_mut().zip(inv.iter_mut()).enumerate() {
            if i == k {
                row.clone_from(&pivot_row);
                row_inv.clone_from(&pivot_inv);
                continue;
            }
            let f = row.get(k).copied().unwrap_or(0.0);
            if f == 0.0 {
                continue;
            }
            row.iter_mut()
                .zip(&pivot_row)
                .for_each(|(x, p)| *x -= f * p);
            row_inv
                .iter_mut()
                .zip(&pivot_inv)
                .for_each(|(x, p)| *x -= f * p);
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(path_len: usize, conversions: f64, nulls: f64) -> PathStat {
        PathStat {
            conversions,
            nulls,
            value: conversions * 10.0,
            time_decay: vec![0.0; path_len],
            time_decay_value: vec![0.0; path_len],
        }
    }

    #[test]
    fn position_based_shares() {
        assert_eq!(shares(Model::PositionBased, 1), [1.0]);
        assert_eq!(shares(Model::PositionBased, 2), [0.5, 0.5]);
        assert_eq!(shares(Model::PositionBased, 3), [0.4, 0.2, 0.4]);
        let four = shares(Model::PositionBased, 4);
        assert_eq!(four, [0.4, 0.1, 0.1, 0.4]);
    }

    #[test]
    fn markov_on_a_two_channel_example_solved_by_hand() {
        // Paths: A > B converts once, A alone is null once, B alone converts once.
        // start → A (2), start → B (1); A → B (1), A → null (1); B → conv (2).
        // P(conv) = 2/3·1/2 + 1/3 = 2/3. Without A: only start → B converts: 1/3, so
        // RE(A) = 1/2. Without B: nothing converts: RE(B) = 1.
        let paths = [
            (vec![0u32, 1], stat(2, 1.0, 0.0)),
            (vec![0u32], stat(1, 0.0, 1.0)),
            (vec![1u32], stat(1, 1.0, 0.0)),
        ];
        let credit = credit(
            Model::Markov,
            paths.iter().map(|(p, s)| (p.as_slice(), s)),
            2,
        );
        let re = credit.removal_effects.unwrap();
        assert!(
            (re[0] - 0.5).abs() < 1e-12 && (re[1] - 1.0).abs() < 1e-12,
            "{re:?}"
        );
        // Two conversions, split 0.5 : 1.
        assert!((credit.conversions[0] - 2.0 / 3.0).abs() < 1e-12);
        assert!((credit.conversions[1] - 4.0 / 3.0).abs() < 1e-12);
    }
}
