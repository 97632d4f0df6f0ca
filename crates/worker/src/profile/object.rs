//! The `Profile` Durable Object (class `Profile`, binding `PROFILES`): one per person,
//! named by the profile id in hex, and one per pre-link visitor with triggers waiting
//! (`visitor-<id>`), deleted once nothing waits in it.
//!
//! It decides nothing itself: each route loads what `store.rs` holds, asks the core
//! (`micromoment::profile`: exchanges, links, revocations, caps), stores what changed, and
//! answers. Its clock is the Worker's: every message carries `now`, so a profile's
//! history is a function of its messages; only the alarm of delayed triggers runs on
//! the platform's own clock. The routes are in `micromoment::profile::wire`.

use std::cell::RefCell;

use serde::de::DeserializeOwned;
use serde_json::json;
use worker::{durable_object, DurableObject, Env, Request, Response, ResponseBuilder, Result};

use super::store::Store;
use micromoment::destination::Delivery;
use micromoment::profile::wire::{
    route, Check, Checked, Erase, ExchangeWire, Fire, LinkWire, Linked, ReplyWire, Revoke,
};
use micromoment::profile::Profile as Person;

use super::super::cache::{self, Active};
use super::super::platform::{self, log};
use super::super::{error, triggers};

/// How long after a failed enqueue the alarm rings again.
const RETRY_WAITS_MS: i64 = 30_000;

/// One person's profile, or one visitor's waiting triggers.
#[durable_object(alarm)]
pub struct Profile {
    pub(super) state: worker::State,
    pub(super) env: Env,
    /// The profile as last loaded or stored: an object stays in memory between
    /// requests, and it is the only writer of its storage.
    cached: RefCell<Option<Person>>,
}

impl DurableObject for Profile {
    fn new(state: worker::State, env: Env) -> Self {
        Profile {
            state,
            env,
            cached: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        let bytes = req.bytes().await.unwrap_or_default();
        match path.as_str() {
            route::EXCHANGE => self.exchange(&bytes).await,
            route::LINK => self.link(&bytes).await,
            route::REVOKE => self.revoke(&bytes).await,
            route::FIRE => match json_of::<Fire>(&bytes) {
                Ok(fire) => {
                    let done = self.fire(fire).await?;
                    ResponseBuilder::new().from_json(&done)
                }
                Err(e) => error(400, &e),
            },
            route::BACKEND => self.backend(&bytes).await,
            route::ERASE => self.erased_elsewhere(&bytes).await,
            route::CHECK => self.check(&bytes),
            _ => error(404, "not found"),
        }
    }

    /// The alarm: the delayed triggers whose time has come go on the queue.
    async fn alarm(&self) -> Result<Response> {
        self.ring().await?;
        Response::ok("")
    }
}

fn json_of<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("message: {e}"))
}

fn wire_answer(reply: &Linked) -> Result<Response> {
    Ok(ResponseBuilder::new().fixed(ReplyWire::encode(reply)))
}

impl Profile {
    pub(super) fn store(&self) -> Store {
        Store::new(&self.state)
    }

    /// The profile from storage (once per object instance), its tables made first.
    pub(super) fn load(&self) -> Result<Person> {
        if let Some(p) = self.cached.borrow().as_ref() {
            return Ok(p.clone());
        }
        let store = self.store();
        store.migrate()?;
        let person = store.load()?;
        *self.cached.borrow_mut() = Some(person.clone());
        Ok(person)
    }

    /// Writes what changed from `before` to `after`.
    pub(super) fn save(&self, before: &Person, after: &Person, now: i64) -> Result<()> {
        self.store().save(before, after, now)?;
        *self.cached.borrow_mut() = Some(after.clone());
        Ok(())
    }

    /// Forgets the loaded profile: the next request loads it again (after storage was
    /// changed wholesale).
    pub(super) fn forget_cached(&self) {
        *self.cached.borrow_mut() = None;
    }

    pub(super) async fn bundle(&self, now: i64) -> Option<Active> {
        cache::active(&self.env, &self.state, now).await
    }

    async fn exchange(&self, bytes: &[u8]) -> Result<Response> {
        let Some(message) = ExchangeWire::decode(bytes) else {
            return error(400, "not an exchange");
        };
        let Some(active) = self.bundle(message.now).await else {
            return error(503, "no bundle");
        };
        let now = message.now;
        let before = self.load()?;
        let mut after = before.clone();
        let reply = after.exchange(&active.bundle, message);
        self.save(&before, &after, now)?;
        wire_answer(&Linked::Reply(reply))
    }

