//! Bot detection: the user-agent patterns of the isbot package (`omrilotan/isbot`,
//! Unlicense: `isbot-LICENSE`), the list `isbot-patterns.json` beside this file exactly as
//! isbot 5.2.3 exports it (`require("isbot").list`).
//!
//! The patterns are JavaScript regular expressions, a few with look-behind and
//! look-ahead, which no regex engine among our dependencies has (and the `regex` crate
//! would add hundreds of kilobytes to the Worker). They use a small part of the syntax, so
//! this module compiles that part, once per isolate on first use, into a backtracking
//! matcher over the ASCII-lowercased user agent. Nearly every pattern has a literal that
//! each of its matches contains (`crawl`, `google`, `/1.0;`); one pass over the user agent
//! finds which literals occur, and only their patterns are tried, so a browser's user
//! agent meets almost no pattern at all.
//!
//! It never fails a request: a pattern it cannot compile is left out (a unit test holds
//! the shipped list to none), and a pattern that backtracks past its step budget does not
//! match. No I/O: the list is compiled into the binary.
//!
//! Where it differs from JavaScript's engine: case is folded for ASCII only, `\s` is
//! ASCII white space, and a character outside ASCII counts as one, where JavaScript
//! counts the UTF-16 units of characters outside the Basic Multilingual Plane as two.
//! Over the user-agent corpora of `fixtures/user-agents/` its verdicts are isbot's.

use std::cell::Cell;
use std::sync::OnceLock;

use smallvec::SmallVec;

/// isbot 5.2.3's pattern list.
const ISBOT_PATTERNS: &str = include_str!("../isbot-patterns.json");

/// isbot patterns whose match does not make a bot when the user agent also has the token:
/// in-app browsers of real people whose product tokens trip a generic pattern.
const EXCUSES: &[(&str, &str)] = &[
    // WeChat runs pages in its "tools" process (`Process/tools`, `Process/toolsmp`) and
    // its developer tools say `wechatdevtools`: people reading a page either way.
    ("tools", "micromessenger/"),
    // CSDN's app embeds the Analysys analytics SDK, which adds `AnalysysAgent/Hybrid`.
    ("agent\\b", "csdnapp/"),
    // Alipay's in-app browser lists its window sizes with `|`: `ws:320|504|2.0`.
    ("\\|", "alipayclient/"),
];

/// Bytes of nearly every browser's user agent, besides letters and digits.
const COMMON_IN_USER_AGENTS: &[u8] = b" ./;()_-,:";

/// The most steps one pattern may take on one user agent; past it, no match.
const MAX_STEPS: u32 = 20_000;

/// The deepest the matcher recurses (each node of a sequence, each repetition of a
/// group); past it, no match. Keeps the stack small on wasm32.
const MAX_DEPTH: u32 = 200;

/// Whether a user agent is a crawler's, a library's or a tool's, not a person's browser.
/// An empty user agent is a bot.
pub fn is_bot(user_agent: &str) -> bool {
    is_bot_lowercase(&user_agent.to_ascii_lowercase())
}

/// [`is_bot`] of a user agent already ASCII-lowercased.
pub fn is_bot_lowercase(lower: &str) -> bool {
    lower.is_empty() || matcher().first_match(lower.as_bytes(), true).is_some()
}

fn matcher() -> &'static Matcher {
    static MATCHER: OnceLock<Matcher> = OnceLock::new();
    MATCHER.get_or_init(|| {
        let sources: Vec<String> = serde_json::from_str(ISBOT_PATTERNS).unwrap_or_default();
        Matcher::new(&sources)
    })
}

/// Why a pattern was left out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unsupported {
    /// Syntax this compiler does not know (back-references, `\u` escapes, …).
    Syntax(usize),
    /// An unbalanced `(`, `)` or `[`.
    Unbalanced,
}

/// One regular-expression element.
#[derive(Debug, Clone)]
enum Node {
    /// These bytes (lowercase).
    Lit(Vec<u8>),
    /// One character of a set.
    Set(ByteSet),
    /// Any one character but a line break (`.`).
    Any,
    /// `^`.
    Start,
    /// `$`.
    End,
    /// `\b` (true) or `\B` (false).
    Boundary(bool),
    /// Alternatives (`(?:a|b)`, or a capturing group: nothing is captured), with what
    /// each can start with when that is known (filled after parsing), so the matcher
    /// passes over an alternative that cannot start at the current character.
    Group {
        alts: Vec<Vec<Node>>,
        starts: Vec<Option<First>>,
    },
    /// `inner{min,max}`.
    Repeat(Repeat),
    /// `(?=…)`, `(?!…)`, `(?<=…)`, `(?<!…)`; `span` is the most bytes a look-behind's
    /// alternatives can cover (`None`: unbounded).
    Look {
        ahead: bool,
        negate: bool,
        alts: Vec<Vec<Node>>,
        span: Option<usize>,
    },
}

/// `inner{min,max}`; `max` is `u32::MAX` when unbounded. Lazy and greedy are the same
/// here: only whether a match exists is asked.
#[derive(Debug, Clone)]
struct Repeat {
    inner: Box<Node>,
    min: u32,
    max: u32,
    /// A repeated character that what follows can never start with, so giving
    /// characters back cannot help (`[\w-]+/`): decided at compile time, it spares the
    /// backtracking.
    possessive: bool,
}

/// A set of characters: ASCII bytes by bit, and whether a character outside ASCII is in.
#[derive(Debug, Clone, Copy, Default)]
struct ByteSet {
    bits: [u64; 2],
    non_ascii: bool,
}

