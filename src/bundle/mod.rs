//! Bundles: the marketer's JSON, validated and compiled, framed as `.mmb` for the edge.
//!
//! [`compile`] validates an authoring document (every problem, with path, line:column
//! and did-you-mean) and lowers it to a [`Bundle`]. [`Bundle::to_mmb`] frames it (magic,
//! format version, id, version, SHA-256 content hash, bincode payload, optional Ed25519
//! signature) and [`Bundle::from_mmb`] checks all of that before decoding a single byte
//! of payload. Loading never panics on hostile bytes: every failure is a [`LoadError`].

mod html_context;
mod locate;
mod mmb;
pub(crate) mod model;
mod rollback;
mod source;

use std::fmt;

pub use mmb::{
    keygen, public_key_of, verify_signature, Header, LoadError, SigningKey, FORMAT_VERSION, MAGIC,
};
pub use rollback::{latest_key, rollback_key, RollbackRecord, MAX_ROLLBACK_RECORD};
/// The JSON Schema of the authoring format (`micromoment schema`), for editors: the
/// text of `schema.json`, with each destination kind written from its table (its name,
/// what it does, whether it needs a url).
pub fn schema() -> Result<serde_json::Value, serde_json::Error> {
    let mut schema: serde_json::Value = serde_json::from_str(include_str!("schema.json"))?;
    let kind = schema
        .pointer_mut("/properties/destinations/additionalProperties/properties/kind")
        .and_then(serde_json::Value::as_object_mut);
    if let Some(kind) = kind {
        let names = DestinationKind::ALL.iter().map(|k| k.as_str());
        let said: Vec<String> = DestinationKind::ALL
            .iter()
            .map(|k| match k.default_url() {
                None => format!("{}: {} (url required)", k.as_str(), k.summary()),
                Some(url) => format!("{}: {} (url optional, else {url})", k.as_str(), k.summary()),
            })
            .collect();
        // The file's note to its readers is not for editors.
        kind.remove("$comment");
        kind.insert("enum".into(), names.collect());
        kind.insert("description".into(), said.join("; ").into());
    }
    Ok(schema)
}

pub use crate::destination::{
    is_destination_var, same_destination, DestinationKind, DESTINATION_VAR_PREFIX,
    MAX_DESTINATION_VAR_BYTES,
};
pub use model::{Bundle, Condition, Period, Schedule};
pub use model::{Candidate, Content, Offer, TriggerOn};
pub(crate) use model::{Experiment, JsonTemplate, Piece, Template};
pub(crate) use source::offered;
pub(crate) use source::{MAX_DELAY_SECS, MAX_DESTINATIONS, MAX_TRIGGERS};

use crate::context::{VarId, VarSize, FIXED_VARIABLES};
use crate::rules::{Schema, UnknownVariable, VarBound};
use crate::suggest::{did_you_mean, hint};

/// Limits a bundle must stay within, checked when compiling and again when loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// The largest `.mmb` file.
    pub max_bundle_bytes: usize,
    /// The largest authoring document.
    pub max_source_bytes: usize,
    /// The longest string (a rendition, an id).
    pub max_string_bytes: usize,
    /// Journey stages (a stage set is a 64-bit mask).
    pub max_stages: usize,
    /// Transitions.
    pub max_transitions: usize,
    /// Intent topics.
    pub max_topics: usize,
    /// Contents in the bank.
    pub max_contents: usize,
    /// Slots.
    pub max_slots: usize,
    /// Candidates in one slot.
    pub max_candidates_per_slot: usize,
    /// Candidates in the bundle.
    pub max_candidates: usize,
    /// Nesting of a rule.
    pub max_rule_depth: usize,
    /// Nodes of a rule.
    pub max_rule_nodes: usize,
    /// The worst case, in rule steps, of every rule one request may evaluate
    /// (transitions once per stage, signals, every candidate's `when`).
    pub max_request_steps: u64,
    /// The memory a decoded `.mmb` may claim for its lists and strings, checked while
    /// decoding: the byte size alone does not bound it.
    pub max_decoded_bytes: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            max_bundle_bytes: 5 * 1024 * 1024,
            max_source_bytes: 32 * 1024 * 1024,
            max_string_bytes: 64 * 1024,
            max_stages: 64,
            max_transitions: 256,
            max_topics: 256,
            max_contents: 20_000,
            max_slots: 256,
            max_candidates_per_slot: 10_000,
            max_candidates: 20_000,
            max_rule_depth: 32,
            max_rule_nodes: 4096,
            max_request_steps: 1_000_000,
            max_decoded_bytes: 32 * 1024 * 1024,
        }
    }
}

