//! Experiment bucketing, compatible with GrowthBook's SDKs.
//!
//! A visitor's bucket is `hash(seed = experiment id, value = visitor id)`, a number in
//! [0, 1): version 2 is `fnv1a32(decimal(fnv1a32(seed + value))) % 10000 / 10000`, which
//! spreads consecutive ids better than version 1 (`fnv1a32(value + seed) % 1000 / 1000`).
//! Variants own consecutive ranges of [0, 1) in proportion to their weights, shrunk by
//! the coverage; a bucket outside every range is not in the experiment (our holdout).
//! `tests/it/bucket.rs` runs GrowthBook's cross-SDK cases against this module.

use crate::ids::fnv1a32;

/// GrowthBook's hash; `None` for an unknown hash version.
pub fn hash(seed: &str, value: &str, version: u32) -> Option<f64> {
    match version {
        1 => {
            let n = fnv1a32_concat(value, seed);
            Some(f64::from(n % 1000) / 1000.0)
        }
        2 => {
            let inner = fnv1a32_concat(seed, value);
            let mut digits = [0u8; 10];
            let n = fnv1a32(decimal(inner, &mut digits));
            Some(f64::from(n % 10000) / 10000.0)
        }
        _ => None,
    }
}

fn fnv1a32_concat(a: &str, b: &str) -> u32 {
    b.bytes()
        .fold(fnv1a32(a.as_bytes()), crate::ids::fnv1a32_step)
}

/// Writes `n` in decimal into `buf`, returning the digits, without allocating.
fn decimal(mut n: u32, buf: &mut [u8; 10]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        if let Some(slot) = buf.get_mut(start) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    buf.get(start..).unwrap_or(&[])
}

/// Equal weights for `n` variants.
pub fn equal_weights(n: i64) -> Vec<f64> {
    if n <= 0 {
        return Vec::new();
    }
    vec![1.0 / n as f64; usize::try_from(n).unwrap_or(0)]
}

/// GrowthBook's `getBucketRange`: one `[start, end)` range per variant. Weights that do
/// not match the variant count or do not sum to 1 (±0.01) fall back to equal weights;
/// coverage is clamped to [0, 1].
pub fn bucket_ranges(n: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<(f64, f64)> {
    let coverage = if coverage.is_nan() {
        1.0
    } else {
        coverage.clamp(0.0, 1.0)
    };
    let equal = equal_weights(i64::try_from(n).unwrap_or(0));
    let weights = match weights {
        Some(w) if w.len() == n && (0.99..=1.01).contains(&w.iter().sum::<f64>()) => w,
        _ => &equal,
    };
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|w| {
            let start = cumulative;
            cumulative += w;
            (start, start + coverage * w)
        })
        .collect()
}

/// GrowthBook's `chooseVariation`: the first range holding `n`, or `None`.
pub fn choose_variation(n: f64, ranges: &[(f64, f64)]) -> Option<usize> {
    ranges
        .iter()
        .position(|&(start, end)| n >= start && n < end)
}
