//! The `Feed` Durable Object (class `Feed`, binding `FEEDS`): one per feed, named by
//! the feed's name, the only writer of its KV keys (docs/feeds.md).
//!
//! - A full push arrives in parts, each cut at once into pieces per shard (`staged`), so
//!   no part and no feed is ever held whole; once every part is there, each shard is
//!   assembled from its pieces and written to KV (`feed:<name>:<shard>:<generation>`),
//!   and only then the manifest (`feed:<name>`) that names them: nothing half-written is
//!   ever read, and a commit that fails keeps its parts for the next try.
//! - A change (a delta push) is numbered (`seq`) and kept here at once; every isolate
//!   asks for the changes numbered above its manifest's (`/hot?since=`) at most every
//!   `MM_FEED_HOT_MS`, so it is seen within seconds. `MM_FEED_FOLD_MS` later the alarm
//!   folds them into new generations of their shards (at most `FOLD_SHARDS` shards a
//!   time, so a fold stays within a call's KV operations) and a manifest that says up
//!   to which change it holds; it keeps them `GRACE_SECS` more for isolates still on the
//!   previous manifest. A feed grown by changes alone is cut into more shards.
//! - The people watching a row (feed triggers) are told when a fold or a full push
//!   changes it so that a trigger's rule turns true.
//!
//! Its clock is the Worker's (`now` in each push); the alarm uses the platform's.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use worker::{
    durable_object, DurableObject, Env, Request, Response, ResponseBuilder, Result, SqlStorage,
    SqlStorageValue as Value,
};

use micromoment::deliver::{feed_deliveries, Watcher};
use micromoment::feed::{
    decode_changes, decode_rows, decode_shard, encode_hot, encode_rows, encode_shard, fingerprint,
    pieces, shard_count, shard_of, Change, HotChange, Manifest, Row, Shard, MAX_SHARDS,
    ROWS_PER_SHARD,
};

use super::super::platform::{self, log};
use super::super::{cache, error};
use super::{manifest_key, shard_key};

/// How long a folded change is still served to isolates on the previous manifest:
/// longer than `MM_BUNDLE_RECHECK_SECS` and KV's own propagation.
const GRACE_SECS: i64 = 180;
/// The most changes waiting to be folded: past it, a delta push is refused until they
/// are (a push of more is a full push).
const MAX_HOT: i64 = 20_000;
/// How many KV writes a rewrite has in flight at once.
const WRITES_AT_ONCE: usize = 16;
/// The most shards one fold rewrites (a read and a write each, within a call's 1,000
/// KV operations); the changes of other shards wait for the next fold.
const FOLD_SHARDS: usize = 400;
/// A feed whose shards hold more than this many times `ROWS_PER_SHARD` rows each on
/// average, and has few enough shards to read and rewrite in one call, is cut anew.
const GROWN: u64 = 4;
const RESHARD_MAX: usize = 180;
/// The most old shards a full push reads to tell watchers what changed.
const TELL_READS: usize = 64;
/// What a stored piece of a part holds at most, encoded (SQLite keeps a value under
/// 2 MB).
const PIECE_BYTES: usize = 512 * 1024;
/// The most people watching one row, one person's watches, and watches in all: past
/// each, the oldest go.
const WATCHERS_PER_ROW: i64 = 1_000;
const WATCHES_PER_PERSON: i64 = 32;
const MAX_WATCHES: i64 = 200_000;
/// How long a watch, an idempotency key and an unfinished upload last.
const WATCH_SECS: i64 = 30 * 86_400;
const IDEMPOTENCY_SECS: i64 = 86_400;
const UPLOAD_SECS: i64 = 86_400;

#[durable_object(alarm)]
pub struct Feed {
    state: worker::State,
    env: Env,
    /// A rewrite (a full push's commit, a fold) is writing KV.
    building: Cell<bool>,
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Integer(n)) => Some(*n),
        #[allow(clippy::cast_possible_truncation)]
        Some(Value::Float(f)) => Some(*f as i64),
        _ => None,
    }
}

