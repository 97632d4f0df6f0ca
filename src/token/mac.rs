//! The HMAC-SHA256 layer under the token: what the tag covers, and how it is checked.
//!
//! The tag is the full 32-byte HMAC-SHA256 over exactly `mm-v1`, a zero byte, the key
//! id, a zero byte, and the payload's base64url text (docs/api.md, "The journey
//! token"). The zero bytes keep the fields apart: a key id cannot grow into the
//! payload. Checking a tag compares all 32 bytes in constant time and refuses a tag of
//! any other length, so a truncated tag never verifies. This module never decides whether a key is strong enough (that is
//! [`super::Keys`]) and never parses the payload.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// HMAC-SHA256 with its key already absorbed: cloning it skips rehashing the key.
pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The length of a tag in bytes: the full SHA-256 output, never truncated.
pub(crate) const TAG_BYTES: usize = 32;

/// The domain-separation prefix of the tagged message for version 1 tokens.
pub(crate) const DOMAIN_V1: &[u8] = b"mm-v1";
/// The same for version 2 tokens (linked devices, docs/profiles.md).
pub(crate) const DOMAIN_V2: &[u8] = b"mm-v2";
/// The same for identity links (`?mm_link=`, docs/profiles.md): a link never verifies as a
/// token, nor a token as a link.
pub(crate) const DOMAIN_LINK: &[u8] = b"mm-link-v1";

/// Absorbs a key of any length (HMAC hashes keys longer than a block, pads shorter
/// ones). Strength rules live in [`super::Keys`]; this layer takes what it is given, so
/// the Wycheproof vectors with 16-byte keys run through it too. HMAC accepts every key
/// length, so `None` does not happen; it is passed on rather than hidden behind a
/// fallback key, which could only ever be a known key.
pub(crate) fn keyed(key: &[u8]) -> Option<HmacSha256> {
    <HmacSha256 as Mac>::new_from_slice(key).ok()
}

/// Feeds the message the tag covers for `kid` and `payload`.
fn absorb(mac: &mut HmacSha256, domain: &[u8], kid: &str, payload: &str) {
    mac.update(domain);
    mac.update(&[0]);
    mac.update(kid.as_bytes());
    mac.update(&[0]);
    mac.update(payload.as_bytes());
}

/// The tag of a token (or link) of this domain, key id and payload text.
pub(crate) fn tag(key: &HmacSha256, domain: &[u8], kid: &str, payload: &str) -> [u8; TAG_BYTES] {
    let mut mac = key.clone();
    absorb(&mut mac, domain, kid, payload);
    mac.finalize().into_bytes().into()
}

/// Whether `candidate` is the full tag of this key id and payload, in constant time.
pub(crate) fn verify(
    key: &HmacSha256,
    domain: &[u8],
    kid: &str,
    payload: &str,
    candidate: &[u8],
) -> bool {
    let mut mac = key.clone();
    absorb(&mut mac, domain, kid, payload);
    same_tag(&mac.finalize().into_bytes().into(), candidate)
}

/// Whether `candidate` is exactly `tag`, in constant time: `subtle`'s comparison over the
/// tag's four 64-bit words (hmac's `verify_slice` makes it over 32 bytes, one optimization
/// barrier each, which in WebAssembly is a call apiece on every request). A candidate of
/// another length is refused before anything is compared, as `verify_slice` does.
fn same_tag(tag: &[u8; TAG_BYTES], candidate: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let Ok(candidate) = <&[u8; TAG_BYTES]>::try_from(candidate) else {
        return false;
    };
    let words = |bytes: &[u8; TAG_BYTES]| -> [u64; TAG_BYTES / 8] {
        let (words, _) = bytes.as_chunks::<8>();
        std::array::from_fn(|i| words.get(i).map_or(0, |w| u64::from_le_bytes(*w)))
    };
    bool::from(words(tag).ct_eq(&words(candidate)))
}

