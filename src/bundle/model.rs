//! The compiled bundle: what the edge loads and decides with.
//!
//! Everything a decision needs is prepared here: stage lists as bit masks, candidates
//! sorted by priority, rules compiled with their variables resolved, placeholders parsed,
//! contents and experiments named by small indices plus the stable ids tokens use. These
//! types are encoded into `.mmb` payloads; any change to them bumps
//! [`super::FORMAT_VERSION`].

pub use crate::codec::List;
use crate::codec::{Decode, Encode};
use crate::context::VarId;
use crate::destination::DestinationKind;
pub use crate::feed::{FeedRoles, FeedSpec};
use crate::rules::{FeedOp, Rule};

/// A compiled rule over the request context.
pub type Condition = Rule<VarId>;

/// A compiled, validated bundle.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
pub struct Bundle {
    pub id: String,
    pub version: u64,
    pub stages: List<Stage>,
    pub transitions: List<Transition>,
    pub topics: List<Topic>,
    pub contents: List<Content>,
    pub slots: List<Slot>,
    pub campaigns: List<Campaign>,
    /// Content indices sorted by content name: `seen.<content>` read by a path computed
    /// at run time is found by binary search, with no allocation and no suggestion work.
    pub content_order: List<u16>,
    /// What counts as a conversion, for `analyze` (docs/results.md); never read by a decision.
    pub goals: List<Goal>,
    /// Where triggers are sent (docs/triggers.md), in name order.
    pub destinations: List<Destination>,
    /// The moments that start a conversation on another channel, in bundle order.
    pub triggers: List<Trigger>,
    /// The live data rules and placeholders read (docs/feeds.md), in name order.
    pub feeds: List<FeedSpec>,
    /// Which feeds `stock` and `nearest_store` read ([`FeedRoles::of`] the feeds).
    pub feed_roles: FeedRoles,
    /// The item of every feed lookup in the bundle's rules: what a face evaluates before
    /// deciding, to load the shards the request needs.
    pub feed_keys: List<FeedKey>,
}

/// A feed lookup's item (its first argument), as a rule of its own.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
pub struct FeedKey {
    pub op: FeedOp,
    pub item: Condition,
}

impl Bundle {
    /// The items of every feed lookup in the bundle's rules.
    pub(crate) fn collect_feed_keys(&self) -> Vec<FeedKey> {
        self.rules()
            .flat_map(|(rule, _)| rule.feed_keys())
            .map(|(op, item)| FeedKey { op, item })
            .collect()
    }
}

/// A system triggers are sent to. `url` and `secret` name Worker vars or secrets
/// ([`crate::destination::is_destination_var`]), never values.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
pub struct Destination {
    pub name: String,
    pub kind: DestinationKind,
    /// The var holding the URL (optional for a kind with a URL of its own).
    pub url: Option<String>,
    /// The var or secret holding the signing secret or write key.
    pub secret: String,
}

/// A trigger: when the journey reaches a moment, tell the destinations.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Trigger {
    pub name: String,
    /// `stable_id(Trigger, name)`: its cap's record in the state.
    pub id: u32,
    pub on: TriggerOn,
    /// Seconds to wait before sending; `unless` in the meantime cancels.
    pub delay: Option<i64>,
    pub unless: Option<String>,
    /// Destination indices.
    pub send: List<u16>,
    pub cap: Option<Cap>,
}

