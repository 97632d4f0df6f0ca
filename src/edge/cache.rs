//! The isolate's active bundle and journey keys, refreshed from KV at most every
//! `MM_BUNDLE_RECHECK_SECS` (30 s by default).
//!
//! A Worker isolate is single-threaded, so the cache is a `thread_local!` cell. A new
//! bundle is fully loaded and verified before it replaces the old one in a single store,
//! and any failure (KV down, key missing, bad signature, corrupt bytes) keeps the last
//! good bundle; with none, the embedded default serves. No borrow is held across an
//! `.await`.

use std::cell::RefCell;
use std::rc::Rc;

use worker::{console_error, console_log, Env};

use crate::bundle::{public_key_of, Bundle};
use crate::token::Keys;
use crate::Budget;

/// The default bundle, compiled from `fixtures/automotive.json` (a test keeps the two
/// in step).
const EMBEDDED: &[u8] = include_bytes!("../../fixtures/automotive.mmb");

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

struct Cache {
    active: Option<Active>,
    checked_at: i64,
    keys: Option<(String, Rc<Keys>)>,
}

thread_local! {
    static CACHE: RefCell<Cache> = const { RefCell::new(Cache { active: None, checked_at: i64::MIN, keys: None }) };
}

fn log(level: &str, message: &str, detail: &str) {
    let line = serde_json::json!({"level": level, "msg": message, "detail": detail}).to_string();
    if level == "error" {
        console_error!("{}", line);
    } else {
        console_log!("{}", line);
    }
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

fn var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .ok()
        .map(|v| v.to_string())
        .filter(|v| !v.is_empty())
}

/// The bundle to decide with: the cached one, refreshed from KV when due.
pub async fn active(env: &Env, now: i64) -> Option<Active> {
    let (current, due) = CACHE.with(|c| {
        let c = c.borrow();
        (
            c.active.clone(),
            now.saturating_sub(c.checked_at) >= super::config(env).recheck_secs,
        )
    });
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
    match refresh(env, &current, now).await {
        Ok(Some(fresh)) => {
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
            CACHE.with(|c| c.borrow_mut().active = Some(fresh.clone()));
            Some(fresh)
        }
        Ok(None) => Some(current),
        Err(e) => {
            log(
                "error",
                "bundle refresh failed, keeping the last good bundle",
                &e,
            );
            Some(current)
        }
    }
}

/// Loads the bundle KV points at, if it differs from the active one.
async fn refresh(env: &Env, current: &Active, now: i64) -> Result<Option<Active>, String> {
    let Ok(kv) = env.kv("BUNDLES") else {
        // No KV binding: the embedded bundle is all there is.
        return Ok(None);
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
    let bytes = kv
        .get(&format!("bundle:{hash}"))
        .bytes()
        .await
        .map_err(|e| format!("KV get bundle:{hash}: {e}"))?
        .ok_or_else(|| format!("bundle:{hash} is missing"))?;
    // The bundle decides the HTML of every page: outside development, only bundles
    // signed by the configured key are taken.
    let public_key =
        match var(env, "BUNDLE_PUBKEY") {
            Some(text) => Some(public_key_of(&text).map_err(|e| format!("BUNDLE_PUBKEY: {e}"))?),
            None if super::request::dev_mode(env) => None,
            None => return Err(
                "BUNDLE_PUBKEY is not set: KV bundles are refused outside development (MM_DEV=1)"
                    .into(),
            ),
        };
    let (bundle, header) = Bundle::from_mmb(&bytes, public_key.as_ref(), &Budget::default())
        .map_err(|e| format!("bundle:{hash}: {e}"))?;
    if header.hash != hash {
        return Err(format!(
            "bundle:{hash} holds a bundle whose hash is {}",
            header.hash
        ));
    }
    Ok(Some(Active {
        bundle: Rc::new(bundle),
        hash,
        source: Source::Kv,
        loaded_at: now,
    }))
}

/// The journey keys from the `JOURNEY_KEYS` secret, parsed once per value.
pub fn keys(env: &Env) -> Option<Rc<Keys>> {
    let text = env
        .secret("JOURNEY_KEYS")
        .ok()
        .map(|s| s.to_string())
        .or_else(|| var(env, "JOURNEY_KEYS"))?;
    if let Some(keys) = CACHE.with(|c| {
        c.borrow()
            .keys
            .as_ref()
            .filter(|(source, _)| *source == text)
            .map(|(_, k)| k.clone())
    }) {
        return Some(keys);
    }
    match Keys::from_json(&text) {
        Ok(keys) => {
            let keys = Rc::new(keys);
            CACHE.with(|c| c.borrow_mut().keys = Some((text, keys.clone())));
            Some(keys)
        }
        Err(e) => {
            log(
                "error",
                "JOURNEY_KEYS does not load; tokens are not issued",
                &e.to_string(),
            );
            None
        }
    }
}
