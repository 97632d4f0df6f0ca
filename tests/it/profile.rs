//! One journey per person (docs/profiles.md): the merge and the profile's exchanges, over
//! random histories split across 2–5 devices and random delivery orders (proptest),
//! through the real engine and real tokens.
//!
//! - `join` is commutative and associative (exactly, but for the rounding of summed
//!   intent scores) and has the empty contribution as identity;
//! - a profile's view does not depend on the order the devices' exchanges arrive in,
//!   nor on retried and replayed ones (each counts once);
//! - with every request synced, a cap of 2 per week holds across devices (counted
//!   from the log of what every device showed, with the engine's own window rule);
//! - stages move forward only, on every device, unless a `back` transition moved
//!   them, and the back move wins over the stages set before it;
//! - the first experiment assignment made on any device is every device's.

use micromoment::context::Channel;
use micromoment::profile::{self, Message, Op, Profile, Reply};
use micromoment::session::{self, Entropy, Request, Slots, Visitor};
use micromoment::time::{DAY, HOUR, MINUTE};
use micromoment::token::{self, Assignment, Keys, Link, State};
use micromoment::{Budget, Bundle, Context};
use proptest::prelude::*;
use serde_json::json;

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const PROFILE: [u8; 16] = [0x51; 16];

fn bundle() -> Bundle {
    let source = json!({
        "id": "profiles", "version": 1,
        "journey": {"stages": ["awareness", "consideration", "decision", "purchase"],
            "transitions": [
                {"to": "consideration", "when": {"glob": [{"var": "page.path"}, "/models/**"]}},
                {"to": "decision", "when": {"==": [{"var": "event"}, "test_drive_booked"]}},
                {"to": "purchase", "when": {"==": [{"var": "event"}, "order_completed"]}},
                {"to": "awareness", "back": true, "when": {"==": [{"var": "event"}, "reset"]}}],
            "intents": {"suv": {"signals": [{"when": {"glob": [{"var": "page.path"}, "/models/suv/**"]}, "add": 20}],
                                "cap": 100, "half_life_days": 7}}},
        "content": {
            "film": {"html": "F"}, "drive": {"html": "D"}, "teaser-a": {"html": "A"},
            "teaser-b": {"html": "B"}, "next": {"html": "N"}, "thanks": {"html": "T"}
        },
        "slots": {
            "hero": {"default": "film", "candidates": [
                {"id": "thanks", "content": "thanks", "stages": ["purchase"], "priority": 40},
                {"id": "drive", "content": "drive", "priority": 30, "cap": {"max": 2, "per": "7d"},
                 "stages": ["consideration", "decision"]},
                {"id": "next", "content": "next", "priority": 25, "after": ["teaser-a"]},
                {"id": "test", "experiment": {"variants": [{"content": "teaser-a", "weight": 50},
                                                            {"content": "teaser-b", "weight": 50}]},
                 "priority": 20}
            ]}
        }
    });
    micromoment::bundle::compile(&source.to_string(), Budget::default())
        .expect("the profile bundle compiles")
}

fn keys() -> Keys {
    Keys::from_json(
        r#"{"current":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}}"#,
    )
    .unwrap()
}

fn device_id(n: usize) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[0] = 1 + u8::try_from(n).unwrap();
    id[15] = 0xd0;
    id
}

fn context(n: usize, path: &str, event: Option<&str>) -> Context {
    let mut ctx = Context::default();
    ctx.page.path = Some(path.to_owned());
    ctx.event = event.map(str::to_owned);
    // Phones, laptops and an app, by device number.
    match n % 3 {
        0 => ctx.device.kind = Some(micromoment::context::DeviceType::Mobile),
        1 => ctx.device.kind = Some(micromoment::context::DeviceType::Desktop),
        _ => ctx.channel = Channel::App,
    }
    ctx
}

/// A device: its token, as the browser or the app keeps it.
struct Phone {
    token: Option<String>,
}

