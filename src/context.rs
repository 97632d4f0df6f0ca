//! The request context: what the edge knows about this request, in the variable names
//! rules use (docs/format.md).
//!
//! Adapters fill a [`Context`] from whatever their platform offers (`request.cf`, headers,
//! query, a CTX.json file); every field is optional, and an absent field reads as null.
//! This module also names every variable a rule may read, in one table (`variables!`,
//! one row per variable), from which everything that names variables is generated:
//! [`VarId`], the names rules write, what each can hold, how it is read, the context
//! field a tool sets, and the npm package's packed tags. It never reads a clock (local
//! time is derived from the `now` the caller passes), and nothing outside the table
//! keeps a list of the variables.

use std::collections::BTreeMap;

use serde::de::value::{Error as ValueError, StrDeserializer};
use serde::{Deserialize, Serialize};

use crate::codec::{Decode, Encode};
use crate::rules::Value;
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
    /// Every kind of referrer.
    pub const ALL: [ReferrerKind; 6] = [
        ReferrerKind::Search,
        ReferrerKind::Social,
        ReferrerKind::Email,
        ReferrerKind::Internal,
        ReferrerKind::Direct,
        ReferrerKind::Other,
    ];

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

/// Generates, from the table of variables below, every place a variable is named:
///
/// - [`VarId`], its variants in the table's order (a bundle stores them by position:
///   see the note on the table),
/// - [`FIXED_VARIABLES`], the names rules write,
/// - [`VarId::size`], what a variable can hold (the bundle's cost bounds),
/// - [`VarId::read`], the value a rule reads: a context field directly, any other
///   variable through a method of [`Derived`] (which `decide::facts` implements),
/// - [`Context::field_mut`], a context field by variable (the report's audiences),
/// - [`Context::field_by_tag`] and [`PACKED_FIELDS`], a context field by the tag the
///   npm package's packed options write it under, and the list its JavaScript reads.
///
/// A row is `Variant[(binding: Type)] [names] source(path): kind [= 'tag'];`:
/// `context(geo.city)` reads `Context::geo.city`, whose Rust type the kind names
/// (`text` an `Option<String>`, `number` an `Option<f64>`, `flag` an `Option<bool>`,
/// `keyword` an `Option<K>` of a [`Keyword`] enum, `channel` the [`Channel`]; the
/// compiler checks each against the field); `derived(intent)` reads through
/// `Derived::intent`, and its kind (`list` too) only says what it holds. The names
/// are the fixed names that resolve to the variant, each with its argument for a
/// variant that has one (`"visits.app"(3)`); a variant named by a pattern
/// (`intent.<topic>`) has none here and is resolved by the bundle. The `fields` section
/// lists the context's fields that no fixed name reads but the npm package packs
/// (`"page.query" context(page.query): query = 'R';`, kinds `query` and `switch` too).
///
/// The rows are parsed once and handed to `@emit` with each row's names both as a
/// list (for [`FIXED_VARIABLES`]) and as one group (for the packed fields' names), so
/// that no projection walks a row's names and its optional tag together.
macro_rules! variables {
    (
        fields {
            $(
                $(#[doc = $fdoc:literal])*
                $fname:literal context $fpath:tt : $fkind:ident = $ftag:literal ;
            )*
        }
        $(
            $(#[$meta:meta])*
            $Var:ident $( ( $a:ident : $arg:ty ) )?
            [ $( $name:literal $( ( $idx:literal ) )? ),* ]
            $source:ident $path:tt : $kind:ident $( = $tag:literal )? ;
        )*
    ) => {
        variables! {
            @emit
            $( {
                [$(#[$meta])*] $Var ($($a : $arg)?)
                [ $( $name $( ($idx) )? ),* ] ( $($name),* )
                $source $path $kind ($($tag)?)
            } )*
            fields { $( [$($fdoc)*] $fname $fpath $fkind $ftag )* }
        }
    };
    (
        @emit
        $( {
            [$(#[$meta:meta])*] $Var:ident ($($a:ident : $arg:ty)?)
            [ $( $name:literal $( ($idx:literal) )? ),* ] $names:tt
            $source:ident $path:tt $kind:ident ($($tag:literal)?)
        } )*
        fields { $( [$($fdoc:literal)*] $fname:literal $fpath:tt $fkind:ident $ftag:literal )* }
    ) => {
        /// A variable a rule or placeholder may read, resolved at bundle compile time
        /// (one row of the table of variables each).
        #[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
        pub enum VarId {
            $( $(#[$meta])* $Var $( ($arg) )?, )*
        }

        /// Every variable with a fixed name.
        pub const FIXED_VARIABLES: &[(&str, VarId)] =
            &[ $( $( ($name, VarId::$Var $( ($idx) )?), )* )* ];

        /// The context fields the npm package's packed options write, by tag: each
        /// variable's that has a tag, then the fields no fixed name reads.
        pub const PACKED_FIELDS: &[PackedField] = &[
            $( $( PackedField {
                tag: $tag,
                name: variables!(@first $names),
                kind: variables!(@kind $kind),
                doc: "",
            }, )? )*
            $( PackedField {
                tag: $ftag,
                name: $fname,
                kind: variables!(@kind $fkind),
                doc: concat!($($fdoc),*),
            }, )*
        ];

        impl VarId {
            /// What the variable can hold, for a rule's worst case.
            pub fn size(&self) -> VarSize {
                match self {
                    $( VarId::$Var { .. } => variables!(@size $kind), )*
                }
            }

            /// The variable's value: a field of `context`, or what `derived` reads.
            #[inline]
            pub(crate) fn read<'v, D: Derived>(
                &self,
                context: &'v Context,
                derived: &'v D,
            ) -> Option<Value<'v>> {
                match self {
                    $( VarId::$Var $( ($a) )? =>
                        variables!(@read $source $kind $path context derived ($($a)?)), )*
                }
            }
        }

        /// The variables that are not a field of the context, one method each: what
        /// the decision works out from the journey, the visitor's state, the clock, the
        /// bundle and `page.query` (`decide::facts` reads them).
        #[allow(clippy::ptr_arg)]
        pub(crate) trait Derived {
            $( variables! { @method $Var $source $path ($($a : $arg)?) } )*
        }

        impl Context {
            /// The context field a variable reads, to set it (a report's audience):
            /// `None` for a variable that is not a field.
            pub fn field_mut(&mut self, var: &VarId) -> Option<FieldMut<'_>> {
                let context = self;
                match var {
                    $( VarId::$Var { .. } => variables!(@field $source $kind context $path), )*
                }
            }

            /// The context field the npm package's packed options write under `tag`
            /// ([`PACKED_FIELDS`]), `None` for a tag that is none.
            pub fn field_by_tag(&mut self, tag: char) -> Option<FieldMut<'_>> {
                let context = self;
                match tag {
                    $( $( $tag => variables!(@field $source $kind context $path), )? )*
                    $( $ftag => variables!(@field context $fkind context $fpath), )*
                    _ => None,
                }
            }
        }
    };
    (@first ($name:literal $(, $rest:literal)*)) => { $name };
    (@kind text) => { FieldKind::Text };
    (@kind number) => { FieldKind::Number };
    (@kind flag) => { FieldKind::Flag };
    (@kind keyword) => { FieldKind::Keyword };
    (@kind channel) => { FieldKind::Channel };
    (@kind switch) => { FieldKind::Switch };
    (@kind query) => { FieldKind::Query };
    (@size text) => { VarSize::Text };
    (@size keyword) => { VarSize::Text };
    (@size channel) => { VarSize::Text };
    (@size number) => { VarSize::Scalar };
    (@size flag) => { VarSize::Scalar };
    (@size list) => { VarSize::List };
    (@read context text ($($f:ident).+) $c:ident $d:ident ()) => {
        $c.$($f).+.as_deref().map(Value::str)
    };
    (@read context number ($($f:ident).+) $c:ident $d:ident ()) => { $c.$($f).+.map(Value::Number) };
    (@read context flag ($($f:ident).+) $c:ident $d:ident ()) => { $c.$($f).+.map(Value::Bool) };
    (@read context keyword ($($f:ident).+) $c:ident $d:ident ()) => {
        $c.$($f).+.map(|k| Value::str(Keyword::as_str(k)))
    };
    (@read context channel ($($f:ident).+) $c:ident $d:ident ()) => {
        Some(Value::str($c.$($f).+.as_str()))
    };
    (@read derived $kind:ident ($method:ident) $c:ident $d:ident ($($a:ident)?)) => {
        $d.$method($($a)?)
    };
    (@method $Var:ident context $path:tt ($($a:ident : $arg:ty)?)) => {};
    (@method $Var:ident derived ($method:ident) ($($a:ident : $arg:ty)?)) => {
        #[doc = concat!("The value of [`VarId::", stringify!($Var), "`].")]
        fn $method(&self $(, $a: &$arg)?) -> Option<Value<'_>>;
    };
    (@field derived $kind:ident $c:ident $path:tt) => { None };
    (@field context text $c:ident ($($f:ident).+)) => { Some(FieldMut::Text(&mut $c.$($f).+)) };
    (@field context number $c:ident ($($f:ident).+)) => { Some(FieldMut::Number(&mut $c.$($f).+)) };
    (@field context flag $c:ident ($($f:ident).+)) => { Some(FieldMut::Flag(&mut $c.$($f).+)) };
    (@field context keyword $c:ident ($($f:ident).+)) => { Some(FieldMut::Keyword(&mut $c.$($f).+)) };
    (@field context channel $c:ident ($($f:ident).+)) => { Some(FieldMut::Channel(&mut $c.$($f).+)) };
    (@field context switch $c:ident ($($f:ident).+)) => { Some(FieldMut::Switch(&mut $c.$($f).+)) };
    (@field context query $c:ident ($($f:ident).+)) => { Some(FieldMut::Query(&mut $c.$($f).+)) };
}

// The table of variables: one row per variable rules and placeholders may read, each
// generating its projections (see `variables!` above). Adding a request variable is a
// row here (and the field it reads, which the compiler asks for) plus its producer
// (`http.rs`, the Worker's `request.rs`); the npm package's declaration of the context
// follows from the table (`UPDATE_EXPECT=1` and `tests/it/npm_types.rs` write it). A
// packed tag is an uppercase letter or a digit no other field has. A bundle stores a
// variable by its row's position, so a new row goes after the last one, and no row
// moves or goes: a row in a new place would read every bundle compiled before it wrong.
variables! {
    // Fields of the context that no fixed name reads, packed all the same: `page.query`
    // (read as `page.query.<key>`, a derived variable) and `prefetch` (read by no rule).
    fields {
        "page.query"   context(page.query): query  = 'R';
        /// Fetched ahead of time (prefetch, prerender): served, but no exposures.
        "prefetch"     context(prefetch):   switch = '1';
    }

    // variant                names                        read                     kind     packed
    Stage                     ["stage"]                    derived(stage):          text;
    StageIndex                ["stage_index"]              derived(stage_index):    number;
    DaysInStage               ["days_in_stage"]            derived(days_in_stage):  number;
    /// `intent.<topic>`, by topic index in the bundle.
    Intent(topic: u16)        []                           derived(intent):         number;
    Visits                    ["visits"]                   derived(visits):         number;
    Returning                 ["returning"]                derived(returning):      flag;
    Segments                  ["segments"]                 derived(segments):       list;
    /// `seen.<content>`, by content index in the bundle.
    Seen(content: u16)        []                           derived(seen):           number;
    Event                     ["event"]                    context(event):          text     = 'Z';
    Channel                   ["channel"]                  context(channel):        channel  = 'A';
    GeoCountry                ["geo.country"]              context(geo.country):    text     = 'B';
    GeoRegion                 ["geo.region"]               context(geo.region):     text     = 'C';
    GeoCity                   ["geo.city"]                 context(geo.city):       text     = 'D';
    GeoContinent              ["geo.continent"]            context(geo.continent):  text     = 'E';
    GeoPostal                 ["geo.postal"]               context(geo.postal):     text     = 'F';
    GeoTimezone               ["geo.timezone"]             context(geo.timezone):   text     = 'G';
    GeoLat                    ["geo.lat"]                  context(geo.lat):        number   = 'H';
    GeoLon                    ["geo.lon"]                  context(geo.lon):        number   = 'I';
    GeoColo                   ["geo.colo"]                 context(geo.colo):       text     = 'J';
    DeviceType                ["device.type"]              context(device.kind):    keyword  = 'K';
    DeviceOs                  ["device.os"]                context(device.os):      text     = 'L';
    DeviceBrowser             ["device.browser"]           context(device.browser): text     = 'M';
    AppVersion                ["app.version"]              context(app.version):    text     = 'N';
    TimeHour                  ["time.hour"]                derived(time_hour):      number;
    TimeWeekday               ["time.weekday"]             derived(time_weekday):   text;
    TimeDate                  ["time.date"]                derived(time_date):      text;
    TimeDaypart               ["time.daypart"]             derived(time_daypart):   text;
    PagePath                  ["page.path"]                context(page.path):      text     = 'O';
    PageHost                  ["page.host"]                context(page.host):      text     = 'P';
    PageLang                  ["page.lang"]                context(page.lang):      text     = 'Q';
    /// `page.query.<key>`.
    PageQuery(key: String)    []                           derived(page_query):     text;
    UtmSource                 ["utm.source"]               context(utm.source):     text     = 'S';
    UtmMedium                 ["utm.medium"]               context(utm.medium):     text     = 'T';
    UtmCampaign               ["utm.campaign"]             context(utm.campaign):   text     = 'U';
    UtmTerm                   ["utm.term"]                 context(utm.term):       text     = 'V';
    UtmContent                ["utm.content"]              context(utm.content):    text     = 'W';
    ReferrerHost              ["referrer.host"]            context(referrer.host):  text     = 'X';
    ReferrerKind              ["referrer.kind"]            context(referrer.kind):  keyword  = 'Y';
    ConsentPersonalization    ["consent.personalization"]  context(consent.personalization): flag = '0';
    /// `profile.linked`: whether the device is linked to a profile (docs/profiles.md).
    ProfileLinked             ["profile.linked"]           derived(profile_linked): flag;
    /// `profile.devices`: how many devices the profile has (1 when not linked).
    ProfileDevices            ["profile.devices"]          derived(profile_devices): number;
    /// `visits.<kind>`, by [`DeviceKind`] index.
    VisitsOf(kind: u8)        ["visits.mobile"(0), "visits.tablet"(1), "visits.desktop"(2),
                               "visits.app"(3), "visits.store"(4)]
                                                           derived(visits_of):      number;
    /// `last_channel`: the channel of the person's previous request.
    LastChannel               ["last_channel"]             derived(last_channel):   text;
    /// `store.<field>`: the store a `nearest_store` lookup found (docs/feeds.md), by
    /// field: its id, its distance, the item's quantity there, then the stores feed's
    /// own fields.
    Store(field: u16)         []                           derived(store):          text;
}

/// What a variable can hold, for working out a rule's worst case (`bundle` turns it into
/// bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarSize {
    /// A number or a boolean.
    Scalar,
    /// A text as long as a context field can be.
    Text,
    /// The visitor's segments: a list of short texts.
    List,
}

/// A context field of the packed options the npm package writes (`crates/npm`): its tag,
/// its name (its path in the context's JSON), and its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackedField {
    /// The tag character the field is packed under.
    pub tag: char,
    /// Its path in the context's JSON, dotted: `geo.city`.
    pub name: &'static str,
    /// What it holds.
    pub kind: FieldKind,
    /// What a declaration says of it, if anything.
    pub doc: &'static str,
}

/// The Rust type of a context field, named by the table of variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// `Option<String>`.
    Text,
    /// `Option<f64>`.
    Number,
    /// `Option<bool>`.
    Flag,
    /// `Option<K>` of a [`Keyword`] enum.
    Keyword,
    /// The [`Channel`], always known (the web when not given).
    Channel,
    /// A `bool`, false when not given.
    Switch,
    /// The query's parameters by name.
    Query,
}

impl FieldKind {
    /// The kind's name in the table of variables (and to the npm package's JavaScript).
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Text => "text",
            FieldKind::Number => "number",
            FieldKind::Flag => "flag",
            FieldKind::Keyword => "keyword",
            FieldKind::Channel => "channel",
            FieldKind::Switch => "switch",
            FieldKind::Query => "query",
        }
    }

    /// Whether `null` in the context's JSON means "unknown" (an `Option`), rather than
    /// a wrong type.
    pub fn nullable(self) -> bool {
        matches!(
            self,
            FieldKind::Text | FieldKind::Number | FieldKind::Flag | FieldKind::Keyword
        )
    }
}