impl ByteSet {
    fn with(mut self, byte: u8) -> Self {
        if let Some(word) = self.bits.get_mut(usize::from(byte >> 6)) {
            *word |= 1 << (byte & 63);
        }
        self
    }

    fn range(mut self, lo: u8, hi: u8) -> Self {
        for b in lo..=hi.min(127) {
            self = self.with(b);
        }
        self.non_ascii |= hi > 127;
        self
    }

    fn union(mut self, other: ByteSet) -> Self {
        for (a, b) in self.bits.iter_mut().zip(other.bits) {
            *a |= b;
        }
        self.non_ascii |= other.non_ascii;
        self
    }

    fn negate(mut self) -> Self {
        for word in &mut self.bits {
            *word = !*word;
        }
        self.non_ascii = !self.non_ascii;
        self
    }

    /// Adds the lowercase letter of every uppercase one: the input is lowercased.
    fn fold_case(mut self) -> Self {
        for upper in b'A'..=b'Z' {
            if self.has(upper) {
                self = self.with(upper.to_ascii_lowercase());
            }
        }
        self
    }

    fn has(&self, byte: u8) -> bool {
        if byte >= 128 {
            return self.non_ascii;
        }
        self.bits
            .get(usize::from(byte >> 6))
            .is_some_and(|word| word & (1 << (byte & 63)) != 0)
    }

    fn digit() -> Self {
        ByteSet::default().range(b'0', b'9')
    }

    fn word() -> Self {
        ByteSet::digit()
            .range(b'a', b'z')
            .range(b'A', b'Z')
            .with(b'_')
    }

    fn space() -> Self {
        [b' ', b'\t', b'\n', b'\r', 0x0b, 0x0c]
            .into_iter()
            .fold(ByteSet::default(), ByteSet::with)
    }
}

