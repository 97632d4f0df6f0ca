//! `analyze` (DESIGN §12): goals in the bundle, the log join, the statistics and the
//! attribution models, and the command as a marketer runs it.

use micromoment::{bundle, Budget};

/// Compiles a bundle with `goals` and returns its diagnostics as `path: message` lines.
#[track_caller]
fn check_goals(goals: &str, expected: &[&str]) {
    let source = format!(
        r#"{{"id": "g", "version": 1, "journey": {{"stages": ["a"]}},
  "content": {{"x": {{"html": "x"}}}}, "slots": {{"hero": {{"default": "x"}}}},
  "goals": {goals}}}"#
    );
    let found: Vec<String> = match bundle::compile(&source, Budget::default()) {
        Ok(_) => Vec::new(),
        Err(d) => d.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(found, expected, "goals {goals}");
}

#[test]
fn goals_are_validated_with_paths_and_positions() {
    check_goals(
        r#"{"purchase": {"event": "order_completed", "value": true}, "test-drive": {"event": "test_drive_booked"}}"#,
        &[],
    );
    check_goals(
        r#"{"purchase": {"event": "order_completed", "value": "yes"}}"#,
        &["3:63: goals.purchase.value: expected a boolean, found a string"],
    );
    check_goals(
        r#"{"lead": {"event": ""}}"#,
        &["3:31: goals.lead.event: must not be empty"],
    );
    check_goals(
        r#"{"signup": {"evnt": "signed_up"}}"#,
        &[
            "3:32: goals.signup.evnt: unknown field \"evnt\" (did you mean \"event\"?)",
            "3:23: goals.signup.event: missing required field",
        ],
    );
    check_goals(
        r#"{"": {"event": "e"}}"#,
        &["3:17: goals[\"\"]: a goal name must not be empty"],
    );
    check_goals(
        r#"["purchase"]"#,
        &["3:12: goals: expected an object, found an array"],
    );
}

#[test]
fn the_fixtures_declare_goals_and_experiments() {
    let text = std::fs::read_to_string(crate::repo_path("fixtures/automotive.json")).unwrap();
    let b = bundle::compile(&text, Budget::default()).unwrap();
    let goals: Vec<_> = b.goals().map(|g| (g.name, g.event, g.value)).collect();
    assert_eq!(
        goals,
        [
            ("purchase", "order_completed", true),
            ("test-drive", "test_drive_booked", false),
            ("quote", "quote_requested", false)
        ]
    );
    let experiments = b.experiments();
    let hero = experiments.iter().find(|e| e.name == "hero-test").unwrap();
    assert_eq!(hero.slot, "hero");
    assert_eq!(hero.holdout, 0.1);
    let variants: Vec<(&str, f64)> = hero
        .variants
        .iter()
        .map(|&(c, share)| (c, (share * 1e9).round() / 1e9))
        .collect();
    assert_eq!(variants, [("suv-teaser", 0.45), ("ev-teaser", 0.45)]);
}

use micromoment::Bundle;
use micromoment_cli::analyze::{self, generate, Analysis, Report, Window};
use serde_json::{json, Value};

/// A small bundle: experiment `exp` in `hero` (a 50 / b 50, no holdout), a content
/// candidate in `side`, and two goals.
const SMALL: &str = r#"{
  "id": "small", "version": 1,
  "journey": {"stages": ["any"]},
  "content": {"a": {"html": "A"}, "b": {"html": "B"}, "c": {"html": "C"}, "d": {"html": "D"}},
  "slots": {
    "hero": {"default": "d", "candidates": [
      {"id": "exp", "experiment": {"variants": [{"content": "a", "weight": 50}, {"content": "b", "weight": 50}]}}]},
    "side": {"default": "d", "candidates": [{"id": "side-c", "content": "c"}]}
  },
  "goals": {"purchase": {"event": "order_completed", "value": true}, "signup": {"event": "signed_up"}}
}"#;

fn small() -> Bundle {
    bundle::compile(SMALL, Budget::default()).unwrap()
}

const DAY: i64 = 86_400;
const T0: i64 = 1_790_000_000;

fn person(n: u32) -> String {
    format!("{n:032x}")
}

