//! Destinations (DESIGN §11): the kinds a bundle may send triggers to, written once in
//! `kinds!`'s table, and for each kind one file that turns a [`Delivery`] and the
//! settings it names (the secret, the URL) into the [`HttpCall`] that delivers it. Also
//! the names a destination may give its settings (`MM_DEST_…`) and the delivery as it
//! waits in the queue or in a Durable Object.
//!
//! Every other place a kind appears is a projection of the table: the compiler's words
//! and did-you-mean, whether a destination must name a `url`, the bundle's encoding, the
//! JSON Schema, the kind's name in a queued message, and which file makes its call.
//! Adding a kind is a file here and a row of the table.
//!
//! Pure: the clock, the Worker's vars and the sending are the caller's. A call is only
//! ever made with settings named `MM_DEST_…` that belong to one destination, whatever a
//! message says, and nothing here writes a setting's value into an error.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::codec::{Decode, Encode};
use crate::time::UnixSeconds;

/// The table of destination kinds, one row each:
///
/// ```text
/// /// The kind's summary: its documentation, and its description in the JSON Schema
/// file: Variant = "authoring name", url: required;
/// file: Variant = "authoring name", url: optional(DEFAULT_URL);
/// ```
///
/// `file` is the module (`file.rs`) whose `call(delivery, secret, url, now)` makes the
/// kind's [`HttpCall`] (or refuses a secret it cannot use, with a [`SecretError`]);
/// `url` says whether a destination of the kind must name a URL var, or else which URL
/// it calls when it names none. A new row goes last: its position is the kind's code in
/// a compiled bundle.
macro_rules! kinds {
    ($(
        #[doc = $summary:literal]
        $file:ident: $kind:ident = $name:literal, url: $url:ident $(($default:expr))?;
    )*) => {
        $(mod $file;)*

        /// How a destination is called.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Encode, Decode, Serialize, Deserialize)]
        pub enum DestinationKind {
            $(
                #[doc = $summary]
                #[serde(rename = $name)]
                $kind,
            )*
        }

        impl DestinationKind {
            /// Every kind, in the table's order.
            pub const ALL: &'static [DestinationKind] = &[$(DestinationKind::$kind),*];

            /// The authoring word (`"kind"` in a bundle, and in a queued delivery).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(DestinationKind::$kind => $name,)*
                }
            }

            /// What the kind does, in a few words.
            pub fn summary(self) -> &'static str {
                match self {
                    $(DestinationKind::$kind => $summary.trim(),)*
                }
            }

            /// The URL a destination of this kind calls when it names no `url` var;
            /// `None`: it must name one.
            pub fn default_url(self) -> Option<&'static str> {
                match self {
                    $(DestinationKind::$kind => kinds!(@default $url $($default)?),)*
                }
            }

            /// The HTTP call of `delivery` by its kind's file.
            fn call_of(
                self,
                delivery: &Delivery,
                secret: &str,
                url: &str,
                now: UnixSeconds,
            ) -> Result<HttpCall, CallError> {
                match self {
                    $(DestinationKind::$kind => $file::call(delivery, secret, url, now),)*
                }
            }
        }
    };
    (@default required) => { None };
    (@default optional $default:expr) => { Some($default) };
}

kinds! {
    /// Standard Webhooks v1, signed
    webhook: Webhook = "webhook", url: required;
    /// a Segment track call
    segment: Segment = "segment", url: optional(segment::TRACK_URL);
}

impl DestinationKind {
    /// The kind named `name` in a bundle or a delivery.
    pub fn named(name: &str) -> Option<DestinationKind> {
        DestinationKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == name)
    }

    /// Whether a destination of this kind must name a `url` var.
    pub fn needs_url(self) -> bool {
        self.default_url().is_none()
    }

    /// Every kind's name, as a person reads a choice: `webhook or segment`.
    pub fn choices() -> String {
        or_list(DestinationKind::ALL.iter().map(|k| k.as_str()))
    }
}

