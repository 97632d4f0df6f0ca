//! The `Feed` Durable Object (class `Feed`, binding `FEEDS`): one per feed, named by
//! the feed's name, the only writer of its KV keys (docs/feeds.md).
//!
//! - A full push arrives in parts; once every part is there, its rows are cut into
//!   shards, each written to KV (`feed:<name>:<shard>:<generation>`), and only then the
//!   manifest (`feed:<name>`) that names them: nothing half-written is ever read.
//! - A change (a delta push) is kept here at once, and every isolate reads the recent
//!   changes (`/hot`) at most every `MM_FEED_HOT_MS`, so it is visible within seconds;
//!   the alarm folds the changes into new generations of their shards and a new
//!   manifest after `COMPACT_AFTER_MS`, and keeps them `GRACE_SECS` more for isolates
//!   still on the previous manifest.
//!
//! Its clock is the Worker's (`now` in each push); the alarm uses the platform's.

use std::cell::Cell;
use std::collections::BTreeMap;

use serde_json::json;
use worker::{
    durable_object, DurableObject, Env, Request, Response, ResponseBuilder, Result, SqlStorage,
    SqlStorageValue as Value,
};

use micromoment::feed::{
    decode_changes, decode_shard, encode_changes, encode_hot, encode_shard, shard_count, shard_of,
    Change, HotChange, Manifest, Row, Shard,
};

use super::super::error;
use super::super::platform::{self, log};
use super::{manifest_key, shard_key};

/// How long after a change its shard is rewritten.
const COMPACT_AFTER_MS: i64 = 10_000;
/// How long a folded change is still served to isolates on the previous manifest:
/// longer than `MM_BUNDLE_RECHECK_SECS` and KV's own propagation.
const GRACE_SECS: i64 = 180;
/// The most recent changes held: past it, a delta push is refused until they are
/// folded (a push of more is a full push).
const MAX_HOT: i64 = 20_000;
/// How many KV writes a rewrite has in flight at once.
const WRITES_AT_ONCE: usize = 16;

#[durable_object(alarm)]
pub struct Feed {
    state: worker::State,
    env: Env,
    /// A rewrite (a full push's commit, or the alarm's fold) is writing KV: the
    /// version it will be, so changes pushed meanwhile are laid over it too.
    building: Cell<Option<u64>>,
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v {
        Some(Value::Integer(n)) => Some(*n),
        #[allow(clippy::cast_possible_truncation)]
        Some(Value::Float(f)) => Some(*f as i64),
        _ => None,
    }
}

fn key_text(key: &[String]) -> String {
    key.join("\u{1f}")
}

impl DurableObject for Feed {
    fn new(state: worker::State, env: Env) -> Self {
        Feed {
            state,
            env,
            building: Cell::new(None),
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
            "/hot" => self.hot(),
            "/status" => ResponseBuilder::new().from_json(&json!({
                "manifest": self.manifest()?,
                "recent_changes": self.hot_count()?,
            })),
            _ => error(404, "not found"),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        self.migrate()?;
        if self.building.get().is_some() {
            self.ring_in(1_000).await?;
            return Response::ok("");
        }
        let now = platform::now();
        if let Err(e) = self.fold(now).await {
            log("error", "feed fold failed", &e);
            self.ring_in(COMPACT_AFTER_MS).await?;
            return Response::ok("");
        }
        self.sql().exec(
            "DELETE FROM hot WHERE folded = 1 AND at < ?",
            vec![Value::Integer(now - GRACE_SECS)],
        )?;
        let left = self
            .sql()
            .exec("SELECT COUNT(*) FROM hot", vec![])?
            .raw()
            .next()
            .transpose()?
            .and_then(|r| int(r.first()))
            .unwrap_or(0);
        if left > 0 {
            self.ring_in(COMPACT_AFTER_MS.max(GRACE_SECS * 1000 / 4))
                .await?;
        }
        Response::ok("")
    }
}

impl Feed {
    fn sql(&self) -> SqlStorage {
        self.state.storage().sql()
    }

