//! From HTTP request parts to a [`Context`]: device from `User-Agent` and client hints
//! (crawlers by isbot's patterns, in `bots`), referrer kind from `Referer`, UTM tags and
//! page from the URL, language from `Accept-Language`, consent from `Sec-GPC` and the
//! consent cookie, prefetches from `Sec-Purpose` and its older names.
//!
//! Pure and platform-free, so the Worker and any other adapter classify requests the
//! same way, and tests run natively. Every input is bounded and optional; nothing here
//! fails: what cannot be read is unknown.

use crate::context::{Channel, Context, DeviceType, Geo, ReferrerKind};

use micromoment_bots as bots;

pub use bots::is_bot;

/// The longest header value looked at; longer ones are cut, not rejected.
pub const MAX_HEADER: usize = 2048;

/// Query parameters kept in `page.query`.
const MAX_QUERY_PARAMS: usize = 64;

/// What an adapter knows about a request, already split.
#[derive(Debug, Clone, Default)]
pub struct RequestParts<'a> {
    /// Whether this is an API call (`/v1/...`): only then do the `path`, `event`,
    /// `channel` and `app_version` query parameters count, so a link to a page cannot
    /// fire an app event or move a visitor along the journey (and `event` counts only
    /// with `app_token`).
    pub api: bool,
    /// The URL path.
    pub path: &'a str,
    /// The host name.
    pub host: Option<&'a str>,
    /// Decoded query pairs, in order.
    pub query: &'a [(String, String)],
    /// `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// `Sec-CH-UA-Mobile` (`?1` on phones).
    pub ch_mobile: Option<&'a str>,
    /// `Sec-CH-UA-Platform`, quoted.
    pub ch_platform: Option<&'a str>,
    /// `Referer`.
    pub referer: Option<&'a str>,
    /// `Accept-Language`.
    pub accept_language: Option<&'a str>,
    /// `Sec-GPC`.
    pub sec_gpc: Option<&'a str>,
    /// Why the browser asks: the first of `Sec-Purpose`, `Purpose`, `X-Purpose` and
    /// `X-Moz` the request has (`prefetch`, `prefetch;prerender`, `preview`).
    pub purpose: Option<&'a str>,
    /// The value of the `mm_consent` cookie, if any.
    pub consent_cookie: Option<&'a str>,
    /// Whether the request carries an app token (`X-MM-Token`).
    pub app_token: bool,
    /// `X-MM-App-Version`.
    pub app_version: Option<&'a str>,
    /// Geolocation from the platform.
    pub geo: Geo,
}

fn bounded(value: Option<&str>) -> Option<&str> {
    value.map(|v| {
        let mut end = v.len().min(MAX_HEADER);
        while !v.is_char_boundary(end) {
            end -= 1;
        }
        v.get(..end).unwrap_or("")
    })
}

fn param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Builds the context of a request.
pub fn context(parts: &RequestParts<'_>) -> Context {
    let mut ctx = Context::default();
    let query = parts.query;
    let api_param = |name: &str| if parts.api { param(query, name) } else { None };
    let ua = bounded(parts.user_agent).unwrap_or("");
    ctx.device.kind = Some(device_type(ua, parts.ch_mobile));
    ctx.device.os = os(ua, bounded(parts.ch_platform)).map(str::to_owned);
    ctx.device.browser = browser(ua).map(str::to_owned);
    // Apps may name the screen they show in `path`.
    ctx.page.path = Some(api_param("path").unwrap_or(parts.path).to_owned());
    ctx.page.host = parts.host.map(str::to_owned);
    ctx.page.lang = bounded(parts.accept_language).and_then(primary_language);
    for (k, v) in query.iter().take(MAX_QUERY_PARAMS) {
        ctx.page.query.entry(k.clone()).or_insert_with(|| v.clone());
    }
    let utm = |name: &str| param(query, name).map(str::to_owned);
    ctx.utm.source = utm("utm_source");
    ctx.utm.medium = utm("utm_medium");
    ctx.utm.campaign = utm("utm_campaign");
    ctx.utm.term = utm("utm_term");
    ctx.utm.content = utm("utm_content");
    let referer_host = bounded(parts.referer).and_then(url_host);
    ctx.referrer.kind = Some(referrer_kind(
        referer_host,
        parts.host,
        ctx.utm.medium.as_deref(),
    ));
    ctx.referrer.host = referer_host.map(str::to_owned);
    ctx.channel = match api_param("channel") {
        Some("app") => Channel::App,
        Some("web") => Channel::Web,
        _ if parts.app_token || parts.app_version.is_some() => Channel::App,
        _ => Channel::Web,
    };
    ctx.app.version = bounded(parts.app_version)
        .or_else(|| api_param("app_version"))
        .map(str::to_owned);
    // An app event on a GET counts only from an app (its token header): a cross-site
    // link to `/v1/decide?event=order_completed` carries the visitor's cookie, not
    // that header, so it cannot move anyone's journey.
    ctx.event = api_param("event")
        .filter(|e| !e.is_empty() && parts.app_token)
        .map(str::to_owned);
    ctx.consent.personalization = consent(parts.sec_gpc, parts.consent_cookie);
    ctx.prefetch = bounded(parts.purpose).is_some_and(ahead_of_time);
    ctx.geo = parts.geo.clone();
    ctx
}

