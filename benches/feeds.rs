//! Live data (docs/feeds.md), natively: the lookups a request makes once its shards are
//! loaded (a stock row in a shard of 2,048 rows, over 100 recent changes), the nearest
//! store holding an item among 10,000 stores (through the grid, and through the item's
//! own stores), a shard decoded as an isolate decodes it after its KV read, and the
//! stores' grid built once per version. Prints the sizes an isolate keeps: encoded, and
//! in memory (the bytes live after decoding, counted by the allocator).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The system allocator, counting the bytes live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed on to the system allocator unchanged; only a counter is
// kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The bytes `make`'s result keeps live.
fn live_bytes<T>(make: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    let value = make();
    (value, LIVE.load(Ordering::Relaxed).saturating_sub(before))
}

use criterion::{criterion_group, criterion_main, Criterion};
use micromoment::feed::{
    decode_shard, encode_shard, Cell, FeedData, FeedField, FeedKind, FeedRoles, FeedSpec, Feeds,
    Manifest, Row, Shard, StoreIndex,
};

fn spec(name: &str, key: &[&str], fields: &[&str]) -> FeedSpec {
    FeedSpec {
        name: name.into(),
        key: key
            .iter()
            .map(|k| (*k).to_owned())
            .collect::<Vec<_>>()
            .into(),
        fields: fields
            .iter()
            .map(|f| FeedField {
                name: (*f).into(),
                kind: if *f == "name" {
                    FeedKind::Text
                } else {
                    FeedKind::Number
                },
            })
            .collect::<Vec<_>>()
            .into(),
        stale_after: None,
    }
}

/// 10,000 stores over France, seeded: (id, lat, lon).
fn stores() -> Vec<Row> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % 1_000_000) as f64 / 1_000_000.0
    };
    (0..10_000)
        .map(|i| Row {
            key: vec![format!("store-{i:05}")],
            values: vec![
                Cell::Text(format!("Store {i}")),
                Cell::Number(42.3 + next() * 8.8),
                Cell::Number(-4.5 + next() * 12.5),
            ],
        })
        .collect()
}

fn data(
    spec: &FeedSpec,
    shard: Shard,
    hot: BTreeMap<Vec<String>, Option<Row>>,
    index: Option<StoreIndex>,
) -> FeedData {
    FeedData {
        manifest: Arc::new(Manifest {
            version: 1,
            layout: spec.layout(),
            shards: vec![1],
            rows: shard.len() as u64,
            updated_at: 0,
            seq: 0,
        }),
        shards: vec![(0, Arc::new(shard))],
        hot: Arc::new(hot),
        hot_at: 0,
        stores: index.map(Arc::new),
    }
}

fn feeds(c: &mut Criterion) {
    let stock_spec = spec("stock", &["sku", "store"], &["qty"]);
    let stores_spec = spec("stores", &["store"], &["name", "lat", "lon"]);
    let specs = vec![stock_spec.clone(), stores_spec.clone()];
    let roles = FeedRoles::of(&specs);
    let store_rows = stores();
    // A shard as a full push cuts it: 2,048 rows, 40 skus held by ~50 stores each.
    let stock_rows: Vec<Row> = (0..2_048)
        .map(|i| Row {
            key: vec![
                format!("sku-{:03}", i / 51),
                format!("store-{:05}", (i * 197) % 10_000),
            ],
            values: vec![Cell::Number(f64::from(i % 5))],
        })
        .collect();
    let shard = Shard::new(stock_rows.clone());
    let bytes = encode_shard(&shard);
    let hot: BTreeMap<Vec<String>, Option<Row>> = stock_rows
        .iter()
        .step_by(20)
        .take(100)
        .map(|r| {
            (
                r.key.clone(),
                Some(Row {
                    key: r.key.clone(),
                    values: vec![Cell::Number(9.0)],
                }),
            )
        })
        .collect();
    let index = StoreIndex::build(&store_rows, 1, 2);
    let stores_bytes = encode_shard(&Shard::new(store_rows.clone()));
    let (_decoded, shard_live) = live_bytes(|| decode_shard(&bytes).expect("decodes"));
    let (stores_shard, stores_live) = live_bytes(|| decode_shard(&stores_bytes).expect("decodes"));
    let (_grid, grid_live) = live_bytes(|| StoreIndex::build(stores_shard.rows(), 1, 2));
    println!(
        "in memory: a 2,048-row stock shard {shard_live} bytes ({:.1}x encoded); the 10,000 stores {stores_live} bytes, their grid {grid_live} bytes more",
        shard_live as f64 / bytes.len() as f64
    );
    println!(
        "stock shard: {} rows, {} bytes encoded; stores: {} rows, {} bytes encoded",
        shard.len(),
        bytes.len(),
        store_rows.len(),
        stores_bytes.len()
    );
    let live = Feeds {
        now: 0,
        feeds: vec![
            Some(data(&stock_spec, shard, hot, None)),
            Some(data(
                &stores_spec,
                Shard::new(store_rows.clone()),
                BTreeMap::new(),
                Some(index),
            )),
        ],
    };
    let lyon = (45.764, 4.8357);
    let hit = live
        .nearest(&specs, roles, "sku-007", 50.0, lyon)
        .expect("available");
    println!("nearest holding sku-007 within 50 km of Lyon: {hit:?}");
    c.bench_function(
        "stock: one row of a 2,048-row shard under 100 recent changes",
        |b| {
            b.iter(|| {
                live.stock(
                    &specs,
                    roles,
                    black_box("sku-007"),
                    black_box("store-01379"),
                )
            })
        },
    );
    c.bench_function(
        "nearest_store: 10,000 stores, an item held by ~50, 50 km",
        |b| b.iter(|| live.nearest(&specs, roles, black_box("sku-007"), 50.0, lyon)),
    );
    let all = |_: &str| Some(1.0);
    let index = StoreIndex::build(&store_rows, 1, 2);
    c.bench_function(
        "nearest store through the grid: 10,000 stores, every one holding it, 50 km",
        |b| b.iter(|| index.nearest(black_box(lyon.0), black_box(lyon.1), 50.0, None, &all)),
    );
    c.bench_function(
        "nearest store through the grid: 10,000 stores, 200 km",
        |b| b.iter(|| index.nearest(black_box(lyon.0), black_box(lyon.1), 200.0, None, &all)),
    );
    c.bench_function("a 2,048-row shard decoded (after its KV read)", |b| {
        b.iter(|| decode_shard(black_box(&bytes)).expect("decodes"))
    });
    c.bench_function(
        "the stores' grid built from 10,000 stores (once per version)",
        |b| b.iter(|| StoreIndex::build(black_box(&store_rows), 1, 2)),
    );
}

criterion_group!(benches, feeds);
criterion_main!(benches);