    fn migrate(&self) -> Result<()> {
        let sql = self.sql();
        sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            vec![],
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS hot (key TEXT PRIMARY KEY, shard_first TEXT NOT NULL, \
             change BLOB NOT NULL, base INTEGER NOT NULL, at INTEGER NOT NULL, \
             folded INTEGER NOT NULL DEFAULT 0)",
            vec![],
        )?;
        sql.exec(
            "CREATE TABLE IF NOT EXISTS parts (upload TEXT NOT NULL, part INTEGER NOT NULL, \
             body BLOB NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (upload, part))",
            vec![],
        )?;
        Ok(())
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
        Ok(row.and_then(|r| match r.into_iter().next() {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }))
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

    fn hot_count(&self) -> Result<i64> {
        Ok(self
            .sql()
            .exec("SELECT COUNT(*) FROM hot WHERE folded = 0", vec![])?
            .raw()
            .next()
            .transpose()?
            .and_then(|r| int(r.first()))
            .unwrap_or(0))
    }

    async fn ring_in(&self, ms: i64) -> Result<()> {
        let storage = self.state.storage();
        if storage.get_alarm().await?.is_none() {
            storage
                .set_alarm(std::time::Duration::from_millis(
                    u64::try_from(ms).unwrap_or(0),
                ))
                .await?;
        }
        Ok(())
    }

    /// `/push`: a part of a full push, or a delta.
    async fn push(&self, query: &BTreeMap<String, String>, body: &[u8]) -> Result<Response> {
        let q = |k: &str| query.get(k).map(String::as_str);
        let num = |k: &str| q(k).and_then(|v| v.parse::<i64>().ok());
        let (Some(name), Some(layout), Some(now)) = (q("name"), num("layout"), num("now")) else {
            return error(400, "push: name, layout and now are required");
        };
        self.set_meta("name", name)?;
        let layout = u32::try_from(layout).unwrap_or(0);
        if let Some(key) = q("key") {
            if let Some(answer) = self.meta(&format!("idempotency:{key}"))? {
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
                self.full_part(name, upload, part, parts, body, layout, now)
                    .await?
            }
            _ => return error(400, "mode is full or delta"),
        };
        let answer = match answer {
            Ok(answer) => answer,
            Err((status, message)) => return error(status, &message),
        };
        if let Some(key) = q("key") {
            self.set_meta(&format!("idempotency:{key}"), &answer.to_string())?;
        }
        ResponseBuilder::new().from_json(&answer)
    }

    /// The version changes pushed now are made on: the one being written, if any.
    fn base(&self) -> Result<u64> {
        Ok(match self.building.get() {
            Some(v) => v,
            None => self.manifest()?.map_or(0, |m| m.version),
        })
    }

    async fn delta(
        &self,
        body: &[u8],
        layout: u32,
        now: i64,
    ) -> Result<std::result::Result<serde_json::Value, (u16, String)>> {
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
        let held = self.hot_count()?;
        if held.saturating_add(i64::try_from(changes.len()).unwrap_or(i64::MAX)) > MAX_HOT {
            return Ok(Err((429, format!("{held} changes wait to be folded into the feed: push it in full, or again in a few seconds"))));
        }
        let base = i64::try_from(self.base()?).unwrap_or(i64::MAX);
        let sql = self.sql();
        for change in &changes {
            let first = change.key().first().cloned().unwrap_or_default();
            sql.exec(
                "INSERT OR REPLACE INTO hot (key, shard_first, change, base, at, folded) VALUES (?, ?, ?, ?, ?, 0)",
                vec![
                    Value::String(key_text(change.key())),
                    Value::String(first),
                    Value::Blob(encode_changes(std::slice::from_ref(change))),
                    Value::Integer(base),
                    Value::Integer(now),
                ],
            )?;
        }
        if self.manifest()?.is_none() {
            // The first write of a feed: an empty manifest of one shard.
            self.write_manifest(&Manifest {
                version: 0,
                layout,
                shards: vec![0],
                rows: 0,
                updated_at: now,
            })
            .await?;
        }
        self.set_meta("changed_at", &now.to_string())?;
        self.ring_in(COMPACT_AFTER_MS).await?;
        Ok(Ok(
            json!({"mode": "delta", "changes": changes.len(), "visible_within_ms": super::HOT_MS}),
        ))
    }

