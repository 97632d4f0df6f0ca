//! Live data (docs/feeds.md): the retail fixture's product hero over stock and stores
//! held in memory as an isolate holds them (shards, recent changes, the stores' grid),
//! for visitors in three cities; a feed missing, stale, of another layout or with a
//! shard not loaded gives the default; bad rows are refused with their line.

use std::collections::BTreeMap;
use std::sync::Arc;

use micromoment::feed::{
    distance_km, parse_ndjson, shard_count, shard_of, Change, FeedData, Feeds, Manifest, Row,
    Shard, StoreIndex,
};
use micromoment::session::{self, Entropy, Request, Slots, Visitor};
use micromoment::{Bundle, Context};

const NOW: i64 = 1_790_000_000;

const STORES: &str = r#"{"store": "lyon-part-dieu", "name": "Lyon Part-Dieu", "lat": 45.7606, "lon": 4.8593, "pickup": "ready in 1 hour"}
{"store": "lyon-confluence", "name": "Lyon Confluence", "lat": 45.7406, "lon": 4.8176, "pickup": "ready in 2 hours"}
{"store": "paris-rivoli", "name": "Paris Rivoli", "lat": 48.8606, "lon": 2.3470, "pickup": "ready in 1 hour"}
{"store": "marseille-vieux-port", "name": "Marseille Vieux-Port", "lat": 43.2951, "lon": 5.3745, "pickup": "ready tomorrow"}"#;

const STOCK: &str = r#"{"sku": "tent-2p", "store": "online", "qty": 0}
{"sku": "tent-2p", "store": "lyon-part-dieu", "qty": 3}
{"sku": "tent-2p", "store": "lyon-confluence", "qty": 0}
{"sku": "tent-2p", "store": "paris-rivoli", "qty": 0}
{"sku": "boots-44", "store": "online", "qty": 12}"#;

fn bundle() -> Bundle {
    crate::scenarios::fixture_bundle("retail.json")
}

fn rows(bundle: &Bundle, feed: &str, text: &str) -> Vec<Row> {
    let spec = bundle.feeds.iter().find(|f| f.name == feed).unwrap();
    parse_ndjson(spec, text)
        .unwrap()
        .into_iter()
        .map(|c| match c {
            Change::Put(row) => row,
            Change::Delete(_) => unreachable!(),
        })
        .collect()
}

/// A feed as a face loads it: every shard, the given recent changes over them.
fn data(bundle: &Bundle, feed: &str, text: &str, hot: &[Change], updated_at: i64) -> FeedData {
    let spec = bundle.feeds.iter().find(|f| f.name == feed).unwrap();
    let all = rows(bundle, feed, text);
    let count = shard_count(all.len() as u64);
    let mut cut: Vec<Vec<Row>> = vec![Vec::new(); count as usize];
    for row in all {
        cut[shard_of(&row.key[0], count) as usize].push(row);
    }
    let overlay: BTreeMap<Vec<String>, Option<Row>> = hot
        .iter()
        .map(|c| {
            (
                c.key().to_vec(),
                match c {
                    Change::Put(r) => Some(r.clone()),
                    Change::Delete(_) => None,
                },
            )
        })
        .collect();
    let shards: Vec<(u32, Arc<Shard>)> = (0u32..)
        .zip(cut)
        .map(|(i, rows)| (i, Arc::new(Shard::new(rows))))
        .collect();
    let stores = bundle
        .feed_roles
        .stores
        .filter(|(f, _, _)| bundle.feeds[*f as usize].name == feed);
    let index = stores.map(|(_, lat, lon)| {
        let mut merged: BTreeMap<Vec<String>, Row> = shards
            .iter()
            .flat_map(|(_, s)| s.rows().iter().map(|r| (r.key.clone(), r.clone())))
            .collect();
        for (k, v) in &overlay {
            match v {
                Some(r) => merged.insert(k.clone(), r.clone()),
                None => merged.remove(k),
            };
        }
        Arc::new(StoreIndex::build(merged.values(), lat, lon))
    });
    FeedData {
        manifest: Arc::new(Manifest {
            version: 1,
            layout: spec.layout(),
            shards: vec![1; shards.len()],
            rows: 0,
            updated_at,
            seq: 0,
        }),
        shards,
        hot: Arc::new(overlay),
        hot_at: 0,
        stores: index,
    }
}