fn text(v: Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

/// A row's key, its value before a change and after.
type Changed = (Vec<String>, Option<Row>, Option<Row>);

/// Changes grouped by the shard (of `count`) their key is in, in their order.
fn by_shard(pending: &[(u64, Change)], count: u32) -> BTreeMap<u32, Vec<&Change>> {
    let mut out: BTreeMap<u32, Vec<&Change>> = BTreeMap::new();
    for (_, change) in pending {
        let first = change.key().first().map_or("", String::as_str);
        out.entry(shard_of(first, count)).or_default().push(change);
    }
    out
}

/// A shard's rows with `changes` applied in order, noting each change's row before and
/// after in `changed` when it is given.
fn apply(
    old: &Shard,
    changes: &[&Change],
    mut changed: Option<&mut Vec<Changed>>,
) -> BTreeMap<Vec<String>, Row> {
    let mut rows: BTreeMap<Vec<String>, Row> = old
        .rows()
        .iter()
        .map(|r| (r.key.clone(), r.clone()))
        .collect();
    for change in changes {
        let before = rows.get(change.key()).cloned();
        match change {
            Change::Put(row) => {
                rows.insert(row.key.clone(), row.clone());
            }
            Change::Delete(key) => {
                rows.remove(key);
            }
        }
        if let Some(changed) = changed.as_deref_mut() {
            changed.push((
                change.key().to_vec(),
                before,
                rows.get(change.key()).cloned(),
            ));
        }
    }
    rows
}

/// The change a `hot` row holds.
fn one_change(v: Option<&Value>) -> Option<Change> {
    let Some(Value::Blob(bytes)) = v else {
        return None;
    };
    decode_changes(bytes).ok()?.into_iter().next()
}

fn key_text(key: &[String]) -> String {
    key.join("\u{1f}")
}

fn as_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn index(i: u32) -> usize {
    usize::try_from(i).unwrap_or(usize::MAX)
}

/// A failure a pusher is told of: its status and message.
type Refusal = (u16, String);

/// What the Worker tells the object after a response that showed content chosen on
/// rows of this feed.
#[derive(serde::Deserialize, serde::Serialize)]
pub(crate) struct WatchMessage {
    pub keys: Vec<Vec<String>>,
    pub watcher: Watcher,
    pub now: i64,
}

impl DurableObject for Feed {
    fn new(state: worker::State, env: Env) -> Self {
        Feed {
            state,
            env,
            building: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        self.migrate()?;
        let url = req.url()?;
        let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        match url.path() {
            "/push" => {
                let body = req.bytes().await.unwrap_or_default();
                self.push(&query, &body).await
            }
            "/hot" => {
                let since = query
                    .get("since")
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                self.hot(since)
            }
            "/watch" => {
                let body = req.bytes().await.unwrap_or_default();
                self.watch(&body)
            }
            "/status" => ResponseBuilder::new().from_json(&json!({
                "manifest": self.manifest()?,
                "recent_changes": self.unfolded()?,
            })),
            _ => error(404, "not found"),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.migrate()?;
        if self.building.get() {
            self.ring_in(1_000).await?;
            return Response::ok("");
        }
        let now = platform::now();
        self.building.set(true);
        let folded = self.fold(now).await;
        self.building.set(false);
        if let Err(e) = folded {
            log("error", "feed fold failed", &e);
            self.ring_in(self.fold_ms()).await?;
            return Response::ok("");
        }
        let sql = self.sql();
        for (query, ttl) in [
            (
                "DELETE FROM hot WHERE folded_at IS NOT NULL AND folded_at <= ?",
                GRACE_SECS,
            ),
            ("DELETE FROM idempotency WHERE at <= ?", IDEMPOTENCY_SECS),
            ("DELETE FROM watches WHERE at <= ?", WATCH_SECS),
            (
                "DELETE FROM staged WHERE upload IN (SELECT upload FROM uploads WHERE at <= ?)",
                UPLOAD_SECS,
            ),
            (
                "DELETE FROM received WHERE upload IN (SELECT upload FROM uploads WHERE at <= ?)",
                UPLOAD_SECS,
            ),
            ("DELETE FROM uploads WHERE at <= ?", UPLOAD_SECS),
            ("DELETE FROM committed WHERE at <= ?", UPLOAD_SECS),
        ] {
            sql.exec(query, vec![Value::Integer(now - ttl)])?;
        }
        sql.exec(
            "DELETE FROM watches WHERE rowid IN \
             (SELECT rowid FROM watches ORDER BY at DESC LIMIT -1 OFFSET ?)",
            vec![Value::Integer(MAX_WATCHES)],
        )?;
        self.drop_retired(now).await?;
        // The next thing due: a fold, the end of a grace, an upload's or a key's day,
        // a retired shard's deletion.
        let mut next: Option<i64> = None;
        let mut due = |at: Option<i64>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        if self.unfolded()? > 0 {
            due(Some(now + self.fold_ms() / 1000));
        }
        for (query, ttl) in [
            ("SELECT MIN(folded_at) FROM hot", GRACE_SECS),
            ("SELECT MIN(at) FROM uploads", UPLOAD_SECS),
            ("SELECT MIN(at) FROM committed", UPLOAD_SECS),
            ("SELECT MIN(at) FROM idempotency", IDEMPOTENCY_SECS),
            ("SELECT MIN(at) FROM retired", GRACE_SECS),
        ] {
            due(self.min_at(query)?.map(|t| t + ttl));
        }
        if let Some(at) = next {
            self.ring_in(at.saturating_sub(now).max(1).saturating_mul(1000))
                .await?;
        }
        Response::ok("")
    }
}

impl Feed {
    /// How long after a change its shard is rewritten (`MM_FEED_FOLD_MS`).
    fn fold_ms(&self) -> i64 {
        i64::try_from(platform::config(&self.env).feed_fold_ms).unwrap_or(10_000)
    }

    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn migrate(&self) -> Result<()> {
        let sql = self.sql();
        for table in [
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            "CREATE TABLE IF NOT EXISTS hot (key TEXT PRIMARY KEY, change BLOB NOT NULL, \
             seq INTEGER NOT NULL, at INTEGER NOT NULL, folded_at INTEGER)",
            "CREATE TABLE IF NOT EXISTS uploads (upload TEXT PRIMARY KEY, rows INTEGER NOT NULL, \
             parts INTEGER NOT NULL, at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS received (upload TEXT NOT NULL, part INTEGER NOT NULL, \
             PRIMARY KEY (upload, part))",
            "CREATE TABLE IF NOT EXISTS staged (upload TEXT NOT NULL, part INTEGER NOT NULL, \
             shard INTEGER NOT NULL, piece INTEGER NOT NULL, body BLOB NOT NULL, \
             PRIMARY KEY (upload, part, shard, piece))",
            "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, fingerprint TEXT NOT NULL, \
             answer TEXT NOT NULL, at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS watches (key TEXT NOT NULL, visitor TEXT NOT NULL, \
             profile TEXT, at INTEGER NOT NULL, PRIMARY KEY (key, visitor))",
            "CREATE INDEX IF NOT EXISTS watches_visitor ON watches (visitor)",
            "CREATE INDEX IF NOT EXISTS watches_at ON watches (at)",
            "CREATE INDEX IF NOT EXISTS hot_seq ON hot (seq)",
            "CREATE TABLE IF NOT EXISTS committed (upload TEXT PRIMARY KEY, answer TEXT NOT NULL, \
             at INTEGER NOT NULL)",
            "CREATE TABLE IF NOT EXISTS retired (key TEXT PRIMARY KEY, at INTEGER NOT NULL)",
            "CREATE INDEX IF NOT EXISTS retired_at ON retired (at)",
        ] {
            sql.exec(table, vec![])?;
        }
        Ok(())
    }

    fn count(&self, query: &str) -> Result<i64> {
        Ok(self
            .first(query, vec![])?
            .and_then(|r| int(r.first()))
            .unwrap_or(0))
    }

    /// The smallest time a query finds, if any.
    fn min_at(&self, query: &str) -> Result<Option<i64>> {
        Ok(self.first(query, vec![])?.and_then(|r| int(r.first())))
    }

    /// Deletes from KV the shards retired `GRACE_SECS` ago (at most 200 a call).
    async fn drop_retired(&self, now: i64) -> Result<()> {
        let keys: Vec<String> = self
            .sql()
            .exec(
                "SELECT key FROM retired WHERE at <= ? ORDER BY at LIMIT 200",
                vec![Value::Integer(now - GRACE_SECS)],
            )?
            .raw()
            .filter_map(|r| text(r.ok()?.into_iter().next()))
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let kv = self.env.kv("BUNDLES")?;
        for key in keys {
            kv.delete(&key).await?;
            self.sql().exec(
                "DELETE FROM retired WHERE key = ?",
                vec![Value::String(key)],
            )?;
        }
        Ok(())
    }

    /// The first row a query finds.
    fn first(&self, query: &str, bindings: Vec<Value>) -> Result<Option<Vec<Value>>> {
        self.sql().exec(query, bindings)?.raw().next().transpose()
    }

    fn unfolded(&self) -> Result<i64> {
        self.count("SELECT COUNT(*) FROM hot WHERE folded_at IS NULL")
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = self.first(
            "SELECT value FROM meta WHERE key = ?",
            vec![Value::String(key.into())],
        )?;
        Ok(row.and_then(|r| text(r.into_iter().next())))
    }

    fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        self.sql().exec(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            vec![Value::String(key.into()), Value::String(value.into())],
        )?;
        Ok(())
    }

    fn name(&self) -> Result<String> {
        self.meta("name")?
            .ok_or_else(|| worker::Error::RustError("the feed's name is unknown".into()))
    }

    fn manifest(&self) -> Result<Option<Manifest>> {
        Ok(self
            .meta("manifest")?
            .and_then(|m| serde_json::from_str(&m).ok()))
    }

    /// The number of the last change made.
    fn seq(&self) -> Result<u64> {
        Ok(self.meta("seq")?.and_then(|s| s.parse().ok()).unwrap_or(0))
    }

    /// Rings the alarm in `ms`, unless it rings sooner already.
    async fn ring_in(&self, ms: i64) -> Result<()> {
        let storage = self.state.storage();
        let want = platform::now_ms().saturating_add(ms);
        match storage.get_alarm().await? {
            Some(at) if at <= want => {}
            _ => {
                storage
                    .set_alarm(std::time::Duration::from_millis(
                        u64::try_from(ms).unwrap_or(0),
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    /// `/push`: a part of a full push, or a delta; an `Idempotency-Key` used before
    /// answers its first answer if the push is the same, and `422` if it is not.
    async fn push(&self, query: &BTreeMap<String, String>, body: &[u8]) -> Result<Response> {
        let q = |k: &str| query.get(k).map(String::as_str);
        let num = |k: &str| q(k).and_then(|v| v.parse::<i64>().ok());
        let (Some(name), Some(layout), Some(now)) = (q("name"), num("layout"), num("now")) else {
            return error(400, "push: name, layout and now are required");
        };
        self.set_meta("name", name)?;
        let layout = u32::try_from(layout).unwrap_or(0);
        let what: Vec<&[u8]> = ["mode", "upload", "part", "parts", "rows"]
            .iter()
            .map(|k| q(k).unwrap_or("").as_bytes())
            .chain([body])
            .collect();
        let print = fingerprint(&what);
        if let Some(key) = q("key") {
            let row = self.first(
                "SELECT fingerprint, answer FROM idempotency WHERE key = ?",
                vec![Value::String(key.into())],
            )?;
            if let Some(row) = row {
                let mut row = row.into_iter();
                let (Some(seen), Some(answer)) = (text(row.next()), text(row.next())) else {
                    return error(500, "idempotency record unreadable");
                };
                if seen != print {
                    return error(
                        422,
                        "this Idempotency-Key was used for another push: use a new key for new rows",
                    );
                }
                let mut answer: serde_json::Value =
                    serde_json::from_str(&answer).unwrap_or_default();
                answer["replayed"] = json!(true);
                return ResponseBuilder::new().from_json(&answer);
            }
        }
        let answer = match q("mode") {
            Some("delta") => self.delta(body, layout, now).await?,
            Some("full") => {
                let (Some(upload), Some(part), Some(parts)) =
                    (q("upload"), num("part"), num("parts"))
                else {
                    return error(400, "a full push names its upload, part and parts");
                };
                self.full_part(name, upload, (part, parts, num("rows")), body, layout, now)
                    .await?
            }
            _ => return error(400, "mode is full or delta"),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err((status, message)) => return error(status, &message),
        };
        if let Some(key) = q("key") {
            self.sql().exec(
                "INSERT OR REPLACE INTO idempotency (key, fingerprint, answer, at) VALUES (?, ?, ?, ?)",
                vec![
                    Value::String(key.into()),
                    Value::String(print),
                    Value::String(answer.to_string()),
                    Value::Integer(now),
                ],
            )?;
            self.ring_in(IDEMPOTENCY_SECS * 1000).await?;
        }
        ResponseBuilder::new().from_json(&answer)
    }

    async fn delta(
        &self,
        body: &[u8],
        layout: u32,
        now: i64,
    ) -> Result<std::result::Result<serde_json::Value, Refusal>> {
        let Ok(changes) = decode_changes(body) else {
            return Ok(Err((400, "the changes are unreadable".into())));
        };
        if let Some(m) = self.manifest()? {
            if m.layout != layout {
                return Ok(Err((
                    409,
                    "the feed was written under another declaration: push it in full first".into(),
                )));
            }
        }
        let held = self.unfolded()?;
        if held.saturating_add(i64::try_from(changes.len()).unwrap_or(i64::MAX)) > MAX_HOT {
            return Ok(Err((
                429,
                format!("{held} changes wait to be folded into the feed: push it in full, or again in a few seconds"),
            )));
        }
        let mut seq = self.seq()?;
        let sql = self.sql();
        for change in &changes {
            seq += 1;
            sql.exec(
                "INSERT OR REPLACE INTO hot (key, change, seq, at, folded_at) VALUES (?, ?, ?, ?, NULL)",
                vec![
                    Value::String(key_text(change.key())),
                    Value::Blob(micromoment::feed::encode_changes(std::slice::from_ref(change))),
                    Value::Integer(as_i64(seq)),
                    Value::Integer(now),
                ],
            )?;
        }
        self.set_meta("seq", &seq.to_string())?;
        if self.manifest()?.is_none() && !self.building.get() {
            // The first write of a feed: an empty manifest of one shard (unless a first
            // full push is being written, whose manifest comes).
            self.write_manifest(&Manifest {
                version: 0,
                layout,
                shards: vec![0],
                rows: 0,
                updated_at: now,
                seq: 0,
            })
            .await?;
        }
        self.ring_in(self.fold_ms()).await?;
        Ok(Ok(json!({
            "mode": "delta",
            "changes": changes.len(),
            "visible_within_ms": platform::config(&self.env).feed_hot_ms,
        })))
    }

    /// A part of a full push: its rows cut into pieces per shard at once; the commit
    /// when it is the last one missing.
    async fn full_part(
        &self,
        name: &str,
        upload: &str,
        (part, parts, rows): (i64, i64, Option<i64>),
        body: &[u8],
        layout: u32,
        now: i64,
    ) -> Result<std::result::Result<serde_json::Value, Refusal>> {
        // An upload committed already (a part resent after its commit, or during it):
        // its answer, never a second commit.
        if let Some(answer) = self.committed(upload)? {
            return Ok(Ok(answer));
        }
        if !(1..=10_000).contains(&parts) || !(1..=parts).contains(&part) {
            return Ok(Err((
                400,
                "part is 1 to parts, and parts at most 10000".into(),
            )));
        }
        let Ok(changes) = decode_changes(body) else {
            return Ok(Err((400, "a part's changes are unreadable".into())));
        };
        let mut put = Vec::with_capacity(changes.len());
        for change in changes {
            match change {
                Change::Put(row) => put.push(row),
                Change::Delete(_) => {
                    return Ok(Err((
                        400,
                        "a full push lists rows; `_delete` is for a delta push".into(),
                    )));
                }
            }
        }
        let rows = match rows {
            Some(r) if r >= 0 => r,
            None if parts == 1 => i64::try_from(put.len()).unwrap_or(i64::MAX),
            _ => {
                return Ok(Err((
                    400,
                    "a full push in parts names its total rows (`rows=`)".into(),
                )))
            }
        };
        let sql = self.sql();
        let declared = self.first(
            "SELECT rows, parts FROM uploads WHERE upload = ?",
            vec![Value::String(upload.into())],
        )?;
        match declared {
            Some(d) if (int(d.first()), int(d.get(1))) != (Some(rows), Some(parts)) => {
                return Ok(Err((
                    400,
                    "every part of an upload names the same rows and parts".into(),
                )));
            }
            Some(_) => {}
            None => {
                sql.exec(
                    "INSERT INTO uploads (upload, rows, parts, at) VALUES (?, ?, ?, ?)",
                    vec![
                        Value::String(upload.into()),
                        Value::Integer(rows),
                        Value::Integer(parts),
                        Value::Integer(now),
                    ],
                )?;
                self.ring_in(UPLOAD_SECS * 1000).await?;
            }
        }
        let count = shard_count(u64::try_from(rows).unwrap_or(0));
        let mut by_shard: BTreeMap<u32, Vec<Row>> = BTreeMap::new();
        for row in put {
            let i = shard_of(row.key.first().map_or("", String::as_str), count);
            by_shard.entry(i).or_default().push(row);
        }
        // A part sent again replaces what it left.
        let up = Value::String(upload.into());
        sql.exec(
            "DELETE FROM staged WHERE upload = ? AND part = ?",
            vec![up.clone(), Value::Integer(part)],
        )?;
        for (shard, rows) in by_shard {
            for (piece, rows) in (0i64..).zip(pieces(rows, PIECE_BYTES)) {
                sql.exec(
                    "INSERT INTO staged (upload, part, shard, piece, body) VALUES (?, ?, ?, ?, ?)",
                    vec![
                        up.clone(),
                        Value::Integer(part),
                        Value::Integer(i64::from(shard)),
                        Value::Integer(piece),
                        Value::Blob(encode_rows(&rows)),
                    ],
                )?;
            }
        }
        sql.exec(
            "INSERT OR REPLACE INTO received (upload, part) VALUES (?, ?)",
            vec![up.clone(), Value::Integer(part)],
        )?;
        let have = self
            .first(
                "SELECT COUNT(*) FROM received WHERE upload = ?",
                vec![up.clone()],
            )?
            .and_then(|r| int(r.first()))
            .unwrap_or(0);
        if have < parts {
            return Ok(Ok(
                json!({"mode": "full", "upload": upload, "parts_received": have, "parts": parts}),
            ));
        }
        // Every part is here: the commit, one rewrite at a time. A part resent while
        // another commits this upload waits, then gets that commit's answer.
        while self.building.get() {
            worker::Delay::from(std::time::Duration::from_millis(20)).await;
        }
        if let Some(answer) = self.committed(upload)? {
            return Ok(Ok(answer));
        }
        self.building.set(true);
        let committed = self.commit(name, upload, count, layout, now).await;
        self.building.set(false);
        let manifest = committed?;
        let answer = json!({
            "mode": "full",
            "upload": upload,
            "version": manifest.version,
            "rows": manifest.rows,
            "shards": manifest.shards.len(),
        });
        sql.exec(
            "INSERT OR REPLACE INTO committed (upload, answer, at) VALUES (?, ?, ?)",
            vec![
                up.clone(),
                Value::String(answer.to_string()),
                Value::Integer(now),
            ],
        )?;
        for table in ["staged", "received", "uploads"] {
            sql.exec(
                &format!("DELETE FROM {table} WHERE upload = ?"),
                vec![up.clone()],
            )?;
        }
        Ok(Ok(answer))
    }

    /// The answer of an upload committed in the last day.
    fn committed(&self, upload: &str) -> Result<Option<serde_json::Value>> {
        let row = self.first(
            "SELECT answer FROM committed WHERE upload = ?",
            vec![Value::String(upload.into())],
        )?;
        Ok(row
            .and_then(|r| text(r.into_iter().next()))
            .and_then(|a| serde_json::from_str::<serde_json::Value>(&a).ok())
            .map(|mut a| {
                a["replayed"] = json!(true);
                a
            }))
    }

    /// The rows of shard `i` of an upload, in the order they were pushed.
    fn staged_rows(&self, upload: &str, i: u32) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        for row in self
            .sql()
            .exec(
                "SELECT body FROM staged WHERE upload = ? AND shard = ? ORDER BY part, piece",
                vec![Value::String(upload.into()), Value::Integer(i64::from(i))],
            )?
            .raw()
        {
            if let Some(Value::Blob(bytes)) = row?.into_iter().next() {
                rows.extend(
                    decode_rows(&bytes)
                        .map_err(|e| worker::Error::RustError(format!("a staged piece: {e}")))?,
                );
            }
        }
        Ok(rows)
    }

    /// Writes an upload's shards, then the manifest naming them; every change made
    /// before it is replaced by it. The watchers of rows it changed are told.
    async fn commit(
        &self,
        name: &str,
        upload: &str,
        count: u32,
        layout: u32,
        now: i64,
    ) -> Result<Manifest> {
        let before = self.manifest()?;
        let seq = self.seq()?;
        let watched = self.watched_by_shard(count)?;
        let mut news: Vec<(Vec<String>, Option<Row>)> = Vec::new();
        let manifest = self
            .write_upload(name, upload, (count, layout, seq), now, &mut |j, shard| {
                for key in watched.get(&j).into_iter().flatten() {
                    let refs: Vec<&str> = key.iter().map(String::as_str).collect();
                    news.push((key.clone(), shard.get(&refs).cloned()));
                }
            })
            .await?;
        self.sql().exec(
            "UPDATE hot SET folded_at = ? WHERE folded_at IS NULL AND seq <= ?",
            vec![Value::Integer(now), Value::Integer(as_i64(seq))],
        )?;
        // What the watched rows were: the shards this push replaced.
        let mut changed = Vec::new();
        let mut old: BTreeMap<u32, Option<Shard>> = BTreeMap::new();
        for (key, new) in news {
            let Some(m) = &before else {
                changed.push((key, None, new));
                continue;
            };
            let first = key.first().map_or("", String::as_str);
            let j = shard_of(first, u32::try_from(m.shards.len()).unwrap_or(1));
            if !old.contains_key(&j) {
                if old.len() >= TELL_READS {
                    continue;
                }
                let generation = m.shards.get(index(j)).copied().unwrap_or(0);
                let shard = self.read_shard(name, j, generation).await.ok();
                old.insert(j, shard);
            }
            let Some(Some(shard)) = old.get(&j) else {
                continue;
            };
            let refs: Vec<&str> = key.iter().map(String::as_str).collect();
            let was = shard.get(&refs).cloned();
            if was != new {
                changed.push((key, was, new));
            }
        }
        self.tell(name, changed, now).await?;
        Ok(manifest)
    }

    /// The rows people watch, by the shard (of `count`) they are in.
    fn watched_by_shard(&self, count: u32) -> Result<BTreeMap<u32, Vec<Vec<String>>>> {
        let mut out: BTreeMap<u32, Vec<Vec<String>>> = BTreeMap::new();
        for row in self
            .sql()
            .exec("SELECT DISTINCT key FROM watches", vec![])?
            .raw()
        {
            let Some(key) = text(row?.into_iter().next()) else {
                continue;
            };
            let key: Vec<String> = key.split('\u{1f}').map(str::to_owned).collect();
            let i = shard_of(key.first().map_or("", String::as_str), count);
            out.entry(i).or_default().push(key);
        }
        Ok(out)
    }

    async fn read_shard(
        &self,
        name: &str,
        i: u32,
        generation: u64,
    ) -> std::result::Result<Shard, String> {
        if generation == 0 {
            return Ok(Shard::default());
        }
        let bytes = self
            .env
            .kv("BUNDLES")
            .map_err(|e| e.to_string())?
            .get(&shard_key(name, i, generation))
            .bytes()
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("shard {i} generation {generation} is missing"))?;
        decode_shard(&bytes).map_err(|e| e.to_string())
    }

    async fn put_all(&self, writes: Vec<(String, Vec<u8>)>) -> Result<()> {
        let kv = self.env.kv("BUNDLES")?;
        let mut writes = writes.into_iter().peekable();
        while writes.peek().is_some() {
            let batch: Vec<_> = writes.by_ref().take(WRITES_AT_ONCE).collect();
            let puts = batch.iter().map(|(key, bytes)| {
                let kv = &kv;
                async move {
                    kv.put_bytes(key, bytes)?
                        .execute()
                        .await
                        .map_err(worker::Error::from)
                }
            });
            for done in futures_util::future::join_all(puts).await {
                done?;
            }
        }
        Ok(())
    }

    /// Writes a manifest (never over a newer one), and retires the shards the previous
    /// one named that this one does not: they go from KV `GRACE_SECS` later.
    async fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let name = self.name()?;
        let before = self.manifest()?;
        if before
            .as_ref()
            .is_some_and(|b| b.version > manifest.version)
        {
            log(
                "warn",
                "an older feed manifest was not written over a newer one",
                &format!("{name}: {}", manifest.version),
            );
            return Ok(());
        }
        let text = serde_json::to_string(manifest)?;
        self.env
            .kv("BUNDLES")?
            .put(&manifest_key(&name), text.clone())?
            .execute()
            .await?;
        self.set_meta("manifest", &text)?;
        if let Some(before) = before {
            for (i, generation) in (0u32..).zip(before.shards.iter().copied()) {
                let same = manifest.shards.get(index(i)) == Some(&generation);
                if generation != 0 && !same {
                    self.sql().exec(
                        "INSERT OR REPLACE INTO retired (key, at) VALUES (?, ?)",
                        vec![
                            Value::String(shard_key(&name, i, generation)),
                            Value::Integer(manifest.updated_at),
                        ],
                    )?;
                }
            }
        }
        Ok(())
    }

    /// The alarm's work: the changes not yet folded (the first ones, up to
    /// `FOLD_SHARDS` shards' worth), into new generations of their shards and a new
    /// manifest; a feed grown by changes alone is cut into more shards.
    async fn fold(&self, now: i64) -> std::result::Result<(), String> {
        let e = |e: worker::Error| e.to_string();
        let Some(manifest) = self.manifest().map_err(e)? else {
            return Ok(());
        };
        let name = self.name().map_err(e)?;
        let count = u32::try_from(manifest.shards.len()).unwrap_or(1);
        let mut pending: Vec<(u64, Change)> = Vec::new();
        let mut touched: BTreeSet<u32> = BTreeSet::new();
        for row in self
            .sql()
            .exec(
                "SELECT seq, change FROM hot WHERE folded_at IS NULL ORDER BY seq",
                vec![],
            )
            .map_err(e)?
            .raw()
        {
            let row = row.map_err(e)?;
            let seq = u64::try_from(int(row.first()).unwrap_or(0)).unwrap_or(0);
            let Some(change) = one_change(row.get(1)) else {
                continue;
            };
            let i = shard_of(change.key().first().map_or("", String::as_str), count);
            if !touched.contains(&i) && touched.len() >= FOLD_SHARDS {
                break;
            }
            touched.insert(i);
            pending.push((seq, change));
        }
        let Some(&(upto, _)) = pending.last() else {
            return Ok(());
        };
        let grown =
            manifest.rows + pending.len() as u64 > u64::from(count) * ROWS_PER_SHARD * GROWN;
        // A reshard reads every shard and writes the new ones in this call: within its
        // 1,000 KV operations.
        let new_count = shard_count(manifest.rows + pending.len() as u64);
        let fits = u64::from(count) + u64::from(new_count) + 2 <= 1_000;
        let changed = if grown && index(count) <= RESHARD_MAX && count < MAX_SHARDS && fits {
            self.reshard(&name, &manifest, &pending, upto, now).await?
        } else {
            self.fold_into(&name, &manifest, &pending, upto, now)
                .await?
        };
        self.sql()
            .exec(
                "UPDATE hot SET folded_at = ? WHERE folded_at IS NULL AND seq <= ?",
                vec![Value::Integer(now), Value::Integer(as_i64(upto))],
            )
            .map_err(e)?;
        self.tell(&name, changed, now).await.map_err(e)?;
        Ok(())
    }

    /// Applies `pending` to the shards they touch; the rows whose value changed, with
    /// their old and new value, when someone watches.
    async fn fold_into(
        &self,
        name: &str,
        manifest: &Manifest,
        pending: &[(u64, Change)],
        upto: u64,
        now: i64,
    ) -> std::result::Result<Vec<Changed>, String> {
        let count = u32::try_from(manifest.shards.len()).unwrap_or(1);
        let by_shard = by_shard(pending, count);
        let version = manifest.version + 1;
        let watching = self
            .count("SELECT COUNT(*) FROM watches LIMIT 1")
            .map_err(|e| e.to_string())?
            > 0;
        let mut next = manifest.clone();
        let mut writes = Vec::new();
        let mut changed = Vec::new();
        for (i, changes) in by_shard {
            let generation = manifest.shards.get(index(i)).copied().unwrap_or(0);
            let old = self.read_shard(name, i, generation).await?;
            let rows = apply(&old, &changes, watching.then_some(&mut changed));
            let shard = Shard::new(rows.into_values().collect());
            next.rows = next.rows.saturating_sub(old.len() as u64) + shard.len() as u64;
            if let Some(g) = next.shards.get_mut(index(i)) {
                *g = version;
            }
            writes.push((shard_key(name, i, version), encode_shard(&shard)));
        }
        self.put_all(writes).await.map_err(|e| e.to_string())?;
        next.version = version;
        next.updated_at = now;
        next.seq = upto;
        self.write_manifest(&next)
            .await
            .map_err(|e| e.to_string())?;
        Ok(changed)
    }

    /// A feed grown by changes alone, cut into as many shards as its rows need: each
    /// old shard read once, with its changes applied, and staged by new shard as a full
    /// push's parts are, then committed.
    async fn reshard(
        &self,
        name: &str,
        manifest: &Manifest,
        pending: &[(u64, Change)],
        upto: u64,
        now: i64,
    ) -> std::result::Result<Vec<Changed>, String> {
        let e = |e: worker::Error| e.to_string();
        let old_count = u32::try_from(manifest.shards.len()).unwrap_or(1);
        let count = shard_count(manifest.rows + pending.len() as u64);
        let upload = format!("reshard-{}", manifest.version + 1);
        let up = Value::String(upload.clone());
        let sql = self.sql();
        // A reshard tried before and failed left pieces: none of them count.
        sql.exec("DELETE FROM staged WHERE upload = ?", vec![up.clone()])
            .map_err(e)?;
        sql.exec(
            "INSERT OR REPLACE INTO uploads (upload, rows, parts, at) VALUES (?, 0, 1, ?)",
            vec![up.clone(), Value::Integer(now)],
        )
        .map_err(e)?;
        let by_shard = by_shard(pending, old_count);
        let mut changed = Vec::new();
        for (i, generation) in (0u32..).zip(manifest.shards.iter().copied()) {
            let old = self.read_shard(name, i, generation).await?;
            let changes = by_shard.get(&i).map_or(&[][..], Vec::as_slice);
            let rows = apply(&old, changes, Some(&mut changed));
            let mut cut: BTreeMap<u32, Vec<Row>> = BTreeMap::new();
            for row in rows.into_values() {
                cut.entry(shard_of(row.key.first().map_or("", String::as_str), count))
                    .or_default()
                    .push(row);
            }
            for (j, rows) in cut {
                for (piece, rows) in (0i64..).zip(pieces(rows, PIECE_BYTES)) {
                    sql.exec(
                        "INSERT OR REPLACE INTO staged (upload, part, shard, piece, body) VALUES (?, ?, ?, ?, ?)",
                        vec![
                            up.clone(),
                            Value::Integer(i64::from(i)),
                            Value::Integer(i64::from(j)),
                            Value::Integer(piece),
                            Value::Blob(encode_rows(&rows)),
                        ],
                    )
                    .map_err(e)?;
                }
            }
        }
        let manifest = self
            .write_upload(
                name,
                &upload,
                (count, manifest.layout, upto),
                now,
                &mut |_, _| {},
            )
            .await
            .map_err(e)?;
        for table in ["staged", "received", "uploads"] {
            sql.exec(
                &format!("DELETE FROM {table} WHERE upload = ?"),
                vec![up.clone()],
            )
            .map_err(e)?;
        }
        log(
            "info",
            "feed cut into more shards",
            &format!(
                "{name}: {} shards, {} rows",
                manifest.shards.len(),
                manifest.rows
            ),
        );
        Ok(changed)
    }

    /// Writes an upload's shards, each assembled from its staged pieces and shown to
    /// `seen` (at most `WRITES_AT_ONCE` held at a time), then the manifest naming them,
    /// holding the changes up to `seq`.
    async fn write_upload(
        &self,
        name: &str,
        upload: &str,
        (count, layout, seq): (u32, u32, u64),
        now: i64,
        seen: &mut dyn FnMut(u32, &Shard),
    ) -> Result<Manifest> {
        let before = self.manifest()?;
        let version = before.as_ref().map_or(0, |m| m.version) + 1;
        let batch = u32::try_from(WRITES_AT_ONCE).unwrap_or(16);
        let mut total: u64 = 0;
        let mut i: u32 = 0;
        while i < count {
            let mut writes = Vec::new();
            for j in i..count.min(i.saturating_add(batch)) {
                let shard = Shard::new(self.staged_rows(upload, j)?);
                total += shard.len() as u64;
                seen(j, &shard);
                writes.push((shard_key(name, j, version), encode_shard(&shard)));
            }
            self.put_all(writes).await?;
            i = i.saturating_add(batch);
        }
        let manifest = Manifest {
            version,
            layout,
            shards: vec![version; index(count)],
            rows: total,
            updated_at: now,
            seq,
        };
        self.write_manifest(&manifest).await?;
        Ok(manifest)
    }

    /// `/watch`: a person watches rows (they were shown content chosen on them).
    fn watch(&self, body: &[u8]) -> Result<Response> {
        let Ok(watch) = serde_json::from_slice::<WatchMessage>(body) else {
            return error(400, "watch: {keys, watcher, now}");
        };
        let sql = self.sql();
        let visitor = Value::String(watch.watcher.visitor.clone());
        for key in watch.keys.iter().take(32) {
            let key = Value::String(key_text(key));
            sql.exec(
                "INSERT OR REPLACE INTO watches (key, visitor, profile, at) VALUES (?, ?, ?, ?)",
                vec![
                    key.clone(),
                    visitor.clone(),
                    watch
                        .watcher
                        .profile
                        .clone()
                        .map_or(Value::Null, Value::String),
                    Value::Integer(watch.now),
                ],
            )?;
            sql.exec(
                "DELETE FROM watches WHERE key = ? AND visitor NOT IN \
                 (SELECT visitor FROM watches WHERE key = ? ORDER BY at DESC LIMIT ?)",
                vec![key.clone(), key, Value::Integer(WATCHERS_PER_ROW)],
            )?;
        }
        sql.exec(
            "DELETE FROM watches WHERE visitor = ? AND key NOT IN \
             (SELECT key FROM watches WHERE visitor = ? ORDER BY at DESC LIMIT ?)",
            vec![visitor.clone(), visitor, Value::Integer(WATCHES_PER_PERSON)],
        )?;
        ResponseBuilder::new().from_json(&json!({"watching": watch.keys.len().min(32)}))
    }

    /// The people watching `key`.
    fn watchers(&self, key: &str) -> Result<Vec<Watcher>> {
        let mut out = Vec::new();
        for row in self
            .sql()
            .exec(
                "SELECT visitor, profile FROM watches WHERE key = ?",
                vec![Value::String(key.into())],
            )?
            .raw()
        {
            let mut it = row?.into_iter();
            let Some(visitor) = text(it.next()) else {
                continue;
            };
            out.push(Watcher {
                visitor,
                profile: text(it.next()),
            });
        }
        Ok(out)
    }

    /// Tells the watchers of rows that changed, through the bundle's feed triggers on
    /// this feed; a watch that was told is used up.
    async fn tell(&self, name: &str, changed: Vec<Changed>, now: i64) -> Result<()> {
        if changed.is_empty() {
            return Ok(());
        }
        let Some(active) = cache::active(&self.env, &self.state, now).await else {
            return Ok(());
        };
        let Some(feed) = active
            .bundle
            .feeds
            .iter()
            .position(|f| f.name == name)
            .and_then(|i| u16::try_from(i).ok())
        else {
            return Ok(());
        };
        let mut deliveries = Vec::new();
        for (key, old, new) in changed {
            let text = key_text(&key);
            let watchers = self.watchers(&text)?;
            if watchers.is_empty() {
                continue;
            }
            let sent = feed_deliveries(
                &active.bundle,
                feed,
                &key,
                old.as_ref(),
                new.as_ref(),
                &watchers,
                now,
            );
            deliveries.extend(sent.into_iter().map(|d| (text.clone(), d)));
        }
        if deliveries.is_empty() {
            return Ok(());
        }
        log(
            "info",
            "feed triggers sent",
            &format!("{name}: {} deliveries", deliveries.len()),
        );
        let queue = match self.env.queue("TRIGGERS") {
            Ok(queue) => queue,
            Err(_) => {
                log(
                    "error",
                    "TRIGGERS is not bound: feed triggers are kept for the next change",
                    "",
                );
                return Ok(());
            }
        };
        // A watch is used up once every message to it is on the queue; one that could
        // not be sent keeps the watch, for the next change.
        let mut failed: BTreeSet<(String, String)> = BTreeSet::new();
        let mut sent: BTreeSet<(String, String)> = BTreeSet::new();
        for (key, delivery) in deliveries {
            let who = (key, delivery.visitor.clone());
            let what = format!("{} to {}", delivery.id, delivery.destination);
            match queue.send(delivery).await {
                Ok(()) => {
                    sent.insert(who);
                }
                Err(e) => {
                    log(
                        "error",
                        "feed trigger could not be enqueued",
                        &format!("{what}: {e}"),
                    );
                    failed.insert(who);
                }
            }
        }
        for (key, visitor) in sent.difference(&failed) {
            self.sql().exec(
                "DELETE FROM watches WHERE key = ? AND visitor = ?",
                vec![Value::String(key.clone()), Value::String(visitor.clone())],
            )?;
        }
        Ok(())
    }

    /// `/hot?since=N`: the changes numbered above N, folded or not.
    fn hot(&self, since: u64) -> Result<Response> {
        let mut hot = Vec::new();
        for row in self
            .sql()
            .exec(
                "SELECT change, seq, at FROM hot WHERE seq > ? ORDER BY seq",
                vec![Value::Integer(as_i64(since))],
            )?
            .raw()
        {
            let row = row?;
            let Some(change) = one_change(row.first()) else {
                continue;
            };
            hot.push(HotChange {
                seq: u64::try_from(int(row.get(1)).unwrap_or(0)).unwrap_or(0),
                at: int(row.get(2)).unwrap_or(0),
                change,
            });
        }
        Ok(ResponseBuilder::new()
            .with_header("Content-Type", "application/octet-stream")?
            .fixed(encode_hot(&hot)))
    }
}
