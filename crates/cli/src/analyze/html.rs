//! The results page: one self-contained HTML file (no network) a marketer reads
//! without help. Per experiment and goal, each arm's rate with its 95 % interval as a
//! chart, the verdict in words and a sample-ratio warning when the split is off; per
//! goal, the credit each touch gets under every attribution model, as bars. The style
//! and the small script (model tabs) are files beside this one.

use super::attribution::Model;
use super::results::{AttributionResult, ExperimentResult, Report, VariantResult};
use super::stats::SRM_THRESHOLD;

const CSS: &str = include_str!("results.css");
const JS: &str = include_str!("results.js");

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    micromoment::escape_html(text, &mut out);
    out
}

/// `+14.9 %`, `−20.0 %`.
fn signed_percent(x: f64) -> String {
    let p = x * 100.0;
    if p < 0.0 {
        format!("\u{2212}{:.1} %", -p)
    } else {
        format!("+{p:.1} %")
    }
}

fn percent(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// The chance to win as people say it: "98 %", never "100 %" or "0 %".
fn chance(x: f64) -> String {
    let p = (x * 100.0).round();
    if p >= 100.0 {
        "> 99 %".into()
    } else if p <= 0.0 {
        "< 1 %".into()
    } else {
        format!("{p:.0} %")
    }
}

fn money(x: f64) -> String {
    format!("{x:.2}")
}

/// One arm against the control, in words.
fn verdict(v: &VariantResult, control: &str) -> Option<String> {
    let lift = v.lift.flatten()?;
    let verb = if lift >= 0.0 { "beats" } else { "trails" };
    Some(match (v.ci.flatten(), v.chance_to_win.flatten()) {
        (Some([lo, hi]), Some(ctw)) => format!(
            "{} {verb} {}: {} [{}, {}], {} chance to win",
            v.variant,
            control,
            signed_percent(lift),
            signed_percent(lo),
            signed_percent(hi),
            chance(ctw)
        ),
        _ => format!(
            "{} {verb} {}: {} (no interval yet: {})",
            v.variant,
            control,
            signed_percent(lift),
            v.error.flatten().map_or("too little data", why)
        ),
    })
}

/// The same for the mean value.
fn value_verdict(v: &VariantResult, control: &str) -> Option<String> {
    let lift = v.value_lift.flatten()?;
    let verb = if lift >= 0.0 {
        "earns more than"
    } else {
        "earns less than"
    };
    Some(
        match (v.value_ci.flatten(), v.value_chance_to_win.flatten()) {
            (Some([lo, hi]), Some(ctw)) => format!(
                "{} {verb} {} per person: {} [{}, {}], {} chance to win",
                v.variant,
                control,
                signed_percent(lift),
                signed_percent(lo),
                signed_percent(hi),
                chance(ctw)
            ),
            _ => format!(
                "{} {verb} {} per person: {}",
                v.variant,
                control,
                signed_percent(lift)
            ),
        },
    )
}

fn why(code: &str) -> &'static str {
    match code {
        "ZERO_NEGATIVE_BASELINE_VARIATION" => "the control has no conversions yet",
        "NO_UNITS_IN_VARIATION" => "an arm has no people yet",
        _ => "an arm has no variation yet",
    }
}

fn srm_text(e: &ExperimentResult) -> String {
    let split: Vec<String> = e
        .variants
        .iter()
        .map(|v| format!("{} {} (expected {})", v.variant, v.people, percent(v.share)))
        .collect();
    format!(
        "Sample ratio mismatch: the people per arm are not the split the bundle configured \
         (p = {:.2e}, below {SRM_THRESHOLD}): {}. Some exposures are lost or misassigned; \
         do not trust this result until that is fixed.",
        e.srm_p,
        split.join(", ")
    )
}

/// Every verdict of the report, one line each, for the terminal.
pub fn summary(report: &Report) -> Vec<String> {
    let mut lines = Vec::new();
    for e in &report.experiments {
        let Some(control) = e.variants.first() else {
            continue;
        };
        let head = format!("{} · {}:", e.experiment, e.goal);
        if control.people == 0 {
            lines.push(format!("{head} no people yet"));
            continue;
        }
        for v in e.variants.iter().skip(1) {
            if let Some(text) = verdict(v, &control.variant) {
                lines.push(format!("{head} {text}"));
            }
            if let Some(text) = value_verdict(v, &control.variant) {
                lines.push(format!("{head} {text}"));
            }
        }
        if e.srm {
            lines.push(format!("{head} {}", srm_text(e)));
        }
    }
    lines
}

