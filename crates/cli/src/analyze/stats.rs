//! The statistics of an experiment result, computed from sufficient statistics exactly
//! as gbstats 0.8.0 does, so a result here reads the same as in GrowthBook:
//!
//! - a conversion rate is gbstats' `ProportionStatistic` (variance `p(1 - p)`), a mean
//!   value its `SampleMeanStatistic` (variance `(Σx² - (Σx)²/n) / (n - 1)`);
//! - the frequentist result is `TwoSidedTTest` with its default `FrequentistConfig`
//!   (`alpha = 0.05`, relative difference): Welch's t-test with the Welch–Satterthwaite
//!   degrees of freedom, the delta method for the variance of the relative lift;
//! - the chance to beat control is `EffectBayesianABTest` with the prior gbstats gets by
//!   default (`MetricSettingsForStatsEngine.prior_proper = False`: an improper flat
//!   prior), so the posterior of the lift is normal with the data's mean and variance;
//! - the sample-ratio check is `gbstats.utils.check_srm`: Pearson's chi-square of the
//!   people per arm against the configured shares, `len(arms) - 1` degrees of freedom.
//!
//! Where gbstats returns its uninformative default (a baseline mean of zero, a zero
//! variance, an empty arm), this module returns [`Undefined`] with the same reason, and
//! the lift alone when it can be computed.

use statrs::distribution::{ChiSquared, Continuous, ContinuousCDF, Normal, StudentsT};

/// Counts of one arm for one metric: people, and the sum and sum of squares of the
/// metric per person (a conversion rate: conversions, and conversions again).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Moments {
    /// People.
    pub n: f64,
    /// Σx.
    pub sum: f64,
    /// Σx².
    pub sum_squares: f64,
}

/// Which of gbstats' statistics the moments are read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A 0/1 outcome per person: `ProportionStatistic`.
    Proportion,
    /// A value per person: `SampleMeanStatistic`.
    Mean,
}

impl Moments {
    /// The mean per person (0 without people, as gbstats).
    pub fn mean(&self) -> f64 {
        if self.n == 0.0 {
            0.0
        } else {
            self.sum / self.n
        }
    }

    /// The variance per person as gbstats reads it for this metric.
    pub fn variance(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Proportion => {
                let p = self.mean();
                p * (1.0 - p)
            }
            Metric::Mean if self.n <= 1.0 => 0.0,
            Metric::Mean => (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1.0),
        }
    }
}

/// Why a comparison has no interval (gbstats' error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undefined {
    /// The control's mean is zero: a relative lift is undefined.
    /// (`ZERO_NEGATIVE_BASELINE_VARIATION`)
    ZeroBaseline,
    /// An arm has no variance (all converted, none converted, or fewer than two
    /// people). (`ZERO_NEGATIVE_VARIANCE`)
    ZeroVariance,
    /// An arm has no people. (`NO_UNITS_IN_VARIATION`)
    NoUnits,
}

impl Undefined {
    /// gbstats' name for it.
    pub fn code(self) -> &'static str {
        match self {
            Undefined::ZeroBaseline => "ZERO_NEGATIVE_BASELINE_VARIATION",
            Undefined::ZeroVariance => "ZERO_NEGATIVE_VARIANCE",
            Undefined::NoUnits => "NO_UNITS_IN_VARIATION",
        }
    }

    /// What it means, for a person.
    pub fn text(self) -> &'static str {
        match self {
            Undefined::ZeroBaseline => "the control has no conversions yet",
            Undefined::ZeroVariance => "an arm has no variation yet (too few people, or all alike)",
            Undefined::NoUnits => "an arm has no people yet",
        }
    }
}

/// A variant against the control.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    /// `(mean_b - mean_a) / mean_a`; `None` when the control's mean is zero.
    pub lift: Option<f64>,
    /// The interval, p-value and chance to win, or why there are none.
    pub test: Result<Test, Undefined>,
}

/// The figures of a defined comparison.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Test {
    /// The 95 % confidence interval of the relative lift.
    pub ci: (f64, f64),
    /// The two-sided p-value.
    pub p_value: f64,
    /// The posterior probability that the variant's mean is above the control's.
    pub chance_to_win: f64,
    /// The standard error of the relative lift (delta method).
    pub std_error: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub dof: f64,
}

/// The two-sided level of the interval.
pub const ALPHA: f64 = 0.05;

