//! The `Profile` object's storage: the only file of the project that names SQL.
//!
//! One SQLite database per object (a person's profile, or a pre-link visitor's waiting
//! triggers), with a schema version in `meta`: a newer schema migrates an older one in
//! place when the object starts, and nothing here reads a table it did not create.
//! Tables:
//! - `devices`: the profile's device records (`micromoment::profile::Device`, state images);
//! - `meta`: `schema`, `erased_at`, `links_valid_after`;
//! - `links`: link ids used or revoked, until their link has expired;
//! - `revoked`: devices that logged out;
//! - `fired`: the person's trigger caps;
//! - `visitors`: every device id that joined, so an erasure reaches their pre-link objects;
//! - `idempotency`: backend calls' answers by `Idempotency-Key`, for 24 hours;
//! - `waits`: delayed deliveries, each claimed while it is being sent.
//!
//! What the rows mean is decided in the core (`micromoment::profile`); this file loads and
//! stores, and a row it cannot read is dropped and logged, never guessed at.

use worker::{Result, SqlStorage, SqlStorageValue as Value};

use micromoment::deliver::Cancel;
use micromoment::destination::Delivery;
use micromoment::profile::{Device, Links, Profile, Revoked, Spend, Spent};
use micromoment::time::UnixSeconds;
use micromoment::token::{Impression, State};

use super::super::platform::log;
use micromoment::profile::wire::{kind_code, kind_of};

/// The schema this build writes. 1: devices, meta, idempotency, waits (before links
/// were single use). 2: links, revoked, fired, visitors; waits can be claimed.
const SCHEMA: i64 = 2;

/// How long an `Idempotency-Key` is remembered.
pub(crate) const IDEMPOTENCY_WINDOW: UnixSeconds = 24 * 3600;

/// The most device ids remembered for an erasure to reach.
const MAX_VISITORS: i64 = 1024;

/// The most deliveries that wait in one object: past it a delayed trigger is dropped
/// (and logged), so no client can grow an object's storage without bound.
pub(crate) const MAX_WAITS: i64 = 128;

/// The most deliveries one ring sends; the rest ring again at once.
const RING_BATCH: i64 = 64;

/// How long a claim holds: a delivery claimed this long ago whose send never ended (the
/// object was evicted while sending) is sent again (its message id is the same, so a
/// receiver counts it once).
const CLAIM_MS: i64 = 60_000;

pub(crate) struct Store {
    sql: SqlStorage,
}

/// What an `Idempotency-Key` was used for in the last 24 hours.
pub(crate) enum Replay {
    /// Not seen: apply the call.
    First,
    /// The same call: its first answer.
    Same(String),
    /// Another call.
    Conflict,
}

fn int(row: &[Value], i: usize) -> Option<i64> {
    match row.get(i) {
        Some(Value::Integer(n)) => Some(*n),
        // Numbers can come back as floats from JavaScript.
        #[allow(clippy::cast_possible_truncation)]
        Some(Value::Float(f)) => Some(*f as i64),
        _ => None,
    }
}

fn blob(row: &[Value], i: usize) -> Option<&[u8]> {
    match row.get(i) {
        Some(Value::Blob(b)) => Some(b.as_slice()),
        _ => None,
    }
}

