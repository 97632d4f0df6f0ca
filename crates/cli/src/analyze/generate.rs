//! Realistic logs with a known answer: a simulated population run through the real
//! engine (`decide` with the bundle), for tests, calibration and benchmarks.
//!
//! Each person has one or two devices (two means a profile links them), each device
//! its own visitor id and journey state, carried from request to request in memory as
//! a token would carry it. A person visits a few times over days, reading pages that
//! move their journey (model pages, the configurator, offers), arriving from search,
//! social or a newsletter with UTM tags, on a phone, a tablet or a desktop; phone
//! owners sometimes open the app. Every request's records (`micromoment::record`: its
//! exposures, and a conversion for each event a goal names) are written by
//! `Record::line`, the writer the Worker writes them with.
//!
//! The **planted truth**: a person's first exposure to the planned experiment decides,
//! with the arm's planted rate, whether they convert on the planned goal within five
//! days (and with what value); other goals' events happen at random on consideration
//! pages. A planted sample-ratio mismatch drops a share of one arm's people from the
//! experiment's exposures, as a broken logging path would.
//!
//! Deterministic: everything is drawn from a seeded generator; there is no clock.

use micromoment::bundle::Bundle;
use micromoment::context::{
    App, Channel, Context, Device, DeviceType, Geo, Page, Referrer, ReferrerKind, Utm,
};
use micromoment::ids::hex128_string;
use micromoment::record::{self, Event, What};
use micromoment::session::{self, Entropy, Slots, Visitor};
use micromoment::token::State;

/// What to simulate.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The seed: the same plan and seed give the same lines.
    pub seed: u64,
    /// People to simulate.
    pub people: usize,
    /// The first possible visit, Unix seconds.
    pub start: i64,
    /// First visits spread over this many days.
    pub days: u32,
    /// The most visits per person (at least one).
    pub max_visits: u32,
    /// The most page views per visit (at least one).
    pub max_pages: u32,
    /// The web slots each page asks for (default: `hero`, `sidebar`, `banner` where
    /// the bundle has them, else every slot).
    pub slots: Vec<String>,
    /// The experiment with the planted effect (default: the bundle's first).
    pub experiment: Option<String>,
    /// The goal with the planted effect (default: the first goal with a value, else
    /// the first goal).
    pub goal: Option<String>,
    /// The control's chance to convert within five days of the first exposure.
    pub base_rate: f64,
    /// Per arm (variants in bundle order, then the holdout): the planted relative lift
    /// of the conversion chance; missing arms get 0.
    pub lifts: Vec<f64>,
    /// The mean value of a conversion in the control.
    pub base_value: f64,
    /// Per arm: the planted relative lift of the value of a conversion.
    pub value_lifts: Vec<f64>,
    /// A planted sample-ratio mismatch: this arm loses this share of its people's
    /// experiment exposures.
    pub drop: Option<(usize, f64)>,
    /// The chance, per consideration-stage page view, of another goal's event.
    pub other_goal_rate: f64,
    /// Write a non-event log line (a wrangler request log) after every this many lines.
    pub noise_every: Option<u64>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            seed: 1,
            people: 10_000,
            start: 1_790_000_000,
            days: 14,
            max_visits: 4,
            max_pages: 3,
            slots: Vec::new(),
            experiment: None,
            goal: None,
            base_rate: 0.2,
            lifts: vec![0.0, 0.15, -0.1],
            base_value: 120.0,
            value_lifts: vec![0.0, 0.05, 0.0],
            drop: None,
            other_goal_rate: 0.02,
            noise_every: None,
        }
    }
}

/// What was planted, to compare a result with.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// The experiment.
    pub experiment: String,
    /// The goal.
    pub goal: String,
    /// The arms: variants in bundle order, then `holdout`.
    pub arms: Vec<String>,
    /// Each arm's planted chance to convert.
    pub rates: Vec<f64>,
    /// Each arm's planted relative lift of the rate against the first.
    pub lifts: Vec<f64>,
    /// Each arm's planted relative lift of the mean value per person.
    pub value_lifts: Vec<f64>,
    /// Lines written.
    pub lines: u64,
    /// People whose first exposure was each arm (before any planted drop).
    pub exposed: Vec<u64>,
}

/// A plan the bundle cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// The bundle has no experiment of that name (or none at all).
    #[error("no experiment \"{0}\" in the bundle")]
    NoExperiment(String),
    /// The bundle has no goal of that name (or none at all).
    #[error("no goal \"{0}\" in the bundle")]
    NoGoal(String),
}

