//! The content bank, campaigns and goals.

use serde_json::{Map, Value as Json};

use super::super::model::*;
use super::super::BundleSchema;
use super::walker::{Path, Walker};
use crate::ids::{stable_id, IdKind};

pub(super) fn content(
    w: &mut Walker<'_>,
    name: &str,
    value: &Json,
    path: &Path,
    schema: &BundleSchema<'_>,
) -> Option<Content> {
    let map = w.object(value, path, &["html", "json", "text", "description"])?;
    w.string(map.get("description"), &path.key("description"), false);
    if !map.contains_key("html") && !map.contains_key("json") && !map.contains_key("text") {
        w.report(
            path,
            "a content needs at least one rendition: html, json or text",
        );
        return None;
    }
    let html = w
        .string(map.get("html"), &path.key("html"), false)
        .and_then(|s| w.template(s, &path.key("html"), schema, true));
    let text = w
        .string(map.get("text"), &path.key("text"), false)
        .and_then(|s| w.template(s, &path.key("text"), schema, false));
    let json = map
        .get("json")
        .and_then(|j| w.json_template(j, &path.key("json"), schema, 0));
    Some(Content {
        name: name.to_owned(),
        id: stable_id(IdKind::Content, name),
        html,
        json,
        text,
        cap_period: None,
        prerequisite: false,
    })
}

/// `campaigns`: a shared cap per name.
pub(super) fn campaigns(
    w: &mut Walker<'_>,
    campaigns: &Map<String, Json>,
    path: &Path,
) -> Vec<Campaign> {
    campaigns
        .iter()
        .filter_map(|(name, value)| {
            let path = path.key(name);
            let map = w.object(value, &path, &["cap", "description", "schedule"])?;
            w.string(map.get("description"), &path.key("description"), false);
            let Some(cap) = map.get("cap") else {
                w.report(&path.key("cap"), "missing required field");
                return None;
            };
            let cap = w.cap(cap, &path.key("cap"));
            let schedule = match map.get("schedule") {
                None => Some(None),
                Some(s) => w.schedule(s, &path.key("schedule")).map(Some),
            };
            Some(Campaign {
                name: name.clone(),
                id: stable_id(IdKind::Campaign, name),
                cap: cap?,
                schedule: schedule?,
            })
        })
        .collect()
}

/// `goals`: `{"purchase": {"event": "order_completed", "value": true}}`. A JSON object
/// cannot hold a name twice, so goal names are unique by construction.
pub(super) fn goals(w: &mut Walker<'_>, value: Option<&Json>, path: &Path) -> Vec<Goal> {
    let Some(map) = w.named(value, path, false) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, goal) in map {
        let path = path.key(name);
        let Some(fields) = w.object(goal, &path, &["event", "value", "description"]) else {
            continue;
        };
        w.string(fields.get("description"), &path.key("description"), false);
        let event = w.string(fields.get("event"), &path.key("event"), true);
        let value = w.flag(fields.get("value"), &path.key("value"));
        if name.is_empty() {
            w.report(&path, "a goal name must not be empty");
            continue;
        }
        if let (Some(event), Some(value)) = (event, value) {
            out.push(Goal {
                name: name.clone(),
                event: event.to_owned(),
                value,
            });
        }
    }
    out
}
