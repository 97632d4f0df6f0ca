//! Authoring JSON → compiled [`Bundle`]: validation and lowering in one walk.
//!
//! The walk never stops at the first problem: it reports every one it finds, each with
//! its JSON path (later mapped to line:column) and a did-you-mean where a name is close
//! to a known one. Only a bundle without a single diagnostic is lowered. The walk's
//! primitives are in `walker`; the journey, the content bank and the slots each have
//! their module, and `checks` looks across the lowered slots.

mod checks;
mod content;
mod feeds;
mod journey;
mod slots;
mod triggers;
pub(crate) use triggers::{MAX_DELAY_SECS, MAX_DESTINATIONS, MAX_TRIGGERS};
mod walker;

use serde_json::{Map, Value as Json};

use super::model::*;
use super::{Budget, BundleSchema, Diagnostic};
use crate::context::VarId;
use crate::ids::{stable_id, IdKind};
use slots::Declared;
use walker::{Index, Path, Walker};

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
    "destinations",
    "triggers",
    "feeds",
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
    let stage_names = journey::stages(w, journey.get("stages"), &journey_path.key("stages"));
    let stage_refs: Vec<&str> = stage_names.iter().map(String::as_str).collect();

    // Names of contents, topics and campaigns, needed to resolve rules and references.
    let content_path = root.key("content");
    let content_map = w
        .named(top.get("content"), &content_path, true)
        .unwrap_or(&empty);
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
    let intents_map = w
        .named(journey.get("intents"), &intents_path, false)
        .unwrap_or(&empty);
    let topic_names: Vec<&str> = intents_map.keys().map(String::as_str).collect();
    let campaigns_path = root.key("campaigns");
    let campaigns_map = w
        .named(top.get("campaigns"), &campaigns_path, false)
        .unwrap_or(&empty);
    let campaign_names: Vec<&str> = campaigns_map.keys().map(String::as_str).collect();
    let feeds_path = root.key("feeds");
    let feeds_map = w
        .named(top.get("feeds"), &feeds_path, false)
        .unwrap_or(&empty);
    let feed_specs = feeds::feeds(w, feeds_map, &feeds_path);
    let schema = BundleSchema {
        topics: &topic_names,
        contents: &content_names,
        feeds: &feed_specs,
    };

    journey::check_collisions(w, &stage_refs, IdKind::Stage, &journey_path.key("stages"));
    journey::check_collisions(w, &content_names, IdKind::Content, &content_path);
    journey::check_collisions(w, &topic_names, IdKind::Topic, &intents_path);
    journey::check_collisions(w, &campaign_names, IdKind::Campaign, &campaigns_path);

    let stage_index = Index::new("stage", &stage_refs);
    let transitions = journey::transitions(
        w,
        journey.get("transitions"),
        &journey_path.key("transitions"),
        &stage_index,
        &schema,
    );
    let topics = journey::topics(w, intents_map, &intents_path, &schema);
    let campaigns = content::campaigns(w, campaigns_map, &campaigns_path);

    let goals = content::goals(w, top.get("goals"), &root.key("goals"));

    let destinations_path = root.key("destinations");
    let destinations_map = w
        .named(top.get("destinations"), &destinations_path, false)
        .unwrap_or(&empty);
    let destinations = triggers::destinations(w, destinations_map, &destinations_path);
    let destination_names: Vec<&str> = destinations.iter().map(|d| d.name.as_str()).collect();
    let refused_destinations: Vec<&str> = destinations_map
        .keys()
        .map(String::as_str)
        .filter(|name| !destination_names.contains(name))
        .collect();
    let mut entered = vec![false; stage_refs.len()];
    if let Some(first) = entered.first_mut() {
        *first = true;
    }
    for t in &transitions {
        if let Some(e) = entered.get_mut(usize::from(t.to)) {
            *e = true;
        }
    }
    let triggers = triggers::triggers(
        w,
        top.get("triggers"),
        &root.key("triggers"),
        &triggers::Refs {
            stages: &stage_index,
            destinations: &Index::new("destination", &destination_names),
            refused_destinations: &refused_destinations,
            entered: &entered,
            schema: &schema,
            feeds: &feed_specs,
        },
    );

    let mut contents: Vec<Content> = content_map
        .iter()
        .filter_map(|(name, value)| {
            content::content(w, name, value, &content_path.key(name), &schema)
        })
        .collect();

    let declared = Declared {
        stages: stage_index,
        contents: Index::new("content", &content_names),
        campaigns: Index::new("campaign", &campaign_names),
        schema: BundleSchema {
            topics: &topic_names,
            contents: &content_names,
            feeds: &feed_specs,
        },
    };
    let slots = slots::slots(w, top.get("slots"), &root.key("slots"), &declared);

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
    checks::sequence_cycles(w, &slots, &content_names, &root.key("slots"));
    checks::unreachable_candidates(w, &slots, document, &root.key("slots"));
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
    let feed_roles = crate::feed::FeedRoles::of(&feed_specs);
    let mut bundle = Bundle {
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
        destinations: destinations.into(),
        triggers: triggers.into(),
        feeds: feed_specs.into(),
        feed_roles,
        feed_keys: List::from(Vec::new()),
    };
    bundle.feed_keys = bundle.collect_feed_keys().into();
    if let Err(e) = bundle.check_work(&w.budget) {
        w.report(&root, e);
        return None;
    }
    Some(bundle)
}

