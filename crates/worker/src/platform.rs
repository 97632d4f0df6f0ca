//! The Workers platform as the rest of the Worker sees it, and the only file that knows
//! it: the clock (with `X-MM-Now` in development), entropy, vars and secrets, the
//! console, and deadlines. Every other file of the Worker asks here, so the core's
//! rule holds at the edge too: time and entropy are values handed in, read in one place.
//!
//! The vars are read once per isolate (a deployment, or a `wrangler dev` restart, that
//! changes them starts new isolates), since each read crosses into JavaScript. Secrets
//! are read when needed and never logged.

use std::cell::{Cell, OnceCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use worker::{console_error, console_log, Context as WorkerContext, Date, Delay, Env, Request};

/// The shortest secret accepted for the preview header and the backend API's bearer
/// token: a shorter one could be guessed.
pub(crate) const MIN_SECRET: usize = 16;

/// The Worker's vars, read once per isolate.
pub(crate) struct Config {
    /// `MM_DEV=1`: honour the `X-MM-Geo-*` and `X-MM-Now` headers and mirror records to
    /// the log.
    pub dev: bool,
    /// The site the page proxy personalizes.
    pub origin: Option<String>,
    /// How often the isolate checks KV for a new bundle.
    pub recheck_secs: i64,
    /// How long a KV read may take before the last good bundle is kept.
    pub kv_timeout_ms: u64,
    /// How long the origin may take to send its response headers.
    pub origin_timeout_ms: u64,
    /// The preview secret for `/v1/explain`.
    pub preview: Secret,
    /// How long a linked device's request waits for its profile sync.
    pub profile_wait_ms: u64,
    /// How long a backend API call waits for the profile.
    pub backend_timeout_ms: u64,
    /// Fired triggers a client may start per minute when no rate-limiting binding is
    /// there (`MM_TRIGGERS_PER_MINUTE`).
    pub triggers_per_minute: u32,
    /// The Ed25519 public key KV bundles must be signed by (`BUNDLE_PUBKEY`, base64).
    pub bundle_pubkey: Option<String>,
    /// How often an isolate asks a feed's object for its recent changes
    /// (`MM_FEED_HOT_MS`).
    pub feed_hot_ms: u64,
    /// How long a request waits for a feed's shard, manifest or recent changes before
    /// deciding without them (`MM_FEED_TIMEOUT_MS`).
    pub feed_timeout_ms: u64,
    /// How long after a change a feed's object folds it into the shards (and tells the
    /// watchers of the rows it changed) (`MM_FEED_FOLD_MS`).
    pub feed_fold_ms: u64,
}

/// A secret that must be long enough to be one.
pub(crate) enum Secret {
    Missing,
    TooShort,
    Set(String),
}

impl Secret {
    /// The secret `name` (a secret, or a var in development).
    pub(crate) fn read(env: &Env, name: &str) -> Secret {
        match setting(env, name) {
            None => Secret::Missing,
            Some(s) if s.len() < MIN_SECRET => Secret::TooShort,
            Some(s) => Secret::Set(s),
        }
    }

    /// What `/v1/bundle`'s health says of it: never the secret.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Secret::Missing => "missing",
            Secret::TooShort => "too short",
            Secret::Set(_) => "ok",
        }
    }

    /// Whether `given` is the secret, compared in constant time.
    pub(crate) fn matches(&self, given: Option<&str>) -> bool {
        match (self, given) {
            (Secret::Set(s), Some(g)) => constant_time_eq(s.as_bytes(), g.as_bytes()),
            _ => false,
        }
    }
}

thread_local! {
    static CONFIG: OnceCell<Rc<Config>> = const { OnceCell::new() };
    /// The clock `X-MM-Now` set for this request, in local development only (`MM_DEV=1`):
    /// a journey over days tried in minutes. An isolate serves one request at a time in
    /// `wrangler dev` as the tests use it; never read outside development.
    static DEV_CLOCK: Cell<Option<i64>> = const { Cell::new(None) };
}

