//! Step 2 of a decision: per slot, the first eligible candidate by priority: stages,
//! `when`, experiment assignment (holdout shows the default), one content per page,
//! `after` sequences, content and campaign caps; else the slot's default.

use super::facts::Facts;
use super::trace::{CandidateTrace, Verdict};
use crate::bucket;
use crate::bundle::{Bundle, Candidate, Offer, Period};
use crate::rules::Verdict as Truth;
use crate::time::UnixSeconds;
use crate::token::{Assignment, Impression, State};

/// What a candidate scan ended with.
pub(crate) enum Pick<'b> {
    Won {
        candidate: &'b Candidate,
        content: u16,
        variant: Option<&'b str>,
    },
    Holdout(&'b Candidate),
    Nothing,
}

/// What this page already shows: the content of each decision so far, and the stable
/// ids of contents and campaigns shown (caps count them too, so two slots cannot
/// overrun a cap together).
pub(crate) struct Page<'p> {
    pub placed: &'p [u16],
    pub shown: &'p [u32],
}

/// Impressions of a record within a cap's window.
pub(crate) fn in_window(record: Option<&Impression>, per: Period, now: UnixSeconds) -> u32 {
    match (record, per) {
        (None, _) => 0,
        (Some(r), Period::Lifetime) => r.total,
        (Some(r), Period::Seconds(p)) if now - r.window_start < p => r.count,
        (Some(_), Period::Seconds(_)) => 0,
    }
}

fn name_of(bundle: &Bundle, content: u16) -> &str {
    bundle
        .contents
        .get(usize::from(content))
        .map_or("?", |c| c.name.as_str())
}

/// Scans a slot's candidates (already in priority order) for the first eligible one,
/// noting each one's verdict in `trace` when a trace is asked for.
pub(crate) fn pick<'b>(
    bundle: &'b Bundle,
    facts: &Facts<'_>,
    next: &mut State,
    visitor_hex: &[u8; 32],
    candidates: &'b [Candidate],
    page: &Page<'_>,
    mut trace: Option<&mut Vec<CandidateTrace<'b>>>,
) -> Pick<'b> {
    let mut result = Pick::Nothing;
    for candidate in candidates {
        if !matches!(result, Pick::Nothing) {
            if let Some(trace) = trace.as_deref_mut() {
                trace.push(CandidateTrace {
                    candidate: &candidate.name,
                    priority: candidate.priority,
                    kept: false,
                    why: Verdict::NotEvaluated,
                });
                continue;
            }
            break;
        }
        let (pick, why) = match judge(bundle, facts, next, visitor_hex, candidate, page) {
            Ok(pick) => {
                let why = match &pick {
                    Pick::Won {
                        variant: Some(v), ..
                    } => Verdict::Variant(v),
                    Pick::Won { content, .. } => Verdict::Shows(name_of(bundle, *content)),
                    Pick::Holdout(_) | Pick::Nothing => Verdict::Holdout,
                };
                (Some(pick), why)
            }
            Err(skip) => (None, skip),
        };
        if let Some(trace) = trace.as_deref_mut() {
            trace.push(CandidateTrace {
                candidate: &candidate.name,
                priority: candidate.priority,
                kept: pick.is_some(),
                why,
            });
        }
        if let Some(pick) = pick {
            result = pick;
        }
    }
    result
}

