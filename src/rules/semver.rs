//! Semantic versions for the `sem_ver` operator, as flagd defines it.
//!
//! `{"sem_ver": [version, op, target]}` with `op` one of `=`, `!=`, `<`, `<=`, `>`, `>=`,
//! `^` (same major version, at least the target) and `~` (same major and minor, at least
//! the target). Versions follow SemVer 2.0: an optional `v` prefix, `MAJOR[.MINOR[.PATCH]]`
//! (missing parts are zero, as in flagd), an optional pre-release that sorts before the
//! release, build metadata ignored. A version that does not parse makes the comparison
//! false, never an error.

use std::cmp::Ordering;

use crate::codec::{Decode, Encode, List};

/// A parsed semantic version.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
pub struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: List<Pre>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
enum Pre {
    Numeric(u64),
    Alpha(String),
}

/// A `sem_ver` comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode)]
pub enum SemOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `^`: same major version.
    Caret,
    /// `~`: same major and minor version.
    Tilde,
}

impl SemOp {
    /// The operators `sem_ver` accepts, for error messages.
    pub const NAMES: [&'static str; 8] = ["=", "!=", "<", "<=", ">", ">=", "^", "~"];

    /// Parses an operator.
    pub fn parse(s: &str) -> Option<SemOp> {
        Some(match s {
            "=" => SemOp::Eq,
            "!=" => SemOp::Ne,
            "<" => SemOp::Lt,
            "<=" => SemOp::Le,
            ">" => SemOp::Gt,
            ">=" => SemOp::Ge,
            "^" => SemOp::Caret,
            "~" => SemOp::Tilde,
            _ => return None,
        })
    }

    /// Applies the operator to `version` against `target`.
    pub fn holds(self, version: &Version, target: &Version) -> bool {
        let ord = version.cmp(target);
        match self {
            SemOp::Eq => ord == Ordering::Equal,
            SemOp::Ne => ord != Ordering::Equal,
            SemOp::Lt => ord == Ordering::Less,
            SemOp::Le => ord != Ordering::Greater,
            SemOp::Gt => ord == Ordering::Greater,
            SemOp::Ge => ord != Ordering::Less,
            SemOp::Caret => version.major == target.major,
            SemOp::Tilde => version.major == target.major && version.minor == target.minor,
        }
    }
}

fn number(part: &str) -> Option<u64> {
    // SemVer forbids leading zeros and signs.
    let valid = !part.is_empty()
        && part.bytes().all(|b| b.is_ascii_digit())
        && !(part.len() > 1 && part.starts_with('0'));
    if valid {
        part.parse().ok()
    } else {
        None
    }
}

impl Version {
    /// Parses a version; `None` when it is not one.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.trim();
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        let text = text.split_once('+').map_or(text, |(v, _build)| v);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) => (core, Some(pre)),
            None => (text, None),
        };
        let mut parts = core.split('.');
        let major = number(parts.next()?)?;
        let minor = parts.next().map_or(Some(0), number)?;
        let patch = parts.next().map_or(Some(0), number)?;
        if parts.next().is_some() {
            return None;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(pre) => pre
                .split('.')
                .map(|id| {
                    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    {
                        None
                    } else if id.bytes().all(|b| b.is_ascii_digit()) {
                        number(id).map(Pre::Numeric)
                    } else {
                        Some(Pre::Alpha(id.to_owned()))
                    }
                })
                .collect::<Option<Vec<_>>>()?,
        };
        Some(Version {
            major,
            minor,
            patch,
            pre: pre.into(),
        })
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        for (i, pre) in self.pre.iter().enumerate() {
            f.write_str(if i == 0 { "-" } else { "." })?;
            match pre {
                Pre::Numeric(n) => write!(f, "{n}")?,
                Pre::Alpha(a) => f.write_str(a)?,
            }
        }
        Ok(())
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release sorts before its release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pre {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (Pre::Numeric(a), Pre::Numeric(b)) => a.cmp(b),
            // Numeric identifiers sort before alphanumeric ones.
            (Pre::Numeric(_), Pre::Alpha(_)) => Ordering::Less,
            (Pre::Alpha(_), Pre::Numeric(_)) => Ordering::Greater,
            (Pre::Alpha(a), Pre::Alpha(b)) => a.cmp(b),
        }
    }
}

impl PartialOrd for Pre {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