fn feeds(bundle: &Bundle, stock: FeedData, stores: FeedData) -> Feeds {
    let mut feeds = Feeds {
        now: NOW,
        feeds: vec![None; bundle.feeds.len()],
    };
    for (name, d) in [("stock", stock), ("stores", stores)] {
        let i = bundle.feeds.iter().position(|f| f.name == name).unwrap();
        feeds.feeds[i] = Some(d);
    }
    feeds
}

fn visitor(city: Option<(&str, f64, f64)>, sku: &str) -> Context {
    let mut ctx = Context::default();
    ctx.page.path = Some(format!("/p/{sku}"));
    ctx.page.query.insert("sku".into(), sku.into());
    if let Some((name, lat, lon)) = city {
        ctx.geo.city = Some(name.into());
        ctx.geo.lat = Some(lat);
        ctx.geo.lon = Some(lon);
        ctx.geo.country = Some("FR".into());
    }
    ctx
}

/// The hero's HTML and the candidate that won, for `ctx` over `feeds`.
fn hero(bundle: &Bundle, ctx: &Context, feeds: Option<&Feeds>) -> (String, Option<String>) {
    let request = Request {
        slots: Slots::Names(&["hero"]),
        feeds,
        ..Request::new(Visitor::New, ctx, NOW, Entropy::Fixed([3; 16]))
    };
    let outcome = session::decide(bundle, None, &request).unwrap();
    let d = &outcome.decision.decisions[0];
    (
        d.html.as_deref().unwrap_or_default().to_owned(),
        d.candidate.map(str::to_owned),
    )
}

const LYON: (&str, f64, f64) = ("Lyon", 45.764, 4.8357);
const PARIS: (&str, f64, f64) = ("Paris", 48.8566, 2.3522);
const MARSEILLE: (&str, f64, f64) = ("Marseille", 43.2965, 5.3698);

#[test]
fn the_product_hero_in_three_cities_and_without_a_place() {
    let bundle = bundle();
    let live = feeds(
        &bundle,
        data(&bundle, "stock", STOCK, &[], NOW - 60),
        data(&bundle, "stores", STORES, &[], NOW - 3600),
    );
    // Lyon: the nearest store holding it (Part-Dieu, 1.9 km; Confluence is nearer but has none).
    let (html, won) = hero(&bundle, &visitor(Some(LYON), "tent-2p"), Some(&live));
    assert_eq!(won.as_deref(), Some("hero-store-stock"));
    assert!(
        html.contains("Out of stock online — 3 left at Lyon Part-Dieu, ready in 1 hour"),
        "{html}"
    );
    assert!(html.contains("href=\"/stores/lyon-part-dieu\""), "{html}");
    assert!(html.contains("<p>1.9 km from you.</p>"), "{html}");
    // Paris: the store there has none, Lyon is 390 km away: deliver to a store.
    let (html, won) = hero(&bundle, &visitor(Some(PARIS), "tent-2p"), Some(&live));
    assert_eq!(won.as_deref(), Some("hero-deliver-to-store"), "{html}");
    assert!(html.contains("deliver to your store"));
    // Marseille: no store within 50 km holds it either.
    let (_, won) = hero(&bundle, &visitor(Some(MARSEILLE), "tent-2p"), Some(&live));
    assert_eq!(won.as_deref(), Some("hero-deliver-to-store"));
    // No place known: the default hero.
    let (html, won) = hero(&bundle, &visitor(None, "tent-2p"), Some(&live));
    assert_eq!(won, None);
    assert!(html.contains("nw-hero"), "{html}");
    assert!(!html.contains("Out of stock"), "{html}");
    // In stock online: nothing about stores.
    let (_, won) = hero(&bundle, &visitor(Some(LYON), "boots-44"), Some(&live));
    assert_eq!(won, None);
}

