//! One journey per person at the edge (DESIGN §10): the `Profile` Durable Object, the
//! Worker's sync and push around a linked device's request, identity links, logout,
//! and the backend API.
//!
//! The object is one per profile (binding `PROFILES`, named by the profile id in hex),
//! SQLite-backed: a `devices` table of the records `crate::profile` decides over, and a
//! `meta` table for the erasure mark. Everything it decides is the pure core's; it
//! loads, calls `Profile::exchange` (or a backend decision), and stores what changed.
//! Its clock is the Worker's (every message carries `now`), so a profile's history is
//! a function of its messages.
//!
//! The Worker never waits on the object longer than `MM_PROFILE_WAIT_MS` (default
//! 50 ms) and never for a visitor without a profile: their requests do not look for the
//! binding at all. A sync that is late, fails, or finds no binding leaves the request to
//! decide on the device's own state; a push after the response makes up for it.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::future::{select, Either};
use serde::{Deserialize, Serialize};
use serde_json::json;
use worker::{
    durable_object, Context as WorkerContext, DurableObject, Env, Method, Request, RequestInit,
    Response, ResponseBuilder, Result, SqlStorageValue, State as ObjectState,
};

use super::cache::{self, log, Background};
use super::request::Incoming;
use super::{attach_token, entropy, error, now};
use crate::codec::{self, Decode, Encode};
use crate::context::{Channel, Context};
use crate::ids;
use crate::profile::{self, Device, Message, Op, Profile as Devices, Reply, Sync};
use crate::session::{self, Entropy, Request as SessionRequest, Shape, Slots, Visitor};
use crate::time::UnixSeconds;
use crate::token::{
    segment_ok, DeviceKind, IdentityLink, Keys, Link, State, DEFAULT_TTL, MAX_SEGMENTS,
};
use crate::view::state_to_json;

/// The most bytes an exchange body may claim while decoding: two bounded states.
const DECODE_LIMIT: usize = 4 * profile::MAX_PROFILE_BYTES;
/// The largest backend API body read.
const MAX_BACKEND_BODY: usize = 16 * 1024;

// ---------------------------------------------------------------------------------
// The wire between the Worker and the object.

#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct ExchangeWire {
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
struct ReplyWire {
    /// 0 synced, 1 pushed, 2 stale, 3 erased.
    status: u8,
    seq: u32,
    devices: u8,
    view: Vec<u8>,
}

fn kind_code(kind: Option<DeviceKind>) -> u8 {
    kind.map_or(0, |k| u8::try_from(k.index() + 1).unwrap_or(0))
}

fn kind_of(code: u8) -> Option<DeviceKind> {
    DeviceKind::ALL
        .get(usize::from(code).checked_sub(1)?)
        .copied()
}

impl ExchangeWire {
    fn of(message: &Message) -> ExchangeWire {
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

    fn into_message(self) -> Option<Message> {
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
}

impl ReplyWire {
    fn of(reply: &Reply) -> ReplyWire {
        match reply {
            Reply::Synced { view, seq, devices } => ReplyWire {
                status: 0,
                seq: *seq,
                devices: *devices,
                view: view.to_image(),
            },
            Reply::Pushed { seq } => ReplyWire {
                status: 1,
                seq: *seq,
                devices: 0,
                view: Vec::new(),
            },
            Reply::Stale => ReplyWire {
                status: 2,
                seq: 0,
                devices: 0,
                view: Vec::new(),
            },
            Reply::Erased => ReplyWire {
                status: 3,
                seq: 0,
                devices: 0,
                view: Vec::new(),
            },
        }
    }

    fn into_reply(self) -> Option<Reply> {
        Some(match self.status {
            0 => Reply::Synced {
                view: Box::new(State::from_image(&self.view)?),
                seq: self.seq,
                devices: self.devices,
            },
            1 => Reply::Pushed { seq: self.seq },
            2 => Reply::Stale,
            3 => Reply::Erased,
            _ => return None,
        })
    }
}

// ---------------------------------------------------------------------------------
// The Durable Object.

/// One person's profile (class `Profile`, binding `PROFILES`).
#[durable_object(alarm)]
pub struct Profile {
    state: ObjectState,
    env: Env,
    /// The profile as last loaded or stored: an object stays in memory between
    /// requests, and it is the only writer of its storage.
    cached: RefCell<Option<Devices>>,
}

impl Background for ObjectState {
    fn run(&self, future: Pin<Box<dyn Future<Output = ()>>>) {
        self.wait_until(future);
    }
}

/// An event of a backend call: its name and value.
#[derive(Serialize, Deserialize, Default)]
struct BackendEvent {
    name: String,
    #[serde(default)]
    value: Option<f64>,
}

/// A backend API call as the Worker hands it to the object.
#[derive(Serialize, Deserialize, Default)]
struct BackendCall {
    now: UnixSeconds,
    profile: String,
    /// `get`, `erase`, `events` or `decide`.
    action: String,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    events: Vec<BackendEvent>,
    #[serde(default)]
    slots: Vec<String>,
    #[serde(default)]
    context: Option<serde_json::Value>,
    #[serde(default)]
    segments_add: Vec<String>,
    #[serde(default)]
    segments_remove: Vec<String>,
    /// The caller's `Idempotency-Key`: a call retried with the same key is applied once.
    #[serde(default)]
    idempotency_key: Option<String>,
    /// SHA-256 of the route and the body: a key reused with another call is refused.
    #[serde(default)]
    fingerprint: String,
}

/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_WINDOW: UnixSeconds = 24 * 3600;

impl DurableObject for Profile {
    fn new(state: ObjectState, env: Env) -> Self {
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
            "/exchange" => self.exchange(&bytes).await,
            "/backend" => self.backend(&bytes).await,
            "/waits" => self.waits(&bytes).await,
            _ => error(404, "not found"),
        }
    }

    /// The alarm: the delayed triggers whose time has come go on the queue.
    async fn alarm(&self) -> Result<Response> {
        self.ring().await?;
        Response::ok("")
    }
}

impl Profile {
    fn sql(&self) -> worker::SqlStorage {
        self.state.storage().sql()
    }