fn is_word(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// The parser of the JavaScript regular-expression subset.
struct Parser<'p> {
    pattern: &'p [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.pattern.get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.at += 1;
        }
        found
    }

    fn unsupported(&self) -> Unsupported {
        Unsupported::Syntax(self.at)
    }

    /// Alternatives up to a `)` or the end.
    fn alternatives(&mut self) -> Result<Vec<Vec<Node>>, Unsupported> {
        let mut alts = vec![self.sequence()?];
        while self.eat(b'|') {
            alts.push(self.sequence()?);
        }
        Ok(alts)
    }

    fn sequence(&mut self) -> Result<Vec<Node>, Unsupported> {
        let mut nodes: Vec<Node> = Vec::new();
        while let Some(byte) = self.peek() {
            if byte == b'|' || byte == b')' {
                break;
            }
            let atom = self.atom()?;
            let node = self.quantified(atom)?;
            // Adjacent literal bytes become one literal.
            match (nodes.last_mut(), node) {
                (Some(Node::Lit(run)), Node::Lit(more)) => run.extend(more),
                (_, node) => nodes.push(node),
            }
        }
        Ok(nodes)
    }

    fn atom(&mut self) -> Result<Node, Unsupported> {
        let Some(byte) = self.peek() else {
            return Err(self.unsupported());
        };
        self.at += 1;
        Ok(match byte {
            b'(' => {
                let look = if self.eat(b'?') {
                    if self.eat(b':') {
                        None
                    } else if self.eat(b'=') {
                        Some((true, false))
                    } else if self.eat(b'!') {
                        Some((true, true))
                    } else if self.eat(b'<') {
                        if self.eat(b'=') {
                            Some((false, false))
                        } else if self.eat(b'!') {
                            Some((false, true))
                        } else {
                            return Err(self.unsupported());
                        }
                    } else {
                        return Err(self.unsupported());
                    }
                } else {
                    None
                };
                let alts = self.alternatives()?;
                if !self.eat(b')') {
                    return Err(Unsupported::Unbalanced);
                }
                match look {
                    None => Node::Group {
                        alts,
                        starts: Vec::new(),
                    },
                    Some((ahead, negate)) => {
                        let span = alts
                            .iter()
                            .map(|alt| max_len(alt))
                            .try_fold(0, |most: usize, len| len.map(|len| most.max(len)));
                        Node::Look {
                            ahead,
                            negate,
                            alts,
                            span,
                        }
                    }
                }
            }
            b'[' => Node::Set(self.class()?),
            b'.' => Node::Any,
            b'^' => Node::Start,
            b'$' => Node::End,
            b'\\' => self.escape()?,
            b')' | b'*' | b'+' | b'?' => return Err(Unsupported::Syntax(self.at - 1)),
            _ => Node::Lit(vec![byte.to_ascii_lowercase()]),
        })
    }

    /// After a `\` outside a class.
    fn escape(&mut self) -> Result<Node, Unsupported> {
        let Some(byte) = self.peek() else {
            return Err(self.unsupported());
        };
        self.at += 1;
        Ok(match byte {
            b'b' => Node::Boundary(true),
            b'B' => Node::Boundary(false),
            _ => match self.class_escape(byte)? {
                Ok(set) => Node::Set(set),
                Err(literal) => Node::Lit(vec![literal.to_ascii_lowercase()]),
            },
        })
    }

    /// The set of `\d`, `\w`, `\s` and their negations, or the byte another escape
    /// stands for.
    fn class_escape(&self, byte: u8) -> Result<Result<ByteSet, u8>, Unsupported> {
        Ok(match byte {
            b'd' => Ok(ByteSet::digit()),
            b'D' => Ok(ByteSet::digit().negate()),
            b'w' => Ok(ByteSet::word()),
            b'W' => Ok(ByteSet::word().negate()),
            b's' => Ok(ByteSet::space()),
            b'S' => Ok(ByteSet::space().negate()),
            b'n' => Err(b'\n'),
            b't' => Err(b'\t'),
            b'r' => Err(b'\r'),
            b'f' => Err(0x0c),
            b'v' => Err(0x0b),
            _ if byte.is_ascii_alphanumeric() || byte >= 128 => {
                return Err(Unsupported::Syntax(self.at - 1))
            }
            _ => Err(byte),
        })
    }

    /// After a `[`.
    fn class(&mut self) -> Result<ByteSet, Unsupported> {
        let negated = self.eat(b'^');
        let mut set = ByteSet::default();
        loop {
            let Some(byte) = self.peek() else {
                return Err(Unsupported::Unbalanced);
            };
            self.at += 1;
            if byte == b']' {
                break;
            }
            if byte >= 128 {
                return Err(Unsupported::Syntax(self.at - 1));
            }
            let item = if byte == b'\\' {
                let Some(escaped) = self.peek() else {
                    return Err(Unsupported::Unbalanced);
                };
                self.at += 1;
                if escaped == b'b' {
                    Err(0x08)
                } else {
                    self.class_escape(escaped)?
                }
            } else {
                Err(byte)
            };
            match item {
                Ok(escape_set) => set = set.union(escape_set),
                Err(lo) => {
                    // A range, unless the `-` is last or its other end is a class
                    // escape (`[\w\d-.]` has a literal `-`, as in JavaScript).
                    let after = self.pattern.get(self.at + 1).copied();
                    let hi = self.pattern.get(self.at + 2).copied();
                    let is_range = self.peek() == Some(b'-')
                        && after.is_some_and(|a| a != b']')
                        && !(after == Some(b'\\') && hi.is_some_and(|h| b"dDwWsS".contains(&h)));
                    if is_range {
                        self.at += 1;
                        let Some(end) = self.peek() else {
                            return Err(Unsupported::Unbalanced);
                        };
                        self.at += 1;
                        let hi = if end == b'\\' {
                            let Some(escaped) = self.peek() else {
                                return Err(Unsupported::Unbalanced);
                            };
                            self.at += 1;
                            match self.class_escape(escaped)? {
                                Err(byte) => byte,
                                Ok(_) => return Err(self.unsupported()),
                            }
                        } else {
                            end
                        };
                        if hi < lo || hi >= 128 {
                            return Err(self.unsupported());
                        }
                        set = set.range(lo, hi);
                    } else {
                        set = set.with(lo);
                    }
                }
            }
        }
        let set = set.fold_case();
        Ok(if negated { set.negate() } else { set })
    }

    /// An atom and the quantifier after it, if any.
    fn quantified(&mut self, atom: Node) -> Result<Node, Unsupported> {
        let (min, max) = match self.peek() {
            Some(b'?') => (0, 1),
            Some(b'*') => (0, u32::MAX),
            Some(b'+') => (1, u32::MAX),
            Some(b'{') => match self.braces() {
                Some(bounds) => bounds,
                None => return Ok(atom),
            },
            _ => return Ok(atom),
        };
        // Past the `?`, `*`, `+` or the `}`.
        self.at += 1;
        // A lazy quantifier matches where a greedy one does.
        self.eat(b'?');
        if matches!(atom, Node::Start | Node::End | Node::Boundary(_))
            || matches!(&atom, Node::Lit(bytes) if bytes.len() != 1 || bytes.first().is_none_or(|b| *b >= 128))
        {
            return Err(self.unsupported());
        }
        // A repeated byte is a repeated one-byte set: the matcher's fast repetition.
        let atom = match atom {
            Node::Lit(bytes) => match *bytes.as_slice() {
                [byte] => Node::Set(ByteSet::default().with(byte)),
                _ => return Err(self.unsupported()),
            },
            atom => atom,
        };
        Ok(Node::Repeat(Repeat {
            inner: Box::new(atom),
            min,
            max,
            possessive: false,
        }))
    }

    /// `{n}`, `{n,}` or `{n,m}` at the current `{`, leaving the position on its `}`; `None`
    /// (and the position unchanged) when the `{` is a literal, as JavaScript reads it.
    fn braces(&mut self) -> Option<(u32, u32)> {
        let rest = self.pattern.get(self.at..)?;
        let close = rest.iter().position(|&b| b == b'}')?;
        let inside = std::str::from_utf8(rest.get(1..close)?).ok()?;
        let number = |s: &str| -> Option<u32> {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
        };
        let bounds = match inside.split_once(',') {
            None => {
                let n = number(inside)?;
                (n, n)
            }
            Some((lo, "")) => (number(lo)?, u32::MAX),
            Some((lo, hi)) => (number(lo)?, number(hi)?),
        };
        (bounds.0 <= bounds.1).then(|| {
            self.at += close;
            bounds
        })
    }
}

/// The most bytes a sequence can match, if bounded.
fn max_len(nodes: &[Node]) -> Option<usize> {
    nodes.iter().try_fold(0usize, |total, node| {
        let len = match node {
            Node::Lit(bytes) => Some(bytes.len()),
            Node::Set(_) | Node::Any => Some(4),
            Node::Start | Node::End | Node::Boundary(_) | Node::Look { .. } => Some(0),
            Node::Group { alts, .. } => alts
                .iter()
                .map(|alt| max_len(alt))
                .try_fold(0, |most: usize, len| len.map(|len| most.max(len))),
            Node::Repeat(Repeat { inner, max, .. }) => {
                let one = max_len(std::slice::from_ref(inner.as_ref()))?;
                (*max != u32::MAX).then(|| one.saturating_mul(*max as usize))
            }
        }?;
        Some(total.saturating_add(len))
    })
}

