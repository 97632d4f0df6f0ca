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
//!
//! The 128-bit ids of visitors (and of profiles) are written as 32 lowercase hex digits;
//! [`hex128`] writes them and [`parse_hex128`] is the one reader, for tokens, states,
//! `--visitor` and the npm package alike.

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
    /// A trigger (docs/triggers.md), whose cap counts in the state as a content's does.
    Trigger,
}

impl IdKind {
    const fn byte(self) -> u8 {
        match self {
            IdKind::Stage => b's',
            IdKind::Content => b'c',
            IdKind::Topic => b't',
            IdKind::Experiment => b'x',
            IdKind::Campaign => b'g',
            IdKind::Trigger => b'r',
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
pub fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| fnv1a32_step(h, b))
}

/// The 32 lowercase hex digits of a 128-bit id, written into `buf` without allocating.
pub fn hex128<'b>(id: &[u8; 16], buf: &'b mut [u8; 32]) -> &'b str {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, byte) in id.iter().enumerate() {
        if let (Some(hi), Some(lo)) = (
            HEX.get(usize::from(byte >> 4)),
            HEX.get(usize::from(byte & 15)),
        ) {
            if let Some(pair) = buf.get_mut(2 * i..2 * i + 2) {
                pair.copy_from_slice(&[*hi, *lo]);
            }
        }
    }
    std::str::from_utf8(buf).unwrap_or("")
}

/// The 32 hex digits of a 128-bit id, as an owned string.
pub fn hex128_string(id: &[u8; 16]) -> String {
    let mut buf = [0u8; 32];
    hex128(id, &mut buf).to_owned()
}

/// Reads 32 hexadecimal digits (either case) as a 128-bit id.
pub fn parse_hex128(text: &str) -> Result<[u8; 16], String> {
    let bad = || format!("{text:?} is not 32 hexadecimal digits");
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad());
    }
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| bad())?;
    }
    Ok(out)
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
