//! Step 3 of a decision: the channel's rendition of each content shown, placeholders
//! filled from the request (HTML-escaped in `html`, bounded, and checked where they
//! could set a URL's scheme or make it scheme-relative).

use std::borrow::Cow;

use super::facts::{Facts, Journey, LazyTime};
use crate::bundle::{Bundle, Content, JsonTemplate, Piece, Template};
use crate::context::{Channel, Context};
use crate::rules::{Data, Value};
use crate::time::UnixSeconds;
use crate::token::State;

/// The renditions a channel gets: web and e-mail the HTML, apps and the store the JSON,
/// pushes the text (and the JSON, a push's payload); every channel the text. When the
/// channel's own rendition is missing, whatever the content has.
pub(crate) fn render<'b>(
    content: &'b Content,
    channel: Channel,
    facts: &Facts<'_>,
) -> (
    Option<Cow<'b, str>>,
    Option<serde_json::Value>,
    Option<Cow<'b, str>>,
) {
    let html_channel = matches!(channel, Channel::Web | Channel::Email);
    let json_channel = matches!(channel, Channel::App | Channel::Store | Channel::Push);
    let own_missing = match channel {
        Channel::Web | Channel::Email => content.html.is_none(),
        Channel::App | Channel::Store => content.json.is_none(),
        Channel::Push => content.text.is_none() && content.json.is_none(),
    };
    let want_html = html_channel || own_missing;
    let want_json = json_channel || own_missing;
    (
        content
            .html
            .as_ref()
            .filter(|_| want_html)
            .map(|t| render_template(t, facts, true)),
        content
            .json
            .as_ref()
            .filter(|_| want_json)
            .map(|t| render_json(t, facts)),
        content
            .text
            .as_ref()
            .map(|t| render_template(t, facts, false)),
    )
}

/// The longest value one placeholder renders: longer values (a crafted query string)
/// are cut at a character boundary.
pub const MAX_PLACEHOLDER_BYTES: usize = 1024;

/// The longest text a template renders to: past it, placeholders render empty, so a
/// request cannot blow a rendition up (a template of many `{{page.query.q}}`).
pub const MAX_RENDERED_BYTES: usize = 128 * 1024;

/// A template's text for this request: the bundle's own text when it has no
/// placeholder (most contents), a new string otherwise.
fn render_template<'t>(template: &'t Template, facts: &Facts<'_>, html: bool) -> Cow<'t, str> {
    match template.pieces.as_slice() {
        [] => return Cow::Borrowed(""),
        [Piece::Text(text)] => return Cow::Borrowed(text),
        _ => {}
    }
    let estimate: usize = template
        .pieces
        .iter()
        .map(|p| match p {
            Piece::Text(text) => text.len(),
            Piece::Var(_) | Piece::Url { .. } | Piece::RootPath { .. } => 16,
        })
        .sum();
    let mut out = String::with_capacity(estimate);
    for piece in &template.pieces {
        let (var, check) = match piece {
            Piece::Text(text) => {
                out.push_str(text);
                continue;
            }
            Piece::Var(var) => (var, UrlCheck::None),
            Piece::Url { var, at_start } => (
                var,
                UrlCheck::Scheme {
                    at_start: *at_start,
                },
            ),
            Piece::RootPath { var } => (var, UrlCheck::RootPath),
        };
        let value = facts.get(var).unwrap_or(Value::Null);
        if matches!(value, Value::Null) {
            continue;
        }
        let text = value.to_js_string();
        let text = truncate(&text, MAX_PLACEHOLDER_BYTES);
        if out.len().saturating_add(text.len()) > MAX_RENDERED_BYTES {
            continue;
        }
        let safe = match check {
            UrlCheck::None => true,
            UrlCheck::Scheme { at_start } => keeps_url_safe(text, at_start),
            UrlCheck::RootPath => keeps_path_rooted(text),
        };
        if !safe {
            continue;
        }
        if html {
            escape_html(text, &mut out);
        } else {
            out.push_str(text);
        }
    }
    Cow::Owned(out)
}