/// An exposure line of `hero` (an experiment arm) or `side`.
fn seen(visitor: &str, at: i64, content: &str) -> String {
    let (slot, candidate, experiment, variant) = match content {
        "a" | "b" => ("hero", Some("exp"), Some("exp"), Some(content)),
        "c" => ("side", Some("side-c"), None, None),
        _ => ("hero", None, None, None),
    };
    json!({"type": "exposure", "visitor": visitor, "at": at, "bundle": "small", "bundle_version": 1,
           "channel": "web", "device": "mobile", "slot": slot, "content": content, "candidate": candidate,
           "experiment": experiment, "variant": variant, "stage": "any", "reason": "candidate"})
    .to_string()
}

/// An exposure of `content` in the `side` slot (any content: touches need not be in the
/// bundle).
fn shown(visitor: &str, at: i64, content: &str) -> String {
    json!({"type": "exposure", "visitor": visitor, "at": at, "bundle": "small", "channel": "web",
           "device": "desktop", "slot": "side", "content": content, "candidate": null,
           "experiment": null, "variant": null, "stage": "any", "reason": "default"})
    .to_string()
}

fn bought(visitor: &str, at: i64, value: f64) -> String {
    json!({"type": "conversion", "visitor": visitor, "at": at, "bundle": "small", "channel": "web",
           "device": "mobile", "goal": "purchase", "value": value})
    .to_string()
}

/// Runs the analysis of `lines` over the small bundle.
#[track_caller]
fn check_lines(lines: &[String], window: &str) -> Report {
    let b = small();
    let mut analysis = Analysis::new(&b);
    analysis.read(lines.join("\n").as_bytes()).unwrap();
    let window = Window::parse(window).unwrap();
    analyze::results(&b, &analysis.finish(&window), &window)
}

/// (people, conversions, value_sum) per arm of `exp` for `purchase`.
fn arms(report: &Report) -> Vec<(&str, u64, u64, f64)> {
    let e = report
        .experiments
        .iter()
        .find(|e| e.experiment == "exp" && e.goal == "purchase")
        .unwrap();
    e.variants
        .iter()
        .map(|v| (v.variant.as_str(), v.people, v.conversions, v.value_sum))
        .collect()
}

/// Attribution rows of `purchase` in `side` under `model`: (content, conversions, value).
fn credit(report: &Report, model: &str) -> Vec<(String, f64, f64)> {
    report
        .attribution
        .iter()
        .find(|a| a.goal == "purchase" && a.slot == "side" && a.model == model)
        .unwrap()
        .rows
        .iter()
        .map(|r| {
            (
                r.content.clone(),
                (r.conversions * 1e9).round() / 1e9,
                (r.value * 1e6).round() / 1e6,
            )
        })
        .collect()
}

#[test]
fn a_conversion_counts_within_the_window_after_the_first_exposure_edges_included() {
    let (p1, p2, p3, p4) = (person(1), person(2), person(3), person(4));
    let report = check_lines(
        &[
            // Exactly at the window's end: counts.
            seen(&p1, T0, "a"),
            bought(&p1, T0 + 7 * DAY, 10.0),
            // One second later: does not.
            seen(&p2, T0, "a"),
            bought(&p2, T0 + 7 * DAY + 1, 20.0),
            // Before the exposure: does not.
            bought(&p3, T0 - 60, 30.0),
            seen(&p3, T0, "b"),
            // In the same second as the exposure: counts; two conversions, one person.
            seen(&p4, T0, "b"),
            bought(&p4, T0, 5.0),
            bought(&p4, T0 + DAY, 7.0),
        ],
        "7d",
    );
    assert_eq!(arms(&report), [("a", 2, 1, 10.0), ("b", 2, 1, 12.0)]);
    // A shorter window drops the edge case.
    let report = check_lines(&[seen(&p1, T0, "a"), bought(&p1, T0 + 7 * DAY, 10.0)], "6d");
    assert_eq!(arms(&report), [("a", 1, 0, 0.0), ("b", 0, 0, 0.0)]);
}

