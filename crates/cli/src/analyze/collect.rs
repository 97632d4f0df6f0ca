//! Streaming collection and the join: lines in, sufficient statistics out.
//!
//! Lines may come in any order (several files, each from another Worker isolate or
//! log tail), so nothing is decided while reading. Per person the collector keeps only
//! compact facts: each exposure as 8 bytes (its time and an interned touch id), the
//! first exposure to each experiment (arm and time), and each conversion (goal, time,
//! value). Memory grows with people and their exposures, never with the text of the
//! lines; a person's exposures beyond [`MAX_TOUCHES_PER_PERSON`] (a crawler that got
//! through, a kiosk) are dropped oldest first, and counted. [`Collector::finish`] then
//! sorts each person's facts by time and joins them: the experiment counts per arm and
//! goal, and the attribution paths per goal and slot.

use std::collections::HashMap;

use super::logs::{self, Event, PersonId, Skip};
use super::{ArmCounts, Input, PathStat, Sufficient, TouchKey, Window};
use micromoment::bundle::{Bundle, ExperimentSpec, GoalSpec};

/// The most exposures kept per person.
pub const MAX_TOUCHES_PER_PERSON: usize = 4096;

/// Touch credit halves every 7 days in the time-decay model.
pub const HALF_LIFE_SECS: f64 = 7.0 * 86_400.0;

#[derive(Debug, Clone, Copy)]
struct Touch {
    at: u32,
    touch: u32,
}

#[derive(Debug, Clone, Copy)]
struct First {
    experiment: u16,
    arm: u16,
    at: u32,
}

#[derive(Debug, Clone, Copy)]
struct Convert {
    at: u32,
    goal: u16,
    value: f64,
}

#[derive(Debug, Default)]
struct Person {
    touches: Vec<Touch>,
    firsts: Vec<First>,
    conversions: Vec<Convert>,
}

/// Reads events and keeps, per person, what the join needs.
pub(crate) struct Collector<'b> {
    bundle_id: &'b str,
    experiments: Vec<ExperimentSpec<'b>>,
    experiment_index: HashMap<&'b str, u16>,
    goals: Vec<GoalSpec<'b>>,
    goal_index: HashMap<&'b str, u16>,
    index: HashMap<PersonId, u32>,
    people: Vec<Person>,
    strings: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    touch_index: HashMap<[u32; 4], u32>,
    touches: Vec<[u32; 4]>,
    pub input: Input,
}

const NONE: u32 = u32::MAX;

impl<'b> Collector<'b> {
    pub fn new(bundle: &'b Bundle) -> Self {
        let experiments = bundle.experiments();
        let goals: Vec<GoalSpec<'b>> = bundle.goals().collect();
        Collector {
            bundle_id: bundle.id(),
            experiment_index: experiments
                .iter()
                .enumerate()
                .filter_map(|(i, e)| Some((e.name, u16::try_from(i).ok()?)))
                .collect(),
            experiments,
            goal_index: goals
                .iter()
                .enumerate()
                .filter_map(|(i, g)| Some((g.name, u16::try_from(i).ok()?)))
                .collect(),
            goals,
            index: HashMap::new(),
            people: Vec::new(),
            strings: HashMap::new(),
            names: Vec::new(),
            touch_index: HashMap::new(),
            touches: Vec::new(),
            input: Input::default(),
        }
    }

    fn intern(&mut self, text: &str) -> u32 {
        if let Some(&id) = self.strings.get(text) {
            return id;
        }
        let id = u32::try_from(self.names.len()).unwrap_or(NONE - 1);
        self.names.push(text.into());
        self.strings.insert(text.into(), id);
        id
    }

    fn person(&mut self, id: PersonId) -> Option<&mut Person> {
        let next = u32::try_from(self.people.len()).ok()?;
        let at = *self.index.entry(id).or_insert(next);
        if at == next {
            self.people.push(Person::default());
        }
        self.people.get_mut(usize::try_from(at).ok()?)
    }

    /// Reads one line.
    pub fn line(&mut self, line: &[u8]) {
        self.input.lines += 1;
        match logs::parse(line) {
            Ok(event) => {
                if let Err(skip) = self.event(event) {
                    self.input.skip(skip);
                }
            }
            Err(skip) => self.input.skip(skip),
        }
    }

