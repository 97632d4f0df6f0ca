//! `destinations` and `triggers` (docs/triggers.md): where the journey's moments are sent, and
//! which moments.

use serde_json::{Map, Value as Json};

use super::walker::{Index, Path, Walker};
use crate::bundle::model::{Destination, Trigger, TriggerOn};
use crate::bundle::{BundleSchema, Period};
use crate::destination::{
    is_destination_var, is_var_byte, same_destination, DestinationKind, DESTINATION_VAR_PREFIX,
    MAX_DESTINATION_VAR_BYTES,
};
use crate::ids::{stable_id, IdKind};
use crate::suggest::did_you_mean;

/// The most destinations a bundle declares.
pub(crate) const MAX_DESTINATIONS: usize = 16;
/// The most triggers a bundle declares.
pub(crate) const MAX_TRIGGERS: usize = 64;
/// The longest a trigger may wait: a delayed trigger waits in a Durable Object alarm.
pub(crate) const MAX_DELAY_SECS: i64 = 30 * crate::time::DAY;

/// Why `text` cannot be the `field` (`url` or `secret`) of a destination, if it cannot:
/// it must name a Worker var or secret meant for destinations (`is_destination_var`),
/// never hold a value. A value that is no name at all is quoted only in `url`: in
/// `secret` it may be the secret itself.
fn var_problem(text: &str, field: &str) -> Option<String> {
    if is_destination_var(text) {
        return None;
    }
    let example = match field {
        "url" => "MM_DEST_CRM_URL",
        _ => "MM_DEST_CRM_SECRET",
    };
    let quoted = match field {
        "url" => format!("\"{text}\""),
        _ => "this".to_owned(),
    };
    Some(if text.is_empty() || !text.bytes().all(is_var_byte) {
        format!("{quoted} is not the name of a Worker var or secret ({DESTINATION_VAR_PREFIX} then A-Z, 0-9, _; e.g. {example}): a destination names where its {field} is set, never the value")
    } else if !text.starts_with(DESTINATION_VAR_PREFIX) {
        format!("\"{text}\" does not start with {DESTINATION_VAR_PREFIX}: a destination names only the Worker vars and secrets meant for destinations (e.g. {example}), so no bundle can send another secret of the Worker")
    } else {
        format!("\"{text}\" is {} bytes: a destination var is {DESTINATION_VAR_PREFIX} and a name, {} to {MAX_DESTINATION_VAR_BYTES} bytes (e.g. {example})", text.len(), DESTINATION_VAR_PREFIX.len() + 1)
    })
}

/// `destinations`: `{"crm": {"kind": "webhook", "url": "MM_DEST_CRM_URL", "secret":
/// "MM_DEST_CRM_SECRET"}}`, in name order.
pub(super) fn destinations(
    w: &mut Walker<'_>,
    map: &Map<String, Json>,
    path: &Path,
) -> Vec<Destination> {
    if map.len() > MAX_DESTINATIONS {
        w.report(
            path,
            format!(
                "{} destinations are over the limit of {MAX_DESTINATIONS}",
                map.len()
            ),
        );
    }
    let mut out = Vec::new();
    for (name, value) in map {
        let path = path.key(name);
        let Some(fields) = w.object(value, &path, &["kind", "url", "secret", "description"]) else {
            continue;
        };
        w.string(fields.get("description"), &path.key("description"), false);
        let kind = match w.string(fields.get("kind"), &path.key("kind"), true) {
            Some(name) => {
                let kind = DestinationKind::named(name);
                if kind.is_none() {
                    let names = DestinationKind::ALL.iter().map(|k| k.as_str());
                    let hint = crate::suggest::hint(did_you_mean(name, names));
                    let choices = DestinationKind::choices();
                    w.report(
                        &path.key("kind"),
                        format!("unknown destination kind \"{name}\"{hint}: use {choices}"),
                    );
                }
                kind
            }
            None => None,
        };
        let url_required = kind.is_some_and(DestinationKind::needs_url);
        let var = |w: &mut Walker<'_>, field: &str, required: bool| {
            let text = w.string(fields.get(field), &path.key(field), required)?;
            match var_problem(text, field) {
                None => Some(text.to_owned()),
                Some(problem) => {
                    w.report(&path.key(field), problem);
                    None
                }
            }
        };
        let url = var(w, "url", url_required);
        let mut secret = var(w, "secret", true);
        if let (Some(url), Some(name)) = (&url, &secret) {
            if !same_destination(url, name) {
                w.report(
                    &path.key("secret"),
                    format!("\"{name}\" and the url \"{url}\" are not one destination's vars: a destination's url and secret share their name up to the last _ (e.g. MM_DEST_CRM_URL and MM_DEST_CRM_SECRET), so no bundle can send one destination's secret to another's URL"),
                );
                secret = None;
            }
        }
        if url_required && url.is_none() {
            continue;
        }
        if let (Some(kind), Some(secret)) = (kind, secret) {
            out.push(Destination {
                name: name.clone(),
                kind,
                url,
                secret,
            });
        }
    }
    out
}