/// `a`, `a or b`, `a, b or c`.
fn or_list<'a>(words: impl ExactSizeIterator<Item = &'a str>) -> String {
    let last = words.len().saturating_sub(1);
    let mut out = String::new();
    for (i, word) in words.enumerate() {
        if i > 0 {
            out.push_str(if i == last { " or " } else { ", " });
        }
        out.push_str(word);
    }
    out
}

/// What the name of every Worker var or secret a destination names starts with. A
/// bundle names only the settings meant for its destinations, never `JOURNEY_KEYS` or
/// another secret of the Worker: whoever signs bundles cannot have one sent away.
pub const DESTINATION_VAR_PREFIX: &str = "MM_DEST_";

/// The longest name of a destination's var or secret.
pub const MAX_DESTINATION_VAR_BYTES: usize = 64;

/// Whether a destination may name the Worker var or secret `name`: [`DESTINATION_VAR_PREFIX`]
/// and more of `A-Z`, `0-9` and `_`, 9 to [`MAX_DESTINATION_VAR_BYTES`] bytes in all. The
/// compiler and the loader both ask, and so does a delivery before it reads one.
pub fn is_destination_var(name: &str) -> bool {
    name.len() > DESTINATION_VAR_PREFIX.len()
        && name.len() <= MAX_DESTINATION_VAR_BYTES
        && name.starts_with(DESTINATION_VAR_PREFIX)
        && name.bytes().all(is_var_byte)
}

/// The destination a var belongs to: its name up to its last `_` (`MM_DEST_CRM_` of
/// `MM_DEST_CRM_URL`), when that goes past [`DESTINATION_VAR_PREFIX`].
pub fn destination_family(name: &str) -> Option<&str> {
    let at = name.rfind('_')?;
    let family = name.get(..=at)?;
    (family.len() > DESTINATION_VAR_PREFIX.len()).then_some(family)
}

/// Whether a destination's `url` and `secret` vars are one destination's: the same
/// name up to their last `_` (`MM_DEST_CRM_URL` and `MM_DEST_CRM_SECRET`). Otherwise
/// whoever signs bundles could send one destination's secret (a CRM's webhook secret)
/// to another destination's URL (a hook they can read) and forge that CRM's webhooks.
pub fn same_destination(url: &str, secret: &str) -> bool {
    destination_family(url).is_some_and(|family| destination_family(secret) == Some(family))
}

/// Whether a byte may be in the name of a Worker var or secret a bundle names.
pub(crate) fn is_var_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'
}

/// One delivery: a fired trigger for one destination, as it waits in the queue (and in
/// a Durable Object, while delayed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Stable: the same trigger, person, destination, time and fire give the same id.
    pub id: String,
    /// The trigger's name.
    #[serde(default)]
    pub trigger: String,
    /// The device (visitor id, hex) it fired for.
    #[serde(default)]
    pub visitor: String,
    /// The person's profile (hex), once linked: a delivery of an erased profile is
    /// dropped, wherever it waits.
    #[serde(default)]
    pub profile: Option<String>,
    /// The destination's name.
    pub destination: String,
    /// How the destination is called, by its authoring name (`"webhook"`).
    pub kind: DestinationKind,
    /// The Worker var holding the URL (the kind's own URL when absent).
    #[serde(default, deserialize_with = "destination_var_or_none")]
    pub url_var: Option<String>,
    /// The Worker var or secret holding the signing secret or the write key.
    #[serde(deserialize_with = "destination_var")]
    pub secret_var: String,
    /// Unix seconds when the trigger fired.
    pub at: UnixSeconds,
    /// Seconds to wait before sending.
    pub delay_secs: Option<i64>,
    /// The event that cancels a waiting delivery.
    pub unless: Option<String>,
    /// What every destination is told (`deliver::body`), as the JSON text that is sent
    /// (and signed) byte for byte.
    pub body: String,
}

