//! The Analytics Engine SQL that `--sql` prints (docs/analytics.md has the layout).
//!
//! Analytics Engine's SQL reads one table, allows one subquery in `FROM` and no joins,
//! so the per-person join happens in a `GROUP BY index1` subquery (`index1` is the
//! person, so a person's rows are sampled together) and the outer query sums people,
//! weighted by `_sample_interval`, per arm. What that can and cannot compute:
//!
//! - the arm of a person's **first** exposure: exact (the earliest exposure time per
//!   arm, then the arm with the smallest);
//! - "converted within the window after the first exposure": exact unless the person
//!   converted both before the first exposure and only later than the window after it
//!   (then counted as converted);
//! - the value: all of the goal's value the person had in the queried time range when
//!   converted as above (exact for people whose conversions all fall in the window);
//! - attribution paths: not at all (no ordered lists per person); the last query
//!   exports the rows as log lines, which `micromoment analyze` reads exactly.

use super::Window;
use micromoment::bundle::Bundle;

/// The dataset of the Worker's `EXPOSURES` binding (wrangler.toml).
pub const DEFAULT_DATASET: &str = "micromoment_exposures";

const NEVER: &str = "4294967295";

fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `if(f0 <= f1 AND f0 <= f2, a0, if(f1 <= f2, a1, a2))`: the value of the first arm
/// whose time is the smallest.
fn first_of(times: &[String], values: &[String]) -> String {
    match (times.split_first(), values.split_first()) {
        (Some((_, [])), Some((v, _))) => v.clone(),
        (Some((t, rest)), Some((v, values_rest))) => {
            let cond: Vec<String> = rest.iter().map(|o| format!("{t} <= {o}")).collect();
            format!(
                "if({}, {v}, {})",
                cond.join(" AND "),
                first_of(rest, values_rest)
            )
        }
        _ => "NULL".into(),
    }
}

/// The queries for `bundle` over `dataset`, each ending with `FORMAT`.
pub fn sql(bundle: &Bundle, window: &Window, dataset: &str) -> String {
    let id = quote(bundle.id());
    let w = if window.seconds >= i64::from(u32::MAX) {
        NEVER.to_owned()
    } else {
        window.seconds.to_string()
    };
    let range = "timestamp > NOW() - INTERVAL '90' DAY";
    let mut out = format!(
        "-- micromoment analyze --sql: sufficient statistics for {} (window {}, {w} s).\n\
         -- Run each query with the Analytics Engine SQL API; save the answers, one after\n\
         -- the other, in one file for `micromoment analyze --aggregates FILE --bundle B`.\n\
         -- Narrow the time range to the experiment's dates (plus the window).\n\n",
        bundle.id(),
        window.text
    );
    out.push_str(&format!(
        "-- People with at least one exposure.\n\
         SELECT sum(w) AS people\n\
         FROM (\n  SELECT index1, max(_sample_interval) AS w\n  FROM {dataset}\n  \
         WHERE {range} AND blob8 = {id} AND blob1 = 'exposure'\n  GROUP BY index1\n)\n\
         FORMAT JSON;\n\n"
    ));
    let goals: Vec<_> = bundle.goals().collect();
    for e in bundle.experiments() {
        let mut arms: Vec<&str> = e.variants.iter().map(|(c, _)| *c).collect();
        if e.holdout > 0.0 {
            arms.push("holdout");
        }
        let exp = quote(e.name);
        let times: Vec<String> = (0..arms.len()).map(|i| format!("f{i}")).collect();
        let names: Vec<String> = arms.iter().map(|a| quote(a)).collect();
        let arm = first_of(&times, &names);
        let first_at = first_of(&times, &times);
        for g in &goals {
            let goal = quote(g.name);
            let mut inner = String::new();
            for (i, a) in arms.iter().enumerate() {
                inner.push_str(&format!(
                    "    min(if(blob1 = 'exposure' AND blob5 = {exp} AND blob6 = {}, double1, {NEVER})) AS f{i},\n",
                    quote(a)
                ));
            }
            let converted = format!("(c_last >= {first_at} AND c_first <= {first_at} + {w})");
            out.push_str(&format!(
                "-- {} × {}: people, conversions and value per arm of the first exposure.\n\
                 SELECT\n  {exp} AS experiment,\n  {arm} AS variant,\n  {goal} AS goal,\n  \
                 sum(w) AS people,\n  sum(if({converted}, w, 0)) AS conversions,\n  \
                 sum(if({converted}, w * c_value, 0)) AS value_sum,\n  \
                 sum(if({converted}, w * c_value * c_value, 0)) AS value_sum_squares\n\
                 FROM (\n  SELECT\n    index1,\n    max(_sample_interval) AS w,\n{inner}    \
                 min(if(blob1 = 'conversion' AND blob12 = {goal}, double1, {NEVER})) AS c_first,\n    \
                 max(if(blob1 = 'conversion' AND blob12 = {goal}, double1, 0)) AS c_last,\n    \
                 sum(if(blob1 = 'conversion' AND blob12 = {goal}, double2, 0)) AS c_value\n  \
                 FROM {dataset}\n  WHERE {range} AND blob8 = {id}\n    \
                 AND ((blob1 = 'exposure' AND blob5 = {exp}) OR (blob1 = 'conversion' AND blob12 = {goal}))\n  \
                 GROUP BY index1\n)\nWHERE {first_at} < {NEVER}\nGROUP BY variant\nFORMAT JSON;\n\n",
                e.name, g.name
            ));
        }
    }
    out.push_str(&format!(
        "-- Attribution paths need each person's exposures in order, which this SQL cannot\n\
         -- build: export the rows as log lines and run `micromoment analyze` on them.\n\
         SELECT\n  blob1 AS type, blob13 AS visitor, blob14 AS profile, double1 AS at,\n  \
         blob8 AS bundle, blob10 AS channel, blob11 AS device, blob2 AS slot, blob3 AS content,\n  \
         blob4 AS candidate, blob5 AS experiment, blob6 AS variant, blob7 AS stage,\n  \
         blob12 AS goal, double2 AS value, _sample_interval AS sample_interval\n\
         FROM {dataset}\nWHERE {range} AND blob8 = {id}\nORDER BY index1, double1\n\
         FORMAT JSONEachRow;\n"
    ));
    out
}
