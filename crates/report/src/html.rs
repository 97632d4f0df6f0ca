//! The report's self-contained HTML page: bundle facts, findings, the matrix of who
//! sees what (an experiment's cell shows its split), and the offline preview. No
//! network, no external assets: the style and the small preview script are files
//! beside this one, and every text from the bundle is escaped.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{json, Value as Json};

use super::findings::{percent, Cell, Split};
use super::Report;
use micromoment::context::DeviceType;

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    micromoment::escape_html(text, &mut out);
    out
}

/// A stable, readable colour per content.
fn colour(name: &str) -> String {
    let hue = micromoment::ids::fnv1a32(name.as_bytes()) % 360;
    format!("hsl({hue} 70% 86%)")
}

pub(super) fn value_label(value: &Json) -> String {
    match value {
        Json::Null => "unknown".into(),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The self-contained HTML page of a report: no network, no external assets.
pub fn html(report: &Report<'_>) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width'>\
<title>micromoment report: {id} v{version}</title><style>{CSS}</style></head><body>\
<header><h1>{id} <small>v{version}</small></h1><p>Coverage report: {contexts} contexts decided by the engine · hash {hash}</p></header><main>",
        id = escape(&report.id),
        version = report.version,
        contexts = report.contexts,
        hash = escape(&report.hash),
    );
    facts(&mut out, report);
    findings(&mut out, report);
    triggers(&mut out, report);
    matrix(&mut out, report);
    preview(&mut out, report);
    let _ = write!(
        out,
        "</main><script type=application/json id=mm-data>{}</script><script>{JS}</script></body></html>",
        data(report)
    );
    out
}

/// Counts, size against the budget, experiments and caps.
fn facts(out: &mut String, report: &Report<'_>) {
    let c = &report.counts;
    out.push_str("<section id=facts><h2>Bundle</h2><div class=facts>");
    for (label, value) in [
        ("stages", c.stages),
        ("slots", c.slots),
        ("contents", c.contents),
        ("candidates", c.candidates),
        ("experiments", c.experiments),
        ("campaigns", c.campaigns),
        ("transitions", c.transitions),
        ("intents", c.intents),
    ] {
        let _ = write!(out, "<div class=fact><b>{value}</b>{label}</div>");
    }
    let used = report.bytes as f64 * 100.0 / report.budget_bytes as f64;
    let _ = write!(
        out,
        "<div class=fact><b>{} KiB</b>of {} KiB budget ({used:.1} %)<div class=bar><i style='width:{:.1}%'></i></div></div></div>",
        report.bytes.div_ceil(1024),
        report.budget_bytes / 1024,
        used.min(100.0)
    );
    if !report.experiments.is_empty() {
        out.push_str("<h3>Experiments</h3><table><tr><th>slot</th><th>experiment</th><th>variants (weight)</th><th>holdout</th></tr>");
        for e in &report.experiments {
            let variants: Vec<String> = e
                .variants
                .iter()
                .map(|(v, w)| format!("{} ({:.0} %)", escape(v), w * 100.0))
                .collect();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1} %</td></tr>",
                escape(&e.slot),
                escape(&e.experiment),
                variants.join(", "),
                e.holdout * 100.0
            );
        }
        out.push_str("</table>");
    }
    if !report.caps.is_empty() {
        out.push_str("<h3>Caps</h3><ul>");
        for (who, cap) in &report.caps {
            let _ = write!(out, "<li>{}: {}</li>", escape(who), escape(cap));
        }
        out.push_str("</ul>");
    }
    if !report.schedules.is_empty() {
        out.push_str("<h3>Schedules</h3><ul>");
        for (who, window) in &report.schedules {
            let _ = write!(out, "<li>{}: {}</li>", escape(who), escape(window));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

/// A list of findings under its heading, when there are any.
fn list<T>(out: &mut String, heading: &str, id: &str, items: &[T], item: impl Fn(&T) -> String) {
    if items.is_empty() {
        return;
    }
    let _ = write!(out, "{heading}<ul id={id}>");
    for i in items {
        out.push_str(&item(i));
    }
    out.push_str("</ul>");
}

/// Per trigger: what it fires on, where it sends, and the moments that fire it.
fn triggers(out: &mut String, report: &Report<'_>) {
    if report.triggers.is_empty() {
        return;
    }
    out.push_str("<section id=triggers><h2>Triggers</h2><p>Which moments start a conversation on another channel: every audience of the grid (stage, device and channel, with the events and values the transitions, intent signals and trigger rules mention) makes three requests in a row; a moment is the request that fires the trigger.</p><table><thead><tr><th>Trigger</th><th>On</th><th>Sends to</th><th>Waits</th><th>Cap</th><th>Moments</th></tr></thead><tbody>");
    for t in &report.triggers {
        let waits = match (&t.delay, &t.unless) {
            (Some(d), Some(u)) => format!("{d}, unless {u}"),
            (Some(d), None) => d.clone(),
            _ => "no".into(),
        };
        let _ = write!(
            out,
            "<tr data-trigger='{id}'><td><b>{id}</b></td><td>{on}</td><td>{send}</td><td>{waits}</td><td>{cap}</td><td>",
            id = escape(&t.trigger),
            on = escape(&t.on),
            send = escape(&t.send.join(", ")),
            waits = escape(&waits),
            cap = escape(t.cap.as_deref().unwrap_or("none")),
        );
        if t.audiences == 0 {
            out.push_str("<span class=bad>no moment of the grid fires it</span>");
        } else {
            let _ = write!(out, "{} audiences<ul>", t.audiences);
            for m in &t.moments {
                let signals = if m.signals.is_empty() {
                    String::new()
                } else {
                    format!(", {}", m.signals.join(", "))
                };
                let nth = match m.request {
                    1 => String::new(),
                    n => format!(" (request {n} in a row)"),
                };
                let _ = write!(
                    out,
                    "<li>{stage} → {to} · {column}{signals}{nth}</li>",
                    stage = escape(&m.stage),
                    to = escape(&m.to),
                    column = escape(&m.column),
                    signals = escape(&signals),
                    nth = escape(&nth),
                );
            }
            if t.audiences > t.moments.len() {
                let _ = write!(out, "<li>… and {} more</li>", t.audiences - t.moments.len());
            }
            out.push_str("</ul>");
        }
        out.push_str("</td></tr>");
    }
    out.push_str("</tbody></table></section>");
}

/// Unreachable candidates, default-only slots, contents never shown, and the grid.
fn findings(out: &mut String, report: &Report<'_>) {
    out.push_str("<section id=findings><h2>Findings</h2>");
    if !report.has_findings() && report.never_shown.is_empty() {
        out.push_str("<p class=ok>Every candidate wins somewhere, every slot shows more than its default, every content is shown.</p>");
    }
    let heading = format!(
        "<h3 class=bad>{} candidates no context selects</h3>",
        report.unreachable.len()
    );
    list(out, &heading, "unreachable", &report.unreachable, |u| {
        format!(
            "<li data-candidate='{c}'><b>{c}</b> in {s}: {w}</li>",
            c = escape(&u.candidate),
            s = escape(&u.slot),
            w = escape(&u.why.to_string())
        )
    });
    let named = |s: &String| format!("<li>{}</li>", escape(s));
    list(
        out,
        "<h3 class=warn>Slots that only show their default</h3>",
        "default-only",
        &report.default_only,
        named,
    );
    list(
        out,
        "<h3 class=warn>Contents never shown</h3>",
        "never-shown",
        &report.never_shown,
        named,
    );
    let dims: Vec<String> = report
        .dimensions
        .iter()
        .map(|d| {
            let values: Vec<String> = d.values.iter().skip(1).map(value_label).collect();
            let dropped = if d.dropped > 0 {
                format!(" (+{} left out)", d.dropped)
            } else {
                String::new()
            };
            format!(
                "<b>{}</b>: {}{dropped}",
                escape(&d.name),
                escape(&values.join(", "))
            )
        })
        .collect();
    let _ = write!(
        out,
        "<h3>Grid</h3><p>Every stage × device × channel, crossed with the values the rules mention: {}.</p></section>",
        if dims.is_empty() { "none".into() } else { dims.join("; ") }
    );
}

/// An experiment cell's arms: `dealer-offer 45 % · test-drive 45 % · holdout 10 %
/// (brand-film)`, with what an arm shows when it is not its variant.
fn arms(out: &mut String, split: &Split) {
    let _ = write!(out, "<b>{}</b>: ", escape(&split.experiment));
    for (i, arm) in split.arms.iter().enumerate() {
        if i > 0 {
            out.push_str(" · ");
        }
        let shows = if arm.content == arm.variant {
            String::new()
        } else {
            format!(" ({})", escape(&arm.content))
        };
        let _ = write!(
            out,
            "<span class=arm data-variant='{v}' data-share='{share}' data-content='{c}'>{v} {p}{shows}</span>",
            v = escape(&arm.variant),
            share = arm.share,
            c = escape(&arm.content),
            p = percent(arm.share),
        );
    }
}

/// A bar of an experiment cell's arms, each as wide as its share, in its content's
/// colour.
fn shares(split: &Split) -> String {
    let mut stops = Vec::new();
    let mut from = 0.0;
    for arm in &split.arms {
        let to = from + arm.share * 100.0;
        stops.push(format!("{} {from:.1}% {to:.1}%", colour(&arm.content)));
        from = to;
    }
    format!(
        "<i class=shares style='background:linear-gradient(90deg,{})'></i>",
        stops.join(",")
    )
}

/// One matrix cell, the candidate and reason on hover.
fn cell(out: &mut String, cell: &Cell, stage: &str, column: &str) {
    let reason = cell.reason.as_str();
    let title = match (&cell.split, &cell.candidate) {
        (Some(split), _) => {
            let arms: Vec<String> = split
                .arms
                .iter()
                .map(|a| {
                    format!(
                        "{} {}: {} ({})",
                        a.variant,
                        percent(a.share),
                        a.content,
                        a.reason.as_str()
                    )
                })
                .collect();
            format!("experiment {}: {}", split.experiment, arms.join("; "))
        }
        (None, Some(c)) => format!("candidate {c} ({reason})"),
        (None, None) => format!("slot default ({reason})"),
    };
    let class = if cell.split.is_some() {
        "cell split"
    } else {
        "cell"
    };
    let experiment = cell.split.as_ref().map_or(String::new(), |s| {
        format!(" data-experiment='{}'", escape(&s.experiment))
    });
    let _ = write!(
        out,
        "<td class='{class}' data-stage='{st}' data-column='{col}'{experiment} style='background:{bg}' title='{title}'>",
        st = escape(stage),
        col = escape(column),
        bg = match cell.split {
            Some(_) => "#fff".to_owned(),
            None => colour(&cell.content),
        },
        title = escape(&title),
    );
    match &cell.split {
        Some(split) => {
            arms(out, split);
            out.push_str(&shares(split));
        }
        None => out.push_str(&escape(&cell.content)),
    }
    let _ = write!(out, "<small>{reason}</small></td>");
}

/// Per slot, the stage × device/channel matrix, and the legend of contents.
fn matrix(out: &mut String, report: &Report<'_>) {
    out.push_str("<section id=matrix><h2>Who sees what</h2><p>Per slot, for a visitor with no other signal: the content each stage sees on each device and channel. Hover a cell for the candidate and the reason. Where an experiment decides, the cell shows its split: each variant and the holdout with its share of that audience (the holdout sees the slot's default).</p>");
    let mut legend: BTreeSet<&str> = BTreeSet::new();
    for m in &report.matrix {
        let _ = write!(
            out,
            "<h3>{slot}</h3><div class=scroll><table class=matrix data-slot='{slot}'><tr><th>stage</th>",
            slot = escape(&m.slot),
        );
        for col in &report.columns {
            let _ = write!(out, "<th>{}</th>", escape(col));
        }
        out.push_str("</tr>");
        for (stage, cells) in &m.rows {
            let _ = write!(out, "<tr><th>{}</th>", escape(stage));
            for (c, col) in cells.iter().zip(&report.columns) {
                legend.insert(&c.content);
                legend.extend(
                    c.split
                        .iter()
                        .flat_map(|s| s.arms.iter().map(|a| a.content.as_str())),
                );
                cell(out, c, stage, col);
            }
            out.push_str("</tr>");
        }
        out.push_str("</table></div>");
    }
    out.push_str("<p class=legend>");
    for content in legend {
        let _ = write!(
            out,
            "<span style='background:{}'>{}</span>",
            colour(content),
            escape(content)
        );
    }
    out.push_str("</p></section>");
}

fn select(out: &mut String, name: &str, label: &str, options: &[String]) {
    let _ = write!(out, "<label>{}<select name={name}>", escape(label));
    for (i, o) in options.iter().enumerate() {
        let _ = write!(out, "<option value={i}>{}</option>", escape(o));
    }
    out.push_str("</select></label>");
}

/// The preview form and one frame per slot.
fn preview(out: &mut String, report: &Report<'_>) {
    out.push_str("<section id=preview><h2>Preview</h2><p>Pick an audience: every slot shows what the page would get (placeholders filled with sample values).</p>");
    if !report.preview.arms.is_empty() {
        out.push_str("<p class=note>Experiments: pick the arm a visitor is assigned to; the first arm of each is shown until you pick another.</p>");
    }
    out.push_str("<form>");
    select(out, "stage", "stage", &report.stages);
    let devices: Vec<String> = DeviceType::ALL
        .iter()
        .map(|d| d.as_str().to_owned())
        .collect();
    select(out, "device", "device", &devices);
    select(
        out,
        "channel",
        "channel",
        &["web".to_owned(), "app".to_owned()],
    );
    for (i, d) in report.dimensions.iter().enumerate() {
        let values: Vec<String> = d.values.iter().map(value_label).collect();
        select(out, &format!("dim{i}"), &d.name, &values);
    }
    if !report.preview.arms.is_empty() {
        let labels: Vec<String> = report
            .preview
            .arms
            .iter()
            .map(|a| a.label.clone())
            .collect();
        select(out, "arm", "experiment arm", &labels);
    }
    out.push_str("</form>");
    for (s, m) in report.matrix.iter().enumerate() {
        let _ = write!(
            out,
            "<div class=slot id=slot-{s}><h4>{slot}</h4><iframe sandbox title='{slot}'></iframe></div>",
            slot = escape(&m.slot),
        );
    }
    out.push_str("</section>");
}

/// The preview's data, safe inside a `<script>`.
fn data(report: &Report<'_>) -> String {
    let preview = &report.preview;
    let bytes: Vec<u8> = if preview.contents.len() > 255 {
        preview.cells.iter().flat_map(|c| c.to_le_bytes()).collect()
    } else {
        preview
            .cells
            .iter()
            .map(|&c| u8::try_from(c).unwrap_or(0))
            .collect()
    };
    let arms: Vec<Vec<u32>> = preview
        .arms
        .iter()
        .map(|arm| {
            arm.changed
                .iter()
                .flat_map(|&(at, content)| [at, u32::from(content)])
                .collect()
        })
        .collect();
    let data = json!({
        "slots": report.matrix.iter().map(|m| m.slot.clone()).collect::<Vec<_>>(),
        "contents": preview.contents,
        "renditions": preview.renditions,
        "columns": report.columns.len(),
        "dims": report.dimensions.iter().map(|d| json!({"name": d.name, "values": d.values})).collect::<Vec<_>>(),
        "cells": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes),
        "arms": arms,
    });
    // `</` cannot end the script early once escaped.
    data.to_string().replace("</", "<\\/")
}
