//! Arbitrary bytes where live data meets the edge (docs/feeds.md): the body of a feed
//! push (`PUT /v1/feeds/<name>`, read against the retail fixture's `stock` and `stores`
//! declarations), and the binary values the Worker and a feed's object read back (a
//! shard from KV, a push's changes, the recent changes, staged rows). Nothing may
//! panic; an accepted push holds only rows within its declaration's bounds; a decoded
//! shard answers lookups and builds a stores' grid that answers nearest-store queries.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::feed::{
    decode_changes, decode_hot, decode_rows, decode_shard, parse_ndjson, Change, FeedField,
    FeedKind, FeedSpec, StoreIndex, MAX_LINE_BYTES, MAX_ROWS_PER_PUSH,
};

fn spec(name: &str, key: &[&str], fields: &[(&str, FeedKind)]) -> FeedSpec {
    FeedSpec {
        name: name.into(),
        key: key.iter().map(|k| (*k).to_owned()).collect::<Vec<_>>().into(),
        fields: fields
            .iter()
            .map(|(n, kind)| FeedField { name: (*n).into(), kind: *kind })
            .collect::<Vec<_>>()
            .into(),
        stale_after: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    match mode % 3 {
        0 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            let specs = [
                spec("stock", &["sku", "store"], &[("qty", FeedKind::Number)]),
                spec(
                    "stores",
                    &["store"],
                    &[("name", FeedKind::Text), ("lat", FeedKind::Number), ("lon", FeedKind::Number), ("open", FeedKind::Flag)],
                ),
            ];
            for spec in &specs {
                let read = parse_ndjson(spec, text);
                assert_eq!(read, parse_ndjson(spec, text));
                match read {
                    Ok(changes) => {
                        assert!(changes.len() <= MAX_ROWS_PER_PUSH);
                        for change in &changes {
                            assert_eq!(change.key().len(), spec.key.len());
                            assert!(change.key().iter().all(|k| !k.is_empty() && k.len() <= 256));
                            if let Change::Put(row) = change {
                                assert_eq!(row.values.len(), spec.fields.len());
                            }
                        }
                    }
                    Err(e) => {
                        assert!(e.line >= 1 && e.line <= text.lines().count().max(1));
                        assert!(!e.message.is_empty());
                    }
                }
            }
            let _ = MAX_LINE_BYTES;
        }
        1 => {
            if let Ok(shard) = decode_shard(rest) {
                for row in shard.rows().iter().take(64) {
                    let key: Vec<&str> = row.key.iter().map(String::as_str).collect();
                    assert!(shard.get(&key).is_some());
                    if let Some(first) = key.first() {
                        assert!(!shard.with_first(first).is_empty());
                    }
                }
                let index = StoreIndex::build(shard.rows(), 0, 1);
                let any = |_: &str| Some(1.0);
                for (lat, lon, km) in [(45.0, 4.0, 50.0), (89.9, 0.0, 100.0), (0.0, 179.9, 20.0), (0.0, 0.0, 1e9)] {
                    if let Some((i, d, _)) = index.nearest(lat, lon, km, None, &any) {
                        assert!(index.row(i).is_some() && d <= km.min(20_000.0) + 1e-6);
                    }
                }
            }
        }
        _ => {
            let _ = decode_changes(rest);
            let _ = decode_hot(rest);
            let _ = decode_rows(rest);
        }
    }
});
