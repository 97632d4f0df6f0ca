//! A profile: the devices of one person and what each contributed, and the exchanges
//! through which a device gives its changes and gets the person's journey (docs/profiles.md).
//!
//! Each device record holds the device's own contribution (`own`), the state the device
//! holds as far as the profile knows (`base`: the view it was last given, or its own
//! state at its last push) and the state it sent with its last sync (`input`). Two
//! exchanges:
//! - **sync** (before a decision, at identification and on a new visit): the device's
//!   changes since `base` join its contribution, and it gets the view;
//! - **push** (after the response, when the request changed what the person shares):
//!   the changes join, and `base` becomes the device's own state. A push after a sync
//!   the device did not wait for says so (`from_input`): its changes are counted from
//!   what it sent, not from a view it never saw.
//!
//! Every exchange carries the device's sequence number. The profile applies one whose
//! number is at least the one it expects, and expects the next: a retried or replayed
//! exchange counts once, and one that was lost is made up by the next (its changes are
//! counted from the same `base`). A device the profile does not know joins with its
//! whole history when it was just linked (sequence 0), or with what it holds beyond
//! the view otherwise (an evicted device coming back).
//!
//! Bounded: at most [`MAX_DEVICES`] devices (the least recently seen is folded into a
//! retired record, so the view loses nothing), every stored state and the view at most
//! [`MAX_PROFILE_BYTES`] (trimmed as a token is: oldest impressions first).
//!
//! Pure: the Durable Object stores and loads a [`Profile`]; this module decides.

use crate::bundle::Bundle;
use crate::context::Channel;
use crate::time::UnixSeconds;
use crate::token::{self, DeviceKind, State};

use super::merge::{capped, delta, join};

/// The most devices a profile keeps apart (docs/profiles.md).
pub const MAX_DEVICES: usize = 50;
/// The most bytes a stored state or the view takes (docs/profiles.md).
pub const MAX_PROFILE_BYTES: usize = 16 * 1024;

/// The record of devices folded out of a profile over [`MAX_DEVICES`].
pub const RETIRED: [u8; 16] = [0; 16];

/// The id of the backend's own record for a channel (a store's events and decisions,
/// an e-mail's, a push's): `ff…ff` then the channel's code.
pub fn backend_device(channel: Channel) -> [u8; 16] {
    let mut id = [0xff; 16];
    id[15] = channel.code();
    id
}

/// Whether a device id is one of the backend's records (or the retired one).
pub fn is_backend(id: &[u8; 16]) -> bool {
    id[..15] == [0xff; 15] || *id == RETIRED
}

/// One device of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// The device's visitor id.
    pub id: [u8; 16],
    /// The sequence number the next exchange of this device is expected to carry.
    pub seq: u32,
    /// The device type or channel its visits count under.
    pub kind: Option<DeviceKind>,
    /// What this device contributed to the person's journey.
    pub own: State,
    /// What the device holds, as far as the profile knows: its changes are counted
    /// from here.
    pub base: State,
    /// What it sent with its last sync.
    pub input: State,
    /// Its last exchange.
    pub seen_at: UnixSeconds,
}

/// One person's devices, and what keeps strangers out of their journey.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// The devices, in id order.
    pub devices: Vec<Device>,
    /// When the profile was last erased. Kept for good: a device linked at or before
    /// it is told `Erased` however it comes back (a token never synced, a replayed
    /// one), and a link issued at or before it is refused, so nothing from before the
    /// erasure repopulates it.
    pub erased_at: Option<UnixSeconds>,
    /// Identity links used, revoked, or issued too early (`identity.rs`).
    pub links: super::identity::Links,
    /// Devices that logged out: their tokens never sync again (`identity.rs`).
    pub revoked: Vec<super::identity::Revoked>,
    /// Triggers fired for the person, counted here against their caps across every
    /// device (`identity.rs`).
    pub fired: Vec<token::Impression>,
}

/// What a device sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Sync or push.
    pub op: Op,
    /// The device (its visitor id).
    pub device: [u8; 16],
    /// The device's sequence number (from its token).
    pub seq: u32,
    /// The device type or channel of the request.
    pub kind: Option<DeviceKind>,
    /// The request's time.
    pub now: UnixSeconds,
    /// The device's state.
    pub state: State,
}

