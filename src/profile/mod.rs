//! One journey per person (docs/profiles.md): the merge of devices' journeys, the profile
//! that keeps them, and what a device does about it at the edge.
//!
//! - [`merge`]: two contributions joined ([`join`]), what a device added since a state
//!   it was given ([`delta`]), a device's state once given the view ([`adopt`]);
//! - [`exchange`]: a [`Profile`] of devices and the sync and push exchanges, with
//!   sequence numbers so that a retried exchange counts once;
//! - [`identity`]: links used once, revoked or older than an erasure, devices that
//!   logged out, and the person's trigger caps counted across devices;
//! - [`edge`]: when a device syncs, and whether its request changed what it shares.
//!
//! Pure, like the rest of the core: the Durable Object and the Worker do the I/O.

mod edge;
mod exchange;
mod identity;
mod merge;
pub(crate) mod wire;

pub use edge::{needs_sync, plan_push, shares_changes, Sync, PROFILE_WAIT_MS};
pub use exchange::{
    backend_device, is_backend, join_states, Device, Message, Op, Profile, Reply, MAX_DEVICES,
    MAX_PROFILE_BYTES, RETIRED,
};
pub use identity::{
    after_erasure, LinkRefusal, Links, Revoked, Spend, Spent, ERASURE_MARGIN, MAX_LINK_RECORDS,
    MAX_REVOKED_DEVICES,
};
pub use merge::{adopt, join};
