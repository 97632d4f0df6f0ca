//! Delivering fired triggers (docs/triggers.md), the request's part: one [`Delivery`] per
//! trigger and destination, with a stable id and the body every destination gets, and
//! what a request's events cancel of what waits. How each kind of destination is then
//! called is `crate::destination`'s. The Worker enqueues the deliveries and its queue
//! handler makes the calls.
//!
//! The message id is a hash of the trigger, the person (profile and device), the
//! destination, the time it fired and how many times it had fired for this device, so
//! a redelivery (a retry, a replay of the queue) carries the same `webhook-id` and
//! Segment `messageId`, and receivers count it once, while two fires in one second are
//! two messages.

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value as Json};
use sha2::{Digest, Sha256};

use crate::bundle::{Bundle, TriggerOn};
use crate::context::Context;
use crate::decide::{Decision, Fired};
use crate::destination::Delivery;
use crate::feed::{Cell, FeedSpec, Row};
use crate::ids::hex128_string;
use crate::rules::{Data, Value};
use crate::time::{rfc3339, UnixSeconds};

/// The deliveries of a request's fired triggers, in firing then destination order.
pub fn deliveries(bundle: &Bundle, decision: &Decision<'_>, ctx: &Context) -> Vec<Delivery> {
    let mut out = Vec::new();
    let state = &decision.state;
    let visitor = hex128_string(&state.visitor);
    let profile = state.link.map(|l| hex128_string(&l.profile));
    for fired in &decision.triggers {
        let body = body(bundle, decision, fired, ctx);
        let text = body.to_string();
        // How many times it has fired for this device, this one included.
        let fires = bundle
            .triggers
            .iter()
            .find(|t| t.name == fired.trigger)
            .and_then(|t| state.impressions.iter().find(|i| i.id == t.id))
            .map_or(0, |i| i.total);
        for name in &fired.send {
            let Some(destination) = bundle.destinations.iter().find(|d| d.name == *name) else {
                continue;
            };
            let person = [profile.as_deref().unwrap_or(""), visitor.as_str()];
            out.push(Delivery {
                id: message_id(fired.trigger, person, name, state.issued_at, fires),
                trigger: fired.trigger.to_owned(),
                visitor: visitor.clone(),
                profile: profile.clone(),
                destination: destination.name.clone(),
                kind: destination.kind,
                url_var: destination.url.clone(),
                secret_var: destination.secret.clone(),
                at: decision.state.issued_at,
                delay_secs: fired.delay_secs,
                unless: fired.unless.map(str::to_owned),
                body: text.clone(),
            });
        }
    }
    out
}

/// `msg_` and 24 hex digits of SHA-256 over the trigger, the person (profile, device),
/// the destination, the time and the fire's number for the device.
fn message_id(
    trigger: &str,
    [profile, visitor]: [&str; 2],
    destination: &str,
    at: UnixSeconds,
    fires: u32,
) -> String {
    let mut hash = Sha256::new();
    for part in [
        trigger,
        profile,
        visitor,
        destination,
        &at.to_string(),
        &fires.to_string(),
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let digest = hash.finalize();
    let mut id = String::from("msg_");
    for byte in digest.iter().take(12) {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// What a destination is told: the trigger, who (visitor, and profile once linked),
/// where they are in the journey (stage, intents by topic), and the request's channel,
/// device, country and time.
pub fn body(bundle: &Bundle, decision: &Decision<'_>, fired: &Fired<'_>, ctx: &Context) -> Json {
    let state = &decision.state;
    let mut intents = Map::new();
    for i in &state.intents {
        if let Some(topic) = bundle.topics.iter().find(|t| t.id == i.topic) {
            intents.insert(
                topic.name.clone(),
                json!((f64::from(i.score) * 100.0).round() / 100.0),
            );
        }
    }
    let mut body = json!({
        "type": "trigger",
        "trigger": fired.trigger,
        "visitor": hex128_string(&state.visitor),
        "stage": fired.stage,
        "intents": intents,
        "channel": ctx.channel.as_str(),
        "device": ctx.device.kind.map(crate::context::DeviceType::as_str),
        "country": ctx.geo.country,
        "bundle": bundle.id(),
        "at": rfc3339(state.issued_at),
    });
    if let (Some(link), Some(map)) = (state.link, body.as_object_mut()) {
        map.insert("profile".into(), json!(hex128_string(&link.profile)));
    }
    body
}

/// What a request cancels of a person's waiting (delayed) triggers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The request's events that some delayed trigger's `unless` names.
    pub events: Vec<String>,
    /// Everything waits no more: the person withdrew consent.
    #[serde(default)]
    pub all: bool,
}

impl Cancel {
    /// Whether it cancels nothing.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && !self.all
    }
}

/// What a request with these `events` cancels of what waits for the person.
///
/// `anywhere`: what waits may have been started elsewhere (a linked device's profile
/// holds what every device started), so every `unless` event of the request counts.
/// Otherwise only what the state itself says fired within its delay can be waiting
/// (a visitor's own object), so a request of someone with nothing waiting cancels
/// nothing and calls no object, whatever events it carries and however many new
/// visitors send them. A request that withdrew consent (`opted_out`) cancels all of
/// it.
pub fn cancelling<'a>(
    bundle: &Bundle,
    state: &crate::token::State,
    opted_out: bool,
    now: UnixSeconds,
    events: impl Iterator<Item = &'a str>,
    anywhere: bool,
) -> Cancel {
    let delayed = bundle.triggers.iter().filter(|t| t.delay.is_some());
    let waiting: Vec<&str> = delayed
        .filter(|t| {
            anywhere
                || state
                    .impressions
                    .iter()
                    .find(|i| i.id == t.id)
                    .is_some_and(|fired| {
                        now.saturating_sub(fired.last_shown) <= t.delay.unwrap_or(0)
                    })
        })
        .map(|t| t.unless.as_deref().unwrap_or(""))
        .collect();
    if waiting.is_empty() {
        return Cancel::default();
    }
    if opted_out {
        return Cancel {
            events: Vec::new(),
            all: true,
        };
    }
    let mut out: Vec<String> = Vec::new();
    for event in events {
        if !event.is_empty() && waiting.contains(&event) && !out.iter().any(|e| e == event) {
            out.push(event.to_owned());
        }
    }
    Cancel {
        events: out,
        all: false,
    }
}