/// SplitMix64: small, fast, and plenty for a simulation.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Rng {
        let mut r = Rng(seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
        r.next();
        r
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.unit() * (hi - lo) as f64) as i64
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get((self.unit() * items.len() as f64) as usize)
    }

    fn id(&mut self) -> [u8; 16] {
        let (hi, lo) = (self.next(), self.next());
        ((u128::from(hi) << 64) | u128::from(lo)).to_le_bytes()
    }

    /// A log-normal factor with mean 1 (σ = 0.5): order values vary a lot.
    fn value_factor(&mut self) -> f64 {
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (0.5 * z - 0.125).exp()
    }
}

const LANDING: &[&str] = &[
    "/",
    "/",
    "/models/suv/x5",
    "/models/ev/e1",
    "/offers",
    "/configurator/suv/x5",
];
const PAGES: &[&str] = &[
    "/models/suv/x5",
    "/models/suv/x3",
    "/models/ev/e1",
    "/configurator/suv/x5",
    "/configurator/ev/e1",
    "/charging/map",
    "/offers",
    "/dealers",
    "/",
];
const PLACES: &[(&str, &str, &str)] = &[
    ("FR", "Lyon", "Europe/Paris"),
    ("FR", "Paris", "Europe/Paris"),
    ("DE", "Berlin", "Europe/Berlin"),
    ("GB", "Leeds", "Europe/London"),
    ("US", "Austin", "America/Chicago"),
    ("ES", "Madrid", "Europe/Madrid"),
];
const CAMPAIGNS: &[(&str, &str, &str)] = &[
    ("newsletter", "email", "suv-spring"),
    ("google", "cpc", "ev-launch"),
    ("facebook", "social", "suv-family"),
];

/// One request of a person's timeline.
#[derive(Debug, Clone, Copy)]
struct Request<'b> {
    at: i64,
    device: usize,
    event: Option<&'b str>,
    path: &'static str,
    landing: bool,
    /// The event's value, as the client sends it: the planted goal's, on a planted
    /// conversion.
    value: f64,
}

fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The request context of one request: the person's place and device, the page, and
/// on a landing page where they came from.
fn context(
    rng: &mut Rng,
    (country, city, timezone): (&str, &str, &str),
    kind: DeviceType,
    app: bool,
    request: &Request<'_>,
) -> Context {
    let utm = if request.landing && rng.chance(0.3) {
        rng.pick(CAMPAIGNS)
            .map(|&(source, medium, campaign)| Utm {
                source: Some(source.into()),
                medium: Some(medium.into()),
                campaign: Some(campaign.into()),
                ..Utm::default()
            })
            .unwrap_or_default()
    } else {
        Utm::default()
    };
    let kinds = [
        ReferrerKind::Search,
        ReferrerKind::Social,
        ReferrerKind::Direct,
        ReferrerKind::Email,
    ];
    let referrer = Referrer {
        kind: if request.landing {
            rng.pick(&kinds).copied()
        } else {
            Some(ReferrerKind::Internal)
        },
        ..Referrer::default()
    };
    Context {
        channel: if app { Channel::App } else { Channel::Web },
        geo: Geo {
            country: Some(country.into()),
            city: Some(city.into()),
            timezone: Some(timezone.into()),
            ..Geo::default()
        },
        device: Device {
            kind: Some(kind),
            ..Device::default()
        },
        app: App {
            version: app.then(|| "4.2.0".to_owned()),
        },
        page: Page {
            path: Some(request.path.to_owned()),
            ..Page::default()
        },
        utm,
        referrer,
        event: request.event.map(str::to_owned),
        ..Context::default()
    }
}

struct DeviceSim {
    visitor: [u8; 16],
    kind: DeviceType,
    app: bool,
    state: Option<State>,
}

