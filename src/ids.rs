//! Stable integer ids for the bundle's string ids.
//!
//! Tokens outlive bundles: a visitor's impressions, intents, experiment assignments and
//! stage must mean the same thing after a marketer publishes a new bundle version, even
//! if items were added, removed or reordered. So the token never stores a bundle index;
//! it stores the 32-bit FNV-1a hash of the string id, prefixed by its kind so that a
//! content and a topic of the same name never collide:
//!
//! `stable_id(kind, id) = fnv1a32(kind_byte ++ id_utf8)`, with the offset basis
//! `0x811c9dc5` and prime `0x01000193`.
//!
//! The bundle compiler refuses a bundle in which two ids of one kind share a hash, so a
//! hash names exactly one item of a bundle.

/// What a stable id names; the kind byte is part of the hashed input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A journey stage, e.g. `decision`.
    Stage,
    /// A content of the content bank, e.g. `test-drive`.
    Content,
    /// An intent topic, e.g. `suv`.
    Topic,
    /// An experiment, named by its candidate id.
    Experiment,
    /// A campaign sharing one cap.
    Campaign,
}

impl IdKind {
    const fn byte(self) -> u8 {
        match self {
            IdKind::Stage => b's',
            IdKind::Content => b'c',
            IdKind::Topic => b't',
            IdKind::Experiment => b'x',
            IdKind::Campaign => b'g',
        }
    }
}

/// The stable 32-bit id of a bundle string id of the given kind.
pub fn stable_id(kind: IdKind, id: &str) -> u32 {
    let mut hash = fnv1a32_step(0x811c_9dc5, kind.byte());
    for byte in id.bytes() {
        hash = fnv1a32_step(hash, byte);
    }
    hash
}

/// One FNV-1a step over one byte.
pub(crate) const fn fnv1a32_step(hash: u32, byte: u8) -> u32 {
    (hash ^ byte as u32).wrapping_mul(0x0100_0193)
}

/// FNV-1a 32-bit over a byte string (the hash GrowthBook buckets with).
pub(crate) fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| fnv1a32_step(h, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_do_not_collide_on_the_same_name() {
        assert_ne!(
            stable_id(IdKind::Content, "suv"),
            stable_id(IdKind::Topic, "suv")
        );
    }

    #[test]
    fn fnv1a_reference_values() {
        // Reference values of the FNV-1a 32-bit specification.
        assert_eq!(fnv1a32(b""), 0x811c_9dc5);
        assert_eq!(fnv1a32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a32(b"foobar"), 0xbf9c_f968);
        assert_eq!(stable_id(IdKind::Content, "x"), fnv1a32(b"cx"));
    }
}