/// One request of a simulated history.
#[derive(Debug, Clone)]
struct Step {
    device: usize,
    advance: i64,
    path: &'static str,
    event: Option<&'static str>,
}

fn step(devices: usize) -> impl Strategy<Value = Step> {
    (
        0..devices,
        prop_oneof![0i64..5 * MINUTE, 31 * MINUTE..6 * HOUR, HOUR..4 * DAY],
        prop::sample::select(vec!["/", "/models/suv/x5", "/models/ev", "/news"]),
        prop::option::weighted(
            0.3,
            prop::sample::select(vec!["test_drive_booked", "order_completed", "reset"]),
        ),
    )
        .prop_map(|(device, advance, path, event)| Step {
            device,
            advance,
            path,
            event,
        })
}

fn history() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (2usize..=5).prop_flat_map(|n| (Just(n), prop::collection::vec(step(n), 1..14)))
}

/// What the simulation saw.
#[derive(Default)]
struct Log {
    /// When `drive` (capped at 2 per 7 days) was shown, on any device.
    drive_shown: Vec<i64>,
    /// Per device, the stage generation and stage index of each of its decisions, in
    /// order.
    stages: Vec<Vec<(u16, usize)>>,
    /// Every decision's stage generation and stage index, in the order they were made.
    in_order: Vec<(u16, usize)>,
    /// Every assignment of the experiment made, with its time.
    assignments: Vec<Assignment>,
}

fn stage_index(bundle: &Bundle, name: &str) -> usize {
    bundle.stage_names().position(|s| s == name).unwrap()
}

/// Runs a history with every request synced before it is decided and its push
/// delivered at once: the profile as one strongly consistent object sees it.
fn run_synced(bundle: &Bundle, devices: usize, steps: &[Step]) -> (Profile, Vec<Phone>, Log, i64) {
    let keys = keys();
    let mut profile = Profile::default();
    let mut phones: Vec<Phone> = (0..devices)
        .map(|n| {
            // Every device starts linked (a login minted it a token) at sequence 0.
            let mut state = State::new_visitor(device_id(n), NOW, 30 * DAY);
            state.link = Some(Link {
                profile: PROFILE,
                seq: 0,
                devices: 1,
                linked_at: NOW,
            });
            Phone {
                token: Some(token::sign(&state, &keys).unwrap()),
            }
        })
        .collect();
    let mut log = Log {
        stages: vec![Vec::new(); devices],
        ..Log::default()
    };
    let mut now = NOW;
    for s in steps {
        now += s.advance;
        let ctx = context(s.device, s.path, s.event);
        let phone = &mut phones[s.device];
        // As the edge does: the visitor opened once, synced, the view adopted.
        let mut opened = session::open(
            Visitor::Token(phone.token.as_deref().unwrap()),
            Some(&keys),
            now,
            Entropy::Fixed([9; 16]),
        );
        let state = opened
            .state()
            .expect("the device's own token verifies")
            .clone();
        let link = state.link.expect("linked");
        // Synced before every decision (the strongest setting caps are promised in).
        let reply = profile.exchange(
            bundle,
            Message {
                op: Op::Sync,
                device: state.visitor,
                seq: link.seq,
                kind: ctx.visit_kind(),
                now,
                state: state.clone(),
            },
        );
        match reply {
            Reply::Synced { view, seq, devices } => opened.adopt(&view, seq, devices),
            other => panic!("a sync answered {other:?}"),
        }
        let before = opened.state().unwrap().experiments.clone();
        let request = Request {
            slots: Slots::Names(&["hero"]),
            ..Request::new(Visitor::Opened(&opened), &ctx, now, Entropy::Fixed([9; 16]))
        };
        let outcome = session::decide(bundle, Some(&keys), &request).unwrap();
        let decision = &outcome.decision;
        if decision.decisions[0].content == "drive" {
            log.drive_shown.push(now);
        }
        let mark = (
            decision.state.stage_generation,
            stage_index(bundle, decision.stage),
        );
        log.stages[s.device].push(mark);
        log.in_order.push(mark);
        for a in &decision.state.experiments {
            if !before.contains(a) {
                log.assignments.push(*a);
            }
        }
        if let Some(push) = outcome.push.clone() {
            let reply = profile.exchange(bundle, push);
            assert!(matches!(reply, Reply::Pushed { .. }), "{reply:?}");
        }
        phones[s.device].token = outcome.token.clone();
    }
    (profile, phones, log, now)
}