/// `Sec-GPC: 1` or `mm_consent=0` refuse personalization; `mm_consent=1` grants it.
fn consent(sec_gpc: Option<&str>, cookie: Option<&str>) -> Option<bool> {
    if sec_gpc.map(str::trim) == Some("1") {
        return Some(false);
    }
    match cookie.map(str::trim) {
        Some("0" | "false" | "no") => Some(false),
        Some("1" | "true" | "yes") => Some(true),
        _ => None,
    }
}

/// Whether a purpose header says the page is fetched ahead of time, not viewed: its first
/// item (`prefetch` in `prefetch;prerender`) is `prefetch`, `prerender` or `preview`
/// (Safari's Top Sites).
fn ahead_of_time(purpose: &str) -> bool {
    let first = purpose.split([',', ';']).next().unwrap_or("").trim();
    ["prefetch", "prerender", "preview"]
        .iter()
        .any(|p| first.eq_ignore_ascii_case(p))
}

fn contains_any(haystack: &str, needles: &[&str]) -> bool {
    needles.iter().any(|n| haystack.contains(n))
}

/// Classifies a device; crawlers first, since many claim to be desktop browsers.
///
/// Android browsers say `Mobile` on phones and not on tablets, except some tablets that
/// say it anyway: Samsung's and Lenovo's are known by their model names. Feature-phone
/// browsers and Android's `Dalvik` HTTP client say neither. A `Macintosh` user agent
/// that also says `Mobile` is an iPhone or iPad that asked for the desktop site, and
/// gets it.
pub fn device_type(ua: &str, ch_mobile: Option<&str>) -> DeviceType {
    let lower = ua.to_ascii_lowercase();
    if bots::is_bot_lowercase(&lower) {
        return DeviceType::Bot;
    }
    let mobile_word = lower.contains("mobile");
    if contains_any(
        &lower,
        &[
            "smart-tv",
            "smarttv",
            "appletv",
            "googletv",
            "crkey",
            "roku",
            "hbbtv",
            "webos; tv",
        ],
    ) || (lower.contains("tizen") && !mobile_word)
    {
        return DeviceType::Tv;
    }
    if contains_any(&lower, &["ipad", "tablet", "kindle", "silk/", "lenovo tb"])
        || model_number(&lower, &["sm-t", "sm-p", "sm-x"])
    {
        return DeviceType::Tablet;
    }
    if contains_any(
        &lower,
        &[
            "opera mini",
            "midp",
            "j2me",
            "series 60",
            "series60",
            "symbian",
            "windows ce",
            "dalvik/",
        ],
    ) {
        return DeviceType::Mobile;
    }
    if lower.contains("android") && !mobile_word {
        return DeviceType::Tablet;
    }
    if lower.contains("macintosh") {
        return DeviceType::Desktop;
    }
    if ch_mobile.map(str::trim) == Some("?1")
        || contains_any(&lower, &["mobi", "iphone", "ipod", "android"])
    {
        return DeviceType::Mobile;
    }
    DeviceType::Desktop
}

/// Whether one of the model prefixes occurs followed by a digit (`sm-t380`).
fn model_number(lower: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|prefix| {
        lower.match_indices(prefix).any(|(at, _)| {
            lower
                .as_bytes()
                .get(at + prefix.len())
                .is_some_and(u8::is_ascii_digit)
        })
    })
}

fn os(ua: &str, ch_platform: Option<&str>) -> Option<&'static str> {
    if let Some(platform) = ch_platform.map(|p| p.trim_matches('"').to_ascii_lowercase()) {
        match platform.as_str() {
            "android" => return Some("android"),
            "ios" => return Some("ios"),
            "windows" => return Some("windows"),
            "macos" => return Some("macos"),
            "linux" => return Some("linux"),
            "chrome os" | "chromeos" => return Some("chromeos"),
            _ => {}
        }
    }
    let lower = ua.to_ascii_lowercase();
    Some(if contains_any(&lower, &["iphone", "ipad", "ipod"]) {
        "ios"
    } else if lower.contains("android") {
        "android"
    } else if lower.contains("windows") {
        "windows"
    } else if lower.contains("cros") {
        "chromeos"
    } else if lower.contains("mac os x") || lower.contains("macintosh") {
        "macos"
    } else if lower.contains("linux") {
        "linux"
    } else {
        return None;
    })
}

