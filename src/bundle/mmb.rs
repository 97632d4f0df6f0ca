//! The `.mmb` frame: what is published to the edge.
//!
//! ```text
//! "MMB1"                magic
//! u16 LE                format version
//! u16 LE + UTF-8        bundle id
//! u64 LE                bundle version
//! [32]                  SHA-256 of the payload (the content hash, the KV key)
//! u32 LE + bytes        payload: the bincode-encoded compiled bundle
//! [64], optional        Ed25519 signature over every byte before it
//! ```
//!
//! Loading checks, in order and before decoding the payload: size, magic, format
//! version, header bounds, then integrity: with a public key the signature (which
//! covers the content hash and the payload byte for byte), without one the content
//! hash. A frame that fails any check is refused with the [`LoadError`] that names it.

use base64::Engine as _;
use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

use super::model::Bundle;
use super::Budget;
use crate::codec::{self, CodecError};

/// The first four bytes of every `.mmb`.
pub const MAGIC: &[u8; 4] = b"MMB1";

/// The version of the compiled form; bumped whenever `model.rs` changes shape.
pub const FORMAT_VERSION: u16 = 6;

const SIGNATURE_LEN: usize = 64;

/// Why a `.mmb` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Larger than the budget allows.
    #[error("bundle is {size} bytes, over the budget of {limit} (max_bundle_bytes)")]
    TooLarge {
        /// The size found.
        size: usize,
        /// The budget.
        limit: usize,
    },
    /// Not a `.mmb` at all.
    #[error("not a micromoment bundle (bad magic)")]
    BadMagic,
    /// A format this build cannot read.
    #[error("unsupported bundle format version {found}, this build reads version {supported}")]
    UnsupportedVersion {
        /// The version in the file.
        found: u16,
        /// The version this build reads.
        supported: u16,
    },
    /// The frame ends early.
    #[error("bundle is truncated")]
    Truncated,
    /// Bytes after the payload that are not a signature.
    #[error("{0} unexpected bytes after the payload")]
    TrailingBytes(usize),
    /// The payload does not match the content hash in the header.
    #[error("content hash mismatch: the payload was altered")]
    HashMismatch,
    /// A public key was given but the bundle carries no signature.
    #[error("bundle is not signed, and a public key requires a signature")]
    Unsigned,
    /// The signature does not verify under the given public key.
    #[error("bad signature: not signed by the given key, or altered after signing")]
    BadSignature,
    /// The payload passed the hash but does not decode.
    #[error("payload does not decode: {0}")]
    Decode(CodecError),
    /// The payload decoded but contradicts its header or itself.
    #[error("inconsistent bundle: {0}")]
    Inconsistent(String),
    /// The payload decoded but is over a budget the compiler enforces.
    #[error("bundle over budget: {0}")]
    OverBudget(String),
    /// A destination names a Worker var or secret that is not one of its own
    /// (`MM_DEST_…`, [`super::is_destination_var`]): the compiler refuses that, so
    /// whoever made this bundle went around it, and loading it could send another
    /// secret of the Worker (`JOURNEY_KEYS`) away.
    #[error("destination {destination:?}: its {field} names a Worker setting that is not a destination var ({prefix} then A-Z, 0-9, _; 9 to 64 bytes); compile the bundle again", prefix = super::DESTINATION_VAR_PREFIX)]
    DestinationVar {
        /// The destination's name.
        destination: String,
        /// `url` or `secret`.
        field: &'static str,
    },
    /// A destination's url and secret are two destinations' vars
    /// ([`super::same_destination`]): the compiler refuses that.
    #[error("destination {destination:?}: its url and secret are not one destination's vars (the same name up to the last _); compile the bundle again")]
    DestinationPair {
        /// The destination's name.
        destination: String,
    },
}