/// Impressions per window, counted the way one device counts them (a window opens at
/// the first impression after the last one closed).
fn windows(shown: &[i64], period: i64) -> Vec<usize> {
    let mut counts = Vec::new();
    let mut start = None;
    for &t in shown {
        match start {
            Some(s) if t - s < period => *counts.last_mut().unwrap() += 1,
            _ => {
                start = Some(t);
                counts.push(1);
            }
        }
    }
    counts
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(40_000),
        .. ProptestConfig::default()
    })]

    /// Caps hold across devices, stages move forward only but for a back move, and the
    /// first assignment is everybody's, when every request syncs.
    #[test]
    fn synced_devices_share_caps_stages_and_variants((devices, steps) in history()) {
        let bundle = bundle();
        let (profile, phones, log, end) = run_synced(&bundle, devices, &steps);
        // Caps: 2 per 7 days across every device.
        for count in windows(&log.drive_shown, 7 * DAY) {
            prop_assert!(count <= 2, "a window showed drive {} times: {:?}", count, log.drive_shown);
        }
        // Stages: on every device, never behind the stage it had but after a back move
        // (on any device: the generation rose), and generations never fall.
        for seen in &log.stages {
            for pair in seen.windows(2) {
                prop_assert!(pair[1] >= pair[0], "stage went from {:?} to {:?}: {:?}", pair[0], pair[1], seen);
            }
        }
        // Across devices: every device decides at or past the furthest stage of the
        // latest generation any device had reached before its sync.
        let mut furthest = (0u16, 0usize);
        for (s, &(generation, stage)) in steps.iter().zip(log.in_order.iter()) {
            prop_assert!((generation, stage) >= furthest, "device {} decided at {:?} after {:?}", s.device, (generation, stage), furthest);
            furthest = furthest.max((generation, stage));
        }
        // First assignment: every device ends with the earliest one made.
        let keys = keys();
        let view = profile.view(&bundle, end);
        if let Some(first) = log.assignments.iter().min_by_key(|a| (a.at, a.variant)) {
            prop_assert_eq!(view.experiments.iter().find(|a| a.experiment == first.experiment).map(|a| a.variant), Some(first.variant));
            for phone in &phones {
                let Some(text) = phone.token.as_deref() else { continue };
                let mut state = token::verify(text, &keys, end).unwrap();
                let link = state.link.unwrap();
                if let Reply::Synced { view, .. } = profile.clone().exchange(&bundle, Message {
                    op: Op::Sync, device: state.visitor, seq: link.seq, kind: None, now: end, state: state.clone(),
                }) {
                    state = profile::adopt(&state, &view, 1);
                }
                let mine = state.experiments.iter().find(|a| a.experiment == first.experiment).map(|a| a.variant);
                prop_assert_eq!(mine, Some(first.variant));
            }
        }
        prop_assert!(profile.device_count() as usize <= devices);
    }
}

/// A device's own history through the engine, unlinked: the state it ends with is a
/// contribution as a device would make it (real ids, windows, decayed intents).
fn solo(bundle: &Bundle, device: usize, start: i64, steps: &[Step]) -> State {
    let mut state = State::new_visitor(device_id(device), start, 30 * DAY);
    let mut now = start;
    for s in steps {
        now += s.advance;
        let ctx = context(device, s.path, s.event);
        let request = Request {
            slots: Slots::Names(&["hero"]),
            ..Request::new(Visitor::State(&state), &ctx, now, Entropy::Fixed([7; 16]))
        };
        state = session::decide(bundle, None, &request)
            .unwrap()
            .decision
            .state
            .clone();
    }
    state
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(1), 0..10)
}