fn browser(ua: &str) -> Option<&'static str> {
    let lower = ua.to_ascii_lowercase();
    // Order matters: Edge and Opera also say Chrome, Chrome also says Safari.
    Some(if lower.contains("edg/") {
        "edge"
    } else if lower.contains("opr/") || lower.contains("opera") {
        "opera"
    } else if lower.contains("samsungbrowser") {
        "samsung"
    } else if lower.contains("firefox/") || lower.contains("fxios") {
        "firefox"
    } else if lower.contains("chrome/") || lower.contains("crios") {
        "chrome"
    } else if lower.contains("safari/") {
        "safari"
    } else {
        return None;
    })
}

/// The host of an absolute URL.
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = host.split(':').next()?;
    (!host.is_empty()).then_some(host)
}

fn host_is(host: &str, domains: &[&str]) -> bool {
    domains.iter().any(|d| {
        host == *d
            || host
                .strip_suffix(d)
                .is_some_and(|prefix| prefix.ends_with('.'))
    })
}

/// What kind of place sent the visitor.
pub fn referrer_kind(
    referer_host: Option<&str>,
    own_host: Option<&str>,
    utm_medium: Option<&str>,
) -> ReferrerKind {
    if utm_medium.is_some_and(|m| m.eq_ignore_ascii_case("email")) {
        return ReferrerKind::Email;
    }
    let Some(host) = referer_host.map(str::to_ascii_lowercase) else {
        return ReferrerKind::Direct;
    };
    if own_host.is_some_and(|own| own.eq_ignore_ascii_case(&host)) {
        return ReferrerKind::Internal;
    }
    let search_prefix = [
        "google.",
        "bing.",
        "yahoo.",
        "baidu.",
        "yandex.",
        "duckduckgo.",
        "ecosia.",
        "qwant.",
        "startpage.",
    ];
    let bare = host.strip_prefix("www.").unwrap_or(&host);
    if host_is(
        &host,
        &[
            "mail.google.com",
            "outlook.live.com",
            "outlook.office.com",
            "mail.yahoo.com",
            "mail.proton.me",
        ],
    ) {
        ReferrerKind::Email
    } else if search_prefix
        .iter()
        .any(|p| bare.starts_with(p) || bare.contains(&format!(".{p}")))
    {
        ReferrerKind::Search
    } else if host_is(
        &host,
        &[
            "facebook.com",
            "instagram.com",
            "t.co",
            "twitter.com",
            "x.com",
            "linkedin.com",
            "lnkd.in",
            "pinterest.com",
            "reddit.com",
            "tiktok.com",
            "youtube.com",
            "threads.net",
            "bsky.app",
        ],
    ) {
        ReferrerKind::Social
    } else {
        ReferrerKind::Other
    }
}

/// `fr-FR,fr;q=0.9,en;q=0.8` → `fr`.
fn primary_language(header: &str) -> Option<String> {
    let first = header.split(',').next()?.split(';').next()?.trim();
    let primary = first.split(['-', '_']).next()?.to_ascii_lowercase();
    (!primary.is_empty()
        && primary != "*"
        && primary.len() <= 8
        && primary.bytes().all(|b| b.is_ascii_alphabetic()))
    .then_some(primary)
}