/// What the triggers refer to.
pub(super) struct Refs<'a, 'n> {
    pub stages: &'a Index<'n>,
    pub destinations: &'a Index<'n>,
    /// Destinations declared but refused (their errors already reported).
    pub refused_destinations: &'a [&'n str],
    /// The stages some transition can move to (the first stage is where everyone starts).
    pub entered: &'a [bool],
    pub schema: &'a BundleSchema<'a>,
    /// The feeds declared.
    pub feeds: &'a [crate::feed::FeedSpec],
}

/// What a feed trigger's rule reads: `row.<column>` of the row that changed (its key
/// columns, then its fields, by index).
pub(crate) struct RowSchema<'a> {
    pub spec: &'a crate::feed::FeedSpec,
}

impl RowSchema<'_> {
    /// The column index of `row.<name>`.
    pub(crate) fn column(&self, path: &str) -> Option<u16> {
        self.spec.column(path.strip_prefix("row.")?)
    }
}

impl crate::rules::Schema for RowSchema<'_> {
    type Var = u16;

    fn resolve(&self, path: &str) -> Result<u16, crate::rules::UnknownVariable> {
        self.column(path).ok_or_else(|| {
            let names: Vec<String> = self.spec.columns().map(|c| format!("row.{c}")).collect();
            crate::rules::UnknownVariable {
                suggestion: crate::suggest::did_you_mean(path, names.iter().map(String::as_str))
                    .map(str::to_owned),
            }
        })
    }

    fn bound(&self, _var: &u16) -> crate::rules::VarBound {
        // A key or a text field: at most 256 bytes (`feed::rows`).
        crate::rules::VarBound::text(256)
    }

    fn any_bound(&self) -> crate::rules::VarBound {
        crate::rules::VarBound::text(256)
    }
}

/// `triggers`: an array of `{"id", "on", "send", "cap"?, "delay"?, "unless"?}`.
pub(super) fn triggers(
    w: &mut Walker<'_>,
    value: Option<&Json>,
    path: &Path,
    refs: &Refs<'_, '_>,
) -> Vec<Trigger> {
    let Some(value) = value else {
        return Vec::new();
    };
    let items = w.array(value, path, MAX_TRIGGERS, "triggers");
    let mut out: Vec<Trigger> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = path.index(i);
        let Some(fields) = w.object(
            item,
            &path,
            &["id", "on", "send", "cap", "delay", "unless", "description"],
        ) else {
            continue;
        };
        w.string(fields.get("description"), &path.key("description"), false);
        let name = w.string(fields.get("id"), &path.key("id"), true);
        if let Some(name) = name {
            if names.contains(&name) {
                w.report(
                    &path.key("id"),
                    format!("trigger \"{name}\" is declared twice"),
                );
            }
            names.push(name);
        }
        let on = moment(w, fields.get("on"), &path.key("on"), refs);
        if matches!(on, Some(TriggerOn::Feed { .. })) {
            if let Some(extra) = ["delay", "unless", "cap"]
                .into_iter()
                .find(|k| fields.contains_key(*k))
            {
                w.report(
                    &path.key(extra),
                    "a feed trigger is sent when its row changes, once to each person watching the row: it takes no `delay`, `unless` or `cap`",
                );
                continue;
            }
        }
        let send = sends(w, fields.get("send"), &path.key("send"), refs);
        let cap = match fields.get("cap") {
            Some(cap) => w.cap(cap, &path.key("cap")).map(Some),
            None => Some(None),
        };
        let delay = match fields.get("delay") {
            None => Some(None),
            Some(value) => delay(w, value, &path.key("delay")),
        };
        let unless = match fields.get("unless") {
            None => Some(None),
            Some(value) => unless(w, value, &path.key("unless")),
        };
        if let (Some(Some(_)), Some(None)) = (&unless, &delay) {
            w.report(
                &path.key("unless"),
                "`unless` needs a `delay`: without one the trigger is sent at once, before any later event could cancel it",
            );
            continue;
        }
        if let (Some(name), Some(on), Some(send), Some(cap), Some(delay), Some(unless)) =
            (name, on, send, cap, delay, unless)
        {
            out.push(Trigger {
                name: name.to_owned(),
                id: stable_id(IdKind::Trigger, name),
                on,
                delay,
                unless,
                send: send.into(),
                cap,
            });
        }
    }
    out
}

