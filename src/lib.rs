//! micromoment: journey-aware personalization at the CDN edge.
//!
//! This crate is the pure core (rules, token, bundle, decide, profile, session): the
//! faces are crates of the workspace around it (`crates/worker`, the Cloudflare Worker;
//! `crates/npm`, the npm package's wasm-bindgen API; `crates/cli`, the `micromoment`
//! command with the coverage report and the analysis). The core never reads the clock,
//! the environment or a source of randomness: those are parameters.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![forbid(unsafe_code)]

// The facade (lol-html's shape): every module of the core is private, in `imp`; the crate
// reaches each through the module of the same name below (its `pub(crate)` glob), and
// everyone else only through what that module exports by name. So the compiler reports
// every item nobody uses, and the public API is this file.

/// The implementation: every module private.
#[path = "."]
mod imp {
    #[path = "bucket.rs"]
    pub(crate) mod bucket;
    #[path = "bundle/mod.rs"]
    pub(crate) mod bundle;
    #[path = "calls.rs"]
    pub(crate) mod calls;
    #[path = "codec.rs"]
    pub(crate) mod codec;
    #[path = "confirm.rs"]
    pub(crate) mod confirm;
    #[path = "context.rs"]
    pub(crate) mod context;
    #[path = "decide/mod.rs"]
    pub(crate) mod decide;
    #[path = "deliver.rs"]
    pub(crate) mod deliver;
    #[path = "destination/mod.rs"]
    pub(crate) mod destination;
    #[path = "feed/mod.rs"]
    pub(crate) mod feed;
    #[path = "html.rs"]
    pub(crate) mod html;
    #[path = "http.rs"]
    pub(crate) mod http;
    #[path = "ids.rs"]
    pub(crate) mod ids;
    #[path = "ofrep.rs"]
    pub(crate) mod ofrep;
    #[path = "profile/mod.rs"]
    pub(crate) mod profile;
    #[path = "record.rs"]
    pub(crate) mod record;
    #[path = "rules/mod.rs"]
    pub(crate) mod rules;
    #[path = "session.rs"]
    pub(crate) mod session;
    #[path = "suggest.rs"]
    pub(crate) mod suggest;
    #[path = "time.rs"]
    pub(crate) mod time;
    #[path = "token/mod.rs"]
    pub(crate) mod token;
    #[path = "view/mod.rs"]
    pub(crate) mod view;
}

