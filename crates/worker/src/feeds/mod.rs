//! Live data at the edge (docs/feeds.md), the Worker's half: the ingest route
//! (`PUT /v1/feeds/<name>`, handed to the feed's object), its status
//! (`GET /v1/feeds/<name>`), and the isolate's copy of each feed: the manifest
//! (re-read at most every `MM_BUNDLE_RECHECK_SECS`), the shards requests needed (kept,
//! by generation), the recent changes (asked of the object at most every
//! `MM_FEED_HOT_MS`) and the stores' grid (built once per version and set of changes).
//! Every read has a deadline (`MM_FEED_TIMEOUT_MS`): what does not arrive in time is
//! missing, and a rule that needs it is false.

pub(crate) mod object;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use worker::{Env, Method, Request, RequestInit, Response, ResponseBuilder, Result};

use micromoment::bundle::Bundle;
use micromoment::calls;
use micromoment::feed::{
    decode_hot, decode_shard, encode_changes, parse_ndjson, shard_of, Change, FeedData, FeedSpec,
    Feeds, HotChange, Manifest, Row, Shard, StoreIndex, Wants,
};

use super::io::{self, BodyError};
use super::platform::{self, log};
use super::{cache, error};

/// The most bytes one push may carry (a full feed is pushed in parts).
const MAX_PUSH_BODY: usize = 16 * 1024 * 1024;
/// What the shards an isolate keeps may take in memory, in all (estimated as five
/// times their encoded size: a decoded 2,048-row shard measures 4.5): past it, the
/// least recently used go. Which shard a request reads is the visitor's to choose (the
/// item in the URL), so this bound is what keeps a crawl of every item from filling
/// the isolate.
const MAX_KEPT_BYTES: usize = 24 * 1024 * 1024;

pub(crate) fn manifest_key(name: &str) -> String {
    format!("feed:{name}")
}

pub(crate) fn shard_key(name: &str, shard: u32, generation: u64) -> String {
    format!("feed:{name}:{shard}:{generation}")
}

/// The recent changes laid over a manifest's shards, and the newest change's time.
type Overlay = (Arc<BTreeMap<Vec<String>, Option<Row>>>, i64);

/// One feed as this isolate holds it.
#[derive(Default)]
struct Held {
    manifest: Option<Arc<Manifest>>,
    /// When KV was last asked for the manifest (seconds; `None`: never).
    manifest_checked: Option<i64>,
    /// The object's recent changes, and when it was last asked (ms).
    hot: Vec<HotChange>,
    hot_checked_ms: Option<i64>,
    /// Bumped whenever `hot` is replaced.
    hot_stamp: u64,
    /// The recent changes over the manifest's shards, for (version, stamp).
    overlay: Option<((u64, u64), Overlay)>,
    shards: HashMap<(u32, u64), Arc<Shard>>,
    stores: Option<((u64, u64), Arc<StoreIndex>)>,
}

/// A kept shard: its feed, index, generation and estimated bytes.
type Kept = (String, u32, u64, usize);

thread_local! {
    static HELD: RefCell<HashMap<String, Held>> = RefCell::new(HashMap::new());
    /// Every kept shard, least recently used first, and their bytes in all.
    static KEPT: RefCell<(VecDeque<Kept>, usize)> = const { RefCell::new((VecDeque::new(), 0)) };
}

/// Marks a kept shard used now.
fn used(name: &str, i: u32, generation: u64) {
    KEPT.with(|k| {
        let mut k = k.borrow_mut();
        if let Some(at) =
            k.0.iter()
                .position(|(n, j, g, _)| *j == i && *g == generation && n == name)
        {
            if let Some(entry) = k.0.remove(at) {
                k.0.push_back(entry);
            }
        }
    });
}

/// Keeps a shard, and lets the least recently used go past [`MAX_KEPT_BYTES`].
fn keep(name: &str, i: u32, generation: u64, shard: Arc<Shard>, bytes: usize) {
    // Two requests that missed the same shard at once keep it once.
    if with_held(name, |h| h.shards.insert((i, generation), shard).is_some()) {
        return;
    }
    let gone: Vec<Kept> = KEPT.with(|k| {
        let mut k = k.borrow_mut();
        k.0.push_back((name.to_owned(), i, generation, bytes));
        k.1 = k.1.saturating_add(bytes);
        let mut gone = Vec::new();
        while k.1 > MAX_KEPT_BYTES && k.0.len() > 1 {
            let Some(old) = k.0.pop_front() else { break };
            k.1 = k.1.saturating_sub(old.3);
            gone.push(old);
        }
        gone
    });
    for (feed, j, g, _) in gone {
        with_held(&feed, |h| h.shards.remove(&(j, g)));
    }
}

