//! The isolate's active bundle and journey keys, and what monitoring needs to know about
//! them.
//!
//! A Worker isolate is single-threaded, so the cache is a `thread_local!` cell. The first
//! request of an isolate waits for KV (at most `MM_KV_TIMEOUT_MS`) so it decides with the
//! published bundle; later re-checks, at most every `MM_BUNDLE_RECHECK_SECS`, run after
//! the response (`wait_until`), so no request waits on KV again. A new bundle is fully
//! loaded and verified before it replaces the old one in a single store, and any failure
//! (KV down, slow or unbound, key missing, bad signature, corrupt bytes) keeps the last
//! good bundle, logs a line and is kept for [`health`]; with none, the embedded default
//! serves. No borrow is held across an `.await`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use worker::Env;

use super::platform::{self, log, setting, within, Background};
use micromoment::bundle::{latest_key, public_key_of, rollback_key, Bundle, RollbackRecord};
use micromoment::token::Keys;
use micromoment::Budget;

/// The default bundle, compiled from `fixtures/automotive.json` (a test keeps the two
/// in step).
const EMBEDDED: &[u8] = include_bytes!("../../../fixtures/automotive.mmb");

pub(crate) const DEFAULT_RECHECK_SECS: i64 = 30;

/// Where the active bundle came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Kv,
    Embedded,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Kv => "kv",
            Source::Embedded => "embedded",
        }
    }
}

/// The bundle requests decide with.
#[derive(Clone)]
pub struct Active {
    pub bundle: Rc<Bundle>,
    pub hash: String,
    pub source: Source,
    pub loaded_at: i64,
}

/// What became of the journey keys.
#[derive(Clone)]
enum KeysState {
    /// Parsed from this text.
    Loaded(String, Rc<Keys>),
    /// This text does not parse, for this reason (logged once).
    Broken(String, String),
}

struct Cache {
    active: Option<Active>,
    /// When KV was last asked (`i64::MIN`: never).
    checked_at: i64,
    /// Whether KV has answered at least once (a bundle, or "nothing published").
    kv_answered: bool,
    /// Whether the isolate's first check is under way: requests that come meanwhile
    /// wait for it rather than decide with the embedded bundle.
    checking: bool,
    /// Why the last check failed, when it did, and when.
    last_error: Option<(i64, String)>,
    /// The hash of a published bundle that was refused, and why: not fetched and
    /// decoded again at every re-check until `current` names another.
    refused: Option<(String, String)>,
    keys: Option<KeysState>,
}

thread_local! {
    static CACHE: RefCell<Cache> = const {
        RefCell::new(Cache {
            active: None,
            checked_at: i64::MIN,
            kv_answered: false,
            checking: false,
            last_error: None,
            refused: None,
            keys: None,
        })
    };
}

fn embedded(now: i64) -> Option<Active> {
    match Bundle::from_mmb(EMBEDDED, None, &Budget::default()) {
        Ok((bundle, header)) => Some(Active {
            bundle: Rc::new(bundle),
            hash: header.hash,
            source: Source::Embedded,
            loaded_at: now,
        }),
        Err(e) => {
            log("error", "embedded bundle does not load", &e.to_string());
            None
        }
    }
}

/// The bundle to decide with: the cached one, re-checked against KV when due.
pub async fn active(env: &Env, ctx: &impl Background, now: i64) -> Option<Active> {
    let config = platform::config(env);
    let (current, due, answered, checking) = CACHE.with(|c| {
        let c = c.borrow();
        (
            c.active.clone(),
            // A clock that went back (`X-MM-Now` in development) makes a check due too.
            now.saturating_sub(c.checked_at) >= config.recheck_secs || now < c.checked_at,
            c.kv_answered,
            c.checking,
        )
    });
    if !answered && checking {
        // Another request of this isolate is asking KV for the first time: its answer,
        // not the embedded bundle, is what this request decides with. The first check
        // ends within its deadline.
        let until = platform::now_ms()
            .saturating_add(i64::try_from(config.kv_timeout_ms).unwrap_or(i64::MAX) + 100);
        while CACHE.with(|c| c.borrow().checking) && platform::now_ms() < until {
            worker::Delay::from(Duration::from_millis(2)).await;
        }
        return CACHE.with(|c| c.borrow().active.clone()).or(current);
    }
    let current = match current {
        Some(a) => a,
        None => {
            let a = embedded(now)?;
            CACHE.with(|c| c.borrow_mut().active = Some(a.clone()));
            a
        }
    };
    if !due {
        return Some(current);
    }
    CACHE.with(|c| c.borrow_mut().checked_at = now);
    if answered {
        // Re-checks run after the response: no request waits on KV once it has answered.
        let env = env.clone();
        ctx.run(Box::pin(async move {
            check(&env, &current, now).await;
        }));
        return CACHE.with(|c| c.borrow().active.clone());
    }
    CACHE.with(|c| c.borrow_mut().checking = true);
    check(env, &current, now).await;
    CACHE.with(|c| c.borrow_mut().checking = false);
    CACHE.with(|c| c.borrow().active.clone())
}