/// Whether one candidate is eligible; `Err` says why not.
fn judge<'b>(
    bundle: &'b Bundle,
    facts: &Facts<'_>,
    next: &mut State,
    visitor_hex: &[u8; 32],
    candidate: &'b Candidate,
    page: &Page<'_>,
) -> Result<Pick<'b>, Verdict<'b>> {
    let this_request = |id: u32| {
        u32::try_from(page.shown.iter().filter(|&&s| s == id).count()).unwrap_or(u32::MAX)
    };
    let stage = facts.journey.stage;
    if candidate.stages & (1u64 << (stage % 64)) == 0 {
        let name = bundle
            .stages
            .get(usize::from(stage))
            .map_or("?", |s| s.name.as_str());
        return Err(Verdict::Stage(name));
    }
    if let Some(schedule) = candidate.schedule.filter(|s| !s.holds(facts.now)) {
        return Err(Verdict::Scheduled {
            from: schedule.from,
            until: schedule.until,
            campaign: None,
        });
    }
    if let Some(campaign) = candidate
        .campaign
        .and_then(|c| bundle.campaigns.get(usize::from(c)))
    {
        if let Some(schedule) = campaign.schedule.filter(|s| !s.holds(facts.now)) {
            return Err(Verdict::Scheduled {
                from: schedule.from,
                until: schedule.until,
                campaign: Some(&campaign.name),
            });
        }
    }
    // A store a lookup finds, and the rows it read, belong to the candidate whose rule
    // found them: none yet for this one. (Without feeds, lookups find nothing.)
    if facts.feeds.is_some() {
        facts.store.set(None);
        facts.looked.borrow_mut().clear();
    }
    if let Some(when) = &candidate.when {
        match when.verdict(facts) {
            Truth::True => {}
            Truth::False => return Err(Verdict::When),
            Truth::OutOfFuel => return Err(Verdict::OutOfFuel),
            Truth::NoData => return Err(Verdict::NoData),
        }
    }
    let (content, variant) = match &candidate.offer {
        Offer::Content(c) => (*c, None),
        Offer::Experiment(experiment) => {
            let sticky = next
                .experiments
                .iter()
                .find(|a| a.experiment == experiment.id)
                .map(|a| a.variant)
                .filter(|&v| {
                    v == Assignment::HOLDOUT || usize::from(v) < experiment.variants.len()
                });
            let assigned = match sticky {
                Some(v) => v,
                None => {
                    // The hex digits of the visitor id: ASCII, so always a `str`.
                    let visitor = std::str::from_utf8(visitor_hex).unwrap_or("");
                    let n = bucket::hash(&candidate.name, visitor, 2).unwrap_or(0.0);
                    let v = bucket::choose_variation(n, &experiment.ranges)
                        .and_then(|i| u8::try_from(i).ok())
                        .unwrap_or(Assignment::HOLDOUT);
                    next.experiments.retain(|a| a.experiment != experiment.id);
                    next.experiments.push(Assignment {
                        experiment: experiment.id,
                        variant: v,
                        at: facts.now,
                    });
                    v
                }
            };
            if assigned == Assignment::HOLDOUT {
                return Ok(Pick::Holdout(candidate));
            }
            let content = experiment
                .variants
                .get(usize::from(assigned))
                .copied()
                .unwrap_or(0);
            (content, Some(name_of(bundle, content)))
        }
    };
    if page.placed.contains(&content) {
        return Err(Verdict::Placed(name_of(bundle, content)));
    }
    for &prerequisite in &candidate.after {
        let seen = bundle
            .contents
            .get(usize::from(prerequisite))
            .is_some_and(|c| facts.seen_before(c));
        if !seen {
            return Err(Verdict::After(name_of(bundle, prerequisite)));
        }
    }
    if let Some(cap) = candidate.cap {
        let content_id = bundle.contents.get(usize::from(content)).map(|c| c.id);
        let record = content_id.and_then(|id| facts.impression(id));
        let shown = in_window(record, cap.per, facts.now)
            .saturating_add(content_id.map_or(0, this_request));
        if shown >= cap.max {
            return Err(Verdict::Cap {
                shown,
                max: cap.max,
                per: cap.per,
            });
        }
    }
    if let Some(k) = candidate.campaign {
        if let Some(campaign) = bundle.campaigns.get(usize::from(k)) {
            let shown = in_window(facts.impression(campaign.id), campaign.cap.per, facts.now)
                .saturating_add(this_request(campaign.id));
            if shown >= campaign.cap.max {
                return Err(Verdict::CampaignCap {
                    campaign: &campaign.name,
                    shown,
                    max: campaign.cap.max,
                    per: campaign.cap.per,
                });
            }
        }
    }
    Ok(Pick::Won {
        candidate,
        content,
        variant,
    })
}