    fn ensure_tables(&self) -> Result<()> {
        let sql = self.sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS devices (id BLOB PRIMARY KEY, seq INTEGER NOT NULL, \
             kind INTEGER NOT NULL, own BLOB NOT NULL, base BLOB NOT NULL, input BLOB NOT NULL, \
             seen_at INTEGER NOT NULL)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, answer TEXT NOT NULL, \
             at INTEGER NOT NULL, fingerprint TEXT NOT NULL DEFAULT '')",
            None,
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS waits (id TEXT PRIMARY KEY, due_ms INTEGER NOT NULL, \
             unless TEXT, delivery TEXT NOT NULL)",
            None,
        )?;
        Ok(())
    }

    /// The profile from storage (once per object instance).
    fn load(&self) -> Result<Devices> {
        if let Some(p) = self.cached.borrow().as_ref() {
            return Ok(p.clone());
        }
        self.ensure_tables()?;
        let sql = self.sql();
        let mut devices = Vec::new();
        for row in sql
            .exec(
                "SELECT id, seq, kind, own, base, input, seen_at FROM devices ORDER BY id",
                None,
            )?
            .raw()
        {
            let row = row?;
            match device_of_row(&row) {
                Some(device) => devices.push(device),
                // Written by another version (or damaged): the device is dropped from
                // the profile and joins again at its next sync, as an evicted one.
                None => log(
                    "error",
                    "profile device record unreadable, dropped",
                    &format!("state image version {}", crate::token::IMAGE_VERSION),
                ),
            }
        }
        let erased_at = sql
            .exec("SELECT value FROM meta WHERE key = 'erased_at'", None)?
            .raw()
            .next()
            .and_then(|r| r.ok())
            .and_then(|r| match r.first() {
                Some(SqlStorageValue::Integer(t)) => Some(*t),
                _ => None,
            });
        devices.sort_by_key(|d: &Device| d.id);
        let profile = Devices { devices, erased_at };
        *self.cached.borrow_mut() = Some(profile.clone());
        Ok(profile)
    }

    /// Writes what changed from `before` to `after`.
    fn store(&self, before: &Devices, after: &Devices) -> Result<()> {
        let sql = self.sql();
        for d in &after.devices {
            if before.devices.iter().any(|b| b == d) {
                continue;
            }
            sql.exec(
                "INSERT OR REPLACE INTO devices (id, seq, kind, own, base, input, seen_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![
                    SqlStorageValue::Blob(d.id.to_vec()),
                    SqlStorageValue::Integer(i64::from(d.seq)),
                    SqlStorageValue::Integer(i64::from(kind_code(d.kind))),
                    SqlStorageValue::Blob(d.own.to_image()),
                    SqlStorageValue::Blob(d.base.to_image()),
                    SqlStorageValue::Blob(d.input.to_image()),
                    SqlStorageValue::Integer(d.seen_at),
                ],
            )?;
        }
        for b in &before.devices {
            if !after.devices.iter().any(|d| d.id == b.id) {
                sql.exec(
                    "DELETE FROM devices WHERE id = ?",
                    vec![SqlStorageValue::Blob(b.id.to_vec())],
                )?;
            }
        }
        if before.erased_at != after.erased_at {
            match after.erased_at {
                Some(t) => sql.exec(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('erased_at', ?)",
                    vec![SqlStorageValue::Integer(t)],
                )?,
                None => sql.exec("DELETE FROM meta WHERE key = 'erased_at'", None)?,
            };
        }
        *self.cached.borrow_mut() = Some(after.clone());
        Ok(())
    }

    async fn bundle(&self, now: UnixSeconds) -> Option<cache::Active> {
        cache::active(&self.env, &self.state, now).await
    }

    async fn exchange(&self, bytes: &[u8]) -> Result<Response> {
        let Some(message) = codec::decode::<ExchangeWire, DECODE_LIMIT>(bytes)
            .ok()
            .and_then(ExchangeWire::into_message)
        else {
            return error(400, "not an exchange");
        };
        let Some(active) = self.bundle(message.now).await else {
            return error(503, "no bundle");
        };
        let before = self.load()?;
        let mut after = before.clone();
        let reply = after.exchange(&active.bundle, message);
        self.store(&before, &after)?;
        let body = codec::encode(&ReplyWire::of(&reply)).unwrap_or_default();
        Ok(ResponseBuilder::new().fixed(body))
    }

    async fn backend(&self, bytes: &[u8]) -> Result<Response> {
        let call: BackendCall = match serde_json::from_slice(bytes) {
            Ok(call) => call,
            Err(e) => return error(400, &e.to_string()),
        };
        let Some(active) = self.bundle(call.now).await else {
            return error(503, "no bundle");
        };
        let bundle = &active.bundle;
        let before = self.load()?;
        let mut after = before.clone();
        let now = call.now;
        match call.action.as_str() {
            "get" => {
                if !before.exists() {
                    return error(404, "no such profile");
                }
                let mut view = before.view(bundle, now);
                // The person's state is a linked one: shown with what only linked
                // states carry (visits per device type, the last channel).
                view.link = Some(Link {
                    profile: ids::parse_hex128(&call.profile).unwrap_or([0; 16]),
                    seq: 0,
                    devices: before.device_count(),
                });
                let devices: Vec<serde_json::Value> = before
                    .devices
                    .iter()
                    .filter(|d| d.id != profile::RETIRED)
                    .map(|d| {
                        json!({
                            "device": if profile::is_backend(&d.id) {
                                backend_name(&d.id)
                            } else {
                                ids::hex128_string(&d.id)
                            },
                            "kind": d.kind.map(DeviceKind::as_str),
                            "visits": d.own.visits,
                            "seen_at": crate::time::rfc3339(d.seen_at),
                        })
                    })
                    .collect();
                return ResponseBuilder::new()
                    .with_header("Cache-Control", "no-store")?
                    .from_json(&json!({
                        "profile": call.profile,
                        "devices": before.device_count(),
                        "records": devices,
                        "stage": stage_name(bundle, &view),
                        "state": state_to_json(bundle, &view),
                    }));
            }
            "erase" => {
                after.erase(now);
                self.ensure_tables()?;
                self.sql().exec("DELETE FROM devices", None)?;
                // What waited to be sent about the person goes with the rest.
                self.sql().exec("DELETE FROM waits", None)?;
                self.sql().exec("DELETE FROM idempotency", None)?;
                self.state.storage().delete_alarm().await?;
                let erased = Devices {
                    devices: Vec::new(),
                    erased_at: None,
                };
                self.store(&erased, &after)?;
                return ResponseBuilder::new()
                    .with_header("Cache-Control", "no-store")?
                    .from_json(&json!({"profile": call.profile, "erased": true}));
            }
            "events" | "decide" => {}
            _ => return error(400, "unknown backend call"),
        }
        let Some(channel) = call.channel.as_deref().and_then(Channel::parse) else {
            return error(400, "unknown channel");
        };
        let mut context: Context = match call.context {
            Some(value) => match serde_json::from_value(value) {
                Ok(ctx) => ctx,
                Err(e) => return error(400, &format!("context: {e}")),
            },
            None => Context::default(),
        };
        context.channel = channel;
        match self.replayed(call.idempotency_key.as_deref(), &call.fingerprint)? {
            Replay::First => {}
            Replay::Same(answer) => {
                return ResponseBuilder::new()
                    .with_header("Cache-Control", "no-store")?
                    .with_header("Idempotent-Replayed", "true")?
                    .from_json(&answer)
            }
            Replay::Conflict => {
                return error(
                    422,
                    "Idempotency-Key was used for another call in the last 24 hours: use a new key",
                )
            }
        }
        let profile_id = ids::parse_hex128(&call.profile).unwrap_or([0; 16]);
        let mut prior = after.backend_prior(bundle, channel, now);
        prior.visitor = profile_id;
        prior.link = Some(Link {
            profile: profile_id,
            seq: 0,
            devices: after.device_count(),
        });
        let request = SessionRequest::new(
            Visitor::State(&prior),
            &context,
            now,
            Entropy::Fixed(profile_id),
        );
        let (answer, outcome, events) = if call.action == "events" {
            let names: Vec<String> = call.events.iter().map(|e| e.name.clone()).collect();
            let outcome = session::events(bundle, None, &request, &names);
            let events: Vec<crate::record::Event<'_>> = call
                .events
                .iter()
                .map(|e| crate::record::Event {
                    name: &e.name,
                    value: e.value,
                })
                .collect();
            let mut next = outcome.decision.state.clone();
            for s in &call.segments_add {
                if segment_ok(s) && !next.segments.contains(s) {
                    next.segments.push(s.clone());
                }
            }
            after.backend_record(bundle, channel, &prior, &next, now);
            for s in &call.segments_remove {
                after.remove_segment(s);
            }
            let answer = json!({
                "profile": call.profile,
                "stage": outcome.decision.stage,
                "devices": after.device_count(),
            });
            (answer, outcome, events)
        } else {
            let names: Vec<&str> = call.slots.iter().map(String::as_str).collect();
            let request = SessionRequest {
                slots: Slots::Names(&names),
                ..request
            };
            let outcome = match session::decide(bundle, None, &request) {
                Ok(outcome) => outcome,
                Err(unknown) => return error(400, &unknown.to_string()),
            };
            after.backend_record(bundle, channel, &prior, &outcome.decision.state, now);
            (
                session::answer(bundle, &outcome, Shape::Edge),
                outcome,
                Vec::new(),
            )
        };
        self.store(&before, &after)?;
        self.remember(
            call.idempotency_key.as_deref(),
            &call.fingerprint,
            &answer,
            now,
        )?;
        // Records and triggers only once what they report is stored.
        super::after_response(
            &self.env,
            &self.state,
            &active,
            &outcome.decision,
            &context,
            &events,
        );
        ResponseBuilder::new()
            .with_header("Cache-Control", "no-store")?
            .from_json(&answer)
    }
}

