//! One log line → one typed event, or the reason it is skipped.
//!
//! Lines are what the Worker writes (docs/results.md): one JSON object each, an `exposure` or
//! a `conversion`, or the same object wrapped as `{"event": "exposure", "exposure":
//! {…}}`; anything before the first `{` (a log tool's timestamp) is ignored. Every other
//! line (wrangler's banners, request logs) is a [`Skip`], counted, never an error.

use std::borrow::Cow;

use serde::Deserialize;

/// A person: the profile id when linked, else the visitor id (128 bits either way).
pub(crate) type PersonId = u128;

/// A line the analysis reads.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event<'a> {
    Exposure(Exposure<'a>),
    Conversion(Conversion<'a>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exposure<'a> {
    pub person: PersonId,
    pub at: u32,
    pub bundle: Option<Cow<'a, str>>,
    pub channel: Cow<'a, str>,
    pub slot: Cow<'a, str>,
    pub content: Cow<'a, str>,
    pub candidate: Option<Cow<'a, str>>,
    pub experiment: Option<Cow<'a, str>>,
    pub variant: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Conversion<'a> {
    pub person: PersonId,
    pub at: u32,
    pub bundle: Option<Cow<'a, str>>,
    pub goal: Cow<'a, str>,
    pub value: f64,
}

/// Why a line was not read as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    /// No JSON object on the line (a banner, a blank line, text).
    NotJson,
    /// A JSON object, but neither an exposure nor a conversion.
    OtherObject,
    /// An exposure or conversion missing a field it needs, or with one of the wrong
    /// kind; the field is named.
    Malformed(&'static str),
    /// An event of another bundle.
    OtherBundle,
    /// A conversion of a goal the bundle does not declare.
    UnknownGoal,
}

impl Skip {
    /// What it means, for the summary on stderr.
    pub fn text(self) -> String {
        match self {
            Skip::NotJson => "not a JSON object".into(),
            Skip::OtherObject => "JSON, but neither an exposure nor a conversion".into(),
            Skip::Malformed(field) => format!("missing or malformed \"{field}\""),
            Skip::OtherBundle => "of another bundle".into(),
            Skip::UnknownGoal => "a conversion of a goal the bundle does not declare".into(),
        }
    }
}

#[derive(Deserialize)]
struct Raw<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    exposure: Option<Box<Raw<'a>>>,
    #[serde(borrow, default)]
    conversion: Option<Box<Raw<'a>>>,
    #[serde(borrow, default)]
    visitor: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    profile: Option<Cow<'a, str>>,
    #[serde(default)]
    at: Option<f64>,
    #[serde(borrow, default)]
    bundle: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    slot: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    candidate: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    experiment: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    variant: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    goal: Option<Cow<'a, str>>,
    #[serde(default)]
    value: Option<f64>,
}

/// Reads one line (without its newline).
pub(crate) fn parse(line: &[u8]) -> Result<Event<'_>, Skip> {
    let start = memchr_brace(line).ok_or(Skip::NotJson)?;
    let json = line.get(start..).ok_or(Skip::NotJson)?;
    let raw: Raw<'_> = match serde_json::from_slice(trim_end(json)) {
        Ok(raw) => raw,
        // A JSON object that does not fit the shape (a field of another kind, a
        // duplicate) is some other log line; text that is not JSON is not one at all.
        Err(e) if e.is_data() => return Err(Skip::OtherObject),
        Err(_) => return Err(Skip::NotJson),
    };
    let raw = match (raw.event.as_deref(), raw.exposure, raw.conversion) {
        (Some("exposure"), Some(inner), _) => (*inner, "exposure"),
        (Some("conversion"), _, Some(inner)) => (*inner, "conversion"),
        (_, None, None) => {
            let kind = match raw.kind.as_deref() {
                Some("exposure") => "exposure",
                Some("conversion") => "conversion",
                _ => return Err(Skip::OtherObject),
            };
            (
                Raw {
                    exposure: None,
                    conversion: None,
                    ..raw
                },
                kind,
            )
        }
        _ => return Err(Skip::OtherObject),
    };
    let (mut raw, kind) = raw;
    // Analytics Engine exports write absent blobs as empty strings.
    for field in [
        &mut raw.profile,
        &mut raw.bundle,
        &mut raw.candidate,
        &mut raw.experiment,
        &mut raw.variant,
    ] {
        if field.as_deref() == Some("") {
            *field = None;
        }
    }
    if raw.kind.as_deref().is_some_and(|k| k != kind) {
        return Err(Skip::OtherObject);
    }
    let person = person(&raw)?;
    let at = match raw.at {
        Some(at) if (0.0..=f64::from(u32::MAX)).contains(&at) => at.floor() as u32,
        _ => return Err(Skip::Malformed("at")),
    };
    if kind == "exposure" {
        Ok(Event::Exposure(Exposure {
            person,
            at,
            bundle: raw.bundle,
            // Exposures logged before channels were recorded are `unknown`.
            channel: raw.channel.unwrap_or(Cow::Borrowed("unknown")),
            slot: raw.slot.ok_or(Skip::Malformed("slot"))?,
            content: raw.content.ok_or(Skip::Malformed("content"))?,
            candidate: raw.candidate,
            experiment: raw.experiment,
            variant: raw.variant,
        }))
    } else {
        let value = raw.value.unwrap_or(0.0);
        if !value.is_finite() {
            return Err(Skip::Malformed("value"));
        }
        Ok(Event::Conversion(Conversion {
            person,
            at,
            bundle: raw.bundle,
            goal: raw.goal.ok_or(Skip::Malformed("goal"))?,
            value,
        }))
    }
}