/// A person watching a feed row (docs/feeds.md): who the feed's object tells when the
/// row changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watcher {
    /// The device, in hex.
    pub visitor: String,
    /// The person's profile, in hex, once linked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

/// A feed row as a feed trigger's rule reads it: variable `i` is column `i` (the key's
/// columns, then the fields); a row that is not there has null fields.
struct RowData<'r> {
    key: &'r [String],
    row: Option<&'r Row>,
    spec: &'r FeedSpec,
}

impl Data for RowData<'_> {
    type Var = u16;

    fn get(&self, var: &u16) -> Option<Value<'_>> {
        let i = usize::from(*var);
        if let Some(k) = self.key.get(i) {
            return Some(Value::str(k));
        }
        let field = u16::try_from(i.checked_sub(self.key.len())?).ok()?;
        Some(match self.row.map(|r| r.value(field)) {
            None | Some(Cell::Null) => Value::Null,
            Some(Cell::Number(n)) => Value::Number(*n),
            Some(Cell::Text(s)) => Value::str(s),
            Some(Cell::Flag(b)) => Value::Bool(*b),
        })
    }

    fn get_path(&self, path: &str) -> Option<Value<'_>> {
        self.get(&self.spec.column(path.strip_prefix("row.")?)?)
    }
}

/// Whether any trigger of the bundle listens to feed `feed`.
pub fn watched(bundle: &Bundle, feed: u16) -> bool {
    bundle
        .triggers
        .iter()
        .any(|t| matches!(t.on, TriggerOn::Feed { feed: f, .. } if f == feed))
}

/// What a change of a feed row sends: for each trigger on feed `feed` whose rule is
/// true of the new row and was not of the old one, one delivery per watcher and
/// destination (sent at once; a watch is used once). `now` is when the change was
/// folded in.
pub fn feed_deliveries(
    bundle: &Bundle,
    feed: u16,
    key: &[String],
    old: Option<&Row>,
    new: Option<&Row>,
    watchers: &[Watcher],
    now: UnixSeconds,
) -> Vec<Delivery> {
    let mut out = Vec::new();
    let Some(spec) = bundle.feeds.get(usize::from(feed)) else {
        return out;
    };
    let before = RowData {
        key,
        row: old,
        spec,
    };
    let after = RowData {
        key,
        row: new,
        spec,
    };
    for trigger in bundle.triggers.iter() {
        let TriggerOn::Feed { feed: f, when } = &trigger.on else {
            continue;
        };
        if *f != feed || !when.matches(&after) || when.matches(&before) {
            continue;
        }
        let row = |r: Option<&Row>| r.map_or(Json::Null, |r| r.to_json(spec));
        for watcher in watchers {
            let mut body = json!({
                "type": "trigger",
                "trigger": trigger.name,
                "visitor": watcher.visitor,
                "feed": spec.name,
                "key": spec.key.iter().zip(key).map(|(k, v)| (k.clone(), json!(v))).collect::<Map<_, _>>(),
                "row": row(new),
                "before": row(old),
                "bundle": bundle.id(),
                "at": rfc3339(now),
            });
            if let (Some(profile), Some(map)) = (&watcher.profile, body.as_object_mut()) {
                map.insert("profile".into(), json!(profile));
            }
            let text = body.to_string();
            for &d in trigger.send.iter() {
                let Some(destination) = bundle.destinations.get(usize::from(d)) else {
                    continue;
                };
                let person = [
                    watcher.profile.as_deref().unwrap_or(""),
                    watcher.visitor.as_str(),
                ];
                let about = format!("{}\u{1f}{}", destination.name, key.join("\u{1f}"));
                out.push(Delivery {
                    id: message_id(&trigger.name, person, &about, now, 0),
                    trigger: trigger.name.clone(),
                    visitor: watcher.visitor.clone(),
                    profile: watcher.profile.clone(),
                    destination: destination.name.clone(),
                    kind: destination.kind,
                    url_var: destination.url.clone(),
                    secret_var: destination.secret.clone(),
                    at: now,
                    delay_secs: None,
                    unless: None,
                    body: text.clone(),
                });
            }
        }
    }
    out
}