/// How long after a failed enqueue the alarm rings again.
const RETRY_WAITS_MS: i64 = 30_000;

impl Profile {
    /// `POST /waits`: holds delayed deliveries until their time, cancels those whose
    /// `unless` event came, and sets the alarm for the next one due.
    async fn waits(&self, bytes: &[u8]) -> Result<Response> {
        let waits: super::triggers::Waits = match serde_json::from_slice(bytes) {
            Ok(waits) => waits,
            Err(e) => return error(400, &format!("waits: {e}")),
        };
        if waits.add.is_empty() && !self.has_waits()? {
            // Nothing waits here: a cancel writes nothing (no object is left behind).
            return ResponseBuilder::new().from_json(&json!({"waiting": 0, "cancelled": 0}));
        }
        self.ensure_tables()?;
        let sql = self.sql();
        let now_ms = worker::Date::now().as_millis() as i64;
        for delivery in &waits.add {
            let due = now_ms.saturating_add(delivery.delay_secs.unwrap_or(0).saturating_mul(1000));
            sql.exec(
                "INSERT OR IGNORE INTO waits (id, due_ms, unless, delivery) VALUES (?, ?, ?, ?)",
                vec![
                    SqlStorageValue::String(format!("{}/{}", delivery.id, delivery.destination)),
                    SqlStorageValue::Integer(due),
                    delivery
                        .unless
                        .clone()
                        .map_or(SqlStorageValue::Null, SqlStorageValue::String),
                    SqlStorageValue::String(serde_json::to_string(delivery).unwrap_or_default()),
                ],
            )?;
        }
        let mut cancelled = 0;
        if waits.cancel_all {
            cancelled += sql.exec("DELETE FROM waits", None)?.rows_written();
        }
        for event in &waits.cancel {
            cancelled += sql
                .exec(
                    "DELETE FROM waits WHERE unless = ?",
                    vec![SqlStorageValue::String(event.clone())],
                )?
                .rows_written();
        }
        if cancelled > 0 {
            let by = if waits.cancel_all {
                "consent withdrawn".to_owned()
            } else {
                waits.cancel.join(", ")
            };
            log(
                "info",
                "delayed trigger cancelled",
                &format!("{cancelled} by {by}"),
            );
        }
        let waiting = self.schedule(None).await?;
        ResponseBuilder::new().from_json(&json!({"waiting": waiting, "cancelled": cancelled}))
    }