/// Asks KV for the published bundle and swaps it in, or records why not.
async fn check(env: &Env, current: &Active, now: i64) {
    let timeout = Duration::from_millis(platform::config(env).kv_timeout_ms);
    let outcome = match within(timeout, refresh(env, current, now)).await {
        Some(outcome) => outcome,
        None => Err(format!(
            "KV did not answer within {} ms",
            timeout.as_millis()
        )),
    };
    match outcome {
        Ok(fresh) => {
            CACHE.with(|c| {
                let mut c = c.borrow_mut();
                c.kv_answered = true;
                c.last_error = None;
            });
            if let Some(fresh) = fresh {
                log(
                    "info",
                    "bundle swapped",
                    &format!(
                        "{} {} {}",
                        fresh.bundle.id(),
                        fresh.bundle.version(),
                        fresh.hash
                    ),
                );
                CACHE.with(|c| c.borrow_mut().active = Some(fresh));
            }
        }
        Err(e) => {
            log(
                "error",
                "bundle refresh failed, keeping the last good bundle",
                &e,
            );
            CACHE.with(|c| {
                let mut c = c.borrow_mut();
                // A KV that fails is an answer too: the next check runs in the background.
                c.kv_answered = true;
                c.last_error = Some((now, e));
            });
        }
    }
}

/// Loads the bundle KV points at, if it differs from the active one.
async fn refresh(env: &Env, current: &Active, now: i64) -> Result<Option<Active>, String> {
    let kv = match env.kv("BUNDLES") {
        Ok(kv) => kv,
        // No KV binding: the embedded bundle is all there is, and that is a setup to
        // report, not a fault of each request.
        Err(e) => return Err(format!("KV binding BUNDLES is not usable: {e}")),
    };
    let pointer = kv
        .get("current")
        .text()
        .await
        .map_err(|e| format!("KV get current: {e}"))?;
    let Some(hash) = pointer
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
    else {
        return Ok(None);
    };
    if hash == current.hash {
        return Ok(None);
    }
    // A refused bundle is judged again only when it was refused as a downgrade: its
    // rollback record may have been written since.
    if let Some(why) = CACHE.with(|c| {
        c.borrow()
            .refused
            .as_ref()
            .filter(|(refused, why)| *refused == hash && !why.contains(DOWNGRADE))
            .map(|(_, why)| why.clone())
    }) {
        return Err(why);
    }
    let bytes = kv
        .get(&format!("bundle:{hash}"))
        .bytes()
        .await
        .map_err(|e| format!("KV get bundle:{hash}: {e}"))?
        .ok_or_else(|| format!("bundle:{hash} is missing"))?;
    // What these bytes are judged is final for them: refusals are not judged again.
    let fresh = match load(env, &bytes, &hash, now) {
        Ok(fresh) => not_older(&kv, env, current, fresh).await,
        Err(why) => Err(why),
    };
    if let Err(why) = &fresh {
        CACHE.with(|c| c.borrow_mut().refused = Some((hash.clone(), why.clone())));
    }
    fresh.map(Some)
}

/// The public key bundles (and rollback records) must be signed with: `None` in
/// development without one; `Err` outside development without one, or when malformed.
fn bundle_key(env: &Env) -> Result<Option<[u8; 32]>, String> {
    match platform::config(env).bundle_pubkey.as_deref() {
        Some(text) => Ok(Some(
            public_key_of(text).map_err(|e| format!("BUNDLE_PUBKEY: {e}"))?,
        )),
        None if platform::dev(env) => Ok(None),
        None => Err(
            "BUNDLE_PUBKEY is not set: KV bundles are refused outside development (MM_DEV=1)"
                .into(),
        ),
    }
}

/// How a downgrade's refusal reads (and is told from the others).
const DOWNGRADE: &str = "refused as a downgrade";

