//! Path patterns for the `glob` operator.
//!
//! A pattern and a path are both split on `/`, and empty segments are ignored, so
//! `/models/`, `/models` and `models//` name the same place. `**` matches any number of
//! segments (none included), `*` exactly one, and `*` inside a segment any run of
//! characters within it (`/models/suv-*`). Matching never allocates: it walks the path
//! with a cloned iterator as its only backtracking state.

use crate::codec::{Decode, Encode, List};

/// A compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
#[bincode(decode_context = "crate::codec::DecodeBudget")]
pub struct Glob {
    segments: List<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
enum Segment {
    /// `**`: any number of segments.
    Deep,
    /// `*`: exactly one segment.
    One,
    /// A segment without wildcards.
    Literal(String),
    /// A segment with `*` inside, such as `suv-*`.
    Wild(String),
}

impl Segment {
    fn matches(&self, segment: &[u8]) -> bool {
        match self {
            Segment::Deep | Segment::One => true,
            Segment::Literal(lit) => lit.as_bytes() == segment,
            Segment::Wild(pattern) => wildcard(pattern.as_bytes(), segment),
        }
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> + Clone {
    path.split('/').filter(|s| !s.is_empty())
}

/// The non-empty `/`-separated segments of a path, as bytes: what [`segments`] gives,
/// with a byte scan cheaper than the general string searcher for the short segments of
/// a URL path. Matching compares bytes, so no segment needs to be a `str` again.
#[derive(Clone)]
struct ByteSegments<'p>(&'p [u8]);

impl<'p> Iterator for ByteSegments<'p> {
    type Item = &'p [u8];

    fn next(&mut self) -> Option<&'p [u8]> {
        let start = self.0.iter().position(|&b| b != b'/')?;
        let rest = self.0.get(start..)?;
        let len = rest.iter().position(|&b| b == b'/').unwrap_or(rest.len());
        let (segment, tail) = rest.split_at(len);
        self.0 = tail;
        Some(segment)
    }
}

impl Glob {
    /// Compiles a pattern. Every string is a valid pattern.
    pub fn new(pattern: &str) -> Glob {
        let segments = segments(pattern)
            .map(|s| match s {
                "**" => Segment::Deep,
                "*" => Segment::One,
                s if s.contains('*') => Segment::Wild(s.to_owned()),
                s => Segment::Literal(s.to_owned()),
            })
            .collect();
        Glob { segments }
    }

    /// A path the pattern matches, for reports: wildcards become `x`, `**` nothing.
    pub fn example(&self) -> String {
        let parts: Vec<String> = self
            .segments
            .iter()
            .filter_map(|s| match s {
                Segment::Deep => None,
                Segment::One => Some("x".to_owned()),
                Segment::Literal(l) => Some(l.clone()),
                Segment::Wild(w) => Some(w.replace('*', "x")),
            })
            .collect();
        format!("/{}", parts.join("/"))
    }

    /// Whether `path` matches the pattern.
    pub fn matches(&self, path: &str) -> bool {
        let pattern = &self.segments;
        let mut p = 0;
        let mut path_iter = ByteSegments(path.as_bytes());
        // The last `**` seen: where the pattern resumes, and where the path resumes
        // when the segments after it fail and the `**` must swallow one more segment.
        let mut backtrack: Option<(usize, _)> = None;
        loop {
            let mut lookahead = path_iter.clone();
            let Some(segment) = lookahead.next() else {
                break;
            };
            match pattern.get(p) {
                Some(Segment::Deep) => {
                    p += 1;
                    backtrack = Some((p, path_iter.clone()));
                }
                Some(seg) if seg.matches(segment) => {
                    p += 1;
                    path_iter = lookahead;
                }
                _ => match backtrack.as_mut() {
                    Some((resume, star_iter)) => {
                        star_iter.next();
                        p = *resume;
                        path_iter = star_iter.clone();
                    }
                    None => return false,
                },
            }
        }
        pattern
            .get(p..)
            .is_some_and(|rest| rest.iter().all(|s| *s == Segment::Deep))
    }
}

/// `*`-only wildcard matching inside one segment (the classic two-pointer algorithm).
fn wildcard(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match (pattern.get(p), text.get(t)) {
            (Some(b'*'), _) => {
                star = Some((p + 1, t));
                p += 1;
            }
            (Some(pc), Some(tc)) if pc == tc => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}