#[test]
fn a_recent_change_is_laid_over_the_shards() {
    let bundle = bundle();
    let spec = bundle.feeds.iter().find(|f| f.name == "stock").unwrap();
    // Part-Dieu sells out; Confluence gets two.
    let hot = parse_ndjson(
        spec,
        "{\"sku\": \"tent-2p\", \"store\": \"lyon-part-dieu\", \"qty\": 0}\n{\"sku\": \"tent-2p\", \"store\": \"lyon-confluence\", \"qty\": 2}",
    )
    .unwrap();
    let live = feeds(
        &bundle,
        data(&bundle, "stock", STOCK, &hot, NOW - 60),
        data(&bundle, "stores", STORES, &[], NOW - 60),
    );
    let (html, _) = hero(&bundle, &visitor(Some(LYON), "tent-2p"), Some(&live));
    assert!(
        html.contains("2 left at Lyon Confluence, ready in 2 hours"),
        "{html}"
    );
    // A removed row counts as no stock.
    let gone = vec![Change::Delete(vec![
        "tent-2p".into(),
        "lyon-part-dieu".into(),
    ])];
    let live = feeds(
        &bundle,
        data(&bundle, "stock", STOCK, &gone, NOW - 60),
        data(&bundle, "stores", STORES, &[], NOW - 60),
    );
    let (_, won) = hero(&bundle, &visitor(Some(LYON), "tent-2p"), Some(&live));
    assert_eq!(won.as_deref(), Some("hero-deliver-to-store"));
}

#[test]
fn a_feed_missing_stale_relaid_or_unloaded_gives_the_default() {
    let bundle = bundle();
    let lyon = visitor(Some(LYON), "tent-2p");
    let stores = || data(&bundle, "stores", STORES, &[], NOW - 60);
    // No feeds at all (a face that loads none, the CLI's simulate).
    assert_eq!(hero(&bundle, &lyon, None).1, None);
    // Stock older than its `stale_after` (1h): the rule is false, not "out of stock".
    let stale = feeds(
        &bundle,
        data(&bundle, "stock", STOCK, &[], NOW - 3601),
        stores(),
    );
    assert_eq!(hero(&bundle, &lyon, Some(&stale)).1, None);
    // The stores feed missing: only the rule that reads it is false; the next one
    // reads stock alone.
    let mut missing = feeds(
        &bundle,
        data(&bundle, "stock", STOCK, &[], NOW - 60),
        stores(),
    );
    let i = bundle
        .feeds
        .iter()
        .position(|f| f.name == "stores")
        .unwrap();
    missing.feeds[i] = None;
    assert_eq!(
        hero(&bundle, &lyon, Some(&missing)).1.as_deref(),
        Some("hero-deliver-to-store")
    );
    // Shards written under another declaration.
    let mut other = data(&bundle, "stock", STOCK, &[], NOW - 60);
    other.manifest = Arc::new(Manifest {
        layout: other.manifest.layout ^ 1,
        ..(*other.manifest).clone()
    });
    assert_eq!(
        hero(&bundle, &lyon, Some(&feeds(&bundle, other, stores()))).1,
        None
    );
    // The item's shard not loaded (its read missed the deadline).
    let mut unloaded = data(&bundle, "stock", STOCK, &[], NOW - 60);
    unloaded.shards.clear();
    assert_eq!(
        hero(&bundle, &lyon, Some(&feeds(&bundle, unloaded, stores()))).1,
        None
    );
    // The trace says why.
    let live = feeds(
        &bundle,
        data(&bundle, "stock", STOCK, &[], NOW - 3601),
        stores(),
    );
    let request = Request {
        slots: Slots::Names(&["hero"]),
        feeds: Some(&live),
        mode: session::Mode::Explain,
        ..Request::new(Visitor::New, &lyon, NOW, Entropy::Fixed([3; 16]))
    };
    let outcome = session::decide(&bundle, None, &request).unwrap();
    let trace = serde_json::to_value(outcome.decision.trace.unwrap()).unwrap();
    assert_eq!(
        trace["slots"][0]["candidates"][0]["why"],
        "when reads a feed that is missing, late or stale: counted as false"
    );
}