/// One problem found in an authoring document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The JSON path, such as `slots.hero.candidates[2].when`.
    pub path: String,
    /// What is wrong, with a did-you-mean where one helps.
    pub message: String,
    /// 1-based line of the offending value in the source.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}:{}: {}", self.line, self.column, self.message)
        } else {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.path, self.message
            )
        }
    }
}

/// Validates and compiles an authoring document.
pub fn compile(source: &str, budget: Budget) -> Result<Bundle, Vec<Diagnostic>> {
    source::compile(source, budget)
}

/// The variables a bundle's rules and placeholders may name.
pub(crate) struct BundleSchema<'b> {
    pub topics: &'b [&'b str],
    pub contents: &'b [&'b str],
    pub feeds: &'b [crate::feed::FeedSpec],
}

impl Schema for BundleSchema<'_> {
    type Var = VarId;

    fn resolve(&self, path: &str) -> Result<VarId, UnknownVariable> {
        if let Some((_, var)) = FIXED_VARIABLES.iter().find(|(name, _)| *name == path) {
            return Ok(var.clone());
        }
        let indexed = |prefix: &str, names: &[&str]| {
            let name = path.strip_prefix(prefix)?;
            names
                .iter()
                .position(|n| *n == name)
                .and_then(|i| u16::try_from(i).ok())
        };
        if let Some(topic) = indexed("intent.", self.topics) {
            return Ok(VarId::Intent(topic));
        }
        if let Some(content) = indexed("seen.", self.contents) {
            return Ok(VarId::Seen(content));
        }
        if let Some(var) = source::query_var(path) {
            return Ok(var);
        }
        if let Some(var) = source::store_var(self.feeds, path) {
            return Ok(var);
        }
        let names = self.names();
        Err(UnknownVariable {
            suggestion: did_you_mean(path, names.iter().map(String::as_str)).map(str::to_owned),
        })
    }

    fn bound(&self, var: &VarId) -> VarBound {
        var_bound(var)
    }

    fn feed(&self, op: crate::rules::FeedOp) -> Result<(), String> {
        source::feed_op(self.feeds, op)
    }

    fn any_bound(&self) -> VarBound {
        VarBound {
            built: true,
            ..var_bound(&VarId::Segments)
        }
        .max_text(MAX_CONTEXT_TEXT)
    }
}

/// The longest text a context field is assumed to hold when a rule's worst case is
/// worked out: the longest URL Cloudflare accepts (longer headers are cut at 2 KiB).
pub const MAX_CONTEXT_TEXT: u64 = 16 * 1024;

/// The most a variable can hold, from what the table of variables says it holds.
fn var_bound(var: &VarId) -> VarBound {
    use crate::token::{MAX_SEGMENTS, MAX_SEGMENT_BYTES};
    match var.size() {
        VarSize::Scalar => VarBound::SCALAR,
        VarSize::Text => VarBound::text(MAX_CONTEXT_TEXT),
        VarSize::List => VarBound::list_of_text(MAX_SEGMENTS as u64, MAX_SEGMENT_BYTES as u64),
    }
}

/// A requested slot, resolved against a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotRef(pub(crate) u16);

impl SlotRef {
    /// The slot at `index` in the bundle's slot list (a tool walking `Bundle::slots`);
    /// a decision of an index the bundle does not have decides nothing.
    pub fn at(index: u16) -> SlotRef {
        SlotRef(index)
    }
}

/// A slot name the bundle does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown slot \"{name}\"{}", hint(suggestion.as_deref()))]
pub struct UnknownSlot {
    /// The name as requested.
    pub name: String,
    /// The closest slot the bundle has.
    pub suggestion: Option<String>,
}

/// An experiment as `analyze` reads it: where it runs and how it splits traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentSpec<'b> {
    /// The experiment's name: its candidate id, as in exposures.
    pub name: &'b str,
    /// The slot it runs in.
    pub slot: &'b str,
    /// The variants in bundle order (the first is the control): content id and the
    /// share of all visitors it gets (its weight times `1 - holdout`).
    pub variants: Vec<(&'b str, f64)>,
    /// The share of visitors held out (shown the slot's default).
    pub holdout: f64,
}

/// A goal: which app event is a conversion, and whether it carries a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoalSpec<'b> {
    /// The goal's name, as in conversions.
    pub name: &'b str,
    /// The event that is a conversion of it.
    pub event: &'b str,
    /// Whether conversions carry a value (revenue).
    pub value: bool,
}