#[test]
fn the_first_exposure_decides_the_arm_whatever_order_the_lines_come_in() {
    let p = person(7);
    let lines = [
        seen(&p, T0 + DAY, "b"),
        bought(&p, T0 + 2 * DAY, 50.0),
        seen(&p, T0, "a"),
    ];
    let report = check_lines(&lines, "7d");
    assert_eq!(arms(&report), [("a", 1, 1, 50.0), ("b", 0, 0, 0.0)]);
    let mut reversed = lines.to_vec();
    reversed.reverse();
    assert_eq!(arms(&check_lines(&reversed, "7d")), arms(&report));
}

#[test]
fn the_profile_joins_a_persons_devices_and_beats_the_visitor_id() {
    let (phone, laptop, profile) = (person(10), person(11), person(99));
    let linked = |line: String| {
        let mut v: Value = serde_json::from_str(&line).unwrap();
        v["profile"] = json!(profile);
        v.to_string()
    };
    // Seen on the phone, bought on the laptop: one person, one conversion.
    let report = check_lines(
        &[
            linked(seen(&phone, T0, "a")),
            linked(bought(&laptop, T0 + DAY, 80.0)),
        ],
        "7d",
    );
    assert_eq!(report.people, 1);
    assert_eq!(arms(&report), [("a", 1, 1, 80.0), ("b", 0, 0, 0.0)]);
    // Without the profile they are two people and the purchase is not the phone's.
    let report = check_lines(
        &[seen(&phone, T0, "a"), bought(&laptop, T0 + DAY, 80.0)],
        "7d",
    );
    assert_eq!(arms(&report), [("a", 1, 0, 0.0), ("b", 0, 0, 0.0)]);
    assert_eq!(report.attribution[0].unattributed, 1.0);
}

#[test]
fn consecutive_repeats_are_one_touch_and_each_model_splits_as_written() {
    let p = person(20);
    // Path c, c, a, c, d then a purchase of 100: collapsed to c > a > c > d.
    let report = check_lines(
        &[
            shown(&p, T0, "c"),
            shown(&p, T0 + 60, "c"),
            shown(&p, T0 + DAY, "a"),
            shown(&p, T0 + 7 * DAY, "c"),
            shown(&p, T0 + 14 * DAY, "d"),
            bought(&p, T0 + 14 * DAY, 100.0),
        ],
        "14d",
    );
    let c = |s: &str, conv: f64, value: f64| (s.to_owned(), conv, value);
    assert_eq!(credit(&report, "last_touch"), [c("d", 1.0, 100.0)]);
    assert_eq!(credit(&report, "first_touch"), [c("c", 1.0, 100.0)]);
    assert_eq!(
        credit(&report, "linear"),
        [c("c", 0.5, 50.0), c("a", 0.25, 25.0), c("d", 0.25, 25.0)]
    );
    // 40 / 10 / 10 / 40.
    assert_eq!(
        credit(&report, "position_based"),
        [c("c", 0.5, 50.0), c("d", 0.4, 40.0), c("a", 0.1, 10.0)]
    );
    // Ages 13d, 7d, 0d (a run is timed at its last exposure: the second c at 7d, the
    // first run at T0 + 60 s): weights 2^(-(14d - 60s)/7d), 2^(-13/7), 1/2... written out:
    let w = |age: f64| (-age / (7.0 * DAY as f64)).exp2();
    let ages = [
        14.0 * DAY as f64 - 60.0,
        13.0 * DAY as f64,
        7.0 * DAY as f64,
        0.0,
    ];
    let total: f64 = ages.iter().map(|&a| w(a)).sum();
    let share = |i: usize| w(ages[i]) / total;
    let round = |x: f64| (x * 1e9).round() / 1e9;
    let expected = [
        c("d", round(share(3)), (share(3) * 100.0 * 1e6).round() / 1e6),
        c(
            "c",
            round(share(0) + share(2)),
            ((share(0) + share(2)) * 100.0 * 1e6).round() / 1e6,
        ),
        c("a", round(share(1)), (share(1) * 100.0 * 1e6).round() / 1e6),
    ];
    assert_eq!(credit(&report, "time_decay"), expected);
    // By hand: 2^-2 + 2^-(13/7) + 2^-1 + 1 with the first age a minute short of 14 days.
    assert!((share(3) - 1.0 / (1.0 + 0.5 + (-13.0f64 / 7.0).exp2() + 0.25)).abs() < 1e-4);
}

