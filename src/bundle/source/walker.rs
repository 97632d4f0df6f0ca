//! The walk over an authoring document: paths into it, and the primitives that read a
//! value of each kind, report what is wrong with its path (mapped to line:column), and
//! resolve names with a did-you-mean.

use std::collections::HashMap;
use std::fmt;

use serde_json::{Map, Value as Json};

use super::super::html_context::{self, Placement};
use super::super::locate::{locate, Step};
use super::super::model::*;
use super::super::{Budget, BundleSchema, Diagnostic};
use crate::rules::{self, Limits, Schema};
use crate::suggest::{did_you_mean, hint};

/// Names the document declares (stages, contents, campaigns), in document order, with
/// a lookup by name: resolving a reference costs the same for 20,000 contents as for 2.
pub(super) struct Index<'n> {
    /// What the names name, as messages say it: `stage`, `content`, `campaign`.
    what: &'static str,
    names: &'n [&'n str],
    by_name: HashMap<&'n str, u16>,
}

impl<'n> Index<'n> {
    pub(super) fn new(what: &'static str, names: &'n [&'n str]) -> Self {
        let by_name = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| u16::try_from(i).ok().map(|i| (*n, i)))
            .collect();
        Index {
            what,
            names,
            by_name,
        }
    }

    pub(super) fn get(&self, name: &str) -> Option<u16> {
        self.by_name.get(name).copied()
    }
}

/// A path into the authoring document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Path(pub(super) Vec<Step>);

impl Path {
    pub(super) fn key(&self, key: &str) -> Path {
        let mut steps = self.0.clone();
        steps.push(Step::Key(key.to_owned()));
        Path(steps)
    }

    pub(super) fn index(&self, i: usize) -> Path {
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

pub(super) struct Walker<'s> {
    pub(super) source: &'s str,
    pub(super) budget: Budget,
    pub(super) diagnostics: Vec<Diagnostic>,
}

impl Walker<'_> {
    pub(super) fn report(&mut self, path: &Path, message: impl Into<String>) {
        let (line, column) = locate(self.source, &path.0);
        self.diagnostics.push(Diagnostic {
            path: path.to_string(),
            message: message.into(),
            line,
            column,
        });
    }

    pub(super) fn object<'v>(
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
                let hint = hint(did_you_mean(key, known.iter().copied()));
                self.report(&path.key(key), format!("unknown field \"{key}\"{hint}"));
            }
        }
        Some(map)
    }

    /// An object whose keys are names the document declares (`content`, `slots`,
    /// `campaigns`…): `None` where it is not an object, or where it is missing and
    /// `required`, each reported.
    pub(super) fn named<'v>(
        &mut self,
        value: Option<&'v Json>,
        path: &Path,
        required: bool,
    ) -> Option<&'v Map<String, Json>> {
        match value {
            Some(Json::Object(map)) => Some(map),
            Some(other) => {
                self.report(path, format!("expected an object, found {}", kind(other)));
                None
            }
            None => {
                if required {
                    self.report(path, "missing required field");
                }
                None
            }
        }
    }

    /// A boolean field; `false` when absent.
    pub(super) fn flag(&mut self, value: Option<&Json>, path: &Path) -> Option<bool> {
        match value {
            None => Some(false),
            Some(Json::Bool(b)) => Some(*b),
            Some(other) => {
                self.report(path, format!("expected a boolean, found {}", kind(other)));
                None
            }
        }
    }

    pub(super) fn string<'v>(
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

    pub(super) fn number(&mut self, value: Option<&Json>, path: &Path) -> Option<f64> {
        match value? {
            Json::Number(n) => n.as_f64(),
            other => {
                self.report(path, format!("expected a number, found {}", kind(other)));
                None
            }
        }
    }

    pub(super) fn array<'v>(
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

    /// A string naming something the document declares, resolved: a missing, empty
    /// or unknown name is reported (an unknown one with a suggestion).
    pub(super) fn reference(
        &mut self,
        value: Option<&Json>,
        path: &Path,
        names: &Index<'_>,
    ) -> Option<u16> {
        let name = self.string(value, path, true)?;
        let found = names.get(name);
        if found.is_none() {
            let hint = hint(did_you_mean(name, names.names.iter().copied()));
            let what = names.what;
            self.report(path, format!("unknown {what} \"{name}\"{hint}"));
        }
        found
    }

    pub(super) fn rule<S: rules::Schema>(
        &mut self,
        value: &Json,
        path: &Path,
        schema: &S,
    ) -> Option<rules::Rule<S::Var>> {
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
    pub(super) fn template(
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
                    let hint = hint(unknown.suggestion.as_deref());
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
                    Ok(Placement::RootPath) => {
                        if let Piece::Var(var) = piece {
                            *piece = Piece::RootPath { var: var.clone() };
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

    pub(super) fn json_template(
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

    pub(super) fn cap(&mut self, value: &Json, path: &Path) -> Option<Cap> {
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

    /// `{"from": RFC 3339, "until": RFC 3339}`, either optional, `from` before `until`.
    pub(super) fn schedule(&mut self, value: &Json, path: &Path) -> Option<Schedule> {
        let map = self.object(value, path, &["from", "until"])?;
        let mut time = |key: &str| -> Option<Option<i64>> {
            match map.get(key) {
                None => Some(None),
                Some(Json::String(text)) => match crate::time::parse_rfc3339(text) {
                    Ok(t) => Some(Some(t)),
                    Err(_) => {
                        self.report(
                            &path.key(key),
                            format!("\"{text}\" is not a time: use RFC 3339, such as 2026-12-01T00:00:00Z"),
                        );
                        None
                    }
                },
                Some(_) => {
                    self.report(
                        &path.key(key),
                        "expected an RFC 3339 time, such as 2026-12-01T00:00:00Z",
                    );
                    None
                }
            }
        };
        let (from, until) = (time("from"), time("until"));
        let (from, until) = (from?, until?);
        if from.is_none() && until.is_none() {
            self.report(path, "a schedule needs from, until or both");
            return None;
        }
        if let (Some(f), Some(u)) = (from, until) {
            if u <= f {
                self.report(&path.key("until"), "until must be after from");
                return None;
            }
        }
        Some(Schedule { from, until })
    }

    pub(super) fn stage_list(
        &mut self,
        value: &Json,
        path: &Path,
        stages: &Index<'_>,
    ) -> Option<u64> {
        let items = self.array(value, path, 64, "max_stages");
        let mut mask = 0u64;
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match self.reference(Some(item), &path.index(i), stages) {
                Some(s) => mask |= 1u64 << s,
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
