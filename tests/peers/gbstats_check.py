"""`micromoment analyze --aggregates` against gbstats 0.8.0, GrowthBook's stats engine.

For every aggregate set below (small and large samples, a binomial and a revenue-like
goal, a losing variant, equal variants, three arms with unequal weights, a mismatched
split, an empty control) the script writes a bundle and the aggregate rows, runs
`micromoment analyze --aggregates FILE --bundle B --json`, and runs gbstats' own
pipeline on the same counts: `gbstats.gbstats.process_single_metric` with
`MetricSettingsForStatsEngine(statistic_type="mean", main_metric_type="binomial")` for
the rate and `main_metric_type="count"` for the mean value (so `ProportionStatistic` and
`SampleMeanStatistic`), and `AnalysisSettingsForStatsEngine` with the default settings
(relative difference, alpha 0.05, no sequential testing) once with
`stats_engine="frequentist"` (`TwoSidedTTest`, `FrequentistConfig`) and once with the
default `stats_engine="bayesian"` (`EffectBayesianABTest`, with the metric's default
prior: `prior_proper=False`, i.e. flat). It asserts, to 1e-6:

- the relative lift (`expected`), its 95 % interval (`ci`) and `pValue`;
- the chance to beat control (`chanceToWin`);
- the SRM p-value (gbstats' `check_srm`), and that both equal
  `scipy.stats.chisquare(people, expected_people)`;
- where gbstats answers with an error message (no interval), micromoment gives no
  interval either and names the same error.

Usage: gbstats_check.py PATH/TO/micromoment WORKDIR
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.stats
from gbstats.gbstats import process_single_metric
from gbstats.models.settings import AnalysisSettingsForStatsEngine, MetricSettingsForStatsEngine

TOL = 1e-6
CLI, WORK = sys.argv[1], Path(sys.argv[2])
WORK.mkdir(parents=True, exist_ok=True)


def revenue(rng, n, rate, mean):
    """Per-person values: zero for non-buyers, log-normal order values for buyers."""
    buyers = rng.random(n) < rate
    values = np.where(buyers, rng.lognormal(math.log(mean) - 0.5, 1.0, n), 0.0)
    return int(buyers.sum()), float(values.sum()), float((values**2).sum())


def arm(name, people, conversions, value_sum=None, value_sum_squares=None):
    return {
        "variant": name,
        "people": people,
        "conversions": conversions,
        "value_sum": conversions if value_sum is None else value_sum,
        "value_sum_squares": conversions if value_sum_squares is None else value_sum_squares,
    }


rng = np.random.default_rng(20261201)
CASES = []
# A worked example: 50/50 with a 10 % holdout (shares 45/45/10).
CASES.append(("worked-example", [("dealer-offer", 50), ("test-drive", 50)], 0.10,
              [arm("dealer-offer", 9000, 450), arm("test-drive", 9050, 520), arm("holdout", 2000, 80)]))
CASES.append(("small-samples", [("a", 50), ("b", 50)], 0.0, [arm("a", 40, 5), arm("b", 38, 9)]))
CASES.append(("large-samples", [("a", 50), ("b", 50)], 0.0,
              [arm("a", 1_000_000, 50_000), arm("b", 1_000_400, 50_830)]))
CASES.append(("losing-variant", [("a", 50), ("b", 50)], 0.0, [arm("a", 5000, 600), arm("b", 5000, 520)]))
CASES.append(("equal-variants", [("a", 50), ("b", 50)], 0.0, [arm("a", 3000, 300), arm("b", 3000, 300)]))
revenue_arms = []
for name, n, rate, mean in [("a", 4000, 0.05, 120.0), ("b", 4100, 0.056, 118.0), ("holdout", 900, 0.045, 120.0)]:
    c, s, ss = revenue(rng, n, rate, mean)
    revenue_arms.append(arm(name, n, c, s, ss))
CASES.append(("revenue-like", [("a", 50), ("b", 50)], 0.10, revenue_arms))
big = []
for name, n, rate, mean in [("a", 200_000, 0.031, 80.0), ("b", 200_500, 0.0317, 84.0)]:
    c, s, ss = revenue(rng, n, rate, mean)
    big.append(arm(name, n, c, s, ss))
CASES.append(("revenue-large", [("a", 50), ("b", 50)], 0.0, big))
CASES.append(("three-arms-unequal-weights", [("a", 20), ("b", 30), ("c", 50)], 0.0,
              [arm("a", 2000, 210), arm("b", 3050, 350), arm("c", 4900, 505)]))
CASES.append(("mismatched-split", [("a", 50), ("b", 50)], 0.0, [arm("a", 4500, 450), arm("b", 5500, 560)]))
CASES.append(("empty-control", [("a", 50), ("b", 50)], 0.0, [arm("a", 100, 0), arm("b", 100, 3)]))
CASES.append(("all-converted", [("a", 50), ("b", 50)], 0.0, [arm("a", 20, 20), arm("b", 20, 19)]))


def bundle(variants, holdout):
    content = {name: {"html": name} for name, _ in variants}
    content["default"] = {"html": "default"}
    experiment = {"variants": [{"content": c, "weight": w} for c, w in variants]}
    if holdout:
        experiment["holdout"] = holdout
    return {
        "id": "peer", "version": 1, "journey": {"stages": ["any"]}, "content": content,
        "slots": {"hero": {"default": "default", "candidates": [{"id": "exp", "experiment": experiment}]}},
        "goals": {"purchase": {"event": "order_completed", "value": True}},
    }


def gbstats(arms, shares, metric_type, engine):
    rows = [{"dimension": "All", "variation": a["variant"], "users": a["people"], "count": a["people"],
             "main_sum": a["conversions"] if metric_type == "binomial" else a["value_sum"],
             "main_sum_squares": a["conversions"] if metric_type == "binomial" else a["value_sum_squares"]}
            for a in arms]
    metric = MetricSettingsForStatsEngine(id="m", name="m", statistic_type="mean", main_metric_type=metric_type)
    names = [a["variant"] for a in arms]
    analysis = AnalysisSettingsForStatsEngine(var_names=names, var_ids=names, weights=shares, stats_engine=engine)
    result = process_single_metric(rows=rows, metric=metric, analyses=[analysis])
    dim = result.analyses[0].dimensions[0]
    return dim.srm, dim.variations


def close(what, ours, theirs):
    if ours is None or theirs is None or not math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL):
        raise AssertionError(f"{what}: micromoment {ours!r}, gbstats {theirs!r}")
    return abs(ours - theirs)


worst = 0.0
checked = 0
for name, variants, holdout, arms in CASES:
    b = WORK / f"{name}.bundle.json"
    b.write_text(json.dumps(bundle(variants, holdout)))
    rows = [dict(a, experiment="exp", goal="purchase", people=str(a["people"])) for a in arms]
    agg = WORK / f"{name}.aggregates.json"
    agg.write_text(json.dumps({"meta": [], "data": rows, "rows": len(rows)}))
    run = subprocess.run([CLI, "analyze", "--aggregates", str(agg), "--bundle", str(b), "--json"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise SystemExit(f"{name}: micromoment exited {run.returncode}: {run.stderr}")
    ours = json.loads(run.stdout)["experiments"][0]
    total_weight = sum(w for _, w in variants)
    shares = [w / total_weight * (1 - holdout) for _, w in variants] + ([holdout] if holdout else [])
    people = [a["people"] for a in arms]
    expected = [s / sum(shares) * sum(people) for s in shares]
    scipy_p = scipy.stats.chisquare(people, expected).pvalue
    for metric_type, prefix in [("binomial", ""), ("count", "value_")]:
        srm_f, freq = gbstats(arms, shares, metric_type, "frequentist")
        srm_b, bayes = gbstats(arms, shares, metric_type, "bayesian")
        worst = max(worst, close(f"{name} srm_p", ours["srm_p"], srm_f), close(f"{name} srm vs scipy", ours["srm_p"], scipy_p))
        assert ours["srm"] == (srm_f < 0.001), f"{name}: srm flag"
        for i, v in enumerate(ours["variants"]):
            assert v["variant"] == arms[i]["variant"] and v["people"] == arms[i]["people"], (name, v)
            if i == 0:
                assert f"{prefix}lift" not in v, f"{name}: the control has no lift"
                continue
            f, bz = freq[i], bayes[i]
            label = f"{name} {v['variant']} {metric_type}"
            if f.errorMessage:
                # gbstats answers its default (ci [0, 0], p 1); micromoment gives none.
                assert v[f"{prefix}ci"] is None and v[f"{prefix}p_value"] is None, label
                assert v[f"{prefix}error"] == f.errorMessage, (label, v[f"{prefix}error"], f.errorMessage)
                assert bz.errorMessage == f.errorMessage, label
                if v[f"{prefix}lift"] is not None:
                    worst = max(worst, close(f"{label} lift", v[f"{prefix}lift"], f.expected))
                checked += 1
                continue
            worst = max(
                worst,
                close(f"{label} lift", v[f"{prefix}lift"], f.expected),
                close(f"{label} ci low", v[f"{prefix}ci"][0], f.ci[0]),
                close(f"{label} ci high", v[f"{prefix}ci"][1], f.ci[1]),
                close(f"{label} p-value", v[f"{prefix}p_value"], f.pValue),
                close(f"{label} chance to win", v[f"{prefix}chance_to_win"], bz.chanceToWin),
            )
            checked += 1
print(f"gbstats 0.8.0: {len(CASES)} aggregate sets, {checked} comparisons, largest difference {worst:.2e}")