/// Which exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Give the changes, get the view.
    Sync,
    /// Give the changes after the response; `from_input` when the sync before it was
    /// not waited for.
    Push {
        /// Count the changes from the last sync's input, not from its view.
        from_input: bool,
    },
}

/// What the profile answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// A sync's answer: the person's journey, the device's next sequence number and
    /// the number of devices.
    Synced {
        /// The view.
        view: Box<State>,
        /// The sequence number the device's next exchange carries.
        seq: u32,
        /// Devices of the person (`profile.devices`).
        devices: u8,
    },
    /// A push was applied; the device's next exchange carries `seq`.
    Pushed {
        /// The next sequence number.
        seq: u32,
    },
    /// A push older than one already applied: nothing changed.
    Stale,
    /// The person's journey is gone for this device (the profile was erased after the
    /// device was linked, or the device logged out): it starts fresh, unlinked.
    Erased,
}

/// A state within [`MAX_PROFILE_BYTES`].
pub(super) fn bounded(state: State) -> State {
    token::compact(state, MAX_PROFILE_BYTES)
}

impl Profile {
    /// Whether the profile holds anything: a profile never seen, or erased, does not.
    pub fn exists(&self) -> bool {
        !self.devices.is_empty()
    }

    /// The person's journey at `now`: every contribution joined, in device order.
    pub fn view(&self, bundle: &Bundle, now: UnixSeconds) -> State {
        let mut view = State::default();
        for d in &self.devices {
            view = join(bundle, &view, &d.own, now);
        }
        bounded(capped(bundle, view, now))
    }

    /// The person's devices: every device record but the backend's (retired devices
    /// count as one each).
    pub fn device_count(&self) -> u8 {
        let live = self.devices.iter().filter(|d| !is_backend(&d.id)).count();
        let retired = self
            .devices
            .iter()
            .find(|d| d.id == RETIRED)
            .map_or(0, |d| d.seq as usize);
        u8::try_from(live + retired).unwrap_or(u8::MAX)
    }

    fn index(&self, id: &[u8; 16]) -> Result<usize, usize> {
        self.devices.binary_search_by(|d| d.id.cmp(id))
    }

    /// Erases everything; every device linked until now starts fresh at its next
    /// exchange, and every link issued until now is refused.
    pub fn erase(&mut self, now: UnixSeconds) {
        *self = Profile {
            erased_at: Some(now),
            ..Profile::default()
        };
    }

    /// Whether a device linked at `linked_at` may take part: not one linked at or
    /// before an erasure, not one that logged out.
    pub fn admits(&self, device: &[u8; 16], linked_at: UnixSeconds) -> bool {
        super::identity::after_erasure(self.erased_at, linked_at)
            && !self.revoked.iter().any(|r| r.device == *device)
    }

    /// Applies one exchange: see the module documentation.
    pub fn exchange(&mut self, bundle: &Bundle, message: Message) -> Reply {
        let now = message.now;
        let linked_at = message.state.link.map_or(0, |l| l.linked_at);
        if !self.admits(&message.device, linked_at) {
            return Reply::Erased;
        }
        let at = match self.index(&message.device) {
            Ok(at) => at,
            Err(at) => {
                // A device just linked brings its whole history; one the profile lost
                // (evicted, or the profile was recreated) what it holds beyond the view.
                let base = if message.seq == 0 {
                    State::default()
                } else {
                    self.view(bundle, now)
                };
                self.devices.insert(
                    at,
                    Device {
                        id: message.device,
                        seq: message.seq,
                        kind: message.kind,
                        own: State::default(),
                        base: base.clone(),
                        input: base,
                        seen_at: now,
                    },
                );
                self.evict(bundle, &message.device, now);
                self.index(&message.device).unwrap_or(0)
            }
        };
        let Some(device) = self.devices.get_mut(at) else {
            return Reply::Stale;
        };
        device.seen_at = now;
        if message.kind.is_some() {
            device.kind = message.kind;
        }
        match message.op {
            Op::Sync => {
                // A stale sync (a replayed or older token) changes nothing: neither
                // the contribution, nor what the next push counts from, nor the
                // sequence the device's current token carries.
                let fresh = message.seq >= device.seq;
                if fresh {
                    let added = delta(bundle, &message.state, &device.base);
                    device.own = bounded(join(bundle, &device.own, &added, now));
                    device.seq = message.seq.saturating_add(1);
                    device.input = bounded(message.state);
                }
                let seq = device.seq;
                let view = self.view(bundle, now);
                if fresh {
                    if let Some(device) = self.devices.get_mut(at) {
                        device.base = view.clone();
                    }
                }
                Reply::Synced {
                    view: Box::new(view),
                    seq,
                    devices: self.device_count(),
                }
            }
            Op::Push { from_input } => {
                if message.seq < device.seq {
                    return Reply::Stale;
                }
                let from = if from_input && message.seq == device.seq {
                    &device.input
                } else {
                    &device.base
                };
                let added = delta(bundle, &message.state, from);
                device.own = bounded(join(bundle, &device.own, &added, now));
                device.base = bounded(message.state);
                device.seq = message.seq.saturating_add(1);
                Reply::Pushed { seq: device.seq }
            }
        }
    }