fn text(row: &[Value], i: usize) -> Option<&str> {
    match row.get(i) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn id16(row: &[Value], i: usize) -> Option<[u8; 16]> {
    blob(row, i)?.try_into().ok()
}

impl Store {
    pub(crate) fn new(state: &worker::State) -> Store {
        Store {
            sql: state.storage().sql(),
        }
    }

    fn rows(&self, query: &str, bindings: Vec<Value>) -> Result<Vec<Vec<Value>>> {
        self.sql.exec(query, bindings)?.raw().collect()
    }

    fn run(&self, query: &str, bindings: Vec<Value>) -> Result<usize> {
        Ok(self.sql.exec(query, bindings)?.rows_written())
    }

    /// Whether this object has ever stored anything: reading that creates nothing.
    pub(crate) fn exists(&self) -> Result<bool> {
        Ok(!self
            .rows(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                vec![],
            )?
            .is_empty())
    }

    /// Creates the tables this build uses, or migrates an older schema to them.
    pub(crate) fn migrate(&self) -> Result<()> {
        self.run(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER)",
            vec![],
        )?;
        let version = self.meta("schema")?.unwrap_or(0);
        if version >= SCHEMA {
            return Ok(());
        }
        for table in [
            "CREATE TABLE IF NOT EXISTS devices (id BLOB PRIMARY KEY, seq INTEGER NOT NULL, \
             kind INTEGER NOT NULL, own BLOB NOT NULL, base BLOB NOT NULL, input BLOB NOT NULL, \
             seen_at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, answer TEXT NOT NULL, \
             at INTEGER NOT NULL, fingerprint TEXT NOT NULL DEFAULT '')",
            "CREATE TABLE IF NOT EXISTS waits (id TEXT PRIMARY KEY, due_ms INTEGER NOT NULL, \
             unless TEXT, delivery TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS links (id BLOB PRIMARY KEY, revoked INTEGER NOT NULL, \
             until INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS revoked (device BLOB PRIMARY KEY, at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS fired (trigger INTEGER PRIMARY KEY, count INTEGER NOT NULL, \
             window_start INTEGER NOT NULL, last INTEGER NOT NULL, total INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS visitors (id BLOB PRIMARY KEY, at INTEGER NOT NULL)",
        ] {
            self.run(table, vec![])?;
        }
        // Schema 1's waits had no claim: a row being sent was deleted first, and put
        // back when the send failed, resurrecting what an erasure or a cancel removed.
        let claimable = self
            .rows(
                "SELECT 1 FROM pragma_table_info('waits') WHERE name = 'claimed'",
                vec![],
            )?
            .is_empty();
        if claimable {
            self.run(
                "ALTER TABLE waits ADD COLUMN claimed INTEGER NOT NULL DEFAULT 0",
                vec![],
            )?;
        }
        self.set_meta("schema", Some(SCHEMA))
    }

    fn meta(&self, key: &str) -> Result<Option<i64>> {
        Ok(self
            .rows(
                "SELECT value FROM meta WHERE key = ?",
                vec![Value::String(key.to_owned())],
            )?
            .first()
            .and_then(|row| int(row, 0)))
    }

    fn set_meta(&self, key: &str, value: Option<i64>) -> Result<()> {
        let key = Value::String(key.to_owned());
        match value {
            Some(v) => self.run(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                vec![key, Value::Integer(v)],
            )?,
            None => self.run("DELETE FROM meta WHERE key = ?", vec![key])?,
        };
        Ok(())
    }

    /// The profile as stored.
    pub(crate) fn load(&self) -> Result<Profile> {
        let mut devices = Vec::new();
        for row in self.rows(
            "SELECT id, seq, kind, own, base, input, seen_at FROM devices ORDER BY id",
            vec![],
        )? {
            match device_of_row(&row) {
                Some(device) => devices.push(device),
                // Written by another version (or damaged): the device is dropped from
                // the profile and joins again at its next sync, as an evicted one.
                None => log(
                    "error",
                    "profile device record unreadable, dropped",
                    &format!("state image version {}", micromoment::token::IMAGE_VERSION),
                ),
            }
        }
        devices.sort_by_key(|d: &Device| d.id);
        let spent = self
            .rows("SELECT id, revoked, until FROM links", vec![])?
            .iter()
            .filter_map(|row| {
                Some(Spent {
                    id: id16(row, 0)?,
                    why: if int(row, 1)? == 0 {
                        Spend::Used
                    } else {
                        Spend::Revoked
                    },
                    until: int(row, 2)?,
                })
            })
            .collect();
        let revoked = self
            .rows("SELECT device, at FROM revoked ORDER BY at", vec![])?
            .iter()
            .filter_map(|row| {
                Some(Revoked {
                    device: id16(row, 0)?,
                    at: int(row, 1)?,
                })
            })
            .collect();
        let fired = self
            .rows(
                "SELECT trigger, count, window_start, last, total FROM fired",
                vec![],
            )?
            .iter()
            .filter_map(|row| {
                Some(Impression {
                    id: u32::try_from(int(row, 0)?).ok()?,
                    count: u32::try_from(int(row, 1)?).ok()?,
                    window_start: int(row, 2)?,
                    last_shown: int(row, 3)?,
                    total: u32::try_from(int(row, 4)?).ok()?,
                })
            })
            .collect();
        Ok(Profile {
            devices,
            erased_at: self.meta("erased_at")?,
            links: Links {
                valid_after: self.meta("links_valid_after")?.unwrap_or(0),
                spent,
            },
            revoked,
            fired,
        })
    }

    /// Writes what changed from `before` to `after`; device ids that joined are
    /// remembered for an erasure to reach.
    pub(crate) fn save(&self, before: &Profile, after: &Profile, now: UnixSeconds) -> Result<()> {
        for d in &after.devices {
            if before.devices.iter().any(|b| b == d) {
                continue;
            }
            if !before.devices.iter().any(|b| b.id == d.id)
                && !micromoment::profile::is_backend(&d.id)
            {
                self.run(
                    "INSERT OR IGNORE INTO visitors (id, at) VALUES (?, ?)",
                    vec![Value::Blob(d.id.to_vec()), Value::Integer(now)],
                )?;
            }
            self.run(
                "INSERT OR REPLACE INTO devices (id, seq, kind, own, base, input, seen_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                vec![
                    Value::Blob(d.id.to_vec()),
                    Value::Integer(i64::from(d.seq)),
                    Value::Integer(i64::from(kind_code(d.kind))),
                    Value::Blob(d.own.to_image()),
                    Value::Blob(d.base.to_image()),
                    Value::Blob(d.input.to_image()),
                    Value::Integer(d.seen_at),
                ],
            )?;
        }
        for b in &before.devices {
            if !after.devices.iter().any(|d| d.id == b.id) {
                self.run(
                    "DELETE FROM devices WHERE id = ?",
                    vec![Value::Blob(b.id.to_vec())],
                )?;
            }
        }
        self.run(
            "DELETE FROM visitors WHERE id NOT IN \
             (SELECT id FROM visitors ORDER BY at DESC LIMIT ?)",
            vec![Value::Integer(MAX_VISITORS)],
        )?;
        if before.erased_at != after.erased_at {
            self.set_meta("erased_at", after.erased_at)?;
        }
        if before.links.valid_after != after.links.valid_after {
            self.set_meta("links_valid_after", Some(after.links.valid_after))?;
        }
        if before.links.spent != after.links.spent {
            self.run("DELETE FROM links", vec![])?;
            for s in &after.links.spent {
                self.run(
                    "INSERT OR REPLACE INTO links (id, revoked, until) VALUES (?, ?, ?)",
                    vec![
                        Value::Blob(s.id.to_vec()),
                        Value::Integer(i64::from(s.why == Spend::Revoked)),
                        Value::Integer(s.until),
                    ],
                )?;
            }
        }
        if before.revoked != after.revoked {
            self.run("DELETE FROM revoked", vec![])?;
            for r in &after.revoked {
                self.run(
                    "INSERT OR REPLACE INTO revoked (device, at) VALUES (?, ?)",
                    vec![Value::Blob(r.device.to_vec()), Value::Integer(r.at)],
                )?;
            }
        }
        if before.fired != after.fired {
            self.run("DELETE FROM fired", vec![])?;
            for f in &after.fired {
                self.run(
                    "INSERT OR REPLACE INTO fired (trigger, count, window_start, last, total) \
                     VALUES (?, ?, ?, ?, ?)",
                    vec![
                        Value::Integer(i64::from(f.id)),
                        Value::Integer(i64::from(f.count)),
                        Value::Integer(f.window_start),
                        Value::Integer(f.last_shown),
                        Value::Integer(i64::from(f.total)),
                    ],
                )?;
            }
        }
        Ok(())
    }

    /// The device ids that ever joined this profile (the newest [`MAX_VISITORS`]).
    pub(crate) fn visitors(&self) -> Result<Vec<[u8; 16]>> {
        Ok(self
            .rows("SELECT id FROM visitors", vec![])?
            .iter()
            .filter_map(|row| id16(row, 0))
            .collect())
    }

    /// Removes everything about the person but the erasure mark [`Store::save`] writes
    /// and the ids of devices whose pre-link objects have not acknowledged the erasure
    /// ([`Store::forget_visitor`]): devices, waiting deliveries, links, caps. A backend
    /// call's `Idempotency-Key` is kept with `erased` as its answer, so a call retried
    /// after the erasure is not applied again.
    pub(crate) fn erase(&self, erased_answer: &str) -> Result<()> {
        for table in ["devices", "waits", "links", "revoked", "fired"] {
            self.run(&format!("DELETE FROM {table}"), vec![])?;
        }
        self.run(
            "UPDATE idempotency SET answer = ?",
            vec![Value::String(erased_answer.to_owned())],
        )?;
        Ok(())
    }

    /// Records the ids of devices an erasure must still reach.
    pub(crate) fn remember_visitors(&self, ids: &[[u8; 16]], now: UnixSeconds) -> Result<()> {
        for id in ids {
            self.run(
                "INSERT OR IGNORE INTO visitors (id, at) VALUES (?, ?)",
                vec![Value::Blob(id.to_vec()), Value::Integer(now)],
            )?;
        }
        Ok(())
    }

    /// A device's pre-link object acknowledged the erasure.
    pub(crate) fn forget_visitor(&self, id: &[u8; 16]) -> Result<()> {
        self.run(
            "DELETE FROM visitors WHERE id = ?",
            vec![Value::Blob(id.to_vec())],
        )?;
        Ok(())
    }

    /// A visitor object's own erasure: what waits goes, and the rest.
    pub(crate) fn erase_all(&self) -> Result<()> {
        for table in [
            "devices",
            "waits",
            "idempotency",
            "links",
            "revoked",
            "fired",
            "visitors",
        ] {
            self.run(&format!("DELETE FROM {table}"), vec![])?;
        }
        Ok(())
    }

    /// The erasure mark, without creating anything in an object that has none.
    pub(crate) fn erased_at(&self) -> Result<Option<i64>> {
        if !self.exists()? {
            return Ok(None);
        }
        self.meta("erased_at")
    }

    /// Marks the object erased at `now` (a pre-link visitor object of an erased person).
    pub(crate) fn mark_erased(&self, now: UnixSeconds) -> Result<()> {
        self.set_meta("erased_at", Some(now))
    }

    /// Whether the object holds anything worth keeping: an object with none is
    /// deleted, so pre-link visitors leave nothing behind.
    pub(crate) fn is_empty(&self) -> Result<bool> {
        for query in [
            "SELECT 1 FROM devices LIMIT 1",
            "SELECT 1 FROM waits LIMIT 1",
            "SELECT 1 FROM idempotency LIMIT 1",
            "SELECT 1 FROM links LIMIT 1",
            "SELECT 1 FROM revoked LIMIT 1",
            "SELECT 1 FROM fired LIMIT 1",
            "SELECT 1 FROM meta WHERE key <> 'schema' LIMIT 1",
        ] {
            if !self.rows(query, vec![])?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// What a call with this `Idempotency-Key` and `fingerprint` was answered in the
    /// last [`IDEMPOTENCY_WINDOW`].
    pub(crate) fn replayed(
        &self,
        key: &str,
        fingerprint: &str,
        now: UnixSeconds,
    ) -> Result<Replay> {
        let rows = self.rows(
            "SELECT answer, fingerprint FROM idempotency WHERE key = ? AND at > ?",
            vec![
                Value::String(key.to_owned()),
                Value::Integer(now - IDEMPOTENCY_WINDOW),
            ],
        )?;
        let Some(row) = rows.first() else {
            return Ok(Replay::First);
        };
        Ok(match (text(row, 0), text(row, 1)) {
            (Some(answer), Some(f)) if f == fingerprint => Replay::Same(answer.to_owned()),
            _ => Replay::Conflict,
        })
    }

    /// Remembers the answer to a call with an `Idempotency-Key`.
    pub(crate) fn remember(
        &self,
        key: &str,
        fingerprint: &str,
        answer: &str,
        now: UnixSeconds,
    ) -> Result<()> {
        self.run(
            "DELETE FROM idempotency WHERE at <= ?",
            vec![Value::Integer(now - IDEMPOTENCY_WINDOW)],
        )?;
        self.run(
            "INSERT OR REPLACE INTO idempotency (key, answer, at, fingerprint) VALUES (?, ?, ?, ?)",
            vec![
                Value::String(key.to_owned()),
                Value::String(answer.to_owned()),
                Value::Integer(now),
                Value::String(fingerprint.to_owned()),
            ],
        )?;
        Ok(())
    }

    /// Holds a delayed delivery until `due_ms` (platform milliseconds); false when
    /// [`MAX_WAITS`] already wait. The same delivery held twice is held once.
    pub(crate) fn hold(&self, delivery: &Delivery, due_ms: i64) -> Result<bool> {
        let waiting = self
            .rows("SELECT COUNT(*) FROM waits", vec![])?
            .first()
            .and_then(|row| int(row, 0))
            .unwrap_or(0);
        if waiting >= MAX_WAITS {
            return Ok(false);
        }
        self.run(
            "INSERT OR IGNORE INTO waits (id, due_ms, unless, delivery) VALUES (?, ?, ?, ?)",
            vec![
                Value::String(format!("{}/{}", delivery.id, delivery.destination)),
                Value::Integer(due_ms),
                delivery.unless.clone().map_or(Value::Null, Value::String),
                Value::String(serde_json::to_string(delivery).unwrap_or_default()),
            ],
        )?;
        Ok(true)
    }

    /// Removes what `cancel` cancels, claimed rows too (their send may still land; none
    /// is put back); returns how many.
    pub(crate) fn cancel(&self, cancel: &Cancel) -> Result<usize> {
        if cancel.all {
            return self.run("DELETE FROM waits", vec![]);
        }
        let mut removed = 0;
        for event in &cancel.events {
            removed += self.run(
                "DELETE FROM waits WHERE unless = ?",
                vec![Value::String(event.clone())],
            )?;
        }
        Ok(removed)
    }

    /// When the alarm should next ring (the earliest due time, or a stale claim's
    /// end), and how many deliveries wait.
    pub(crate) fn next_due(&self) -> Result<(Option<i64>, usize)> {
        let rows = self.rows(
            "SELECT MIN(CASE WHEN claimed = 0 THEN due_ms ELSE due_ms + ? END), COUNT(*) FROM waits",
            vec![Value::Integer(CLAIM_MS)],
        )?;
        let row = rows.first().map(Vec::as_slice).unwrap_or(&[]);
        Ok((
            int(row, 0),
            usize::try_from(int(row, 1).unwrap_or(0)).unwrap_or(0),
        ))
    }

    /// The ids of unclaimed deliveries due at `now_ms`, earliest first (claims older
    /// than [`CLAIM_MS`] are let go first).
    pub(crate) fn due(&self, now_ms: i64) -> Result<Vec<String>> {
        self.run(
            "UPDATE waits SET claimed = 0 WHERE claimed = 1 AND due_ms <= ?",
            vec![Value::Integer(now_ms - CLAIM_MS)],
        )?;
        Ok(self
            .rows(
                "SELECT id FROM waits WHERE due_ms <= ? AND claimed = 0 ORDER BY due_ms LIMIT ?",
                vec![Value::Integer(now_ms), Value::Integer(RING_BATCH)],
            )?
            .iter()
            .filter_map(|row| text(row, 0).map(str::to_owned))
            .collect())
    }

    /// Claims a delivery for sending at `now_ms`; `None` when it is gone (cancelled or
    /// erased meanwhile) or claimed already. The text is the delivery's JSON.
    pub(crate) fn claim(&self, id: &str, now_ms: i64) -> Result<Option<String>> {
        Ok(self
            .rows(
                "UPDATE waits SET claimed = 1, due_ms = ? WHERE id = ? AND claimed = 0 \
                 RETURNING delivery",
                vec![Value::Integer(now_ms), Value::String(id.to_owned())],
            )?
            .first()
            .and_then(|row| text(row, 0).map(str::to_owned)))
    }

    /// A claimed delivery went out: it waits no more.
    pub(crate) fn sent(&self, id: &str) -> Result<()> {
        self.run(
            "DELETE FROM waits WHERE id = ?",
            vec![Value::String(id.to_owned())],
        )?;
        Ok(())
    }

    /// A claimed delivery could not go out: it waits again until `retry_ms`, if it is
    /// still there (a cancel or an erasure that came meanwhile stays done).
    pub(crate) fn unclaim(&self, id: &str, retry_ms: i64) -> Result<()> {
        self.run(
            "UPDATE waits SET claimed = 0, due_ms = ? WHERE id = ?",
            vec![Value::Integer(retry_ms), Value::String(id.to_owned())],
        )?;
        Ok(())
    }
}

fn device_of_row(row: &[Value]) -> Option<Device> {
    Some(Device {
        id: id16(row, 0)?,
        seq: u32::try_from(int(row, 1)?).ok()?,
        kind: kind_of(u8::try_from(int(row, 2)?).ok()?),
        own: State::from_image(blob(row, 3)?)?,
        base: State::from_image(blob(row, 4)?)?,
        input: State::from_image(blob(row, 5)?)?,
        seen_at: int(row, 6)?,
    })
}