/// Compares a variant `b` to the control `a`.
pub fn compare(a: &Moments, b: &Moments, metric: Metric) -> Comparison {
    let (mean_a, mean_b) = (a.mean(), b.mean());
    let lift = (mean_a > 0.0).then(|| (mean_b - mean_a) / mean_a);
    let (var_a, var_b) = (a.variance(metric), b.variance(metric));
    let test = if mean_a == 0.0 {
        Err(Undefined::ZeroBaseline)
    } else if a.n == 0.0 || b.n == 0.0 {
        Err(Undefined::NoUnits)
    } else if var_a <= 0.0 || var_b <= 0.0 {
        Err(Undefined::ZeroVariance)
    } else {
        welch(mean_a, var_a, a.n, mean_b, var_b, b.n)
    };
    Comparison { lift, test }
}

fn welch(
    mean_a: f64,
    var_a: f64,
    n_a: f64,
    mean_b: f64,
    var_b: f64,
    n_b: f64,
) -> Result<Test, Undefined> {
    // gbstats' `frequentist_variance` with `relative = True`.
    let variance = var_b / (mean_a.powi(2) * n_b) + var_a * mean_b.powi(2) / (mean_a.powi(4) * n_a);
    let point = (mean_b - mean_a) / mean_a;
    let std_error = variance.sqrt();
    let dof = (var_b / n_b + var_a / n_a).powi(2)
        / (var_b.powi(2) / (n_b.powi(2) * (n_b - 1.0))
            + var_a.powi(2) / (n_a.powi(2) * (n_a - 1.0)));
    let t = Student::new(dof).ok_or(Undefined::ZeroVariance)?;
    let critical = point / std_error;
    let p_value = 2.0 * (1.0 - t.cdf(critical.abs()));
    let width = t.quantile(1.0 - ALPHA / 2.0) * std_error;
    // EffectBayesianABTest, improper prior: the posterior is N(point, variance), and
    // the chance to win is its mass above zero, `norm.sf(0, point, std_error)`.
    let normal = Normal::new(point, std_error).map_err(|_| Undefined::ZeroVariance)?;
    let chance_to_win = normal.sf(0.0);
    Ok(Test {
        ci: (point - width, point + width),
        p_value,
        chance_to_win,
        std_error,
        dof,
    })
}

/// Student's t distribution as scipy computes it, from statrs.
///
/// statrs 0.19's `StudentsT::inverse_cdf` loses digits past ~3·10⁴ degrees of freedom
/// (1.959848 instead of 1.959966 at 10⁶) and does not return at 10⁸, and its `cdf`
/// drifts past 10⁸; Welch's degrees of freedom reach millions on large experiments.
/// So the quantile is Newton's method on statrs' `cdf` (accurate to ~10⁻¹¹ there), and
/// past 10⁷ degrees of freedom both come from the normal distribution with the
/// first terms of the t's expansions in 1/ν (the quantile's is Abramowitz & Stegun
/// 26.7.5), whose error at 10⁷ is below 10⁻¹⁵.
struct Student {
    dof: f64,
    t: Option<StudentsT>,
    normal: Normal,
}

/// Past this many degrees of freedom the expansion is used.
const LARGE_DOF: f64 = 1e7;

impl Student {
    fn new(dof: f64) -> Option<Student> {
        if dof.is_nan() || dof <= 0.0 {
            return None;
        }
        let t = if dof <= LARGE_DOF {
            Some(StudentsT::new(0.0, 1.0, dof).ok()?)
        } else {
            None
        };
        Some(Student {
            dof,
            t,
            normal: Normal::new(0.0, 1.0).ok()?,
        })
    }

    fn cdf(&self, x: f64) -> f64 {
        match &self.t {
            Some(t) => t.cdf(x),
            None => {
                // The next term is below 0.25·φ(x)/ν²: 10⁻¹⁵ at 10⁷.
                let correction = (x.powi(3) + x) / (4.0 * self.dof);
                self.normal.cdf(x) - self.normal.pdf(x) * correction
            }
        }
    }

    fn quantile(&self, p: f64) -> f64 {
        let z = self.normal.inverse_cdf(p);
        let n = self.dof;
        let cornish_fisher = z
            + (z.powi(3) + z) / (4.0 * n)
            + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * n * n);
        let Some(t) = &self.t else {
            return cornish_fisher;
        };
        let mut x = cornish_fisher;
        for _ in 0..50 {
            let step = (t.cdf(x) - p) / t.pdf(x);
            x -= step;
            if step.abs() < 1e-14 * x.abs().max(1.0) {
                break;
            }
        }
        x
    }
}

