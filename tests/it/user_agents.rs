//! Device and bot classification over real user agents (`fixtures/user-agents/`): the
//! crawler user agents of `crawler-user-agents` and the labelled browser user agents of
//! `user-agents`, through the same `http::device_type` the Worker calls.
//!
//! Measured with isbot 5.2.3's patterns (`src/http/bots.rs`) and the device rules of
//! `src/http.rs`:
//!
//! - crawlers: 2,109 of 2,118 (99.58 %) are bots; the 9 others are in-app browsers and
//!   Electron apps the crawler list names (isbot calls them people too);
//! - browsers: 25 of 12,142 (0.21 %) are bots, every one a string no browser sends (a
//!   tool, a probe, a placeholder; each listed with its reason in `disagreements.tsv`);
//!   of the 12,117 others, none (0 %);
//! - device types: 12,080 of 12,142 (99.49 %) get their label; the other 62 are the rows
//!   of `disagreements.tsv`: the 25 bots above, and 37 where the label is what the
//!   sample's analytics guessed (from the screen too) and the user agent says otherwise.

use std::collections::HashMap;

use micromoment::context::DeviceType;
use micromoment::http::device_type;

fn read(relative: &str) -> String {
    let path = crate::repo_path(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn device(name: &str) -> DeviceType {
    DeviceType::ALL
        .into_iter()
        .find(|d| d.as_str() == name)
        .unwrap_or_else(|| panic!("unknown device type {name:?}"))
}

/// `browsers.tsv`: `(label, user agent)`.
fn browsers() -> Vec<(DeviceType, String)> {
    read("fixtures/user-agents/browsers.tsv")
        .lines()
        .map(|line| {
            let (label, ua) = line.split_once('\t').expect("device<TAB>ua");
            (device(label), ua.to_owned())
        })
        .collect()
}

/// One row of `disagreements.tsv`: a browser user agent whose corpus label we
/// deliberately do not give.
struct Disagreement {
    label: DeviceType,
    ours: DeviceType,
    reason: String,
}

fn disagreements() -> HashMap<String, Disagreement> {
    let mut rows = HashMap::new();
    for line in read("fixtures/user-agents/disagreements.tsv").lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let mut fields = line.splitn(4, '\t');
        let (label, ours, reason, ua) = (
            fields.next().expect("label"),
            fields.next().expect("ours"),
            fields.next().expect("reason"),
            fields.next().expect("ua"),
        );
        let row = Disagreement {
            label: device(label),
            ours: device(ours),
            reason: reason.to_owned(),
        };
        assert!(
            rows.insert(ua.to_owned(), row).is_none(),
            "listed twice: {ua}"
        );
    }
    rows
}

#[test]
fn crawlers_are_bots() {
    let text = read("fixtures/user-agents/crawlers.txt");
    let crawlers: Vec<&str> = text.lines().collect();
    assert_eq!(crawlers.len(), 2118);
    let missed: Vec<&&str> = crawlers
        .iter()
        .filter(|ua| device_type(ua, None) != DeviceType::Bot)
        .collect();
    let caught = crawlers.len() - missed.len();
    assert!(
        caught * 100 >= crawlers.len() * 95,
        "{caught} of {} crawlers caught; missed: {missed:#?}",
        crawlers.len()
    );
    // The figure in this file's comment, so that it cannot go stale unnoticed.
    assert_eq!(caught, 2109, "missed: {missed:#?}");
}

#[test]
fn browsers_get_their_device_type_and_are_not_bots() {
    let browsers = browsers();
    let mut disagreements = disagreements();
    let mut wrong = Vec::new();
    let mut flagged = 0;
    let mut flagged_unlisted = 0;
    for (label, ua) in &browsers {
        let got = device_type(ua, None);
        if got == DeviceType::Bot {
            flagged += 1;
        }
        match disagreements.remove(ua) {
            Some(row) => {
                assert_eq!(row.label, *label, "{ua}: label in disagreements.tsv");
                assert_ne!(row.ours, *label, "{ua}: no disagreement");
                assert!(!row.reason.is_empty(), "{ua}: no reason");
                if got != row.ours {
                    wrong.push(format!(
                        "{ua}: disagreements.tsv expects {:?}, got {got:?}",
                        row.ours
                    ));
                }
            }
            None => {
                if got == DeviceType::Bot {
                    flagged_unlisted += 1;
                }
                if got != *label {
                    wrong.push(format!("{}\t{}\t{ua}", label.as_str(), got.as_str()));
                }
            }
        }
    }
    let stale: Vec<&String> = disagreements.keys().collect();
    assert!(stale.is_empty(), "not in browsers.tsv: {stale:#?}");
    assert!(
        wrong.is_empty(),
        "{} of {} browsers misclassified (label, got, ua):\n{}",
        wrong.len(),
        browsers.len(),
        wrong.join("\n")
    );
    // At most 0.1 % of the browsers no reviewer looked at may be taken for bots.
    assert!(flagged_unlisted * 1000 <= browsers.len());
    assert_eq!((flagged, browsers.len()), (25, 12142));
}

proptest::proptest! {
    /// Any header value, however hostile: the classification never panics and is the
    /// same every time, and `is_bot` agrees with `device_type`.
    #[test]
    fn any_user_agent_is_classified(ua in "\\PC{0,300}", cut in 0usize..300) {
        let first = device_type(&ua, None);
        proptest::prop_assert_eq!(first, device_type(&ua, None));
        proptest::prop_assert_eq!(
            micromoment::http::is_bot(&ua),
            first == DeviceType::Bot
        );
        // Pieces of real crawler user agents, cut anywhere.
        let crawler = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
        let piece: String = crawler.chars().take(cut).chain(ua.chars()).collect();
        let _ = device_type(&piece, None);
    }
}

/// Found by the `user_agent` fuzzer (fuzz/seeds/user_agent/past-the-bound): a request is
/// classified by the first `MAX_HEADER` bytes of its `User-Agent`, as every header is
/// read; a marker past them does not count. (The fuzz target compared the context with
/// the whole header.)
#[test]
fn a_request_is_classified_by_the_user_agent_as_read() {
    use micromoment::http::{context, RequestParts, MAX_HEADER};
    let head =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36 ";
    let ua = format!("{head}{}SmartTV", "x".repeat(MAX_HEADER));
    assert_eq!(device_type(&ua, None), DeviceType::Tv);
    let ctx = context(&RequestParts {
        path: "/",
        user_agent: Some(&ua),
        ..RequestParts::default()
    });
    assert_eq!(ctx.device.kind, Some(DeviceType::Desktop));
    assert_eq!(
        ctx.device.kind,
        Some(device_type(&ua[..MAX_HEADER], None)),
        "the first MAX_HEADER bytes decide"
    );
}
