//! `micromoment rule eval`: how a marketer tries a targeting rule before it ships.
use clap::Subcommand;
use micromoment::rules::{compile, JsonData, JsonSchema, Limits};

use super::{parse_json_arg, print_json, Failure, Outcome};

#[derive(Subcommand)]
pub(crate) enum RuleCmd {
    /// Evaluate a JSON Logic rule against data and print the result as JSON.
    Eval {
        /// The rule, as JSON, e.g. '{"glob":[{"var":"page.path"},"/models/**"]}'.
        rule: String,
        /// The data the rule reads, as JSON (default: null).
        #[arg(long)]
        data: Option<String>,
    },
}

pub(crate) fn run(cmd: RuleCmd) -> Outcome {
    match cmd {
        RuleCmd::Eval { rule, data } => {
            let rule = parse_json_arg("the rule", &rule)?;
            let data = match data {
                Some(text) => parse_json_arg("--data", &text)?,
                None => serde_json::Value::Null,
            };
            let compiled = compile(&rule, &JsonSchema, Limits::default())
                .map_err(|e| Failure::Usage(format!("the rule does not compile: {e}")))?;
            match compiled.eval(&JsonData::new(&data)) {
                Ok(value) => print_json(&value.to_json()),
                Err(out_of_fuel) => Err(Failure::Findings(format!("error: {out_of_fuel}"))),
            }
        }
    }
}
