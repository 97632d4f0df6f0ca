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
        /// The bundle (authoring JSON or `.mmb`) the stage must be one of; an unknown
        /// stage is then an error with a did-you-mean (without it, it is unchecked).
        #[arg(long, value_name = "BUNDLE")]
        bundle: Option<PathBuf>,
        /// Segments from a backend, comma-separated, e.g. `vip,newsletter`.
        #[arg(long, value_delimiter = ',')]
        segments: Vec<String>,
        /// The person's profile id as 32 hexadecimal digits (docs/profiles.md): the token is
        /// then a linked device's (`v2`), and the device joins the profile at its first
        /// request.
        #[arg(long, value_name = "HEX32")]
        profile: Option<String>,
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
        /// The bundle (authoring JSON or `.mmb`) to name stages, contents, topics and
        /// experiments with; without it the state shows stable ids.
        #[arg(long, value_name = "BUNDLE")]
        bundle: Option<PathBuf>,
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
            // Check the document the way every reader will, so a bad --kid fails here
            // (said with the kid: it is the command line's, not a secret document's).
            Keys::from_json(&doc.to_string()).map_err(|e| {
                Failure::Usage(match e {
                    token::KeysError::BadKid { .. } => format!(
                        "--kid: key id {kid:?} must be 1 to {} characters of A-Z a-z 0-9 _ -",
                        token::MAX_KID_LEN
                    ),
                    e => format!("--kid: {e}"),
                })
            })?;
            print_json(&doc)
        }
        KeygenCmd::Ed25519 { output } => super::bundle::keygen_ed25519(&output),
    }
}

#[derive(Subcommand)]
pub(crate) enum LinkCmd {
    /// Print an identity link for `?mm_link=`: the device whose person confirms it
    /// joins the profile (docs/profiles.md). Single use; revocable by its id.
    Mint {
        /// The JOURNEY_KEYS document; the link is signed with its `current` key.
        #[arg(long, value_name = "KEYS.json")]
        keys: PathBuf,
        /// The person's profile id, 32 hexadecimal digits.
        #[arg(long, value_name = "HEX32")]
        profile: String,
        /// How long the link works: `30m`, `12h`, `7d`, `2w`; at most 30 days.
        #[arg(long, default_value = "12h")]
        ttl: String,
        /// The campaign that sends it (1 to 64 bytes), for attribution.
        #[arg(long)]
        campaign: Option<String>,
        /// The time of issue, RFC 3339; the clock when absent.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
        /// Print JSON: the link, its id (to revoke it), when it was issued and expires.
        #[arg(long)]
        json: bool,
    },
    /// Verify an identity link and print what it says; exit 1 with the reason if it fails.
    Inspect {
        /// The link text (the value of `mm_link`).
        link: String,
        /// The JOURNEY_KEYS document.
        #[arg(long, value_name = "KEYS.json")]
        keys: PathBuf,
        /// The time to check expiry against, RFC 3339; the clock when absent.
        #[arg(long, value_name = "RFC3339")]
        now: Option<String>,
    },
}

pub(crate) fn run_link(cmd: LinkCmd) -> Outcome {
    match cmd {
        LinkCmd::Mint {
            keys,
            profile,
            ttl,
            campaign,
            now,
            json,
        } => {
            let keys = load_keys(&keys)?;
            let now = super::now_arg(now.as_deref())?;
            let ttl = super::duration_arg("ttl", &ttl)?;
            let id = super::id_arg("link", None)?;
            let link = token::IdentityLink::new(profile_arg(&profile)?, id, now, ttl, campaign)
                .map_err(|e| Failure::Usage(format!("cannot mint: {e}")))?;
            let text = link.sign(&keys);
            if json {
                let mut view = link_json(&link);
                if let Some(map) = view.as_object_mut() {
                    map.insert("link".into(), text.into());
                }
                return print_json(&view);
            }
            super::print_text(&format!("{text}\n"))
        }
        LinkCmd::Inspect { link, keys, now } => {
            let keys = load_keys(&keys)?;
            let now = super::now_arg(now.as_deref())?;
            let link = token::IdentityLink::verify(&link, &keys, now)
                .map_err(|e| Failure::Findings(format!("link does not verify: {e}")))?;
            print_json(&link_json(&link))
        }
    }
}

