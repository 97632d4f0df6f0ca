//! `micromoment rule eval`.
use clap::Subcommand;

use super::{Failure, Outcome};

#[derive(Subcommand)]
pub(crate) enum RuleCmd {
    /// Evaluate a JSON Logic rule against data and print the result as JSON.
    Eval {
        /// The rule, as JSON.
        rule: String,
        /// The data, as JSON.
        #[arg(long)]
        data: Option<String>,
    },
}

pub(crate) fn run(_cmd: RuleCmd) -> Outcome {
    Err(Failure::Usage(
        "scaffold: the rules engine lands next".into(),
    ))
}
