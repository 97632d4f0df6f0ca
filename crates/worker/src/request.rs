//! A Workers `Request` → the pieces the core needs: context, token, query, and what the
//! Worker asks of a request before it trusts it (a navigation? from this site? which
//! client?).
//!
//! Geo comes from `request.cf`, read as a raw object so a missing field is `None`
//! (some typed `Cf` accessors unwrap). Under `wrangler dev` the `cf` object is a fixed
//! placeholder, so with the var `MM_DEV=1` the `X-MM-Geo-*` headers override it; in
//! production those headers are ignored.

use wasm_bindgen::JsValue;
use worker::{Env, Headers, Method, Request};

use micromoment::context::{Context, Geo};
use micromoment::http::{self, RequestParts};
use micromoment::session::Visitor;
use micromoment::token;

/// The header apps send their token in, and get the new one back in.
pub const TOKEN_HEADER: &str = "X-MM-Token";

/// A field of `request.cf` (fetched once per request by the caller).
fn cf_field(cf: Option<&JsValue>, key: &str) -> Option<String> {
    let value = js_sys::Reflect::get(cf?, &JsValue::from_str(key)).ok()?;
    value
        .as_string()
        .or_else(|| value.as_f64().map(|f| f.to_string()))
        .filter(|s| !s.is_empty())
}

fn header(headers: &Headers, name: &str) -> Option<String> {
    headers.get(name).ok().flatten()
}

fn geo(req: &Request, headers: &Headers, dev: bool) -> Geo {
    // Each property read crosses into JavaScript: read `cf` once.
    let cf = js_sys::Reflect::get(req.inner(), &JsValue::from_str("cf"))
        .ok()
        .filter(|cf| !cf.is_undefined() && !cf.is_null());
    let pick = |dev_header: &str, cf_key: &str| {
        dev.then(|| header(headers, dev_header))
            .flatten()
            .or_else(|| cf_field(cf.as_ref(), cf_key))
    };
    let number = |dev_header: &str, cf_key: &str| {
        pick(dev_header, cf_key).and_then(|v| v.trim().parse::<f64>().ok())
    };
    Geo {
        country: pick("X-MM-Geo-Country", "country"),
        region: pick("X-MM-Geo-Region", "region"),
        city: pick("X-MM-Geo-City", "city"),
        continent: pick("X-MM-Geo-Continent", "continent"),
        postal: pick("X-MM-Geo-Postal", "postalCode"),
        timezone: pick("X-MM-Geo-Timezone", "timezone"),
        lat: number("X-MM-Geo-Lat", "latitude"),
        lon: number("X-MM-Geo-Lon", "longitude"),
        colo: pick("X-MM-Geo-Colo", "colo"),
    }
}

/// The request's method, `None` for one the `worker` crate has no name for (it reads
/// those as GET).
pub fn method(req: &Request) -> Option<Method> {
    Some(match req.inner().method().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        "CONNECT" => Method::Connect,
        "TRACE" => Method::Trace,
        _ => return None,
    })
}

/// What the routes need from a request.
pub struct Incoming {
    pub context: Context,
    pub query: Vec<(String, String)>,
    /// The token from `X-MM-Token` (apps).
    pub app_token: Option<String>,
    /// The whole `Cookie` header (web): every `mm` cookie in it is considered.
    pub cookie: Option<String>,
    /// Whether the token came in the app header (answer in the header too).
    pub app: bool,
    /// Whether the browser says it is loading a page to show (`Sec-Fetch-Dest:
    /// document`, or without it an `Accept` of HTML): only a page view syncs a linked
    /// device, not its images, scripts and API calls.
    pub navigation: bool,
    /// Who sent it, for rate limits: the client's address as Cloudflare saw it.
    pub client: Option<String>,
}

impl Incoming {
    /// Who the request comes from: the app header wins over cookies.
    pub fn visitor(&self) -> Visitor<'_> {
        match (&self.app_token, &self.cookie) {
            (Some(token), _) => Visitor::Token(token),
            (None, Some(header)) => Visitor::Cookie(header),
            (None, None) => Visitor::New,
        }
    }
}