/// What a placeholder's value is checked for before it renders in a URL.
#[derive(Clone, Copy)]
enum UrlCheck {
    /// Not in a URL, or where the URL's scheme and host are fixed.
    None,
    /// Where it can set the URL's scheme.
    Scheme { at_start: bool },
    /// Right after the URL's lone leading `/` or `\`.
    RootPath,
}

/// Whether a value placed right after a URL's lone leading `/` (or `\`) keeps the URL
/// a path on the same host: a second `/` or `\` would make it scheme-relative
/// (`//evil.example/x`; browsers read `\` as `/`). Browsers drop tabs and newlines in
/// URLs, so the check does too.
fn keeps_path_rooted(value: &str) -> bool {
    !matches!(
        value.chars().find(|c| !matches!(c, '\t' | '\n' | '\r')),
        Some('/' | '\\')
    )
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or("")
}

/// Whether a value placed where it can set a URL's scheme keeps the URL relative, or,
/// when it starts the URL, http(s). Browsers ignore tabs and newlines in URLs and
/// leading spaces and control characters, so the check does too.
fn keeps_url_safe(value: &str, at_start: bool) -> bool {
    let value = if at_start {
        value.trim_start_matches(|c: char| c <= ' ')
    } else {
        value
    };
    let mut head = value
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .take_while(|c| !matches!(c, '/' | '?' | '#'));
    if !head.any(|c| c == ':') {
        return true;
    }
    let scheme: String = value
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .take(6)
        .collect::<String>()
        .to_ascii_lowercase();
    at_start && (scheme.starts_with("http:") || scheme.starts_with("https:"))
}

fn render_json(template: &JsonTemplate, facts: &Facts<'_>) -> serde_json::Value {
    match template {
        JsonTemplate::Null => serde_json::Value::Null,
        JsonTemplate::Bool(b) => serde_json::Value::Bool(*b),
        JsonTemplate::Number(n) => Value::Number(*n).to_json(),
        JsonTemplate::String(t) => {
            serde_json::Value::String(render_template(t, facts, false).into_owned())
        }
        JsonTemplate::Array(items) => {
            serde_json::Value::Array(items.iter().map(|i| render_json(i, facts)).collect())
        }
        JsonTemplate::Object(fields) => serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), render_json(v, facts)))
                .collect(),
        ),
    }
}

/// A content's rendition for previews (the coverage report): the HTML if it has one,
/// else the JSON, else the text, with placeholders filled from `ctx`.
pub fn render_preview(
    bundle: &Bundle,
    content: &Content,
    ctx: &Context,
    now: UnixSeconds,
) -> String {
    let prior = State::default();
    let time = LazyTime::new(now, ctx.geo.timezone.as_deref());
    let facts = Facts {
        bundle,
        ctx,
        prior: &prior,
        journey: Journey {
            stage: 0,
            since: now,
            visits: 1,
            generation: 0,
        },
        intents: &[],
        time: &time,
        now,
        feeds: None,
        store: std::cell::Cell::new(None),
        watching: false,
        looked: std::cell::RefCell::new(Vec::new()),
    };
    match (&content.html, &content.json, &content.text) {
        (Some(html), _, _) => render_template(html, &facts, true).into_owned(),
        (None, Some(json), _) => {
            let mut out = String::from("<pre>");
            escape_html(
                &serde_json::to_string_pretty(&render_json(json, &facts)).unwrap_or_default(),
                &mut out,
            );
            out.push_str("</pre>");
            out
        }
        (None, None, Some(text)) => {
            let mut out = String::from("<p>");
            escape_html(&render_template(text, &facts, false), &mut out);
            out.push_str("</p>");
            out
        }
        (None, None, None) => String::new(),
    }
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape_html(text: &str, out: &mut String) {
    // Most values (a city, a name) need no escaping: copy them whole.
    if !text
        .bytes()
        .any(|b| matches!(b, b'&' | b'<' | b'>' | b'"' | b'\''))
    {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}
