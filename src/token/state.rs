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

use crate::context::{Channel, DeviceKind};
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
    /// How many `back` transitions this journey has taken, on any device (docs/profiles.md):
    /// a back move starts a new generation, and a stage of a later generation wins over
    /// every stage of an earlier one when devices are joined.
    pub stage_generation: u16,
    /// Visits per device type or channel, [`DeviceKind`] order (all devices together once
    /// linked). A state from a `v1` token has none; see [`State::visits_of`].
    pub visits_by: [u32; DeviceKind::COUNT],
    /// The channel of the person's latest request before this one, once known.
    pub last_channel: Option<Channel>,
    /// The person this device is linked to, if it is (docs/profiles.md).
    pub link: Option<Link>,
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
            stage_generation: 0,
            visits_by: [0; DeviceKind::COUNT],
            last_channel: None,
            link: None,
        }
    }

    /// The visits of one device type or channel. Visits counted before the state knew
    /// kinds (a `v1` token, a backend's mint) are this device's: they are counted under
    /// `this_device`.
    pub fn visits_of(&self, kind: DeviceKind, this_device: Option<DeviceKind>) -> u32 {
        let own = self.visits_by.get(kind.index()).copied().unwrap_or(0);
        if Some(kind) != this_device {
            return own;
        }
        let known: u32 = self.visits_by.iter().fold(0, |a, &b| a.saturating_add(b));
        own.saturating_add(self.visits.saturating_sub(known))
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
    /// When it was made, so that the first one made on any device wins (docs/profiles.md). A
    /// `v1` token does not carry it: it reads as the token's `issued_at`, the latest it
    /// can have been.
    pub at: UnixSeconds,
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

/// What a linked device knows of its profile (docs/profiles.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// The profile id: 128 opaque bits chosen by a backend.
    pub profile: [u8; 16],
    /// This device's sync sequence: the next exchange with the profile carries it, and
    /// the profile applies an exchange only once (a retried sync counts once).
    pub seq: u32,
    /// How many devices the profile had at the last sync (`profile.devices`).
    pub devices: u8,
    /// When this device was linked to the profile (a link confirmed, a backend's
    /// mint): a profile erased after it refuses the device for good, however it comes
    /// back (docs/profiles.md). A token written before links carried it reads 0: older than
    /// any erasure.
    pub linked_at: UnixSeconds,
}
