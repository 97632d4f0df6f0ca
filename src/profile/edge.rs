//! What a linked device does about its profile on a request (docs/profiles.md): sync before
//! deciding at identification and on a new visit (waited at most
//! [`PROFILE_WAIT_MS`]), push after the response when the request changed what the
//! person shares. A device that is not linked, has no consent, or is a crawler or a
//! prefetch never does either.

use crate::bundle::Bundle;
use crate::context::{Context, DeviceType};
use crate::decide::VISIT_IDLE;
use crate::time::UnixSeconds;
use crate::token::State;

use super::exchange::{Message, Op};

/// How long a request waits for its sync by default (`MM_PROFILE_WAIT_MS`).
pub const PROFILE_WAIT_MS: u64 = 50;

/// How the state a request decides with relates to the profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sync {
    /// No sync before this request (between syncs, or not linked).
    #[default]
    Skipped,
    /// Synced: the state is the device's with the view adopted, and its link carries
    /// the sequence number the profile gave.
    Adopted,
    /// A sync was sent but not answered in time: the request decides on the device's
    /// own state; the push after it counts the changes from what the sync sent.
    Missed,
}

/// Whether a device state may take part in a profile at all on this request.
fn may_sync(state: &State, ctx: &Context) -> bool {
    state.link.is_some()
        && ctx.device.kind != Some(DeviceType::Bot)
        && !ctx.prefetch
        && !crate::decide::opted_out(ctx, state)
}

/// Whether this request syncs before deciding: a linked device with consent, on its
/// first request since it was linked or on a new visit.
pub fn needs_sync(state: &State, ctx: &Context, now: UnixSeconds) -> bool {
    let Some(link) = state.link else {
        return false;
    };
    may_sync(state, ctx)
        && (link.seq == 0 || state.last_visit == 0 || now - state.last_visit >= VISIT_IDLE)
}

/// Whether a request changed what the person's other devices should see before their
/// next visit: the stage, an assignment, sequence progress, segments, an impression of
/// a capped content or campaign, or an intent raised.
pub fn shares_changes(bundle: &Bundle, prior: &State, next: &State) -> bool {
    let capped = |id: u32| {
        bundle
            .contents
            .iter()
            .any(|c| c.id == id && c.cap_period.is_some())
            || bundle.campaigns.iter().any(|c| c.id == id)
            || bundle
                .triggers
                .iter()
                .any(|t| t.id == id && t.cap.is_some())
    };
    let impression_moved = next.impressions.iter().any(|n| {
        capped(n.id)
            && prior
                .impressions
                .iter()
                .find(|p| p.id == n.id)
                .is_none_or(|p| p.total != n.total)
    });
    let intent_raised = next.intents.iter().any(|n| {
        prior
            .intents
            .iter()
            .find(|p| p.topic == n.topic)
            .is_none_or(|p| n.score > p.score)
    });
    next.stage != prior.stage
        || next.stage_generation != prior.stage_generation
        || next.experiments != prior.experiments
        || next.sequence != prior.sequence
        || next.segments != prior.segments
        || impression_moved
        || intent_raised
}

/// The push a request ends with, if any, and the sequence number it leaves in the
/// device's new state (`next`, which is changed accordingly): after a missed sync
/// always (the device's changes since its last exchange are still to be counted), else
/// when the request [`shares_changes`].
pub fn plan_push(
    bundle: &Bundle,
    ctx: &Context,
    prior: &State,
    next: &mut State,
    sync: Sync,
    now: UnixSeconds,
) -> Option<Message> {
    let link = next.link?;
    if !may_sync(next, ctx) {
        return None;
    }
    let (seq, from_input) = match sync {
        // The sync carried `seq`; if it landed, the profile expects `seq + 1` next.
        Sync::Missed => (link.seq.saturating_add(1), true),
        Sync::Skipped | Sync::Adopted => {
            if !shares_changes(bundle, prior, next) {
                return None;
            }
            (link.seq, false)
        }
    };
    if let Some(l) = next.link.as_mut() {
        l.seq = seq.saturating_add(1);
    }
    Some(Message {
        op: Op::Push { from_input },
        device: next.visitor,
        seq,
        kind: ctx.visit_kind(),
        now,
        state: next.clone(),
    })
}
