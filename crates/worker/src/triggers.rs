//! Fired triggers, after the response (docs/triggers.md): where each goes, and nobody
//! can make many of them.
//!
//! - An anonymous visitor's immediate triggers go straight to the Queue `TRIGGERS`; its
//!   delayed ones wait in its own object (`visitor-<id>` of the `Profile` class), which
//!   is deleted once nothing waits in it. The core fires a delayed trigger only for a
//!   returning visitor (a request with a valid token), so no cookie-less request
//!   creates an object.
//! - A linked device's triggers all go to the person's profile object, which counts
//!   them against the person's caps across every device before it enqueues them or
//!   holds them; every `unless` event of a linked device reaches it too, since what it
//!   cancels may have been started on another device.
//! - A client starts at most `MM_TRIGGERS_PER_MINUTE` fires a minute: with the
//!   rate-limiting binding `MM_TRIGGER_LIMIT` when it is bound, else counted in the
//!   isolate. A client is its IPv4 address, or its IPv6 /64 (one subscriber's
//!   network: a /128 each would let one host be thousands of clients). Past it, what
//!   fires is dropped (and logged); cancels still go.
//!
//! Without the `TRIGGERS` or `PROFILES` binding what they carry is logged and dropped.

use std::cell::RefCell;
use std::collections::HashMap;

use worker::Env;

use super::platform::{self, log, Background};
use super::profile::{self as objects, route};
use micromoment::bundle::Bundle;
use micromoment::deliver;
use micromoment::destination::Delivery;
use micromoment::profile::wire::Fire;
use micromoment::token::State;

/// Where one request's fired triggers and cancels go.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// To the queue at once: an anonymous visitor's immediate triggers.
    pub queue: Vec<Delivery>,
    /// To objects, by name: the person's profile, or a visitor's own.
    pub objects: Vec<(String, Fire)>,
}

impl Plan {
    fn fires(&self) -> bool {
        !self.queue.is_empty() || self.objects.iter().any(|(_, f)| !f.deliveries.is_empty())
    }

    /// The plan without anything that fires: what a rate-limited client still gets.
    fn cancels_only(mut self) -> Plan {
        self.queue.clear();
        for (_, fire) in &mut self.objects {
            fire.deliveries.clear();
        }
        self.objects.retain(|(_, f)| !f.cancel.is_empty());
        self
    }
}

/// Where the triggers a request fired (`deliveries`) and the cancels of its `events`
/// go, for the person whose new state is `state`.
pub(crate) fn plan<'a>(
    bundle: &Bundle,
    deliveries: Vec<Delivery>,
    state: &State,
    opted_out: bool,
    now: i64,
    events: impl Iterator<Item = &'a str> + Clone,
) -> Plan {
    let own = deliver::cancelling(bundle, state, opted_out, now, events.clone(), false);
    let mut plan = Plan::default();
    match state.link {
        Some(link) => {
            let cancel = deliver::cancelling(bundle, state, opted_out, now, events, true);
            if !deliveries.is_empty() || !cancel.is_empty() {
                plan.objects.push((
                    objects::profile_object(&link.profile),
                    Fire {
                        deliveries,
                        cancel,
                        person: true,
                        device: state.visitor,
                        linked_at: link.linked_at,
                        now,
                    },
                ));
            }
            // What the device started before it was linked waits in its own object.
            if !own.is_empty() {
                plan.objects.push((
                    objects::visitor_object(&state.visitor),
                    Fire {
                        cancel: own,
                        now,
                        ..Fire::default()
                    },
                ));
            }
        }
        None => {
            let (delayed, queue): (Vec<Delivery>, Vec<Delivery>) =
                deliveries.into_iter().partition(|d| d.delay_secs.is_some());
            plan.queue = queue;
            if !delayed.is_empty() || !own.is_empty() {
                plan.objects.push((
                    objects::visitor_object(&state.visitor),
                    Fire {
                        deliveries: delayed,
                        cancel: own,
                        person: false,
                        device: state.visitor,
                        linked_at: 0,
                        now,
                    },
                ));
            }
        }
    }
    plan
}

/// Carries out `plan` after the response, `client` counted against its rate.
pub(crate) fn send(env: &Env, bg: &impl Background, plan: Plan, client: Option<String>) {
    if plan.queue.is_empty() && plan.objects.is_empty() {
        return;
    }
    let env = env.clone();
    bg.run(Box::pin(async move {
        let plan = if plan.fires() && !allowed(&env, client.as_deref()).await {
            log(
                "info",
                "trigger rate limit reached, fired triggers dropped",
                &format!(
                    "{} per minute per client",
                    platform::config(&env).triggers_per_minute
                ),
            );
            plan.cancels_only()
        } else {
            plan
        };
        for (object, fire) in &plan.objects {
            let done: Result<serde_json::Value, String> =
                objects::call_json(&env, object, route::FIRE, fire).await;
            if let Err(e) = done {
                log(
                    "error",
                    "fired triggers not handed to their object",
                    &format!(
                        "{} to fire, {} to cancel: {e}",
                        fire.deliveries.len(),
                        fire.cancel.events.len()
                    ),
                );
            }
        }
        enqueue(&env, plan.queue).await;
    }));
}

/// Sends deliveries to the queue `TRIGGERS`.
pub(crate) async fn enqueue(env: &Env, deliveries: Vec<Delivery>) {
    if deliveries.is_empty() {
        return;
    }
    let queue = match env.queue("TRIGGERS") {
        Ok(queue) => queue,
        Err(_) => {
            log(
                "error",
                "TRIGGERS is not bound: fired triggers are dropped",
                "add the queue producer binding in wrangler.toml",
            );
            return;
        }
    };
    for mut delivery in deliveries {
        delivery.delay_secs = None;
        let what = format!("{} to {}", delivery.id, delivery.destination);
        if let Err(e) = queue.send(delivery).await {
            log(
                "error",
                "trigger could not be enqueued",
                &format!("{what}: {e}"),
            );
        }
    }
}

/// The keys a fallback window counts, at most: past it the window starts over.
const MAX_COUNTED_CLIENTS: usize = 4096;

thread_local! {
    /// The isolate's own count of fires per client in the current minute, when no
    /// rate-limiting binding is there: (minute, counts).
    static WINDOW: RefCell<(i64, HashMap<String, u32>)> = RefCell::default();
}

/// Whether `client` may fire once more: the `MM_TRIGGER_LIMIT` binding when bound (its
/// own limit applies), else the isolate's count against `MM_TRIGGERS_PER_MINUTE`.
async fn allowed(env: &Env, client: Option<&str>) -> bool {
    let key = client.map_or_else(|| "unknown".to_owned(), micromoment::http::client_key);
    if let Ok(limiter) = env.rate_limiter("MM_TRIGGER_LIMIT") {
        match limiter.limit(key.clone()).await {
            Ok(outcome) => return outcome.success,
            Err(e) => log(
                "error",
                "MM_TRIGGER_LIMIT failed, counting in the isolate",
                &e.to_string(),
            ),
        }
    }
    let limit = platform::config(env).triggers_per_minute;
    let minute = platform::now_ms() / 60_000;
    WINDOW.with(|w| {
        let mut w = w.borrow_mut();
        if w.0 != minute || w.1.len() >= MAX_COUNTED_CLIENTS {
            *w = (minute, HashMap::new());
        }
        let count = w.1.entry(key).or_insert(0);
        *count = count.saturating_add(1);
        *count <= limit
    })
}
