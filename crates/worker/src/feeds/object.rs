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
use super::super::{cache, error, triggers};
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
        sql.exec(
            "DELETE FROM hot WHERE folded_at IS NOT NULL AND folded_at < ?",
            vec![Value::Integer(now - GRACE_SECS)],
        )?;
        sql.exec(
            "DELETE FROM idempotency WHERE at < ?",
            vec![Value::Integer(now - IDEMPOTENCY_SECS)],
        )?;
        sql.exec(
            "DELETE FROM watches WHERE at < ?",
            vec![Value::Integer(now - WATCH_SECS)],
        )?;
        for table in ["staged", "received"] {
            sql.exec(
                &format!(
                    "DELETE FROM {table} WHERE upload IN (SELECT upload FROM uploads WHERE at < ?)"
                ),
                vec![Value::Integer(now - UPLOAD_SECS)],
            )?;
        }
        sql.exec(
            "DELETE FROM uploads WHERE at < ?",
            vec![Value::Integer(now - UPLOAD_SECS)],
        )?;
        if self.unfolded()? > 0 {
            self.ring_in(self.fold_ms()).await?;
        } else if self.count("SELECT COUNT(*) FROM hot")? > 0 {
            self.ring_in(GRACE_SECS * 1000 / 4).await?;
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
        ] {
            sql.exec(table, vec![])?;
        }
        Ok(())
    }

    fn count(&self, query: &str) -> Result<i64> {
        Ok(self
            .sql()
            .exec(query, vec![])?
            .raw()
            .next()
            .transpose()?
            .and_then(|r| int(r.first()))
            .unwrap_or(0))
    }

    fn unfolded(&self) -> Result<i64> {
        self.count("SELECT COUNT(*) FROM hot WHERE folded_at IS NULL")
    }

    fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = self
            .sql()
            .exec(
                "SELECT value FROM meta WHERE key = ?",
                vec![Value::String(key.into())],
            )?
            .raw()
            .next()
            .transpose()?;
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
            let row = self
                .sql()
                .exec(
                    "SELECT fingerprint, answer FROM idempotency WHERE key = ?",
                    vec![Value::String(key.into())],
                )?
                .raw()
                .next()
                .transpose()?;
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
        if self.manifest()?.is_none() {
            // The first write of a feed: an empty manifest of one shard.
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
        let declared = sql
            .exec(
                "SELECT rows, parts FROM uploads WHERE upload = ?",
                vec![Value::String(upload.into())],
            )?
            .raw()
            .next()
            .transpose()?;
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
        let have = sql
            .exec(
                "SELECT COUNT(*) FROM received WHERE upload = ?",
                vec![up.clone()],
            )?
            .raw()
            .next()
            .transpose()?
            .and_then(|r| int(r.first()))
            .unwrap_or(0);
        if have < parts {
            return Ok(Ok(
                json!({"mode": "full", "upload": upload, "parts_received": have, "parts": parts}),
            ));
        }
        // Every part is here: the commit, one rewrite at a time.
        while self.building.get() {
            worker::Delay::from(std::time::Duration::from_millis(20)).await;
        }
        self.building.set(true);
        let committed = self.commit(name, upload, count, layout, now).await;
        self.building.set(false);
        let manifest = committed?;
        for table in ["staged", "received", "uploads"] {
            sql.exec(
                &format!("DELETE FROM {table} WHERE upload = ?"),
                vec![up.clone()],
            )?;
        }
        Ok(Ok(json!({
            "mode": "full",
            "upload": upload,
            "version": manifest.version,
            "rows": manifest.rows,
            "shards": manifest.shards.len(),
        })))
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
        let version = before.as_ref().map_or(0, |m| m.version) + 1;
        let watched = self.watched_by_shard(count)?;
        let mut total: u64 = 0;
        let mut news: Vec<(Vec<String>, Option<Row>)> = Vec::new();
        let mut i: u32 = 0;
        while i < count {
            let mut writes = Vec::new();
            for j in i..count.min(i.saturating_add(u32::try_from(WRITES_AT_ONCE).unwrap_or(16))) {
                let shard = Shard::new(self.staged_rows(upload, j)?);
                total += shard.len() as u64;
                for key in watched.get(&j).into_iter().flatten() {
                    let refs: Vec<&str> = key.iter().map(String::as_str).collect();
                    news.push((key.clone(), shard.get(&refs).cloned()));
                }
                writes.push((shard_key(name, j, version), encode_shard(&shard)));
            }
            self.put_all(writes).await?;
            i = i.saturating_add(u32::try_from(WRITES_AT_ONCE).unwrap_or(16));
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

    async fn write_manifest(&self, manifest: &Manifest) -> Result<()> {
        let name = self.name()?;
        let text = serde_json::to_string(manifest)?;
        self.env
            .kv("BUNDLES")?
            .put(&manifest_key(&name), text.clone())?
            .execute()
            .await?;
        self.set_meta("manifest", &text)
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
            let Some(Value::Blob(bytes)) = row.get(1) else {
                continue;
            };
            let Some(change) = decode_changes(bytes)
                .ok()
                .and_then(|c| c.into_iter().next())
            else {
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
        let changed = if grown && index(count) <= RESHARD_MAX && count < MAX_SHARDS {
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
    ) -> std::result::Result<Vec<(Vec<String>, Option<Row>, Option<Row>)>, String> {
        let count = u32::try_from(manifest.shards.len()).unwrap_or(1);
        let mut by_shard: BTreeMap<u32, Vec<&Change>> = BTreeMap::new();
        for (_, change) in pending {
            let first = change.key().first().map_or("", String::as_str);
            by_shard
                .entry(shard_of(first, count))
                .or_default()
                .push(change);
        }
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
                if watching {
                    changed.push((
                        change.key().to_vec(),
                        before,
                        rows.get(change.key()).cloned(),
                    ));
                }
            }
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
    ) -> std::result::Result<Vec<(Vec<String>, Option<Row>, Option<Row>)>, String> {
        let e = |e: worker::Error| e.to_string();
        let old_count = u32::try_from(manifest.shards.len()).unwrap_or(1);
        let count = shard_count(manifest.rows + pending.len() as u64);
        let upload = format!("reshard-{}", manifest.version + 1);
        let up = Value::String(upload.clone());
        let sql = self.sql();
        sql.exec(
            "INSERT OR REPLACE INTO uploads (upload, rows, parts, at) VALUES (?, 0, 1, ?)",
            vec![up.clone(), Value::Integer(now)],
        )
        .map_err(e)?;
        let mut by_shard: BTreeMap<u32, Vec<&Change>> = BTreeMap::new();
        for (_, change) in pending {
            let first = change.key().first().map_or("", String::as_str);
            by_shard
                .entry(shard_of(first, old_count))
                .or_default()
                .push(change);
        }
        let mut changed = Vec::new();
        for (i, generation) in (0u32..).zip(manifest.shards.iter().copied()) {
            let old = self.read_shard(name, i, generation).await?;
            let mut rows: BTreeMap<Vec<String>, Row> = old
                .rows()
                .iter()
                .map(|r| (r.key.clone(), r.clone()))
                .collect();
            for change in by_shard.get(&i).into_iter().flatten() {
                let before = rows.get(change.key()).cloned();
                match change {
                    Change::Put(row) => {
                        rows.insert(row.key.clone(), row.clone());
                    }
                    Change::Delete(key) => {
                        rows.remove(key);
                    }
                }
                changed.push((
                    change.key().to_vec(),
                    before,
                    rows.get(change.key()).cloned(),
                ));
            }
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
            .commit_quiet(name, &upload, (count, manifest.layout, upto), now)
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

    /// A commit that tells nobody (its caller does), holding the changes up to `seq`.
    async fn commit_quiet(
        &self,
        name: &str,
        upload: &str,
        (count, layout, seq): (u32, u32, u64),
        now: i64,
    ) -> Result<Manifest> {
        let before = self.manifest()?;
        let version = before.as_ref().map_or(0, |m| m.version) + 1;
        let mut total: u64 = 0;
        let mut i: u32 = 0;
        while i < count {
            let mut writes = Vec::new();
            for j in i..count.min(i.saturating_add(u32::try_from(WRITES_AT_ONCE).unwrap_or(16))) {
                let shard = Shard::new(self.staged_rows(upload, j)?);
                total += shard.len() as u64;
                writes.push((shard_key(name, j, version), encode_shard(&shard)));
            }
            self.put_all(writes).await?;
            i = i.saturating_add(u32::try_from(WRITES_AT_ONCE).unwrap_or(16));
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
        for key in watch.keys.iter().take(8) {
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
        sql.exec(
            "DELETE FROM watches WHERE rowid IN \
             (SELECT rowid FROM watches ORDER BY at DESC LIMIT -1 OFFSET ?)",
            vec![Value::Integer(MAX_WATCHES)],
        )?;
        ResponseBuilder::new().from_json(&json!({"watching": watch.keys.len().min(8)}))
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
    async fn tell(
        &self,
        name: &str,
        changed: Vec<(Vec<String>, Option<Row>, Option<Row>)>,
        now: i64,
    ) -> Result<()> {
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
            let told: BTreeSet<String> = sent.iter().map(|d| d.visitor.clone()).collect();
            for visitor in told {
                self.sql().exec(
                    "DELETE FROM watches WHERE key = ? AND visitor = ?",
                    vec![Value::String(text.clone()), Value::String(visitor)],
                )?;
            }
            deliveries.extend(sent);
        }
        if !deliveries.is_empty() {
            log(
                "info",
                "feed triggers sent",
                &format!("{name}: {} deliveries", deliveries.len()),
            );
        }
        triggers::enqueue(&self.env, deliveries).await;
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
            let Some(Value::Blob(bytes)) = row.first() else {
                continue;
            };
            let Some(change) = decode_changes(bytes)
                .ok()
                .and_then(|c| c.into_iter().next())
            else {
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