/// A delivery read back (from the queue, or from a Durable Object where it waits) names
/// only destination vars, as a bundle must ([`is_destination_var`]): a message a bundle
/// enqueued before that rule, or one written by anything else, cannot have the Worker
/// read `JOURNEY_KEYS` and send it. The error does not repeat the name.
fn destination_var<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let name = String::deserialize(deserializer)?;
    if is_destination_var(&name) {
        Ok(name)
    } else {
        Err(serde::de::Error::custom(
            "a delivery names a Worker setting that is not a destination var (MM_DEST_…)",
        ))
    }
}

fn destination_var_or_none<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Option::<Json>::deserialize(deserializer)? {
        None | Some(Json::Null) => Ok(None),
        Some(value) => destination_var(value)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// The HTTP request that delivers a delivery: a `POST` of `body` to `url` with
/// `headers`, as the kind's file made it. Its `Debug` leaves out the URL (a webhook URL
/// is often a credential itself) and the `Authorization` value.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpCall {
    /// Where to.
    pub url: String,
    /// The request's headers, in the order they are set.
    pub headers: Vec<(&'static str, String)>,
    /// The request's body.
    pub body: String,
}

impl HttpCall {
    /// A JSON `POST` of `body` to `url`, saying who sends it: what every kind starts
    /// from.
    fn json(url: &str, body: String) -> HttpCall {
        HttpCall {
            url: url.to_owned(),
            headers: vec![
                ("Content-Type", "application/json".to_owned()),
                (
                    "User-Agent",
                    concat!("micromoment/", env!("CARGO_PKG_VERSION")).to_owned(),
                ),
            ],
            body,
        }
    }

    /// The call with one more header.
    fn header(mut self, name: &'static str, value: String) -> HttpCall {
        self.headers.push((name, value));
        self
    }
}

impl fmt::Debug for HttpCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(name, value)| {
                let shown = if name.eq_ignore_ascii_case("authorization") {
                    "…"
                } else {
                    value.as_str()
                };
                (*name, shown)
            })
            .collect();
        f.debug_struct("HttpCall")
            .field("url", &"…")
            .field("headers", &headers)
            .field("body", &self.body)
            .finish()
    }
}

/// The setting of a destination a [`CallError`] is about, said by what its absence
/// means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    /// The secret (signing secret, write key): the destination cannot be called.
    Secret,
    /// The URL: the destination has nowhere to be called.
    Url,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Setting::Secret => "cannot be called",
            Setting::Url => "has no URL",
        })
    }
}

/// Why a kind cannot call with the secret it is given: its kind, what the secret must
/// be, and what it is not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {} secret is not {expected}: {problem}", kind.as_str())]
pub struct SecretError {
    pub kind: DestinationKind,
    /// What a secret of the kind is (`whsec_<base64> (Standard Webhooks)`).
    pub expected: &'static str,
    /// What is wrong with this one (`no whsec_ prefix`).
    pub problem: &'static str,
}

/// Why a delivery makes no call. No attempt can succeed until the Worker's settings or
/// the message change, so none is retried; none repeats a setting's value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// It names a var outside `MM_DEST_…` (the name is not repeated: whatever it is, it
    /// is not ours to print).
    #[error(
        "a var it names is not a destination var (MM_DEST_…): destination {destination} {setting}"
    )]
    NotADestinationVar {
        destination: String,
        setting: Setting,
    },
    /// A var it names is not set (or empty).
    #[error("{var} is not set: destination {destination} {setting}")]
    NotSet {
        var: String,
        destination: String,
        setting: Setting,
    },
    /// Its url and secret vars are two destinations' ([`same_destination`]).
    #[error("its url and secret are not one destination's vars")]
    NotOneDestination,
    /// Its kind needs a URL and it names no url var.
    #[error("it names no url var: destination {destination} has no URL")]
    NoUrl { destination: String },
    /// The secret in `var` cannot sign.
    #[error("{var}: {error}")]
    Secret { var: String, error: SecretError },
}

