//! The request context: what the edge knows about this request, in the variable names
//! rules use (docs/format.md).
//!
//! Adapters fill a [`Context`] from whatever their platform offers (`request.cf`, headers,
//! query, a CTX.json file); every field is optional, and an absent field reads as null.
//! This module also names every variable a rule may read ([`VarId`]) and resolves names
//! to them at bundle compile time. It never reads a clock: local time is derived from the
//! `now` the caller passes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codec::{Decode, Encode};
use crate::time::UnixSeconds;

/// Everything known about one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Context {
    /// Where the request comes from.
    pub channel: Channel,
    /// Where the visitor is.
    pub geo: Geo,
    /// What the visitor uses.
    pub device: Device,
    /// The mobile app, for the app channel.
    pub app: App,
    /// The page (or app screen) requested.
    pub page: Page,
    /// UTM campaign tags.
    pub utm: Utm,
    /// Where the visitor came from.
    pub referrer: Referrer,
    /// This request's app event, if any.
    pub event: Option<String>,
    /// The visitor's consent signals.
    pub consent: ConsentSignal,
    /// The browser fetched the page ahead of time (`Sec-Purpose: prefetch`, a prerender,
    /// a link preview): the visitor may never see it, so it is served but, like a bot's
    /// request, never counted as an exposure.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub prefetch: bool,
}

/// Where a request comes from: web pages and app screens at the edge; e-mails, pushes
/// and the store through the backend API (docs/profiles.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, Encode, Decode)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A website: HTML renditions.
    #[default]
    Web,
    /// A mobile app: JSON renditions.
    App,
    /// An e-mail rendered by the ESP at send time: HTML renditions.
    Email,
    /// A screen in the store (a sales assistant's, a kiosk): JSON renditions.
    Store,
    /// A push notification: text renditions (and JSON for the payload).
    Push,
}

impl Channel {
    /// Every channel, in code order.
    pub const ALL: [Channel; 5] = [
        Channel::Web,
        Channel::App,
        Channel::Email,
        Channel::Store,
        Channel::Push,
    ];

    /// The name rules compare with.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::App => "app",
            Channel::Email => "email",
            Channel::Store => "store",
            Channel::Push => "push",
        }
    }

    /// The channel named `name`.
    pub fn parse(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// A one-byte code for the token (0 is "none").
    pub fn code(self) -> u8 {
        match self {
            Channel::Web => 1,
            Channel::App => 2,
            Channel::Email => 3,
            Channel::Store => 4,
            Channel::Push => 5,
        }
    }

    /// The channel of a [`Channel::code`], `None` for 0 or a code this build does not
    /// know.
    pub fn from_code(code: u8) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.code() == code)
    }
}

impl Context {
    /// The device type or channel this request's visit counts under (`visits.<kind>`),
    /// `None` for bots, e-mails and pushes, which are not visits.
    pub fn visit_kind(&self) -> Option<DeviceKind> {
        match self.channel {
            Channel::App => Some(DeviceKind::App),
            Channel::Store => Some(DeviceKind::Store),
            Channel::Email | Channel::Push => None,
            Channel::Web => match self.device.kind {
                Some(DeviceType::Bot) => None,
                Some(DeviceType::Mobile) => Some(DeviceKind::Mobile),
                Some(DeviceType::Tablet) => Some(DeviceKind::Tablet),
                Some(DeviceType::Desktop | DeviceType::Tv) | None => Some(DeviceKind::Desktop),
            },
        }
    }
}

/// Geolocation, as the CDN reports it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Geo {
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    /// Region or state.
    pub region: Option<String>,
    /// City.
    pub city: Option<String>,
    /// Continent code.
    pub continent: Option<String>,
    /// Postal code.
    pub postal: Option<String>,
    /// IANA time zone, e.g. `Europe/Paris`; local time is computed in it.
    pub timezone: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// The CDN data center.
    pub colo: Option<String>,
}

/// The visitor's device.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Device {
    /// Device class.
    #[serde(rename = "type")]
    pub kind: Option<DeviceType>,
    /// Operating system, e.g. `ios`.
    pub os: Option<String>,
    /// Browser, e.g. `chrome`.
    pub browser: Option<String>,
}

/// Device classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    /// Phones.
    Mobile,
    /// Tablets.
    Tablet,
    /// Laptops and desktops.
    Desktop,
    /// Smart TVs and consoles.
    Tv,
    /// Crawlers and other automated clients: served, never counted.
    Bot,
}

