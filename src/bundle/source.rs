//! Authoring JSON → compiled [`Bundle`]: validation and lowering in one walk.
//!
//! The walk never stops at the first problem: it reports every one it finds, each with
//! its JSON path (later mapped to line:column) and a did-you-mean where a name is close
//! to a known one. Only a bundle without a single diagnostic is lowered.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde_json::{Map, Value as Json};

use super::html_context::{self, Placement};
use super::locate::{locate, Step};
use super::model::*;
use super::{Budget, BundleSchema, Diagnostic};
use crate::bucket;
use crate::context::VarId;
use crate::ids::{stable_id, IdKind};
use crate::rules::{self, Limits, Schema};
use crate::suggest::did_you_mean;

/// A path into the authoring document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Path(Vec<Step>);

impl Path {
    fn key(&self, key: &str) -> Path {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        Path(steps)
    }

    fn index(&self, i: usize) -> Path {
        let mut steps = self.0.clone();
        steps.push(Step::Index(i));
        Path(steps)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(k) if is_plain(k) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    f.write_str(k)?;
                }
                Step::Key(k) => write!(f, "[{}]", Json::String(k.clone()))?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Walker<'s> {
    source: &'s str,
    budget: Budget,
    diagnostics: Vec<Diagnostic>,
}

impl Walker<'_> {
    fn report(&mut self, path: &Path, message: impl Into<String>) {
        let (line, column) = locate(self.source, &path.0);
        self.diagnostics.push(Diagnostic {
            path: path.to_string(),
            message: message.into(),
            line,
            column,
        });
    }

    fn object<'v>(
        &mut self,
        value: &'v Json,
        path: &Path,
        known: &[&str],
    ) -> Option<&'v Map<String, Json>> {
        let Some(map) = value.as_object() else {
            self.report(path, format!("expected an object, found {}", kind(value)));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let hint = did_you_mean(key, known.iter().copied())
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                self.report(&path.key(key), format!("unknown field \"{key}\"{hint}"));
            }
        }
        Some(map)
    }

    fn string<'v>(
        &mut self,
        value: Option<&'v Json>,
        path: &Path,
        required: bool,
    ) -> Option<&'v str> {
        match value {
            Some(Json::String(s)) if s.len() > self.budget.max_string_bytes => {
                self.report(
                    path,
                    format!(
                        "string of {} bytes is over the {} byte budget (max_string_bytes)",
                        s.len(),
                        self.budget.max_string_bytes
                    ),
                );
                None
            }
            Some(Json::String(s)) if s.is_empty() && required => {
                self.report(path, "must not be empty");
                None
            }
            Some(Json::String(s)) => Some(s),
            Some(other) => {
                self.report(path, format!("expected a string, found {}", kind(other)));
                None
            }
            None if required => {
                self.report(path, "missing required field");
                None
            }
            None => None,
        }
    }

    fn number(&mut self, value: Option<&Json>, path: &Path) -> Option<f64> {
        match value? {
            Json::Number(n) => n.as_f64(),
            other => {
                self.report(path, format!("expected a number, found {}", kind(other)));
                None
            }
        }
    }

    fn array<'v>(
        &mut self,
        value: &'v Json,
        path: &Path,
        max: usize,
        budget_name: &str,
    ) -> &'v [Json] {
        match value {
            Json::Array(items) if items.len() > max => {
                self.report(
                    path,
                    format!(
                        "{} items are over the budget of {max} ({budget_name})",
                        items.len()
                    ),
                );
                &[]
            }
            Json::Array(items) => items,
            other => {
                self.report(path, format!("expected an array, found {}", kind(other)));
                &[]
            }
        }
    }

    /// Resolves a name among `names`, reporting an unknown one with a suggestion.
    fn name_index(&mut self, name: &str, names: &[&str], what: &str, path: &Path) -> Option<u16> {
        match names.iter().position(|n| *n == name) {
            Some(i) => u16::try_from(i).ok(),
            None => {
                let hint = did_you_mean(name, names.iter().copied())
                    .map(|s| format!(" (did you mean \"{s}\"?)"))
                    .unwrap_or_default();
                self.report(path, format!("unknown {what} \"{name}\"{hint}"));
                None
            }
        }
    }

    fn rule(&mut self, value: &Json, path: &Path, schema: &BundleSchema<'_>) -> Option<Condition> {
        let limits = Limits {
            max_depth: self.budget.max_rule_depth,
            max_nodes: self.budget.max_rule_nodes,
            check_cost: true,
        };
        match rules::compile(value, schema, limits) {
            Ok(rule) => Some(rule),
            Err(e) => {
                let (line, column) = locate(self.source, &path.0);
                let inner = if e.path.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}.{}", e.path)
                };
                self.diagnostics.push(Diagnostic {
                    path: inner,
                    message: e.kind.to_string(),
                    line,
                    column,
                });
                None
            }
        }
    }

    /// A rendition's text split at its placeholders. In an `html` rendition each
    /// placeholder must sit where an escaped value stays text (`html_context`).
    fn template(
        &mut self,
        text: &str,
        path: &Path,
        schema: &BundleSchema<'_>,
        html: bool,
    ) -> Option<Template> {
        let mut pieces = Vec::new();
        // Each placeholder's name and the offset of its `{{` in `text`.
        let mut placeholders: Vec<(usize, &str)> = Vec::new();
        let mut rest = text;
        let mut ok = true;
        while let Some(open) = rest.find("{{") {
            let (before, after) = rest.split_at(open);
            if !before.is_empty() {
                pieces.push(Piece::Text(before.to_owned()));
            }
            let offset = text.len() - rest.len() + open;
            let after = after.get(2..).unwrap_or("");
            let Some(close) = after.find("}}") else {
                self.report(path, "unclosed placeholder \"{{\"");
                return None;
            };
            let name = after.get(..close).unwrap_or("").trim();
            match schema.resolve(name) {
                Ok(var) => {
                    pieces.push(Piece::Var(var));
                    placeholders.push((offset, name));
                }
                Err(unknown) => {
                    let hint = unknown
                        .suggestion
                        .map(|s| format!(" (did you mean \"{s}\"?)"))
                        .unwrap_or_default();
                    self.report(
                        path,
                        format!("placeholder names unknown variable \"{name}\"{hint}"),
                    );
                    ok = false;
                }
            }
            rest = after.get(close + 2..).unwrap_or("");
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_owned()));
        }
        if html && ok && !placeholders.is_empty() {
            let starts: Vec<usize> = placeholders.iter().map(|(start, _)| *start).collect();
            let placements = html_context::classify(text, &starts);
            let mut vars = pieces.iter_mut().filter(|p| matches!(p, Piece::Var(_)));
            for ((_, name), placement) in placeholders.iter().zip(placements) {
                let Some(piece) = vars.next() else { break };
                match placement {
                    Ok(Placement::Escaped) => {}
                    Ok(Placement::Url { at_start }) => {
                        if let Piece::Var(var) = piece {
                            *piece = Piece::Url {
                                var: var.clone(),
                                at_start,
                            };
                        }
                    }
                    Err(why) => {
                        self.report(
                            path,
                            format!(
                                "placeholder \"{name}\" {why}; placeholders go in text or quoted attribute values"
                            ),
                        );
                        ok = false;
                    }
                }
            }
        }
        ok.then_some(Template {
            pieces: pieces.into(),
        })
    }

    fn json_template(
        &mut self,
        value: &Json,
        path: &Path,
        schema: &BundleSchema<'_>,
        depth: usize,
    ) -> Option<JsonTemplate> {
        if depth > self.budget.max_rule_depth {
            self.report(
                path,
                format!("nested deeper than {} levels", self.budget.max_rule_depth),
            );
            return None;
        }
        Some(match value {
            Json::Null => JsonTemplate::Null,
            Json::Bool(b) => JsonTemplate::Bool(*b),
            Json::Number(n) => JsonTemplate::Number(n.as_f64().unwrap_or(0.0)),
            Json::String(s) => JsonTemplate::String(self.template(s, path, schema, false)?),
            Json::Array(items) => JsonTemplate::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| self.json_template(v, &path.index(i), schema, depth + 1))
                    .collect::<Option<_>>()?,
            ),
            Json::Object(map) => JsonTemplate::Object(
                map.iter()
                    .map(|(k, v)| {
                        Some((
                            k.clone(),
                            self.json_template(v, &path.key(k), schema, depth + 1)?,
                        ))
                    })
                    .collect::<Option<_>>()?,
            ),
        })
    }

    fn cap(&mut self, value: &Json, path: &Path) -> Option<Cap> {
        let map = self.object(value, path, &["max", "per"])?;
        let max = match map.get("max") {
            Some(Json::Number(n)) => n
                .as_u64()
                .filter(|m| *m >= 1)
                .and_then(|m| u32::try_from(m).ok()),
            _ => None,
        };
        if max.is_none() {
            self.report(
                &path.key("max"),
                "expected a whole number of impressions, at least 1",
            );
        }
        let per = match map.get("per") {
            Some(Json::String(s)) => {
                let period = Period::parse(s);
                if period.is_none() {
                    self.report(
                        &path.key("per"),
                        format!("\"{s}\" is not a period: use a count and a unit such as 30m, 12h, 7d, 2w, or lifetime"),
                    );
                }
                period
            }
            _ => {
                self.report(&path.key("per"), "expected a period such as 7d or lifetime");
                None
            }
        };
        Some(Cap {
            max: max?,
            per: per?,
        })
    }

    fn stage_list(&mut self, value: &Json, path: &Path, stages: &[&str]) -> Option<u64> {
        let items = self.array(value, path, 64, "max_stages");
        let mut mask = 0u64;
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.string(Some(item), &path.index(i), true) {
                Some(name) => match self.name_index(name, stages, "stage", &path.index(i)) {
                    Some(s) => mask |= 1u64 << s,
                    None => ok = false,
                },
                None => ok = false,
            }
        }
        ok.then_some(mask)
    }
}

