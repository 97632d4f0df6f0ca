//! The OpenFeature Remote Evaluation Protocol (OFREP, docs/ofrep.md), the request's
//! and the answer's halves, pure: each slot is a flag.
//!
//! [`apply`] reads an evaluation request's body into the context the request's headers
//! made (the app's context wins over what the headers say, except a refusal of
//! personalization, which nothing grants back); [`Flag::of`] turns a slot's decision into
//! an evaluation (`value` the content's JSON rendition, else its id; `variant` the content
//! id; `reason` one of OpenFeature's; `metadata` the candidate, experiment, arm, stage and
//! the new token); [`etag`] names a bulk answer, so a poll that would get the same answer
//! with the token it holds gets `304` instead.

use serde::Serialize;
use serde_json::{Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::context::{Channel, Context, FieldMut, FIXED_VARIABLES};
use crate::decide::{Reason, SlotDecision};
use crate::http::MAX_HEADER;
use crate::token::State;

/// The most properties an evaluation context may have, nested ones counted one each.
pub const MAX_CONTEXT_PROPERTIES: usize = 256;

/// How deep an evaluation context may nest objects (`{"geo": {"country": …}}` is 2).
pub const MAX_CONTEXT_DEPTH: usize = 4;

/// The most `page.query.<key>` entries a context sets (as many as a URL's query gives).
const MAX_QUERY: usize = 64;

/// How long a token may go without being renewed by a poll answered `304`: past it, the
/// bulk evaluation answers `200` with a fresh token, so an app that only polls keeps its
/// journey (a token lives 30 days past its last renewal).
pub const RENEW_AFTER_SECS: i64 = 24 * 60 * 60;

/// OFREP's error codes (OpenFeature's, as the protocol names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// The body is not a JSON object.
    ParseError,
    /// The context is not an object, or a property has the wrong type.
    InvalidContext,
    /// No slot has that key.
    FlagNotFound,
    /// Anything else (a body over the limit, no bundle).
    General,
}

/// Why an evaluation request was refused: the code and a message naming what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The protocol's code.
    pub code: ErrorCode,
    /// What was wrong, for the developer.
    pub details: String,
}

impl Failure {
    fn parse(details: impl Into<String>) -> Self {
        Failure {
            code: ErrorCode::ParseError,
            details: details.into(),
        }
    }

    fn context(details: impl Into<String>) -> Self {
        Failure {
            code: ErrorCode::InvalidContext,
            details: details.into(),
        }
    }
}

/// Which evaluation a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /ofrep/v1/evaluate/flags/{key}`: one flag, per call (server providers).
    Single,
    /// `POST /ofrep/v1/evaluate/flags`: every flag, cached and polled (client providers).
    Bulk,
}

/// Reads an OFREP evaluation request (`{"context": {…}}`) into `context`, which the
/// request's headers made: the page's URL parts (path, query, UTM tags) are the
/// protocol's, not a page's, so they are cleared first; the channel is `app` unless the
/// context names `web`. Each property named as rules name a variable (`geo.country`,
/// or nested, `{"geo": {"country": …}}`) sets that field; `page.query.<key>` a query
/// parameter; `event` this request's event, only on a bulk evaluation from an app
/// (`has_token`: its token in `X-MM-Token`), so a flag evaluated several times counts
/// nothing twice; `targetingKey` and any other property are not read (the journey token
/// is who the request is). A property of the wrong type is an `INVALID_CONTEXT`.
pub fn apply(
    body: &[u8],
    context: &mut Context,
    endpoint: Endpoint,
    has_token: bool,
) -> Result<(), Failure> {
    let body: Json = serde_json::from_slice(body)
        .map_err(|e| Failure::parse(format!("body: not JSON ({e})")))?;
    let Json::Object(mut body) = body else {
        return Err(Failure::parse(
            "body: a JSON object with a `context`, e.g. {\"context\": {\"geo.country\": \"FR\"}}",
        ));
    };
    let given = match body.remove("context") {
        None | Some(Json::Null) => Map::new(),
        Some(Json::Object(map)) => map,
        Some(_) => return Err(Failure::context("context: an object")),
    };
    let mut properties = Vec::new();
    flatten(&given, "", 1, &mut properties)?;

    context.page.path = None;
    context.page.query.clear();
    context.utm = Default::default();
    context.event = None;
    context.channel = Channel::App;
    let refused = context.consent.personalization == Some(false);
    for (name, value) in properties {
        set(context, &name, value, endpoint, has_token)?;
    }
    if refused {
        context.consent.personalization = Some(false);
    }
    Ok(())
}

