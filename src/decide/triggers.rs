//! The triggers a request fires (docs/triggers.md): a stage entered, an event, a rule turned
//! true; each at most as often as its cap allows, counted in the state as a content's
//! impressions are (so, once linked, across the person's devices).

use crate::bundle::TriggerOn;
use crate::bundle::{Bundle, Period};
use crate::token::State;

use super::facts::Journey;
use super::journey::Scene;
use super::types::Fired;

/// The journey before and after this request's signals.
pub(crate) struct Moment<'m> {
    pub before: Journey,
    pub before_intents: &'m [f64],
    pub after: Journey,
    pub after_intents: &'m [f64],
}

/// The triggers `scene`'s request fires, their impressions recorded in `next`. A
/// trigger with a delay fires only for a `returning` person (a request that carried a
/// valid token, or a backend's): a cookie-less request, which anyone can send in a loop,
/// never leaves anything waiting.
pub(crate) fn fire<'b>(
    bundle: &'b Bundle,
    scene: &Scene<'_, 'b>,
    moment: &Moment<'_>,
    next: &mut State,
    stage: &'b str,
    returning: bool,
) -> Vec<Fired<'b>> {
    let mut out = Vec::new();
    for trigger in &bundle.triggers {
        if trigger.delay.is_some() && !returning {
            continue;
        }
        let fires = match &trigger.on {
            TriggerOn::Stage(s) => {
                moment.after.stage == *s
                    && (scene.prior.stage.is_none()
                        || moment.before.stage != *s
                        || moment.before.generation != moment.after.generation)
            }
            TriggerOn::Event(e) => scene.ctx.event.as_deref() == Some(e.as_str()),
            TriggerOn::When(rule) => {
                let before = scene.facts(moment.before, moment.before_intents);
                let after = scene.facts(moment.after, moment.after_intents);
                rule.matches(&after) && !rule.matches(&before)
            }
            // Fired by its feed's object when a watched row changes, never by a request.
            TriggerOn::Feed { .. } => false,
        };
        if !fires {
            continue;
        }
        if let Some(cap) = trigger.cap {
            let used =
                next.impressions
                    .iter()
                    .find(|i| i.id == trigger.id)
                    .map_or(0, |i| match cap.per {
                        Period::Seconds(p) if scene.now - i.window_start >= p => 0,
                        _ => i.count,
                    });
            if used >= cap.max {
                continue;
            }
        }
        super::record_impression(next, trigger.id, trigger.cap.map(|c| c.per), scene.now);
        out.push(Fired {
            trigger: &trigger.name,
            send: trigger
                .send
                .iter()
                .filter_map(|&d| bundle.destinations.get(usize::from(d)))
                .map(|d| d.name.as_str())
                .collect(),
            delay_secs: trigger.delay,
            unless: trigger.unless.as_deref(),
            stage,
        });
    }
    out
}