fn kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Validates an authoring document and lowers it; every problem is reported.
pub(crate) fn compile(source: &str, budget: Budget) -> Result<Bundle, Vec<Diagnostic>> {
    if source.len() > budget.max_source_bytes {
        return Err(vec![Diagnostic {
            path: String::new(),
            message: format!(
                "bundle source is {} bytes, over the budget of {} (max_source_bytes)",
                source.len(),
                budget.max_source_bytes
            ),
            line: 1,
            column: 1,
        }]);
    }
    let document: Json = serde_json::from_str(source).map_err(|e| {
        vec![Diagnostic {
            path: String::new(),
            message: format!("not valid JSON: {}", strip_position(&e.to_string())),
            line: e.line(),
            column: e.column(),
        }]
    })?;
    let mut walker = Walker {
        source,
        budget,
        diagnostics: Vec::new(),
    };
    let bundle = lower(&mut walker, &document);
    match bundle {
        Some(bundle) if walker.diagnostics.is_empty() => Ok(bundle),
        _ => {
            if walker.diagnostics.is_empty() {
                walker.report(&Path::default(), "bundle is invalid");
            }
            Err(walker.diagnostics)
        }
    }
}

fn strip_position(message: &str) -> &str {
    message.split(" at line ").next().unwrap_or(message)
}

