//! What a request leaves for analytics (DESIGN §12): one record per exposure and per
//! conversion, in the layout `micromoment analyze` reads (`docs/analytics.md`): the JSON
//! log line ([`Record::line`]) and the Analytics Engine data point
//! ([`Record::data_point`]) are two writings of one [`Record`]. `line` is the one writer
//! of that line: the Worker writes its records with it, and so does the simulator of
//! `micromoment analyze-generate`, so what `analyze` is tested on is what it reads.
//!
//! A conversion is an event of the request that a bundle goal names, with the event's
//! value when it has one. The person is the profile once the device is linked, else the
//! visitor. Crawlers, prefetches and visitors without consent leave nothing: the
//! decision then has no exposures, and no conversion is recorded either.
//!
//! Pure: the Worker writes what this returns.

use serde::Serialize;

use crate::bundle::Bundle;
use crate::context::{Context, DeviceType};
use crate::decide::Decision;
use crate::ids::hex128_string;
use crate::time::UnixSeconds;

/// One event of a request, as the client sent it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Event<'a> {
    /// The event name.
    pub name: &'a str,
    /// Its value (revenue), if any.
    pub value: Option<f64>,
}

/// The largest conversion value, either sign: an API refuses a value past it (a typo or
/// a hostile client must not swamp a mean); one that gets this far counts as 0.
pub const MAX_VALUE: f64 = 1e9;

/// Whether `value` may be a conversion's value: finite, within [`MAX_VALUE`].
pub fn value_ok(value: f64) -> bool {
    value.is_finite() && value.abs() <= MAX_VALUE
}

/// One analytics record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record<'b> {
    /// `exposure` or `conversion`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The device's visitor id, 32 hex digits.
    pub visitor: String,
    /// The person's profile id once linked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// Unix seconds.
    pub at: UnixSeconds,
    /// The bundle id.
    pub bundle: &'b str,
    /// The bundle version.
    pub bundle_version: u64,
    /// `web`, `app`, `email`, `store` or `push`.
    pub channel: &'static str,
    /// The device type, if known.
    pub device: Option<&'static str>,
    /// Exposures: the slot, content, candidate, experiment, variant, stage and reason.
    #[serde(flatten)]
    pub what: What<'b>,
}

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum What<'b> {
    /// A content shown in a slot.
    Exposure {
        /// The slot.
        slot: &'b str,
        /// The content shown.
        content: &'b str,
        /// The winning candidate, if any.
        candidate: Option<&'b str>,
        /// The experiment, if one decided.
        experiment: Option<&'b str>,
        /// The variant, if an experiment decided.
        variant: Option<&'b str>,
        /// The visitor's stage.
        stage: &'b str,
        /// Why it was shown (`default`, `rule`, `experiment`, …).
        reason: &'static str,
    },
    /// A goal reached.
    Conversion {
        /// The goal's name.
        goal: &'b str,
        /// The event's value, 0 when it had none.
        value: f64,
    },
}

/// The records of one request: its decision's exposures, then a conversion for each
/// `event` a goal of `bundle` names (in event order, then goal order).
pub fn records<'b>(
    bundle: &'b Bundle,
    decision: &Decision<'b>,
    ctx: &Context,
    events: &[Event<'_>],
) -> Vec<Record<'b>> {
    // Crawlers, prefetches and no consent: nobody's exposure, nobody's conversion.
    if !decision.persist || ctx.device.kind == Some(DeviceType::Bot) || ctx.prefetch {
        return Vec::new();
    }
    let state = &decision.state;
    let head = |kind: &'static str, what: What<'b>| Record {
        kind,
        visitor: hex128_string(&state.visitor),
        profile: state.link.map(|l| hex128_string(&l.profile)),
        at: state.issued_at,
        bundle: bundle.id(),
        bundle_version: bundle.version(),
        channel: ctx.channel.as_str(),
        device: ctx.device.kind.map(DeviceType::as_str),
        what,
    };
    let mut out: Vec<Record<'b>> = decision
        .exposures
        .iter()
        .map(|e| {
            head(
                "exposure",
                What::Exposure {
                    slot: e.slot,
                    content: e.content,
                    candidate: e.candidate,
                    experiment: e.experiment,
                    variant: e.variant,
                    stage: e.stage,
                    reason: e.reason.as_str(),
                },
            )
        })
        .collect();
    for event in events {
        for goal in bundle.goals().filter(|g| g.event == event.name) {
            let value = event.value.filter(|v| value_ok(*v)).unwrap_or(0.0);
            out.push(head(
                "conversion",
                What::Conversion {
                    goal: goal.name,
                    value,
                },
            ));
        }
    }
    out
}

/// An Analytics Engine data point (docs/analytics.md).
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    /// `index1`: the person (profile when linked, else visitor).
    pub index: String,
    /// `blob1`…`blob14`.
    pub blobs: [String; 14],
    /// `double1` (at), `double2` (value).
    pub doubles: [f64; 2],
}

impl Record<'_> {
    /// The record as the JSON log line `analyze` reads (docs/analytics.md), without its
    /// newline: every field by name, `profile` only once linked.
    pub fn line(&self) -> serde_json::Result<String> {
        serde_json::to_string(self)
    }

    /// The record as an Analytics Engine data point, in docs/analytics.md's layout.
    pub fn data_point(&self, bundle_hash: &str) -> DataPoint {
        let text = |s: Option<&str>| s.unwrap_or("").to_owned();
        let (slot, content, candidate, experiment, variant, stage, goal, value) = match &self.what {
            What::Exposure {
                slot,
                content,
                candidate,
                experiment,
                variant,
                stage,
                ..
            } => (
                Some(*slot),
                Some(*content),
                *candidate,
                *experiment,
                *variant,
                Some(*stage),
                None,
                0.0,
            ),
            What::Conversion { goal, value } => {
                (None, None, None, None, None, None, Some(*goal), *value)
            }
        };
        let person = self.profile.clone().unwrap_or_else(|| self.visitor.clone());
        #[allow(clippy::cast_precision_loss)]
        let at = self.at as f64;
        DataPoint {
            index: person,
            blobs: [
                self.kind.to_owned(),
                text(slot),
                text(content),
                text(candidate),
                text(experiment),
                text(variant),
                text(stage),
                self.bundle.to_owned(),
                bundle_hash.to_owned(),
                self.channel.to_owned(),
                text(self.device),
                text(goal),
                self.visitor.clone(),
                text(self.profile.as_deref()),
            ],
            doubles: [at, value],
        }
    }
}
