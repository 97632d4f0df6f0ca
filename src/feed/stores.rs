//! The nearest store holding an item: a grid of one-degree cells over a stores feed,
//! built once per version of the feed, so a request looks only at the stores in the
//! cells its radius touches (or, when the item is held by fewer stores than those,
//! only at the stores that hold it).

use std::collections::HashMap;

use super::rows::{Cell, Row};

/// The Earth's mean radius, in kilometres.
const EARTH_KM: f64 = 6371.0088;
/// Kilometres per degree of latitude.
const KM_PER_DEGREE: f64 = 111.195;

/// The stores of a feed with their places, by id and by one-degree cell.
#[derive(Debug, Default)]
pub struct StoreIndex {
    stores: Vec<Place>,
    by_id: HashMap<String, u32>,
    cells: HashMap<(i32, i32), Vec<u32>>,
}

#[derive(Debug)]
struct Place {
    row: Row,
    lat: f64,
    lon: f64,
}

/// The great-circle distance between two places, in kilometres.
pub fn distance_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_KM * a.sqrt().min(1.0).asin()
}

fn cell_of(lat: f64, lon: f64) -> (i32, i32) {
    // Saturating casts: the coordinates were checked to be on the globe.
    (lat.floor() as i32, lon.floor() as i32)
}

fn on_globe(lat: f64, lon: f64) -> bool {
    (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon)
}

impl StoreIndex {
    /// The index of the stores in `rows`, whose fields `lat` and `lon` place them; a
    /// store without a place on the globe is left out.
    pub fn build<'r>(rows: impl IntoIterator<Item = &'r Row>, lat: u16, lon: u16) -> StoreIndex {
        let mut index = StoreIndex::default();
        for row in rows {
            let (Cell::Number(la), Cell::Number(lo)) = (row.value(lat), row.value(lon)) else {
                continue;
            };
            let (la, lo) = (*la, *lo);
            let Some(id) = row.key.first() else { continue };
            if !on_globe(la, lo) || index.by_id.contains_key(id) {
                continue;
            }
            let Ok(i) = u32::try_from(index.stores.len()) else {
                break;
            };
            index.by_id.insert(id.clone(), i);
            index.cells.entry(cell_of(la, lo)).or_default().push(i);
            index.stores.push(Place {
                row: row.clone(),
                lat: la,
                lon: lo,
            });
        }
        index
    }

    /// How many stores it places.
    pub fn len(&self) -> usize {
        self.stores.len()
    }

    /// Whether it places no store.
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// The row of store `i`.
    pub fn row(&self, i: u32) -> Option<&Row> {
        self.stores.get(usize::try_from(i).ok()?).map(|p| &p.row)
    }

    /// The nearest store within `km` of (`lat`, `lon`) for which `qty` (the item's
    /// quantity at a store id) is above zero: its index, distance and quantity. Ties go
    /// to the smaller store id. `held` lists the stores known to hold the item, when
    /// that is cheaper to walk than the cells the radius touches.
    pub fn nearest<'s>(
        &self,
        lat: f64,
        lon: f64,
        km: f64,
        held: Option<&[(&'s str, f64)]>,
        qty: &dyn Fn(&str) -> Option<f64>,
    ) -> Option<(u32, f64, f64)> {
        if !on_globe(lat, lon) || km.is_nan() || km < 0.0 {
            return None;
        }
        let km = km.min(20_000.0);
        let mut best: Option<(u32, f64, f64)> = None;
        let mut consider = |i: u32, q: f64| {
            let Some(place) = self.stores.get(usize::try_from(i).unwrap_or(usize::MAX)) else {
                return;
            };
            if q <= 0.0 {
                return;
            }
            let d = distance_km(lat, lon, place.lat, place.lon);
            if d > km {
                return;
            }
            let better = match best {
                None => true,
                Some((j, bd, _)) => {
                    d < bd || (d == bd && Some(&place.row.key) < self.row(j).map(|r| &r.key))
                }
            };
            if better {
                best = Some((i, d, q));
            }
        };
        // The cells the radius touches: a box of whole degrees around the place.
        let dlat = km / KM_PER_DEGREE;
        let cos = lat.to_radians().cos().max(0.01);
        // A radius that reaches a pole reaches every longitude.
        let dlon = if lat.abs() + dlat >= 90.0 {
            360.0
        } else {
            (km / (KM_PER_DEGREE * cos)).min(360.0)
        };
        let (lat0, lon0) = cell_of(lat - dlat, lon - dlon);
        let (lat1, lon1) = cell_of(lat + dlat, lon + dlon);
        let cells =
            (i64::from(lat1) - i64::from(lat0) + 1) * (i64::from(lon1) - i64::from(lon0) + 1);
        if let Some(held) = held {
            if cells > 1_000 || held.len() < self.in_cells(lat0, lat1, lon0, lon1, cells) {
                for &(store, q) in held {
                    if let Some(&i) = self.by_id.get(store) {
                        consider(i, q);
                    }
                }
                return best;
            }
        }
        if cells > 1_000 {
            // A radius of thousands of kilometres: every store is a candidate.
            for (i, place) in (0u32..).zip(&self.stores) {
                if let Some(q) = place.row.key.first().and_then(|id| qty(id)) {
                    consider(i, q);
                }
            }
            return best;
        }
        for la in lat0..=lat1 {
            for lo in lon0..=lon1 {
                // Longitudes wrap at the antimeridian.
                let lo = (lo + 180).rem_euclid(360) - 180;
                for &i in self.cells.get(&(la, lo)).map_or(&[][..], Vec::as_slice) {
                    if let Some(q) = self
                        .row(i)
                        .and_then(|r| r.key.first())
                        .and_then(|id| qty(id))
                    {
                        consider(i, q);
                    }
                }
            }
        }
        best
    }

    /// How many stores the cells of a box hold (counted up to a few thousand cells).
    fn in_cells(&self, lat0: i32, lat1: i32, lon0: i32, lon1: i32, cells: i64) -> usize {
        if cells > 1_000 {
            return self.stores.len();
        }
        let mut n = 0;
        for la in lat0..=lat1 {
            for lo in lon0..=lon1 {
                let lo = (lo + 180).rem_euclid(360) - 180;
                n += self.cells.get(&(la, lo)).map_or(0, Vec::len);
            }
        }
        n
    }
}