impl DeviceType {
    /// Every device class, in report order.
    pub const ALL: [DeviceType; 5] = [
        DeviceType::Mobile,
        DeviceType::Tablet,
        DeviceType::Desktop,
        DeviceType::Tv,
        DeviceType::Bot,
    ];

    /// The name rules compare with.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
            DeviceType::Desktop => "desktop",
            DeviceType::Tv => "tv",
            DeviceType::Bot => "bot",
        }
    }
}

/// The mobile app making the request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct App {
    /// The app's version, compared with `sem_ver`.
    pub version: Option<String>,
}

/// The page or screen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Page {
    /// The path, e.g. `/models/suv/x5`.
    pub path: Option<String>,
    /// The host name.
    pub host: Option<String>,
    /// The preferred language, e.g. `fr`.
    pub lang: Option<String>,
    /// Query parameters (the first value of each).
    pub query: BTreeMap<String, String>,
}

/// UTM campaign tags.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Utm {
    /// `utm_source`.
    pub source: Option<String>,
    /// `utm_medium`.
    pub medium: Option<String>,
    /// `utm_campaign`.
    pub campaign: Option<String>,
    /// `utm_term`.
    pub term: Option<String>,
    /// `utm_content`.
    pub content: Option<String>,
}

/// The referring page.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Referrer {
    /// The referrer's host name.
    pub host: Option<String>,
    /// What kind of place the referrer is.
    pub kind: Option<ReferrerKind>,
}

/// Kinds of referrers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReferrerKind {
    /// A search engine.
    Search,
    /// A social network.
    Social,
    /// A webmail or newsletter link.
    Email,
    /// The site itself.
    Internal,
    /// No referrer.
    Direct,
    /// Anything else.
    Other,
}

impl ReferrerKind {
    /// The name rules compare with.
    pub fn as_str(self) -> &'static str {
        match self {
            ReferrerKind::Search => "search",
            ReferrerKind::Social => "social",
            ReferrerKind::Email => "email",
            ReferrerKind::Internal => "internal",
            ReferrerKind::Direct => "direct",
            ReferrerKind::Other => "other",
        }
    }
}

/// Consent signals of this request (`Sec-GPC`, a consent cookie).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsentSignal {
    /// `false` when the visitor refused personalization on this request.
    pub personalization: Option<bool>,
}

/// A variable a rule or placeholder may read, resolved at bundle compile time.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[allow(missing_docs)]
pub enum VarId {
    Stage,
    StageIndex,
    DaysInStage,
    /// `intent.<topic>`, by topic index in the bundle.
    Intent(u16),
    Visits,
    Returning,
    Segments,
    /// `seen.<content>`, by content index in the bundle.
    Seen(u16),
    Event,
    Channel,
    GeoCountry,
    GeoRegion,
    GeoCity,
    GeoContinent,
    GeoPostal,
    GeoTimezone,
    GeoLat,
    GeoLon,
    GeoColo,
    DeviceType,
    DeviceOs,
    DeviceBrowser,
    AppVersion,
    TimeHour,
    TimeWeekday,
    TimeDate,
    TimeDaypart,
    PagePath,
    PageHost,
    PageLang,
    /// `page.query.<key>`.
    PageQuery(String),
    UtmSource,
    UtmMedium,
    UtmCampaign,
    UtmTerm,
    UtmContent,
    ReferrerHost,
    ReferrerKind,
    ConsentPersonalization,
    /// `profile.linked`: whether the device is linked to a profile (docs/profiles.md).
    ProfileLinked,
    /// `profile.devices`: how many devices the profile has (1 when not linked).
    ProfileDevices,
    /// `visits.<kind>`, by [`DeviceKind`] index.
    VisitsOf(u8),
    /// `last_channel`: the channel of the person's previous request.
    LastChannel,
}