/// GrowthBook-compatible hashing and bucket ranges: exported only with the `internals`
/// feature, for the project's own conformance tests.
pub mod bucket {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::bucket::*;
    #[cfg(feature = "internals")]
    pub use crate::imp::bucket::{bucket_ranges, choose_variation, equal_weights, hash};
}
/// Authoring JSON compiled and checked, the `.mmb` frame (hash, Ed25519 signature,
/// budgets), and the compiled model tools read.
pub mod bundle {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::bundle::*;
    pub use crate::imp::bundle::{
        compile, is_destination_var, keygen, latest_key, public_key_of, rollback_key,
        same_destination, schema, verify_signature, Bundle, Candidate, Condition, Counts,
        DestinationKind, ExperimentSpec, GoalSpec, Header, LoadError, Offer, Period,
        RollbackRecord, Schedule, SigningKey, TriggerOn, DESTINATION_VAR_PREFIX, FORMAT_VERSION,
        MAGIC, MAX_DESTINATION_VAR_BYTES, MAX_ROLLBACK_RECORD,
    };
}
/// The JSON API's request bodies, read and checked: a device's events, the backend calls.
pub mod calls {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::calls::*;
    pub use crate::imp::calls::{
        backend_call, device_events, fingerprint, idempotency_key, BackendCall, CallError, Method,
        MAX_EVENTS, MAX_EVENT_NAME,
    };
}
mod codec {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::codec::*;
    // Public through `bundle::List`, the compiled bundle's list type.
    pub use crate::imp::codec::List;
}
/// The page that asks a person to confirm an identity link.
pub mod confirm {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::confirm::*;
    pub use crate::imp::confirm::{page, POLICY};
}
/// The request context rules read, and the catalogue of variables.
pub mod context {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::context::*;
    pub use crate::imp::context::{
        App, Channel, Context, Device, DeviceKind, DeviceType, FieldKind, FieldMut, Geo, Keyword,
        PackedField, Page, Referrer, ReferrerKind, Utm, VarId, FIXED_VARIABLES, PACKED_FIELDS,
    };
}
mod decide {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::decide::*;
}
/// Fired triggers as deliveries: ids, bodies, Standard Webhooks signatures, Segment
/// calls, and what a request cancels of what waits.
pub mod deliver {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::deliver::*;
    pub use crate::imp::deliver::{
        cancelling, deliveries, feed_deliveries, watched, Cancel, Watcher,
    };
}
/// Live data at the edge: feeds, their rows and shards, the nearest store.
pub mod feed {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::feed::*;
    pub use crate::imp::feed::{
        decode_changes, decode_hot, decode_rows, decode_shard, distance_km, encode_changes,
        encode_hot, encode_rows, encode_shard, fingerprint, parse_ndjson, pieces, shard_count,
        shard_of, store_field, Cell, Change, FeedData, FeedField, FeedKind, FeedRoles, FeedSpec,
        Feeds, HotChange, Manifest, Row, RowError, Shard, StoreHit, StoreIndex, Unavailable, Wants,
        MAX_FEEDS, MAX_LINE_BYTES, MAX_ROWS_PER_PUSH, MAX_SHARDS, ROWS_PER_SHARD,
    };
}
/// Destination kinds: one file per kind turning a delivery into an HTTP call.
pub mod destination {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::destination::*;
    pub use crate::imp::destination::{
        is_destination_var, same_destination, DestinationKind, DESTINATION_VAR_PREFIX,
        MAX_DESTINATION_VAR_BYTES,
    };
    pub use crate::imp::destination::{Delivery, HttpCall};
}
/// Slot rewriting of pages with lol_html, streaming or whole.
pub mod html {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::html::*;
    pub use crate::imp::html::{
        note_slot, rewrite_each, slot_names, HeadScanner, OutputSink, SetSlot, SlotRewriter,
    };
}
/// HTTP request parts read into a context: device, crawlers, referrer, UTM, consent.
pub mod http {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::http::*;
    pub use crate::imp::http::{
        client_key, context, device_type, is_bot, RequestParts, MAX_HEADER,
    };
}
/// Stable 32-bit ids of names, and 128-bit ids as hex.
pub mod ids {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::ids::*;
    pub use crate::imp::ids::{fnv1a32, hex128, hex128_string, parse_hex128, stable_id, IdKind};
}
/// The OpenFeature Remote Evaluation Protocol: evaluation requests read into the
/// context, slots' decisions as flags, and the bulk answer's ETag.
pub mod ofrep {
    pub use crate::imp::ofrep::{
        apply, etag, failure_body, matches, may_answer_unchanged, reason, settable, Bulk,
        BulkMetadata, Endpoint, ErrorCode, Failure, Flag, Metadata, Value, MAX_CONTEXT_DEPTH,
        MAX_CONTEXT_PROPERTIES, RENEW_AFTER_SECS,
    };
}
/// One journey per person: the merge of devices, the profile's exchanges, links,
/// revocations and caps, and the messages of its Durable Object (`wire`).
pub mod profile {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::profile::*;
    pub use crate::imp::profile::{
        adopt, after_erasure, backend_device, is_backend, join, join_states, needs_sync, plan_push,
        shares_changes, Device, LinkRefusal, Links, Message, Op, Profile, Reply, Revoked, Spend,
        Spent, Sync, ERASURE_MARGIN, MAX_DEVICES, MAX_LINK_RECORDS, MAX_REVOKED_DEVICES,
        PROFILE_WAIT_MS, RETIRED,
    };
    /// The messages between the Worker and a profile's Durable Object, both halves.
    pub mod wire {
        #[allow(unused_imports)]
        pub(crate) use crate::imp::profile::wire::*;
        pub use crate::imp::profile::wire::{
            kind_code, kind_of, Check, Checked, Erase, ExchangeWire, Fire, LinkWire, Linked,
            ReplyWire, Revoke,
        };
        /// The object's routes.
        pub mod route {
            pub use crate::imp::profile::wire::route::{
                BACKEND, CHECK, ERASE, EXCHANGE, FIRE, LINK, REVOKE,
            };
        }
    }
}
/// What a request leaves for analytics: exposures and conversions.
pub mod record {
    pub use crate::imp::record::What;
    #[allow(unused_imports)]
    pub(crate) use crate::imp::record::*;
    pub use crate::imp::record::{records, DataPoint, Event};
}
/// JSON Logic compiled once and evaluated within a budget.
pub mod rules {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::rules::*;
    pub use crate::imp::rules::{
        compile, BoundedJsonSchema, CompileError, CompileErrorKind, Data, Fuel, JsonData,
        JsonSchema, Limits, OutOfFuel, Schema, UnknownVariable, Value,
    };
}
/// One request, start to finish, the same for every face.
pub mod session {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::session::*;
    pub use crate::imp::session::{
        announce, answer, clear_cookie, decide, events, feed_wants, open, personalize, set_cookie,
        Answer, Entropy, Filler, Mode, Opened, Outcome, Request, Shape, Slots, Visitor,
        MAX_FILLED_ELEMENTS, TOKEN_TTL,
    };
}
mod suggest {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::suggest::*;
}
/// Unix seconds and RFC 3339.
pub mod time {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::time::*;
    pub use crate::imp::time::{parse_rfc3339, rfc3339, UnixSeconds, DAY, HOUR, MINUTE};
}
/// The signed journey token, its keys and cookies, and identity links.
pub mod token {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::token::*;
    pub use crate::imp::token::{
        cookie_value, cookie_values, sign, verify, verify_bytes, verify_cookie, Assignment,
        Base64Problem, Consent, CookieValues, DeviceKind, IdentityLink, Impression, Intent, Keys,
        KeysError, Link, LinkError, ShapeProblem, State, SyntaxProblem, TokenError, COOKIE_NAME,
        DEFAULT_LINK_TTL, DEFAULT_TTL, IMAGE_VERSION, LINK_VERSION, MAX_CAMPAIGN_BYTES,
        MAX_COOKIES, MAX_COOKIE_BYTES, MAX_COOKIE_HEADER_BYTES, MAX_DUPLICATES, MAX_KEYS,
        MAX_KEY_BYTES, MAX_KID_LEN, MAX_SEGMENTS, MAX_SEGMENT_BYTES, MAX_SKEW, MAX_TOKEN_LEN,
        MIN_KEY_BYTES, VERSION, VERSION_2,
    };
}
/// A visitor's state as JSON, by names or by ids.
pub mod view {
    #[allow(unused_imports)]
    pub(crate) use crate::imp::view::*;
    pub use crate::imp::view::{state_from_json, state_to_json, state_view, ViewError};
}

pub use imp::bundle::{Budget, Bundle, Diagnostic, LoadError, SlotRef};
pub use imp::codec::CodecError;
pub use imp::context::Context;
pub use imp::decide::{
    decide, escape_html, opted_out, render_preview, CandidateTrace, Decider, Decision, Exposure,
    Fired, JourneyStep, Reason, SlotDecision, SlotResult, SlotTrace, Trace, Verdict, Visit, Watch,
    MAX_PLACEHOLDER_BYTES, MAX_RENDERED_BYTES, VISIT_IDLE,
};
pub use imp::suggest::{did_you_mean, hint};