/// What a match of a sequence can start with: these characters, the end of the text,
/// or, when `anything`, something this analysis does not follow (an assertion).
#[derive(Debug, Clone, Copy, Default)]
struct First {
    chars: ByteSet,
    end: bool,
    anything: bool,
}

impl First {
    fn union(self, other: First) -> First {
        First {
            chars: self.chars.union(other.chars),
            end: self.end || other.end,
            anything: self.anything || other.anything,
        }
    }

    fn unknown() -> First {
        First {
            anything: true,
            ..First::default()
        }
    }

    /// Whether what this describes can start at a position followed by `next` (`None`:
    /// the end of the text).
    fn admits(&self, next: Option<u8>) -> bool {
        self.anything || next.map_or(self.end, |byte| self.chars.has(byte))
    }

    /// Whether no character of `set` can start what this describes.
    fn disjoint(&self, set: &ByteSet) -> bool {
        let shared_ascii = self
            .chars
            .bits
            .iter()
            .zip(set.bits)
            .any(|(a, b)| a & b != 0);
        !(self.anything || shared_ascii || (self.chars.non_ascii && set.non_ascii))
    }
}

/// The characters `.` matches.
fn any_char() -> ByteSet {
    ByteSet::default().with(b'\n').with(b'\r').negate()
}

/// What one node can start with, and whether it can match nothing.
fn first_of_node(node: &Node) -> (First, bool) {
    let chars = |chars| First {
        chars,
        ..First::default()
    };
    match node {
        Node::Lit(bytes) => (
            chars(
                bytes
                    .first()
                    .map_or(ByteSet::default(), |&b| ByteSet::default().with(b)),
            ),
            bytes.is_empty(),
        ),
        Node::Set(set) => (chars(*set), false),
        Node::Any => (chars(any_char()), false),
        Node::End => (
            First {
                end: true,
                ..First::default()
            },
            false,
        ),
        Node::Start | Node::Boundary(_) | Node::Look { .. } => (First::unknown(), true),
        Node::Group { alts, .. } => alts.iter().fold((First::default(), false), |(f, n), alt| {
            let (first, nullable) = first_of(alt, First::default());
            (f.union(first), n || nullable)
        }),
        Node::Repeat(Repeat { inner, min, .. }) => {
            let (first, nullable) = first_of_node(inner);
            (first, nullable || *min == 0)
        }
    }
}

/// What `nodes` then `follow` can start with, and whether `nodes` can match nothing.
fn first_of(nodes: &[Node], follow: First) -> (First, bool) {
    let mut first = First::default();
    for node in nodes {
        let (f, nullable) = first_of_node(node);
        first = first.union(f);
        if !nullable {
            return (first, false);
        }
    }
    (first.union(follow), true)
}

/// Marks the repetitions of single characters that what follows them (`follow` after
/// the sequence) can never start with.
fn mark_possessive(nodes: &mut [Node], follow: First) {
    for at in (0..nodes.len()).rev() {
        let after = first_of(nodes.get(at + 1..).unwrap_or_default(), follow).0;
        let Some(node) = nodes.get_mut(at) else {
            continue;
        };
        match node {
            Node::Repeat(Repeat {
                inner, possessive, ..
            }) => match inner.as_mut() {
                Node::Set(set) => *possessive = after.disjoint(set),
                Node::Any => *possessive = after.disjoint(&any_char()),
                group @ Node::Group { .. } => {
                    // Another repetition may follow a repetition's end.
                    let again = first_of_node(group).0.union(after);
                    if let Node::Group { alts, .. } = group {
                        for alt in alts {
                            mark_possessive(alt, again);
                        }
                    }
                }
                _ => {}
            },
            Node::Group { alts, .. } => {
                for alt in alts {
                    mark_possessive(alt, after);
                }
            }
            // What follows a look-around's content is not what follows the look-around.
            _ => {}
        }
    }
}

/// Records in each group what each alternative can start with, where that does not
/// depend on what follows the group (the alternative cannot match nothing).
fn fill_starts(nodes: &mut [Node]) {
    for node in nodes {
        match node {
            Node::Group { alts, starts } => {
                *starts = alts
                    .iter()
                    .map(|alt| {
                        let (first, nullable) = first_of(alt, First::unknown());
                        (!nullable && !first.anything).then_some(first)
                    })
                    .collect();
                for alt in alts {
                    fill_starts(alt);
                }
            }
            Node::Repeat(Repeat { inner, .. }) => fill_starts(std::slice::from_mut(inner.as_mut())),
            Node::Look { alts, .. } => {
                for alt in alts {
                    fill_starts(alt);
                }
            }
            _ => {}
        }
    }
}

/// One compiled pattern.
#[derive(Debug)]
struct Pattern {
    nodes: Vec<Node>,
    /// Starts with `^`: tried at the start only.
    anchored: bool,
    /// A literal every match contains, when there is one.
    literal: Option<Vec<u8>>,
    /// The user agent must start with `literal` (`^literal…`).
    literal_first: bool,
    /// A token that excuses this pattern's match (see [`EXCUSES`]).
    excuse: Option<&'static [u8]>,
    /// The pattern ends with `$` after one character of this set (or a literal ending
    /// with one of these bytes): a text whose last byte is not in it cannot match.
    last: Option<ByteSet>,
}

