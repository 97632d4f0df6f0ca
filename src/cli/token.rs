//! `micromoment keygen` and `micromoment token`: make keys, mint and inspect tokens.
//!
//! The CLI is the only place here that reads the system clock (`--now` overrides it) and
//! draws random bytes (new keys, new visitor ids); the library takes both as
//! parameters. The token is printed as its text, without the `mm=` cookie name.

use std::path::PathBuf;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Subcommand;
use micromoment::ids::{stable_id, IdKind};
use micromoment::time::{UnixSeconds, DAY, HOUR, MINUTE, WEEK};
use micromoment::token::{self, Keys, State};

use super::{print_json, read_file, Failure, Outcome};

#[derive(Subcommand)]
pub(crate) enum KeygenCmd {
    /// Print a new JOURNEY_KEYS document with one fresh 32-byte HMAC key.
    Hmac {
        /// The key id (1 to 32 characters of A-Z a-z 0-9 _ -).
        #[arg(long, default_value = "k1")]
        kid: String,
    },
    /// Write a bundle-signing key pair (`bundle-signing.key`, `bundle-signing.pub`).
    Ed25519 {
        /// The folder to write the pair into.
        #[arg(short, long)]
        output: std::path::PathBuf,
    },
}

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Print a new signed token for a new visitor.
    Mint {
        /// The JOURNEY_KEYS document; the token is signed with its `current` key.
        #[arg(long, value_name = "KEYS.json")]
        keys: PathBuf,
        /// The journey stage name, e.g. `decision` (stored as its stable id).
        #[arg(long)]
        stage: Option<String>,
        /// Segments from a backend, comma-separated, e.g. `vip,newsletter`.
        #[arg(long, value_delimiter = ',')]
        segments: Vec<String>,
        /// The visitor id as 32 hexadecimal digits; random when absent.
        #[arg(long, value_name = "HEX32")]
        visitor: Option<String>,
        /// How long the token stays valid: `30m`, `12h`, `7d`, `2w`.
        #[arg(long, default_value = "30d")]
        ttl: String,
        /// The time of issue, RFC 3339 (e.g. `2025-01-15T10:00:00Z`); the clock when absent.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
    },
    /// Verify a token and print its state as JSON; exit 1 with the reason if it fails.
    Inspect {
        /// The token text (a leading `mm=` is accepted).
        token: String,
        /// The JOURNEY_KEYS document.
        #[arg(long, value_name = "KEYS.json")]
        keys: PathBuf,
        /// The time to check expiry against, RFC 3339; the clock when absent.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
    },
}

pub(crate) fn run_keygen(cmd: KeygenCmd) -> Outcome {
    match cmd {
        KeygenCmd::Hmac { kid } => {
            let mut key = [0u8; 32];
            getrandom::fill(&mut key)
                .map_err(|e| Failure::Usage(format!("cannot read random bytes: {e}")))?;
            let doc = serde_json::json!({
                "current": kid,
                "keys": { kid.as_str(): STANDARD.encode(key) },
            });
            // Check the document the way every reader will, so a bad --kid fails here.
            Keys::from_json(&doc.to_string()).map_err(|e| Failure::Usage(format!("--kid: {e}")))?;
            print_json(&doc)
        }
        KeygenCmd::Ed25519 { output } => super::bundle::keygen_ed25519(&output),
    }
}

pub(crate) fn run(cmd: TokenCmd) -> Outcome {
    match cmd {
        TokenCmd::Mint {
            keys,
            stage,
            segments,
            visitor,
            ttl,
            now,
        } => {
            let keys = load_keys(&keys)?;
            let now = parse_now(now.as_deref())?;
            let ttl = parse_ttl(&ttl)?;
            let visitor = match visitor {
                Some(text) => token::parse_visitor(&text).ok_or_else(|| {
                    Failure::Usage(format!("--visitor: {text:?} is not 32 hexadecimal digits"))
                })?,
                None => {
                    let mut id = [0u8; 16];
                    getrandom::fill(&mut id)
                        .map_err(|e| Failure::Usage(format!("cannot read random bytes: {e}")))?;
                    id
                }
            };
            check_segments(&segments)?;
            let mut state = State::new_visitor(visitor, now, ttl);
            if let Some(stage) = stage {
                if stage.is_empty() {
                    return Err(Failure::Usage("--stage: the stage name is empty".into()));
                }
                state.stage = Some(stable_id(IdKind::Stage, &stage));
            }
            state.segments = segments;
            let text = token::sign(&state, &keys)
                .map_err(|e| Failure::Usage(format!("cannot sign: {e}")))?;
            super::print_text(&format!("{text}\n"))
        }
        TokenCmd::Inspect { token, keys, now } => {
            let keys = load_keys(&keys)?;
            let now = parse_now(now.as_deref())?;
            let text = token.strip_prefix("mm=").unwrap_or(&token);
            match token::verify(text, &keys, now) {
                Ok(state) => print_json(&state.to_json()),
                Err(e) => Err(Failure::Findings(format!("token does not verify: {e}"))),
            }
        }
    }
}

fn load_keys(path: &std::path::Path) -> Result<Keys, Failure> {
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Failure::Usage(format!("{}: not utf-8", path.display())))?;
    Keys::from_json(text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
}

/// `--now` as Unix seconds, or the system clock.
fn parse_now(now: Option<&str>) -> Result<UnixSeconds, Failure> {
    match now {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map(|t| t.as_second())
            .map_err(|e| Failure::Usage(format!("--now: {text:?} is not an RFC 3339 time: {e}"))),
        None => Ok(jiff::Timestamp::now().as_second()),
    }
}

/// A positive duration `<n><unit>` with unit `m`, `h`, `d` or `w`, in seconds: the
/// same spelling as a cap's `per` (DESIGN §3).
fn parse_ttl(text: &str) -> Result<i64, Failure> {
    let bad = || {
        Failure::Usage(format!(
            "--ttl: {text:?} is not a duration like 30m, 12h, 7d or 2w"
        ))
    };
    let mut chars = text.chars();
    let unit = match chars.next_back() {
        Some('m') => MINUTE,
        Some('h') => HOUR,
        Some('d') => DAY,
        Some('w') => WEEK,
        _ => return Err(bad()),
    };
    let number = chars.as_str();
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match number.parse::<i64>() {
        Ok(count) if count > 0 => count.checked_mul(unit).ok_or_else(bad),
        _ => Err(bad()),
    }
}

fn check_segments(segments: &[String]) -> Result<(), Failure> {
    if segments.len() > token::MAX_SEGMENTS {
        return Err(Failure::Usage(format!(
            "--segments: {} segments, more than the {} a token carries",
            segments.len(),
            token::MAX_SEGMENTS
        )));
    }
    for segment in segments {
        if segment.is_empty() || segment.len() > token::MAX_SEGMENT_BYTES {
            return Err(Failure::Usage(format!(
                "--segments: {segment:?} must be 1 to {} bytes",
                token::MAX_SEGMENT_BYTES
            )));
        }
    }
    Ok(())
}