/// The rate of each arm with its 95 % interval (normal approximation), on one axis.
fn rate_chart(e: &ExperimentResult) -> String {
    let bounds: Vec<(f64, f64, f64)> = e
        .variants
        .iter()
        .map(|v| {
            let n = v.people as f64;
            let p = v.rate;
            let half = if n > 0.0 {
                1.96 * (p * (1.0 - p) / n).sqrt()
            } else {
                0.0
            };
            (p, (p - half).max(0.0), (p + half).min(1.0))
        })
        .collect();
    let top = bounds.iter().map(|b| b.2).fold(0.0, f64::max).max(0.01) * 1.1;
    let (width, label, row) = (640.0, 150.0, 34.0);
    let plot = width - label - 70.0;
    let height = row * e.variants.len() as f64 + 30.0;
    let x = |v: f64| label + v / top * plot;
    let mut svg = format!(
        "<svg class=rates viewBox='0 0 {width} {height}' role=img aria-label='conversion rate per arm with 95 % intervals'>"
    );
    for tick in 0..=4 {
        let v = top * f64::from(tick) / 4.0;
        svg.push_str(&format!(
            "<line class=grid x1={0:.1} x2={0:.1} y1=4 y2={1:.1} /><text class=tick x={0:.1} y={2:.1}>{3}</text>",
            x(v),
            height - 22.0,
            height - 6.0,
            percent(v)
        ));
    }
    for (i, (v, (p, lo, hi))) in e.variants.iter().zip(&bounds).enumerate() {
        let y = 20.0 + row * i as f64;
        let class = if i == 0 {
            "control"
        } else if v.variant == "holdout" {
            "holdout"
        } else {
            "variant"
        };
        svg.push_str(&format!(
            "<g class='arm {class}' data-variant='{name}'><text class=name x={lx:.1} y={ty:.1}>{name}</text>\
             <line class=ci x1={x1:.1} x2={x2:.1} y1={y:.1} y2={y:.1} />\
             <line class=cap x1={x1:.1} x2={x1:.1} y1={c1:.1} y2={c2:.1} /><line class=cap x1={x2:.1} x2={x2:.1} y1={c1:.1} y2={c2:.1} />\
             <circle cx={cx:.1} cy={y:.1} r=5 /><text class=value x={vx:.1} y={ty:.1}>{rate}</text>\
             <title>{name}: {rate} of {people} people, 95 % interval {lo_t} to {hi_t}</title></g>",
            name = escape(&v.variant),
            lx = label - 10.0,
            ty = y + 4.0,
            x1 = x(*lo),
            x2 = x(*hi),
            c1 = y - 6.0,
            c2 = y + 6.0,
            cx = x(*p),
            vx = width - 60.0,
            rate = percent(*p),
            people = v.people,
            lo_t = percent(*lo),
            hi_t = percent(*hi),
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn experiment_section(e: &ExperimentResult) -> String {
    let Some(control) = e.variants.first() else {
        return String::new();
    };
    let mut html = format!(
        "<section class=experiment data-experiment='{}' data-goal='{}'><h3>{} <span class=dim>in {} · goal</span> {}</h3>",
        escape(&e.experiment),
        escape(&e.goal),
        escape(&e.experiment),
        escape(&e.slot),
        escape(&e.goal)
    );
    if e.srm {
        html.push_str(&format!(
            "<p class=srm role=alert>⚠ {}</p>",
            escape(&srm_text(e))
        ));
    }
    let verdicts: Vec<String> = e
        .variants
        .iter()
        .skip(1)
        .flat_map(|v| {
            [
                verdict(v, &control.variant),
                value_verdict(v, &control.variant),
            ]
        })
        .flatten()
        .collect();
    if control.people == 0 {
        html.push_str("<p class=verdict>No people have seen this experiment yet.</p>");
    }
    for text in verdicts {
        html.push_str(&format!("<p class=verdict>{}</p>", escape(&text)));
    }
    html.push_str(&rate_chart(e));
    html.push_str(
        "<table class=arms><thead><tr><th>arm</th><th>people</th><th>converted</th><th>rate</th>\
         <th>mean value</th><th>lift</th><th>95 % interval</th><th>p-value</th><th>chance to win</th></tr></thead><tbody>",
    );
    for v in &e.variants {
        let lift = v
            .lift
            .flatten()
            .map(signed_percent)
            .unwrap_or_else(|| "control".into());
        let ci =
            v.ci.flatten()
                .map(|[lo, hi]| format!("{} to {}", signed_percent(lo), signed_percent(hi)))
                .unwrap_or_default();
        let p = v
            .p_value
            .flatten()
            .map(|p| format!("{p:.4}"))
            .unwrap_or_default();
        let ctw = v.chance_to_win.flatten().map(chance).unwrap_or_default();
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&v.variant),
            v.people,
            v.conversions,
            percent(v.rate),
            if e.value_goal {
                money(v.mean_value)
            } else {
                "—".to_owned()
            },
            lift,
            ci,
            p,
            ctw
        ));
    }
    html.push_str("</tbody></table></section>");
    html
}

fn touch_label(row: &super::results::AttributionRow) -> String {
    format!(
        "{} · {} · {}",
        row.content,
        row.candidate.as_deref().unwrap_or("default"),
        row.channel
    )
}

fn model_title(name: &str) -> &str {
    Model::ALL
        .iter()
        .find(|m| m.name() == name)
        .map_or(name, |m| m.title())
}

/// One goal: a tab per slot, and in each a tab per model with its bars.
fn attribution_section(goal: &str, entries: &[&AttributionResult]) -> String {
    let mut slots: Vec<&str> = entries.iter().map(|a| a.slot.as_str()).collect();
    slots.dedup();
    let with_value = entries.iter().any(|a| a.value > 0.0);
    let mut html = format!(
        "<section class=attribution data-goal='{0}'><h3>What earned “{0}”</h3>\
         <p class=dim>Credit for each conversion, per slot: what the slot showed the person within the window before it. \
         Pick a slot, then a model.</p><div class='tabs slots' role=tablist>",
        escape(goal)
    );
    for (i, slot) in slots.iter().enumerate() {
        html.push_str(&format!(
            "<button role=tab data-slot='{0}' aria-selected={1}>{0}</button>",
            escape(slot),
            i == 0
        ));
    }
    html.push_str("</div>");
    for slot in &slots {
        let models: Vec<&&AttributionResult> = entries.iter().filter(|a| a.slot == *slot).collect();
        let top = models
            .iter()
            .flat_map(|m| m.rows.iter().map(|r| r.conversions))
            .fold(0.0, f64::max)
            .max(1e-9);
        let first = models.first();
        html.push_str(&format!(
            "<div class=slot data-slot='{}'><p class=dim>{} conversions with something shown in {} before them, {} without.</p><div class='tabs models' role=tablist>",
            escape(slot),
            first.map_or(0.0, |m| m.conversions).round(),
            escape(slot),
            first.map_or(0.0, |m| m.unattributed).round(),
        ));
        for (i, m) in models.iter().enumerate() {
            html.push_str(&format!(
                "<button role=tab data-model='{}' aria-selected={}>{}</button>",
                m.model,
                i == 0,
                escape(model_title(m.model))
            ));
        }
        html.push_str("</div>");
        for m in &models {
            html.push_str(&format!(
                "<div class=model data-model='{}'><h4>{} · {}</h4><ol class=bars>",
                m.model,
                escape(slot),
                escape(model_title(m.model))
            ));
            for row in m.rows.iter().take(10) {
                let value = if with_value {
                    format!(" · {} value", money(row.value))
                } else {
                    String::new()
                };
                html.push_str(&format!(
                    "<li><span class=label>{}</span><span class=bar style='width:{:.1}%'></span><span class=num>{:.1} conv{value}</span></li>",
                    escape(&touch_label(row)),
                    row.conversions / top * 100.0,
                    row.conversions,
                ));
            }
            if m.rows.len() > 10 {
                html.push_str(&format!(
                    "<li class=dim>and {} more</li>",
                    m.rows.len() - 10
                ));
            }
            html.push_str("</ol></div>");
        }
        html.push_str("</div>");
    }
    html.push_str("</section>");
    html
}

/// The page.
pub fn html(report: &Report, bundle: &str) -> String {
    let mut body = String::new();
    body.push_str(&format!(
        "<header><h1>Did it work?</h1><p>Bundle <b>{}</b> · {} people exposed · conversions counted within {} of a person's first exposure</p></header>",
        escape(bundle),
        report.people,
        escape(&report.window)
    ));
    body.push_str("<h2>Experiments</h2>");
    if report.experiments.is_empty() {
        body.push_str("<p>This bundle has no experiment (or no goal to judge one by).</p>");
    }
    for e in &report.experiments {
        body.push_str(&experiment_section(e));
    }
    body.push_str("<h2>Attribution</h2>");
    let mut goals: Vec<&str> = report.attribution.iter().map(|a| a.goal.as_str()).collect();
    goals.dedup();
    if goals.is_empty() {
        body.push_str("<p>No conversion followed an exposure yet.</p>");
    }
    for goal in goals {
        let entries: Vec<&AttributionResult> = report
            .attribution
            .iter()
            .filter(|a| a.goal == goal)
            .collect();
        body.push_str(&attribution_section(goal, &entries));
    }
    body.push_str(
        "<footer><p>Rates: people who converted within the window after their first exposure, over the arm's people; \
         intervals and p-values as GrowthBook's frequentist engine computes them (Welch's t-test, delta method), \
         chance to win as its Bayesian engine does. Sample ratio: chi-square against the bundle's split.</p></footer>",
    );
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content='width=device-width,initial-scale=1'>\
         <title>Results · {}</title><style>{CSS}</style></head><body>{body}<script>{JS}</script></body></html>\n",
        escape(bundle)
    )
}