impl Pattern {
    fn compile(source: &str) -> Result<Pattern, Unsupported> {
        let mut parser = Parser {
            pattern: source.as_bytes(),
            at: 0,
        };
        let mut alts = parser.alternatives()?;
        if parser.at != source.len() {
            return Err(Unsupported::Unbalanced);
        }
        let mut nodes = if alts.len() == 1 {
            alts.pop().unwrap_or_default()
        } else {
            vec![Node::Group {
                alts,
                starts: Vec::new(),
            }]
        };
        // A match may end anywhere: the search accepts it as soon as the pattern ends.
        mark_possessive(&mut nodes, First::unknown());
        fill_starts(&mut nodes);
        let anchored = matches!(nodes.first(), Some(Node::Start));
        let literal_first = anchored && matches!(nodes.get(1), Some(Node::Lit(_)));
        let literal = if literal_first {
            match nodes.get(1) {
                Some(Node::Lit(bytes)) => Some(bytes.clone()),
                _ => None,
            }
        } else {
            // The longest literal, but a rare byte (`@`, `|`) beats a common one (`.`):
            // the prefilter is worth what the literal's rarity is.
            nodes
                .iter()
                .filter_map(|node| match node {
                    Node::Lit(bytes) => Some(bytes),
                    _ => None,
                })
                .max_by_key(|bytes| {
                    let rare = bytes.iter().any(|b| !COMMON_IN_USER_AGENTS.contains(b));
                    (bytes.len().min(3), rare, bytes.len())
                })
                .cloned()
        };
        let last = match nodes.as_slice() {
            [.., Node::Lit(bytes), Node::End] => bytes.last().map(|&b| ByteSet::default().with(b)),
            [.., Node::Set(set), Node::End] => Some(*set),
            [.., Node::Repeat(Repeat { inner, min, .. }), Node::End] if *min > 0 => {
                match inner.as_ref() {
                    Node::Set(set) => Some(*set),
                    _ => None,
                }
            }
            _ => None,
        };
        let excuse = EXCUSES
            .iter()
            .find(|(pattern, _)| *pattern == source)
            .map(|(_, token)| token.as_bytes());
        Ok(Pattern {
            last,
            nodes,
            anchored,
            literal,
            literal_first,
            excuse,
        })
    }
}

/// The compiled list with its literal prefilter.
#[derive(Debug)]
struct Matcher {
    patterns: Vec<Pattern>,
    /// Patterns without a literal: tried on every user agent.
    always: Vec<usize>,
    /// `(literal, pattern, at the start only)` of every pattern with a literal.
    literals: Vec<(Vec<u8>, usize, bool)>,
    /// Literals of one or two bytes, by their first byte.
    short: Vec<Vec<usize>>,
    /// Bit `256 * a + b`: a literal of three bytes or more starts with `a`, `b`; or a
    /// short literal starts with `a`. Most positions of a user agent stop here.
    pairs: Vec<u64>,
    /// Literals of three bytes or more, by a hash of their first three: bucket `h` is
    /// `long[long_start[h]..long_start[h + 1]]`. Most buckets are empty, so most
    /// positions of a user agent cost one hash and one look-up.
    long_start: Vec<u32>,
    long: Vec<usize>,
    /// The patterns left out, with why (for the tests).
    #[cfg_attr(not(test), allow(dead_code))]
    skipped: Vec<(String, Unsupported)>,
}

/// log2 of the number of hash buckets of the long literals.
const BUCKET_BITS: u32 = 12;

fn trigram(a: u8, b: u8, c: u8) -> usize {
    let word = (u32::from(a) << 16) | (u32::from(b) << 8) | u32::from(c);
    (word.wrapping_mul(0x9e37_79b1) >> (32 - BUCKET_BITS)) as usize
}

impl Matcher {
    fn new(sources: &[String]) -> Matcher {
        let mut patterns = Vec::new();
        let mut always = Vec::new();
        let mut literals = Vec::new();
        let mut skipped = Vec::new();
        for source in sources {
            match Pattern::compile(source) {
                Ok(pattern) => {
                    let index = patterns.len();
                    match &pattern.literal {
                        Some(literal) if !literal.is_empty() => {
                            literals.push((literal.clone(), index, pattern.literal_first))
                        }
                        _ => always.push(index),
                    }
                    patterns.push(pattern);
                }
                Err(why) => skipped.push((source.clone(), why)),
            }
        }
        let mut short = vec![Vec::new(); 256];
        let mut buckets = vec![Vec::new(); 1 << BUCKET_BITS];
        let mut pairs = vec![0u64; 65536 / 64];
        let mut set_pair = |a: u8, b: u8| {
            let bit = usize::from(a) * 256 + usize::from(b);
            if let Some(word) = pairs.get_mut(bit / 64) {
                *word |= 1 << (bit % 64);
            }
        };
        for (index, (literal, _, _)) in literals.iter().enumerate() {
            let list = match *literal.as_slice() {
                [a, b, c, ..] => {
                    set_pair(a, b);
                    buckets.get_mut(trigram(a, b, c))
                }
                [a, ..] => {
                    for b in 0..=255 {
                        set_pair(a, b);
                    }
                    short.get_mut(usize::from(a))
                }
                [] => None,
            };
            if let Some(list) = list {
                list.push(index);
            }
        }
        let mut long_start = Vec::with_capacity(buckets.len() + 1);
        let mut long = Vec::new();
        for bucket in buckets {
            long_start.push(u32::try_from(long.len()).unwrap_or(u32::MAX));
            long.extend(bucket);
        }
        long_start.push(u32::try_from(long.len()).unwrap_or(u32::MAX));
        Matcher {
            patterns,
            always,
            literals,
            short,
            pairs,
            long_start,
            long,
            skipped,
        }
    }