    /// Whether this object has ever held a waiting trigger.
    fn has_waits(&self) -> Result<bool> {
        Ok(self
            .sql()
            .exec(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'waits'",
                None,
            )?
            .raw()
            .next()
            .is_some())
    }

    /// Sets the alarm to the earliest waiting delivery (not before `not_before`), or
    /// removes it when nothing waits. Returns how many wait.
    async fn schedule(&self, not_before: Option<i64>) -> Result<usize> {
        let row = self
            .sql()
            .exec("SELECT MIN(due_ms), COUNT(*) FROM waits", None)?
            .raw()
            .next()
            .and_then(|r| r.ok())
            .unwrap_or_default();
        let int = |i: usize| match row.get(i) {
            Some(SqlStorageValue::Integer(n)) => Some(*n),
            Some(SqlStorageValue::Float(f)) => Some(*f as i64),
            _ => None,
        };
        let storage = self.state.storage();
        match int(0) {
            Some(due) => {
                let at = not_before.map_or(due, |t| due.max(t));
                if storage.get_alarm().await? != Some(at) {
                    // An `i64` would be an offset from now: the alarm takes a date.
                    let date = worker::js_sys::Date::new(&worker::wasm_bindgen::JsValue::from_f64(
                        at as f64,
                    ));
                    storage.set_alarm(worker::ScheduledTime::new(date)).await?;
                }
            }
            None => storage.delete_alarm().await?,
        }
        Ok(usize::try_from(int(1).unwrap_or(0)).unwrap_or(0))
    }

