//! What rules and placeholders read: the request context, and the visitor's journey as
//! it stands at each phase of the request.

use std::cell::Cell;

use crate::bundle::{Bundle, Content};
use crate::context::{Context, Derived, LocalTime, VarId};
use crate::feed::{store_field as field, Cell as FeedCell, Feeds, StoreHit};
use crate::rules::{Data, FeedOp, Value};
use crate::time::{UnixSeconds, DAY};
use crate::token::{DeviceKind, Impression, State};

/// Where the visitor is on the journey at one phase of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Journey {
    /// The stage's index in the bundle.
    pub stage: u16,
    /// When the visitor entered it.
    pub since: UnixSeconds,
    /// Visits so far, this one included.
    pub visits: u32,
    /// Back moves so far ([`State::stage_generation`]).
    pub generation: u16,
}

/// The visitor's local time, worked out (a time zone lookup and a calendar conversion)
/// only when a rule or placeholder reads `time.*`: most requests never do.
pub(crate) struct LazyTime<'a> {
    now: UnixSeconds,
    timezone: Option<&'a str>,
    local: std::cell::OnceCell<LocalTime>,
}

impl<'a> LazyTime<'a> {
    pub fn new(now: UnixSeconds, timezone: Option<&'a str>) -> Self {
        LazyTime {
            now,
            timezone,
            local: std::cell::OnceCell::new(),
        }
    }

    fn get(&self) -> &LocalTime {
        self.local
            .get_or_init(|| LocalTime::at(self.now, self.timezone))
    }
}

/// What rules read: the request context plus the visitor's journey so far.
pub(crate) struct Facts<'a> {
    pub bundle: &'a Bundle,
    pub ctx: &'a Context,
    pub prior: &'a State,
    pub journey: Journey,
    pub intents: &'a [f64],
    pub time: &'a LazyTime<'a>,
    pub now: UnixSeconds,
    /// The request's live data, if the face loaded any.
    pub feeds: Option<&'a Feeds>,
    /// The store the last `nearest_store` lookup of the rule being judged found: what
    /// `store.*` reads (the winning candidate's, when its content is rendered).
    pub store: Cell<Option<StoreHit>>,
    /// Whether to note the feed rows lookups read (a feed trigger watches them).
    pub watching: bool,
    /// The rows the rule being judged read: `stock`'s, and the row of the store
    /// `nearest_store` found.
    pub looked: std::cell::RefCell<Vec<super::types::Watch>>,
}

impl Facts<'_> {
    /// Notes that the rule being judged read the stock row (`sku`, `store`).
    fn look(&self, stock: Option<(u16, u16)>, sku: &str, store: &str) {
        let (true, Some((feed, _))) = (self.watching, stock) else {
            return;
        };
        let watch = super::types::Watch {
            feed,
            key: vec![sku.to_owned(), store.to_owned()],
        };
        let mut looked = self.looked.borrow_mut();
        if !looked.contains(&watch) && looked.len() < 8 {
            looked.push(watch);
        }
    }

    pub fn impression(&self, id: u32) -> Option<&Impression> {
        self.prior.impressions.iter().find(|i| i.id == id)
    }

    fn seen_total(&self, content: &Content) -> u32 {
        self.impression(content.id).map_or(0, |i| i.total)
    }

    /// Whether the visitor saw a content before this request.
    pub fn seen_before(&self, content: &Content) -> bool {
        self.seen_total(content) > 0 || self.prior.sequence.contains(&content.id)
    }
}

impl Data for Facts<'_> {
    type Var = VarId;

    /// A context field as the table of variables reads it, any other variable through
    /// [`Derived`] below: one match on the variable, resolved at compile time.
    #[inline]
    fn get(&self, var: &VarId) -> Option<Value<'_>> {
        var.read(self.ctx, self)
    }

    fn get_path(&self, path: &str) -> Option<Value<'_>> {
        let var = self.bundle.resolve_var(path)?;
        // The resolved id borrows nothing, so the value can be read and returned.
        match self.get(&var)? {
            Value::Str(s) => Some(Value::Str(std::borrow::Cow::Owned(s.into_owned()))),
            Value::Array(items) => Some(Value::Array(
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::Str(s) => Value::Str(std::borrow::Cow::Owned(s.into_owned())),
                        other => other,
                    })
                    .collect(),
            )),
            other => Some(other),
        }
    }

    fn feed<'d>(&'d self, op: FeedOp, args: &[Value<'_>]) -> Option<Value<'d>> {
        // No item asked (no `sku` in the request): the feed has nothing to say, and
        // nothing was loaded for it.
        let sku = match args.first() {
            None | Some(Value::Null) => return Some(Value::Null),
            Some(v) => v.to_js_string(),
        };
        if sku.is_empty() {
            return Some(Value::Null);
        }
        let feeds = self.feeds?;
        let (specs, roles) = (&self.bundle.feeds[..], self.bundle.feed_roles);
        match op {
            FeedOp::Stock => {
                let store = match args.get(1) {
                    None | Some(Value::Null) => return Some(Value::Null),
                    Some(v) => v.to_js_string(),
                };
                let qty = feeds.stock(specs, roles, &sku, &store).ok()?;
                self.look(roles.stock, &sku, &store);
                Some(qty.map_or(Value::Null, Value::Number))
            }
            FeedOp::NearestStore => {
                let km = args.get(1).map_or(f64::NAN, Value::to_number);
                let (Some(lat), Some(lon)) = (self.ctx.geo.lat, self.ctx.geo.lon) else {
                    // No place for the visitor: no store is near.
                    return Some(Value::Null);
                };
                let hit = feeds.nearest(specs, roles, &sku, km, (lat, lon)).ok()?;
                let Some(hit) = hit else {
                    return Some(Value::Null);
                };
                self.store.set(Some(hit));
                let id = feeds.store_id(specs, roles, &hit)?;
                self.look(roles.stock, &sku, id);
                Some(Value::str(id))
            }
        }
    }

    fn list_contains(&self, var: &VarId, item: &str) -> bool {
        match var {
            VarId::Segments => self.prior.segments.iter().any(|s| s == item),
            _ => false,
        }
    }
}

