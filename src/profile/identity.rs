//! Who may take part in a person's journey (docs/profiles.md, "Linking"): identity links
//! used once, revoked, or older than an erasure; devices that logged out; and the
//! person's trigger caps, counted once across every device.
//!
//! A link only says which profile it names. It becomes a device of that profile when
//! the person confirms it on the device, and the profile then records the link's id:
//! a second use, a revoked id, or a link issued at or before the profile's erasure or
//! its last "revoke every link" is refused. What the profile remembers of links is
//! bounded by their lifetime: an entry outlives the longest a link can be valid
//! ([`MAX_LINK_TTL`]) and no more, and forgetting one early (past [`MAX_LINK_RECORDS`])
//! refuses every link issued until then. A logged-out device is remembered for good (its
//! token slides, so no time makes it harmless), up to [`MAX_REVOKED_DEVICES`].
//!
//! Times from different Workers are compared here (a device's `linked_at`, a link's
//! `issued_at`, the erasure's time), in whole seconds: anything within
//! [`ERASURE_MARGIN`] after an erasure counts as before it.
//!
//! Pure: the Durable Object stores what these functions decide.

use crate::bundle::{Bundle, Period};
use crate::time::UnixSeconds;
use crate::token::{self, IdentityLink, Impression, MAX_LINK_TTL};

use super::exchange::{is_backend, Device, Profile, RETIRED};
use super::merge::join;

/// The most link ids a profile remembers (used and revoked together): past it the
/// oldest are forgotten, and links issued before the oldest one kept are refused.
pub const MAX_LINK_RECORDS: usize = 256;
/// The most logged-out devices a profile remembers; past it the oldest are forgotten.
pub const MAX_REVOKED_DEVICES: usize = 256;
/// How long after an erasure a device linked, or a link issued, still counts as from
/// before it: the clocks of two Workers and whole seconds cannot order closer events.
pub const ERASURE_MARGIN: UnixSeconds = 2;

/// Whether something that happened `at` (a device linked, a link issued, a trigger
/// fired) is after an erasure at `erased`: only then may it take part, or be sent.
pub fn after_erasure(erased: Option<UnixSeconds>, at: UnixSeconds) -> bool {
    erased.is_none_or(|erased| at > erased.saturating_add(ERASURE_MARGIN))
}

/// What a profile remembers of identity links.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Links {
    /// Links issued at or before this time are refused (a backend revoked every link
    /// up to then, or the profile forgot older records).
    pub valid_after: UnixSeconds,
    /// Ids used or revoked, each with the time after which it is forgotten (its link
    /// has expired by then).
    pub spent: Vec<Spent>,
}

/// A link id the profile refuses from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    /// The link's id.
    pub id: [u8; 16],
    /// Used, or revoked.
    pub why: Spend,
    /// When it can be forgotten.
    pub until: UnixSeconds,
}

/// Why a link id is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spend {
    /// A device was linked with it.
    Used,
    /// A backend revoked it.
    Revoked,
}

/// A device that logged out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revoked {
    /// Its id.
    pub device: [u8; 16],
    /// When it logged out.
    pub at: UnixSeconds,
}

/// Why a link was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkRefusal {
    /// Issued at or before the profile's erasure.
    #[error("the link was issued before the profile was erased")]
    Erased,
    /// Issued at or before a revocation of every link, or revoked by id.
    #[error("the link was revoked")]
    Revoked,
    /// Already used.
    #[error("the link was already used")]
    Used,
}

impl Profile {
    /// Forgets link ids past their link's lifetime.
    fn prune(&mut self, now: UnixSeconds) {
        self.links.spent.retain(|s| s.until > now);
    }

    /// Checks `link` (already verified: ours, not expired; the Worker asks the object of
    /// the profile it names) against what the profile remembers and, when it may be
    /// used, records its id as used: a link links one device, once.
    pub fn use_link(&mut self, link: &IdentityLink, now: UnixSeconds) -> Result<(), LinkRefusal> {
        if !after_erasure(self.erased_at, link.issued_at) {
            return Err(LinkRefusal::Erased);
        }
        if link.issued_at <= self.links.valid_after {
            return Err(LinkRefusal::Revoked);
        }
        match self.links.spent.iter().find(|s| s.id == link.id) {
            Some(Spent {
                why: Spend::Used, ..
            }) => return Err(LinkRefusal::Used),
            Some(_) => return Err(LinkRefusal::Revoked),
            None => {}
        }
        self.spend(link.id, Spend::Used, link.expires_at, now);
        Ok(())
    }