    /// The index of the first pattern (in list order) that matches the lowercased user
    /// agent and, with `excuses`, is not excused.
    fn first_match(&self, lower: &[u8], excuses: bool) -> Option<usize> {
        let candidates = self.candidates(lower);
        let set_bits = candidates.iter().enumerate().flat_map(|(w, &word)| {
            let mut word = word;
            std::iter::from_fn(move || {
                (word != 0).then(|| {
                    let bit = word.trailing_zeros() as usize;
                    word &= word - 1;
                    w * 64 + bit
                })
            })
        });
        set_bits.into_iter().find(|&index| {
            self.patterns.get(index).is_some_and(|pattern| {
                Run::new(lower).finds(pattern)
                    && !(excuses && pattern.excuse.is_some_and(|token| contains(lower, token)))
            })
        })
    }

    /// The patterns worth trying on a lowercased user agent, as a bit set: those without
    /// a literal, and those whose literal it contains.
    fn candidates(&self, lower: &[u8]) -> SmallVec<[u64; 4]> {
        let mut candidates: SmallVec<[u64; 4]> =
            SmallVec::from_elem(0, self.patterns.len().div_ceil(64));
        let mut mark = |pattern: usize| {
            if let Some(word) = candidates.get_mut(pattern / 64) {
                *word |= 1 << (pattern % 64);
            }
        };
        for &pattern in &self.always {
            mark(pattern);
        }
        let mut check = |index: usize, at: usize, rest: &[u8]| {
            if let Some((literal, pattern, first_only)) = self.literals.get(index) {
                if (at == 0 || !first_only) && rest.starts_with(literal) {
                    mark(*pattern);
                }
            }
        };
        for at in 0..lower.len() {
            let rest = lower.get(at..).unwrap_or_default();
            let (a, b) = match *rest {
                [a, b, ..] => (a, b),
                [a] => (a, 0),
                [] => break,
            };
            let bit = usize::from(a) * 256 + usize::from(b);
            if self
                .pairs
                .get(bit / 64)
                .is_none_or(|word| word & (1 << (bit % 64)) == 0)
            {
                continue;
            }
            for &index in self.short.get(usize::from(a)).into_iter().flatten() {
                check(index, at, rest);
            }
            if let [_, _, c, ..] = *rest {
                let bucket = trigram(a, b, c);
                let from = self.long_start.get(bucket).copied().unwrap_or(0) as usize;
                let to = self.long_start.get(bucket + 1).copied().unwrap_or(0) as usize;
                for &index in self.long.get(from..to).into_iter().flatten() {
                    check(index, at, rest);
                }
            }
        }
        candidates
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// One pattern's search over one user agent, with its step and depth budgets.
struct Run<'s> {
    text: &'s [u8],
    steps: Cell<u32>,
    depth: Cell<u32>,
}

impl<'s> Run<'s> {
    fn new(text: &'s [u8]) -> Self {
        Run {
            text,
            steps: Cell::new(0),
            depth: Cell::new(0),
        }
    }

    fn finds(&self, pattern: &Pattern) -> bool {
        if let Some(last) = &pattern.last {
            // The last character, if it is not ASCII, is a run of bytes >= 0x80.
            if !self.text.last().is_some_and(|&b| last.has(b)) {
                return false;
            }
        }
        if pattern.anchored {
            return self.sequence(&pattern.nodes, 0, &mut |_| true);
        }
        // A pattern that starts with a literal can only match where the literal is.
        let lead = match pattern.nodes.first() {
            Some(Node::Lit(bytes)) => bytes.first().copied(),
            _ => None,
        };
        for start in 0..=self.text.len() {
            if self.steps.get() >= MAX_STEPS {
                return false;
            }
            if lead.is_some_and(|lead| self.text.get(start) != Some(&lead)) {
                continue;
            }
            if self.boundary_of_char(start) && self.sequence(&pattern.nodes, start, &mut |_| true) {
                return true;
            }
        }
        false
    }

    fn boundary_of_char(&self, at: usize) -> bool {
        self.text.get(at).is_none_or(|&b| (b & 0xc0) != 0x80)
    }

    /// Takes a step deeper, if the budgets allow.
    fn enter(&self) -> bool {
        let (steps, depth) = (self.steps.get(), self.depth.get());
        if steps >= MAX_STEPS || depth >= MAX_DEPTH {
            return false;
        }
        self.steps.set(steps + 1);
        self.depth.set(depth + 1);
        true
    }

    fn leave(&self) {
        self.depth.set(self.depth.get().saturating_sub(1));
    }

    /// Whether `nodes` match from `at` with the continuation `then` accepting where
    /// they end.
    fn sequence(&self, nodes: &[Node], at: usize, then: &mut dyn FnMut(usize) -> bool) -> bool {
        let Some((node, rest)) = nodes.split_first() else {
            return then(at);
        };
        if !self.enter() {
            return false;
        }
        let found = self.node(node, rest, at, then);
        self.leave();
        found
    }

