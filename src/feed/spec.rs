//! A feed as a bundle declares it: its key columns, its typed fields, how old it may
//! be; and the two feeds the rule operators `stock` and `nearest_store` read.

use crate::codec::{Decode, Encode, List};
use crate::ids::fnv1a32;

/// The most feeds a bundle may declare.
pub const MAX_FEEDS: usize = 16;

/// A feed: rows keyed by one or more text columns, with typed fields.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
pub struct FeedSpec {
    pub name: String,
    /// The key columns, in order; a row's shard is chosen by the first.
    pub key: List<String>,
    pub fields: List<FeedField>,
    /// Seconds after its last update past which the feed is unavailable.
    pub stale_after: Option<i64>,
}

/// A typed field of a feed's rows.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
pub struct FeedField {
    pub name: String,
    pub kind: FeedKind,
}

/// What a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum FeedKind {
    Number,
    Text,
    Flag,
}

impl FeedKind {
    /// The authoring name.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::Number => "number",
            FeedKind::Text => "string",
            FeedKind::Flag => "boolean",
        }
    }

    /// The kind an authoring name names.
    pub fn parse(name: &str) -> Option<FeedKind> {
        match name {
            "number" => Some(FeedKind::Number),
            "string" => Some(FeedKind::Text),
            "boolean" => Some(FeedKind::Flag),
            _ => None,
        }
    }
}

impl FeedSpec {
    /// The index of a field by name.
    pub fn field(&self, name: &str) -> Option<u16> {
        self.fields
            .iter()
            .position(|f| f.name == name)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Its columns: the key's, then the fields'.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.key
            .iter()
            .map(String::as_str)
            .chain(self.fields.iter().map(|f| f.name.as_str()))
    }

    /// The index of a column among [`FeedSpec::columns`].
    pub fn column(&self, name: &str) -> Option<u16> {
        self.columns()
            .position(|c| c == name)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// The layout of its rows (key names, field names and kinds, in order): shards
    /// written under one layout are never read under another.
    pub fn layout(&self) -> u32 {
        let mut text = String::new();
        for k in self.key.iter() {
            text.push_str(k);
            text.push('\u{1f}');
        }
        text.push('\u{1e}');
        for f in self.fields.iter() {
            text.push_str(&f.name);
            text.push(':');
            text.push_str(f.kind.as_str());
            text.push('\u{1f}');
        }
        fnv1a32(text.as_bytes())
    }
}

/// Which of a bundle's feeds `stock` and `nearest_store` read, resolved when it is
/// compiled: `stock` is the feed named `stock` (key `[sku, store]`, a number field
/// `qty`); `stores` the feed named `stores` (key `[store]`, number fields `lat` and
/// `lon`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Encode, Decode)]
pub struct FeedRoles {
    /// The stock feed's index and its `qty` field.
    pub stock: Option<(u16, u16)>,
    /// The stores feed's index and its `lat` and `lon` fields.
    pub stores: Option<(u16, u16, u16)>,
}

impl FeedRoles {
    /// The roles a list of feeds fills.
    pub fn of(feeds: &[FeedSpec]) -> FeedRoles {
        let index = |name: &str| {
            feeds
                .iter()
                .position(|f| f.name == name)
                .and_then(|i| u16::try_from(i).ok())
        };
        let number = |feed: u16, name: &str| {
            let spec = feeds.get(usize::from(feed))?;
            let i = spec.field(name)?;
            let field = spec.fields.get(usize::from(i))?;
            (field.kind == FeedKind::Number).then_some(i)
        };
        let stock = index("stock").and_then(|f| {
            let spec = feeds.get(usize::from(f))?;
            (spec.key.len() == 2).then_some(())?;
            Some((f, number(f, "qty")?))
        });
        let stores = index("stores").and_then(|f| {
            let spec = feeds.get(usize::from(f))?;
            (spec.key.len() == 1).then_some(())?;
            Some((f, number(f, "lat")?, number(f, "lon")?))
        });
        FeedRoles { stock, stores }
    }
}

/// What `store.<name>` reads, by the number a compiled rule or placeholder stores: the
/// store a `nearest_store` lookup found.
pub mod store_field {
    /// `store.id`: its key.
    pub const ID: u16 = 0;
    /// `store.distance_km`: how far it is from the visitor, in tenths of a kilometre.
    pub const DISTANCE_KM: u16 = 1;
    /// `store.qty`: how many of the item it holds.
    pub const QTY: u16 = 2;
    /// `store.<field>`: field `i` of the stores feed is `FIELDS + i`.
    pub const FIELDS: u16 = 3;
}