/// Every variable with a fixed name.
pub const FIXED_VARIABLES: &[(&str, VarId)] = &[
    ("stage", VarId::Stage),
    ("stage_index", VarId::StageIndex),
    ("days_in_stage", VarId::DaysInStage),
    ("visits", VarId::Visits),
    ("returning", VarId::Returning),
    ("segments", VarId::Segments),
    ("event", VarId::Event),
    ("channel", VarId::Channel),
    ("geo.country", VarId::GeoCountry),
    ("geo.region", VarId::GeoRegion),
    ("geo.city", VarId::GeoCity),
    ("geo.continent", VarId::GeoContinent),
    ("geo.postal", VarId::GeoPostal),
    ("geo.timezone", VarId::GeoTimezone),
    ("geo.lat", VarId::GeoLat),
    ("geo.lon", VarId::GeoLon),
    ("geo.colo", VarId::GeoColo),
    ("device.type", VarId::DeviceType),
    ("device.os", VarId::DeviceOs),
    ("device.browser", VarId::DeviceBrowser),
    ("app.version", VarId::AppVersion),
    ("time.hour", VarId::TimeHour),
    ("time.weekday", VarId::TimeWeekday),
    ("time.date", VarId::TimeDate),
    ("time.daypart", VarId::TimeDaypart),
    ("page.path", VarId::PagePath),
    ("page.host", VarId::PageHost),
    ("page.lang", VarId::PageLang),
    ("utm.source", VarId::UtmSource),
    ("utm.medium", VarId::UtmMedium),
    ("utm.campaign", VarId::UtmCampaign),
    ("utm.term", VarId::UtmTerm),
    ("utm.content", VarId::UtmContent),
    ("referrer.host", VarId::ReferrerHost),
    ("referrer.kind", VarId::ReferrerKind),
    ("consent.personalization", VarId::ConsentPersonalization),
    ("profile.linked", VarId::ProfileLinked),
    ("profile.devices", VarId::ProfileDevices),
    ("visits.mobile", VarId::VisitsOf(0)),
    ("visits.tablet", VarId::VisitsOf(1)),
    ("visits.desktop", VarId::VisitsOf(2)),
    ("visits.app", VarId::VisitsOf(3)),
    ("visits.store", VarId::VisitsOf(4)),
    ("last_channel", VarId::LastChannel),
];

/// The visitor's local time, derived once per request from `now` and `geo.timezone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalTime {
    /// 0–23.
    pub hour: u8,
    /// `monday` … `sunday`.
    pub weekday: &'static str,
    /// `YYYY-MM-DD`.
    pub date: String,
    /// `night` (0–5 h), `morning` (6–11 h), `afternoon` (12–17 h), `evening` (18–23 h).
    pub daypart: &'static str,
}

impl LocalTime {
    /// Local time at `now` in the IANA zone `timezone`; UTC when the zone is absent or
    /// unknown, so a bad header can never fail a request.
    pub fn at(now: UnixSeconds, timezone: Option<&str>) -> LocalTime {
        let tz = timezone
            .and_then(|name| jiff::tz::TimeZone::get(name).ok())
            .unwrap_or(jiff::tz::TimeZone::UTC);
        let timestamp = jiff::Timestamp::from_second(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let local = tz.to_datetime(timestamp);
        let hour = u8::try_from(local.hour()).unwrap_or(0);
        let weekday = match local.weekday() {
            jiff::civil::Weekday::Monday => "monday",
            jiff::civil::Weekday::Tuesday => "tuesday",
            jiff::civil::Weekday::Wednesday => "wednesday",
            jiff::civil::Weekday::Thursday => "thursday",
            jiff::civil::Weekday::Friday => "friday",
            jiff::civil::Weekday::Saturday => "saturday",
            jiff::civil::Weekday::Sunday => "sunday",
        };
        let daypart = match hour {
            0..=5 => "night",
            6..=11 => "morning",
            12..=17 => "afternoon",
            _ => "evening",
        };
        LocalTime {
            hour,
            weekday,
            date: local.date().to_string(),
            daypart,
        }
    }
}

/// The device types and channels visits are counted by (`visits.<kind>`, docs/profiles.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeviceKind {
    /// A phone's browser.
    Mobile,
    /// A tablet's browser.
    Tablet,
    /// A computer's browser (and any other browser that is not a bot).
    Desktop,
    /// A mobile app.
    App,
    /// A store: a sales assistant's screen, a till, through the backend API.
    Store,
}

impl DeviceKind {
    /// How many kinds there are.
    pub const COUNT: usize = 5;
    /// Every kind, in index order.
    pub const ALL: [DeviceKind; DeviceKind::COUNT] = [
        DeviceKind::Mobile,
        DeviceKind::Tablet,
        DeviceKind::Desktop,
        DeviceKind::App,
        DeviceKind::Store,
    ];

    /// The position in [`State::visits_by`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name rules use: `visits.<name>`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Mobile => "mobile",
            DeviceKind::Tablet => "tablet",
            DeviceKind::Desktop => "desktop",
            DeviceKind::App => "app",
            DeviceKind::Store => "store",
        }
    }

    /// The kind named `name`.
    pub fn parse(name: &str) -> Option<DeviceKind> {
        DeviceKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}
