//! What one request reads of its bundle's feeds: for each, the manifest of its current
//! version, the shards a face loaded for this request, the recent changes its Durable
//! Object holds (newer than any shard), and the stores' grid. A feed that is not
//! there, is of another layout than the bundle declares, or is older than its
//! `stale_after` is unavailable.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::rows::{Cell, Row};
use super::shard::{shard_of, Shard};
use super::spec::{FeedRoles, FeedSpec};
use super::stores::StoreIndex;
use crate::time::UnixSeconds;

/// A feed's current version, as its writer stores it beside the shards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Counts every write of the feed.
    pub version: u64,
    /// [`FeedSpec::layout`] of the rows.
    pub layout: u32,
    /// Each shard's generation: shard `i` is stored under `…:<i>:<generation>`.
    pub shards: Vec<u64>,
    /// How many rows the shards hold.
    pub rows: u64,
    /// When the feed was last written (a full push or a change).
    pub updated_at: UnixSeconds,
    /// The number of the last change its shards hold or replaced: an isolate lays the
    /// changes numbered above it over them.
    #[serde(default)]
    pub seq: u64,
}

/// One feed as a face loaded it for a request.
#[derive(Debug, Clone)]
pub struct FeedData {
    pub manifest: Arc<Manifest>,
    /// The shards loaded, by index.
    pub shards: Vec<(u32, Arc<Shard>)>,
    /// Changes newer than the shards: a row written, or `None` for a key removed.
    pub hot: Arc<BTreeMap<Vec<String>, Option<Row>>>,
    /// When the newest of those changes was made.
    pub hot_at: UnixSeconds,
    /// The grid of the stores feed, when this is it.
    pub stores: Option<Arc<StoreIndex>>,
}

/// A feed that cannot be read: a rule reading it is false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unavailable;

/// Where a `nearest_store` lookup found the item.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StoreHit {
    /// The store's index in the stores grid.
    pub store: u32,
    pub distance_km: f64,
    /// The quantity of the item there.
    pub qty: f64,
}

/// What a request needs loaded before it decides: the shards of these first keys in
/// these feeds, and these feeds whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wants {
    pub keys: Vec<(u16, String)>,
    pub whole: Vec<u16>,
}

/// The feeds of one request, by their index in the bundle.
#[derive(Debug, Clone, Default)]
pub struct Feeds {
    pub now: UnixSeconds,
    pub feeds: Vec<Option<FeedData>>,
}

impl FeedData {
    /// The row of `key`: a recent change first, then its shard (which must be loaded).
    fn row(&self, key: &[&str]) -> Result<Option<&Row>, Unavailable> {
        let owned: Vec<String> = key.iter().map(|k| (*k).to_owned()).collect();
        if let Some(change) = self.hot.get(&owned) {
            return Ok(change.as_ref());
        }
        Ok(self.shard(key.first().copied().unwrap_or(""))?.get(key))
    }

    fn shard(&self, first: &str) -> Result<&Shard, Unavailable> {
        let count = u32::try_from(self.manifest.shards.len()).map_err(|_| Unavailable)?;
        let i = shard_of(first, count);
        self.shards
            .iter()
            .find(|(j, _)| *j == i)
            .map(|(_, s)| s.as_ref())
            .ok_or(Unavailable)
    }

    /// Every row whose first key column is `first`, recent changes over the shard's.
    fn with_first(&self, first: &str) -> Result<Vec<&Row>, Unavailable> {
        let stored = self.shard(first)?.with_first(first);
        let recent = self
            .hot
            .range(vec![first.to_owned()]..)
            .take_while(|(k, _)| k.first().map(String::as_str) == Some(first));
        let mut rows: Vec<&Row> = stored
            .iter()
            .filter(|r| !self.hot.contains_key(&r.key))
            .collect();
        rows.extend(recent.filter_map(|(_, change)| change.as_ref()));
        Ok(rows)
    }
}