    /// Sends every delivery that is due to `TRIGGERS`; one that cannot be enqueued
    /// waits for the next ring (30 s later).
    async fn ring(&self) -> Result<()> {
        self.ensure_tables()?;
        let now_ms = worker::Date::now().as_millis() as i64;
        let due: Vec<String> = self
            .sql()
            .exec(
                "SELECT id FROM waits WHERE due_ms <= ? ORDER BY due_ms",
                vec![SqlStorageValue::Integer(now_ms)],
            )?
            .raw()
            .filter_map(|r| r.ok())
            .filter_map(|r| match r.first() {
                Some(SqlStorageValue::String(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        let queue = self.env.queue("TRIGGERS").ok();
        let mut failed = false;
        for id in due {
            // Claimed just before it is sent: the send lets other requests in, and an
            // erasure or a cancel that came meanwhile has deleted what it stops.
            let claimed = self
                .sql()
                .exec(
                    "DELETE FROM waits WHERE id = ? RETURNING due_ms, unless, delivery",
                    vec![SqlStorageValue::String(id.clone())],
                )?
                .raw()
                .next()
                .and_then(|r| r.ok());
            let Some(row) = claimed else { continue };
            let text = match row.get(2) {
                Some(SqlStorageValue::String(text)) => text.clone(),
                _ => String::new(),
            };
            let delivery = match serde_json::from_str::<crate::deliver::Delivery>(&text) {
                Ok(delivery) => delivery,
                Err(e) => {
                    // Unreadable (written by another version): dropped, said so.
                    log(
                        "error",
                        "delayed trigger unreadable, dropped",
                        &format!("{id}: {e}"),
                    );
                    continue;
                }
            };
            let what = format!("{} to {}", delivery.id, delivery.destination);
            let sent = match &queue {
                Some(queue) => {
                    let mut now = delivery.clone();
                    now.delay_secs = None;
                    queue.send(now).await.map_err(|e| e.to_string())
                }
                None => Err("TRIGGERS is not bound".to_owned()),
            };
            match sent {
                Ok(()) => log("info", "delayed trigger due, enqueued", &what),
                Err(e) => {
                    log(
                        "error",
                        "delayed trigger could not be enqueued, will ring again",
                        &format!("{what}: {e}"),
                    );
                    failed = true;
                    // Back in, as it was, for the next ring.
                    self.sql().exec(
                        "INSERT OR IGNORE INTO waits (id, due_ms, unless, delivery) VALUES (?, ?, ?, ?)",
                        vec![
                            SqlStorageValue::String(id),
                            row.first().cloned().unwrap_or(SqlStorageValue::Integer(now_ms)),
                            row.get(1).cloned().unwrap_or(SqlStorageValue::Null),
                            SqlStorageValue::String(text),
                        ],
                    )?;
                }
            }
        }
        self.schedule(failed.then(|| now_ms + RETRY_WAITS_MS))
            .await?;
        Ok(())
    }

    /// What a call with this `Idempotency-Key` and `fingerprint` was answered before.
    fn replayed(&self, key: Option<&str>, fingerprint: &str) -> Result<Replay> {
        let Some(key) = key else {
            return Ok(Replay::First);
        };
        self.ensure_tables()?;
        let row = self
            .sql()
            .exec(
                "SELECT answer, fingerprint FROM idempotency WHERE key = ?",
                vec![SqlStorageValue::String(key.to_owned())],
            )?
            .raw()
            .next()
            .and_then(|r| r.ok());
        let Some(row) = row else {
            return Ok(Replay::First);
        };
        Ok(match (row.first(), row.get(1)) {
            (Some(SqlStorageValue::String(answer)), Some(SqlStorageValue::String(f)))
                if f == fingerprint =>
            {
                serde_json::from_str(answer).map_or(Replay::First, Replay::Same)
            }
            _ => Replay::Conflict,
        })
    }

    /// Remembers the answer to a call with an `Idempotency-Key` for a day.
    fn remember(
        &self,
        key: Option<&str>,
        fingerprint: &str,
        answer: &serde_json::Value,
        now: UnixSeconds,
    ) -> Result<()> {
        let Some(key) = key else { return Ok(()) };
        let sql = self.sql();
        sql.exec(
            "DELETE FROM idempotency WHERE at < ?",
            vec![SqlStorageValue::Integer(now - IDEMPOTENCY_WINDOW)],
        )?;
        sql.exec(
            "INSERT OR REPLACE INTO idempotency (key, answer, at, fingerprint) VALUES (?, ?, ?, ?)",
            vec![
                SqlStorageValue::String(key.to_owned()),
                SqlStorageValue::String(answer.to_string()),
                SqlStorageValue::Integer(now),
                SqlStorageValue::String(fingerprint.to_owned()),
            ],
        )?;
        Ok(())
    }
}

/// What an `Idempotency-Key` was used for before.
enum Replay {
    /// Not in the last 24 hours: apply the call.
    First,
    /// The same call: its first answer.
    Same(serde_json::Value),
    /// Another call.
    Conflict,
}

fn backend_name(id: &[u8; 16]) -> String {
    if *id == profile::RETIRED {
        return "retired".into();
    }
    Channel::from_code(id[15]).map_or("backend".into(), |c| format!("backend:{}", c.as_str()))
}

fn stage_name<'b>(bundle: &'b crate::Bundle, state: &State) -> &'b str {
    let index = state
        .stage
        .and_then(|id| bundle.stages.iter().position(|s| s.id == id))
        .unwrap_or(0);
    bundle.stages.get(index).map_or("", |s| s.name.as_str())
}

fn device_of_row(row: &[SqlStorageValue]) -> Option<Device> {
    let blob = |i: usize| match row.get(i) {
        Some(SqlStorageValue::Blob(b)) => Some(b.as_slice()),
        _ => None,
    };
    let int = |i: usize| match row.get(i) {
        Some(SqlStorageValue::Integer(n)) => Some(*n),
        Some(SqlStorageValue::Float(f)) => Some(*f as i64),
        _ => None,
    };
    Some(Device {
        id: blob(0)?.try_into().ok()?,
        seq: u32::try_from(int(1)?).ok()?,
        kind: kind_of(u8::try_from(int(2)?).ok()?),
        own: State::from_image(blob(3)?)?,
        base: State::from_image(blob(4)?)?,
        input: State::from_image(blob(5)?)?,
        seen_at: int(6)?,
    })
}

// ---------------------------------------------------------------------------------
// The Worker's side.

/// The object of a profile, if the binding is there.
fn stub(env: &Env, profile: &[u8; 16]) -> Option<worker::Stub> {
    let namespace = match env.durable_object("PROFILES") {
        Ok(ns) => ns,
        Err(_) => {
            log(
                "error",
                "PROFILES is not bound: linked devices do not sync",
                "add the Durable Object binding in wrangler.toml",
            );
            return None;
        }
    };
    namespace
        .id_from_name(&ids::hex128_string(profile))
        .and_then(|id| id.get_stub())
        .ok()
}

async fn send(stub: worker::Stub, message: Message) -> std::result::Result<Reply, String> {
    let body = codec::encode(&ExchangeWire::of(&message)).map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(
        worker::js_sys::Uint8Array::from(body.as_slice()).into(),
    ));
    let request =
        Request::new_with_init("https://profile/exchange", &init).map_err(|e| e.to_string())?;
    let mut response = stub
        .fetch_with_request(request)
        .await
        .map_err(|e| e.to_string())?;
    if response.status_code() != 200 {
        return Err(format!("profile answered {}", response.status_code()));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    codec::decode::<ReplyWire, DECODE_LIMIT>(&bytes)
        .ok()
        .and_then(ReplyWire::into_reply)
        .ok_or_else(|| "profile answer unreadable".to_owned())
}

/// A sync still on its way when the request stopped waiting for it.
pub(crate) type Pending = Pin<Box<dyn Future<Output = std::result::Result<Reply, String>>>>;

/// Who a request is, ready for `session`: the verified state (with the profile's view
/// adopted, for a linked device that synced), how it relates to the profile, and a sync
/// that did not answer in time.
pub(crate) struct Prepared {
    /// The verified state; `None` when the visitor is new or the token was refused
    /// (`session` then says why).
    pub state: Option<State>,
    /// For `session::Request::sync`.
    pub sync: Sync,
    /// A late sync, to await after the response.
    pub pending: Option<Pending>,
}

impl Prepared {
    /// The visitor as the request names it, with no profile work (a preview).
    pub fn untouched() -> Prepared {
        Prepared {
            state: None,
            sync: Sync::Skipped,
            pending: None,
        }
    }

    /// The visitor to hand `session`.
    pub fn visitor<'a>(&'a self, incoming: &'a Incoming) -> Visitor<'a> {
        match &self.state {
            Some(state) => Visitor::State(state),
            None => incoming.visitor(),
        }
    }
}

/// Verifies the visitor and, for a linked device at identification or on a new visit,
/// syncs with its profile, waiting at most `MM_PROFILE_WAIT_MS`. A visitor without a
/// profile costs one token verification, as before: no binding is looked up.
pub(crate) async fn prepare(
    env: &Env,
    incoming: &Incoming,
    keys: Option<&Keys>,
    now: UnixSeconds,
) -> Prepared {
    let state = match session::verify(incoming.visitor(), keys, now) {
        Ok(state) => state.into_owned(),
        Err(_) => {
            return Prepared {
                state: None,
                sync: Sync::Skipped,
                pending: None,
            }
        }
    };
    let Some(link) = state.link else {
        return Prepared {
            state: Some(state),
            sync: Sync::Skipped,
            pending: None,
        };
    };
    if !profile::needs_sync(&state, &incoming.context, now) {
        return Prepared {
            state: Some(state),
            sync: Sync::Skipped,
            pending: None,
        };
    }
    let Some(stub) = stub(env, &link.profile) else {
        return Prepared {
            state: Some(state),
            sync: Sync::Skipped,
            pending: None,
        };
    };
    let message = Message {
        op: Op::Sync,
        device: state.visitor,
        seq: link.seq,
        kind: incoming.context.visit_kind(),
        now,
        state: state.clone(),
    };
    let wait = Duration::from_millis(super::config(env).profile_wait_ms);
    let exchange: Pending = Box::pin(send(stub, message));
    let delay = Box::pin(worker::Delay::from(wait));
    match select(exchange, delay).await {
        Either::Left((Ok(Reply::Synced { view, seq, devices }), _)) => {
            let mut adopted = profile::adopt(&state, &view, devices);
            if let Some(l) = adopted.link.as_mut() {
                l.seq = seq;
            }
            Prepared {
                state: Some(adopted),
                sync: Sync::Adopted,
                pending: None,
            }
        }
        Either::Left((Ok(Reply::Erased), _)) => {
            // The person's data is gone: this device starts as a new visitor.
            let fresh = State::new_visitor(entropy(), now, DEFAULT_TTL);
            Prepared {
                state: Some(fresh),
                sync: Sync::Skipped,
                pending: None,
            }
        }
        Either::Left((Ok(_), _)) => Prepared {
            state: Some(state),
            sync: Sync::Missed,
            pending: None,
        },
        Either::Left((Err(e), _)) => {
            log("error", "profile sync failed", &e);
            Prepared {
                state: Some(state),
                sync: Sync::Missed,
                pending: None,
            }
        }
        Either::Right(((), late)) => {
            log(
                "info",
                "profile sync late, deciding on the device's state",
                &format!("no answer within {} ms", wait.as_millis()),
            );
            Prepared {
                state: Some(state),
                sync: Sync::Missed,
                pending: Some(late),
            }
        }
    }
}

/// After the response: waits for a late sync, then sends the request's push.
pub(crate) fn after(
    env: &Env,
    ctx: &WorkerContext,
    pending: Option<Pending>,
    push: Option<Message>,
) {
    if pending.is_none() && push.is_none() {
        return;
    }
    let env = env.clone();
    ctx.wait_until(async move {
        if let Some(late) = pending {
            if let Err(e) = late.await {
                log("error", "profile sync failed", &e);
            }
        }
        let Some(push) = push else { return };
        let Some(link) = push.state.link else { return };
        let Some(stub) = stub(&env, &link.profile) else {
            return;
        };
        if let Err(e) = send(stub, push).await {
            log("error", "profile push failed", &e);
        }
    });
}

// ---------------------------------------------------------------------------------
// Identity links and logout.

/// `GET …?mm_link=<link>`: a `302` to the same URL without it, linking the device when
/// the link verifies (DESIGN §10). An expired, forged or unreadable link is ignored:
/// the redirect alone, the device as it was.
pub(crate) fn open_link(
    req: &Request,
    env: &Env,
    incoming: &Incoming,
    text: &str,
) -> Result<Response> {
    let now = now();
    let mut clean = req.url()?;
    let kept: Vec<(String, String)> = clean
        .query_pairs()
        .filter(|(k, _)| k != "mm_link")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if kept.is_empty() {
        clean.set_query(None);
    } else {
        clean.query_pairs_mut().clear().extend_pairs(kept);
    }
    let location = same_site_location(clean.path(), clean.query());
    let response = ResponseBuilder::new()
        .with_status(302)
        .with_header("Location", &location)?
        .with_header("Cache-Control", "no-store")?
        .with_header("Referrer-Policy", "no-referrer")?
        .fixed(Vec::new());
    let keys = cache::keys(env);
    let Some(keys) = keys.as_deref() else {
        return Ok(response);
    };
    let current = session::verify(incoming.visitor(), Some(keys), now)
        .ok()
        .map(std::borrow::Cow::into_owned);
    let remembered = current.clone().unwrap_or_default();
    if crate::decide::opted_out(&incoming.context, &remembered) {
        // No consent to personalize: no journey token is written, linked or not.
        log(
            "info",
            "identity link ignored",
            "the visitor refused personalization (Sec-GPC or mm_consent=0)",
        );
        return Ok(response);
    }
    let link = match IdentityLink::verify(text, keys, now) {
        Ok(link) => link,
        Err(e) => {
            log("info", "identity link ignored", &e.to_string());
            return Ok(response);
        }
    };
    let linked = match current {
        // Already this person's: nothing to change.
        Some(s) if s.link.map(|l| l.profile) == Some(link.profile) => None,
        // Another person's device (a shared tablet): it starts from the new person's
        // journey and brings nothing of the first one's.
        Some(s) if s.link.is_some() => Some(linked_state(
            State::new_visitor(entropy(), now, DEFAULT_TTL),
            link.profile,
        )),
        // An anonymous device: its history joins the profile at the first sync.
        Some(s) => Some(linked_state(s, link.profile)),
        None => Some(linked_state(
            State::new_visitor(entropy(), now, DEFAULT_TTL),
            link.profile,
        )),
    };
    cache::log(
        "info",
        "identity link opened",
        &format!("campaign {}", link.campaign.as_deref().unwrap_or("(none)")),
    );
    if let Some(mut state) = linked {
        state.reissue(now, DEFAULT_TTL);
        if let Ok(token) = crate::token::sign(&state, keys) {
            attach_token(response.headers(), incoming, Some(&token))?;
        }
    }
    Ok(response)
}

/// The redirect target of an opened link: the path and query on this site. A path
/// that starts with `//` or `/\` would be read by a browser as another host
/// (`//evil.example/x`): its leading slashes collapse to one.
pub(crate) fn same_site_location(path: &str, query: Option<&str>) -> String {
    let rest = path.trim_start_matches(['/', '\\']);
    match query {
        Some(q) => format!("/{rest}?{q}"),
        None => format!("/{rest}"),
    }
}

fn linked_state(mut state: State, profile: [u8; 16]) -> State {
    state.link = Some(Link {
        profile,
        seq: 0,
        devices: 1,
    });
    state
}

/// `POST /v1/identity/forget` (logout): the device is unlinked and starts as a new
/// visitor; the profile keeps what the device contributed.
pub(crate) fn forget(req: &Request, env: &Env, incoming: &Incoming) -> Result<Response> {
    if cross_site(req) {
        // Another site's form must not log the visitor out.
        return error(
            403,
            "a logout must come from this site (Origin or Sec-Fetch-Site)",
        );
    }
    let now = now();
    let remembered = session::verify(incoming.visitor(), cache::keys(env).as_deref(), now)
        .map(std::borrow::Cow::into_owned)
        .unwrap_or_default();
    if !incoming.app && crate::decide::opted_out(&incoming.context, &remembered) {
        // No consent: no new token is written, and the linked one is removed.
        let response = ResponseBuilder::new()
            .with_header("Cache-Control", "no-store")?
            .from_json(&json!({"token": null}))?;
        response
            .headers()
            .append("Set-Cookie", &session::clear_cookie())?;
        return Ok(response);
    }
    let keys = cache::keys(env);
    let mut fresh = State::new_visitor(entropy(), now, DEFAULT_TTL);
    fresh.reissue(now, DEFAULT_TTL);
    let token = keys
        .as_deref()
        .and_then(|k| crate::token::sign(&fresh, k).ok());
    let response = ResponseBuilder::new()
        .with_header("Cache-Control", "no-store")?
        .from_json(&json!({"token": token}))?;
    attach_token(response.headers(), incoming, token.as_deref())?;
    Ok(response)
}

/// Whether a browser says the request does not come from this origin: a
/// `Sec-Fetch-Site` other than `same-origin` or `none` (a sibling subdomain is another
/// site's content here), or an `Origin` that is `null` (a sandboxed frame) or names
/// another host. A request with neither header (not a browser, or one too old to send
/// them) is let through: logout needs no secret, so it must not need one either.
fn cross_site(req: &Request) -> bool {
    let header = |name: &str| req.headers().get(name).ok().flatten();
    if let Some(site) = header("Sec-Fetch-Site") {
        if site != "same-origin" && site != "none" {
            return true;
        }
    }
    let Some(origin) = header("Origin") else {
        return false;
    };
    let Ok(url) = req.url() else { return true };
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    };
    let given = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .trim_end_matches('/');
    origin == "null" || !given.eq_ignore_ascii_case(&host)
}

// ---------------------------------------------------------------------------------
// The backend API.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsBody {
    #[serde(default)]
    events: Vec<EventItem>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    context: Option<serde_json::Value>,
    #[serde(default)]
    segments: Option<SegmentChanges>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventItem {
    name: String,
    #[serde(default)]
    value: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SegmentChanges {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DecideBody {
    slots: Vec<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    context: Option<serde_json::Value>,
}

/// `MM_BACKEND_TOKEN` as set (a secret, or a var in development).
fn backend_token(env: &Env) -> Option<String> {
    env.secret("MM_BACKEND_TOKEN")
        .ok()
        .map(|s| s.to_string())
        .or_else(|| env.var("MM_BACKEND_TOKEN").ok().map(|v| v.to_string()))
        .filter(|s| !s.is_empty())
}

/// The profiles' part of `/v1/bundle`'s health: whether the `PROFILES` binding is there
/// (without it linked devices decide on their own state) and whether the backend API
/// has its bearer token (without it every call is `401`).
pub(crate) fn health(env: &Env) -> serde_json::Value {
    let binding = if env.durable_object("PROFILES").is_ok() {
        "ok"
    } else {
        "missing"
    };
    let token = match backend_token(env) {
        None => "missing",
        Some(t) if t.len() < super::MIN_PREVIEW_SECRET => "too short",
        Some(_) => "ok",
    };
    json!({"binding": binding, "backend_token": token})
}

/// Whether the request carries `Authorization: Bearer <MM_BACKEND_TOKEN>`, compared in
/// constant time.
fn authorized(req: &Request, env: &Env) -> bool {
    let secret = backend_token(env).filter(|s| s.len() >= super::MIN_PREVIEW_SECRET);
    let given = req.headers().get("Authorization").ok().flatten();
    match (
        secret,
        given.as_deref().and_then(|g| g.strip_prefix("Bearer ")),
    ) {
        (Some(secret), Some(given)) => super::constant_time_eq(secret.as_bytes(), given.as_bytes()),
        _ => false,
    }
}

/// Reads `POST /v1/profiles/<id>/events` into `call`, or says what is wrong.
fn events_call(bytes: &[u8], call: &mut BackendCall) -> std::result::Result<(), String> {
    let body: EventsBody = serde_json::from_slice(bytes).map_err(|e| {
        format!("body: expected {{\"events\":[{{\"name\":…}}], \"channel\"?, \"context\"?, \"segments\"?}}: {e}")
    })?;
    if body.events.len() > super::MAX_EVENTS {
        return Err(format!(
            "{} events, over the limit of {}",
            body.events.len(),
            super::MAX_EVENTS
        ));
    }
    if body
        .events
        .iter()
        .any(|e| e.value.is_some_and(|v| !crate::record::value_ok(v)))
    {
        return Err("value: a number between -1e9 and 1e9".into());
    }
    let channel = body.channel.unwrap_or_else(|| "store".into());
    if Channel::parse(&channel).is_none() {
        return Err("channel: expected web, app, email, store or push".into());
    }
    let segments = body.segments.unwrap_or_default();
    if segments.add.len() > MAX_SEGMENTS
        || segments.remove.len() > MAX_SEGMENTS
        || !segments.add.iter().all(|s| segment_ok(s))
    {
        return Err("segments: at most 16 to add and 16 to remove, each 1 to 32 bytes".into());
    }
    call.action = "events".into();
    call.channel = Some(channel);
    call.events = body
        .events
        .into_iter()
        .filter(|e| !e.name.is_empty() && e.name.len() <= 128)
        .map(|e| BackendEvent {
            name: e.name,
            value: e.value,
        })
        .collect();
    call.context = body.context;
    call.segments_add = segments.add;
    call.segments_remove = segments.remove;
    Ok(())
}

/// Reads `POST /v1/profiles/<id>/decide` into `call`, or says what is wrong.
fn decide_call(bytes: &[u8], call: &mut BackendCall) -> std::result::Result<(), String> {
    let body: DecideBody = serde_json::from_slice(bytes).map_err(|e| {
        format!("body: expected {{\"slots\":[…], \"channel\"?, \"context\"?}}: {e}")
    })?;
    let channel = body.channel.unwrap_or_else(|| "email".into());
    if Channel::parse(&channel).is_none() {
        return Err("channel: expected web, app, email, store or push".into());
    }
    if body.slots.is_empty() || body.slots.len() > session::MAX_SLOTS {
        return Err("slots: name 1 to 32 slots".into());
    }
    call.action = "decide".into();
    call.channel = Some(channel);
    call.slots = body.slots;
    call.context = body.context;
    Ok(())
}

/// SHA-256 (hex) of a backend call's route and body.
fn fingerprint(action: &str, body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(action.as_bytes());
    hash.update([0]);
    hash.update(body);
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// `/v1/profiles/<id>[/events|/decide]`: the backend API (DESIGN §10).
pub(crate) async fn backend(req: Request, env: &Env, rest: &str) -> Result<Response> {
    if !authorized(&req, env) {
        return error(
            401,
            "Authorization: Bearer <MM_BACKEND_TOKEN> is required (the secret must be set, at least 16 bytes)",
        );
    }
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(profile_id) = ids::parse_hex128(id) else {
        return error(400, "profile id: expected 32 hexadecimal digits");
    };
    let profile = ids::hex128_string(&profile_id);
    let method = req.method();
    let idempotency_key = match req.headers().get("Idempotency-Key").ok().flatten() {
        Some(key)
            if key.is_empty() || key.len() > 128 || !key.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            return error(400, "Idempotency-Key: 1 to 128 visible ASCII characters");
        }
        key => key,
    };
    let mut call = BackendCall {
        now: now(),
        profile,
        idempotency_key,
        ..BackendCall::default()
    };
    match (method, action) {
        (Method::Get, "") => call.action = "get".into(),
        (Method::Delete, "") => call.action = "erase".into(),
        (Method::Post, "events" | "decide") => {
            let bytes = match super::io::read_body(&req, MAX_BACKEND_BODY).await {
                Ok(bytes) => bytes,
                Err(super::io::BodyError::TooLarge) => {
                    return error(
                        413,
                        &format!("body is over the limit of {MAX_BACKEND_BODY} bytes"),
                    )
                }
                Err(super::io::BodyError::Unreadable(e)) => {
                    return error(400, &format!("body could not be read: {e}"))
                }
            };
            call.fingerprint = fingerprint(action, &bytes);
            let checked = if action == "events" {
                events_call(&bytes, &mut call)
            } else {
                decide_call(&bytes, &mut call)
            };
            if let Err(message) = checked {
                return error(400, &message);
            }
        }
        _ => return error(405, "method not allowed"),
    }
    let Some(stub) = stub(env, &profile_id) else {
        return error(503, "PROFILES is not bound");
    };
    let mut init = RequestInit::new();
    let body = serde_json::to_string(&call).unwrap_or_default();
    init.with_method(Method::Post).with_body(Some(body.into()));
    let forwarded = Request::new_with_init("https://profile/backend", &init)?;
    let wait = Duration::from_millis(super::config(env).backend_timeout_ms);
    // The caller is told to retry, never that it worked. An object that answers late
    // may still apply the call: a retry with the same `Idempotency-Key` is applied
    // once.
    let unavailable = |message: &str| -> Result<Response> {
        ResponseBuilder::new()
            .with_status(503)
            .with_header("Retry-After", "1")?
            .with_header("Cache-Control", "no-store")?
            .from_json(&json!({ "error": message }))
    };
    match super::io::within(wait, stub.fetch_with_request(forwarded)).await {
        Some(Ok(response)) => Ok(response),
        Some(Err(e)) => {
            log("error", "profile unavailable", &e.to_string());
            unavailable("profile unavailable; the call may not have been applied: retry with the same Idempotency-Key")
        }
        None => unavailable("profile did not answer in time; the call may not have been applied: retry with the same Idempotency-Key"),
    }
}
