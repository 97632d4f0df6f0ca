//! The visitor's journey state: what a token carries between requests.
//!
//! This is the domain type the decision engine reads and writes. It is not the wire
//! form: the token codec maps it to and from a versioned wire struct, so the state can
//! grow without breaking tokens already in visitors' browsers.
//!
//! Contents, topics, experiments, campaigns and stages are named by their stable ids
//! (`crate::ids::stable_id`: FNV-1a 32 of a kind byte and the string id), never by a
//! bundle index, so a state survives a new bundle version.
//!
//! The stage in particular is stored as `stable_id(IdKind::Stage, name)`, not as its
//! position in the bundle's stage list: a marketer who inserts `interest` before
//! `consideration` does not move every visitor one stage on. A stage id that the new
//! bundle no longer declares is the bundle's first stage for the decision engine.
//!
//! This module never reads a clock or a source of randomness: a new visitor's id and
//! the time are handed in.

use crate::time::{UnixSeconds, DAY};

/// How long a token stays valid when nothing else is said: 30 days.
pub const DEFAULT_TTL: i64 = 30 * DAY;

/// Everything micromoment remembers about one visitor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct State {
    /// 128 random bits from the adapter's entropy; the experiment hashing key.
    pub visitor: [u8; 16],
    /// When this state was signed.
    pub issued_at: UnixSeconds,
    /// When a token holding this state stops verifying.
    pub expires_at: UnixSeconds,
    /// The stable id of the current stage; `None` means the bundle's first stage.
    pub stage: Option<u32>,
    /// When the visitor entered the current stage.
    pub stage_since: UnixSeconds,
    /// Visits so far (a visit starts after 30 idle minutes).
    pub visits: u32,
    /// The last request seen from this visitor.
    pub last_visit: UnixSeconds,
    /// Intent scores per topic.
    pub intents: Vec<Intent>,
    /// Impressions per content, or per campaign for shared caps.
    pub impressions: Vec<Impression>,
    /// Contents seen at least once that gate a sequence (`after`), kept apart from the
    /// impressions so trimming impressions never rewinds a story.
    pub sequence: Vec<u32>,
    /// Sticky experiment assignments.
    pub experiments: Vec<Assignment>,
    /// Segments given by a backend (CDP, CRM) when it minted the token.
    pub segments: Vec<String>,
    /// Consent bits, see [`Consent`].
    pub consent: Consent,
}

impl State {
    /// The state of a visitor seen for the first time.
    ///
    /// `visitor` must be 128 bits from the adapter's entropy; `now` is the adapter's
    /// clock. The token is issued at `now` and expires `ttl` seconds later. No visit is
    /// counted yet (`visits` 0, `last_visit` 0 meaning never): the decision engine
    /// counts the first one. The stage is the bundle's first, entered `now`.
    pub fn new_visitor(visitor: [u8; 16], now: UnixSeconds, ttl: i64) -> State {
        State {
            visitor,
            issued_at: now,
            expires_at: now.saturating_add(ttl),
            stage: None,
            stage_since: now,
            visits: 0,
            last_visit: 0,
            intents: Vec::new(),
            impressions: Vec::new(),
            sequence: Vec::new(),
            experiments: Vec::new(),
            segments: Vec::new(),
            consent: Consent::default(),
        }
    }

    /// Marks the state as issued `now`, valid for `ttl` more seconds: what the edge does
    /// before re-signing it on each response (a sliding expiry).
    pub fn reissue(&mut self, now: UnixSeconds, ttl: i64) {
        self.issued_at = now;
        self.expires_at = now.saturating_add(ttl);
    }
}

/// One intent topic's score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Intent {
    /// `stable_id(Topic, name)`.
    pub topic: u32,
    /// The score at `updated_at`, before decay since then.
    pub score: f32,
    /// When the score was last decayed and raised.
    pub updated_at: UnixSeconds,
}

/// Impressions of one content (or campaign) in its current cap window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Impression {
    /// `stable_id(Content, id)` or `stable_id(Campaign, name)`.
    pub id: u32,
    /// Impressions since `window_start`.
    pub count: u32,
    /// When the current counting window opened.
    pub window_start: UnixSeconds,
    /// The last impression; trimming drops the oldest first.
    pub last_shown: UnixSeconds,
    /// Impressions ever, for `seen.<content>` and lifetime caps.
    pub total: u32,
}

/// A sticky experiment assignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assignment {
    /// `stable_id(Experiment, candidate id)`.
    pub experiment: u32,
    /// The variant index, or [`Assignment::HOLDOUT`].
    pub variant: u8,
}

impl Assignment {
    /// The variant value of a visitor held out of the experiment.
    pub const HOLDOUT: u8 = u8::MAX;
}

/// Consent bits carried in the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Consent(pub u8);

impl Consent {
    /// The visitor refused personalization: serve defaults, write no state.
    pub const OPTED_OUT: u8 = 1;

    /// Whether the visitor refused personalization.
    pub fn opted_out(self) -> bool {
        self.0 & Self::OPTED_OUT != 0
    }
}