/// The moment a trigger fires at.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
pub enum TriggerOn {
    /// The visitor entered this stage (index) on this request.
    Stage(u16),
    /// The request carries this event.
    Event(String),
    /// The rule turned true on this request: false on the state before this request's
    /// signals, true on the state after (the same request context).
    When(Condition),
    /// A row of a feed changed so that the rule, over the row (`row.<column>`), turned
    /// true: sent to the people who watch that row (they were shown content whose rule
    /// read it), once each (docs/feeds.md).
    Feed {
        /// The feed's index.
        feed: u16,
        /// Over the row: variable `i` is its column `i` (key columns, then fields).
        when: Rule<u16>,
    },
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[non_exhaustive]
pub struct Stage {
    pub name: String,
    /// `stable_id(Stage, name)`, what tokens store.
    pub id: u32,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Transition {
    pub to: u16,
    /// Bit `i` set: the transition applies from stage `i`; all bits set when unrestricted.
    pub from: u64,
    pub back: bool,
    pub when: Option<Condition>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Topic {
    pub name: String,
    pub id: u32,
    pub cap: f64,
    pub half_life_secs: f64,
    pub signals: List<Signal>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Signal {
    pub when: Condition,
    pub add: f64,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Content {
    pub name: String,
    pub id: u32,
    pub html: Option<Template>,
    pub json: Option<JsonTemplate>,
    pub text: Option<Template>,
    /// The shortest cap period of the candidates offering this content: the window its
    /// impressions are counted in.
    pub cap_period: Option<Period>,
    /// Whether some candidate's `after` names this content, so showing it advances a
    /// sequence.
    pub prerequisite: bool,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Slot {
    pub name: String,
    pub default: u16,
    /// Sorted by priority, highest first; ties keep bundle order.
    pub candidates: List<Candidate>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Candidate {
    pub name: String,
    pub offer: Offer,
    pub priority: f64,
    /// Bit `i` set: allowed in stage `i`.
    pub stages: u64,
    pub when: Option<Condition>,
    pub cap: Option<Cap>,
    pub after: List<u16>,
    pub campaign: Option<u16>,
    /// When it may show; outside, it is skipped (trace: scheduled).
    pub schedule: Option<Schedule>,
}

/// When a candidate or a campaign's candidates may show: from `from` (included) until
/// `until` (excluded), Unix seconds; a missing end is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub struct Schedule {
    pub from: Option<i64>,
    pub until: Option<i64>,
}

impl Schedule {
    /// Whether `now` is inside the window.
    pub fn holds(&self, now: i64) -> bool {
        self.from.is_none_or(|from| now >= from) && self.until.is_none_or(|until| now < until)
    }
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
pub enum Offer {
    Content(u16),
    Experiment(Experiment),
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Experiment {
    /// `stable_id(Experiment, candidate id)`.
    pub id: u32,
    pub variants: List<u16>,
    /// GrowthBook bucket ranges, one per variant; a hash outside all is the holdout.
    pub ranges: List<(f64, f64)>,
    pub holdout: f64,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
#[non_exhaustive]
pub struct Campaign {
    pub name: String,
    pub id: u32,
    pub cap: Cap,
    /// When its candidates may show.
    pub schedule: Option<Schedule>,
}

/// A goal: conversions are the app events of this name.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
pub struct Goal {
    pub name: String,
    /// The event (`POST /v1/events` name) that is a conversion of this goal.
    pub event: String,
    /// Whether conversions carry a value (revenue) worth averaging.
    pub value: bool,
}

/// At most `max` impressions per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
#[non_exhaustive]
pub struct Cap {
    pub max: u32,
    pub per: Period,
}

/// A cap's counting window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Encode, Decode)]
pub enum Period {
    /// A window of this many seconds, opened by the first impression in it.
    Seconds(i64),
    /// Forever.
    Lifetime,
}

impl std::fmt::Display for Period {
    /// `30m`, `12h`, `7d`, `2w` or `lifetime`: what [`Period::parse`] reads, in the
    /// largest unit that divides it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::time::{DAY, HOUR, MINUTE, WEEK};
        match *self {
            Period::Lifetime => f.write_str("lifetime"),
            Period::Seconds(s) if s % WEEK == 0 => write!(f, "{}w", s / WEEK),
            Period::Seconds(s) if s % DAY == 0 => write!(f, "{}d", s / DAY),
            Period::Seconds(s) if s % HOUR == 0 => write!(f, "{}h", s / HOUR),
            Period::Seconds(s) => write!(f, "{}m", s / MINUTE),
        }
    }
}

impl Period {
    /// Parses `30m`, `12h`, `7d`, `2w` or `lifetime`: the one reader of periods, for
    /// caps, windows and TTLs alike.
    pub fn parse(text: &str) -> Option<Period> {
        if text == "lifetime" {
            return Some(Period::Lifetime);
        }
        let unit = match text.chars().last()? {
            'm' => crate::time::MINUTE,
            'h' => crate::time::HOUR,
            'd' => crate::time::DAY,
            'w' => crate::time::WEEK,
            _ => return None,
        };
        let count: i64 = text
            .get(..text.len() - 1)?
            .parse()
            .ok()
            .filter(|n| *n > 0)?;
        count.checked_mul(unit).map(Period::Seconds)
    }
}

/// Text with `{{variable}}` placeholders, split at compile time.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
#[non_exhaustive]
pub struct Template {
    pub pieces: List<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Piece {
    Text(String),
    /// A value, HTML-escaped in an `html` rendition.
    Var(VarId),
    /// A value where it can set a URL's scheme (`html_context`): escaped, and rendered
    /// only when it keeps the URL relative, or http(s) when it starts the URL.
    Url {
        var: VarId,
        at_start: bool,
    },
    /// A value right after a URL's lone leading `/` or `\` (`html_context`): escaped,
    /// and rendered only when it does not start with another, which would make the URL
    /// scheme-relative and let the value pick the host.
    RootPath {
        var: VarId,
    },
}

/// A JSON rendition whose strings may hold placeholders. Decoded by hand, with a depth
/// bound, as its derived `Encode` writes it.
#[derive(Debug, Clone, PartialEq, Encode)]
pub enum JsonTemplate {
    Null,
    Bool(bool),
    Number(f64),
    String(Template),
    Array(Vec<JsonTemplate>),
    Object(Vec<(String, JsonTemplate)>),
}

crate::codec::decode_recursive!(JsonTemplate, |r| {
    Ok(match r.variant()? {
        0 => JsonTemplate::Null,
        1 => JsonTemplate::Bool(r.value()?),
        2 => JsonTemplate::Number(r.value()?),
        3 => JsonTemplate::String(r.value()?),
        4 => JsonTemplate::Array(r.list()?),
        5 => JsonTemplate::Object(r.list()?),
        found => return Err(r.unexpected("JsonTemplate", 5, found)),
    })
});