    fn event(&mut self, event: Event<'_>) -> Result<(), Skip> {
        match event {
            Event::Exposure(e) => {
                if e.bundle.as_deref().is_some_and(|b| b != self.bundle_id) {
                    return Err(Skip::OtherBundle);
                }
                let key = [
                    self.intern(&e.content),
                    self.intern(&e.slot),
                    e.candidate.as_deref().map_or(NONE, |c| self.intern(c)),
                    self.intern(&e.channel),
                ];
                let next = u32::try_from(self.touches.len()).unwrap_or(NONE);
                let touch = *self.touch_index.entry(key).or_insert(next);
                if touch == next {
                    self.touches.push(key);
                }
                let first = self.arm(e.experiment.as_deref(), e.variant.as_deref());
                self.input.exposures += 1;
                let at = e.at;
                let Some(person) = self.person(e.person) else {
                    return Ok(());
                };
                person.touches.push(Touch { at, touch });
                let mut dropped = 0;
                if person.touches.len() > 2 * MAX_TOUCHES_PER_PERSON {
                    // Keep the newest: sort by time and drop the excess oldest.
                    person.touches.sort_by_key(|t| t.at);
                    dropped = person.touches.len() - MAX_TOUCHES_PER_PERSON;
                    person.touches.drain(..dropped);
                }
                if let Some((experiment, arm)) = first {
                    match person
                        .firsts
                        .iter_mut()
                        .find(|f| f.experiment == experiment)
                    {
                        Some(f) if at < f.at => {
                            f.at = at;
                            f.arm = arm;
                        }
                        Some(_) => {}
                        None => person.firsts.push(First {
                            experiment,
                            arm,
                            at,
                        }),
                    }
                }
                self.input.dropped_touches += dropped as u64;
                Ok(())
            }
            Event::Conversion(c) => {
                if c.bundle.as_deref().is_some_and(|b| b != self.bundle_id) {
                    return Err(Skip::OtherBundle);
                }
                let goal = *self
                    .goal_index
                    .get(c.goal.as_ref())
                    .ok_or(Skip::UnknownGoal)?;
                self.input.conversions += 1;
                let (at, value) = (c.at, c.value);
                if let Some(person) = self.person(c.person) {
                    person.conversions.push(Convert { at, goal, value });
                }
                Ok(())
            }
        }
    }

    /// The experiment and arm of an exposure, when it names a known one.
    fn arm(&mut self, experiment: Option<&str>, variant: Option<&str>) -> Option<(u16, u16)> {
        let experiment = experiment?;
        let Some(&e) = self.experiment_index.get(experiment) else {
            self.input.unknown_experiments += 1;
            return None;
        };
        let spec = self.experiments.get(usize::from(e))?;
        let arm = match variant {
            Some("holdout") => Some(spec.variants.len()),
            Some(v) => spec.variants.iter().position(|(c, _)| *c == v),
            None => None,
        };
        match arm.and_then(|a| u16::try_from(a).ok()) {
            Some(arm) => Some((e, arm)),
            None => {
                self.input.unknown_variants += 1;
                None
            }
        }
    }

