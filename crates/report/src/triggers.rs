//! Which moments fire which triggers (docs/triggers.md), found by running the engine: every
//! audience of the grid (which holds the events and values the transitions, intent
//! signals and trigger rules mention, and the events the triggers listen to) makes up
//! to [`REQUESTS`] requests in a row with the same context, so a rule that turns true
//! as an intent builds up over requests is found too.

use serde::Serialize;

use super::grid::{Audience, Grid};
use micromoment::bundle::{Bundle, TriggerOn};
use micromoment::session::{self, Entropy, Slots, Visitor};

/// Requests in a row each audience makes.
pub const REQUESTS: usize = 3;
/// Moments listed per trigger (all are counted).
pub const MAX_LISTED: usize = 12;

/// A moment that fires a trigger: the audience, the request of the row that fired it,
/// and the stage it leaves the visitor in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moment {
    /// The stage before the request.
    pub stage: String,
    /// `device/channel`.
    pub column: String,
    /// The audience's other signals: `event = test_drive_booked`.
    pub signals: Vec<String>,
    /// Which request of the row fired it (1 is the first).
    pub request: usize,
    /// The stage after the request.
    pub to: String,
}

/// One trigger and the moments that fire it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TriggerCoverage {
    /// The trigger's id.
    pub trigger: String,
    /// What it fires on: `stage decision`, `event basket_add`, `rule`.
    pub on: String,
    /// Its destinations.
    pub send: Vec<String>,
    /// Its delay (`1h`) and the event that cancels it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unless: Option<String>,
    /// Its cap: `1 per 30d`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<String>,
    /// How many audiences fire it.
    pub audiences: usize,
    /// The first [`MAX_LISTED`] of them.
    pub moments: Vec<Moment>,
}

fn delay_text(secs: i64) -> String {
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

fn signals(grid: &Grid<'_>, audience: &Audience) -> Vec<String> {
    grid.dimensions()
        .iter()
        .zip(&audience.picks)
        .filter_map(|(d, &pick)| {
            let value = d.values.get(pick).filter(|v| !v.is_null())?;
            Some(format!("{} = {}", d.name, super::html::value_label(value)))
        })
        .collect()
}

/// The coverage of every trigger of the bundle, in bundle order.
pub(super) fn coverage(bundle: &Bundle, grid: &Grid<'_>) -> Vec<TriggerCoverage> {
    let mut out: Vec<TriggerCoverage> = bundle
        .triggers
        .iter()
        .map(|t| TriggerCoverage {
            trigger: t.name.clone(),
            on: match &t.on {
                TriggerOn::Stage(s) => format!(
                    "stage {}",
                    bundle
                        .stages
                        .get(usize::from(*s))
                        .map_or("?", |s| s.name.as_str())
                ),
                TriggerOn::Event(e) => format!("event {e}"),
                TriggerOn::When(_) => "rule".to_owned(),
                TriggerOn::Feed { feed, .. } => format!(
                    "a watched row of feed {} changes",
                    bundle
                        .feeds
                        .get(usize::from(*feed))
                        .map_or("?", |f| f.name.as_str())
                ),
            },
            send: t
                .send
                .iter()
                .filter_map(|&d| bundle.destinations.get(usize::from(d)))
                .map(|d| d.name.clone())
                .collect(),
            delay: t.delay.map(delay_text),
            unless: t.unless.clone(),
            cap: t.cap.map(|c| format!("{} per {}", c.max, c.per)),
            audiences: 0,
            moments: Vec::new(),
        })
        .collect();
    if out.is_empty() {
        return out;
    }
    for audience in grid.audiences() {
        let context = grid.context(&audience);
        let mut clock = grid.clock(&audience);
        let mut state = grid.state(&audience);
        let mut fired = vec![false; out.len()];
        for request in 1..=REQUESTS {
            let before = state.stage;
            let r = session::Request {
                slots: Slots::Names(&[]),
                ..session::Request::new(
                    Visitor::State(&state),
                    &context,
                    clock,
                    Entropy::Fixed(state.visitor),
                )
            };
            let Ok(outcome) = session::decide(bundle, None, &r) else {
                break;
            };
            let decision = outcome.decision;
            for f in &decision.triggers {
                let Some(i) = bundle.triggers.iter().position(|t| t.name == f.trigger) else {
                    continue;
                };
                let (Some(entry), Some(seen)) = (out.get_mut(i), fired.get_mut(i)) else {
                    continue;
                };
                if *seen {
                    continue;
                }
                *seen = true;
                entry.audiences += 1;
                if entry.moments.len() < MAX_LISTED {
                    let name = |id: Option<u32>| {
                        id.and_then(|id| bundle.stages.iter().find(|s| s.id == id))
                            .or_else(|| bundle.stages.first())
                            .map_or(String::new(), |s| s.name.clone())
                    };
                    entry.moments.push(Moment {
                        stage: name(before),
                        column: format!(
                            "{}/{}",
                            audience.device.as_str(),
                            audience.channel.as_str()
                        ),
                        signals: signals(grid, &audience),
                        request,
                        to: f.stage.to_owned(),
                    });
                }
            }
            state = decision.state;
            clock += 60;
        }
    }
    out
}