const TOP_KEYS: &[&str] = &[
    "$schema",
    "id",
    "version",
    "description",
    "journey",
    "content",
    "slots",
    "campaigns",
    "goals",
];
const CANDIDATE_KEYS: &[&str] = &[
    "id",
    "content",
    "experiment",
    "priority",
    "stages",
    "when",
    "cap",
    "after",
    "campaign",
    "description",
];

fn lower(w: &mut Walker<'_>, document: &Json) -> Option<Bundle> {
    let root = Path::default();
    let top = w.object(document, &root, TOP_KEYS)?;
    let id = w
        .string(top.get("id"), &root.key("id"), true)
        .map(str::to_owned);
    let version = match top.get("version") {
        Some(Json::Number(n)) if n.as_u64().is_some() => n.as_u64(),
        _ => {
            w.report(&root.key("version"), "expected a whole number, at least 0");
            None
        }
    };
    w.string(top.get("description"), &root.key("description"), false);

    // Journey: stages first, since everything else refers to them.
    let journey_path = root.key("journey");
    let empty = Map::new();
    let journey = match top.get("journey") {
        Some(j) => w
            .object(j, &journey_path, &["stages", "transitions", "intents"])
            .unwrap_or(&empty),
        None => {
            w.report(&journey_path, "missing required field");
            &empty
        }
    };
    let stage_names = stages(w, journey.get("stages"), &journey_path.key("stages"));
    let stage_refs: Vec<&str> = stage_names.iter().map(String::as_str).collect();

    // Names of contents, topics and campaigns, needed to resolve rules and references.
    let content_path = root.key("content");
    let content_map = match top.get("content") {
        Some(Json::Object(map)) => Some(map),
        Some(other) => {
            w.report(
                &content_path,
                format!("expected an object, found {}", kind(other)),
            );
            None
        }
        None => {
            w.report(&content_path, "missing required field");
            None
        }
    };
    let content_map = content_map.unwrap_or(&empty);
    if content_map.len() > w.budget.max_contents {
        w.report(
            &content_path,
            format!(
                "{} contents are over the budget of {} (max_contents)",
                content_map.len(),
                w.budget.max_contents
            ),
        );
    }
    let content_names: Vec<&str> = content_map.keys().map(String::as_str).collect();
    let intents_path = journey_path.key("intents");
    let intents_map = match journey.get("intents") {
        Some(Json::Object(map)) => map,
        Some(other) => {
            w.report(
                &intents_path,
                format!("expected an object, found {}", kind(other)),
            );
            &empty
        }
        None => &empty,
    };
    let topic_names: Vec<&str> = intents_map.keys().map(String::as_str).collect();
    let campaigns_path = root.key("campaigns");
    let campaigns_map = match top.get("campaigns") {
        Some(Json::Object(map)) => map,
        Some(other) => {
            w.report(
                &campaigns_path,
                format!("expected an object, found {}", kind(other)),
            );
            &empty
        }
        None => &empty,
    };
    let campaign_names: Vec<&str> = campaigns_map.keys().map(String::as_str).collect();
    let schema = BundleSchema {
        topics: &topic_names,
        contents: &content_names,
    };

    check_collisions(w, &stage_refs, IdKind::Stage, &journey_path.key("stages"));
    check_collisions(w, &content_names, IdKind::Content, &content_path);
    check_collisions(w, &topic_names, IdKind::Topic, &intents_path);
    check_collisions(w, &campaign_names, IdKind::Campaign, &campaigns_path);

    let transitions = transitions(
        w,
        journey.get("transitions"),
        &journey_path.key("transitions"),
        &stage_refs,
        &schema,
    );
    let topics = topics(w, intents_map, &intents_path, &schema);
    let campaigns: Vec<Campaign> = campaigns_map
        .iter()
        .filter_map(|(name, value)| {
            let path = campaigns_path.key(name);
            let map = w.object(value, &path, &["cap", "description"])?;
            w.string(map.get("description"), &path.key("description"), false);
            let Some(cap) = map.get("cap") else {
                w.report(&path.key("cap"), "missing required field");
                return None;
            };
            let cap = w.cap(cap, &path.key("cap"))?;
            Some(Campaign {
                name: name.clone(),
                id: stable_id(IdKind::Campaign, name),
                cap,
            })
        })
        .collect();

    let goals = goals(w, top.get("goals"), &root.key("goals"));

    let mut contents: Vec<Content> = content_map
        .iter()
        .filter_map(|(name, value)| content(w, name, value, &content_path.key(name), &schema))
        .collect();

    let slots = slots(
        w,
        top.get("slots"),
        &root.key("slots"),
        &stage_refs,
        &content_names,
        &campaign_names,
        &schema,
    );

    // Whatever lowered cleanly is checked further even when other parts did not, so one
    // run reports every problem.
    let slots = slots.unwrap_or_default();
    // Content facts derived from the slots: cap windows and sequence prerequisites.
    for slot in &slots {
        for candidate in &slot.candidates {
            for &c in &candidate.after {
                if let Some(content) = contents.get_mut(usize::from(c)) {
                    content.prerequisite = true;
                }
            }
            if let Some(cap) = candidate.cap {
                for c in offered(candidate) {
                    if let Some(content) = contents.get_mut(usize::from(c)) {
                        content.cap_period =
                            Some(content.cap_period.map_or(cap.per, |p| p.min(cap.per)));
                    }
                }
            }
        }
    }
    sequence_cycles(w, &slots, &content_names, &root.key("slots"));
    unreachable_candidates(w, &slots, document, &root.key("slots"));
    if !w.diagnostics.is_empty() {
        return None;
    }
    let mut content_order: Vec<u16> = (0..contents.len())
        .filter_map(|i| u16::try_from(i).ok())
        .collect();
    content_order.sort_by(|&a, &b| {
        let name = |i: u16| contents.get(usize::from(i)).map(|c| c.name.as_str());
        name(a).cmp(&name(b))
    });
    let bundle = Bundle {
        id: id?,
        version: version?,
        stages: stage_names
            .iter()
            .map(|name| Stage {
                name: name.clone(),
                id: stable_id(IdKind::Stage, name),
            })
            .collect(),
        transitions: transitions.into(),
        topics: topics.into(),
        contents: contents.into(),
        slots: slots.into(),
        campaigns: campaigns.into(),
        content_order: content_order.into(),
        goals: goals.into(),
    };
    if let Err(e) = bundle.check_work(&w.budget) {
        w.report(&root, e);
        return None;
    }
    Some(bundle)
}

