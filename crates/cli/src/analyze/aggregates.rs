//! Reading sufficient statistics computed elsewhere (`--aggregates FILE`): the output
//! of the queries `--sql` prints, as the Analytics Engine SQL API returns it
//! (`{"meta": …, "data": [rows…]}`), a JSON array of rows, or one row per line. The
//! columns (docs/analytics.md):
//!
//! - `{"people": N}`: people with an exposure (summed over rows);
//! - `{"experiment", "variant", "goal", "people", "conversions", "value_sum",
//!   "value_sum_squares"}`: one arm's counts for one goal (`variant` is a content id or
//!   `holdout`);
//! - `{"goal", "path": [{"content", "slot", "candidate", "channel"}, …], "conversions",
//!   "nulls", "value", "time_decay"?, "time_decay_value"?}`: one path's counts (its
//!   touches all in one slot); without the time-decay shares (they need the touches'
//!   ages) a path's conversions are shared equally by its touches under `time_decay`,
//!   and that is counted;
//! - `{"goal", "conversions", "value"?}`: all of the goal's conversions, attributed or
//!   not (without it, the attributed ones of the slot with the most are taken).
//!
//! Numbers may be JSON numbers or numeric strings (ClickHouse quotes 64-bit integers).

use std::collections::HashMap;
use std::io::BufRead;

use serde_json::{Map, Value};

use super::{ArmCounts, PathStat, Sufficient, TouchKey};
use micromoment::bundle::Bundle;
use micromoment::did_you_mean;

/// Why aggregates could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// The text is not a sequence of JSON documents.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// A row the reader does not understand; `row` counts from 1 over all documents.
    #[error("row {row}: {message}")]
    Row {
        /// Which row.
        row: usize,
        /// What is wrong with it.
        message: String,
    },
}