/// The context's properties by dotted name, nested objects walked.
fn flatten<'j>(
    map: &'j Map<String, Json>,
    prefix: &str,
    depth: usize,
    out: &mut Vec<(String, &'j Json)>,
) -> Result<(), Failure> {
    if depth > MAX_CONTEXT_DEPTH {
        return Err(Failure::context(format!(
            "context: nested deeper than {MAX_CONTEXT_DEPTH} objects at `{prefix}`"
        )));
    }
    for (key, value) in map {
        if out.len() >= MAX_CONTEXT_PROPERTIES {
            return Err(Failure::context(format!(
                "context: more than {MAX_CONTEXT_PROPERTIES} properties"
            )));
        }
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            // `page.query` is a map of its own: `{"page": {"query": {"q": "suv"}}}`.
            Json::Object(inner) => flatten(inner, &name, depth + 1, out)?,
            _ => out.push((name, value)),
        }
    }
    Ok(())
}

/// A property as text: strings as they are, numbers and booleans written out, cut at
/// the length a header is cut at; `None` for null.
fn text(name: &str, value: &Json) -> Result<Option<String>, Failure> {
    let mut text = match value {
        Json::Null => return Ok(None),
        Json::String(s) => s.clone(),
        Json::Number(n) => n.to_string(),
        Json::Bool(b) => b.to_string(),
        Json::Array(_) | Json::Object(_) => {
            return Err(Failure::context(format!("{name}: a string")))
        }
    };
    if text.len() > MAX_HEADER {
        let mut end = MAX_HEADER;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    Ok(Some(text))
}

fn set(
    context: &mut Context,
    name: &str,
    value: &Json,
    endpoint: Endpoint,
    has_token: bool,
) -> Result<(), Failure> {
    if name == "event" {
        if endpoint == Endpoint::Bulk && has_token {
            context.event = text(name, value)?.filter(|e| !e.is_empty());
        }
        return Ok(());
    }
    if let Some(key) = name.strip_prefix("page.query.") {
        if let Some(text) = text(name, value)? {
            if context.page.query.len() < MAX_QUERY || context.page.query.contains_key(key) {
                context.page.query.insert(key.to_owned(), text);
            }
        }
        return Ok(());
    }
    let Some((_, var)) = FIXED_VARIABLES.iter().find(|(fixed, _)| *fixed == name) else {
        // `targetingKey` and the app's own attributes: not a variable rules read.
        return Ok(());
    };
    let words = |field_words: Vec<&str>| field_words.join(", ");
    match context.field_mut(var) {
        Some(FieldMut::Text(field)) => *field = text(name, value)?,
        Some(FieldMut::Number(field)) => {
            *field = match value {
                Json::Null => None,
                Json::Number(n) => n.as_f64(),
                Json::String(s) => Some(
                    s.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| Failure::context(format!("{name}: a number")))?,
                ),
                _ => return Err(Failure::context(format!("{name}: a number"))),
            }
        }
        Some(FieldMut::Flag(field)) => {
            *field = match value {
                Json::Null => None,
                Json::Bool(b) => Some(*b),
                _ => return Err(Failure::context(format!("{name}: true or false"))),
            }
        }
        Some(FieldMut::Keyword(field)) => {
            let word = text(name, value)?;
            if field.set(word.as_deref()).is_none() && word.is_some() {
                return Err(Failure::context(format!(
                    "{name}: one of {}",
                    words(field.words())
                )));
            }
        }
        Some(FieldMut::Channel(field)) => {
            // An app or a page: e-mails, pushes and the store are the backend's.
            *field = match value.as_str() {
                Some("app") => Channel::App,
                Some("web") => Channel::Web,
                _ => return Err(Failure::context(format!("{name}: app or web"))),
            }
        }
        // The journey's own variables (`stage`, `visits`, …) come from the token, not
        // from what a client says.
        Some(FieldMut::Switch(_) | FieldMut::Query(_)) | None => {}
    }
    Ok(())
}