/// `goals`: `{"purchase": {"event": "order_completed", "value": true}}`. A JSON object
/// cannot hold a name twice, so goal names are unique by construction.
fn goals(w: &mut Walker<'_>, value: Option<&Json>, path: &Path) -> Vec<Goal> {
    let Some(value) = value else {
        return Vec::new();
    };
    let Some(map) = value.as_object() else {
        w.report(path, format!("expected an object, found {}", kind(value)));
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
        let value = match fields.get("value") {
            None => Some(false),
            Some(Json::Bool(b)) => Some(*b),
            Some(other) => {
                w.report(
                    &path.key("value"),
                    format!("expected a boolean, found {}", kind(other)),
                );
                None
            }
        };
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

/// The contents a candidate may show.
pub(crate) fn offered(candidate: &Candidate) -> Vec<u16> {
    match &candidate.offer {
        Offer::Content(c) => vec![*c],
        Offer::Experiment(e) => e.variants.to_vec(),
    }
}

fn stages(w: &mut Walker<'_>, value: Option<&Json>, path: &Path) -> Vec<String> {
    let Some(value) = value else {
        w.report(path, "missing required field");
        return Vec::new();
    };
    let items = w.array(value, path, w.budget.max_stages, "max_stages");
    if items.is_empty() && value.is_array() {
        w.report(path, "a journey needs at least one stage");
    }
    let mut names: Vec<String> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        if let Some(name) = w.string(Some(item), &path.index(i), true) {
            if names.iter().any(|n| n == name) {
                w.report(&path.index(i), format!("duplicate stage \"{name}\""));
            } else {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn check_collisions(w: &mut Walker<'_>, names: &[&str], kind: IdKind, path: &Path) {
    let mut seen: HashMap<u32, &str> = HashMap::new();
    for name in names {
        if let Some(other) = seen.insert(stable_id(kind, name), name) {
            w.report(
                &path.key(name),
                format!("\"{name}\" and \"{other}\" have the same stable id; rename one"),
            );
        }
    }
}

fn transitions(
    w: &mut Walker<'_>,
    value: Option<&Json>,
    path: &Path,
    stages: &[&str],
    schema: &BundleSchema<'_>,
) -> Vec<Transition> {
    let Some(value) = value else {
        return Vec::new();
    };
    let items = w.array(value, path, w.budget.max_transitions, "max_transitions");
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = path.index(i);
        let Some(map) = w.object(item, &path, &["to", "when", "from", "back", "description"])
        else {
            continue;
        };
        w.string(map.get("description"), &path.key("description"), false);
        let to = w
            .string(map.get("to"), &path.key("to"), true)
            .and_then(|name| w.name_index(name, stages, "stage", &path.key("to")));
        let from = match map.get("from") {
            Some(v) => w.stage_list(v, &path.key("from"), stages),
            None => Some(u64::MAX),
        };
        let back = match map.get("back") {
            None => Some(false),
            Some(Json::Bool(b)) => Some(*b),
            Some(other) => {
                w.report(
                    &path.key("back"),
                    format!("expected a boolean, found {}", kind(other)),
                );
                None
            }
        };
        let when = match map.get("when") {
            Some(rule) => w.rule(rule, &path.key("when"), schema).map(Some),
            None => Some(None),
        };
        if let (Some(to), Some(from), Some(back), Some(when)) = (to, from, back, when) {
            out.push(Transition {
                to,
                from,
                back,
                when,
            });
        }
    }
    out
}

fn topics(
    w: &mut Walker<'_>,
    intents: &Map<String, Json>,
    path: &Path,
    schema: &BundleSchema<'_>,
) -> Vec<Topic> {
    if intents.len() > w.budget.max_topics {
        w.report(
            path,
            format!(
                "{} intents are over the budget of {} (max_topics)",
                intents.len(),
                w.budget.max_topics
            ),
        );
    }
    let mut out = Vec::new();
    for (name, value) in intents {
        let path = path.key(name);
        let Some(map) = w.object(
            value,
            &path,
            &["signals", "cap", "half_life_days", "description"],
        ) else {
            continue;
        };
        w.string(map.get("description"), &path.key("description"), false);
        let cap = w
            .number(map.get("cap"), &path.key("cap"))
            .filter(|c| *c > 0.0);
        if cap.is_none() {
            w.report(&path.key("cap"), "expected a positive number");
        }
        let half_life = w
            .number(map.get("half_life_days"), &path.key("half_life_days"))
            .filter(|h| *h > 0.0);
        if half_life.is_none() {
            w.report(
                &path.key("half_life_days"),
                "expected a positive number of days",
            );
        }
        let mut signals = Vec::new();
        match map.get("signals") {
            Some(value) => {
                let items = w.array(value, &path.key("signals"), 64, "max_signals");
                for (i, item) in items.iter().enumerate() {
                    let path = path.key("signals").index(i);
                    let Some(signal) = w.object(item, &path, &["when", "add", "description"])
                    else {
                        continue;
                    };
                    let add = w.number(signal.get("add"), &path.key("add"));
                    if add.is_none() {
                        w.report(&path.key("add"), "expected a number");
                    }
                    let when = match signal.get("when") {
                        Some(rule) => w.rule(rule, &path.key("when"), schema),
                        None => {
                            w.report(&path.key("when"), "missing required field");
                            None
                        }
                    };
                    if let (Some(when), Some(add)) = (when, add) {
                        signals.push(Signal { when, add });
                    }
                }
            }
            None => w.report(&path.key("signals"), "missing required field"),
        }
        if let (Some(cap), Some(half_life)) = (cap, half_life) {
            out.push(Topic {
                name: name.clone(),
                id: stable_id(IdKind::Topic, name),
                cap,
                half_life_secs: half_life * crate::time::DAY as f64,
                signals: signals.into(),
            });
        }
    }
    out
}

fn content(
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

#[allow(clippy::too_many_arguments)]
fn slots(
    w: &mut Walker<'_>,
    value: Option<&Json>,
    path: &Path,
    stages: &[&str],
    contents: &[&str],
    campaigns: &[&str],
    schema: &BundleSchema<'_>,
) -> Option<Vec<Slot>> {
    let Some(value) = value else {
        w.report(path, "missing required field");
        return None;
    };
    let Some(map) = value.as_object() else {
        w.report(path, format!("expected an object, found {}", kind(value)));
        return None;
    };
    if map.len() > w.budget.max_slots {
        w.report(
            path,
            format!(
                "{} slots are over the budget of {} (max_slots)",
                map.len(),
                w.budget.max_slots
            ),
        );
    }
    let mut candidate_ids: BTreeMap<String, Path> = BTreeMap::new();
    let mut total = 0usize;
    let mut out = Vec::new();
    for (name, slot) in map {
        let path = path.key(name);
        let Some(slot_map) = w.object(slot, &path, &["default", "candidates", "description"])
        else {
            continue;
        };
        w.string(slot_map.get("description"), &path.key("description"), false);
        let default = match slot_map.get("default") {
            None => {
                w.report(&path, format!("slot \"{name}\" has no default content"));
                None
            }
            Some(d) => w
                .string(Some(d), &path.key("default"), true)
                .and_then(|d| w.name_index(d, contents, "content", &path.key("default"))),
        };
        let items = match slot_map.get("candidates") {
            Some(c) => w.array(
                c,
                &path.key("candidates"),
                w.budget.max_candidates_per_slot,
                "max_candidates_per_slot",
            ),
            None => &[],
        };
        total += items.len();
        let mut candidates = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = path.key("candidates").index(i);
            if let Some(c) = candidate(
                w,
                item,
                &path,
                stages,
                contents,
                campaigns,
                schema,
                &mut candidate_ids,
            ) {
                candidates.push(c);
            }
        }
        // Highest priority first; `sort_by` is stable, so ties keep bundle order.
        candidates.sort_by(|a, b| b.priority.total_cmp(&a.priority));
        if let Some(default) = default {
            out.push(Slot {
                name: name.clone(),
                default,
                candidates: candidates.into(),
            });
        }
    }
    if total > w.budget.max_candidates {
        w.report(
            path,
            format!(
                "{total} candidates are over the budget of {} (max_candidates)",
                w.budget.max_candidates
            ),
        );
    }
    Some(out)
}

#[allow(clippy::too_many_arguments)]
fn candidate(
    w: &mut Walker<'_>,
    value: &Json,
    path: &Path,
    stages: &[&str],
    contents: &[&str],
    campaigns: &[&str],
    schema: &BundleSchema<'_>,
    ids: &mut BTreeMap<String, Path>,
) -> Option<Candidate> {
    let map = w.object(value, path, CANDIDATE_KEYS)?;
    w.string(map.get("description"), &path.key("description"), false);
    let name = w.string(map.get("id"), &path.key("id"), true)?.to_owned();
    if let Some(first) = ids.get(&name) {
        let first = first.to_string();
        w.report(
            &path.key("id"),
            format!("duplicate candidate id \"{name}\", first used at {first}"),
        );
    } else {
        ids.insert(name.clone(), path.clone());
    }
    let offer = match (map.get("content"), map.get("experiment")) {
        (Some(_), Some(_)) => {
            w.report(
                path,
                "a candidate has either \"content\" or \"experiment\", not both",
            );
            None
        }
        (None, None) => {
            w.report(path, "a candidate needs \"content\" or \"experiment\"");
            None
        }
        (Some(content), None) => w
            .string(Some(content), &path.key("content"), true)
            .and_then(|c| w.name_index(c, contents, "content", &path.key("content")))
            .map(Offer::Content),
        (None, Some(experiment)) => {
            experiment_offer(w, experiment, &path.key("experiment"), &name, contents)
        }
    };
    let priority = match map.get("priority") {
        None => Some(0.0),
        Some(p) => w.number(Some(p), &path.key("priority")),
    };
    let stage_mask = match map.get("stages") {
        None => Some(u64::MAX),
        Some(s) => w.stage_list(s, &path.key("stages"), stages),
    };
    let when = match map.get("when") {
        None => Some(None),
        Some(rule) => w.rule(rule, &path.key("when"), schema).map(Some),
    };
    let cap = match map.get("cap") {
        None => Some(None),
        Some(cap) => w.cap(cap, &path.key("cap")).map(Some),
    };
    let after = match map.get("after") {
        None => Some(Vec::new()),
        Some(list) => {
            let items = w.array(list, &path.key("after"), 16, "max_after");
            let resolved: Vec<Option<u16>> = items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let p = path.key("after").index(i);
                    w.string(Some(item), &p, true)
                        .and_then(|c| w.name_index(c, contents, "content", &p))
                })
                .collect();
            resolved.into_iter().collect::<Option<Vec<u16>>>()
        }
    };
    let campaign = match map.get("campaign") {
        None => Some(None),
        Some(c) => w
            .string(Some(c), &path.key("campaign"), true)
            .and_then(|c| w.name_index(c, campaigns, "campaign", &path.key("campaign")))
            .map(Some),
    };
    Some(Candidate {
        name,
        offer: offer?,
        priority: priority?,
        stages: stage_mask?,
        when: when?,
        cap: cap?,
        after: after?.into(),
        campaign: campaign?,
    })
}

fn experiment_offer(
    w: &mut Walker<'_>,
    value: &Json,
    path: &Path,
    candidate: &str,
    contents: &[&str],
) -> Option<Offer> {
    let map = w.object(value, path, &["variants", "holdout"])?;
    let holdout = match map.get("holdout") {
        None => Some(0.0),
        Some(h) => match w.number(Some(h), &path.key("holdout")) {
            Some(h) if (0.0..1.0).contains(&h) => Some(h),
            Some(h) => {
                w.report(
                    &path.key("holdout"),
                    format!("holdout {h} is not in [0, 1)"),
                );
                None
            }
            None => None,
        },
    };
    let Some(variants_json) = map.get("variants") else {
        w.report(&path.key("variants"), "missing required field");
        return None;
    };
    let items = w.array(variants_json, &path.key("variants"), 16, "max_variants");
    if items.is_empty() && variants_json.is_array() {
        w.report(
            &path.key("variants"),
            "an experiment needs at least one variant",
        );
    }
    let mut variants = Vec::new();
    let mut weights = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let path = path.key("variants").index(i);
        let Some(variant) = w.object(item, &path, &["content", "weight"]) else {
            continue;
        };
        let content = w
            .string(variant.get("content"), &path.key("content"), true)
            .and_then(|c| w.name_index(c, contents, "content", &path.key("content")));
        let weight = match w.number(variant.get("weight"), &path.key("weight")) {
            Some(weight) if weight > 0.0 => Some(weight),
            Some(weight) => {
                w.report(
                    &path.key("weight"),
                    format!("weight {weight} must be positive"),
                );
                None
            }
            None => {
                w.report(&path.key("weight"), "missing required field");
                None
            }
        };
        if let (Some(c), Some(weight)) = (content, weight) {
            variants.push(c);
            weights.push(weight);
        }
    }
    let sum: f64 = weights.iter().sum();
    let sums_up = (sum - 100.0).abs() < 1e-6 || (sum - 1.0).abs() < 1e-9;
    if !weights.is_empty() && !sums_up {
        w.report(
            &path.key("variants"),
            format!(
                "variant weights sum to {}, expected 100 (or 1)",
                crate::rules::Value::Number(sum).to_json()
            ),
        );
        return None;
    }
    let holdout = holdout?;
    if variants.len() != items.len() || variants.is_empty() {
        return None;
    }
    let normalized: Vec<f64> = weights.iter().map(|w| w / sum).collect();
    Some(Offer::Experiment(Experiment {
        id: stable_id(IdKind::Experiment, candidate),
        ranges: bucket::bucket_ranges(variants.len(), 1.0 - holdout, Some(&normalized)).into(),
        variants: variants.into(),
        holdout,
    }))
}

/// Reports contents whose `after` requirements form a cycle: none of them can ever be
/// shown first.
fn sequence_cycles(w: &mut Walker<'_>, slots: &[Slot], contents: &[&str], path: &Path) {
    let mut edges: BTreeMap<u16, Vec<u16>> = BTreeMap::new();
    for slot in slots {
        for candidate in &slot.candidates {
            for c in offered(candidate) {
                edges
                    .entry(c)
                    .or_default()
                    .extend(candidate.after.iter().copied());
            }
        }
    }
    // Depth-first search with colours: 1 = on the stack, 2 = done.
    let mut colour: HashMap<u16, u8> = HashMap::new();
    let mut reported = false;
    for &start in edges.keys() {
        if reported {
            break;
        }
        let mut stack: Vec<(u16, usize)> = vec![(start, 0)];
        while let Some((node, next)) = stack.pop() {
            if next == 0 {
                if colour.get(&node) == Some(&2) {
                    continue;
                }
                colour.insert(node, 1);
            }
            let successors = edges.get(&node).map(Vec::as_slice).unwrap_or(&[]);
            match successors.get(next) {
                Some(&succ) => {
                    stack.push((node, next + 1));
                    match colour.get(&succ) {
                        Some(1) => {
                            let mut cycle: Vec<&str> = stack
                                .iter()
                                .skip_while(|(n, _)| *n != succ)
                                .map(|(n, _)| contents.get(usize::from(*n)).copied().unwrap_or("?"))
                                .collect();
                            cycle.push(contents.get(usize::from(succ)).copied().unwrap_or("?"));
                            w.report(
                                path,
                                format!(
                                    "sequence cycle: {} (each must be seen before the next)",
                                    cycle.join(" after ")
                                ),
                            );
                            reported = true;
                            break;
                        }
                        Some(2) => {}
                        _ => stack.push((succ, 0)),
                    }
                }
                None => {
                    colour.insert(node, 2);
                }
            }
        }
    }
}

/// Reports candidates that can never win because an unconditional candidate of higher
/// (or equal, earlier) priority always does. An unconditional candidate whose content
/// another slot may place first can lose to the one-message-per-page rule, so only
/// contents no other slot offers make it a certain winner.
fn unreachable_candidates(w: &mut Walker<'_>, slots: &[Slot], document: &Json, path: &Path) {
    for (s, slot) in slots.iter().enumerate() {
        let offered_elsewhere = |content: u16| {
            slots.iter().enumerate().any(|(o, other)| {
                o != s
                    && (other.default == content
                        || other
                            .candidates
                            .iter()
                            .any(|c| offered(c).contains(&content)))
            })
        };
        let blocker = slot.candidates.iter().position(|c| {
            matches!(c.offer, Offer::Content(content) if !offered_elsewhere(content))
                && c.stages == u64::MAX
                && c.when.is_none()
                && c.cap.is_none()
                && c.after.is_empty()
                && c.campaign.is_none()
        });
        let Some(blocker) = blocker else { continue };
        let Some(winner) = slot.candidates.get(blocker) else {
            continue;
        };
        for shadowed in slot.candidates.iter().skip(blocker + 1) {
            let index = source_index(document, &slot.name, &shadowed.name).unwrap_or(0);
            w.report(
                &path.key(&slot.name).key("candidates").index(index),
                format!(
                    "candidate \"{}\" is unreachable: \"{}\" (priority {}) has no conditions and always wins first",
                    shadowed.name,
                    winner.name,
                    crate::rules::Value::Number(winner.priority).to_json()
                ),
            );
        }
    }
}

/// The position of a candidate in its slot's authoring array (candidates are sorted
/// after lowering, diagnostics point at the source).
fn source_index(document: &Json, slot: &str, candidate: &str) -> Option<usize> {
    document
        .get("slots")?
        .get(slot)?
        .get("candidates")?
        .as_array()?
        .iter()
        .position(|c| c.get("id").and_then(Json::as_str) == Some(candidate))
}

impl BundleSchema<'_> {
    /// Every variable name this bundle's rules may use, for suggestions.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = crate::context::FIXED_VARIABLES
            .iter()
            .map(|(n, _)| (*n).to_owned())
            .collect();
        names.extend(self.topics.iter().map(|t| format!("intent.{t}")));
        names.extend(self.contents.iter().map(|c| format!("seen.{c}")));
        names
    }
}

/// Resolves `page.query.<key>`.
pub(crate) fn query_var(path: &str) -> Option<VarId> {
    path.strip_prefix("page.query.")
        .filter(|k| !k.is_empty())
        .map(|k| VarId::PageQuery(k.to_owned()))
}