/// The key a rate limit counts a client under, from its address: an IPv4 address as it
/// is (an IPv4-mapped IPv6 one too), an IPv6 address's /64 (one subscriber's network: a
/// /128 each would let one host be billions of clients), anything else as it is, at
/// most 64 characters.
pub fn client_key(address: &str) -> String {
    let text = address.trim();
    match text.parse::<std::net::Ipv6Addr>() {
        Ok(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
        Err(_) => text.chars().take(64).collect(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn clients_are_ipv4_addresses_and_ipv6_networks() {
        use super::client_key;
        assert_eq!(client_key("198.51.100.7"), "198.51.100.7");
        assert_eq!(client_key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(client_key("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(client_key("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(client_key(&"x".repeat(100)).len(), 64);
    }

    use super::*;

    #[test]
    fn devices() {
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";
        let ipad = "Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/604.1";
        let pixel = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36";
        let tab = "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36";
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0";
        let google = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        assert_eq!(device_type(iphone, None), DeviceType::Mobile);
        assert_eq!(device_type(ipad, None), DeviceType::Tablet);
        assert_eq!(device_type(pixel, None), DeviceType::Mobile);
        assert_eq!(device_type(tab, None), DeviceType::Tablet);
        assert_eq!(device_type(mac, None), DeviceType::Desktop);
        assert_eq!(device_type(google, None), DeviceType::Bot);
        assert_eq!(device_type("", None), DeviceType::Bot);
        assert_eq!(
            device_type("Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0)", None),
            DeviceType::Tv
        );
        assert_eq!(os(iphone, None), Some("ios"));
        assert_eq!(os(mac, Some("\"macOS\"")), Some("macos"));
        assert_eq!(browser(mac), Some("edge"));
        assert_eq!(browser(iphone), Some("safari"));
        assert_eq!(browser(pixel), Some("chrome"));
    }

    #[test]
    fn prefetches_and_previews_are_not_views() {
        let prefetch = |purpose: Option<&str>| {
            context(&RequestParts {
                path: "/",
                purpose,
                ..RequestParts::default()
            })
            .prefetch
        };
        // Chrome's speculation rules and <link rel=prefetch>, its prerender, Chrome's
        // and Firefox's older headers, Safari's Top Sites.
        for purpose in [
            "prefetch",
            "prefetch;prerender",
            "prefetch; anonymous-client-ip",
            "Prefetch",
            " prerender ",
            "preview",
        ] {
            assert!(prefetch(Some(purpose)), "{purpose:?}");
        }
        for purpose in ["", "prefetchx", "navigate", "x, prefetch", "pre fetch"] {
            assert!(!prefetch(Some(purpose)), "{purpose:?}");
        }
        assert!(!prefetch(None));
    }

    #[test]
    fn referrers() {
        let kind = |r: Option<&str>, m: Option<&str>| {
            referrer_kind(r.and_then(url_host), Some("shop.example"), m)
        };
        assert_eq!(kind(None, None), ReferrerKind::Direct);
        assert_eq!(
            kind(Some("https://www.google.fr/search?q=x"), None),
            ReferrerKind::Search
        );
        assert_eq!(
            kind(Some("https://duckduckgo.com/"), None),
            ReferrerKind::Search
        );
        assert_eq!(
            kind(Some("https://l.facebook.com/l.php"), None),
            ReferrerKind::Social
        );
        assert_eq!(kind(Some("https://t.co/abc"), None), ReferrerKind::Social);
        assert_eq!(
            kind(Some("https://mail.google.com/mail/u/0"), None),
            ReferrerKind::Email
        );
        assert_eq!(
            kind(Some("https://shop.example/cart"), None),
            ReferrerKind::Internal
        );
        assert_eq!(
            kind(Some("https://blog.example.org/post"), None),
            ReferrerKind::Other
        );
        assert_eq!(
            kind(Some("https://blog.example.org/post"), Some("email")),
            ReferrerKind::Email
        );
        assert_eq!(kind(Some("not a url"), None), ReferrerKind::Direct);
    }

    #[test]
    fn a_whole_request() {
        let query = vec![
            ("utm_source".to_owned(), "newsletter".to_owned()),
            ("utm_medium".to_owned(), "email".to_owned()),
            ("stock".to_owned(), "out".to_owned()),
            ("stock".to_owned(), "second".to_owned()),
        ];
        let parts = RequestParts {
            api: true,
            path: "/models/suv/x5",
            host: Some("acme.example"),
            query: &query,
            user_agent: Some(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1",
            ),
            accept_language: Some("fr-FR,fr;q=0.9,en;q=0.8"),
            sec_gpc: Some("1"),
            ..RequestParts::default()
        };
        let ctx = context(&parts);
        assert_eq!(ctx.page.path.as_deref(), Some("/models/suv/x5"));
        assert_eq!(ctx.page.lang.as_deref(), Some("fr"));
        assert_eq!(ctx.page.query.get("stock").map(String::as_str), Some("out"));
        assert_eq!(ctx.utm.source.as_deref(), Some("newsletter"));
        assert_eq!(ctx.referrer.kind, Some(ReferrerKind::Email));
        assert_eq!(ctx.device.kind, Some(DeviceType::Mobile));
        assert_eq!(ctx.consent.personalization, Some(false));
        assert_eq!(ctx.channel, Channel::Web);
        assert_eq!(primary_language("*"), None);
        // On a page (not an API call), a link cannot fire an event or pick the channel.
        let query = vec![
            ("event".to_owned(), "order_completed".to_owned()),
            ("channel".to_owned(), "app".to_owned()),
        ];
        let page = context(&RequestParts {
            path: "/",
            query: &query,
            ..RequestParts::default()
        });
        assert_eq!(page.event, None);
        assert_eq!(page.channel, Channel::Web);
        // On the API, an event counts from an app only.
        let web = context(&RequestParts {
            api: true,
            path: "/v1/decide",
            query: &query,
            ..RequestParts::default()
        });
        assert_eq!(web.event, None);
        let app = context(&RequestParts {
            api: true,
            path: "/v1/decide",
            query: &query,
            app_token: true,
            ..RequestParts::default()
        });
        assert_eq!(app.event.as_deref(), Some("order_completed"));
    }
}