/// `on`: `{"stage": S}`, `{"event": E}` or `{"when": RULE}`, exactly one.
fn moment(
    w: &mut Walker<'_>,
    value: Option<&Json>,
    path: &Path,
    refs: &Refs<'_, '_>,
) -> Option<TriggerOn> {
    let Some(value) = value else {
        w.report(
            path,
            "missing required field: {\"stage\": …}, {\"event\": …} or {\"when\": …}",
        );
        return None;
    };
    let fields = w.object(value, path, &["stage", "event", "when", "feed"])?;
    if let Some(feed) = fields.get("feed") {
        let name = w.string(Some(feed), &path.key("feed"), true)?;
        let Some((i, spec)) = refs.feeds.iter().enumerate().find(|(_, f)| f.name == name) else {
            let names: Vec<&str> = refs.feeds.iter().map(|f| f.name.as_str()).collect();
            let hint = crate::suggest::hint(crate::suggest::did_you_mean(name, names));
            w.report(&path.key("feed"), format!("unknown feed \"{name}\"{hint}"));
            return None;
        };
        let Some(rule) = fields.get("when") else {
            w.report(
                path,
                "a feed trigger names its rule over the changed row: {\"feed\": …, \"when\": …}",
            );
            return None;
        };
        if fields.len() != 2 {
            w.report(
                path,
                "a feed trigger is {\"feed\": …, \"when\": …}, nothing else",
            );
            return None;
        }
        let when = w.rule(rule, &path.key("when"), &RowSchema { spec })?;
        return Some(TriggerOn::Feed {
            feed: u16::try_from(i).ok()?,
            when,
        });
    }
    if fields.len() != 1 {
        w.report(
            path,
            "name exactly one moment: {\"stage\": …}, {\"event\": …} or {\"when\": …}",
        );
        return None;
    }
    if let Some(stage) = fields.get("stage") {
        let at = w.reference(Some(stage), &path.key("stage"), refs.stages)?;
        if !refs.entered.get(usize::from(at)).copied().unwrap_or(false) {
            w.report(
                &path.key("stage"),
                "no transition leads to this stage, so no visitor ever enters it: the trigger can never fire",
            );
            return None;
        }
        return Some(TriggerOn::Stage(at));
    }
    if let Some(event) = fields.get("event") {
        let name = w.string(Some(event), &path.key("event"), true)?;
        if name.len() > 128 {
            w.report(
                &path.key("event"),
                "an event name is at most 128 bytes, as events are",
            );
            return None;
        }
        return Some(TriggerOn::Event(name.to_owned()));
    }
    let rule = fields.get("when")?;
    w.rule(rule, &path.key("when"), refs.schema)
        .map(TriggerOn::When)
}

fn sends(
    w: &mut Walker<'_>,
    value: Option<&Json>,
    path: &Path,
    refs: &Refs<'_, '_>,
) -> Option<Vec<u16>> {
    let Some(value) = value else {
        w.report(path, "missing required field: the destinations to send to");
        return None;
    };
    let items = w.array(value, path, MAX_DESTINATIONS, "destinations");
    if items.is_empty() {
        w.report(path, "name at least one destination");
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        // A destination that is declared but refused has its own error already.
        if item
            .as_str()
            .is_some_and(|name| refs.refused_destinations.contains(&name))
        {
            ok = false;
            continue;
        }
        match w.reference(Some(item), &path.index(i), refs.destinations) {
            Some(d) if !out.contains(&d) => out.push(d),
            Some(_) => {
                w.report(&path.index(i), "this destination is named twice");
                ok = false;
            }
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn delay(w: &mut Walker<'_>, value: &Json, path: &Path) -> Option<Option<i64>> {
    let text = w.string(Some(value), path, true)?;
    // Seconds too, for delays only: a wait of 30s is a real use (and a test's).
    let seconds = text
        .strip_suffix('s')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n > 0 && !text.starts_with('0') && !text.starts_with('+'))
        .map(Period::Seconds);
    match seconds.or_else(|| Period::parse(text)) {
        Some(Period::Seconds(s)) if s <= MAX_DELAY_SECS => Some(Some(s)),
        Some(Period::Seconds(_)) => {
            w.report(path, "a delay is at most 30d");
            None
        }
        _ => {
            w.report(
                path,
                format!(
                    "\"{text}\" is not a delay: use a count and a unit such as 30s, 30m, 12h, 7d"
                ),
            );
            None
        }
    }
}

/// `unless`: `{"event": E}`.
fn unless(w: &mut Walker<'_>, value: &Json, path: &Path) -> Option<Option<String>> {
    let fields = w.object(value, path, &["event"])?;
    let event = w.string(fields.get("event"), &path.key("event"), true)?;
    Some(Some(event.to_owned()))
}