/// Reads aggregates for `bundle`.
pub fn read_aggregates<R: BufRead>(
    bundle: &Bundle,
    reader: R,
) -> Result<Sufficient, AggregateError> {
    let experiments = bundle.experiments();
    let goals: Vec<_> = bundle.goals().collect();
    let mut data = Sufficient::empty(&experiments, goals.len());
    let mut touches: HashMap<TouchKey, u32> = HashMap::new();
    let mut row = 0usize;
    let mut totals_given = vec![false; goals.len()];
    for document in serde_json::Deserializer::from_reader(reader).into_iter::<Value>() {
        let document = document.map_err(|e| AggregateError::NotJson(e.to_string()))?;
        let rows: Vec<Value> = match document {
            Value::Object(mut map) if map.contains_key("data") => match map.remove("data") {
                Some(Value::Array(rows)) => rows,
                _ => {
                    return Err(AggregateError::NotJson(
                        "\"data\" is not an array of rows".into(),
                    ))
                }
            },
            Value::Array(rows) => rows,
            other => vec![other],
        };
        for value in rows {
            row += 1;
            let fail = |message: String| AggregateError::Row { row, message };
            let Value::Object(map) = value else {
                return Err(fail("expected an object".into()));
            };
            let goal_of = |map: &Map<String, Value>| -> Result<usize, AggregateError> {
                let name = text(map, "goal").map_err(fail)?;
                goals.iter().position(|g| g.name == name).ok_or_else(|| {
                    fail(format!(
                        "unknown goal \"{name}\"{}",
                        hint(&name, goals.iter().map(|g| g.name))
                    ))
                })
            };
            if map.contains_key("experiment") {
                let name = text(&map, "experiment").map_err(fail)?;
                let (e, spec) = experiments
                    .iter()
                    .enumerate()
                    .find(|(_, e)| e.name == name)
                    .ok_or_else(|| {
                        fail(format!(
                            "unknown experiment \"{name}\"{}",
                            hint(&name, experiments.iter().map(|e| e.name))
                        ))
                    })?;
                let g = goal_of(&map)?;
                let variant = text(&map, "variant").map_err(fail)?;
                let arm = if variant == "holdout" {
                    spec.variants.len()
                } else {
                    spec.variants
                        .iter()
                        .position(|(c, _)| *c == variant)
                        .ok_or_else(|| {
                            fail(format!(
                                "experiment \"{name}\" has no variant \"{variant}\"{}",
                                hint(
                                    &variant,
                                    spec.variants.iter().map(|(c, _)| *c).chain(["holdout"])
                                )
                            ))
                        })?
                };
                let counts = ArmCounts {
                    people: number(&map, "people", true).map_err(fail)?,
                    conversions: number(&map, "conversions", true).map_err(fail)?,
                    value_sum: number(&map, "value_sum", false).map_err(fail)?,
                    value_sum_squares: number(&map, "value_sum_squares", false).map_err(fail)?,
                };
                if let Some(arm) = data
                    .arms
                    .get_mut(e)
                    .and_then(|g_arms| g_arms.get_mut(g))
                    .and_then(|arms| arms.get_mut(arm))
                {
                    arm.people += counts.people;
                    arm.conversions += counts.conversions;
                    arm.value_sum += counts.value_sum;
                    arm.value_sum_squares += counts.value_sum_squares;
                }
            } else if map.contains_key("path") {
                let g = goal_of(&map)?;
                let Some(Value::Array(items)) = map.get("path") else {
                    return Err(fail("\"path\" is not an array of touches".into()));
                };
                let mut path = Vec::with_capacity(items.len());
                for item in items {
                    let Value::Object(t) = item else {
                        return Err(fail(
                            "a touch is an object {content, slot, candidate, channel}".into(),
                        ));
                    };
                    let key = TouchKey {
                        content: text(t, "content").map_err(fail)?,
                        slot: text(t, "slot").map_err(fail)?,
                        candidate: match t.get("candidate") {
                            None | Some(Value::Null) => None,
                            Some(Value::String(s)) if s.is_empty() => None,
                            Some(_) => Some(text(t, "candidate").map_err(fail)?),
                        },
                        channel: text(t, "channel").map_err(fail)?,
                    };
                    let next = u32::try_from(data.touches.len()).unwrap_or(u32::MAX);
                    let id = *touches.entry(key.clone()).or_insert(next);
                    if id == next {
                        data.touches.push(key);
                    }
                    if path.last() != Some(&id) {
                        path.push(id);
                    }
                }
                if path.is_empty() {
                    return Err(fail("a path needs at least one touch".into()));
                }
                let conversions = number(&map, "conversions", true).map_err(fail)?;
                let value = number(&map, "value", false).map_err(fail)?;
                let shares = |key: &str, total: f64| -> Result<Option<Vec<f64>>, AggregateError> {
                    match map.get(key) {
                        None | Some(Value::Null) => Ok(None),
                        Some(Value::Array(xs)) if xs.len() == path.len() => xs
                            .iter()
                            .map(|x| {
                                as_number(x)
                                    .ok_or_else(|| fail(format!("\"{key}\" holds a non-number")))
                            })
                            .collect::<Result<Vec<f64>, _>>()
                            .map(Some),
                        Some(_) => Err(fail(format!(
                            "\"{key}\" must hold one share per touch ({} after collapsing repeats)",
                            path.len()
                        ))),
                    }
                    .map(|s| {
                        s.or_else(|| {
                            (total > 0.0).then(|| vec![total / path.len() as f64; path.len()])
                        })
                    })
                };
                let td = shares("time_decay", conversions)?;
                let tdv = shares("time_decay_value", value)?;
                if conversions > 0.0 && !map.contains_key("time_decay") {
                    data.input.paths_without_ages += 1;
                }
                let stat = data.paths.get_mut(g).map(|p| {
                    p.map.entry(path.clone()).or_insert_with(|| PathStat {
                        time_decay: vec![0.0; path.len()],
                        time_decay_value: vec![0.0; path.len()],
                        ..PathStat::default()
                    })
                });
                if let Some(stat) = stat {
                    stat.conversions += conversions;
                    stat.nulls += number(&map, "nulls", false).map_err(fail)?;
                    stat.value += value;
                    for (x, y) in stat.time_decay.iter_mut().zip(td.unwrap_or_default()) {
                        *x += y;
                    }
                    for (x, y) in stat
                        .time_decay_value
                        .iter_mut()
                        .zip(tdv.unwrap_or_default())
                    {
                        *x += y;
                    }
                }
            } else if map.contains_key("goal") && map.contains_key("conversions") {
                let g = goal_of(&map)?;
                let n = number(&map, "conversions", true).map_err(fail)?;
                let v = number(&map, "value", false).map_err(fail)?;
                if let Some(total) = data.totals.get_mut(g) {
                    total.0 += n;
                    total.1 += v;
                }
                if let Some(given) = totals_given.get_mut(g) {
                    *given = true;
                }
            } else if map.contains_key("people") {
                data.people += number(&map, "people", true).map_err(fail)?;
            } else {
                let keys: Vec<&str> = map.keys().map(String::as_str).collect();
                return Err(fail(format!(
                    "not an aggregate row (columns: {}); expected people, experiment, path or goal total rows",
                    keys.join(", ")
                )));
            }
        }
    }
    // Without a goal's total, the slot that attributed the most stands in for it.
    for ((given, total), paths) in totals_given
        .iter()
        .zip(data.totals.iter_mut())
        .zip(&data.paths)
    {
        if *given {
            continue;
        }
        let mut per_slot: HashMap<&str, (f64, f64)> = HashMap::new();
        for (path, stat) in &paths.map {
            let slot = path
                .first()
                .and_then(|&t| data.touches.get(usize::try_from(t).ok()?))
                .map_or("", |k| k.slot.as_str());
            let e = per_slot.entry(slot).or_default();
            e.0 += stat.conversions;
            e.1 += stat.value;
        }
        *total = per_slot
            .into_values()
            .fold((0.0, 0.0), |best, x| if x.0 > best.0 { x } else { best });
    }
    Ok(data)
}

fn hint<'a>(name: &str, known: impl Iterator<Item = &'a str>) -> String {
    micromoment::hint(did_you_mean(name, known))
}

fn text(map: &Map<String, Value>, key: &str) -> Result<String, String> {
    match map.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("\"{key}\" is not a string: {other}")),
        None => Err(format!("missing column \"{key}\"")),
    }
}

fn as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite())
}

fn number(map: &Map<String, Value>, key: &str, required: bool) -> Result<f64, String> {
    match map.get(key) {
        None | Some(Value::Null) if !required => Ok(0.0),
        None => Err(format!("missing column \"{key}\"")),
        Some(v) => as_number(v).ok_or_else(|| format!("\"{key}\" is not a number: {v}")),
    }
}
