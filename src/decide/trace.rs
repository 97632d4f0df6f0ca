//! The trace of a decision, as types: what moved the journey, and per slot each
//! candidate's verdict. Tools (the coverage report) match on these; they become words
//! only when serialized, in the sentences the trace has always said.

use std::fmt;

use serde::{Serialize, Serializer};

use super::types::Reason;
use crate::bundle::Period;

/// Why a candidate was kept or skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Verdict<'b> {
    /// It won, showing this content.
    Shows(&'b str),
    /// It won with this experiment variant.
    Variant(&'b str),
    /// The visitor is in its experiment's holdout: the default is shown.
    Holdout,
    /// An earlier candidate won; it was not looked at.
    NotEvaluated,
    /// The visitor's stage is not one of its stages.
    Stage(&'b str),
    /// Its `when` is false.
    When,
    /// Its `when` ran out of its work budget, which counts as false.
    OutOfFuel,
    /// Its `when` reads a feed that is missing, late or stale, which counts as false.
    NoData,
    /// Outside its schedule, or its campaign's: `campaign` names the campaign's.
    Scheduled {
        /// The window's start, if any.
        from: Option<i64>,
        /// The window's end, if any.
        until: Option<i64>,
        /// The campaign whose schedule it is, when not the candidate's own.
        campaign: Option<&'b str>,
    },
    /// Its content is already in another slot of the page.
    Placed(&'b str),
    /// Its `after` content was not seen yet.
    After(&'b str),
    /// Its content's cap is reached.
    Cap {
        /// Impressions in the window, this request's included.
        shown: u32,
        /// The cap.
        max: u32,
        /// The window.
        per: Period,
    },
    /// Its campaign's cap is reached.
    CampaignCap {
        /// The campaign.
        campaign: &'b str,
        /// Impressions in the window, this request's included.
        shown: u32,
        /// The cap.
        max: u32,
        /// The window.
        per: Period,
    },
}

impl Verdict<'_> {
    /// Whether the candidate won the slot (or sent it to the holdout).
    pub fn kept(&self) -> bool {
        matches!(
            self,
            Verdict::Shows(_) | Verdict::Variant(_) | Verdict::Holdout
        )
    }
}

impl fmt::Display for Verdict<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Shows(content) => write!(f, "eligible: shows {content}"),
            Verdict::Variant(variant) => write!(f, "eligible: experiment variant {variant}"),
            Verdict::Holdout => {
                f.write_str("visitor is in the experiment holdout: the default is shown")
            }
            Verdict::NotEvaluated => f.write_str("not evaluated: an earlier candidate won"),
            Verdict::Stage(stage) => write!(f, "stage {stage} is not one of its stages"),
            Verdict::When => f.write_str("when is false"),
            Verdict::OutOfFuel => f.write_str("when ran out of its work budget: counted as false"),
            Verdict::NoData => {
                f.write_str("when reads a feed that is missing, late or stale: counted as false")
            }
            Verdict::Scheduled {
                from,
                until,
                campaign,
            } => {
                f.write_str("scheduled")?;
                if let Some(campaign) = campaign {
                    write!(f, " (campaign {campaign})")?;
                }
                if let Some(from) = from {
                    write!(f, ": from {}", crate::time::rfc3339(*from))?;
                }
                if let Some(until) = until {
                    let sep = if from.is_some() { "" } else { ":" };
                    write!(f, "{sep} until {}", crate::time::rfc3339(*until))?;
                }
                Ok(())
            }
            Verdict::Placed(content) => write!(f, "{content} is already placed in another slot"),
            Verdict::After(content) => write!(f, "after: {content} not seen yet"),
            Verdict::Cap { shown, max, per } => {
                write!(f, "cap reached: {shown} of {max} per {per}")
            }
            Verdict::CampaignCap {
                campaign,
                shown,
                max,
                per,
            } => write!(
                f,
                "campaign {campaign} cap reached: {shown} of {max} per {per}"
            ),
        }
    }
}

fn as_text<T: fmt::Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

/// One candidate's fate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateTrace<'b> {
    /// The candidate id.
    pub candidate: &'b str,
    /// Its priority.
    pub priority: f64,
    /// Whether it won.
    pub kept: bool,
    /// Why it won or was skipped.
    #[serde(serialize_with = "as_text")]
    pub why: Verdict<'b>,
}

/// What a slot ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotResult<'b> {
    /// The content shown.
    pub content: &'b str,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for SlotResult<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.content, self.reason.as_str())
    }
}

/// Why each candidate of a slot was kept or skipped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SlotTrace<'b> {
    /// The slot.
    pub slot: &'b str,
    /// Candidates in evaluation order (priority, then bundle order).
    pub candidates: Vec<CandidateTrace<'b>>,
    /// What the slot ended with.
    #[serde(serialize_with = "as_text")]
    pub result: SlotResult<'b>,
}

/// One step of the journey on this request.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum JourneyStep<'b> {
    /// A new visit started.
    Visit(u32),
    /// An intent was decayed and raised.
    Intent {
        /// The topic.
        topic: &'b str,
        /// The score after decay.
        base: f64,
        /// What this request's signals added.
        added: f64,
        /// The score after the cap.
        score: f64,
    },
    /// A transition moved the visitor.
    Stage {
        /// The stage before.
        from: &'b str,
        /// The stage after.
        to: &'b str,
        /// The transition's index in the bundle.
        transition: usize,
    },
    /// No personalization consent: defaults, nothing written.
    NoConsent,
}

impl fmt::Display for JourneyStep<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JourneyStep::Visit(n) => write!(f, "visit {n} starts"),
            JourneyStep::Intent {
                topic,
                base,
                added,
                score,
            } => write!(f, "intent {topic}: {base:.2} + {added} = {score:.2}"),
            JourneyStep::Stage {
                from,
                to,
                transition,
            } => write!(f, "stage {from} -> {to} (transition {transition})"),
            JourneyStep::NoConsent => {
                f.write_str("no personalization consent: defaults, nothing written")
            }
        }
    }
}

impl Serialize for JourneyStep<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The trace of a decision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trace<'b> {
    /// Visits, intents and stage moves, in order.
    pub journey: Vec<JourneyStep<'b>>,
    /// Per requested slot.
    pub slots: Vec<SlotTrace<'b>>,
}