#[test]
fn position_based_gives_one_touch_everything_and_two_touches_half_each() {
    let (p, q) = (person(30), person(31));
    let report = check_lines(
        &[
            shown(&p, T0, "c"),
            bought(&p, T0 + 60, 10.0),
            shown(&q, T0, "c"),
            shown(&q, T0 + 60, "d"),
            bought(&q, T0 + 120, 30.0),
        ],
        "7d",
    );
    let c = |s: &str, conv: f64, value: f64| (s.to_owned(), conv, value);
    assert_eq!(
        credit(&report, "position_based"),
        [c("c", 1.5, 25.0), c("d", 0.5, 15.0)]
    );
}

#[test]
fn each_slot_is_credited_by_its_own_path() {
    // One page shows hero and side at once: each slot gets the conversion once, so
    // neither slot's last touch depends on the order of same-second lines.
    let p = person(45);
    let report = check_lines(
        &[
            seen(&p, T0, "a"),
            shown(&p, T0, "c"),
            seen(&p, T0 + DAY, "a"),
            shown(&p, T0 + DAY, "e"),
            bought(&p, T0 + DAY, 30.0),
        ],
        "7d",
    );
    let last: Vec<(&str, &str, f64, f64)> = report
        .attribution
        .iter()
        .filter(|a| a.goal == "purchase" && a.model == "last_touch")
        .map(|a| {
            (
                a.slot.as_str(),
                a.rows[0].content.as_str(),
                a.rows[0].conversions,
                a.unattributed,
            )
        })
        .collect();
    assert_eq!(last, [("hero", "a", 1.0, 0.0), ("side", "e", 1.0, 0.0)]);
}

#[test]
fn touches_older_than_the_window_and_after_the_last_conversion_are_null_journeys() {
    let p = person(40);
    let report = check_lines(
        &[
            shown(&p, T0, "c"),              // 10 days before: a journey that did not convert
            shown(&p, T0 + 9 * DAY, "d"),    // in the window
            bought(&p, T0 + 10 * DAY, 10.0), // converts
            shown(&p, T0 + 11 * DAY, "c"),   // after: a journey that did not convert (yet)
        ],
        "7d",
    );
    let c = |s: &str, conv: f64, value: f64| (s.to_owned(), conv, value);
    assert_eq!(credit(&report, "last_touch"), [c("d", 1.0, 10.0)]);
    // Markov: start > c > null twice, start > d > conv once: removing c changes
    // nothing, removing d loses everything.
    let markov = report
        .attribution
        .iter()
        .find(|a| a.model == "markov" && a.goal == "purchase")
        .unwrap();
    let re: Vec<(&str, Option<f64>)> = markov
        .rows
        .iter()
        .map(|r| (r.content.as_str(), r.removal_effect))
        .collect();
    assert_eq!(re, [("d", Some(1.0))]);
}