    fn node(
        &self,
        node: &Node,
        rest: &[Node],
        at: usize,
        then: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        match node {
            Node::Lit(bytes) => {
                self.text
                    .get(at..)
                    .is_some_and(|tail| tail.starts_with(bytes))
                    && self.sequence(rest, at + bytes.len(), then)
            }
            Node::Set(_) | Node::Any => self
                .one(node, at)
                .is_some_and(|next| self.sequence(rest, next, then)),
            Node::Start => at == 0 && self.sequence(rest, at, then),
            Node::End => at == self.text.len() && self.sequence(rest, at, then),
            Node::Boundary(wanted) => {
                let before = at
                    .checked_sub(1)
                    .and_then(|b| self.text.get(b))
                    .is_some_and(|&b| is_word(b));
                let after = self.text.get(at).is_some_and(|&b| is_word(b));
                (before != after) == *wanted && self.sequence(rest, at, then)
            }
            Node::Group { alts, starts } => {
                let next = self.text.get(at).copied();
                alts.iter().enumerate().any(|(i, alt)| {
                    starts
                        .get(i)
                        .copied()
                        .flatten()
                        .is_none_or(|first| first.admits(next))
                        && self.sequence(alt, at, &mut |end| self.sequence(rest, end, then))
                })
            }
            Node::Repeat(repeat) => match repeat.inner.as_ref() {
                Node::Set(_) | Node::Any => self.repeat_one(repeat, rest, at, then),
                _ => self.repeat(repeat, 0, rest, at, then),
            },
            Node::Look {
                ahead,
                negate,
                alts,
                span,
            } => {
                let found = if *ahead {
                    alts.iter().any(|alt| self.sequence(alt, at, &mut |_| true))
                } else {
                    let from = span.map_or(0, |span| at.saturating_sub(span));
                    (from..=at).any(|start| {
                        self.boundary_of_char(start)
                            && alts
                                .iter()
                                .any(|alt| self.sequence(alt, start, &mut |end| end == at))
                    })
                };
                found != *negate && self.sequence(rest, at, then)
            }
        }
    }

    /// Where one character of a set (or `.`) ends, if it matches at `at`.
    fn one(&self, node: &Node, at: usize) -> Option<usize> {
        let &byte = self.text.get(at)?;
        let matches = match node {
            Node::Set(set) => set.has(byte),
            Node::Any => byte != b'\n' && byte != b'\r',
            _ => false,
        };
        matches.then(|| at + char_len(byte))
    }

    /// A repeated single character: as many as allowed, then fewer while the rest fails.
    fn repeat_one(
        &self,
        repeat: &Repeat,
        rest: &[Node],
        at: usize,
        then: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        let (mut count, mut end) = (0u32, at);
        while count < repeat.max {
            match self.one(&repeat.inner, end) {
                Some(next) => {
                    end = next;
                    count += 1;
                }
                None => break,
            }
        }
        loop {
            if count < repeat.min {
                return false;
            }
            if self.sequence(rest, end, then) {
                return true;
            }
            if repeat.possessive || count == 0 || self.steps.get() >= MAX_STEPS {
                return false;
            }
            count -= 1;
            // Back over one character (the text is UTF-8, each step took one).
            end = end.saturating_sub(1);
            while end > at && !self.boundary_of_char(end) {
                end -= 1;
            }
        }
    }