/// Counts of what a bundle holds, for `inspect` and `/v1/bundle`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Journey stages.
    pub stages: usize,
    /// Transitions.
    pub transitions: usize,
    /// Intent topics.
    pub intents: usize,
    /// Contents.
    pub contents: usize,
    /// Slots.
    pub slots: usize,
    /// Candidates in all slots.
    pub candidates: usize,
    /// Experiments.
    pub experiments: usize,
    /// Campaigns.
    pub campaigns: usize,
    /// Destinations of triggers.
    pub destinations: usize,
    /// Triggers.
    pub triggers: usize,
}

impl Bundle {
    /// The bundle id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The bundle version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Stage names in journey order.
    pub fn stage_names(&self) -> impl Iterator<Item = &str> {
        self.stages.iter().map(|s| s.name.as_str())
    }

    /// Slot names in bundle order.
    pub fn slot_names(&self) -> impl Iterator<Item = &str> {
        self.slots.iter().map(|s| s.name.as_str())
    }

    /// Content ids in bundle order.
    pub fn content_names(&self) -> impl Iterator<Item = &str> {
        self.contents.iter().map(|c| c.name.as_str())
    }

    /// Intent topic names.
    pub fn topic_names(&self) -> impl Iterator<Item = &str> {
        self.topics.iter().map(|t| t.name.as_str())
    }