/// `check_srm`: the p-value of the people per arm against the arms' shares. Arms with a
/// share of zero are skipped in the sum but count in the degrees of freedom, as there.
pub fn srm_p_value(people: &[f64], shares: &[f64]) -> f64 {
    let total: f64 = people.iter().sum();
    if total == 0.0 || people.len() < 2 {
        return 1.0;
    }
    let total_share: f64 = shares.iter().sum();
    let statistic: f64 = people
        .iter()
        .zip(shares)
        .filter(|(_, &w)| w > 0.0)
        .map(|(&o, &w)| {
            let e = w / total_share * total;
            (o - e).powi(2) / e
        })
        .sum();
    match ChiSquared::new((people.len() - 1) as f64) {
        Ok(chi) => chi.sf(statistic),
        Err(_) => 1.0,
    }
}

/// A sample ratio mismatch is flagged below this p-value.
pub const SRM_THRESHOLD: f64 = 0.001;

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(a: (f64, f64), b: (f64, f64), lift: f64, ci: (f64, f64), p: f64, ctw: f64) {
        let m = |(n, x): (f64, f64)| Moments {
            n,
            sum: x,
            sum_squares: x,
        };
        let c = compare(&m(a), &m(b), Metric::Proportion);
        let t = c.test.unwrap();
        let r = |x: f64| (x * 1e4).round() / 1e4;
        assert_eq!(
            (
                r(c.lift.unwrap()),
                (r(t.ci.0), r(t.ci.1)),
                r(t.p_value),
                r(t.chance_to_win)
            ),
            (lift, ci, p, ctw)
        );
    }

    #[test]
    fn a_worked_example_reads_as_gbstats_prints_it() {
        // A worked example: 450 of 9000 against 520 of 9050, and a holdout of 80 of 2000.
        check(
            (9000.0, 450.0),
            (9050.0, 520.0),
            0.1492,
            (0.0081, 0.2903),
            0.0383,
            0.9809,
        );
        check(
            (9000.0, 450.0),
            (2000.0, 80.0),
            -0.2,
            (-0.3863, -0.0137),
            0.0354,
            0.0177,
        );
    }

    #[test]
    fn undefined_comparisons_say_why() {
        let zero = Moments {
            n: 100.0,
            sum: 0.0,
            sum_squares: 0.0,
        };
        let some = Moments {
            n: 100.0,
            sum: 5.0,
            sum_squares: 5.0,
        };
        let c = compare(&zero, &some, Metric::Proportion);
        assert_eq!((c.lift, c.test), (None, Err(Undefined::ZeroBaseline)));
        let c = compare(&some, &zero, Metric::Proportion);
        assert_eq!((c.lift, c.test), (Some(-1.0), Err(Undefined::ZeroVariance)));
    }

    #[test]
    fn student_t_holds_its_digits_at_any_degrees_of_freedom() {
        // scipy.stats.t.ppf(0.975, ν) and t.cdf(1.96, ν).
        for (dof, quantile, cdf) in [
            (10.0, 2.228138851986, 0.960781879876150),
            (1e4, 1.960201239891, 0.974988239884083),
            (1e5, 1.959987707535, 0.975000718402849),
            (1e6, 1.959966356814, 0.975001966207365),
            (1e8, 1.959964008263, 0.975002103465336),
            (1e12, 1.959963984542, 0.975002104851641),
        ] {
            let t = Student::new(dof).unwrap();
            assert!(
                (t.quantile(0.975) - quantile).abs() < 1e-9,
                "ν {dof}: {}",
                t.quantile(0.975)
            );
            assert!((t.cdf(1.96) - cdf).abs() < 1e-9, "ν {dof}: {}", t.cdf(1.96));
        }
    }

    #[test]
    fn srm_is_the_chi_square_of_the_split() {
        // 50/50 split observed as 4500/5500: chi-square 100 on 1 degree of freedom.
        let p = srm_p_value(&[4500.0, 5500.0], &[0.5, 0.5]);
        assert!(p < 1e-20, "{p}");
        assert_eq!(srm_p_value(&[5000.0, 5000.0], &[0.5, 0.5]), 1.0);
        assert_eq!(srm_p_value(&[0.0, 0.0], &[0.5, 0.5]), 1.0);
    }
}
