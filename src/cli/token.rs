//! `micromoment keygen` and `micromoment token`.
use clap::Subcommand;

use super::{Failure, Outcome};

#[derive(Subcommand)]
pub(crate) enum KeygenCmd {
    /// Print a new JOURNEY_KEYS document.
    Hmac,
}

#[derive(Subcommand)]
pub(crate) enum TokenCmd {
    /// Print a new token.
    Mint,
}

pub(crate) fn run_keygen(_cmd: KeygenCmd) -> Outcome {
    Err(Failure::Usage(
        "scaffold: the token codec lands next".into(),
    ))
}

pub(crate) fn run(_cmd: TokenCmd) -> Outcome {
    Err(Failure::Usage(
        "scaffold: the token codec lands next".into(),
    ))
}
