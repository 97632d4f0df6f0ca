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

/// What a push's answer says about when a change is seen: the default hot interval.
pub(crate) const HOT_MS: u64 = 1_000;
/// The most bytes one push may carry (a full feed is pushed in parts).
const MAX_PUSH_BODY: usize = 16 * 1024 * 1024;
/// The most shards an isolate keeps per feed.
const MAX_SHARDS_KEPT: usize = 1_024;

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
    kept: VecDeque<(u32, u64)>,
    stores: Option<((u64, u64), Arc<StoreIndex>)>,
}

thread_local! {
    static HELD: RefCell<HashMap<String, Held>> = RefCell::new(HashMap::new());
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
    // by `X-MM-Now` says how old the feed is, not when to ask again).
    let clock = platform::now_ms() / 1000;
    let due = with_held(name, |h| {
        h.manifest_checked
            .is_none_or(|at| clock.saturating_sub(at) >= config.recheck_secs)
    });
    if due {
        with_held(name, |h| h.manifest_checked = Some(clock));
        let read = platform::within(deadline, async {
            let kv = env.kv("BUNDLES").ok()?;
            kv.get(&manifest_key(name)).text().await.ok()?
        })
        .await;
        match read {
            Some(Some(text)) => match serde_json::from_str::<Manifest>(&text) {
                Ok(m) => with_held(name, |h| h.manifest = Some(Arc::new(m))),
                Err(e) => log("error", "feed manifest unreadable", &format!("{name}: {e}")),
            },
            Some(None) => {}
            // Not in time: the next request asks again.
            None => with_held(name, |h| h.manifest_checked = None),
        }
    }
    let manifest = with_held(name, |h| h.manifest.clone())?;
    // The recent changes, asked of the object when due.
    let now_ms = platform::now_ms();
    let hot_due = with_held(name, |h| {
        h.hot_checked_ms.is_none_or(|at| {
            now_ms.saturating_sub(at) >= i64::try_from(config.feed_hot_ms).unwrap_or(i64::MAX)
        })
    });
    if hot_due {
        with_held(name, |h| h.hot_checked_ms = Some(now_ms));
        match platform::within(deadline, recent(env, name)).await {
            Some(Ok(hot)) => with_held(name, |h| {
                h.hot = hot;
                h.hot_stamp += 1;
            }),
            Some(Err(e)) => log(
                "warn",
                "feed's recent changes not read",
                &format!("{name}: {e}"),
            ),
            None => with_held(name, |h| h.hot_checked_ms = None),
        }
    }
    let (overlay, hot_at, stamp) = with_held(name, |h| {
        let stamp = (manifest.version, h.hot_stamp);
        if let Some((at, (overlay, hot_at))) = &h.overlay {
            if *at == stamp {
                return (overlay.clone(), *hot_at, stamp);
            }
        }
        let mut map = BTreeMap::new();
        let mut hot_at = 0;
        for c in h.hot.iter().filter(|c| c.base >= manifest.version) {
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
    with_held(name, |h| {
        h.shards.insert((i, generation), shard.clone());
        h.kept.push_back((i, generation));
        while h.kept.len() > MAX_SHARDS_KEPT {
            if let Some(old) = h.kept.pop_front() {
                h.shards.remove(&old);
            }
        }
    });
    Some(shard)
}

fn stub(env: &Env, name: &str) -> std::result::Result<worker::Stub, String> {
    env.durable_object("FEEDS")
        .map_err(|_| "FEEDS is not bound (add the Durable Object binding)".to_owned())?
        .id_from_name(name)
        .and_then(|id| id.get_stub())
        .map_err(|e| e.to_string())
}

/// The object's recent changes.
async fn recent(env: &Env, name: &str) -> std::result::Result<Vec<HotChange>, String> {
    let mut response = stub(env, name)?
        .fetch_with_str("https://feed/hot")
        .await
        .map_err(|e| e.to_string())?;
    if response.status_code() != 200 {
        return Err(format!("the object answered {}", response.status_code()));
    }
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    decode_hot(&bytes).map_err(|e| e.to_string())
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
        status(env, spec).await
    } else {
        push(req, env, spec, now).await
    }
}

async fn status(env: &Env, spec: &FeedSpec) -> Result<Response> {
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