/// The isolate's vars.
pub(crate) fn config(env: &Env) -> Rc<Config> {
    CONFIG.with(|cell| {
        cell.get_or_init(|| {
            let var = |name: &str| {
                env.var(name)
                    .ok()
                    .map(|v| v.to_string())
                    .filter(|v| !v.is_empty())
            };
            let number = |name: &str, default: u64| {
                var(name)
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or(default)
            };
            let preview = Secret::read(env, "MM_PREVIEW_SECRET");
            if matches!(preview, Secret::TooShort) {
                log(
                    "error",
                    "MM_PREVIEW_SECRET is shorter than 16 bytes; /v1/explain is off",
                    "",
                );
            }
            Rc::new(Config {
                dev: var("MM_DEV").as_deref() == Some("1"),
                origin: var("ORIGIN"),
                recheck_secs: var("MM_BUNDLE_RECHECK_SECS")
                    .and_then(|v| v.parse().ok())
                    .filter(|s: &i64| *s >= 0)
                    .unwrap_or(super::cache::DEFAULT_RECHECK_SECS),
                kv_timeout_ms: number("MM_KV_TIMEOUT_MS", 1_000),
                origin_timeout_ms: number("MM_ORIGIN_TIMEOUT_MS", 15_000),
                preview,
                profile_wait_ms: number(
                    "MM_PROFILE_WAIT_MS",
                    micromoment::profile::PROFILE_WAIT_MS,
                ),
                backend_timeout_ms: number("MM_BACKEND_TIMEOUT_MS", 5_000),
                triggers_per_minute: u32::try_from(number("MM_TRIGGERS_PER_MINUTE", 60))
                    .unwrap_or(u32::MAX),
                bundle_pubkey: var("BUNDLE_PUBKEY"),
                feed_hot_ms: number("MM_FEED_HOT_MS", 1_000),
                feed_timeout_ms: number("MM_FEED_TIMEOUT_MS", 100),
                feed_fold_ms: number("MM_FEED_FOLD_MS", 10_000),
            })
        })
        .clone()
    })
}

/// Whether this is local development (`MM_DEV=1`).
pub(crate) fn dev(env: &Env) -> bool {
    config(env).dev
}

/// The clock, in Unix seconds: `X-MM-Now` in development when the request set it.
pub(crate) fn now() -> i64 {
    DEV_CLOCK
        .with(Cell::get)
        .unwrap_or_else(|| i64::try_from(Date::now().as_millis() / 1000).unwrap_or(0))
}

/// The platform's own clock in milliseconds, for alarms: never the development clock.
pub(crate) fn now_ms() -> i64 {
    i64::try_from(Date::now().as_millis()).unwrap_or(i64::MAX)
}

/// Sets (or clears) the development clock from the request's `X-MM-Now` (RFC 3339).
pub(crate) fn set_dev_clock(req: &Request, env: &Env) {
    let at = dev(env)
        .then(|| req.headers().get("X-MM-Now").ok().flatten())
        .flatten()
        .and_then(|text| micromoment::time::parse_rfc3339(text.trim()).ok());
    DEV_CLOCK.with(|c| c.set(at));
}

/// 128 bits from the platform's CSPRNG, for a new visitor id.
pub(crate) fn entropy() -> [u8; 16] {
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        // crypto.getRandomValues does not fail in Workers; should it, the clock still
        // spreads visitors apart rather than failing the request.
        let ms = Date::now().as_millis().to_le_bytes();
        for (byte, m) in id.iter_mut().zip(ms) {
            *byte = m;
        }
    }
    id
}

/// A var or secret by name (a secret first: production keeps credentials there;
/// development may pass them as vars).
pub(crate) fn setting(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .ok()
        .map(|s| s.to_string())
        .or_else(|| env.var(name).ok().map(|v| v.to_string()))
        .filter(|v| !v.is_empty())
}

/// One JSON log line; `error` goes to the console's error stream.
pub(crate) fn log(level: &str, message: &str, detail: &str) {
    let line = serde_json::json!({"level": level, "msg": message, "detail": detail}).to_string();
    if level == "error" {
        console_error!("{}", line);
    } else {
        console_log!("{}", line);
    }
}

/// A line as it is (an analytics record), to the console.
pub(crate) fn print(line: &str) {
    console_log!("{line}");
}

/// Where work after the response runs: a request's `wait_until`, or a Durable
/// Object's.
pub(crate) trait Background {
    /// Runs `future` after the response, within the platform's limits.
    fn run(&self, future: Pin<Box<dyn Future<Output = ()>>>);
}

impl Background for WorkerContext {
    fn run(&self, future: Pin<Box<dyn Future<Output = ()>>>) {
        self.wait_until(future);
    }
}

impl Background for worker::State {
    fn run(&self, future: Pin<Box<dyn Future<Output = ()>>>) {
        self.wait_until(future);
    }
}

/// `future`'s output, or `None` when `timeout` passes first.
pub(crate) async fn within<F: Future>(timeout: Duration, future: F) -> Option<F::Output> {
    let future = std::pin::pin!(future);
    let delay = std::pin::pin!(Delay::from(timeout));
    match select(future, delay).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(((), _)) => None,
    }
}

/// Resolves at once if nothing else is ready: lets a future that is ready now win a
/// `select` against "not yet".
pub(crate) fn now_or_never() -> Delay {
    Delay::from(Duration::ZERO)
}

/// Whether two secrets are equal, in constant time.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