    /// Sorts each person's facts by time and joins them within `window`.
    pub fn finish(self, window: &Window) -> Sufficient {
        let Collector {
            experiments,
            goals,
            mut people,
            names,
            touches,
            input,
            ..
        } = self;
        let name = |id: u32| {
            names
                .get(usize::try_from(id).unwrap_or(usize::MAX))
                .map(|s| s.to_string())
        };
        let touch_keys: Vec<TouchKey> = touches
            .iter()
            .map(|&[content, slot, candidate, channel]| TouchKey {
                content: name(content).unwrap_or_default(),
                slot: name(slot).unwrap_or_default(),
                candidate: name(candidate),
                channel: name(channel).unwrap_or_default(),
            })
            .collect();
        let mut out = Sufficient::empty(&experiments, goals.len());
        out.touches = touch_keys;
        out.input = input;
        let w = window.seconds;
        let mut path: Vec<u32> = Vec::new();
        let mut times: Vec<u32> = Vec::new();
        let mut slots: Vec<u32> = Vec::new();
        let mut in_slot: Vec<Touch> = Vec::new();
        let slot_of = |touch: u32| {
            touches
                .get(usize::try_from(touch).unwrap_or(usize::MAX))
                .map_or(NONE, |key| key[1])
        };
        for person in &mut people {
            person.touches.sort_by_key(|t| t.at);
            person.conversions.sort_by_key(|c| c.at);
            if !person.touches.is_empty() {
                out.people += 1.0;
            }
            // Experiments: the arm of the first exposure; conversions within the
            // window after it.
            for first in &person.firsts {
                let Some(per_goal) = out.arms.get_mut(usize::from(first.experiment)) else {
                    continue;
                };
                let start = i64::from(first.at);
                for (g, arms) in per_goal.iter_mut().enumerate() {
                    let (mut converted, mut value) = (false, 0.0);
                    for c in &person.conversions {
                        let at = i64::from(c.at);
                        if usize::from(c.goal) == g && at >= start && at <= start.saturating_add(w)
                        {
                            converted = true;
                            value += c.value;
                        }
                    }
                    if let Some(arm) = arms.get_mut(usize::from(first.arm)) {
                        arm.people += 1.0;
                        arm.conversions += f64::from(u8::from(converted));
                        arm.value_sum += value;
                        arm.value_sum_squares += value * value;
                    }
                }
            }
            for c in &person.conversions {
                if let Some(total) = out.totals.get_mut(usize::from(c.goal)) {
                    total.0 += 1.0;
                    total.1 += c.value;
                }
            }
            // Attribution, per slot (a page shows several slots at once, so a path
            // across slots would order same-second exposures arbitrarily): per goal,
            // each conversion's path is the slot's exposures since the previous
            // conversion of that goal and within the window before it.
            slots.clear();
            for t in &person.touches {
                let slot = slot_of(t.touch);
                if !slots.contains(&slot) {
                    slots.push(slot);
                }
            }
            for &slot in &slots {
                in_slot.clear();
                in_slot.extend(person.touches.iter().filter(|t| slot_of(t.touch) == slot));
                for (g, paths) in out.paths.iter_mut().enumerate() {
                    let mut rest: &[Touch] = &in_slot;
                    for c in person
                        .conversions
                        .iter()
                        .filter(|c| usize::from(c.goal) == g)
                    {
                        let upto = rest.partition_point(|t| t.at <= c.at);
                        let (journey, after) = rest.split_at(upto);
                        rest = after;
                        let since = i64::from(c.at).saturating_sub(w);
                        let old = journey.partition_point(|t| i64::from(t.at) < since);
                        let (stale, recent) = journey.split_at(old);
                        if collapse(stale, &mut path, &mut times) {
                            paths.add_null(&path);
                        }
                        if collapse(recent, &mut path, &mut times) {
                            paths.add_conversion(&path, &times, c.at, c.value);
                        }
                    }
                    if collapse(rest, &mut path, &mut times) {
                        paths.add_null(&path);
                    }
                }
            }
        }
        out
    }
}

/// Consecutive exposures of one touch are one touch, timed at its last exposure.
/// Returns whether the path is non-empty.
fn collapse(touches: &[Touch], path: &mut Vec<u32>, times: &mut Vec<u32>) -> bool {
    path.clear();
    times.clear();
    for t in touches {
        match (path.last(), times.last_mut()) {
            (Some(&last), Some(time)) if last == t.touch => *time = t.at,
            _ => {
                path.push(t.touch);
                times.push(t.at);
            }
        }
    }
    !path.is_empty()
}

/// Path counts of one goal: the sufficient statistic of every attribution model.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Paths {
    pub(crate) map: HashMap<Vec<u32>, PathStat>,
}

impl Paths {
    fn entry(&mut self, path: &[u32]) -> &mut PathStat {
        if !self.map.contains_key(path) {
            self.map.insert(
                path.to_vec(),
                PathStat {
                    time_decay: vec![0.0; path.len()],
                    time_decay_value: vec![0.0; path.len()],
                    ..PathStat::default()
                },
            );
        }
        self.map.entry(path.to_vec()).or_default()
    }

    fn add_null(&mut self, path: &[u32]) {
        self.entry(path).nulls += 1.0;
    }

    fn add_conversion(&mut self, path: &[u32], times: &[u32], at: u32, value: f64) {
        let weights: Vec<f64> = times
            .iter()
            .map(|&t| (-(f64::from(at) - f64::from(t)) / HALF_LIFE_SECS).exp2())
            .collect();
        let total: f64 = weights.iter().sum();
        let stat = self.entry(path);
        stat.conversions += 1.0;
        stat.value += value;
        for ((td, tdv), w) in stat
            .time_decay
            .iter_mut()
            .zip(stat.time_decay_value.iter_mut())
            .zip(&weights)
        {
            *td += w / total;
            *tdv += value * w / total;
        }
    }
}

impl Sufficient {
    /// No people yet, with the arms of every experiment and goal.
    pub(crate) fn empty(experiments: &[ExperimentSpec<'_>], goals: usize) -> Sufficient {
        Sufficient {
            people: 0.0,
            arms: experiments
                .iter()
                .map(|e| vec![vec![ArmCounts::default(); e.variants.len() + 1]; goals])
                .collect(),
            touches: Vec::new(),
            paths: vec![Paths::default(); goals],
            totals: vec![(0.0, 0.0); goals],
            input: Input::default(),
        }
    }
}