impl Feeds {
    /// The row of `key` in feed `i`, as a rule reads it (recent changes over the
    /// shards): what `GET /v1/feeds/<name>?key=…` answers.
    pub fn row(
        &self,
        specs: &[FeedSpec],
        i: u16,
        key: &[&str],
    ) -> Result<Option<&Row>, Unavailable> {
        self.usable(specs, i)?.row(key)
    }

    /// Feed `i` of `specs` when it can be read: loaded, of the declared layout, fresh.
    fn usable<'f>(&'f self, specs: &[FeedSpec], i: u16) -> Result<&'f FeedData, Unavailable> {
        let spec = specs.get(usize::from(i)).ok_or(Unavailable)?;
        let data = self
            .feeds
            .get(usize::from(i))
            .and_then(Option::as_ref)
            .ok_or(Unavailable)?;
        if data.manifest.layout != spec.layout() {
            return Err(Unavailable);
        }
        let updated = data.manifest.updated_at.max(data.hot_at);
        match spec.stale_after {
            Some(limit) if self.now.saturating_sub(updated) > limit => Err(Unavailable),
            _ => Ok(data),
        }
    }

    /// The quantity of `sku` at `store` (`{"stock": [sku, store]}`): `None` when the
    /// feed has no such row or no quantity in it.
    pub fn stock(
        &self,
        specs: &[FeedSpec],
        roles: FeedRoles,
        sku: &str,
        store: &str,
    ) -> Result<Option<f64>, Unavailable> {
        let (feed, qty) = roles.stock.ok_or(Unavailable)?;
        let data = self.usable(specs, feed)?;
        Ok(data.row(&[sku, store])?.and_then(|r| match r.value(qty) {
            Cell::Number(n) => Some(*n),
            _ => None,
        }))
    }

    /// The nearest store within `km` of (`lat`, `lon`) holding `sku`
    /// (`{"nearest_store": [sku, km]}`).
    pub fn nearest(
        &self,
        specs: &[FeedSpec],
        roles: FeedRoles,
        sku: &str,
        km: f64,
        place: (f64, f64),
    ) -> Result<Option<StoreHit>, Unavailable> {
        let (stock_feed, qty_field) = roles.stock.ok_or(Unavailable)?;
        let (stores_feed, _, _) = roles.stores.ok_or(Unavailable)?;
        let stock = self.usable(specs, stock_feed)?;
        let index = self
            .usable(specs, stores_feed)?
            .stores
            .as_deref()
            .ok_or(Unavailable)?;
        let qty_of = |r: &Row| match r.value(qty_field) {
            Cell::Number(n) => Some(*n),
            _ => None,
        };
        let held = stock.with_first(sku)?;
        let pairs: Vec<(&str, f64)> = held
            .iter()
            .filter_map(|r| Some((r.key.get(1)?.as_str(), qty_of(r)?)))
            .collect();
        let lookup = |store: &str| stock.row(&[sku, store]).ok().flatten().and_then(qty_of);
        Ok(index
            .nearest(place.0, place.1, km, Some(&pairs), &lookup)
            .map(|(store, distance_km, qty)| StoreHit {
                store,
                distance_km,
                qty,
            }))
    }

    /// A field of the store a lookup found: `None` for a field it does not have.
    pub fn store_value(
        &self,
        specs: &[FeedSpec],
        roles: FeedRoles,
        hit: &StoreHit,
        field: u16,
    ) -> Option<&Cell> {
        let (stores_feed, _, _) = roles.stores?;
        let index = self.usable(specs, stores_feed).ok()?.stores.as_deref()?;
        index.row(hit.store).map(|r| r.value(field))
    }

    /// The id of the store a lookup found.
    pub fn store_id(&self, specs: &[FeedSpec], roles: FeedRoles, hit: &StoreHit) -> Option<&str> {
        let (stores_feed, _, _) = roles.stores?;
        let index = self.usable(specs, stores_feed).ok()?.stores.as_deref()?;
        index.row(hit.store)?.key.first().map(String::as_str)
    }
}