fn person(raw: &Raw<'_>) -> Result<PersonId, Skip> {
    match (&raw.profile, &raw.visitor) {
        (Some(profile), _) => hex128(profile).ok_or(Skip::Malformed("profile")),
        (None, Some(visitor)) => hex128(visitor).ok_or(Skip::Malformed("visitor")),
        (None, None) => Err(Skip::Malformed("visitor")),
    }
}

/// 32 hex digits → 128 bits.
pub(crate) fn hex128(text: &str) -> Option<u128> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u128::from_str_radix(text, 16).ok()
}

fn memchr_brace(line: &[u8]) -> Option<usize> {
    line.iter().position(|&b| b == b'{')
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    bytes.get(..end).unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn lines_are_read_bare_wrapped_and_prefixed() {
        let bare = format!(
            r#"{{"type":"exposure","visitor":"{V}","at":1790000000,"bundle":"b","channel":"web","device":"mobile","slot":"hero","content":"c","candidate":null,"experiment":null,"variant":null}}"#
        );
        let Ok(Event::Exposure(e)) = parse(bare.as_bytes()) else {
            panic!("{bare}")
        };
        assert_eq!(
            (e.at, e.slot.as_ref(), e.candidate),
            (1790000000, "hero", None)
        );
        let wrapped = format!(r#"{{"event":"exposure","exposure":{bare}}}"#);
        assert_eq!(parse(wrapped.as_bytes()), parse(bare.as_bytes()));
        let prefixed = format!("2026-12-01T10:00:00Z  (log) {bare}\r");
        assert_eq!(parse(prefixed.as_bytes()), parse(bare.as_bytes()));
    }

    #[test]
    fn other_lines_are_skipped_with_a_reason() {
        assert_eq!(parse(b"  wrangler 4.86.0"), Err(Skip::NotJson));
        assert_eq!(parse(b"{not json"), Err(Skip::NotJson));
        assert_eq!(
            parse(br#"{"level":"info","msg":"GET /"}"#),
            Err(Skip::OtherObject)
        );
        assert_eq!(
            parse(br#"{"type":"exposure","at":"x"}"#),
            Err(Skip::OtherObject)
        );
        let no_slot = format!(
            r#"{{"type":"exposure","visitor":"{V}","at":1,"channel":"web","content":"c"}}"#
        );
        assert_eq!(parse(no_slot.as_bytes()), Err(Skip::Malformed("slot")));
        let bad_visitor = r#"{"type":"conversion","visitor":"xyz","at":1,"goal":"g"}"#;
        assert_eq!(
            parse(bad_visitor.as_bytes()),
            Err(Skip::Malformed("visitor"))
        );
    }
}