/// Two states equal as contributions: every field but the visitor and consent (a join
/// keeps its left side's); intents by their score decayed to the later of their two
/// times (the bundle's one topic halves in 7 days), to a relative 1e-5 (f32 sums round).
fn assert_same(a: &State, b: &State) -> Result<(), TestCaseError> {
    let strip = |s: &State| State {
        visitor: [0; 16],
        consent: token::Consent::default(),
        intents: Vec::new(),
        ..s.clone()
    };
    prop_assert_eq!(strip(a), strip(b));
    prop_assert_eq!(a.intents.len(), b.intents.len());
    for (x, y) in a.intents.iter().zip(&b.intents) {
        prop_assert_eq!(x.topic, y.topic);
        let at = x.updated_at.max(y.updated_at);
        let decayed = |score: f32, from: i64| {
            f64::from(score) * 0.5f64.powf((at - from) as f64 / (7 * DAY) as f64)
        };
        let (x, y) = (
            decayed(x.score, x.updated_at),
            decayed(y.score, y.updated_at),
        );
        prop_assert!(
            (x - y).abs() <= 1e-5 * x.abs().max(y.abs()).max(1.0),
            "intent scores {} and {}",
            x,
            y
        );
    }
    Ok(())
}

/// One device's pushes after its first sync, as the edge plans them: requests decided
/// between syncs (`Sync::Skipped`), each push carrying the next sequence number.
fn pushes(
    bundle: &Bundle,
    keys: &Keys,
    device: usize,
    start: i64,
    steps: &[Step],
) -> (Message, Vec<Message>, i64) {
    let mut state = State::new_visitor(device_id(device), start, 30 * DAY);
    state.link = Some(Link {
        profile: PROFILE,
        seq: 0,
        devices: 1,
        linked_at: start,
    });
    let first = Message {
        op: Op::Sync,
        device: state.visitor,
        seq: 0,
        kind: None,
        now: start,
        state: state.clone(),
    };
    state.link.as_mut().unwrap().seq = 1;
    let mut token = token::sign(&state, keys).unwrap();
    let mut out = Vec::new();
    let mut now = start;
    for s in steps {
        now += s.advance;
        let ctx = context(device, s.path, s.event);
        let state = token::verify(&token, keys, now).unwrap();
        let request = Request {
            slots: Slots::Names(&["hero"]),
            ..Request::new(Visitor::State(&state), &ctx, now, Entropy::Fixed([3; 16]))
        };
        let outcome = session::decide(bundle, Some(keys), &request).unwrap();
        out.extend(outcome.push.clone());
        token = outcome.token.clone().unwrap();
    }
    (first, out, now)
}

