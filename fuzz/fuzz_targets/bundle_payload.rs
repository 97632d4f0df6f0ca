//! Arbitrary bytes as a `.mmb` *payload*, framed with the right content hash so every
//! input reaches the bincode decoder and the load-time checks: loading must refuse or
//! accept, never panic, within the decoded-size budget, and an accepted bundle must
//! decide every slot.
#![no_main]

use libfuzzer_sys::fuzz_target;
use micromoment::{Budget, Bundle, Context};
use sha2::{Digest, Sha256};

/// The frame of `bundle/mmb.rs`: magic, format, id, version, hash, length, payload.
fn frame(id: &str, version: u64, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 64);
    out.extend_from_slice(micromoment::bundle::MAGIC);
    out.extend_from_slice(&micromoment::bundle::FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(id.len() as u16).to_le_bytes());
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(payload));
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fuzz_target!(|payload: &[u8]| {
    // The payload's own id and version lead it (bincode: a length-prefixed string,
    // then a varint), so seeds from real bundles keep a matching header.
    let (id, version) = leading_id(payload).unwrap_or(("x".into(), 1));
    let bytes = frame(&id, version, payload);
    if let Ok((bundle, _)) = Bundle::from_mmb(&bytes, None, &Budget::default()) {
        let slots = bundle.all_slots();
        let ctx = Context::default();
        let _ = micromoment::decide(&bundle, &micromoment::Visit { prior: None, new_visitor: [1; 16], context: &ctx, now: 1_790_000_000, explain: true, returning: true, feeds: None }, &slots);
    }
});

fn leading_id(payload: &[u8]) -> Option<(String, u64)> {
    let (&len, rest) = payload.split_first()?;
    let len = usize::from(len).min(250);
    let id = std::str::from_utf8(rest.get(..len)?).ok()?.to_owned();
    let &v = rest.get(len)?;
    Some((id, u64::from(v).min(250)))
}