/// The contents a candidate may show.
pub(crate) fn offered(candidate: &Candidate) -> Vec<u16> {
    match &candidate.offer {
        Offer::Content(c) => vec![*c],
        Offer::Experiment(e) => e.variants.to_vec(),
    }
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
        if let Some((stores, _, _)) = crate::feed::FeedRoles::of(self.feeds).stores {
            names.extend(["store.id", "store.distance_km", "store.qty"].map(String::from));
            if let Some(spec) = self.feeds.get(usize::from(stores)) {
                names.extend(spec.fields.iter().map(|f| format!("store.{}", f.name)));
            }
        }
        names
    }
}

/// Resolves `store.<field>` when the bundle declares a stores feed (docs/feeds.md).
pub(crate) fn store_var(feeds: &[crate::feed::FeedSpec], path: &str) -> Option<VarId> {
    use crate::feed::store_field as field;
    let name = path.strip_prefix("store.")?;
    let (stores, _, _) = crate::feed::FeedRoles::of(feeds).stores?;
    let spec = feeds.get(usize::from(stores))?;
    let index = match name {
        "id" => field::ID,
        "distance_km" => field::DISTANCE_KM,
        "qty" => field::QTY,
        other => field::FIELDS.checked_add(spec.field(other)?)?,
    };
    Some(VarId::Store(index))
}

/// Whether a feed lookup may be used: the feeds it reads are declared as it needs them.
pub(crate) fn feed_op(
    feeds: &[crate::feed::FeedSpec],
    op: crate::rules::FeedOp,
) -> Result<(), String> {
    let roles = crate::feed::FeedRoles::of(feeds);
    let stock = "a feed `stock` with key [sku, store] and a number field `qty`";
    let stores = "a feed `stores` with key [store] and number fields `lat` and `lon`";
    match (op, roles.stock, roles.stores) {
        (crate::rules::FeedOp::Stock, Some(_), _) => Ok(()),
        (crate::rules::FeedOp::NearestStore, Some(_), Some(_)) => Ok(()),
        (crate::rules::FeedOp::Stock, None, _) => Err(format!(
            "`stock` reads {stock}, which `feeds` does not declare"
        )),
        (crate::rules::FeedOp::NearestStore, _, _) => Err(format!(
            "`nearest_store` reads {stock} and {stores}, which `feeds` does not declare"
        )),
    }
}

/// Resolves `page.query.<key>`.
pub(crate) fn query_var(path: &str) -> Option<VarId> {
    path.strip_prefix("page.query.")
        .filter(|k| !k.is_empty())
        .map(|k| VarId::PageQuery(k.to_owned()))
}