/// A flag's value: the content's JSON rendition, else its id.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value<'d> {
    /// The JSON rendition.
    Json(&'d Json),
    /// The content id.
    Id(&'d str),
}

/// What an evaluation says besides its value (OFREP allows strings, numbers and
/// booleans; an absent one is left out).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata<'d> {
    /// The candidate that won; absent for a default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<&'d str>,
    /// The experiment that decided, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub experiment: Option<&'d str>,
    /// The experiment's arm (a content id, or `holdout`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arm: Option<&'d str>,
    /// The visitor's stage after this request.
    pub stage: &'d str,
    /// The new journey token, for an app to send back in `X-MM-Token` (a hook keeps it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'d str>,
}

/// One flag's evaluation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag<'d> {
    /// The slot.
    pub key: &'d str,
    /// What the app shows.
    pub value: Value<'d>,
    /// OpenFeature's reason.
    pub reason: &'static str,
    /// The content id.
    pub variant: &'d str,
    /// The candidate, experiment, arm, stage and token.
    pub metadata: Metadata<'d>,
}

/// OpenFeature's reason for a slot's decision: a candidate whose rule matched is
/// `TARGETING_MATCH`, an experiment's arm (its holdout included) `SPLIT`, a default
/// `DEFAULT`, and a visitor who refused personalization `DISABLED`.
pub fn reason(reason: Reason) -> &'static str {
    match reason {
        Reason::Candidate => "TARGETING_MATCH",
        Reason::Experiment | Reason::Holdout => "SPLIT",
        Reason::Default => "DEFAULT",
        Reason::Consent => "DISABLED",
    }
}

impl<'d> Flag<'d> {
    /// The evaluation of one slot's decision, at `stage`, with the new `token`.
    pub fn of(decision: &'d SlotDecision<'_>, stage: &'d str, token: Option<&'d str>) -> Self {
        Flag {
            key: decision.slot,
            value: match &decision.json {
                Some(json) => Value::Json(json),
                None => Value::Id(decision.content),
            },
            reason: reason(decision.reason),
            variant: decision.content,
            metadata: Metadata {
                candidate: decision.candidate,
                experiment: decision.experiment,
                arm: decision.variant,
                stage,
                token,
            },
        }
    }
}

/// A bulk answer's body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bulk<'d> {
    /// One per slot of the bundle.
    pub flags: Vec<Flag<'d>>,
    /// The flag set's: the stage, the bundle and its version, and the token.
    pub metadata: BulkMetadata<'d>,
}

/// What a bulk answer says of the whole flag set.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BulkMetadata<'d> {
    /// The visitor's stage after this request.
    pub stage: &'d str,
    /// The bundle's id.
    pub bundle: &'d str,
    /// The bundle's version.
    pub version: u64,
    /// The new journey token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'d str>,
}