    /// Every experiment, in slot and then priority order.
    pub fn experiments(&self) -> Vec<ExperimentSpec<'_>> {
        let content = |c: u16| {
            self.contents
                .get(usize::from(c))
                .map_or("", |c| c.name.as_str())
        };
        self.slots
            .iter()
            .flat_map(|slot| slot.candidates.iter().map(move |c| (slot, c)))
            .filter_map(|(slot, candidate)| match &candidate.offer {
                Offer::Experiment(e) => Some(ExperimentSpec {
                    name: &candidate.name,
                    slot: &slot.name,
                    variants: e
                        .variants
                        .iter()
                        .zip(&e.ranges)
                        .map(|(&c, &(start, end))| (content(c), end - start))
                        .collect(),
                    holdout: e.holdout,
                }),
                Offer::Content(_) => None,
            })
            .collect()
    }

    /// The goals, in bundle order.
    pub fn goals(&self) -> impl Iterator<Item = GoalSpec<'_>> {
        self.goals.iter().map(|g| GoalSpec {
            name: &g.name,
            event: &g.event,
            value: g.value,
        })
    }

    /// What the bundle holds.
    pub fn counts(&self) -> Counts {
        let candidates = self.slots.iter().flat_map(|s| &s.candidates);
        Counts {
            stages: self.stages.len(),
            transitions: self.transitions.len(),
            intents: self.topics.len(),
            contents: self.contents.len(),
            slots: self.slots.len(),
            candidates: candidates.clone().count(),
            experiments: candidates
                .filter(|c| matches!(c.offer, Offer::Experiment(_)))
                .count(),
            campaigns: self.campaigns.len(),
            destinations: self.destinations.len(),
            triggers: self.triggers.len(),
        }
    }

    /// Resolves requested slot names; the first unknown one is an error.
    pub fn resolve_slots<'n, I: IntoIterator<Item = &'n str>>(
        &self,
        names: I,
    ) -> Result<Vec<SlotRef>, UnknownSlot> {
        names
            .into_iter()
            .map(|name| self.resolve_slot(name))
            .collect()
    }

    /// The slot of this name, or the error naming it (with the closest slot name).
    pub fn resolve_slot(&self, name: &str) -> Result<SlotRef, UnknownSlot> {
        self.slot_ref(name).ok_or_else(|| UnknownSlot {
            name: name.to_owned(),
            suggestion: did_you_mean(name, self.slot_names()).map(str::to_owned),
        })
    }

    /// The slot of this name, if the bundle has one.
    pub fn slot_ref(&self, name: &str) -> Option<SlotRef> {
        self.slots
            .iter()
            .position(|s| s.name == name)
            .and_then(|i| u16::try_from(i).ok())
            .map(SlotRef)
    }

    /// Every slot, in bundle order.
    pub fn all_slots(&self) -> Vec<SlotRef> {
        (0..self.slots.len())
            .filter_map(|i| u16::try_from(i).ok())
            .map(SlotRef)
            .collect()
    }

    /// A name-based view of a stage stable id, for printing states.
    pub fn stage_name(&self, id: u32) -> Option<&str> {
        self.stages
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.name.as_str())
    }

    /// Resolves a name-based variable for run-time lookups (`{"var": {"cat": …}}`,
    /// `missing`): no allocation and no suggestion work, a binary search for contents.
    pub(crate) fn resolve_var(&self, path: &str) -> Option<VarId> {
        if let Some((_, var)) = FIXED_VARIABLES.iter().find(|(name, _)| *name == path) {
            return Some(var.clone());
        }
        if let Some(topic) = path.strip_prefix("intent.") {
            return self
                .topics
                .iter()
                .position(|t| t.name == topic)
                .and_then(|i| u16::try_from(i).ok())
                .map(VarId::Intent);
        }
        if let Some(content) = path.strip_prefix("seen.") {
            let name = |i: &u16| self.contents.get(usize::from(*i)).map(|c| c.name.as_str());
            return self
                .content_order
                .binary_search_by(|i| name(i).cmp(&Some(content)))
                .ok()
                .and_then(|at| self.content_order.get(at).copied())
                .map(VarId::Seen);
        }
        source::query_var(path).or_else(|| source::store_var(&self.feeds, path))
    }

    /// The schema of this bundle's own names, to work a rule's worst case out with.
    fn with_schema<T>(&self, f: impl FnOnce(&BundleSchema<'_>) -> T) -> T {
        let topics: Vec<&str> = self.topic_names().collect();
        let contents: Vec<&str> = self.content_names().collect();
        f(&BundleSchema {
            topics: &topics,
            contents: &contents,
            feeds: &self.feeds,
        })
    }

    /// The longest string the bundle holds: a name, or the text of a rendition.
    pub(crate) fn longest_string(&self) -> Option<usize> {
        let template = |t: &Template| -> usize {
            t.pieces
                .iter()
                .map(|p| match p {
                    model::Piece::Text(text) => text.len(),
                    _ => 0,
                })
                .sum()
        };
        let names = self
            .stages
            .iter()
            .map(|s| s.name.len())
            .chain(self.topics.iter().map(|t| t.name.len()))
            .chain(self.campaigns.iter().map(|c| c.name.len()))
            .chain(self.slots.iter().map(|s| s.name.len()))
            .chain(
                self.slots
                    .iter()
                    .flat_map(|s| &s.candidates)
                    .map(|c| c.name.len()),
            );
        let contents = self.contents.iter().flat_map(|c| {
            [
                c.name.len(),
                c.html.as_ref().map_or(0, template),
                c.text.as_ref().map_or(0, template),
            ]
        });
        names.chain(contents).chain([self.id.len()]).max()
    }

    /// Every rule one request may evaluate, with how often: transitions once per
    /// stage pass, signals and candidates' `when` once.
    fn rules(&self) -> impl Iterator<Item = (&Condition, u64)> {
        let passes = self.stages.len() as u64;
        let transitions = self
            .transitions
            .iter()
            .filter_map(move |t| t.when.as_ref().map(|w| (w, passes)));
        let signals = self
            .topics
            .iter()
            .flat_map(|t| &t.signals)
            .map(|s| (&s.when, 1));
        let candidates = self
            .slots
            .iter()
            .flat_map(|s| &s.candidates)
            .filter_map(|c| c.when.as_ref().map(|w| (w, 1)));
        // A trigger's rule is read on the state before and after the request's signals.
        let triggers = self.triggers.iter().filter_map(|t| match &t.on {
            model::TriggerOn::When(rule) => Some((rule, 2)),
            _ => None,
        });
        transitions.chain(signals).chain(candidates).chain(triggers)
    }

    /// Checks the work one request can cost: each rule within the per-evaluation
    /// budget, all of them within [`Budget::max_request_steps`].
    pub(crate) fn check_work(&self, budget: &Budget) -> Result<(), String> {
        self.with_schema(|schema| {
            let mut total: u64 = 0;
            for (rule, times) in self.rules() {
                let (steps, bytes) = rule.worst_case(schema);
                if steps > crate::rules::MAX_STEPS || bytes > crate::rules::MAX_BYTES {
                    return Err(crate::rules::CompileErrorKind::TooCostly { steps, bytes }.to_string());
                }
                total = total.saturating_add(steps.saturating_mul(times));
            }
            if total > budget.max_request_steps {
                return Err(format!(
                    "the rules of one request can take up to {total} steps, over the budget of {} (max_request_steps)",
                    budget.max_request_steps
                ));
            }
            Ok(())
        })
    }
}