/// The variables that are not context fields, as the table of variables in `context`
/// names them.
impl Derived for Facts<'_> {
    fn stage(&self) -> Option<Value<'_>> {
        self.bundle
            .stages
            .get(usize::from(self.journey.stage))
            .map(|s| Value::str(&s.name))
    }

    fn stage_index(&self) -> Option<Value<'_>> {
        Some(Value::Number(f64::from(self.journey.stage)))
    }

    fn days_in_stage(&self) -> Option<Value<'_>> {
        Some(Value::Number(
            (self.now - self.journey.since) as f64 / DAY as f64,
        ))
    }

    fn intent(&self, topic: &u16) -> Option<Value<'_>> {
        Some(Value::Number(
            self.intents
                .get(usize::from(*topic))
                .copied()
                .unwrap_or(0.0),
        ))
    }

    fn visits(&self) -> Option<Value<'_>> {
        Some(Value::Number(f64::from(self.journey.visits)))
    }

    fn returning(&self) -> Option<Value<'_>> {
        Some(Value::Bool(self.journey.visits > 1))
    }

    fn segments(&self) -> Option<Value<'_>> {
        Some(Value::Array(
            self.prior.segments.iter().map(|s| Value::str(s)).collect(),
        ))
    }

    fn seen(&self, content: &u16) -> Option<Value<'_>> {
        self.bundle
            .contents
            .get(usize::from(*content))
            .map(|c| Value::Number(f64::from(self.seen_total(c))))
    }

    fn time_hour(&self) -> Option<Value<'_>> {
        Some(Value::Number(f64::from(self.time.get().hour)))
    }

    fn time_weekday(&self) -> Option<Value<'_>> {
        Some(Value::str(self.time.get().weekday))
    }

    fn time_date(&self) -> Option<Value<'_>> {
        Some(Value::str(&self.time.get().date))
    }

    fn time_daypart(&self) -> Option<Value<'_>> {
        Some(Value::str(self.time.get().daypart))
    }

    fn page_query(&self, key: &String) -> Option<Value<'_>> {
        self.ctx.page.query.get(key).map(|v| Value::str(v))
    }

    fn profile_linked(&self) -> Option<Value<'_>> {
        Some(Value::Bool(self.prior.link.is_some()))
    }

    fn profile_devices(&self) -> Option<Value<'_>> {
        Some(Value::Number(f64::from(
            self.prior.link.map_or(1, |l| l.devices.max(1)),
        )))
    }

    fn visits_of(&self, kind: &u8) -> Option<Value<'_>> {
        let kind = DeviceKind::ALL.get(usize::from(*kind))?;
        let this = self.ctx.visit_kind();
        // This request's visit, when it starts one, counts under its own kind.
        let new_visit = self.journey.visits > self.prior.visits;
        let now = u32::from(new_visit && this == Some(*kind));
        Some(Value::Number(f64::from(
            self.prior.visits_of(*kind, this).saturating_add(now),
        )))
    }

    fn store(&self, field: &u16) -> Option<Value<'_>> {
        let hit = self.store.get()?;
        let feeds = self.feeds?;
        let (specs, roles) = (&self.bundle.feeds[..], self.bundle.feed_roles);
        match *field {
            field::ID => feeds.store_id(specs, roles, &hit).map(Value::str),
            // Tenths of a kilometre: what a page says.
            field::DISTANCE_KM => Some(Value::Number((hit.distance_km * 10.0).round() / 10.0)),
            field::QTY => Some(Value::Number(hit.qty)),
            f => match feeds.store_value(specs, roles, &hit, f.checked_sub(field::FIELDS)?)? {
                FeedCell::Null => Some(Value::Null),
                FeedCell::Number(n) => Some(Value::Number(*n)),
                FeedCell::Text(s) => Some(Value::str(s)),
                FeedCell::Flag(b) => Some(Value::Bool(*b)),
            },
        }
    }

    fn last_channel(&self) -> Option<Value<'_>> {
        self.prior
            .last_channel
            // A state from a `v1` token does not say: a returning device's last
            // request came through the channel it uses now.
            .or_else(|| (self.prior.visits > 0).then_some(self.ctx.channel))
            .map(|c| Value::str(c.as_str()))
    }
}

/// The index of the visitor's stage in this bundle: unknown or absent is the first.
pub(crate) fn stage_index(bundle: &Bundle, state: &State) -> u16 {
    state
        .stage
        .and_then(|id| bundle.stages.iter().position(|s| s.id == id))
        .and_then(|i| u16::try_from(i).ok())
        .unwrap_or(0)
}