fn view_after(bundle: &Bundle, firsts: &[Message], messages: &[Message], end: i64) -> State {
    let mut profile = Profile::default();
    for m in firsts {
        assert!(matches!(
            profile.exchange(bundle, m.clone()),
            Reply::Synced { .. }
        ));
    }
    for m in messages {
        let reply = profile.exchange(bundle, m.clone());
        assert!(
            matches!(reply, Reply::Pushed { .. } | Reply::Stale),
            "{reply:?}"
        );
    }
    profile.view(bundle, end)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(30_000),
        .. ProptestConfig::default()
    })]

    /// `join` is commutative and associative, and the empty contribution is its identity.
    #[test]
    fn join_is_commutative_associative_with_identity(
        a in steps(), b in steps(), c in steps(), gap in 0i64..20 * DAY,
    ) {
        let bundle = bundle();
        let (a, b, c) = (solo(&bundle, 0, NOW, &a), solo(&bundle, 1, NOW + 3600, &b), solo(&bundle, 2, NOW + 7200, &c));
        let now = [a.issued_at, b.issued_at, c.issued_at].into_iter().max().unwrap() + gap;
        let join = |x: &State, y: &State| profile::join(&bundle, x, y, now);
        assert_same(&join(&a, &b), &join(&b, &a))?;
        assert_same(&join(&join(&a, &b), &c), &join(&a, &join(&b, &c)))?;
        // The identity: nothing joined in changes nothing (lists come back sorted and
        // closed windows count nothing, so compare with `a` joined once).
        let empty = State::default();
        let once = join(&a, &empty);
        assert_same(&join(&once, &empty), &once)?;
        assert_same(&join(&empty, &a), &once)?;
        // A contribution joined to itself is not itself: devices' counts add, so the
        // profile must never apply one exchange twice (the next property checks it).
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(30_000),
        .. ProptestConfig::default()
    })]

    /// The view does not depend on the order pushes arrive in, on duplicates of them,
    /// nor on lost ones but for each device's last: each change counts once.
    #[test]
    fn delivery_order_duplicates_and_losses_do_not_change_the_view(
        histories in prop::collection::vec(steps(), 2..5),
        order in prop::collection::vec(any::<u64>(), 64),
        copies in prop::collection::vec(1usize..=3, 64),
        lost in prop::collection::vec(any::<bool>(), 64),
    ) {
        let bundle = bundle();
        let keys = keys();
        let mut firsts = Vec::new();
        let mut in_order = Vec::new();
        let mut end = NOW;
        for (n, h) in histories.iter().enumerate() {
            let (first, mine, last) = pushes(&bundle, &keys, n, NOW + i64::try_from(n).unwrap() * 60, h);
            firsts.push(first);
            end = end.max(last);
            in_order.push(mine);
        }
        let expected = view_after(&bundle, &firsts, &in_order.concat(), end);
        // Shuffled across and within devices, each message one to three times.
        let mut shuffled: Vec<(u64, Message)> = Vec::new();
        let mut k = 0;
        for mine in &in_order {
            for m in mine {
                for c in 0..copies[k % copies.len()] {
                    shuffled.push((order[(k + c * 7) % order.len()].wrapping_add(c as u64), m.clone()));
                }
                k += 1;
            }
        }
        shuffled.sort_by_key(|(key, _)| *key);
        let shuffled: Vec<Message> = shuffled.into_iter().map(|(_, m)| m).collect();
        assert_same(&view_after(&bundle, &firsts, &shuffled, end), &expected)?;
        // Lost ones, but for each device's last, which makes up for them.
        let mut survivors = Vec::new();
        let mut k = 0;
        for mine in &in_order {
            for (i, m) in mine.iter().enumerate() {
                if i + 1 == mine.len() || !lost[k % lost.len()] {
                    survivors.push(m.clone());
                }
                k += 1;
            }
        }
        assert_same(&view_after(&bundle, &firsts, &survivors, end), &expected)?;
    }
}