/// Whether `candidate` is the full tag of an arbitrary message: the same comparison as
/// [`verify`], exposed for the conformance vectors.
#[cfg(test)]
fn verify_message(key: &HmacSha256, message: &[u8], candidate: &[u8]) -> bool {
    let mut mac = key.clone();
    mac.update(message);
    same_tag(&mac.finalize().into_bytes().into(), candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> Vec<u8> {
        assert!(text.len().is_multiple_of(2), "odd hex length: {text}");
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Wycheproof's HMAC-SHA256 vectors, read in place, through the same constant-time
    /// full-length comparison the token uses.
    ///
    /// Deliberate difference from Wycheproof: the groups with a 128-bit `tagSize` hold
    /// truncated tags, which Wycheproof marks "valid" for a MAC truncated to 16 bytes.
    /// Our tokens always carry the full 32-byte tag, so our layer must reject every
    /// truncated tag; for those valid cases we also check that the truncated tag is the
    /// prefix of the tag we compute, so the computation itself is still tested.
    #[test]
    fn wycheproof_hmac_sha256() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/conformance/wycheproof/hmac_sha256_test.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut seen = 0;
        let mut truncated = 0;
        for group in doc["testGroups"].as_array().unwrap() {
            let tag_bits = group["tagSize"].as_u64().unwrap();
            for case in group["tests"].as_array().unwrap() {
                seen += 1;
                let id = &case["tcId"];
                let key = keyed(&hex(case["key"].as_str().unwrap())).unwrap();
                let msg = hex(case["msg"].as_str().unwrap());
                let tag = hex(case["tag"].as_str().unwrap());
                let valid = case["result"].as_str().unwrap() == "valid";
                let ours = verify_message(&key, &msg, &tag);
                if tag_bits == 256 {
                    assert_eq!(ours, valid, "wycheproof tcId {id}");
                } else {
                    truncated += 1;
                    assert!(!ours, "wycheproof tcId {id}: truncated tag accepted");
                    let mut full = key.clone();
                    full.update(&msg);
                    let full = full.finalize().into_bytes();
                    assert_eq!(
                        full.starts_with(&tag),
                        valid,
                        "wycheproof tcId {id}: truncated tag prefix"
                    );
                }
            }
        }
        assert_eq!(seen, 174);
        assert_eq!(seen, doc["numberOfTests"].as_u64().unwrap());
        assert_eq!(truncated, 87);
    }

    #[test]
    fn same_tag_compares_every_byte_and_the_length() {
        let tag: [u8; TAG_BYTES] = std::array::from_fn(|i| i as u8 * 7 + 1);
        assert!(same_tag(&tag, &tag));
        for i in 0..TAG_BYTES {
            for bit in 0..8 {
                let mut other = tag;
                other[i] ^= 1 << bit;
                assert!(!same_tag(&tag, &other), "byte {i} bit {bit}");
            }
        }
        assert!(!same_tag(&tag, &tag[..TAG_BYTES - 1]));
        assert!(!same_tag(&tag, &[tag.as_slice(), &[0]].concat()));
        assert!(!same_tag(&tag, &[]));
    }

    #[test]
    fn token_message_layout() {
        // The tag is HMAC over exactly "mm-v1" 0 kid 0 payload.
        let key = keyed(&[7; 32]).unwrap();
        let expected = {
            let mut mac = key.clone();
            mac.update(b"mm-v1\0k1\0abc");
            <[u8; 32]>::from(mac.finalize().into_bytes())
        };
        assert_eq!(tag(&key, DOMAIN_V1, "k1", "abc"), expected);
        assert!(verify(&key, DOMAIN_V1, "k1", "abc", &expected));
        assert!(!verify(&key, DOMAIN_V1, "k1", "abd", &expected));
        assert!(!verify(&key, DOMAIN_V1, "k2", "abc", &expected));
        assert!(!verify(&key, DOMAIN_V1, "k1", "abc", &expected[..31]));
        assert!(!verify(&key, DOMAIN_V1, "k1", "abc", &[]));
        // Another domain, another message: a v1 tag is neither a v2 tag nor a link's.
        assert!(!verify(&key, DOMAIN_V2, "k1", "abc", &expected));
        assert!(!verify(&key, DOMAIN_LINK, "k1", "abc", &expected));
    }
}