impl Delivery {
    /// The HTTP call that delivers it, made at `now`: the secret and the URL it names
    /// read with `setting` (the Worker's vars and secrets, by name; an empty value is
    /// none), only if they are destination vars of one destination; then its kind's
    /// call, to the URL var's value or the kind's own URL.
    pub fn call(
        &self,
        setting: impl Fn(&str) -> Option<String>,
        now: UnixSeconds,
    ) -> Result<HttpCall, CallError> {
        let read = |var: &str, which: Setting| {
            if !is_destination_var(var) {
                return Err(CallError::NotADestinationVar {
                    destination: self.destination.clone(),
                    setting: which,
                });
            }
            setting(var)
                .filter(|value| !value.is_empty())
                .ok_or_else(|| CallError::NotSet {
                    var: var.to_owned(),
                    destination: self.destination.clone(),
                    setting: which,
                })
        };
        let secret = read(&self.secret_var, Setting::Secret)?;
        let url = match &self.url_var {
            Some(var) if !same_destination(var, &self.secret_var) => {
                return Err(CallError::NotOneDestination)
            }
            Some(var) => read(var, Setting::Url)?,
            None => self
                .kind
                .default_url()
                .ok_or_else(|| CallError::NoUrl {
                    destination: self.destination.clone(),
                })?
                .to_owned(),
        };
        self.kind.call_of(self, &secret, &url, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A delivery of `kind` as `deliver::deliveries` makes one.
    pub(super) fn delivery(kind: DestinationKind, url_var: Option<&str>) -> Delivery {
        Delivery {
            id: "msg_0123456789abcdef01234567".to_owned(),
            trigger: "basket-rescue".to_owned(),
            visitor: "0f".repeat(16),
            profile: None,
            destination: "crm".to_owned(),
            kind,
            url_var: url_var.map(str::to_owned),
            secret_var: "MM_DEST_CRM_SECRET".to_owned(),
            at: 1_796_169_600,
            delay_secs: None,
            unless: None,
            body: r#"{"type":"trigger","trigger":"basket-rescue"}"#.to_owned(),
        }
    }

    /// The Worker's settings in a test: a webhook's (`crm`) and a Segment source's
    /// (`cdp`).
    pub(super) fn settings(name: &str) -> Option<String> {
        match name {
            "MM_DEST_CRM_URL" => Some("https://crm.example/hooks/1".to_owned()),
            "MM_DEST_CRM_SECRET" => Some("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()),
            "MM_DEST_CDP_URL" => Some("https://cdp.example/v1/track".to_owned()),
            "MM_DEST_CDP_KEY" => Some("write-key".to_owned()),
            "MM_DEST_CRM_EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn the_table_projects_names_urls_and_words() {
        for kind in DestinationKind::ALL {
            assert_eq!(DestinationKind::named(kind.as_str()), Some(*kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                json!(kind.as_str()),
                "a queued message names its kind as a bundle does"
            );
            assert!(!kind.summary().is_empty() && kind.summary() == kind.summary().trim());
        }
        assert_eq!(DestinationKind::named("Webhook"), None);
        assert_eq!(DestinationKind::Webhook.as_str(), "webhook");
        assert_eq!(DestinationKind::Segment.as_str(), "segment");
        assert!(DestinationKind::Webhook.needs_url());
        assert_eq!(
            DestinationKind::Segment.default_url(),
            Some("https://api.segment.io/v1/track")
        );
        assert_eq!(or_list(["a"].into_iter()), "a");
        assert_eq!(or_list(["a", "b"].into_iter()), "a or b");
        assert_eq!(or_list(["a", "b", "c"].into_iter()), "a, b or c");
    }

    /// What the queue and the Durable Object hand back is read as the bundle is loaded:
    /// a var outside `MM_DEST_…` is refused, without saying which; the kind is its name,
    /// as messages already in a queue spell it.
    #[test]
    fn a_delivery_naming_another_secret_or_no_kind_is_unreadable() {
        let read = |kind: Json, url: Json, secret: Json| {
            serde_json::from_value::<Delivery>(json!({
                "id": "msg_1", "destination": "cdp", "kind": kind, "url_var": url,
                "secret_var": secret, "at": 1, "delay_secs": null, "unless": null, "body": "{}"
            }))
            .map_err(|e| e.to_string())
        };
        let read_segment = |url: Json, secret: Json| read(json!("segment"), url, secret);
        let refused = Err(
            "a delivery names a Worker setting that is not a destination var (MM_DEST_…)"
                .to_owned(),
        );
        assert_eq!(read_segment(json!(null), json!("JOURNEY_KEYS")), refused);
        assert_eq!(
            read_segment(json!("MM_BACKEND_TOKEN"), json!("MM_DEST_K")),
            refused
        );
        assert_eq!(read_segment(json!("MM_DEST_"), json!("MM_DEST_K")), refused);
        let ok = read_segment(json!("MM_DEST_URL"), json!("MM_DEST_KEY")).expect("reads");
        assert_eq!(
            (ok.kind, ok.url_var.as_deref(), ok.secret_var.as_str()),
            (DestinationKind::Segment, Some("MM_DEST_URL"), "MM_DEST_KEY")
        );
        assert_eq!(
            read_segment(json!(null), json!("MM_DEST_KEY")).map(|d| d.url_var),
            Ok(None)
        );
        assert_eq!(
            read(json!("webhook"), json!(null), json!("MM_DEST_KEY")).map(|d| d.kind),
            Ok(DestinationKind::Webhook)
        );
        assert!(read(json!("Segment"), json!(null), json!("MM_DEST_KEY")).is_err());
        assert!(read(json!(1), json!(null), json!("MM_DEST_KEY")).is_err());
        // What `deliveries` writes reads back as it was, the kind as its name.
        let round = serde_json::to_string(&ok).unwrap();
        assert!(round.contains(r#""kind":"segment""#), "{round}");
        assert_eq!(serde_json::from_str::<Delivery>(&round).unwrap(), ok);
    }

    #[test]
    fn a_call_reads_only_one_destinations_settings() {
        let webhook = |url: Option<&str>, secret: &str| {
            let mut d = delivery(DestinationKind::Webhook, url);
            d.secret_var = secret.to_owned();
            d.call(settings, 1_614_265_330).map_err(|e| e.to_string())
        };
        let call = webhook(Some("MM_DEST_CRM_URL"), "MM_DEST_CRM_SECRET").expect("a call");
        assert_eq!(call.url, "https://crm.example/hooks/1");
        assert_eq!(
            webhook(Some("MM_DEST_CRM_URL"), "MM_DEST_CRM_KEY"),
            Err("MM_DEST_CRM_KEY is not set: destination crm cannot be called".to_owned())
        );
        assert_eq!(
            webhook(Some("MM_DEST_CRM_URL"), "MM_DEST_CRM_EMPTY"),
            Err("MM_DEST_CRM_EMPTY is not set: destination crm cannot be called".to_owned())
        );
        assert_eq!(
            webhook(Some("MM_DEST_CRM_HOOK"), "MM_DEST_CRM_SECRET"),
            Err("MM_DEST_CRM_HOOK is not set: destination crm has no URL".to_owned())
        );
        assert_eq!(
            webhook(Some("MM_DEST_CRM_URL"), "JOURNEY_KEYS"),
            Err("a var it names is not a destination var (MM_DEST_…): destination crm cannot be called".to_owned())
        );
        assert_eq!(
            webhook(Some("ORIGIN"), "MM_DEST_CRM_SECRET"),
            Err("its url and secret are not one destination's vars".to_owned())
        );
        assert_eq!(
            webhook(Some("MM_DEST_ZAPIER_URL"), "MM_DEST_CRM_SECRET"),
            Err("its url and secret are not one destination's vars".to_owned())
        );
        assert_eq!(
            webhook(None, "MM_DEST_CRM_SECRET"),
            Err("it names no url var: destination crm has no URL".to_owned())
        );
        // Nothing of a value reaches a message, nor the call's Debug.
        let shown = format!("{call:?}");
        assert!(!shown.contains("crm.example"), "{shown}");
    }
}