    #[allow(clippy::too_many_arguments)]
    async fn full_part(
        &self,
        name: &str,
        upload: &str,
        part: i64,
        parts: i64,
        body: &[u8],
        layout: u32,
        now: i64,
    ) -> Result<std::result::Result<serde_json::Value, (u16, String)>> {
        if !(1..=10_000).contains(&parts) || !(1..=parts).contains(&part) {
            return Ok(Err((
                400,
                "part is 1 to parts, and parts at most 10000".into(),
            )));
        }
        let sql = self.sql();
        // Uploads left unfinished for a day go.
        sql.exec(
            "DELETE FROM parts WHERE at < ?",
            vec![Value::Integer(now - 86_400)],
        )?;
        sql.exec(
            "INSERT OR REPLACE INTO parts (upload, part, body, at) VALUES (?, ?, ?, ?)",
            vec![
                Value::String(upload.into()),
                Value::Integer(part),
                Value::Blob(body.to_vec()),
                Value::Integer(now),
            ],
        )?;
        let have = sql
            .exec(
                "SELECT COUNT(*) FROM parts WHERE upload = ?",
                vec![Value::String(upload.into())],
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
        // Every part is here: the rows, cut into shards.
        let mut rows: Vec<Row> = Vec::new();
        for row in sql
            .exec(
                "SELECT body FROM parts WHERE upload = ? ORDER BY part",
                vec![Value::String(upload.into())],
            )?
            .raw()
        {
            let row = row?;
            let Some(Value::Blob(bytes)) = row.into_iter().next() else {
                continue;
            };
            let Ok(changes) = decode_changes(&bytes) else {
                return Ok(Err((400, "a part's changes are unreadable".into())));
            };
            for change in changes {
                match change {
                    Change::Put(row) => rows.push(row),
                    Change::Delete(_) => {
                        return Ok(Err((
                            400,
                            "a full push lists rows; `_delete` is for a delta push".into(),
                        )));
                    }
                }
            }
        }
        sql.exec(
            "DELETE FROM parts WHERE upload = ?",
            vec![Value::String(upload.into())],
        )?;
        while self.building.get().is_some() {
            worker::Delay::from(std::time::Duration::from_millis(20)).await;
        }
        let version = self.manifest()?.map_or(0, |m| m.version) + 1;
        self.building.set(Some(version));
        let result = self.write_full(name, rows, layout, version, now).await;
        self.building.set(None);
        let manifest = result?;
        // Changes made before this push are replaced by it, not folded into it.
        sql.exec(
            "UPDATE hot SET folded = 1, at = ? WHERE base < ?",
            vec![
                Value::Integer(now),
                Value::Integer(i64::try_from(version).unwrap_or(i64::MAX)),
            ],
        )?;
        Ok(Ok(json!({
            "mode": "full",
            "upload": upload,
            "version": manifest.version,
            "rows": manifest.rows,
            "shards": manifest.shards.len(),
        })))
    }

    async fn write_full(
        &self,
        name: &str,
        rows: Vec<Row>,
        layout: u32,
        version: u64,
        now: i64,
    ) -> Result<Manifest> {
        let count = shard_count(rows.len() as u64);
        let mut cut: Vec<Vec<Row>> = (0..count).map(|_| Vec::new()).collect();
        for row in rows {
            let i = shard_of(row.key.first().map_or("", String::as_str), count);
            if let Some(list) = cut.get_mut(usize::try_from(i).unwrap_or(usize::MAX)) {
                list.push(row);
            }
        }
        let shards: Vec<Shard> = cut.into_iter().map(Shard::new).collect();
        let total: u64 = shards.iter().map(|s| s.len() as u64).sum();
        let writes: Vec<(String, Vec<u8>)> = (0u32..)
            .zip(&shards)
            .map(|(i, s)| (shard_key(name, i, version), encode_shard(s)))
            .collect();
        self.put_all(writes).await?;
        let manifest = Manifest {
            version,
            layout,
            shards: vec![version; shards.len()],
            rows: total,
            updated_at: now,
        };
        self.write_manifest(&manifest).await?;
        Ok(manifest)
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

    /// The alarm's work: the changes not yet folded, into new generations of their
    /// shards and a new manifest.
    async fn fold(&self, now: i64) -> std::result::Result<(), String> {
        let e = |e: worker::Error| e.to_string();
        let Some(manifest) = self.manifest().map_err(e)? else {
            return Ok(());
        };
        let name = self.name().map_err(e)?;
        let pending: Vec<(String, Change)> = self
            .sql()
            .exec("SELECT key, change FROM hot WHERE folded = 0", vec![])
            .map_err(e)?
            .raw()
            .filter_map(|r| {
                let r = r.ok()?;
                let mut it = r.into_iter();
                let (Some(Value::String(k)), Some(Value::Blob(b))) = (it.next(), it.next()) else {
                    return None;
                };
                Some((k, decode_changes(&b).ok()?.into_iter().next()?))
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        let version = manifest.version + 1;
        self.building.set(Some(version));
        let result = self
            .fold_into(&name, &manifest, &pending, version, now)
            .await;
        self.building.set(None);
        let manifest = result?;
        let sql = self.sql();
        for (key, _) in &pending {
            sql.exec(
                "UPDATE hot SET folded = 1, at = ? WHERE key = ? AND base < ?",
                vec![
                    Value::Integer(now),
                    Value::String(key.clone()),
                    Value::Integer(i64::try_from(manifest.version).unwrap_or(i64::MAX)),
                ],
            )
            .map_err(e)?;
        }
        Ok(())
    }

    async fn fold_into(
        &self,
        name: &str,
        manifest: &Manifest,
        pending: &[(String, Change)],
        version: u64,
        now: i64,
    ) -> std::result::Result<Manifest, String> {
        let count = u32::try_from(manifest.shards.len()).unwrap_or(1);
        let mut by_shard: BTreeMap<u32, Vec<&Change>> = BTreeMap::new();
        for (_, change) in pending {
            let first = change.key().first().map_or("", String::as_str);
            by_shard
                .entry(shard_of(first, count))
                .or_default()
                .push(change);
        }
        let kv = self.env.kv("BUNDLES").map_err(|e| e.to_string())?;
        let mut next = manifest.clone();
        let mut writes = Vec::new();
        for (i, changes) in by_shard {
            let generation = manifest
                .shards
                .get(usize::try_from(i).unwrap_or(usize::MAX))
                .copied()
                .unwrap_or(0);
            let old = if generation == 0 {
                Shard::default()
            } else {
                let bytes = kv
                    .get(&shard_key(name, i, generation))
                    .bytes()
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("shard {i} generation {generation} is missing"))?;
                decode_shard(&bytes).map_err(|e| e.to_string())?
            };
            let mut rows: BTreeMap<Vec<String>, Row> = old
                .rows()
                .iter()
                .map(|r| (r.key.clone(), r.clone()))
                .collect();
            for change in changes {
                match change {
                    Change::Put(row) => {
                        rows.insert(row.key.clone(), row.clone());
                    }
                    Change::Delete(key) => {
                        rows.remove(key);
                    }
                }
            }
            let shard = Shard::new(rows.into_values().collect());
            next.rows = next.rows.saturating_sub(old.len() as u64) + shard.len() as u64;
            if let Some(g) = next
                .shards
                .get_mut(usize::try_from(i).unwrap_or(usize::MAX))
            {
                *g = version;
            }
            writes.push((shard_key(name, i, version), encode_shard(&shard)));
        }
        self.put_all(writes).await.map_err(|e| e.to_string())?;
        next.version = version;
        next.updated_at = now;
        self.write_manifest(&next)
            .await
            .map_err(|e| e.to_string())?;
        Ok(next)
    }

    /// `/hot`: the recent changes, folded or not, each with its base version.
    fn hot(&self) -> Result<Response> {
        let mut hot = Vec::new();
        for row in self
            .sql()
            .exec("SELECT change, base, at FROM hot", vec![])?
            .raw()
        {
            let row = row?;
            let (Some(Value::Blob(bytes)), base, at) =
                (row.first(), int(row.get(1)), int(row.get(2)))
            else {
                continue;
            };
            let Some(change) = decode_changes(bytes)
                .ok()
                .and_then(|c| c.into_iter().next())
            else {
                continue;
            };
            hot.push(HotChange {
                base: u64::try_from(base.unwrap_or(0)).unwrap_or(0),
                at: at.unwrap_or(0),
                change,
            });
        }
        Ok(ResponseBuilder::new()
            .with_header("Content-Type", "application/octet-stream")?
            .fixed(encode_hot(&hot)))
    }
}