    /// Revokes one link by its id: it links nothing from now on.
    pub fn revoke_link(&mut self, id: [u8; 16], now: UnixSeconds) {
        if let Some(spent) = self.links.spent.iter_mut().find(|s| s.id == id) {
            spent.why = Spend::Revoked;
            return;
        }
        // Its expiry is not known here: remembered as long as any link can live.
        self.spend(id, Spend::Revoked, now.saturating_add(MAX_LINK_TTL), now);
    }

    /// Revokes every link issued until `now`.
    pub fn revoke_links(&mut self, now: UnixSeconds) {
        self.links.valid_after = self.links.valid_after.max(now);
        self.prune(now);
    }

    fn spend(&mut self, id: [u8; 16], why: Spend, until: UnixSeconds, now: UnixSeconds) {
        self.prune(now);
        self.links.spent.push(Spent { id, why, until });
        if self.links.spent.len() > MAX_LINK_RECORDS {
            // Forgetting an id must not make its link usable again: every link issued
            // until now is refused from now on.
            let excess = self.links.spent.len() - MAX_LINK_RECORDS;
            self.links.spent.drain(..excess);
            self.links.valid_after = self.links.valid_after.max(now);
        }
    }

    /// A device logged out: what it contributed stays the person's (folded into the
    /// retired record), and its token, wherever it is, never syncs again.
    pub fn revoke_device(&mut self, bundle: &Bundle, device: [u8; 16], now: UnixSeconds) {
        if is_backend(&device) {
            return;
        }
        if let Ok(at) = self.devices.binary_search_by(|d| d.id.cmp(&device)) {
            let gone = self.devices.remove(at);
            self.retire(bundle, &gone, now);
        }
        if !self.revoked.iter().any(|r| r.device == device) {
            self.revoked.push(Revoked { device, at: now });
        }
        if self.revoked.len() > MAX_REVOKED_DEVICES {
            let excess = self.revoked.len() - MAX_REVOKED_DEVICES;
            self.revoked.drain(..excess);
        }
    }

    /// Folds a device's contribution into the retired record.
    pub(super) fn retire(&mut self, bundle: &Bundle, gone: &Device, now: UnixSeconds) {
        let at = match self.devices.binary_search_by(|d| d.id.cmp(&RETIRED)) {
            Ok(at) => at,
            Err(at) => {
                self.devices.insert(
                    at,
                    Device {
                        id: RETIRED,
                        seq: 0,
                        kind: None,
                        own: token::State::default(),
                        base: token::State::default(),
                        input: token::State::default(),
                        seen_at: now,
                    },
                );
                at
            }
        };
        if let Some(retired) = self.devices.get_mut(at) {
            retired.own = super::exchange::bounded(join(bundle, &retired.own, &gone.own, now));
            retired.seq = retired.seq.saturating_add(1);
            retired.seen_at = now;
        }
    }

    /// Whether the trigger named `trigger` may fire for the person at `now`, within its
    /// cap counted across every device; recorded when it may. A trigger without a cap
    /// always may; one the bundle does not know never does (the device decided with
    /// another bundle, whose caps the profile cannot count).
    pub fn admit_fire(&mut self, bundle: &Bundle, trigger: &str, now: UnixSeconds) -> bool {
        let Some(known) = bundle.triggers.iter().find(|t| t.name == trigger) else {
            return false;
        };
        let trigger = known.id;
        let Some(cap) = known.cap else {
            return true;
        };
        let record = match self.fired.iter().position(|f| f.id == trigger) {
            Some(at) => self.fired.get_mut(at),
            None => {
                self.fired.push(Impression {
                    id: trigger,
                    count: 0,
                    window_start: now,
                    last_shown: now,
                    total: 0,
                });
                self.fired.last_mut()
            }
        };
        let Some(record) = record else { return true };
        if let Period::Seconds(p) = cap.per {
            if now.saturating_sub(record.window_start) >= p {
                record.count = 0;
                record.window_start = now;
            }
        }
        if record.count >= cap.max {
            return false;
        }
        record.count = record.count.saturating_add(1);
        record.total = record.total.saturating_add(1);
        record.last_shown = now;
        true
    }
}