/// No accidental downgrade: a bundle of an id with a lower version than the one served
/// (or than the highest version of that id ever published, `latest:<id>`, so a new
/// isolate judges as an old one does) is refused, unless KV holds its rollback record,
/// signed like bundles (`micromoment rollback`, the studio).
async fn not_older(
    kv: &worker::kv::KvStore,
    env: &Env,
    current: &Active,
    fresh: Active,
) -> Result<Active, String> {
    let (id, version) = (fresh.bundle.id().to_owned(), fresh.bundle.version());
    let served = (current.bundle.id() == id).then(|| current.bundle.version());
    let latest = kv
        .get(&latest_key(&id))
        .text()
        .await
        .map_err(|e| format!("KV get {}: {e}", latest_key(&id)))?
        .and_then(|t| t.trim().parse::<u64>().ok());
    let Some(above) = served
        .into_iter()
        .chain(latest)
        .filter(|&v| v > version)
        .max()
    else {
        return Ok(fresh);
    };
    let refused =
        |why: &str| format!("{id} {version} is older than {id} {above}, {DOWNGRADE}: {why}");
    let record = kv
        .get(&rollback_key(&fresh.hash))
        .bytes()
        .await
        .map_err(|e| format!("KV get {}: {e}", rollback_key(&fresh.hash)))?
        .ok_or_else(|| {
            refused("no rollback record (roll back with `micromoment rollback` or the studio)")
        })?;
    RollbackRecord::check(
        &record,
        (&id, version, &fresh.hash),
        above,
        bundle_key(env)?.as_ref(),
    )
    .map_err(|why| refused(&why))?;
    Ok(fresh)
}

/// Verifies and decodes the bytes of `bundle:<hash>`.
fn load(env: &Env, bytes: &[u8], hash: &str, now: i64) -> Result<Active, String> {
    // The bundle decides the HTML of every page: outside development, only bundles
    // signed by the configured key are taken.
    let public_key = bundle_key(env)?;
    let (bundle, header) = Bundle::from_mmb(bytes, public_key.as_ref(), &Budget::default())
        .map_err(|e| format!("bundle:{hash}: {e}"))?;
    if header.hash != hash {
        return Err(format!(
            "bundle:{hash} holds a bundle whose hash is {}",
            header.hash
        ));
    }
    Ok(Active {
        bundle: Rc::new(bundle),
        hash: hash.to_owned(),
        source: Source::Kv,
        loaded_at: now,
    })
}

/// The `JOURNEY_KEYS` secret's text, if set.
fn keys_text(env: &Env) -> Option<String> {
    setting(env, "JOURNEY_KEYS")
}

/// The journey keys from the `JOURNEY_KEYS` secret, parsed once per value. A value that
/// does not parse is logged once and reported by [`health`]; requests then get the
/// default content and no token.
pub fn keys(env: &Env) -> Option<Rc<Keys>> {
    let text = keys_text(env)?;
    let known = CACHE.with(|c| match &c.borrow().keys {
        Some(KeysState::Loaded(source, keys)) if *source == text => Some(Some(keys.clone())),
        Some(KeysState::Broken(source, _)) if *source == text => Some(None),
        _ => None,
    });
    if let Some(keys) = known {
        return keys;
    }
    let (state, keys) = match Keys::from_json(&text) {
        Ok(keys) => {
            let keys = Rc::new(keys);
            (KeysState::Loaded(text, keys.clone()), Some(keys))
        }
        Err(e) => {
            log(
                "error",
                "JOURNEY_KEYS does not load; tokens are not issued",
                &e.to_string(),
            );
            (KeysState::Broken(text, e.to_string()), None)
        }
    };
    CACHE.with(|c| c.borrow_mut().keys = Some(state));
    keys
}

/// The health of keys, bundle and preview secret, for `/v1/bundle`: what a monitor
/// alerts on (a broken secret makes every visitor new, silently for visitors).
pub fn health(env: &Env, preview: &platform::Secret) -> serde_json::Value {
    let keys = match (keys_text(env), keys(env)) {
        (None, _) => serde_json::json!({"status": "missing"}),
        (Some(_), Some(keys)) => {
            serde_json::json!({"status": "ok", "current": keys.current_kid(), "kids": keys.kids().count()})
        }
        (Some(_), None) => {
            let error = CACHE.with(|c| match &c.borrow().keys {
                Some(KeysState::Broken(_, e)) => e.clone(),
                _ => String::new(),
            });
            serde_json::json!({"status": "invalid", "error": error})
        }
    };
    let (checked_at, last_error) = CACHE.with(|c| {
        let c = c.borrow();
        (
            (c.checked_at != i64::MIN).then_some(c.checked_at),
            c.last_error.clone(),
        )
    });
    let bundle = serde_json::json!({
        "status": if last_error.is_some() { "stale" } else { "ok" },
        "checked_at": checked_at.map(micromoment::time::rfc3339),
        "error": last_error.as_ref().map(|(_, e)| e),
        "error_at": last_error.map(|(at, _)| micromoment::time::rfc3339(at)),
    });
    let status_ok = |v: &serde_json::Value| v.get("status").and_then(|s| s.as_str()) == Some("ok");
    let ok = status_ok(&keys) && status_ok(&bundle);
    serde_json::json!({"ok": ok, "keys": keys, "bundle": bundle, "preview": preview.as_str()})
}