/// A visitor who browsed anonymously and then logged in brings that history into the
/// profile: the link's first sync (sequence 0) joins all of it.
#[test]
fn an_anonymous_history_joins_the_profile_at_its_first_sync() {
    let bundle = bundle();
    let steps = [
        Step {
            device: 0,
            advance: 0,
            path: "/models/suv/x5",
            event: None,
        },
        Step {
            device: 0,
            advance: HOUR,
            path: "/models/suv/x5",
            event: Some("test_drive_booked"),
        },
    ];
    let mut anonymous = solo(&bundle, 0, NOW, &steps);
    let mut profile = Profile::default();
    // The laptop is linked already, with nothing of its own.
    let mut laptop = State::new_visitor(device_id(1), NOW, 30 * DAY);
    laptop.link = Some(Link {
        profile: PROFILE,
        seq: 0,
        devices: 1,
        linked_at: NOW,
    });
    let sync = |profile: &mut Profile, state: &State, seq: u32, now: i64| match sync_reply(
        profile, &bundle, state, seq, now,
    ) {
        Reply::Synced { view, .. } => *view,
        other => panic!("{other:?}"),
    };
    sync(&mut profile, &laptop, 0, NOW);
    anonymous.link = Some(Link {
        profile: PROFILE,
        seq: 0,
        devices: 1,
        linked_at: NOW,
    });
    let view = sync(&mut profile, &anonymous, 0, NOW + 2 * HOUR);
    assert_eq!(
        view.stage, anonymous.stage,
        "the phone's stage is the person's"
    );
    assert_eq!(view.visits, anonymous.visits);
    assert_eq!(view.intents.len(), 1);
    assert_eq!(view.experiments, anonymous.experiments);
    // The laptop's next sync gets all of it, and its next push does not count it twice.
    let on_laptop = sync(&mut profile, &laptop, 1, NOW + 3 * HOUR);
    assert_eq!(on_laptop.visits, anonymous.visits);
    assert_eq!(on_laptop.stage, anonymous.stage);
    let again = sync(&mut profile, &anonymous, 1, NOW + 4 * HOUR);
    assert_eq!(
        again.visits, anonymous.visits,
        "a replayed history counts once"
    );
}

/// The property test's case count: `cases` unless `PROPTEST_CASES` says otherwise.
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

fn sync_reply(profile: &mut Profile, bundle: &Bundle, state: &State, seq: u32, now: i64) -> Reply {
    profile.exchange(
        bundle,
        Message {
            op: Op::Sync,
            device: state.visitor,
            seq,
            kind: None,
            now,
            state: state.clone(),
        },
    )
}

/// An erasure is for good: a backend event or a new device linked afterwards starts a
/// new profile, and a device that synced before the erasure is told `Erased` at its
/// next sync instead of bringing the erased journey back.
#[test]
fn an_erased_profile_is_not_repopulated_by_the_devices_linked_before() {
    let bundle = bundle();
    let steps = [Step {
        device: 0,
        advance: 0,
        path: "/models/suv/x5",
        event: Some("test_drive_booked"),
    }];
    let mut phone = solo(&bundle, 0, NOW, &steps);
    phone.link = Some(Link {
        profile: PROFILE,
        seq: 0,
        devices: 1,
        linked_at: NOW,
    });
    let mut profile = Profile::default();
    let Reply::Synced { seq, .. } = sync_reply(&mut profile, &bundle, &phone, 0, NOW) else {
        panic!("the first sync answers the view");
    };
    assert_eq!(seq, 1);
    profile.erase(NOW + HOUR);
    assert!(!profile.exists());
    // The store records a purchase for the person after the erasure: a new profile.
    let prior = profile.backend_prior(&bundle, Channel::Store, NOW + 2 * HOUR);
    let mut next = prior.clone();
    next.visits += 1;
    profile.backend_record(&bundle, Channel::Store, &prior, &next, NOW + 2 * HOUR);
    assert!(profile.exists());
    // A new laptop is linked after the erasure: it joins.
    let mut laptop = State::new_visitor(device_id(1), NOW + 3 * HOUR, 30 * DAY);
    laptop.link = phone.link.map(|l| Link {
        linked_at: NOW + 3 * HOUR,
        ..l
    });
    assert!(matches!(
        sync_reply(&mut profile, &bundle, &laptop, 0, NOW + 3 * HOUR),
        Reply::Synced { .. }
    ));
    // The phone, linked before, comes back with the erased journey: refused.
    assert_eq!(
        sync_reply(&mut profile, &bundle, &phone, seq, NOW + 4 * HOUR),
        Reply::Erased
    );
    let view = profile.view(&bundle, NOW + 4 * HOUR);
    assert_ne!(
        view.stage, phone.stage,
        "nothing of the erased journey came back"
    );
    assert!(view.impressions.is_empty());
}