/// The ETag of a bulk answer: its flags without their tokens, the context they were
/// decided for, and the state of the token the client holds once it has the answer
/// (`held`: the answer's new state, or none when no token was written). A client that
/// comes back with that token and context and would get the same flags has what it
/// needs: the answer is `304` (and nothing is recorded). The state is compared whole,
/// not by its visitor and time of issue: two answers within a second differ.
pub fn etag(flags: &[Flag<'_>], context: &Context, held: Option<&State>) -> String {
    let mut hash = Sha256::new();
    hash.update(b"mm-ofrep-etag-v1\0");
    for flag in flags {
        let without_token = Flag {
            metadata: Metadata {
                token: None,
                ..flag.metadata.clone()
            },
            ..flag.clone()
        };
        hash.update(serde_json::to_vec(&without_token).unwrap_or_default());
        hash.update(b"\0");
    }
    hash.update(serde_json::to_vec(context).unwrap_or_default());
    match held {
        Some(state) => {
            hash.update([1]);
            hash.update(state.to_image());
        }
        None => hash.update([0]),
    }
    let digest = hash.finalize();
    let mut tag = String::with_capacity(36);
    tag.push_str("W/\"");
    for byte in digest.iter().take(16) {
        tag.push_str(&format!("{byte:02x}"));
    }
    tag.push('"');
    tag
}

/// Whether an `If-None-Match` header names `etag` (weak comparison, any of a list). `*`
/// names no answer here: an evaluation is not a resource that exists or not, and a
/// client that sent it would never get its flags.
pub fn matches(if_none_match: &str, etag: &str) -> bool {
    let bare = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
    let wanted = bare(etag);
    if_none_match.split(',').any(|given| bare(given) == wanted)
}

/// Whether a bulk evaluation that [`matches`] may be answered `304`: not when the token
/// it came with is due for renewal ([`RENEW_AFTER_SECS`]). A poll that would get the
/// same flags is not the person's activity: it counts nothing, not even the new visit
/// an app left open past a visit's idle time would start (a new visit that changes the
/// flags does not match, and counts).
pub fn may_answer_unchanged(prior: Option<&State>, now: i64) -> bool {
    prior.is_none_or(|prior| now - prior.issued_at < RENEW_AFTER_SECS)
}

/// A failure's body, as OFREP writes one (`key` for a single flag's).
pub fn failure_body(key: Option<&str>, failure: &Failure) -> Json {
    let mut body = Map::new();
    if let Some(key) = key {
        body.insert("key".into(), Json::String(key.to_owned()));
    }
    body.insert(
        "errorCode".into(),
        serde_json::to_value(failure.code).unwrap_or(Json::Null),
    );
    body.insert("errorDetails".into(), Json::String(failure.details.clone()));
    Json::Object(body)
}

/// The evaluation context's names an app may set, for docs and tests: every fixed name
/// that is a field of the context.
pub fn settable() -> Vec<&'static str> {
    let mut context = Context::default();
    let mut names: Vec<&'static str> = FIXED_VARIABLES
        .iter()
        .filter(|(_, var)| {
            matches!(
                context.field_mut(var),
                Some(
                    FieldMut::Text(_)
                        | FieldMut::Number(_)
                        | FieldMut::Flag(_)
                        | FieldMut::Keyword(_)
                        | FieldMut::Channel(_)
                )
            )
        })
        .map(|(name, _)| *name)
        .collect();
    names.sort_unstable();
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::DeviceType;

    fn applied(body: &str, endpoint: Endpoint, token: bool) -> Result<Context, Failure> {
        let mut context = Context::default();
        context.page.path = Some("/ofrep/v1/evaluate/flags".into());
        context.utm.source = Some("x".into());
        context.device.kind = Some(DeviceType::Desktop);
        apply(body.as_bytes(), &mut context, endpoint, token).map(|()| context)
    }

    #[test]
    fn flat_and_nested_names_set_the_same_fields() {
        let flat = applied(
            r#"{"context": {"targetingKey": "u1", "geo.country": "FR", "geo.lat": 48.85,
                "device.type": "mobile", "app.version": "4.2.0", "page.path": "/models/suv",
                "page.query.q": "suv", "consent.personalization": true, "email": "a@b.c"}}"#,
            Endpoint::Bulk,
            true,
        )
        .unwrap();
        let nested = applied(
            r#"{"context": {"geo": {"country": "FR", "lat": "48.85"}, "device": {"type": "mobile"},
                "app": {"version": "4.2.0"}, "page": {"path": "/models/suv", "query": {"q": "suv"}},
                "consent": {"personalization": true}}}"#,
            Endpoint::Bulk,
            true,
        )
        .unwrap();
        assert_eq!(flat, nested);
        assert_eq!(flat.geo.country.as_deref(), Some("FR"));
        assert_eq!(flat.geo.lat, Some(48.85));
        assert_eq!(flat.device.kind, Some(DeviceType::Mobile));
        assert_eq!(flat.page.path.as_deref(), Some("/models/suv"));
        assert_eq!(flat.page.query.get("q").map(String::as_str), Some("suv"));
        // The URL's parts are the protocol's: cleared, and the channel is the app's.
        assert_eq!(flat.utm.source, None);
        assert_eq!(flat.channel, Channel::App);
    }

    #[test]
    fn wrong_types_are_invalid_context_naming_the_property() {
        for (body, named) in [
            (r#"{"context": {"geo.lat": "north"}}"#, "geo.lat: a number"),
            (
                r#"{"context": {"device.type": "fridge"}}"#,
                "device.type: one of",
            ),
            (
                r#"{"context": {"channel": "email"}}"#,
                "channel: app or web",
            ),
            (
                r#"{"context": {"consent.personalization": "yes"}}"#,
                "true or false",
            ),
            (
                r#"{"context": {"geo.city": ["Paris"]}}"#,
                "geo.city: a string",
            ),
            (r#"{"context": "FR"}"#, "context: an object"),
        ] {
            let failure = applied(body, Endpoint::Bulk, false).unwrap_err();
            assert_eq!(failure.code, ErrorCode::InvalidContext, "{body}");
            assert!(
                failure.details.contains(named),
                "{body}: {}",
                failure.details
            );
        }
        for body in ["", "[1]", "{\"context\":", "null"] {
            let failure = applied(body, Endpoint::Bulk, false).unwrap_err();
            assert_eq!(failure.code, ErrorCode::ParseError, "{body:?}");
        }
    }

    #[test]
    fn huge_and_deep_contexts_are_refused() {
        let many: Vec<String> = (0..=MAX_CONTEXT_PROPERTIES)
            .map(|i| format!("\"k{i}\": {i}"))
            .collect();
        let body = format!("{{\"context\": {{{}}}}}", many.join(","));
        let failure = applied(&body, Endpoint::Bulk, false).unwrap_err();
        assert!(failure.details.contains("more than"), "{}", failure.details);
        let deep = r#"{"context": {"a": {"b": {"c": {"d": {"e": 1}}}}}}"#;
        assert_eq!(
            applied(deep, Endpoint::Bulk, false).unwrap_err().code,
            ErrorCode::InvalidContext
        );
        let long = format!(
            "{{\"context\": {{\"geo.city\": \"{}\"}}}}",
            "é".repeat(3000)
        );
        let context = applied(&long, Endpoint::Bulk, false).unwrap();
        assert!(context.geo.city.unwrap().len() <= MAX_HEADER);
    }

    #[test]
    fn an_event_counts_only_on_a_bulk_evaluation_from_an_app() {
        let body = r#"{"context": {"event": "test_drive_booked"}}"#;
        let event = |endpoint, token| applied(body, endpoint, token).unwrap().event;
        assert_eq!(
            event(Endpoint::Bulk, true).as_deref(),
            Some("test_drive_booked")
        );
        assert_eq!(event(Endpoint::Bulk, false), None);
        assert_eq!(event(Endpoint::Single, true), None);
    }

    #[test]
    fn a_refusal_of_personalization_is_never_granted_back() {
        let mut context = Context::default();
        context.consent.personalization = Some(false);
        let body = br#"{"context": {"consent.personalization": true}}"#;
        apply(body, &mut context, Endpoint::Bulk, true).unwrap();
        assert_eq!(context.consent.personalization, Some(false));
    }

    #[test]
    fn if_none_match_compares_weakly_and_in_lists() {
        let tag = "W/\"abc\"";
        assert!(matches("W/\"abc\"", tag));
        assert!(matches("\"abc\"", tag));
        assert!(matches("\"x\", W/\"abc\"", tag));
        assert!(!matches("*", tag), "`*` would starve a client of its flags");
        assert!(!matches("W/\"abd\"", tag));
        assert!(!matches("", tag));
    }

    #[test]
    fn the_settable_names_are_the_context_fields_of_the_table() {
        let names = settable();
        for name in [
            "geo.country",
            "device.type",
            "app.version",
            "page.path",
            "channel",
        ] {
            assert!(names.contains(&name), "{name}");
        }
        for name in ["stage", "visits", "intent", "time.hour", "segments"] {
            assert!(!names.contains(&name), "{name}");
        }
    }
}