/// Reads a request; never fails: what cannot be read is unknown.
pub fn read(req: &Request, env: &Env) -> Incoming {
    let url = req.url().ok();
    let query: Vec<(String, String)> = url
        .as_ref()
        .map(|u| {
            u.query_pairs()
                .take(128)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default();
    let path = url
        .as_ref()
        .map(|u| u.path().to_owned())
        .unwrap_or_else(|| "/".into());
    let host = url.as_ref().and_then(|u| u.host_str().map(str::to_owned));
    // One Headers object for every header read.
    let headers = req.headers();
    let headers = &headers;
    let cookie = header(headers, "Cookie");
    let app_token = header(headers, TOKEN_HEADER).filter(|t| !t.is_empty());
    let consent_cookie = cookie
        .as_deref()
        .and_then(|c| token::cookie_value(c, "mm_consent"))
        .map(str::to_owned);
    let (user_agent, ch_mobile, ch_platform) = (
        header(headers, "User-Agent"),
        header(headers, "Sec-CH-UA-Mobile"),
        header(headers, "Sec-CH-UA-Platform"),
    );
    let (referer, accept_language, sec_gpc, app_version) = (
        header(headers, "Referer"),
        header(headers, "Accept-Language"),
        header(headers, "Sec-GPC"),
        header(headers, "X-MM-App-Version"),
    );
    let purpose = ["Sec-Purpose", "Purpose", "X-Purpose", "X-Moz"]
        .into_iter()
        .find_map(|name| header(headers, name));
    let parts = RequestParts {
        api: path.starts_with("/v1/"),
        path: &path,
        host: host.as_deref(),
        query: &query,
        user_agent: user_agent.as_deref(),
        ch_mobile: ch_mobile.as_deref(),
        ch_platform: ch_platform.as_deref(),
        referer: referer.as_deref(),
        accept_language: accept_language.as_deref(),
        sec_gpc: sec_gpc.as_deref(),
        purpose: purpose.as_deref(),
        consent_cookie: consent_cookie.as_deref(),
        app_token: app_token.is_some(),
        app_version: app_version.as_deref(),
        geo: geo(req, headers, super::platform::dev(env)),
    };
    let context = http::context(&parts);
    let app = app_token.is_some();
    let navigation = match header(headers, "Sec-Fetch-Dest") {
        Some(dest) => dest.eq_ignore_ascii_case("document"),
        None => header(headers, "Accept").is_some_and(|a| a.contains("text/html")),
    };
    Incoming {
        context,
        query,
        app_token,
        cookie,
        app,
        navigation,
        // In development every request comes from 127.0.0.1: `X-MM-Client-IP` stands in
        // for the client's address, as the `X-MM-Geo-*` headers do for `request.cf`.
        client: super::platform::dev(env)
            .then(|| header(headers, "X-MM-Client-IP"))
            .flatten()
            .or_else(|| header(headers, "CF-Connecting-IP")),
    }
}

/// Whether a browser says the request does not come from this origin: a
/// `Sec-Fetch-Site` other than `same-origin` or `none` (a sibling subdomain is another
/// site's content here), or an `Origin` that is `null` (a sandboxed frame) or names
/// another host. A request with neither header (not a browser, or one too old to send
/// them) is not a browser's cross-site request.
pub fn cross_site(req: &Request) -> bool {
    let headers = req.headers();
    if let Some(site) = header(headers, "Sec-Fetch-Site") {
        if site != "same-origin" && site != "none" {
            return true;
        }
    }
    let Some(origin) = header(headers, "Origin") else {
        return false;
    };
    !same_origin(req, &origin)
}

/// Whether a browser says the request comes from this origin: `Sec-Fetch-Site:
/// same-origin` (set by the browser, never by a page; a page served with
/// `Referrer-Policy: no-referrer` posts with `Origin: null`, so that header alone cannot
/// say), or, from a browser too old for it, an `Origin` naming this host. What
/// confirming an identity link needs: a request that proves nothing is refused.
pub fn from_this_site(req: &Request) -> bool {
    let headers = req.headers();
    match header(headers, "Sec-Fetch-Site") {
        Some(site) => site == "same-origin",
        None => header(headers, "Origin").is_some_and(|o| same_origin(req, &o)),
    }
}

fn same_origin(req: &Request, origin: &str) -> bool {
    let Ok(url) = req.url() else { return false };
    let host = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_owned(),
    };
    let given = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .trim_end_matches('/');
    origin != "null" && given.eq_ignore_ascii_case(&host)
}