fn with_held<T>(name: &str, f: impl FnOnce(&mut Held) -> T) -> T {
    HELD.with(|h| f(h.borrow_mut().entry(name.to_owned()).or_default()))
}

/// The feeds `wants` names, loaded for one request; feeds it does not name are absent.
pub(crate) async fn load(env: &Env, bundle: &Bundle, wants: &Wants, now: i64) -> Feeds {
    let mut feeds: Vec<Option<FeedData>> = bundle.feeds.iter().map(|_| None).collect();
    let mut needed: Vec<u16> = wants.keys.iter().map(|(f, _)| *f).collect();
    needed.extend(&wants.whole);
    needed.sort_unstable();
    needed.dedup();
    let loads = needed.iter().filter_map(|&i| {
        let spec = bundle.feeds.get(usize::from(i))?;
        let keys: Vec<&str> = wants
            .keys
            .iter()
            .filter(|(f, _)| *f == i)
            .map(|(_, k)| k.as_str())
            .collect();
        let whole = wants.whole.contains(&i);
        let stores = bundle.feed_roles.stores.filter(|(f, _, _)| *f == i);
        Some(async move { (i, load_one(env, spec, &keys, whole, stores).await) })
    });
    for (i, data) in futures_util::future::join_all(loads).await {
        if let Some(slot) = feeds.get_mut(usize::from(i)) {
            *slot = data;
        }
    }
    Feeds { now, feeds }
}