/// A reader that hands out a few bytes at a time, as a pipe does.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.step.min(buf.len()).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn lines_stream_through_any_reader_and_every_skip_is_counted() {
    let p = person(50);
    let wrapped = format!(r#"{{"event":"exposure","exposure":{}}}"#, seen(&p, T0, "a"));
    let long = format!("{{\"x\": \"{}\"}}", "y".repeat(analyze::MAX_LINE_BYTES));
    let text = [
        "⛅️ wrangler 4.86.0".to_owned(),
        String::new(),
        format!("2026-12-01T10:00:00.000Z {wrapped}"),
        r#"{"level":"info","message":"GET /v1/decide 200"}"#.to_owned(),
        long,
        bought(&p, T0 + 60, 40.0).replace("small", "other-bundle"),
        bought(&p, T0 + 60, 40.0).replace("purchase", "refund"),
        seen(&p, T0, "a").replace(r#""slot":"hero","#, ""),
        bought(&p, T0 + 120, 40.0),
    ]
    .join("\n");
    let b = small();
    let mut analysis = Analysis::new(&b);
    let reader = std::io::BufReader::with_capacity(
        7,
        Trickle {
            bytes: text.as_bytes(),
            step: 5,
        },
    );
    analysis.read(reader).unwrap();
    let input = analysis.input().clone();
    assert_eq!((input.lines, input.exposures, input.conversions), (9, 1, 1));
    let skipped: Vec<(String, u64)> = input.skipped.iter().map(|(s, n)| (s.text(), *n)).collect();
    assert_eq!(
        skipped,
        [
            ("not a JSON object".to_owned(), 3),
            (
                "JSON, but neither an exposure nor a conversion".to_owned(),
                1
            ),
            ("missing or malformed \"slot\"".to_owned(), 1),
            ("of another bundle".to_owned(), 1),
            (
                "a conversion of a goal the bundle does not declare".to_owned(),
                1
            ),
        ]
    );
    let window = Window::default();
    let report = analyze::results(&b, &analysis.finish(&window), &window);
    assert_eq!(arms(&report), [("a", 1, 1, 40.0), ("b", 0, 0, 0.0)]);
}

fn automotive() -> Bundle {
    let text = std::fs::read_to_string(crate::repo_path("fixtures/automotive.json")).unwrap();
    bundle::compile(&text, Budget::default()).unwrap()
}

/// Generates logs for `plan`, analyzes them and returns the truth and the report.
#[track_caller]
fn check_generated(b: &Bundle, plan: &generate::Plan) -> (generate::Truth, Report) {
    let mut analysis = Analysis::new(b);
    let mut text = Vec::new();
    let truth = generate::generate(b, plan, |line| {
        text.extend_from_slice(line.as_bytes());
        text.push(b'\n');
    })
    .unwrap();
    analysis.read(text.as_slice()).unwrap();
    assert_eq!(analysis.input().lines, truth.lines);
    let window = Window::default();
    let report = analyze::results(b, &analysis.finish(&window), &window);
    (truth, report)
}

/// The calibration: over 200 seeds the 95 % interval of the planted lift must cover it
/// about 95 % of the time. With 200 intervals the count of misses is binomial (sd of
/// the coverage ≈ 1.5 points), so 90–99 % is a band a calibrated interval leaves less
/// than once in a thousand runs, while an interval off by a quarter of its width (or a
/// join that loses or double counts conversions) falls outside it. The seeds are fixed,
/// so the test is deterministic: it fails on a change, never on luck.
#[test]
fn the_interval_covers_the_planted_lift_in_about_95_percent_of_200_seeds() {
    let b = automotive();
    let seeds: Vec<u64> = (1..=200).collect();
    let run = |seed: u64| {
        let plan = generate::Plan {
            seed,
            people: 800,
            max_visits: 1,
            max_pages: 1,
            slots: vec!["hero".into()],
            base_rate: 0.3,
            lifts: vec![0.0, 0.2, -0.1],
            value_lifts: vec![0.0, 0.0, 0.0],
            other_goal_rate: 0.0,
            ..generate::Plan::default()
        };
        let (truth, report) = check_generated(&b, &plan);
        let e = report
            .experiments
            .iter()
            .find(|e| e.experiment == truth.experiment && e.goal == truth.goal)
            .unwrap();
        let v = &e.variants[1];
        assert_eq!(v.variant, truth.arms[1]);
        let [lo, hi] = v.ci.flatten().unwrap();
        let [vlo, vhi] = v.value_ci.flatten().unwrap();
        let (lift, value_lift) = (truth.lifts[1], truth.value_lifts[1]);
        (
            lo <= lift && lift <= hi,
            vlo <= value_lift && value_lift <= vhi,
            e.srm,
        )
    };
    let halves = seeds.split_at(seeds.len() / 2);
    let results: Vec<(bool, bool, bool)> = std::thread::scope(|s| {
        let a = s.spawn(|| halves.0.iter().map(|&seed| run(seed)).collect::<Vec<_>>());
        let b = s.spawn(|| halves.1.iter().map(|&seed| run(seed)).collect::<Vec<_>>());
        let mut all = a.join().unwrap();
        all.extend(b.join().unwrap());
        all
    });
    let covered = results.iter().filter(|r| r.0).count();
    let value_covered = results.iter().filter(|r| r.1).count();
    let srm = results.iter().filter(|r| r.2).count();
    eprintln!("coverage: rate {covered}/200, value {value_covered}/200, srm flagged {srm}/200");
    assert!(
        (180..=198).contains(&covered),
        "rate lift covered in {covered} of 200 seeds"
    );
    assert!(
        (180..=198).contains(&value_covered),
        "value lift covered in {value_covered} of 200 seeds"
    );
    // No planted mismatch: flagged at p < 0.001 in (almost) no seed.
    assert!(srm <= 2, "{srm} false sample-ratio alarms");
}

#[test]
fn a_planted_45_55_split_on_a_50_50_experiment_is_flagged() {
    // The hero test splits 45 / 45 / 10 (holdout); dropping 18.2 % of the control's
    // people makes the two variants 45 : 55.
    let b = automotive();
    let plan = generate::Plan {
        seed: 5,
        people: 4000,
        max_visits: 1,
        max_pages: 1,
        slots: vec!["hero".into()],
        drop: Some((0, 1.0 - 45.0 / 55.0)),
        ..generate::Plan::default()
    };
    let (truth, report) = check_generated(&b, &plan);
    let e = report
        .experiments
        .iter()
        .find(|e| e.goal == truth.goal)
        .unwrap();
    let (control, variant) = (e.variants[0].people as f64, e.variants[1].people as f64);
    let ratio = control / (control + variant);
    assert!((0.42..0.48).contains(&ratio), "control share {ratio}");
    assert!(e.srm && e.srm_p < 0.001, "srm_p {}", e.srm_p);
    // The same seed without the drop is not flagged.
    let (_, report) = check_generated(&b, &generate::Plan { drop: None, ..plan });
    let e = report
        .experiments
        .iter()
        .find(|e| e.goal == truth.goal)
        .unwrap();
    assert!(!e.srm, "srm_p {}", e.srm_p);
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the CLI from the repository root, with `stdin` on its standard input.
fn cli(args: &[&str], stdin: &str) -> Run {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_micromoment"))
        .args(args)
        .current_dir(crate::repo_root())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the CLI runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn temp(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("micromoment-analyze-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn the_command_reads_stdin_and_files_and_prints_the_design_json_shape() {
    let bundle = temp("small.json", SMALL);
    let b = bundle.to_str().unwrap();
    let (p, q) = (person(60), person(61));
    let day1 = [
        seen(&p, T0, "a"),
        "GET /healthz 200".into(),
        seen(&q, T0, "b"),
    ]
    .join("\n");
    let day2 = [bought(&p, T0 + DAY, 25.0), bought(&q, T0 + DAY, 75.0)].join("\n");
    let f1 = temp("day1.ndjson", &day1);
    let run = cli(
        &[
            "analyze",
            f1.to_str().unwrap(),
            "-",
            "--bundle",
            b,
            "--json",
        ],
        &day2,
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        lines[0],
        "read 5 lines: 2 exposures, 2 conversions, 1 skipped (1 not a JSON object)"
    );
    let json: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["window"], "7d");
    assert_eq!(json["people"], 2);
    let e = &json["experiments"][0];
    assert_eq!(
        (&e["experiment"], &e["slot"], &e["goal"]),
        (&json!("exp"), &json!("hero"), &json!("purchase"))
    );
    assert!(e["srm_p"].is_number() && e["srm"] == json!(false));
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    for k in ["variant", "people", "conversions", "rate", "mean_value"] {
        assert!(keys(&e["variants"][0]).contains(&k.to_owned()), "{k}");
    }
    for k in ["lift", "ci", "p_value", "chance_to_win"] {
        assert!(
            !keys(&e["variants"][0]).contains(&k.to_owned()),
            "the control has no {k}"
        );
        assert!(keys(&e["variants"][1]).contains(&k.to_owned()), "{k}");
    }
    // One person per arm, both converted: no variance, so no interval, as gbstats says.
    assert_eq!(e["variants"][1]["lift"], json!(0.0));
    assert_eq!(e["variants"][1]["ci"], Value::Null);
    assert_eq!(e["variants"][1]["error"], "ZERO_NEGATIVE_VARIANCE");
    let models: Vec<&str> = json["attribution"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["goal"] == "purchase")
        .map(|a| a["model"].as_str().unwrap())
        .collect();
    assert_eq!(
        models,
        [
            "last_touch",
            "first_touch",
            "linear",
            "time_decay",
            "position_based",
            "markov"
        ]
    );
    let row = &json["attribution"][0]["rows"][0];
    for k in [
        "content",
        "slot",
        "candidate",
        "channel",
        "conversions",
        "value",
    ] {
        assert!(keys(row).contains(&k.to_owned()), "{k}");
    }
}

#[test]
fn the_command_exits_2_on_usage_and_io_errors_with_the_reason() {
    let bundle = temp("small2.json", SMALL);
    let b = bundle.to_str().unwrap();
    let check = |args: &[&str], code: i32, stderr: &str| {
        let run = cli(args, "");
        assert_eq!(
            (run.code, run.stderr.as_str()),
            (Some(code), stderr),
            "{args:?}"
        );
    };
    check(
        &["analyze", "--bundle", b, "--window", "7x"],
        2,
        "error: window \"7x\" is not a period: use a count and a unit such as 30m, 12h, 7d, 2w, or lifetime\n",
    );
    check(
        &["analyze", "--bundle", b, "/no/such/log.ndjson"],
        2,
        "error: cannot read /no/such/log.ndjson: No such file or directory (os error 2)\n",
    );
    let agg = temp(
        "bad.json",
        r#"{"data": [{"experiment": "expp", "variant": "a", "goal": "purchase", "people": "10", "conversions": 1}]}"#,
    );
    check(
        &[
            "analyze",
            "--bundle",
            b,
            "--aggregates",
            agg.to_str().unwrap(),
        ],
        2,
        &format!(
            "error: {}: row 1: unknown experiment \"expp\" (did you mean \"exp\"?)\n",
            agg.display()
        ),
    );
    let agg = temp(
        "bad2.json",
        r#"[{"people": 3}, {"goal": "purchase", "path": [{"content": "a", "slot": "hero", "channel": "web"}], "conversions": "x"}]"#,
    );
    check(
        &[
            "analyze",
            "--bundle",
            b,
            "--aggregates",
            agg.to_str().unwrap(),
        ],
        2,
        &format!(
            "error: {}: row 2: \"conversions\" is not a number: \"x\"\n",
            agg.display()
        ),
    );
    // An invalid bundle is a finding: exit 1, as `validate` says it.
    let run = cli(
        &["analyze", "--bundle", "fixtures/invalid/five-mistakes.json"],
        "",
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .ends_with("5 errors in fixtures/invalid/five-mistakes.json\n"),
        "{}",
        run.stderr
    );
    let run = cli(&["analyze", "--bundle", b, "--sql", "x.ndjson"], "");
    assert_eq!(run.code, Some(2));
    assert!(
        run.stderr
            .starts_with("error: the argument '--sql' cannot be used with '[LOGS]...'"),
        "{}",
        run.stderr
    );
}

#[test]
fn aggregates_give_the_results_the_logs_give() {
    // Logs → results; the results' own counts, written as aggregate rows → the same.
    let b = automotive();
    let plan = generate::Plan {
        seed: 9,
        people: 600,
        ..generate::Plan::default()
    };
    let (_, from_logs) = check_generated(&b, &plan);
    let mut rows = vec![json!({"people": from_logs.people})];
    for e in &from_logs.experiments {
        for v in &e.variants {
            rows.push(
                json!({"experiment": e.experiment, "variant": v.variant, "goal": e.goal,
                "people": v.people.to_string(), "conversions": v.conversions,
                "value_sum": v.value_sum, "value_sum_squares": v.value_sum_squares}),
            );
        }
    }
    let text =
        serde_json::to_string(&json!({"meta": [], "data": rows, "rows": rows.len()})).unwrap();
    let data = analyze::read_aggregates(&b, text.as_bytes()).unwrap();
    let window = Window::default();
    let from_aggregates = analyze::results(&b, &data, &window);
    assert_eq!(from_aggregates.people, from_logs.people);
    assert_eq!(from_aggregates.experiments, from_logs.experiments);
}

#[test]
fn the_sql_names_the_layout_of_docs_analytics() {
    let run = cli(
        &[
            "analyze",
            "--bundle",
            "fixtures/automotive.json",
            "--sql",
            "--dataset",
            "my_ds",
        ],
        "",
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let sql = run.stdout;
    // One people query, one per experiment × goal (1 × 3), one export.
    assert_eq!(sql.matches("FORMAT JSON;").count(), 4);
    assert_eq!(sql.matches("FORMAT JSONEachRow;").count(), 1);
    assert!(sql.contains("FROM my_ds"));
    assert!(sql.contains("max(_sample_interval) AS w"));
    assert!(sql.contains(
        "if(f0 <= f1 AND f0 <= f2, 'suv-teaser', if(f1 <= f2, 'ev-teaser', 'holdout')) AS variant"
    ));
    assert!(sql.contains("blob12 = 'purchase'") && sql.contains("+ 604800"));
}

#[test]
fn the_same_lines_give_the_same_report_bit_for_bit() {
    // Hash maps inside are seeded per run; nothing of their order may reach the report.
    let b = automotive();
    let plan = generate::Plan {
        seed: 11,
        people: 300,
        ..generate::Plan::default()
    };
    let (_, first) = check_generated(&b, &plan);
    let (_, second) = check_generated(&b, &plan);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&second).unwrap()
    );
    assert!(first
        .attribution
        .iter()
        .any(|a| a.model == "markov" && !a.rows.is_empty()));
}

/// What the Worker records (`micromoment::record`) is what `analyze` reads: 40 people
/// through the real engine, each shown the experiment, half of them buying; bots and
/// visitors without consent leave nothing. Every line parses (no skips), and the
/// experiment's people, conversions and values are the requests'.
#[test]
fn the_records_of_real_decisions_are_what_analyze_reads() {
    use micromoment::context::DeviceType;
    use micromoment::record::{self, Event};
    use micromoment::session::{self, Entropy, Request, Slots, Visitor};
    let b = small();
    let mut lines = Vec::new();
    let mut bought_by = 0u64;
    let mut value = 0.0;
    for n in 0..44u32 {
        let mut ctx = micromoment::Context::default();
        ctx.device.kind = Some(match n {
            40 | 41 => DeviceType::Bot,
            _ => DeviceType::Mobile,
        });
        if n >= 42 {
            // Sec-GPC: no consent.
            ctx.consent.personalization = Some(false);
        }
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&n.to_be_bytes());
        let seen = session::decide(
            &b,
            None,
            &Request {
                slots: Slots::Names(&["hero"]),
                ..Request::new(Visitor::New, &ctx, T0, Entropy::Fixed(id))
            },
        )
        .unwrap();
        lines.extend(
            record::records(&b, &seen.decision, &ctx, &[])
                .iter()
                .map(|r| r.line().unwrap()),
        );
        if n % 2 == 0 {
            let order = Event {
                name: "order_completed",
                value: Some(f64::from(n) + 0.5),
            };
            let state = seen.decision.state.clone();
            let events = session::events(
                &b,
                None,
                &Request::new(Visitor::State(&state), &ctx, T0 + 3600, Entropy::Fixed(id)),
                &["order_completed".to_owned()],
            );
            let recorded = record::records(&b, &events.decision, &ctx, &[order]);
            if n < 40 {
                assert_eq!(recorded.len(), 1, "one conversion");
                bought_by += 1;
                value += f64::from(n) + 0.5;
            } else {
                assert!(recorded.is_empty(), "bots and no consent record nothing");
            }
            lines.extend(recorded.iter().map(|r| r.line().unwrap()));
        }
    }
    let mut analysis = Analysis::new(&b);
    analysis.read(lines.join("\n").as_bytes()).unwrap();
    assert_eq!(analysis.input().skipped_total(), 0, "every line parses");
    let window = Window::parse("7d").unwrap();
    let report = analyze::results(&b, &analysis.finish(&window), &window);
    assert_eq!(report.people, 40);
    let got = arms(&report);
    assert_eq!(got.iter().map(|a| a.1).sum::<u64>(), 40);
    assert_eq!(got.iter().map(|a| a.2).sum::<u64>(), bought_by);
    assert!((got.iter().map(|a| a.3).sum::<f64>() - value).abs() < 1e-9);
    // The data point carries the same record in docs/analytics.md's layout.
    let one = serde_json::from_str::<Value>(&lines[0]).unwrap();
    assert_eq!(one["type"], "exposure");
    assert_eq!(one["channel"], "web");
    assert_eq!(one["device"], "mobile");
}