    /// A link the person confirmed: used once (refused if used, revoked, or older than
    /// an erasure), then the device's sync.
    async fn link(&self, bytes: &[u8]) -> Result<Response> {
        let Some((link, message)) = LinkWire::decode(bytes) else {
            return error(400, "not a link");
        };
        let Some(active) = self.bundle(message.now).await else {
            return error(503, "no bundle");
        };
        let now = message.now;
        let before = self.load()?;
        let mut after = before.clone();
        if let Err(refused) = after.use_link(&link, now) {
            log("info", "identity link refused", &refused.to_string());
            return wire_answer(&Linked::Refused);
        }
        let reply = after.exchange(&active.bundle, message);
        self.save(&before, &after, now)?;
        wire_answer(&Linked::Reply(reply))
    }

    /// A device logged out.
    async fn revoke(&self, bytes: &[u8]) -> Result<Response> {
        let revoke: Revoke = match json_of(bytes) {
            Ok(r) => r,
            Err(e) => return error(400, &e),
        };
        let Some(active) = self.bundle(revoke.now).await else {
            return error(503, "no bundle");
        };
        let before = self.load()?;
        let mut after = before.clone();
        after.revoke_device(&active.bundle, revoke.device, revoke.now);
        self.save(&before, &after, revoke.now)?;
        ResponseBuilder::new().from_json(&json!({"revoked": true}))
    }

    /// Fired triggers and cancels (see `Fire`): for a person, from a device the profile
    /// admits, each trigger within the person's cap (counted here, across devices); for
    /// a visitor object, nothing once the person behind it was erased. Delayed ones are
    /// held until their time (at most [`super::store::MAX_WAITS`] in an object), then
    /// what the request's `unless` events cancel goes, and immediate ones are enqueued
    /// last, after everything this object decides is stored. A visitor object with
    /// nothing left is deleted.
    pub(super) async fn fire(&self, fire: Fire) -> Result<serde_json::Value> {
        let now = fire.now;
        let store = self.store();
        if fire.deliveries.is_empty() && !store.exists()? {
            // Nothing waits here and nothing is added: a cancel writes nothing (no
            // object is left behind).
            return Ok(json!({"sent": 0, "waiting": 0, "cancelled": 0}));
        }
        let mut deliveries = fire.deliveries;
        let mut cancel = fire.cancel;
        let mut capped = 0usize;
        if fire.person {
            // The bundle first: nothing loaded may be held across an await, or a request
            // that came meanwhile (an erasure) would be written over.
            let active = self.bundle(now).await;
            let before = self.load()?;
            if !before.admits(&fire.device, fire.linked_at) {
                log(
                    "info",
                    "fired triggers dropped",
                    "the device was linked before the profile was erased, or logged out",
                );
                deliveries.clear();
                cancel = micromoment::deliver::Cancel::default();
            } else if let Some(active) = active {
                let mut after = before.clone();
                // One fire per trigger, however many destinations it has.
                let mut admitted: Vec<(String, bool)> = Vec::new();
                deliveries.retain(|d| {
                    if let Some((_, ok)) = admitted.iter().find(|(t, _)| *t == d.trigger) {
                        return *ok;
                    }
                    let ok = after.admit_fire(&active.bundle, &d.trigger, now);
                    admitted.push((d.trigger.clone(), ok));
                    ok
                });
                capped = admitted.iter().filter(|(_, ok)| !ok).count();
                self.save(&before, &after, now)?;
            } else {
                deliveries.clear();
            }
        } else {
            store.migrate()?;
            if store.erased_at()?.is_some() {
                // The person this device joined was erased: nothing of it is sent.
                log(
                    "info",
                    "fired triggers dropped",
                    "the person behind this visitor was erased",
                );
                deliveries.clear();
            }
        }
        let (delayed, immediate): (Vec<Delivery>, Vec<Delivery>) =
            deliveries.into_iter().partition(|d| d.delay_secs.is_some());
        let now_ms = platform::now_ms();
        let mut held = 0usize;
        for delivery in &delayed {
            let due = now_ms.saturating_add(delivery.delay_secs.unwrap_or(0).saturating_mul(1000));
            if store.hold(delivery, due)? {
                held += 1;
            }
        }
        if held < delayed.len() {
            log(
                "error",
                "delayed triggers dropped: too many wait",
                &format!("{} of {}", delayed.len() - held, delayed.len()),
            );
        }
        let cancelled = store.cancel(&cancel)?;
        if cancelled > 0 {
            let by = if cancel.all {
                "consent withdrawn".to_owned()
            } else {
                cancel.events.join(", ")
            };
            log(
                "info",
                "delayed trigger cancelled",
                &format!("{cancelled} by {by}"),
            );
        }
        if capped > 0 {
            log(
                "info",
                "trigger capped for the person",
                &format!("{capped} across the person's devices"),
            );
        }
        let waiting = self.schedule().await?;
        let sent = immediate.len();
        triggers::enqueue(&self.env, immediate).await;
        Ok(json!({"sent": sent, "waiting": waiting, "cancelled": cancelled, "capped": capped}))
    }