/// A sync with a sequence older than the profile expects (an old token replayed, a
/// second tab) changes nothing: the device's current token keeps its sequence and its
/// next exchange is applied.
#[test]
fn a_stale_sync_changes_nothing() {
    let bundle = bundle();
    let mut phone = State::new_visitor(device_id(0), NOW, 30 * DAY);
    phone.link = Some(Link {
        profile: PROFILE,
        seq: 0,
        devices: 1,
        linked_at: NOW,
    });
    let mut profile = Profile::default();
    sync_reply(&mut profile, &bundle, &phone, 0, NOW);
    let Reply::Synced { seq, .. } = sync_reply(&mut profile, &bundle, &phone, 1, NOW + 60) else {
        panic!("a fresh sync answers the view");
    };
    assert_eq!(seq, 2);
    let before = profile.clone();
    let Reply::Synced { seq: stale_seq, .. } =
        sync_reply(&mut profile, &bundle, &phone, 1, NOW + 120)
    else {
        panic!("a stale sync still answers the view");
    };
    assert_eq!(stale_seq, 2, "the sequence is not moved on");
    let strip = |p: &Profile| -> Vec<(u32, State, State, State)> {
        p.devices
            .iter()
            .map(|d| (d.seq, d.own.clone(), d.base.clone(), d.input.clone()))
            .collect()
    };
    assert_eq!(strip(&profile), strip(&before));
}

/// A linked device's state, linked at `linked_at`.
fn linked_device(n: u8, linked_at: i64) -> State {
    let mut state = State::new_visitor(device_id(usize::from(n)), linked_at, 30 * DAY);
    state.link = Some(Link {
        profile: PROFILE,
        seq: 0,
        devices: 1,
        linked_at,
    });
    state
}

fn link(id: u8, issued_at: i64, ttl: i64) -> token::IdentityLink {
    token::IdentityLink::new(PROFILE, [id; 16], issued_at, ttl, None).unwrap()
}

/// Nothing from before an erasure takes part after it: a device linked before (even
/// one that never synced, sequence 0), a link issued before, or within the margin two
/// Workers' clocks cannot order; what comes after does.
#[test]
fn nothing_from_before_an_erasure_takes_part_after_it() {
    let bundle = bundle();
    let mut profile = Profile::default();
    let never_synced = linked_device(1, NOW);
    let old_link = link(1, NOW, 12 * HOUR);
    profile.erase(NOW + 10);
    assert_eq!(
        sync_reply(&mut profile, &bundle, &never_synced, 0, NOW + 20),
        Reply::Erased
    );
    assert!(!profile.exists(), "the refused device wrote nothing");
    assert_eq!(
        profile.use_link(&old_link, NOW + 20),
        Err(profile::LinkRefusal::Erased)
    );
    let within = link(2, NOW + 10 + profile::ERASURE_MARGIN, 12 * HOUR);
    assert_eq!(
        profile.use_link(&within, NOW + 30),
        Err(profile::LinkRefusal::Erased),
        "too close to order"
    );
    let later = link(3, NOW + 60, 12 * HOUR);
    assert_eq!(profile.use_link(&later, NOW + 70), Ok(()));
    let new_device = linked_device(2, NOW + 70);
    assert!(matches!(
        sync_reply(&mut profile, &bundle, &new_device, 0, NOW + 70),
        Reply::Synced { .. }
    ));
    assert!(profile.exists());
}