    /// Folds the least recently seen devices (never `keep`, never the backend's) into
    /// the retired record while there are more than [`MAX_DEVICES`].
    fn evict(&mut self, bundle: &Bundle, keep: &[u8; 16], now: UnixSeconds) {
        while self.devices.iter().filter(|d| !is_backend(&d.id)).count() > MAX_DEVICES {
            let Some(oldest) = self
                .devices
                .iter()
                .enumerate()
                .filter(|(_, d)| !is_backend(&d.id) && d.id != *keep)
                .min_by_key(|(_, d)| (d.seen_at, d.id))
                .map(|(i, _)| i)
            else {
                return;
            };
            let gone = self.devices.remove(oldest);
            self.retire(bundle, &gone, now);
        }
    }

    /// The state a backend decision or event for `channel` starts from: the person's
    /// journey, with the backend record's own last request (so that a store visit is
    /// counted once per 30 minutes, as a device's is).
    pub fn backend_prior(&self, bundle: &Bundle, channel: Channel, now: UnixSeconds) -> State {
        let id = backend_device(channel);
        let mut prior = self.view(bundle, now);
        prior.visitor = id;
        prior.last_visit = self
            .index(&id)
            .ok()
            .and_then(|at| self.devices.get(at))
            .map_or(0, |d| d.own.last_visit);
        prior
    }

    /// Records what a backend decision or event for `channel` changed (`next`, from
    /// `prior` as [`Profile::backend_prior`] gave it) as the backend record's
    /// contribution.
    pub fn backend_record(
        &mut self,
        bundle: &Bundle,
        channel: Channel,
        prior: &State,
        next: &State,
        now: UnixSeconds,
    ) {
        let id = backend_device(channel);
        let at = match self.index(&id) {
            Ok(at) => at,
            Err(at) => {
                self.devices.insert(
                    at,
                    Device {
                        id,
                        seq: 0,
                        kind: (channel == Channel::Store).then_some(DeviceKind::Store),
                        own: State::default(),
                        base: State::default(),
                        input: State::default(),
                        seen_at: now,
                    },
                );
                at
            }
        };
        if let Some(device) = self.devices.get_mut(at) {
            let mut added = delta(bundle, next, prior);
            // The backend's record keeps its own last request, whatever the view says.
            added.last_visit = next.last_visit;
            device.own = bounded(join(bundle, &device.own, &added, now));
            device.seq = device.seq.saturating_add(1);
            device.seen_at = now;
        }
    }

    /// Removes a segment from every contribution (a backend's "remove"): the union of
    /// the devices' segments no longer holds it, and a device that still carries it
    /// does not bring it back (its `base` keeps it, so it is no change of the device's).
    pub fn remove_segment(&mut self, segment: &str) {
        for d in &mut self.devices {
            d.own.segments.retain(|s| s != segment);
        }
    }
}

/// Two device states joined for a backend that holds both (two tokens of one person):
/// the same device's two states give the fresher one, two devices' states their join
/// at `now`, with the first one's identity.
pub fn join_states(bundle: &Bundle, a: &State, b: &State, now: UnixSeconds) -> State {
    if a.visitor == b.visitor {
        return if b.issued_at > a.issued_at {
            b.clone()
        } else {
            a.clone()
        };
    }
    let mut joined = capped(bundle, join(bundle, a, b, now), now);
    joined.visitor = a.visitor;
    joined.issued_at = a.issued_at;
    joined.expires_at = a.expires_at;
    joined.last_visit = a.last_visit.max(b.last_visit);
    joined.consent = a.consent;
    joined.link = a.link.or(b.link);
    joined
}