    /// The person behind this visitor object was erased: nothing of theirs waits or is
    /// sent from here, and the object remembers when (the queue asks).
    async fn erased_elsewhere(&self, bytes: &[u8]) -> Result<Response> {
        let erase: Erase = match json_of(bytes) {
            Ok(e) => e,
            Err(e) => return error(400, &e),
        };
        let store = self.store();
        store.migrate()?;
        store.erase_all()?;
        store.mark_erased(erase.now)?;
        self.forget_cached();
        self.state.storage().delete_alarm().await?;
        ResponseBuilder::new().from_json(&json!({"erased": true}))
    }

    /// Whether a delivery fired at `at` may still go out: not if the person was erased
    /// since. Reads without creating anything.
    fn check(&self, bytes: &[u8]) -> Result<Response> {
        let check: Check = match json_of(bytes) {
            Ok(c) => c,
            Err(e) => return error(400, &e),
        };
        let send = micromoment::profile::after_erasure(self.store().erased_at()?, check.at);
        ResponseBuilder::new().from_json(&Checked { send })
    }

    /// Sets the alarm to the next delivery due, or removes it when nothing waits (and
    /// deletes a visitor object that holds nothing else). Returns how many wait.
    pub(super) async fn schedule(&self) -> Result<usize> {
        let store = self.store();
        let (due, waiting) = store.next_due()?;
        let storage = self.state.storage();
        match due {
            Some(at) => {
                if storage.get_alarm().await? != Some(at) {
                    // An `i64` would be an offset from now: the alarm takes a date.
                    let date = worker::js_sys::Date::new(&worker::wasm_bindgen::JsValue::from_f64(
                        at as f64,
                    ));
                    storage.set_alarm(worker::ScheduledTime::new(date)).await?;
                }
            }
            None => {
                storage.delete_alarm().await?;
                if store.is_empty()? {
                    storage.delete_all().await?;
                    self.forget_cached();
                }
            }
        }
        Ok(waiting)
    }

    /// Sends every delivery that is due to `TRIGGERS`. Each is claimed before it is
    /// sent (the send lets other requests in) and removed once sent; one that cannot be
    /// enqueued waits again, unless a cancel or an erasure removed it meanwhile.
    async fn ring(&self) -> Result<()> {
        let store = self.store();
        if !store.exists()? {
            return Ok(());
        }
        store.migrate()?;
        let now_ms = platform::now_ms();
        let queue = self.env.queue("TRIGGERS").ok();
        let due = store.due(now_ms)?;
        for id in due {
            let Some(text) = store.claim(&id, now_ms)? else {
                continue;
            };
            let delivery = match serde_json::from_str::<Delivery>(&text) {
                Ok(delivery) => delivery,
                Err(e) => {
                    // Unreadable (written by another version): dropped, said so.
                    log(
                        "error",
                        "delayed trigger unreadable, dropped",
                        &format!("{id}: {e}"),
                    );
                    store.sent(&id)?;
                    continue;
                }
            };
            let what = format!("{} to {}", delivery.id, delivery.destination);
            let sent = match &queue {
                Some(queue) => {
                    let mut now = delivery;
                    now.delay_secs = None;
                    queue.send(now).await.map_err(|e| e.to_string())
                }
                None => Err("TRIGGERS is not bound".to_owned()),
            };
            match sent {
                Ok(()) => {
                    store.sent(&id)?;
                    log("info", "delayed trigger due, enqueued", &what);
                }
                Err(e) => {
                    log(
                        "error",
                        "delayed trigger could not be enqueued, will ring again",
                        &format!("{what}: {e}"),
                    );
                    store.unclaim(&id, now_ms + RETRY_WAITS_MS)?;
                }
            }
        }
        self.schedule().await?;
        Ok(())
    }
}