/// A link links once; a revoked one, or one issued before "revoke every link", never;
/// forgetting used ids past the bound refuses every link issued until then.
#[test]
fn a_link_is_used_once_and_can_be_revoked() {
    let mut profile = Profile::default();
    let first = link(1, NOW, 12 * HOUR);
    assert_eq!(profile.use_link(&first, NOW + 1), Ok(()));
    assert_eq!(
        profile.use_link(&first, NOW + 2),
        Err(profile::LinkRefusal::Used)
    );
    let second = link(2, NOW, 12 * HOUR);
    profile.revoke_link(second.id, NOW + 3);
    assert_eq!(
        profile.use_link(&second, NOW + 4),
        Err(profile::LinkRefusal::Revoked)
    );
    let third = link(3, NOW + 5, 12 * HOUR);
    profile.revoke_links(NOW + 6);
    assert_eq!(
        profile.use_link(&third, NOW + 7),
        Err(profile::LinkRefusal::Revoked)
    );
    assert_eq!(profile.use_link(&link(4, NOW + 8, HOUR), NOW + 9), Ok(()));
    // Used ids past the bound: the oldest is forgotten, and every link issued until
    // then is refused, so the forgotten one cannot be used again.
    // Three ids are remembered (first, second, the fourth link); fill up to the bound,
    // then one more.
    let many = |n: usize| {
        let mut l = link(0, NOW + 100, HOUR);
        l.id[0] = u8::try_from(n % 250).unwrap();
        l.id[1] = u8::try_from(n / 250).unwrap();
        l.id[2] = 0xee;
        l
    };
    for n in 0..=profile::MAX_LINK_RECORDS - 3 {
        assert_eq!(profile.use_link(&many(n), NOW + 200), Ok(()), "{n}");
    }
    assert_eq!(
        profile.use_link(&first, NOW + 300),
        Err(profile::LinkRefusal::Revoked),
        "forgotten, still refused"
    );
    assert_eq!(
        profile.use_link(&many(1000), NOW + 300),
        Err(profile::LinkRefusal::Revoked),
        "issued before the forgetting"
    );
    assert_eq!(
        profile.use_link(&link(9, NOW + 301, HOUR), NOW + 302),
        Ok(())
    );
}

/// A device that logged out never syncs again, however long its token lives; what it
/// contributed stays the person's.
#[test]
fn a_logged_out_device_is_refused_for_good_and_its_journey_stays() {
    let bundle = bundle();
    let mut profile = Profile::default();
    let mut phone = linked_device(1, NOW);
    phone.visits = 3;
    assert!(matches!(
        sync_reply(&mut profile, &bundle, &phone, 0, NOW),
        Reply::Synced { .. }
    ));
    profile.revoke_device(&bundle, phone.visitor, NOW + HOUR);
    assert_eq!(profile.view(&bundle, NOW + HOUR).visits, 3, "kept, retired");
    assert_eq!(
        sync_reply(&mut profile, &bundle, &phone, 1, NOW + 400 * DAY),
        Reply::Erased
    );
}

/// A person's trigger caps count every device's fires; a trigger the profile's bundle
/// does not know is not sent.
#[test]
fn a_persons_trigger_caps_count_across_devices() {
    let source = json!({
        "id": "t", "version": 1, "journey": {"stages": ["a"]},
        "content": {"c": {"html": "C"}}, "slots": {"hero": {"default": "c"}},
        "destinations": {"crm": {"kind": "webhook", "url": "MM_DEST_CRM_URL", "secret": "MM_DEST_CRM_SECRET"}},
        "triggers": [
            {"id": "once-a-day", "on": {"event": "x"}, "send": ["crm"], "cap": {"max": 1, "per": "1d"}},
            {"id": "free", "on": {"event": "y"}, "send": ["crm"]}
        ]
    });
    let bundle = micromoment::bundle::compile(&source.to_string(), Budget::default()).unwrap();
    let mut profile = Profile::default();
    assert!(profile.admit_fire(&bundle, "once-a-day", NOW));
    assert!(
        !profile.admit_fire(&bundle, "once-a-day", NOW + HOUR),
        "another device, same day"
    );
    assert!(profile.admit_fire(&bundle, "once-a-day", NOW + DAY + 1));
    for n in 0..5 {
        assert!(profile.admit_fire(&bundle, "free", NOW + n));
    }
    assert!(!profile.admit_fire(&bundle, "not-in-this-bundle", NOW));
}