#[test]
fn a_face_loads_the_shard_of_the_item_and_the_stores_whole() {
    let bundle = bundle();
    let ctx = visitor(Some(LYON), "tent-2p");
    let request = Request::new(Visitor::New, &ctx, NOW, Entropy::Fixed([3; 16]));
    let wants = session::feed_wants(&bundle, None, &request);
    let stock = bundle.feeds.iter().position(|f| f.name == "stock").unwrap() as u16;
    let stores = bundle
        .feeds
        .iter()
        .position(|f| f.name == "stores")
        .unwrap() as u16;
    assert_eq!(wants.keys, vec![(stock, "tent-2p".to_owned())]);
    assert_eq!(wants.whole, vec![stores]);
    // No sku on the page: nothing to load, not even the stores.
    let mut home = Context::default();
    home.page.path = Some("/".into());
    let request = Request::new(Visitor::New, &home, NOW, Entropy::Fixed([3; 16]));
    assert_eq!(
        session::feed_wants(&bundle, None, &request),
        Default::default()
    );
    // And a rule that reads stock is not made false for it: the lookup has no item,
    // so the rest of the rule decides (a VIP sees the candidate, no feed loaded).
    let source = r#"{"id": "v", "version": 1, "journey": {"stages": ["a"]},
        "feeds": {"stock": {"key": ["sku", "store"], "fields": {"qty": "number"}}},
        "content": {"c": {"html": "c"}, "vip": {"html": "vip"}},
        "slots": {"hero": {"default": "c", "candidates": [{"id": "x", "content": "vip",
            "when": {"or": [{"==": [{"stock": [{"var": "page.query.sku"}, "online"]}, 0]}, {"in_segment": "vip"}]}}]}}}"#;
    let vip_bundle = micromoment::bundle::compile(source, Default::default()).unwrap();
    let state = micromoment::token::State {
        segments: vec!["vip".into()],
        ..Default::default()
    };
    let request = Request {
        slots: Slots::Names(&["hero"]),
        ..Request::new(Visitor::State(&state), &home, NOW, Entropy::Fixed([3; 16]))
    };
    let outcome = session::decide(&vip_bundle, None, &request).unwrap();
    assert_eq!(outcome.decision.decisions[0].candidate, Some("x"));
    // A bundle without feeds never asks.
    let auto = crate::scenarios::fixture_bundle("automotive.json");
    assert_eq!(
        session::feed_wants(&auto, None, &request),
        Default::default()
    );
}

#[test]
fn bad_rows_are_refused_with_their_line() {
    let bundle = bundle();
    let spec = bundle.feeds.iter().find(|f| f.name == "stock").unwrap();
    let cases = [
        (
            "{\"sku\": \"a\", \"store\": \"b\", \"qty\": \"3\"}",
            "line 2: `qty` must be a number, not a string",
        ),
        (
            "{\"sku\": \"a\", \"store\": \"b\", \"qty\": 3, \"colour\": \"red\"}",
            "line 2: unknown column `colour` (the feed `stock` has sku, store, qty)",
        ),
        (
            "{\"sku\": \"a\", \"qty\": 3}",
            "line 2: missing key column `store`",
        ),
        (
            "{\"sku\": 7, \"store\": \"b\"}",
            "line 2: key column `sku` must be a string, not a number",
        ),
        ("[1, 2]", "line 2: expected a JSON object"),
        (
            "{\"sku\": \"a\", \"store\": \"b\", \"_delete\": \"yes\"}",
            "line 2: `_delete` must be true or false",
        ),
        (
            "{\"sku\": \"a\\u001fb\", \"store\": \"c\"}",
            "line 2: key column `sku` holds a control character",
        ),
    ];
    for (bad, message) in cases {
        let text = format!("{{\"sku\": \"ok\", \"store\": \"b\", \"qty\": 1}}\n{bad}\n");
        assert_eq!(parse_ndjson(spec, &text).unwrap_err().to_string(), message);
    }
    let long = format!("{{\"sku\": \"{}\", \"store\": \"b\"}}", "x".repeat(300));
    assert!(parse_ndjson(spec, &long)
        .unwrap_err()
        .message
        .contains("over 256"));
    let huge = format!(
        "{{\"sku\": \"a\", \"store\": \"b\", \"qty\": 1{}}}",
        " ".repeat(5000)
    );
    assert_eq!(parse_ndjson(spec, &huge).unwrap_err().line, 1);
    // Blank lines are skipped, and their numbers still count.
    let text = "\n{\"sku\": \"a\", \"store\": \"b\", \"qty\": 1}\n\n{\"sku\": 1}";
    assert_eq!(parse_ndjson(spec, text).unwrap_err().line, 4);
}

