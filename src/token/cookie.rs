//! Finding the `mm` cookie in a real-world `Cookie` request header.
//!
//! Browsers send `a=1; b=2`, but headers in the wild also carry tabs, missing spaces,
//! pairs without `=`, empty names, quoted values, non-ASCII bytes and the same name
//! twice (a host cookie and a parent-domain cookie, or two paths). The parser splits
//! on `;`, trims spaces and tabs around names and values, skips pairs without `=` or
//! with an empty name, compares names exactly (case-sensitive, as browsers do), and
//! strips one pair of surrounding double quotes from a value. Splitting on ASCII bytes
//! never cuts a UTF-8 character, so non-ASCII text is carried, not refused.
//!
//! Duplicates: [`cookie_value`] returns the first, the one browsers list first (longest
//! path, then oldest). [`verify_cookie`] does better: it verifies each of the first
//! [`MAX_DUPLICATES`] values and keeps the most recently issued valid one, so a stale
//! parent-domain cookie cannot shadow the fresh one.
//!
//! Work is bounded before it is done: a header over [`MAX_COOKIE_HEADER_BYTES`] is
//! ignored whole, and only the first [`MAX_COOKIES`] pairs are looked at. The parser
//! never allocates: values are slices of the header.

use crate::time::UnixSeconds;

use super::envelope::{verify, TokenError};
use super::keys::Keys;
use super::state::State;

/// The name of the journey token cookie.
pub const COOKIE_NAME: &str = "mm";
/// The longest `Cookie` header looked at; a longer one is treated as carrying no token.
pub const MAX_COOKIE_HEADER_BYTES: usize = 16 * 1024;
/// How many `;`-separated pairs are looked at; later pairs are ignored.
pub const MAX_COOKIES: usize = 200;
/// How many `mm` values [`verify_cookie`] verifies at most.
pub const MAX_DUPLICATES: usize = 4;

/// The values of every cookie called `name`, in header order, within the bounds.
#[derive(Debug, Clone)]
pub struct CookieValues<'a> {
    pairs: std::iter::Take<std::str::Split<'a, char>>,
    name: &'a str,
}

impl<'a> Iterator for CookieValues<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        for pair in self.pairs.by_ref() {
            let Some((name, value)) = pair.split_once('=') else {
                continue;
            };
            let name = trim(name);
            if name.is_empty() || name != self.name {
                continue;
            }
            let value = trim(value);
            let unquoted = value
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(value);
            return Some(unquoted);
        }
        None
    }
}

fn trim(text: &str) -> &str {
    text.trim_matches(|c| c == ' ' || c == '\t')
}

/// Every value of the cookie `name` in `header`, first first. Empty when the header is
/// longer than [`MAX_COOKIE_HEADER_BYTES`].
pub fn cookie_values<'a>(header: &'a str, name: &'a str) -> CookieValues<'a> {
    // An over-long header yields an iterator over nothing.
    let looked_at = if header.len() > MAX_COOKIE_HEADER_BYTES {
        0
    } else {
        MAX_COOKIES
    };
    CookieValues {
        pairs: header.split(';').take(looked_at),
        name,
    }
}

/// The first value of the cookie `name` in `header`, if any.
pub fn cookie_value<'a>(header: &'a str, name: &'a str) -> Option<&'a str> {
    cookie_values(header, name).next()
}

/// The state in the `mm` cookie of a `Cookie` header.
///
/// Verifies each of the first [`MAX_DUPLICATES`] `mm` values and returns the valid
/// state issued last (the first on ties). When none verifies, returns the first
/// value's reason, or [`TokenError::Missing`] when there is no `mm` cookie.
///
/// A linked token is taken only when it is the header's one `mm` cookie: a sibling
/// subdomain can set an `mm` cookie for the parent domain (cookie tossing), and one
/// linked to its own profile would otherwise win as the freshest and make the device
/// theirs. With several, a linked one is refused ([`TokenError::LinkedAmongOthers`]).
pub fn verify_cookie(header: &str, keys: &Keys, now: UnixSeconds) -> Result<State, TokenError> {
    let mut best: Option<State> = None;
    let mut first_error = None;
    let several = cookie_values(header, COOKIE_NAME).nth(1).is_some();
    for value in cookie_values(header, COOKIE_NAME).take(MAX_DUPLICATES) {
        match verify(value, keys, now) {
            Ok(state) if several && state.link.is_some() => {
                first_error.get_or_insert(TokenError::LinkedAmongOthers);
            }
            Ok(state) => {
                if best.as_ref().is_none_or(|b| state.issued_at > b.issued_at) {
                    best = Some(state);
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    best.ok_or(first_error.unwrap_or(TokenError::Missing))
}
