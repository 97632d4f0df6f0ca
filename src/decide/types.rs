//! What a decision gives: the answer per slot, the exposures, the new state.

use std::borrow::Cow;

use serde::Serialize;

use super::trace::Trace;
use crate::ids;
use crate::time::UnixSeconds;
use crate::token::State;

/// Why a slot shows what it shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reason {
    /// A candidate won.
    Candidate,
    /// An experiment variant won.
    Experiment,
    /// The visitor is in the experiment's holdout: the default is shown.
    Holdout,
    /// No candidate was eligible: the default is shown.
    Default,
    /// No personalization consent: the default is shown.
    Consent,
}

impl Reason {
    /// The word a trace and the API use.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Candidate => "candidate",
            Reason::Experiment => "experiment",
            Reason::Holdout => "holdout",
            Reason::Default => "default",
            Reason::Consent => "consent",
        }
    }
}

/// The answer for one slot.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotDecision<'b> {
    /// The slot.
    pub slot: &'b str,
    /// The content shown.
    pub content: &'b str,
    /// The candidate that won, or null for a default.
    pub candidate: Option<&'b str>,
    /// The experiment (its candidate id), when one decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<&'b str>,
    /// The experiment variant (its content id, or `holdout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<&'b str>,
    /// Why.
    pub reason: Reason,
    /// The HTML rendition, for the web channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub html: Option<Cow<'b, str>>,
    /// The JSON rendition, for the app channel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<serde_json::Value>,
    /// The plain-text rendition.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<Cow<'b, str>>,
}

/// The record that a visitor was shown a content, for attribution.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Exposure<'b> {
    /// The visitor id, written as 32 hex digits.
    #[serde(serialize_with = "serialize_visitor")]
    pub visitor: [u8; 16],
    /// The bundle id.
    pub bundle: &'b str,
    /// The bundle version.
    pub bundle_version: u64,
    /// The slot.
    pub slot: &'b str,
    /// The content shown.
    pub content: &'b str,
    /// The winning candidate, if any.
    pub candidate: Option<&'b str>,
    /// The experiment, if one decided.
    pub experiment: Option<&'b str>,
    /// The variant, if an experiment decided.
    pub variant: Option<&'b str>,
    /// Why the content was shown.
    pub reason: Reason,
    /// The visitor's stage.
    pub stage: &'b str,
    /// When, in Unix seconds.
    pub at: UnixSeconds,
}

/// Everything a decision produces.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision<'b> {
    /// The visitor's stage after this request's signals.
    pub stage: &'b str,
    /// One per requested slot, in request order.
    pub decisions: Vec<SlotDecision<'b>>,
    /// The trace, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace<'b>>,
    /// The visitor's new state.
    #[serde(skip)]
    pub state: State,
    /// Whether the new state may be written (false without consent).
    #[serde(skip)]
    pub persist: bool,
    /// Exposure events to send after the response.
    #[serde(skip)]
    pub exposures: Vec<Exposure<'b>>,
    /// The triggers this request fired (docs/triggers.md), their caps counted in `state`.
    #[serde(skip)]
    pub triggers: Vec<Fired<'b>>,
    /// The feed rows the content shown was chosen on, for the bundle's feed triggers
    /// (docs/feeds.md): the face registers the person as watching them.
    #[serde(skip)]
    pub watches: Vec<Watch>,
}

/// A feed row a person was shown content about: a feed trigger on it tells them when
/// it changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// The feed's index in the bundle.
    pub feed: u16,
    /// The row's key.
    pub key: Vec<String>,
}

/// A trigger fired by a request: what to send where, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fired<'b> {
    /// The trigger's id.
    pub trigger: &'b str,
    /// The destinations, by name.
    pub send: Vec<&'b str>,
    /// Seconds to wait before sending, if the trigger waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_secs: Option<i64>,
    /// The event that cancels it while it waits.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unless: Option<&'b str>,
    /// The stage the visitor is in after the request.
    pub stage: &'b str,
}

fn serialize_visitor<S: serde::Serializer>(
    visitor: &[u8; 16],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 32];
    serializer.serialize_str(ids::hex128(visitor, &mut buf))
}