async fn load_one(
    env: &Env,
    spec: &FeedSpec,
    keys: &[&str],
    whole: bool,
    stores: Option<(u16, u16, u16)>,
) -> Option<FeedData> {
    let config = platform::config(env);
    let deadline = Duration::from_millis(config.feed_timeout_ms);
    let name = spec.name.as_str();
    // The manifest, re-read when due (on the platform's clock: a development clock set
    // by `X-MM-Now` says how old the feed is, not when to ask again), and the recent
    // changes, asked of the object when due: both at once, each within the deadline.
    // What does not answer in time is asked again a second later, not by every request.
    let clock = platform::now_ms();
    let recheck_ms = config.recheck_secs.saturating_mul(1000);
    let hot_ms = i64::try_from(config.feed_hot_ms).unwrap_or(i64::MAX);
    let (manifest_due, hot_due, since) = with_held(name, |h| {
        let manifest_due = h
            .manifest_checked
            .is_none_or(|at| clock.saturating_sub(at) >= recheck_ms);
        let hot_due = h
            .hot_checked_ms
            .is_none_or(|at| clock.saturating_sub(at) >= hot_ms);
        if manifest_due {
            h.manifest_checked = Some(clock);
        }
        if hot_due {
            h.hot_checked_ms = Some(clock);
        }
        (
            manifest_due,
            hot_due,
            h.manifest.as_ref().map_or(0, |m| m.seq),
        )
    });
    let manifest_read = async {
        if !manifest_due {
            return None;
        }
        platform::within(deadline, async {
            let kv = env.kv("BUNDLES").ok()?;
            kv.get(&manifest_key(name)).text().await.ok()?
        })
        .await
    };
    let hot_read = async {
        if !hot_due {
            return None;
        }
        platform::within(deadline, recent(env, name, since)).await
    };
    let (manifest_read, hot_read) = futures_util::future::join(manifest_read, hot_read).await;
    match manifest_read {
        Some(Some(text)) => match serde_json::from_str::<Manifest>(&text) {
            // A read that lags behind (KV's propagation) never moves an isolate back.
            Ok(m) => with_held(name, |h| {
                if h.manifest
                    .as_ref()
                    .is_none_or(|held| held.version <= m.version)
                {
                    h.manifest = Some(Arc::new(m));
                }
            }),
            Err(e) => log("error", "feed manifest unreadable", &format!("{name}: {e}")),
        },
        Some(None) => {}
        None if manifest_due => with_held(name, |h| {
            // Not in time: asked again in a second.
            h.manifest_checked = Some(clock.saturating_sub(recheck_ms).saturating_add(1000));
        }),
        None => {}
    }
    match hot_read {
        Some(Ok(hot)) => with_held(name, |h| {
            let mark = |hot: &[HotChange]| (hot.len(), hot.last().map(|c| c.seq));
            if mark(&hot) != mark(&h.hot) {
                h.hot = hot;
                h.hot_stamp += 1;
            }
        }),
        Some(Err(e)) => log(
            "warn",
            "feed's recent changes not read",
            &format!("{name}: {e}"),
        ),
        None => {}
    }
    let manifest = with_held(name, |h| h.manifest.clone())?;
    let (overlay, hot_at, stamp) = with_held(name, |h| {
        let stamp = (manifest.version, h.hot_stamp);
        if let Some((at, (overlay, hot_at))) = &h.overlay {
            if *at == stamp {
                return (overlay.clone(), *hot_at, stamp);
            }
        }
        let mut map = BTreeMap::new();
        let mut hot_at = 0;
        for c in h.hot.iter().filter(|c| c.seq > manifest.seq) {
            hot_at = hot_at.max(c.at);
            let value = match &c.change {
                Change::Put(row) => Some(row.clone()),
                Change::Delete(_) => None,
            };
            map.insert(c.change.key().to_vec(), value);
        }
        let overlay = Arc::new(map);
        h.overlay = Some((stamp, (overlay.clone(), hot_at)));
        (overlay, hot_at, stamp)
    });
    // The shards this request needs.
    let count = u32::try_from(manifest.shards.len()).unwrap_or(0);
    let mut wanted: Vec<u32> = if whole {
        (0..count).collect()
    } else {
        keys.iter().map(|k| shard_of(k, count)).collect()
    };
    wanted.sort_unstable();
    wanted.dedup();
    let reads = wanted.iter().filter_map(|&i| {
        let generation = *manifest.shards.get(usize::try_from(i).ok()?)?;
        Some(async move { (i, shard(env, name, i, generation, deadline).await) })
    });
    let mut shards = Vec::new();
    for (i, got) in futures_util::future::join_all(reads).await {
        if let Some(s) = got {
            shards.push((i, s));
        }
    }
    let stores_index = match stores {
        Some((_, lat, lon)) if whole && shards.len() == wanted.len() => {
            Some(with_held(name, |h| match &h.stores {
                Some((at, index)) if *at == stamp => index.clone(),
                _ => {
                    let mut rows: BTreeMap<&[String], &Row> = BTreeMap::new();
                    for (_, s) in &shards {
                        for r in s.rows() {
                            rows.insert(&r.key, r);
                        }
                    }
                    for (key, change) in overlay.iter() {
                        match change {
                            Some(row) => rows.insert(key, row),
                            None => rows.remove(key.as_slice()),
                        };
                    }
                    let index = Arc::new(StoreIndex::build(rows.into_values(), lat, lon));
                    h.stores = Some((stamp, index.clone()));
                    index
                }
            }))
        }
        _ => None,
    };
    Some(FeedData {
        manifest,
        shards,
        hot: overlay,
        hot_at,
        stores: stores_index,
    })
}

/// A shard, kept or read from KV within the deadline; generation 0 is empty.
async fn shard(
    env: &Env,
    name: &str,
    i: u32,
    generation: u64,
    deadline: Duration,
) -> Option<Arc<Shard>> {
    if generation == 0 {
        return Some(Arc::new(Shard::default()));
    }
    if let Some(s) = with_held(name, |h| h.shards.get(&(i, generation)).cloned()) {
        used(name, i, generation);
        return Some(s);
    }
    let bytes = platform::within(deadline, async {
        env.kv("BUNDLES")
            .ok()?
            .get(&shard_key(name, i, generation))
            .bytes()
            .await
            .ok()?
    })
    .await
    .flatten()?;
    let shard = match decode_shard(&bytes) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            log(
                "error",
                "feed shard unreadable",
                &format!("{name} {i}: {e}"),
            );
            return None;
        }
    };
    keep(
        name,
        i,
        generation,
        shard.clone(),
        bytes.len().saturating_mul(5),
    );
    Some(shard)
}

fn stub(env: &Env, name: &str) -> std::result::Result<worker::Stub, String> {
    env.durable_object("FEEDS")
        .map_err(|_| "FEEDS is not bound (add the Durable Object binding)".to_owned())?
        .id_from_name(name)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())
}