    /// A repeated group, `count` times so far: one more repetition first, then the rest.
    fn repeat(
        &self,
        repeat: &Repeat,
        count: u32,
        rest: &[Node],
        at: usize,
        then: &mut dyn FnMut(usize) -> bool,
    ) -> bool {
        if !self.enter() {
            return false;
        }
        let found = (count < repeat.max
            && self.node(&repeat.inner, &[], at, &mut |end| {
                // An empty repetition past the minimum would loop for ever.
                (end != at || count < repeat.min) && self.repeat(repeat, count + 1, rest, end, then)
            }))
            || (count >= repeat.min && self.sequence(rest, at, then));
        self.leave();
        found
    }
}

/// The length of the UTF-8 character starting with `byte` (1 for a stray byte).
fn char_len(byte: u8) -> usize {
    match byte {
        0xf0..=0xf7 => 4,
        0xe0..=0xef => 3,
        0xc0..=0xdf => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(pattern: &str, text: &str, expected: bool) {
        let compiled = Pattern::compile(pattern).unwrap_or_else(|e| panic!("{pattern}: {e:?}"));
        let lower = text.to_ascii_lowercase();
        assert_eq!(
            Run::new(lower.as_bytes()).finds(&compiled),
            expected,
            "{pattern:?} on {text:?}"
        );
    }

    #[test]
    fn every_shipped_pattern_compiles_and_has_a_prefilter() {
        let m = matcher();
        assert_eq!(m.skipped, Vec::new());
        assert_eq!(m.patterns.len(), 206);
        // Patterns tried on every user agent: anchored ones without a literal. Each
        // costs a few steps at position 0; none may be unanchored.
        for &index in &m.always {
            assert!(
                m.patterns[index].anchored,
                "pattern {index} has no prefilter"
            );
        }
        assert!(
            m.always.len() <= 12,
            "{} patterns always tried",
            m.always.len()
        );
    }

    #[test]
    fn the_syntax_isbot_uses() {
        // Look-behind with alternatives, look-ahead.
        check(
            "(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))",
            "Googlebot",
            true,
        );
        check(
            "(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))",
            "GoogleApp/1",
            false,
        );
        check(
            "(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))",
            "x google/google",
            false,
        );
        check(
            "(?<! channel/|google/)google(?!(?:wv|app|/google| pixel))",
            "Google Pixel 8",
            false,
        );
        check(
            "(?<! cu)bots?(?:\\b|_)",
            "Mozilla/5.0 (compatible; bingbot/2.0)",
            true,
        );
        check("(?<! cu)bots?(?:\\b|_)", "Android 8.0.0; CUBOT_P20)", false);
        check("(?<! cu)bots?(?:\\b|_)", "robots_txt", true);
        check("(?:^|[^g])news(?!sapphire)", "news", true);
        check("(?:^|[^g])news(?!sapphire)", "gnews", false);
        check("(?:^|[^g])news(?!sapphire)", "x newssapphire", false);
        // Classes: ranges, escapes, a literal `-` after a class escape, negation.
        check("@[a-z][\\w-]+\\.", "bot@Example-x.com", true);
        check("@[a-z][\\w-]+\\.", "@1x.com", false);
        check(
            "^mozilla/\\d\\.\\d\\s\\((?:compatible;)?(?:\\s?[\\w\\d-.]+[\\s/]\\d+\\.\\d+)?\\)$",
            "Mozilla/5.0 (compatible; Foo-Bar.x/1.2)",
            true,
        );
        check(
            "^mozilla/\\d\\.\\d\\s\\((?:compatible;)?(?:\\s?[\\w\\d-.]+[\\s/]\\d+\\.\\d+)?\\)$",
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            false,
        );
        check("^[^ ]{50,}$", &"x".repeat(50), true);
        check("^[^ ]{50,}$", &"x".repeat(49), false);
        // A character outside ASCII is one character, as in JavaScript.
        check("^[^ ]{50,}$", &"é".repeat(30), false);
        check("^\\d+\\b", "5.0 (Windows", true);
        check("^\\d+\\b", "Mozilla", false);
        // Bounded repetitions, lazy repetitions of groups, `$`.
        check(
            "^[\\w \\.\\-\\(?:\\):%]+(?:/v?\\d+(?:\\.\\d+)?(?:\\.\\d{1,10})*?)?(?:,|$)",
            "curl/7.64.1",
            true,
        );
        check(
            "^[\\w \\.\\-\\(?:\\):%]+(?:/v?\\d+(?:\\.\\d+)?(?:\\.\\d{1,10})*?)?(?:,|$)",
            "Mozilla/5.0 (X11; Linux x86_64)",
            false,
        );
        check("\\b\\w+/1\\.0;", "(compatible; BuiltWith/1.0;", true);
        check("java(?!;)", "Java/1.8", true);
        check("java(?!;)", "(java; x)", false);
        check("\\|", "a|b", true);
        check("\\.com\\b", "example.com/", true);
        check("\\.com\\b", "example.comx", false);
        check("x{2}", "axxb", true);
        check("x{2}", "axb", false);
        // `{` that is no quantifier is a literal, as in JavaScript.
        check("a{b", "a{b", true);
    }

    #[test]
    fn what_it_refuses() {
        let refused = |p: &str| Pattern::compile(p).err();
        assert_eq!(refused("(?<name>x)"), Some(Unsupported::Syntax(3)));
        assert_eq!(refused("a\\1"), Some(Unsupported::Syntax(2)));
        assert_eq!(refused("(ab"), Some(Unsupported::Unbalanced));
        assert_eq!(refused("ab)"), Some(Unsupported::Unbalanced));
        assert_eq!(refused("[ab"), Some(Unsupported::Unbalanced));
        assert_eq!(refused("*a"), Some(Unsupported::Syntax(0)));
        assert_eq!(refused("[z-a]"), Some(Unsupported::Syntax(4)));
    }

    #[test]
    fn budgets_bound_the_work_on_hostile_input() {
        // Nested repetition over a long run that never ends well: exponential in a
        // naive backtracker; here the step budget ends it, as no match.
        let pattern = Pattern::compile("^(?:a+)+b").expect("compiles");
        let text = "a".repeat(2000);
        let run = Run::new(text.as_bytes());
        assert!(!run.finds(&pattern));
        assert!(run.steps.get() <= MAX_STEPS);
        // And the shipped list on a 2 KiB user agent of one repeated token.
        let long = "mozilla/5.0 ".repeat(170);
        let _ = matcher().first_match(long.as_bytes(), true);
    }

    /// isbot's own verdicts (`fixtures/user-agents/isbot-5.2.3.tsv`, written by the npm
    /// package) over both corpora: the compiled list, before excuses, is isbot.
    #[test]
    fn the_verdicts_are_isbots_over_the_corpora() {
        let root =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/user-agents");
        let read = |name: &str| std::fs::read_to_string(root.join(name)).unwrap();
        let reference: std::collections::HashMap<String, bool> = read("isbot-5.2.3.tsv")
            .lines()
            .map(|line| {
                let (verdict, ua) = line.split_once('\t').unwrap();
                (ua.to_owned(), verdict == "bot")
            })
            .collect();
        let crawlers = read("crawlers.txt");
        let browsers = read("browsers.tsv");
        let corpus = crawlers.lines().map(|ua| (ua, true)).chain(
            browsers
                .lines()
                .map(|line| (line.split_once('\t').unwrap().1, false)),
        );
        let mut differ = Vec::new();
        let mut count = 0;
        for (ua, crawler) in corpus {
            count += 1;
            let expected = reference.get(ua).copied().unwrap_or(crawler);
            let lower = ua.to_ascii_lowercase();
            if matcher().first_match(lower.as_bytes(), false).is_some() != expected {
                differ.push(ua);
            }
        }
        assert_eq!(count, 2118 + 12142);
        assert_eq!(differ, Vec::<&str>::new());
    }

    #[test]
    fn excuses_apply_to_their_pattern_only() {
        let wechat = "Mozilla/5.0 (Linux; Android 10; MI 6; wv) AppleWebKit/537.36 Chrome/77.0 Mobile Safari/537.36 MicroMessenger/7.0.14.1660(0x27000E37) Process/tools NetType/WIFI";
        assert!(!is_bot(wechat));
        // The same token without the in-app browser is isbot's bot.
        assert!(is_bot("Mozilla/5.0 (X11; Linux x86_64) Process/tools"));
        // An excused app that is also a crawler is still a bot.
        assert!(is_bot(&format!("{wechat} Googlebot/2.1")));
        assert!(is_bot(""));
    }
}