/// Runs the plan, handing each line (without a newline) to `emit`.
pub fn generate(
    bundle: &Bundle,
    plan: &Plan,
    mut emit: impl FnMut(&str),
) -> Result<Truth, GenerateError> {
    let experiments = bundle.experiments();
    let spec = match &plan.experiment {
        Some(name) => experiments.iter().find(|e| e.name == name.as_str()),
        None => experiments.first(),
    }
    .ok_or_else(|| GenerateError::NoExperiment(plan.experiment.clone().unwrap_or_default()))?;
    let goals: Vec<_> = bundle.goals().collect();
    let goal = match &plan.goal {
        Some(name) => goals.iter().find(|g| g.name == name.as_str()),
        None => goals.iter().find(|g| g.value).or(goals.first()),
    }
    .ok_or_else(|| GenerateError::NoGoal(plan.goal.clone().unwrap_or_default()))?;
    let mut arms: Vec<String> = spec.variants.iter().map(|(c, _)| (*c).to_owned()).collect();
    arms.push("holdout".into());
    let lift = |i: usize| plan.lifts.get(i).copied().unwrap_or(0.0);
    let value_lift = |i: usize| plan.value_lifts.get(i).copied().unwrap_or(0.0);
    let rates: Vec<f64> = (0..arms.len())
        .map(|i| (plan.base_rate * (1.0 + lift(i))).clamp(0.0, 1.0))
        .collect();
    let control = rates.first().copied().unwrap_or(0.0);
    let mut truth = Truth {
        experiment: spec.name.to_owned(),
        goal: goal.name.to_owned(),
        lifts: rates
            .iter()
            .map(|r| {
                if control > 0.0 {
                    r / control - 1.0
                } else {
                    0.0
                }
            })
            .collect(),
        value_lifts: (0..arms.len())
            .map(|i| (1.0 + lift(i)) * (1.0 + value_lift(i)) - 1.0)
            .collect(),
        rates,
        exposed: vec![0; arms.len()],
        arms,
        lines: 0,
    };
    let other_goals: Vec<_> = goals.iter().filter(|g| g.name != goal.name).collect();
    let wanted: Vec<&str> = if plan.slots.is_empty() {
        vec!["hero", "sidebar", "banner"]
    } else {
        plan.slots.iter().map(String::as_str).collect()
    };
    let slots_web = bundle
        .resolve_slots(wanted.into_iter().filter(|s| bundle.slot_ref(s).is_some()))
        .unwrap_or_default();
    let slots_web = if slots_web.is_empty() {
        bundle.all_slots()
    } else {
        slots_web
    };
    let slots_app = bundle
        .resolve_slots(
            ["app-card", "push"]
                .into_iter()
                .filter(|s| bundle.slot_ref(s).is_some()),
        )
        .unwrap_or_default();
    let mut written = 0u64;
    let mut out = |line: &str, truth: &mut Truth| {
        emit(line);
        written += 1;
        truth.lines += 1;
        if let Some(every) = plan.noise_every {
            if every > 0 && written.is_multiple_of(every) {
                emit("[wrangler:info] GET /v1/decide?slots=hero,sidebar 200 OK (3ms)");
                truth.lines += 1;
            }
        }
    };
    for p in 0..plan.people {
        let mut rng = Rng::new(plan.seed, p as u64 + 1);
        let linked = rng.chance(0.3);
        // Two devices of a person are joined by a profile their tokens do not carry
        // (each device is bucketed by its own id): their records name the person as a
        // linked device's do.
        let profile = linked.then(|| hex128_string(&rng.id()));
        let kind = |rng: &mut Rng| {
            let x = rng.unit();
            if x < 0.55 {
                DeviceType::Mobile
            } else if x < 0.9 {
                DeviceType::Desktop
            } else {
                DeviceType::Tablet
            }
        };
        let mut devices: Vec<DeviceSim> = (0..if linked { 2 } else { 1 })
            .map(|_| {
                let kind = kind(&mut rng);
                DeviceSim {
                    visitor: rng.id(),
                    kind,
                    app: kind == DeviceType::Mobile && rng.chance(0.25),
                    state: None,
                }
            })
            .collect();
        let place = *rng.pick(PLACES).unwrap_or(&("FR", "Lyon", "Europe/Paris"));
        let visits = 1 + (rng.unit() * plan.max_visits.max(1) as f64) as u32;
        let mut at = plan.start + rng.range(0, i64::from(plan.days) * 86_400);
        let mut first_arm: Option<usize> = None;
        let mut dropped = false;
        let mut requests: Vec<Request<'_>> = Vec::new();
        for v in 0..visits {
            let device = rng.range(0, devices.len() as i64) as usize;
            let pages = 1 + rng.range(0, i64::from(plan.max_pages.max(1)));
            let mut page_at = at;
            for n in 0..pages {
                let path = if v == 0 && n == 0 {
                    rng.pick(LANDING)
                } else {
                    rng.pick(PAGES)
                }
                .copied()
                .unwrap_or("/");
                requests.push(Request {
                    at: page_at,
                    device,
                    event: None,
                    path,
                    landing: n == 0,
                    value: 0.0,
                });
                page_at += rng.range(30, 400);
            }
            at = page_at + rng.range(2 * 3600, 3 * 86_400);
        }
        let mut i = 0;
        let mut tail = false;
        loop {
            let Some(request) = requests.get(i).copied() else {
                // Never in the experiment: some convert anyway, after their last visit.
                if !tail && first_arm.is_none() && rng.chance(plan.base_rate * 0.5) {
                    tail = true;
                    let last = requests.last().map_or(plan.start, |r| r.at);
                    requests.push(Request {
                        at: last + rng.range(3600, 2 * 86_400),
                        device: 0,
                        event: Some(goal.event),
                        path: "/checkout/thanks",
                        landing: false,
                        value: if goal.value {
                            round_cents(plan.base_value * rng.value_factor())
                        } else {
                            0.0
                        },
                    });
                    continue;
                }
                break;
            };
            i += 1;
            let Some(device) = devices.get_mut(request.device) else {
                continue;
            };
            let app = device.app && request.event.is_none() && rng.chance(0.3);
            let ctx = context(&mut rng, place, device.kind, app, &request);
            // An event goes to `POST /v1/events`, which decides no slot.
            let slots: &[_] = if request.event.is_some() {
                &[]
            } else if app && !slots_app.is_empty() {
                &slots_app
            } else {
                &slots_web
            };
            let visitor = device.state.as_ref().map_or(Visitor::New, Visitor::State);
            let Ok(outcome) = session::decide(
                bundle,
                None,
                &session::Request {
                    slots: Slots::Refs(slots),
                    ..session::Request::new(
                        visitor,
                        &ctx,
                        request.at,
                        Entropy::Fixed(device.visitor),
                    )
                },
            ) else {
                continue;
            };
            let decision = outcome.decision;
            let event = request.event.map(|name| Event {
                name,
                value: Some(request.value),
            });
            let mut plant: Option<Request<'_>> = None;
            for mut r in record::records(bundle, &decision, &ctx, event.as_slice()) {
                r.profile.clone_from(&profile);
                if let What::Exposure {
                    experiment: Some(experiment),
                    variant,
                    ..
                } = r.what
                {
                    if experiment == spec.name {
                        if first_arm.is_none() {
                            let arm = match variant {
                                Some("holdout") => truth.arms.len() - 1,
                                Some(v) => truth.arms.iter().position(|a| a == v).unwrap_or(0),
                                None => 0,
                            };
                            first_arm = Some(arm);
                            if let Some(n) = truth.exposed.get_mut(arm) {
                                *n += 1;
                            }
                            dropped = plan
                                .drop
                                .is_some_and(|(a, share)| a == arm && rng.chance(share));
                            let rate = truth.rates.get(arm).copied().unwrap_or(0.0);
                            if rng.chance(rate) {
                                let value = if goal.value {
                                    plan.base_value * (1.0 + value_lift(arm)) * rng.value_factor()
                                } else {
                                    0.0
                                };
                                // The planted conversion: the goal's event (`POST /v1/events`)
                                // from the person's first device, within five days.
                                plant = Some(Request {
                                    at: request.at + rng.range(600, 5 * 86_400),
                                    device: 0,
                                    event: Some(goal.event),
                                    path: "/checkout/thanks",
                                    landing: false,
                                    value: round_cents(value),
                                });
                            }
                        }
                        if dropped {
                            continue;
                        }
                    }
                }
                if let Ok(line) = r.line() {
                    out(&line, &mut truth);
                }
            }
            let stage = decision.stage;
            device.state = Some(decision.state);
            if let Some(plant) = plant {
                let pos = requests.partition_point(|r| r.at <= plant.at).max(i);
                requests.insert(pos, plant);
            }
            if request.event.is_none()
                && stage == "consideration"
                && rng.chance(plan.other_goal_rate)
            {
                if let Some(g) = rng.pick(&other_goals) {
                    requests.insert(
                        i,
                        Request {
                            at: request.at + 5,
                            event: Some(g.event),
                            landing: false,
                            ..request
                        },
                    );
                }
            }
        }
    }
    Ok(truth)
}