/// The object's changes numbered above `since`.
async fn recent(env: &Env, name: &str, since: u64) -> std::result::Result<Vec<HotChange>, String> {
    let mut response = stub(env, name)?
        .fetch_with_str(&format!("https://feed/hot?since={since}"))
        .await
        .map_err(|e| e.to_string())?;
    if response.status_code() != 200 {
        return Err(format!("the object answered {}", response.status_code()));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    decode_hot(&bytes).map_err(|e| e.to_string())
}

/// After the response: the person watches the feed rows the content they were shown
/// was chosen on, where a feed trigger listens to that feed (docs/feeds.md).
pub(crate) fn watch(
    env: &Env,
    bg: &impl platform::Background,
    bundle: &Bundle,
    decision: &micromoment::Decision<'_>,
    now: i64,
) {
    let state = &decision.state;
    let watcher = micromoment::deliver::Watcher {
        visitor: micromoment::ids::hex128_string(&state.visitor),
        profile: state
            .link
            .map(|l| micromoment::ids::hex128_string(&l.profile)),
    };
    let mut by_feed: BTreeMap<u16, Vec<Vec<String>>> = BTreeMap::new();
    for w in &decision.watches {
        if micromoment::deliver::watched(bundle, w.feed) {
            by_feed.entry(w.feed).or_default().push(w.key.clone());
        }
    }
    for (feed, keys) in by_feed {
        let Some(spec) = bundle.feeds.get(usize::from(feed)) else {
            continue;
        };
        let name = spec.name.clone();
        let message = object::WatchMessage {
            keys,
            watcher: watcher.clone(),
            now,
        };
        let env = env.clone();
        bg.run(Box::pin(async move {
            let sent: std::result::Result<(), String> = async {
                let body = serde_json::to_string(&message).map_err(|e| e.to_string())?;
                let mut init = RequestInit::new();
                init.with_method(Method::Post).with_body(Some(body.into()));
                let request = Request::new_with_init("https://feed/watch", &init)
                    .map_err(|e| e.to_string())?;
                let answer = stub(&env, &name)?
                    .fetch_with_request(request)
                    .await
                    .map_err(|e| e.to_string())?;
                match answer.status_code() {
                    200 => Ok(()),
                    s => Err(format!("the object answered {s}")),
                }
            }
            .await;
            if let Err(e) = sent {
                log("warn", "feed watch not registered", &format!("{name}: {e}"));
            }
        }));
    }
}

fn authorized(req: &Request, env: &Env) -> bool {
    let secret = platform::Secret::read(env, "MM_BACKEND_TOKEN");
    let given = req.headers().get("Authorization").ok().flatten();
    secret.matches(given.as_deref().and_then(|g| g.strip_prefix("Bearer ")))
}

/// `GET` and `PUT /v1/feeds/<name>`.
pub(crate) async fn route(
    req: Request,
    env: &Env,
    ctx: &worker::Context,
    name: &str,
) -> Result<Response> {
    if !authorized(&req, env) {
        return error(
            401,
            "Authorization: Bearer <MM_BACKEND_TOKEN> is required (the secret must be set, at least 16 bytes)",
        );
    }
    let method = req.method();
    if method != Method::Get && method != Method::Put {
        return super::method_not_allowed("GET, PUT");
    }
    let now = platform::now();
    let Some(active) = cache::active(env, ctx, now).await else {
        return error(503, "no bundle is loaded");
    };
    let Some(spec) = active.bundle.feeds.iter().find(|f| f.name == name) else {
        let names: Vec<&str> = active
            .bundle
            .feeds
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        return error(
            404,
            &format!(
                "the served bundle declares no feed \"{name}\" (it declares: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            ),
        );
    };
    if method == Method::Get {
        let feed = active
            .bundle
            .feeds
            .iter()
            .position(|f| f.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .unwrap_or(0);
        status(&req, env, &active.bundle, feed, spec, now).await
    } else {
        push(req, env, spec, now).await
    }
}

/// The feed's declaration, its manifest and waiting changes; with `?key=` (one per key
/// column, in order) the row as a rule reads it now, in this isolate.
async fn status(
    req: &Request,
    env: &Env,
    bundle: &Bundle,
    feed: u16,
    spec: &FeedSpec,
    now: i64,
) -> Result<Response> {
    let key: Vec<String> = req
        .url()?
        .query_pairs()
        .filter(|(k, _)| k == "key")
        .map(|(_, v)| v.into_owned())
        .collect();
    let row = if key.is_empty() {
        None
    } else if key.len() != spec.key.len() {
        return error(
            400,
            &format!("key: one value per key column ({})", spec.key.join(", ")),
        );
    } else {
        let wants = Wants {
            keys: key.first().map(|k| (feed, k.clone())).into_iter().collect(),
            whole: Vec::new(),
        };
        let live = load(env, bundle, &wants, now).await;
        let refs: Vec<&str> = key.iter().map(String::as_str).collect();
        Some(match live.row(&bundle.feeds, feed, &refs) {
            Ok(Some(row)) => row.to_json(spec),
            Ok(None) => serde_json::Value::Null,
            Err(_) => json!({"unavailable": true}),
        })
    };
    let fields: serde_json::Map<String, serde_json::Value> = spec
        .fields
        .iter()
        .map(|f| (f.name.clone(), json!(f.kind.as_str())))
        .collect();
    let held = match stub(env, &spec.name) {
        Ok(stub) => match stub.fetch_with_str("https://feed/status").await {
            Ok(mut r) if r.status_code() == 200 => r.json::<serde_json::Value>().await.ok(),
            _ => None,
        },
        Err(_) => None,
    };
    ResponseBuilder::new()
        .with_header("Cache-Control", "no-store")?
        .from_json(&json!({
            "name": spec.name,
            "key": spec.key.iter().collect::<Vec<_>>(),
            "fields": fields,
            "stale_after_secs": spec.stale_after,
            "manifest": held.as_ref().and_then(|h| h.get("manifest")).cloned(),
            "recent_changes": held.as_ref().and_then(|h| h.get("recent_changes")).cloned(),
            "row": row,
        }))
}

async fn push(req: Request, env: &Env, spec: &FeedSpec, now: i64) -> Result<Response> {
    let url = req.url()?;
    let query: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    let mode = query.get("mode").map_or("delta", String::as_str);
    if mode != "full" && mode != "delta" {
        return error(400, "mode: \"full\" or \"delta\"");
    }
    let key = match calls::idempotency_key(req.headers().get("Idempotency-Key").ok().flatten()) {
        Ok(key) => key,
        Err(e) => return error(400, &e.to_string()),
    };
    let body = match io::read_body(&req, MAX_PUSH_BODY).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            return error(
                413,
                &format!("a push carries at most {MAX_PUSH_BODY} bytes: push the feed in parts"),
            );
        }
        Err(BodyError::Unreadable(e)) => return error(400, &format!("body: {e}")),
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return error(400, "the body is not UTF-8 NDJSON");
    };
    let changes = match parse_ndjson(spec, text) {
        Ok(c) => c,
        Err(e) => {
            return ResponseBuilder::new()
                .with_status(400)
                .with_header("Cache-Control", "no-store")?
                .from_json(&json!({"error": e.to_string(), "line": e.line}));
        }
    };
    let mut target = worker::Url::parse("https://feed/push")
        .map_err(|e| worker::Error::RustError(e.to_string()))?;
    {
        let mut q = target.query_pairs_mut();
        q.append_pair("name", &spec.name)
            .append_pair("layout", &spec.layout().to_string())
            .append_pair("now", &now.to_string())
            .append_pair("mode", mode);
        if mode == "full" {
            let upload = query
                .get("upload")
                .cloned()
                .unwrap_or_else(|| micromoment::ids::hex128_string(&platform::entropy()));
            if upload.is_empty()
                || upload.len() > 64
                || !upload
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return error(400, "upload: 1 to 64 letters, digits, `-` or `_`");
            }
            q.append_pair("upload", &upload)
                .append_pair("part", query.get("part").map_or("1", String::as_str))
                .append_pair("parts", query.get("parts").map_or("1", String::as_str));
            if let Some(rows) = query.get("rows") {
                q.append_pair("rows", rows);
            }
        }
        if let Some(key) = &key {
            q.append_pair("key", key);
        }
    }
    let stub = match stub(env, &spec.name) {
        Ok(s) => s,
        Err(e) => return error(503, &e),
    };
    let mut init = RequestInit::new();
    let bytes = encode_changes(&changes);
    init.with_method(Method::Post).with_body(Some(
        worker::js_sys::Uint8Array::from(bytes.as_slice()).into(),
    ));
    let request = Request::new_with_init(target.as_str(), &init)?;
    let mut answer = match stub.fetch_with_request(request).await {
        Ok(a) => a,
        Err(e) => return error(503, &format!("the feed's object did not answer: {e}")),
    };
    let status = answer.status_code();
    let body = answer.bytes().await.unwrap_or_default();
    Ok(ResponseBuilder::new()
        .with_status(status)
        .with_header("Content-Type", "application/json")?
        .with_header("Cache-Control", "no-store")?
        .fixed(body))
}