#[test]
fn feeds_are_checked_when_compiled() {
    let base = |feeds: &str, rule: &str| {
        format!(
            r#"{{"id": "f", "version": 1, "journey": {{"stages": ["a"]}},
            "feeds": {feeds},
            "content": {{"c": {{"html": "c"}}, "d": {{"html": "{{{{store.name}}}}"}}}},
            "slots": {{"s": {{"default": "c", "candidates": [{{"id": "x", "content": "d", "when": {rule}}}]}}}}}}"#
        )
    };
    let compile = |text: &str| {
        micromoment::bundle::compile(text, Default::default())
            .map(|_| ())
            .map_err(|d| {
                d.iter()
                    .map(|d| format!("{}: {}", d.path, d.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    };
    let ok_feeds = r#"{"stock": {"key": ["sku", "store"], "fields": {"qty": "number"}},
                       "stores": {"key": ["store"], "fields": {"name": "string", "lat": "number", "lon": "number"}}}"#;
    compile(&base(ok_feeds, r#"{"nearest_store": ["a", 10]}"#)).unwrap();
    let err = compile(&base("{}", r#"{"stock": ["a", "b"]}"#)).unwrap_err();
    assert!(
        err.contains("`stock` reads a feed `stock` with key [sku, store]"),
        "{err}"
    );
    let bad = r#"{"stock": {"key": [], "fields": {"qty": "integer"}, "stale_after": "soon"}}"#;
    let err = compile(&base(bad, "true")).unwrap_err();
    assert!(
        err.contains("feeds.stock.key: a feed needs at least one key column"),
        "{err}"
    );
    assert!(
        err.contains("feeds.stock.fields.qty: a field is \"number\", \"string\" or \"boolean\""),
        "{err}"
    );
    assert!(
        err.contains("feeds.stock.stale_after: \"soon\" is not a duration"),
        "{err}"
    );
}

#[test]
fn the_nearest_store_among_ten_thousand_is_the_nearest() {
    // Stores on a grid over France, a fifth of them holding the item (spread by a hash);
    // the grid's answer, and the answer through the item's own stores, against a scan.
    let mut rows = Vec::new();
    for i in 0..10_000u32 {
        let lat = 42.0 + f64::from(i % 100) * 0.07;
        let lon = -1.0 + f64::from(i / 100) * 0.08;
        rows.push(Row {
            key: vec![format!("s{i}")],
            values: vec![
                micromoment::feed::Cell::Number(lat),
                micromoment::feed::Cell::Number(lon),
            ],
        });
    }
    let index = StoreIndex::build(&rows, 0, 1);
    assert_eq!(index.len(), 10_000);
    let holds = |id: &str| {
        let n: u64 = id[1..].parse().ok()?;
        ((n * 2_654_435_761) % 97 < 20).then_some(1.0)
    };
    let held: Vec<(&str, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.key[0].as_str(), holds(&r.key[0])?)))
        .collect();
    let found = [
        (45.76, 4.83, 10.0, Some("s7454")),
        (48.85, 2.35, 30.0, Some("s4398")),
        (43.3, 5.37, 8.0, Some("s8019")),
        (46.0, 1.0, 200.0, Some("s2458")),
        (44.1, 3.3, 4.0, None),
        (30.0, 3.0, 50.0, None),
    ];
    for (lat, lon, km, expected) in found {
        let name = |hit: Option<(u32, f64, f64)>| {
            hit.map(|(i, d, _)| (index.row(i).unwrap().key[0].clone(), d))
        };
        let grid = name(index.nearest(lat, lon, km, None, &holds));
        let scan = rows
            .iter()
            .filter(|r| holds(&r.key[0]).is_some())
            .map(|r| {
                let (micromoment::feed::Cell::Number(a), micromoment::feed::Cell::Number(b)) =
                    (&r.values[0], &r.values[1])
                else {
                    unreachable!()
                };
                (r.key[0].clone(), distance_km(lat, lon, *a, *b))
            })
            .filter(|(_, d)| *d <= km)
            .min_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(grid, scan, "at {lat},{lon} within {km} km");
        assert_eq!(grid.as_ref().map(|(s, _)| s.as_str()), expected);
        // Through the stores holding it (what a request takes when they are fewer).
        assert_eq!(name(index.nearest(lat, lon, km, Some(&held), &holds)), scan);
    }
    // Across the antimeridian, and near a pole.
    let far = [
        ("fiji", -17.0, 179.95),
        ("samoa", -17.0, -179.95),
        ("pole", 89.9, 10.0),
    ];
    let far: Vec<Row> = far
        .iter()
        .map(|(id, lat, lon)| Row {
            key: vec![(*id).into()],
            values: vec![
                micromoment::feed::Cell::Number(*lat),
                micromoment::feed::Cell::Number(*lon),
            ],
        })
        .collect();
    let index = StoreIndex::build(&far, 0, 1);
    let all = |_: &str| Some(1.0);
    let near = |lat, lon, km| {
        index
            .nearest(lat, lon, km, None, &all)
            .map(|(i, _, _)| index.row(i).unwrap().key[0].clone())
    };
    assert_eq!(near(-17.0, -179.99, 20.0).as_deref(), Some("samoa"));
    assert_eq!(near(-17.0, 179.99, 20.0).as_deref(), Some("fiji"));
    assert_eq!(near(89.95, -170.0, 30.0).as_deref(), Some("pole"));
    // Off the globe, or a negative or NaN radius: nothing, never a panic.
    assert_eq!(near(91.0, 0.0, 10.0), None);
    assert_eq!(near(0.0, 0.0, -1.0), None);
    assert_eq!(near(0.0, 0.0, f64::NAN), None);
    assert_eq!(near(-17.0, 179.99, 1e12).as_deref(), Some("fiji"));
}

#[test]
fn the_rows_a_shown_candidate_read_are_watched_when_a_feed_trigger_listens() {
    let bundle = bundle();
    let live = feeds(
        &bundle,
        data(&bundle, "stock", STOCK, &[], NOW - 60),
        data(&bundle, "stores", STORES, &[], NOW - 60),
    );
    let watches = |city, sku: &str| {
        let ctx = visitor(city, sku);
        let request = Request {
            slots: Slots::Names(&["hero"]),
            feeds: Some(&live),
            ..Request::new(Visitor::New, &ctx, NOW, Entropy::Fixed([3; 16]))
        };
        let outcome = session::decide(&bundle, None, &request).unwrap();
        outcome
            .decision
            .watches
            .iter()
            .map(|w| w.key.join("/"))
            .collect::<Vec<_>>()
    };
    // Shown "3 left at Lyon Part-Dieu": the online row and the store's.
    assert_eq!(
        watches(Some(LYON), "tent-2p"),
        ["tent-2p/online", "tent-2p/lyon-part-dieu"]
    );
    // Shown "deliver to your store": the online row (the store lookup that failed is
    // not the shown candidate's).
    assert_eq!(watches(Some(PARIS), "tent-2p"), ["tent-2p/online"]);
    // The default: the rules that read rows did not win.
    assert!(watches(Some(LYON), "boots-44").is_empty());
}

#[test]
fn a_feed_trigger_tells_each_watcher_when_its_rule_turns_true() {
    use micromoment::deliver::{feed_deliveries, Watcher};
    let bundle = bundle();
    let stock = bundle.feeds.iter().position(|f| f.name == "stock").unwrap() as u16;
    let row = |qty: f64| Row {
        key: vec!["tent-2p".into(), "online".into()],
        values: vec![micromoment::feed::Cell::Number(qty)],
    };
    let key = vec!["tent-2p".to_owned(), "online".to_owned()];
    let watchers = [
        Watcher {
            visitor: "0a".repeat(16),
            profile: None,
        },
        Watcher {
            visitor: "0b".repeat(16),
            profile: Some("0c".repeat(16)),
        },
    ];
    let sent = feed_deliveries(
        &bundle,
        stock,
        &key,
        Some(&row(0.0)),
        Some(&row(4.0)),
        &watchers,
        NOW,
    );
    assert_eq!(sent.len(), 2);
    let body: serde_json::Value = serde_json::from_str(&sent[1].body).unwrap();
    assert_eq!(body["trigger"], "back-in-stock");
    assert_eq!(
        body["key"],
        serde_json::json!({"sku": "tent-2p", "store": "online"})
    );
    assert_eq!(body["row"]["qty"], 4.0);
    assert_eq!(body["before"]["qty"], 0.0);
    assert_eq!(body["profile"], "0c".repeat(16));
    assert_ne!(sent[0].id, sent[1].id);
    // Still in stock, out of stock, or removed: nobody is told.
    assert!(feed_deliveries(
        &bundle,
        stock,
        &key,
        Some(&row(2.0)),
        Some(&row(4.0)),
        &watchers,
        NOW
    )
    .is_empty());
    assert!(feed_deliveries(
        &bundle,
        stock,
        &key,
        Some(&row(2.0)),
        Some(&row(0.0)),
        &watchers,
        NOW
    )
    .is_empty());
    assert!(
        feed_deliveries(&bundle, stock, &key, Some(&row(2.0)), None, &watchers, NOW).is_empty()
    );
    // A new row in stock is "back" too.
    assert_eq!(
        feed_deliveries(&bundle, stock, &key, None, Some(&row(1.0)), &watchers, NOW).len(),
        2
    );
    // Another row of the same person has another message id.
    let other = vec!["tent-2p".to_owned(), "lyon-part-dieu".to_owned()];
    let a = feed_deliveries(
        &bundle,
        stock,
        &other,
        None,
        Some(&row(1.0)),
        &watchers[..1],
        NOW,
    );
    assert_ne!(a[0].id, sent[0].id);
}

#[test]
fn feed_triggers_are_checked_when_compiled() {
    let source = |trigger: &str| {
        format!(
            r#"{{"id": "f", "version": 1, "journey": {{"stages": ["a"]}},
            "feeds": {{"stock": {{"key": ["sku", "store"], "fields": {{"qty": "number"}}}}}},
            "content": {{"c": {{"html": "c"}}}},
            "slots": {{"s": {{"default": "c"}}}},
            "destinations": {{"crm": {{"kind": "webhook", "url": "MM_DEST_CRM_URL", "secret": "MM_DEST_CRM_SECRET"}}}},
            "triggers": [{trigger}]}}"#
        )
    };
    let compile = |text: &str| {
        micromoment::bundle::compile(text, Default::default())
            .map(|_| ())
            .map_err(|d| {
                d.iter()
                    .map(|d| format!("{}: {}", d.path, d.message))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
    };
    compile(&source(r#"{"id": "t", "on": {"feed": "stock", "when": {">": [{"var": "row.qty"}, 0]}}, "send": ["crm"]}"#)).unwrap();
    let err = compile(&source(
        r#"{"id": "t", "on": {"feed": "stok", "when": true}, "send": ["crm"]}"#,
    ))
    .unwrap_err();
    assert!(
        err.contains("triggers[0].on.feed: unknown feed \"stok\" (did you mean \"stock\"?)"),
        "{err}"
    );
    let err = compile(&source(
        r#"{"id": "t", "on": {"feed": "stock", "when": {"var": "row.qt"}}, "send": ["crm"]}"#,
    ))
    .unwrap_err();
    assert!(err.contains("row.qty"), "{err}");
    let err = compile(&source(
        r#"{"id": "t", "on": {"feed": "stock"}, "send": ["crm"]}"#,
    ))
    .unwrap_err();
    assert!(
        err.contains("a feed trigger names its rule over the changed row"),
        "{err}"
    );
    let err = compile(&source(
        r#"{"id": "t", "on": {"feed": "stock", "when": true}, "send": ["crm"], "delay": "1h"}"#,
    ))
    .unwrap_err();
    assert!(
        err.contains("it takes no `delay`, `unless` or `cap`"),
        "{err}"
    );
}