/// What the frame says about itself, readable without decoding the payload.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Header {
    /// The bundle id.
    pub id: String,
    /// The bundle version.
    pub version: u64,
    /// The SHA-256 of the payload, lowercase hex.
    pub hash: String,
    /// The payload size in bytes.
    pub payload_bytes: usize,
    /// The memory the decoded lists and nodes claim (`Budget::max_decoded_bytes`); 0
    /// until the payload is decoded.
    pub decoded_bytes: usize,
    /// The whole frame's size in bytes.
    pub total_bytes: usize,
    /// Whether a signature is attached.
    pub signed: bool,
}

/// An Ed25519 key that signs bundles.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// The key from its 32-byte seed.
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Parses a key file: the base64 of the 32-byte seed.
    pub fn from_base64(text: &str) -> Result<SigningKey, String> {
        let bytes = decode_key(text)?;
        Ok(SigningKey::from_seed(bytes))
    }

    /// The base64 of the seed, for the key file.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.to_bytes())
    }

    /// Signs `message` (a rollback record's, [`super::RollbackRecord`]).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        use ed25519_dalek::Signer as _;
        self.0.sign(message).to_bytes()
    }

    /// The base64 of the public key, for `BUNDLE_PUBKEY`.
    pub fn public_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.0.verifying_key().to_bytes())
    }
}

/// A new signing key from 32 bytes of the caller's entropy.
pub fn keygen(seed: [u8; 32]) -> SigningKey {
    SigningKey::from_seed(seed)
}

fn decode_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .or_else(|_| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='))
        })
        .map_err(|_| "key is not base64".to_owned())?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("key is {} bytes, expected 32", bytes.len()))
}

/// Parses a public key: base64 of 32 bytes.
pub fn public_key_of(text: &str) -> Result<[u8; 32], String> {
    let bytes = decode_key(text)?;
    ed25519_dalek::VerifyingKey::from_bytes(&bytes)
        .map_err(|_| "not a valid Ed25519 public key".to_owned())?;
    Ok(bytes)
}

/// Verifies an Ed25519 signature, rejecting non-canonical encodings and weak keys.
pub fn verify_signature(public_key: &[u8; 32], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key) = ed25519_dalek::VerifyingKey::from_bytes(public_key) else {
        return false;
    };
    let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
        return false;
    };
    // `verify_strict` checks what `verify` checks (the same equation over the same hash)
    // and also refuses small-order keys and R points: one pass over the message.
    key.verify_strict(message, &signature).is_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], LoadError> {
        let end = self.pos.checked_add(n).ok_or(LoadError::Truncated)?;
        let slice = self.bytes.get(self.pos..end).ok_or(LoadError::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        <[u8; N]>::try_from(self.take(N)?).map_err(|_| LoadError::Truncated)
    }
}

/// A parsed frame, before the payload is decoded.
struct Frame<'b> {
    header: Header,
    hash: [u8; 32],
    payload: &'b [u8],
    signed_part: &'b [u8],
    signature: Option<&'b [u8]>,
}