/// What a link says, as `link inspect` and `link mint --json` print it.
fn link_json(link: &token::IdentityLink) -> serde_json::Value {
    serde_json::json!({
        "profile": micromoment::ids::hex128_string(&link.profile),
        "id": micromoment::ids::hex128_string(&link.id),
        "issued_at": micromoment::time::rfc3339(link.issued_at),
        "expires_at": micromoment::time::rfc3339(link.expires_at),
        "campaign": link.campaign,
    })
}

/// A profile id: 32 hexadecimal digits, never all zeros (no person has that id).
fn profile_arg(text: &str) -> Result<[u8; 16], Failure> {
    let id = super::id_arg("profile", Some(text))?;
    if id == [0; 16] {
        return Err(Failure::Usage(
            "--profile: the all-zero id is not a profile".into(),
        ));
    }
    Ok(id)
}

pub(crate) fn run(cmd: TokenCmd) -> Outcome {
    match cmd {
        TokenCmd::Mint {
            keys,
            stage,
            bundle,
            segments,
            profile,
            visitor,
            ttl,
            now,
        } => {
            let keys = load_keys(&keys)?;
            let now = super::now_arg(now.as_deref())?;
            let ttl = super::duration_arg("ttl", &ttl)?;
            let visitor = super::id_arg("visitor", visitor.as_deref())?;
            check_segments(&segments)?;
            let mut state = State::new_visitor(visitor, now, ttl);
            if let Some(profile) = profile {
                state.link = Some(token::Link {
                    profile: profile_arg(&profile)?,
                    seq: 0,
                    devices: 1,
                    linked_at: now,
                });
            }
            if let Some(stage) = stage {
                if stage.is_empty() {
                    return Err(Failure::Usage("--stage: the stage name is empty".into()));
                }
                match &bundle {
                    Some(path) => {
                        let bundle = super::bundle::load_bundle(path)?;
                        check_stage(&bundle, &stage)?;
                    }
                    None => eprintln!(
                        "note: --stage {stage:?} is not checked against a bundle (give --bundle to check it)"
                    ),
                }
                state.stage = Some(stable_id(IdKind::Stage, &stage));
            }
            state.segments = segments;
            let text = token::sign(&state, &keys)
                .map_err(|e| Failure::Usage(format!("cannot sign: {e}")))?;
            super::print_text(&format!("{text}\n"))
        }
        TokenCmd::Inspect {
            token,
            keys,
            now,
            bundle,
        } => {
            let keys = load_keys(&keys)?;
            let now = super::now_arg(now.as_deref())?;
            let bundle = bundle
                .as_deref()
                .map(super::bundle::load_bundle)
                .transpose()?;
            let text = token.strip_prefix("mm=").unwrap_or(&token);
            let state = token::verify(text, &keys, now)
                .map_err(|e| Failure::Findings(format!("token does not verify: {e}")))?;
            match &bundle {
                Some(bundle) => print_json(&micromoment::view::state_to_json(bundle, &state)),
                None => {
                    eprintln!("note: stages, contents, topics and experiments are stable ids (give --bundle to name them)");
                    print_json(&state.to_json())
                }
            }
        }
    }
}

/// An unknown stage of `bundle`, refused with a did-you-mean.
fn check_stage(bundle: &micromoment::Bundle, stage: &str) -> Outcome {
    if bundle.stage_names().any(|s| s == stage) {
        return Ok(());
    }
    let hint = micromoment::did_you_mean(stage, bundle.stage_names())
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default();
    Err(Failure::Usage(format!(
        "--stage: {stage:?} is not a stage of {} {}{hint}",
        bundle.id(),
        bundle.version()
    )))
}

fn load_keys(path: &std::path::Path) -> Result<Keys, Failure> {
    let bytes = read_file(path)?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| Failure::Usage(format!("{}: not utf-8", path.display())))?;
    Keys::from_json(text).map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))
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
