//! Identity links (docs/profiles.md): `?mm_link=l1.<kid>.<payload>.<tag>` in an e-mail, an
//! SMS or a push, naming the profile the device that opens it belongs to.
//!
//! The envelope is the token's: the same `JOURNEY_KEYS`, the payload (bincode, then
//! base64url without padding) and the full HMAC-SHA256 tag, compared in constant time,
//! over `mm-link-v1`, a zero byte, the kid, a zero byte and the payload text. The
//! domain bytes differ from a token's, so a link never verifies as a token nor a token
//! as a link. The payload holds the profile id, a random link id, when it was issued,
//! the expiry (at most [`MAX_LINK_TTL`] after it was issued, and never further than
//! that from the time it is checked; [`DEFAULT_LINK_TTL`] unless the minter says
//! otherwise) and an optional campaign name for attribution.
//!
//! A link names a person, so it must never make a device someone else's by being
//! opened: verifying one here says only that we minted it and that it has not expired.
//! The edge links a device only when the person confirms on the device, and the
//! profile consumes the link's id then (single use), refuses links issued before its
//! erasure or before a revocation, and refuses revoked ids (`crate::profile`). It
//! carries no personal data (the profile id is opaque).
//!
//! Links minted before links carried an id and their issue time do not decode: they
//! are ignored, as every link that fails a check is.

use crate::codec::{self, Decode, Encode};
use crate::time::{UnixSeconds, DAY, HOUR};

use super::envelope::{self, TokenError, SMALL_PAYLOAD};
use super::keys::Keys;
use super::mac;

/// The version field of identity links.
pub const LINK_VERSION: &str = "l1";
/// The longest an identity link stays valid: 30 days.
pub const MAX_LINK_TTL: i64 = 30 * DAY;
/// How long an identity link stays valid when the minter does not say: hours, not days
/// (a link found in an old e-mail should not name its reader).
pub const DEFAULT_LINK_TTL: i64 = 12 * HOUR;
/// The longest campaign name a link carries, in bytes.
pub const MAX_CAMPAIGN_BYTES: usize = 64;

/// What an identity link says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityLink {
    /// The profile the device joins.
    pub profile: [u8; 16],
    /// The link's own random id: the profile records it when the link is used, and a
    /// backend can revoke it.
    pub id: [u8; 16],
    /// When it was minted: a profile erased (or whose links were revoked) after it
    /// refuses it.
    pub issued_at: UnixSeconds,
    /// When the link stops working.
    pub expires_at: UnixSeconds,
    /// The campaign that sent it (an e-mail's, a push's), for attribution.
    pub campaign: Option<String>,
}

/// Version 1 of the link payload. Never reorder or insert.
#[derive(Debug, Clone, PartialEq, Encode, Decode)]
struct LinkV1 {
    profile: [u8; 16],
    id: [u8; 16],
    issued_at: i64,
    expires_at: i64,
    campaign: Option<String>,
}

/// The most bytes the decoder may claim for a link payload.
const DECODE_LIMIT: usize = 1024;

impl IdentityLink {
    /// A link to `profile` with the id `id` (128 bits from the minter's entropy), valid
    /// for `ttl` seconds from `now`: refused when `ttl` is not positive or is over
    /// [`MAX_LINK_TTL`], or the campaign is empty or over [`MAX_CAMPAIGN_BYTES`].
    pub fn new(
        profile: [u8; 16],
        id: [u8; 16],
        now: UnixSeconds,
        ttl: i64,
        campaign: Option<String>,
    ) -> Result<IdentityLink, LinkError> {
        if ttl <= 0 || ttl > MAX_LINK_TTL {
            return Err(LinkError::Ttl { ttl });
        }
        if let Some(c) = &campaign {
            if c.is_empty() || c.len() > MAX_CAMPAIGN_BYTES {
                return Err(LinkError::Campaign { len: c.len() });
            }
        }
        Ok(IdentityLink {
            profile,
            id,
            issued_at: now,
            expires_at: now.saturating_add(ttl),
            campaign,
        })
    }

    /// The link text, signed with the current key.
    pub fn sign(&self, keys: &Keys) -> String {
        let payload = LinkV1 {
            profile: self.profile,
            id: self.id,
            issued_at: self.issued_at,
            expires_at: self.expires_at,
            campaign: self.campaign.clone(),
        };
        // A fixed-size struct and a bounded string: encoding cannot fail.
        let bytes = codec::encode(&payload).unwrap_or_default();
        envelope::seal(LINK_VERSION, mac::DOMAIN_LINK, keys.current(), &bytes)
    }

    /// Verifies a link text: the envelope and tag as for a token, then the expiry, which
    /// must be after `now` and at most [`MAX_LINK_TTL`] (plus the clock skew tokens
    /// allow) after it.
    pub fn verify(text: &str, keys: &Keys, now: UnixSeconds) -> Result<IdentityLink, TokenError> {
        let mut small = [0u8; SMALL_PAYLOAD];
        let mut large = Vec::new();
        let ((), bytes) = envelope::open(
            text,
            keys,
            |version| (version == LINK_VERSION).then_some((mac::DOMAIN_LINK, ())),
            &mut small,
            &mut large,
        )?;
        let payload = codec::decode::<LinkV1, DECODE_LIMIT>(bytes).map_err(|e| match e {
            codec::CodecError::Truncated => TokenError::Truncated,
            codec::CodecError::Trailing(_) => TokenError::TrailingBytes,
            _ => TokenError::Malformed,
        })?;
        if payload
            .campaign
            .as_ref()
            .is_some_and(|c| c.is_empty() || c.len() > MAX_CAMPAIGN_BYTES)
        {
            return Err(TokenError::Malformed);
        }
        if now >= payload.expires_at {
            return Err(TokenError::Expired {
                expires_at: payload.expires_at,
                now,
            });
        }
        // A link that claims to live longer than any link may was not minted by us.
        if payload.expires_at > now.saturating_add(MAX_LINK_TTL + envelope::MAX_SKEW)
            || payload.expires_at.saturating_sub(payload.issued_at) > MAX_LINK_TTL
            || payload.issued_at > now.saturating_add(envelope::MAX_SKEW)
        {
            return Err(TokenError::FromFuture {
                issued_at: payload.expires_at.saturating_sub(MAX_LINK_TTL),
                now,
            });
        }
        Ok(IdentityLink {
            profile: payload.profile,
            id: payload.id,
            issued_at: payload.issued_at,
            expires_at: payload.expires_at,
            campaign: payload.campaign,
        })
    }
}

/// Why a link could not be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The validity is not in (0, 30 days].
    #[error("link ttl is {ttl} s: it must be positive and at most 30 days")]
    Ttl {
        /// The refused ttl in seconds.
        ttl: i64,
    },
    /// The campaign name is empty or too long.
    #[error("campaign is {len} bytes: it must be 1 to 64")]
    Campaign {
        /// Its length in bytes.
        len: usize,
    },
}