fn parse_frame<'b>(bytes: &'b [u8], budget: &Budget) -> Result<Frame<'b>, LoadError> {
    if bytes.len() > budget.max_bundle_bytes {
        return Err(LoadError::TooLarge {
            size: bytes.len(),
            limit: budget.max_bundle_bytes,
        });
    }
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4).map_err(|_| LoadError::BadMagic)? != MAGIC {
        return Err(LoadError::BadMagic);
    }
    let format = u16::from_le_bytes(r.array()?);
    if format != FORMAT_VERSION {
        return Err(LoadError::UnsupportedVersion {
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    let id_len = usize::from(u16::from_le_bytes(r.array()?));
    let id = std::str::from_utf8(r.take(id_len)?)
        .map_err(|_| LoadError::Inconsistent("bundle id is not UTF-8".into()))?
        .to_owned();
    let version = u64::from_le_bytes(r.array()?);
    let hash: [u8; 32] = r.array()?;
    let payload_len =
        usize::try_from(u32::from_le_bytes(r.array()?)).map_err(|_| LoadError::Truncated)?;
    let payload = r.take(payload_len)?;
    let signed_part = bytes.get(..r.pos).ok_or(LoadError::Truncated)?;
    let signature = match bytes.len() - r.pos {
        0 => None,
        SIGNATURE_LEN => Some(r.take(SIGNATURE_LEN)?),
        n => return Err(LoadError::TrailingBytes(n)),
    };
    Ok(Frame {
        header: Header {
            id,
            version,
            hash: hex(&hash),
            payload_bytes: payload.len(),
            decoded_bytes: 0,
            total_bytes: bytes.len(),
            signed: signature.is_some(),
        },
        hash,
        payload,
        signed_part,
        signature,
    })
}

impl Bundle {
    /// Frames the bundle as `.mmb`, signed when a key is given.
    pub fn to_mmb(&self, key: Option<&SigningKey>) -> Result<Vec<u8>, CodecError> {
        let payload = codec::encode(self)?;
        let id_len = u16::try_from(self.id.len())
            .map_err(|_| CodecError::Invalid("bundle id is too long".into()))?;
        let payload_len = u32::try_from(payload.len())
            .map_err(|_| CodecError::Invalid("bundle is larger than 4 GiB".into()))?;
        let mut out = Vec::with_capacity(payload.len() + 128);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&id_len.to_le_bytes());
        out.extend_from_slice(self.id.as_bytes());
        out.extend_from_slice(&self.version.to_le_bytes());
        out.extend_from_slice(&Sha256::digest(&payload));
        out.extend_from_slice(&payload_len.to_le_bytes());
        out.extend_from_slice(&payload);
        if let Some(key) = key {
            let signature = key.0.sign(&out);
            out.extend_from_slice(&signature.to_bytes());
        }
        Ok(out)
    }

    /// Reads a frame's header, checking size, magic, version and bounds only.
    pub fn read_header(bytes: &[u8], budget: &Budget) -> Result<Header, LoadError> {
        parse_frame(bytes, budget).map(|f| f.header)
    }

    /// Checks and decodes a `.mmb`. With a public key, the bundle must carry a valid
    /// signature by it.
    pub fn from_mmb(
        bytes: &[u8],
        public_key: Option<&[u8; 32]>,
        budget: &Budget,
    ) -> Result<(Bundle, Header), LoadError> {
        let frame = parse_frame(bytes, budget)?;
        match public_key {
            // The signature covers the header (content hash included) and the payload
            // byte for byte: once it verifies, hashing the payload again proves nothing
            // more, and it is a second pass over a frame of up to megabytes.
            Some(key) => {
                let signature = frame.signature.ok_or(LoadError::Unsigned)?;
                if !verify_signature(key, frame.signed_part, signature) {
                    return Err(LoadError::BadSignature);
                }
            }
            None => {
                if Sha256::digest(frame.payload).as_slice() != frame.hash {
                    return Err(LoadError::HashMismatch);
                }
            }
        }
        // Decoding claims memory against the budget as it goes, so a small payload
        // cannot unfold into a large bundle, and nests no deeper than the codec allows.
        let (bundle, claimed): (Bundle, usize) =
            codec::decode_bounded(frame.payload, budget.max_decoded_bytes)
                .map_err(LoadError::Decode)?;
        if bundle.id != frame.header.id || bundle.version != frame.header.version {
            return Err(LoadError::Inconsistent(
                "payload id or version differs from the header".into(),
            ));
        }
        bundle.check_shape(budget)?;
        let mut header = frame.header;
        header.decoded_bytes = claimed;
        Ok((bundle, header))
    }

    /// Checks what a hand-made payload could get wrong: counts over budget and indices
    /// that point nowhere. Decisions never index out of bounds anyway; this turns such a
    /// bundle into a typed refusal instead of silent defaults.
    fn check_shape(&self, budget: &Budget) -> Result<(), LoadError> {
        let fail = |what: String| Err(LoadError::Inconsistent(what));
        if self.stages.is_empty() || self.stages.len() > budget.max_stages.min(64) {
            return fail(format!("{} stages", self.stages.len()));
        }
        // The budgets the compiler enforced, again: a payload can be made by hand.
        let candidates: usize = self.slots.iter().map(|s| s.candidates.len()).sum();
        let counts = [
            (
                "transitions",
                self.transitions.len(),
                budget.max_transitions,
            ),
            ("intents", self.topics.len(), budget.max_topics),
            ("contents", self.contents.len(), budget.max_contents),
            ("slots", self.slots.len(), budget.max_slots),
            ("candidates", candidates, budget.max_candidates),
        ];
        for (what, count, limit) in counts {
            if count > limit {
                return Err(LoadError::OverBudget(format!(
                    "{count} {what}, over the budget of {limit}"
                )));
            }
        }
        if let Some(slot) = self
            .slots
            .iter()
            .find(|s| s.candidates.len() > budget.max_candidates_per_slot)
        {
            return Err(LoadError::OverBudget(format!(
                "slot \"{}\" has {} candidates, over the budget of {}",
                slot.name,
                slot.candidates.len(),
                budget.max_candidates_per_slot
            )));
        }
        if let Some(long) = self
            .longest_string()
            .filter(|len| *len > budget.max_string_bytes)
        {
            return Err(LoadError::OverBudget(format!(
                "a string of {long} bytes, over the budget of {}",
                budget.max_string_bytes
            )));
        }
        for (rule, _) in self.rules() {
            let (depth, nodes) = rule.shape();
            if depth > budget.max_rule_depth || nodes > budget.max_rule_nodes {
                return Err(LoadError::OverBudget(format!(
                    "a rule of depth {depth} and {nodes} nodes, over the budget of depth {} and {} nodes",
                    budget.max_rule_depth, budget.max_rule_nodes
                )));
            }
        }
        self.check_work(budget).map_err(LoadError::OverBudget)?;
        let sorted = self.content_order.len() == self.contents.len()
            && self.content_order.windows(2).all(|pair| match pair {
                [a, b] => {
                    let name = |i: &u16| self.contents.get(usize::from(*i)).map(|c| &c.name);
                    name(a).is_some() && name(b).is_some() && name(a) < name(b)
                }
                _ => true,
            })
            && self
                .content_order
                .iter()
                .all(|&i| usize::from(i) < self.contents.len());
        if !sorted {
            return fail("the content index is not the contents sorted by name".into());
        }
        if self.feeds.len() > crate::feed::MAX_FEEDS
            || self.feed_roles != crate::feed::FeedRoles::of(&self.feeds)
            || self.feed_keys.as_slice() != self.collect_feed_keys().as_slice()
        {
            return fail("the feeds, their roles or their lookups do not agree".into());
        }
        for topic in &self.topics {
            let sane = topic.cap.is_finite()
                && topic.cap > 0.0
                && topic.half_life_secs.is_finite()
                && topic.half_life_secs > 0.0;
            if !sane || topic.signals.iter().any(|s| !s.add.is_finite()) {
                return fail(format!("intent \"{}\" has a cap, half-life or signal that is not a positive finite number", topic.name));
            }
        }
        let contents = self.contents.len();
        let in_contents = |c: u16| usize::from(c) < contents;
        for t in &self.transitions {
            if usize::from(t.to) >= self.stages.len() {
                return fail("a transition targets a stage that does not exist".into());
            }
        }
        if self.destinations.len() > super::MAX_DESTINATIONS
            || self.triggers.len() > super::MAX_TRIGGERS
        {
            return Err(LoadError::OverBudget(format!(
                "{} destinations and {} triggers, over the limits of {} and {}",
                self.destinations.len(),
                self.triggers.len(),
                super::MAX_DESTINATIONS,
                super::MAX_TRIGGERS
            )));
        }
        for d in &self.destinations {
            let url_ok = d.url.as_deref().is_none_or(super::is_destination_var);
            for (field, ok) in [
                ("url", url_ok),
                ("secret", super::is_destination_var(&d.secret)),
            ] {
                if !ok {
                    return Err(LoadError::DestinationVar {
                        destination: d.name.clone(),
                        field,
                    });
                }
            }
            if d.url
                .as_deref()
                .is_some_and(|url| !super::same_destination(url, &d.secret))
            {
                return Err(LoadError::DestinationPair {
                    destination: d.name.clone(),
                });
            }
            if d.kind.needs_url() && d.url.is_none() {
                return fail(format!(
                    "destination \"{}\" is a {} without a url",
                    d.name,
                    d.kind.as_str()
                ));
            }
        }
        for t in &self.triggers {
            let stage_ok = match &t.on {
                super::model::TriggerOn::Stage(s) => usize::from(*s) < self.stages.len(),
                super::model::TriggerOn::Feed { feed, .. } => {
                    usize::from(*feed) < self.feeds.len()
                        && t.delay.is_none()
                        && t.cap.is_none()
                        && t.unless.is_none()
                }
                _ => true,
            };
            let send_ok = !t.send.is_empty()
                && t.send
                    .iter()
                    .all(|&d| usize::from(d) < self.destinations.len());
            let delay_ok = t.delay.is_none_or(|d| d > 0 && d <= super::MAX_DELAY_SECS);
            if !stage_ok || !send_ok || !delay_ok {
                return fail(format!(
                    "trigger \"{}\" names a stage or destination that does not exist, or waits too long",
                    t.name
                ));
            }
        }
        for slot in &self.slots {
            if !in_contents(slot.default) {
                return fail(format!(
                    "slot \"{}\" defaults to a content that does not exist",
                    slot.name
                ));
            }
            for c in &slot.candidates {
                let offers_ok = super::offered(c).iter().all(|&c| in_contents(c));
                let after_ok = c.after.iter().all(|&a| in_contents(a));
                let campaign_ok = c
                    .campaign
                    .is_none_or(|k| usize::from(k) < self.campaigns.len());
                let ranges_ok = match &c.offer {
                    super::Offer::Experiment(e) => {
                        !e.variants.is_empty() && e.variants.len() == e.ranges.len()
                    }
                    super::Offer::Content(_) => true,
                };
                if !(offers_ok && after_ok && campaign_ok && ranges_ok) {
                    return fail(format!(
                        "candidate \"{}\" refers to something that does not exist",
                        c.name
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload made by hand can hold what the compiler refuses: loading checks the
    /// work budgets again.
    #[test]
    fn a_rule_over_the_work_budget_is_refused_at_load() {
        let source = r#"{"id": "x", "version": 1, "journey": {"stages": ["a"]},
            "content": {"c": {"html": "c"}},
            "slots": {"s": {"default": "c", "candidates": [{"id": "k", "content": "c", "when": {"==": [1, 1]}}]}}}"#;
        let mut bundle = crate::bundle::compile(source, Budget::default()).expect("compiles");
        let doubling = serde_json::json!({"reduce": [{"var": "segments"},
            {"merge": [{"var": "accumulator"}, {"var": "accumulator"}]}, [1]]});
        let schema = crate::bundle::BundleSchema {
            topics: &[],
            contents: &["c"],
            feeds: &[],
        };
        let unchecked = crate::rules::compile(&doubling, &schema, crate::rules::Limits::default())
            .expect("compiles without the cost check");
        bundle.slots[0].candidates[0].when = Some(unchecked);
        let bytes = bundle.to_mmb(None).expect("encodes");
        let err = Bundle::from_mmb(&bytes, None, &Budget::default()).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "bundle over budget: rule can take up to unboundedly many steps and build up to unboundedly many bytes per evaluation, over the budget of 10000 steps and 262144 bytes"
        );
    }

    /// A bundle made around the compiler can name any Worker var or secret in a
    /// destination; the loader refuses every name outside `MM_DEST_…`, so a bundle's
    /// signer cannot have `JOURNEY_KEYS` posted to a URL of theirs.
    #[test]
    fn a_destination_naming_another_worker_secret_is_refused_at_load() {
        let source = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/triggers.json"
        ))
        .expect("fixtures/triggers.json");
        let compiled = crate::bundle::compile(&source, Budget::default()).expect("compiles");
        let load = |bundle: &Bundle| {
            let bytes = bundle.to_mmb(None).expect("encodes");
            Bundle::from_mmb(&bytes, None, &Budget::default()).map(|(b, _)| b)
        };
        assert_eq!(load(&compiled).as_ref(), Ok(&compiled));
        let segment = compiled
            .destinations
            .iter()
            .position(|d| d.kind == super::super::DestinationKind::Segment)
            .expect("a segment destination");
        let name = compiled.destinations[segment].name.clone();
        for (field, var, message) in [
            (
                "secret",
                "JOURNEY_KEYS",
                format!("destination \"{name}\": its secret names a Worker setting that is not a destination var (MM_DEST_ then A-Z, 0-9, _; 9 to 64 bytes); compile the bundle again"),
            ),
            (
                "url",
                "MM_BACKEND_TOKEN",
                format!("destination \"{name}\": its url names a Worker setting that is not a destination var (MM_DEST_ then A-Z, 0-9, _; 9 to 64 bytes); compile the bundle again"),
            ),
        ] {
            for bad in [var, "MM_DEST_", "MM_DEST_crm", "mm_dest_CRM"] {
                let mut bundle = compiled.clone();
                let d = &mut bundle.destinations[segment];
                match field {
                    "url" => d.url = Some(bad.to_owned()),
                    _ => d.secret = bad.to_owned(),
                }
                let err = load(&bundle).expect_err(bad);
                assert_eq!(
                    err,
                    LoadError::DestinationVar {
                        destination: name.clone(),
                        field
                    },
                    "{bad}"
                );
                assert_eq!(err.to_string(), message, "{bad}");
            }
        }
        // The longest name is 64 bytes (and shares the url's destination name).
        let mut bundle = compiled.clone();
        bundle.destinations[segment].secret = format!("MM_DEST_SEGMENT_{}", "K".repeat(48));
        assert!(load(&bundle).is_ok());
        bundle.destinations[segment].secret.push('K');
        assert!(load(&bundle).is_err());
        // A webhook without its URL has nowhere to go: refused at load, not at send.
        let mut bundle = compiled.clone();
        let webhook = bundle
            .destinations
            .iter_mut()
            .find(|d| d.kind == super::super::DestinationKind::Webhook)
            .expect("a webhook destination");
        webhook.url = None;
        let hook = webhook.name.clone();
        assert_eq!(
            load(&bundle).expect_err("refused").to_string(),
            format!("inconsistent bundle: destination \"{hook}\" is a webhook without a url")
        );
    }

    /// Found by the `bundle_load` fuzzer: a payload whose intent cap is NaN made the
    /// decision's clamp panic. The loader now refuses it, and decide no longer clamps.
    #[test]
    fn a_bundle_with_a_nan_intent_cap_is_refused() {
        let source = r#"{"id": "x", "version": 1,
            "journey": {"stages": ["a"], "intents": {"t": {"signals": [], "cap": 10, "half_life_days": 1}}},
            "content": {"c": {"html": "c"}}, "slots": {"s": {"default": "c"}}}"#;
        let mut bundle = crate::bundle::compile(source, Budget::default()).expect("compiles");
        bundle.topics[0].cap = f64::NAN;
        let bytes = bundle.to_mmb(None).expect("encodes");
        let err = Bundle::from_mmb(&bytes, None, &Budget::default()).expect_err("refused");
        assert_eq!(
            err.to_string(),
            "inconsistent bundle: intent \"t\" has a cap, half-life or signal that is not a positive finite number"
        );
        // And deciding with such a bundle, had it been built in memory, does not panic.
        let slots = bundle.all_slots();
        let _ = crate::decide(
            &bundle,
            &crate::Visit {
                prior: None,
                new_visitor: [0; 16],
                context: &crate::Context::default(),
                now: 1_790_000_000,
                explain: false,
                returning: false,
                feeds: None,
            },
            &slots,
        );
    }
}
