//! The messages between the Worker and the `Profile` Durable Object (`src/edge/profile/`),
//! both halves side by side: what each route of the object takes and answers. Pure, so
//! native tests reach it; compiled into the Worker and the tests only.
//!
//! Exchanges (a sync or push, a link used with its sync) cross as bincode (the state
//! images are bytes; `crate::codec` is what names bincode); the rarer calls (waits,
//! fires, revocations, erasures, checks) as JSON. Both ends are this crate, built
//! together: a message the other side cannot read is a `400` and a logged fault,
//! never a guess.

use serde::{Deserialize, Serialize};

use super::{Message, Op, Reply, MAX_PROFILE_BYTES};
use crate::codec::{self, Decode, Encode};
use crate::deliver::Cancel;
use crate::destination::Delivery;
use crate::token::{DeviceKind, IdentityLink, State};

/// The most bytes an exchange body may claim while decoding: two bounded states.
const DECODE_LIMIT: usize = 4 * MAX_PROFILE_BYTES;

/// The object's routes (the path of the request the Worker sends it).
pub(crate) mod route {
    /// A sync or push ([`super::ExchangeWire`] → [`super::ReplyWire`]).
    pub const EXCHANGE: &str = "/exchange";
    /// A link used, then the device's sync ([`super::LinkWire`] → [`super::ReplyWire`]).
    pub const LINK: &str = "/link";
    /// A device logged out ([`super::Revoke`]).
    pub const REVOKE: &str = "/revoke";
    /// Triggers fired and cancelled ([`super::Fire`]).
    pub const FIRE: &str = "/fire";
    /// A backend API call (the checked call's route, method and body).
    pub const BACKEND: &str = "/backend";
    /// The person behind a pre-link visitor object was erased ([`super::Erase`]).
    pub const ERASE: &str = "/erase";
    /// Whether a delivery may still go out ([`super::Check`] → [`super::Checked`]).
    pub const CHECK: &str = "/check";
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ExchangeWire {
    /// 0 sync, 1 push, 2 push from the sync's input.
    op: u8,
    device: [u8; 16],
    seq: u32,
    /// `DeviceKind` index + 1, 0 for none.
    kind: u8,
    now: i64,
    state: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct ReplyWire {
    /// 0 synced, 1 pushed, 2 stale, 3 erased, 4 link refused.
    status: u8,
    seq: u32,
    devices: u8,
    view: Vec<u8>,
}

/// A link the person confirmed, and the sync of the device it links.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
pub struct LinkWire {
    profile: [u8; 16],
    id: [u8; 16],
    issued_at: i64,
    expires_at: i64,
    exchange: ExchangeWire,
}

/// What the object answers a link with.
#[derive(Debug, Clone, PartialEq)]
pub enum Linked {
    /// Used: the device's sync answered.
    Reply(Reply),
    /// Refused, and why.
    Refused,
}

pub fn kind_code(kind: Option<DeviceKind>) -> u8 {
    kind.map_or(0, |k| u8::try_from(k.index() + 1).unwrap_or(0))
}

pub fn kind_of(code: u8) -> Option<DeviceKind> {
    DeviceKind::ALL
        .get(usize::from(code).checked_sub(1)?)
        .copied()
}

impl ExchangeWire {
    pub fn of(message: &Message) -> ExchangeWire {
        ExchangeWire {
            op: match message.op {
                Op::Sync => 0,
                Op::Push { from_input: false } => 1,
                Op::Push { from_input: true } => 2,
            },
            device: message.device,
            seq: message.seq,
            kind: kind_code(message.kind),
            now: message.now,
            state: message.state.to_image(),
        }
    }

    pub fn into_message(self) -> Option<Message> {
        Some(Message {
            op: match self.op {
                0 => Op::Sync,
                1 => Op::Push { from_input: false },
                2 => Op::Push { from_input: true },
                _ => return None,
            },
            device: self.device,
            seq: self.seq,
            kind: kind_of(self.kind),
            now: self.now,
            state: State::from_image(&self.state)?,
        })
    }

    pub fn encode(message: &Message) -> Vec<u8> {
        codec::encode(&ExchangeWire::of(message)).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Message> {
        codec::decode::<ExchangeWire, DECODE_LIMIT>(bytes)
            .ok()
            .and_then(ExchangeWire::into_message)
    }
}

impl ReplyWire {
    fn of(reply: &Linked) -> ReplyWire {
        let empty = |status| ReplyWire {
            status,
            seq: 0,
            devices: 0,
            view: Vec::new(),
        };
        match reply {
            Linked::Reply(Reply::Synced { view, seq, devices }) => ReplyWire {
                status: 0,
                seq: *seq,
                devices: *devices,
                view: view.to_image(),
            },
            Linked::Reply(Reply::Pushed { seq }) => ReplyWire {
                seq: *seq,
                ..empty(1)
            },
            Linked::Reply(Reply::Stale) => empty(2),
            Linked::Reply(Reply::Erased) => empty(3),
            Linked::Refused => empty(4),
        }
    }

    fn into_reply(self) -> Option<Linked> {
        Some(Linked::Reply(match self.status {
            0 => Reply::Synced {
                view: Box::new(State::from_image(&self.view)?),
                seq: self.seq,
                devices: self.devices,
            },
            1 => Reply::Pushed { seq: self.seq },
            2 => Reply::Stale,
            3 => Reply::Erased,
            4 => return Some(Linked::Refused),
            _ => return None,
        }))
    }

    pub fn encode(reply: &Linked) -> Vec<u8> {
        codec::encode(&ReplyWire::of(reply)).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8]) -> Option<Linked> {
        codec::decode::<ReplyWire, DECODE_LIMIT>(bytes)
            .ok()
            .and_then(ReplyWire::into_reply)
    }
}

impl LinkWire {
    pub fn encode(link: &IdentityLink, sync: &Message) -> Vec<u8> {
        codec::encode(&LinkWire {
            profile: link.profile,
            id: link.id,
            issued_at: link.issued_at,
            expires_at: link.expires_at,
            exchange: ExchangeWire::of(sync),
        })
        .unwrap_or_default()
    }

    /// The link (as far as the object needs it) and the sync.
    pub fn decode(bytes: &[u8]) -> Option<(IdentityLink, Message)> {
        let wire = codec::decode::<LinkWire, DECODE_LIMIT>(bytes).ok()?;
        let link = IdentityLink {
            profile: wire.profile,
            id: wire.id,
            issued_at: wire.issued_at,
            expires_at: wire.expires_at,
            campaign: None,
        };
        Some((link, wire.exchange.into_message()?))
    }
}

/// A device logged out: its token never syncs again.
#[derive(Debug, Serialize, Deserialize)]
pub struct Revoke {
    pub device: [u8; 16],
    pub now: i64,
}

/// What a request fired and cancels, for the person's object: immediate deliveries to
/// enqueue and delayed ones to hold, within the person's caps (`person`: a profile,
/// whose caps count across devices; else a visitor's own object), and the `unless`
/// events that cancel what waits. `device` and `linked_at` say who fired: a profile
/// refuses a device linked before its erasure, or logged out.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Fire {
    pub deliveries: Vec<Delivery>,
    pub cancel: Cancel,
    pub person: bool,
    pub device: [u8; 16],
    pub linked_at: i64,
    pub now: i64,
}

/// The person was erased: what waits in a visitor object of theirs goes, and it
/// remembers when.
#[derive(Debug, Serialize, Deserialize)]
pub struct Erase {
    pub now: i64,
}

/// May a delivery fired at `at` still go out?
#[derive(Debug, Serialize, Deserialize)]
pub struct Check {
    pub at: i64,
}

/// The object's answer to a [`Check`].
#[derive(Debug, Serialize, Deserialize)]
pub struct Checked {
    pub send: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reply_round_trips() {
        let view = State {
            visits: 3,
            ..State::default()
        };
        for reply in [
            Linked::Reply(Reply::Synced {
                view: Box::new(view),
                seq: 4,
                devices: 2,
            }),
            Linked::Reply(Reply::Pushed { seq: 9 }),
            Linked::Reply(Reply::Stale),
            Linked::Reply(Reply::Erased),
            Linked::Refused,
        ] {
            assert_eq!(ReplyWire::decode(&ReplyWire::encode(&reply)), Some(reply));
        }
        assert_eq!(ReplyWire::decode(b"\x09"), None);
    }

    #[test]
    fn exchanges_and_links_round_trip() {
        let message = Message {
            op: Op::Push { from_input: true },
            device: [3; 16],
            seq: 7,
            kind: Some(DeviceKind::Tablet),
            now: 1_795_000_000,
            state: State {
                visits: 2,
                ..State::default()
            },
        };
        assert_eq!(
            ExchangeWire::decode(&ExchangeWire::encode(&message)),
            Some(message.clone())
        );
        let link = IdentityLink {
            profile: [5; 16],
            id: [6; 16],
            issued_at: 1_794_999_000,
            expires_at: 1_795_040_000,
            campaign: None,
        };
        assert_eq!(
            LinkWire::decode(&LinkWire::encode(&link, &message)),
            Some((link, message))
        );
        assert_eq!(ExchangeWire::decode(b"junk"), None);
        assert_eq!(LinkWire::decode(b""), None);
    }
}