/// A context field, borrowed to be set by its type: the report sets each from an
/// example value, the npm package from its packed options.
#[derive(Debug)]
pub enum FieldMut<'c> {
    /// `Option<String>`.
    Text(&'c mut Option<String>),
    /// `Option<f64>`.
    Number(&'c mut Option<f64>),
    /// `Option<bool>`.
    Flag(&'c mut Option<bool>),
    /// `Option<K>` of a [`Keyword`] enum.
    Keyword(&'c mut dyn KeywordField),
    /// The channel.
    Channel(&'c mut Channel),
    /// A `bool`.
    Switch(&'c mut bool),
    /// The query's parameters.
    Query(&'c mut BTreeMap<String, String>),
}

/// An enum a rule compares as one of a few words (`device.type`, `referrer.kind`, the
/// channel), named as in the context's JSON.
pub trait Keyword: Copy + for<'de> Deserialize<'de> + 'static {
    /// Every value.
    const ALL: &'static [Self];

    /// The word rules compare with.
    fn as_str(self) -> &'static str;

    /// The value named `word`, as the context's JSON reads it.
    fn named(word: &str) -> Option<Self> {
        Self::deserialize(StrDeserializer::<ValueError>::new(word)).ok()
    }
}

/// A context field holding a [`Keyword`] or nothing, whatever the keyword's type.
pub trait KeywordField: std::fmt::Debug {
    /// Sets the field to the keyword `word`, or to unknown when there is none or it is
    /// not one of the field's words: `Some` when the field now holds a keyword.
    fn set(&mut self, word: Option<&str>) -> Option<()>;

    /// The words the field may hold.
    fn words(&self) -> Vec<&'static str>;
}

impl<K: Keyword + std::fmt::Debug> KeywordField for Option<K> {
    fn set(&mut self, word: Option<&str>) -> Option<()> {
        *self = word.and_then(K::named);
        self.map(|_| ())
    }

    fn words(&self) -> Vec<&'static str> {
        K::ALL.iter().map(|k| k.as_str()).collect()
    }
}

impl Keyword for Channel {
    const ALL: &'static [Channel] = &Channel::ALL;

    fn as_str(self) -> &'static str {
        Channel::as_str(self)
    }
}

impl Keyword for DeviceType {
    const ALL: &'static [DeviceType] = &DeviceType::ALL;

    fn as_str(self) -> &'static str {
        DeviceType::as_str(self)
    }
}

impl Keyword for ReferrerKind {
    const ALL: &'static [ReferrerKind] = &ReferrerKind::ALL;

    fn as_str(self) -> &'static str {
        ReferrerKind::as_str(self)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    /// A context whose field `var` (or packed field `tag`) holds an example of its kind.
    fn example(field: FieldMut<'_>) {
        match field {
            FieldMut::Text(f) => *f = Some("x".into()),
            FieldMut::Number(f) => *f = Some(45.5),
            FieldMut::Flag(f) => *f = Some(false),
            FieldMut::Keyword(f) => {
                let word = f.words().last().copied();
                assert!(f.set(word).is_some(), "{word:?} is a word of its field");
            }
            FieldMut::Channel(f) => *f = Channel::Push,
            FieldMut::Switch(f) => *f = true,
            FieldMut::Query(f) => {
                f.insert("k".into(), "v".into());
            }
        }
    }

    /// The JSON value at a dotted path.
    fn at<'j>(json: &'j serde_json::Value, path: &str) -> Option<&'j serde_json::Value> {
        path.split('.').try_fold(json, |j, key| j.get(key))
    }

    #[test]
    fn a_context_variable_reads_the_field_its_name_is_the_path_of_in_json() {
        for (name, var) in FIXED_VARIABLES {
            let mut context = Context::default();
            let Some(field) = context.field_mut(var) else {
                assert_eq!(var.read(&context, &NoDerived), None, "{name}");
                continue;
            };
            example(field);
            let json = serde_json::to_value(&context).unwrap();
            let read = var.read(&context, &NoDerived).map(|v| v.to_json());
            assert_eq!(at(&json, name), read.as_ref(), "{name}");
            assert_ne!(
                json,
                serde_json::to_value(Context::default()).unwrap(),
                "{name}"
            );
        }
    }

    /// What reads no context field.
    struct NoDerived;

    macro_rules! none {
        ($($method:ident $(($t:ty))?),*) => {
            impl Derived for NoDerived {
                $(fn $method(&self $(, _: &$t)?) -> Option<Value<'_>> { None })*
            }
        };
    }
    none!(
        stage,
        stage_index,
        days_in_stage,
        intent(u16),
        visits,
        returning,
        segments,
        seen(u16),
        time_hour,
        time_weekday,
        time_date,
        time_daypart,
        page_query(String),
        profile_linked,
        profile_devices,
        visits_of(u8),
        last_channel,
        store(u16)
    );

    #[test]
    fn packed_fields_are_fields_of_their_kind_at_their_path_under_one_tag_each() {
        let mut tags = std::collections::BTreeSet::new();
        for packed in PACKED_FIELDS {
            assert!(tags.insert(packed.tag), "{} is one field's tag", packed.tag);
            // The options' own tags are lowercase letters; NUL ends a field.
            assert!(
                packed.tag.is_ascii_uppercase() || packed.tag.is_ascii_digit(),
                "{}: {}",
                packed.name,
                packed.tag
            );
            let mut context = Context::default();
            let field = context.field_by_tag(packed.tag).unwrap();
            let kind = match &field {
                FieldMut::Text(_) => FieldKind::Text,
                FieldMut::Number(_) => FieldKind::Number,
                FieldMut::Flag(_) => FieldKind::Flag,
                FieldMut::Keyword(_) => FieldKind::Keyword,
                FieldMut::Channel(_) => FieldKind::Channel,
                FieldMut::Switch(_) => FieldKind::Switch,
                FieldMut::Query(_) => FieldKind::Query,
            };
            assert_eq!(kind, packed.kind, "{}", packed.name);
            example(field);
            let json = serde_json::to_value(&context).unwrap();
            assert!(
                at(&json, packed.name).is_some(),
                "{} in {json}",
                packed.name
            );
            // JSON's null reads as unknown exactly for the kinds said to be nullable.
            let null = packed.name.split('.').rev().fold(
                serde_json::Value::Null,
                |v, key| serde_json::json!({ key: v }),
            );
            assert_eq!(
                serde_json::from_value::<Context>(null).is_ok(),
                packed.kind.nullable(),
                "{}",
                packed.name
            );
        }
        assert!(Context::default().field_by_tag('t').is_none());
    }

    #[test]
    fn keywords_are_named_as_in_json() {
        fn check<K: Keyword + Serialize + PartialEq + std::fmt::Debug>() {
            for k in K::ALL {
                assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
                assert_eq!(K::named(k.as_str()), Some(*k));
            }
            assert_eq!(K::named("Web"), None);
        }
        check::<Channel>();
        check::<DeviceType>();
        check::<ReferrerKind>();
        let mut kind: Option<ReferrerKind> = Some(ReferrerKind::Email);
        assert_eq!(kind.set(Some("social")), Some(()));
        assert_eq!(kind, Some(ReferrerKind::Social));
        assert_eq!(kind.set(Some("socia")), None);
        assert_eq!(kind, None);
    }

    #[test]
    fn visits_of_a_kind_are_named_and_numbered_by_device_kind() {
        for kind in DeviceKind::ALL {
            let name = format!("visits.{}", kind.as_str());
            let var = FIXED_VARIABLES
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v);
            assert_eq!(var, Some(&VarId::VisitsOf(kind.index() as u8)), "{name}");
        }
    }
}
