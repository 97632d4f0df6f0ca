//! Argument parsing and dispatch. Exit codes follow ripgrep: 0 ok, 1 findings (an
//! invalid bundle, a token that does not verify), 2 usage or I/O error. Machine-readable
//! JSON goes to stdout, human text to stderr.

mod analyze;
mod bundle;
mod feed;
mod rule;
mod token;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "micromoment",
    version,
    about = "Journey-aware personalization at the edge: rules, bundles, tokens",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Work with targeting rules (JSON Logic).
    #[command(subcommand)]
    Rule(rule::RuleCmd),
    /// Generate keys: a JOURNEY_KEYS document (hmac) or a bundle-signing pair (ed25519).
    #[command(subcommand)]
    Keygen(token::KeygenCmd),
    /// Mint and inspect journey tokens.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Mint and inspect identity links, which join a device to a person's profile.
    #[command(subcommand)]
    Link(token::LinkCmd),
    /// Check a bundle: every error with its path, line:column and a did-you-mean.
    Validate(bundle::ValidateArgs),
    /// Validate, compile and optionally sign a bundle into a `.mmb` for the edge.
    Compile(bundle::CompileArgs),
    /// Show a compiled bundle's id, version, hash, sizes, counts, signature and budget use.
    Inspect(bundle::InspectArgs),
    /// Decide for one request, exactly as the edge would, and print the decision.
    Simulate(bundle::SimulateArgs),
    /// Print the JSON Schema of the bundle authoring format.
    Schema,
    /// Publish a compiled bundle to the Worker's KV namespace through wrangler.
    Publish(bundle::PublishArgs),
    /// Serve a version published before again (its bundle is still in KV).
    Rollback(bundle::RollbackArgs),
    /// Write the coverage report: what each stage × device × channel sees, per slot.
    Report(bundle::ReportArgs),
    /// Live data at the edge: push a feed's rows (stock, stores) to the Worker.
    #[command(subcommand)]
    Feed(feed::FeedCmd),
    /// Experiment results and attribution from exposure and conversion logs.
    Analyze(analyze::AnalyzeArgs),
    /// Simulated logs through the real engine, with a planted effect, for `analyze`.
    AnalyzeGenerate(analyze::GenerateArgs),
}

/// How a command failed, which decides the exit code.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The input was read and judged: an invalid bundle, a token that does not verify.
    Findings(String),
    /// Bad arguments, unreadable files, malformed JSON: the command could not do its job.
    Usage(String),
    /// Whoever reads stdout stopped reading (`micromoment … | head`): not a failure,
    /// there is just nobody left to tell (ripgrep exits 0 too).
    ClosedPipe,
}

pub(crate) type Outcome = Result<(), Failure>;

pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version itself; both are a success.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Rule(cmd) => rule::run(cmd),
        Command::Keygen(cmd) => token::run_keygen(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Link(cmd) => token::run_link(cmd),
        Command::Validate(args) => bundle::validate(args),
        Command::Compile(args) => bundle::compile(args),
        Command::Inspect(args) => bundle::inspect(args),
        Command::Simulate(args) => bundle::simulate(args),
        Command::Schema => bundle::schema(),
        Command::Publish(args) => bundle::publish(args),
        Command::Rollback(args) => bundle::rollback(args),
        Command::Report(args) => bundle::report(args),
        Command::Feed(cmd) => feed::run(cmd),
        Command::Analyze(args) => analyze::analyze(args),
        Command::AnalyzeGenerate(args) => analyze::generate(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Findings(msg)) => {
            eprintln!("{msg}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::ClosedPipe) => ExitCode::SUCCESS,
    }
}

/// Why a write to stdout failed: a closed pipe is the reader's choice, anything else an
/// I/O error.
fn stdout_failure(e: &std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Failure::ClosedPipe
    } else {
        Failure::Usage(format!("cannot write to stdout: {e}"))
    }
}

/// Writes text to stdout as it is.
pub(crate) fn print_text(text: &str) -> Outcome {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| stdout_failure(&e))
}

/// Writes one JSON value and a newline to stdout.
pub(crate) fn print_json(value: &serde_json::Value) -> Outcome {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Usage(format!("cannot write JSON: {e}")))?;
    text.push('\n');
    print_text(&text)
}

/// Reads a whole file, naming it in the error.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
}

/// Parses a JSON argument given inline, naming the argument in the error.
pub(crate) fn parse_json_arg(what: &str, text: &str) -> Result<serde_json::Value, Failure> {
    serde_json::from_str(text).map_err(|e| Failure::Usage(format!("{what} is not valid JSON: {e}")))
}

/// The clock of a command: `--now` (RFC 3339) or the system clock. The CLI is the one
/// place here that reads the clock; the library takes `now` as a parameter.
pub(crate) fn now_arg(now: Option<&str>) -> Result<micromoment::time::UnixSeconds, Failure> {
    match now {
        Some(text) => micromoment::time::parse_rfc3339(text)
            .map_err(|e| Failure::Usage(format!("--now: {e}"))),
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .map_err(|_| Failure::Usage("the system clock is before 1970".into())),
    }
}

/// A 128-bit id given as `--<flag> HEX32`, or fresh entropy when absent.
pub(crate) fn id_arg(flag: &str, text: Option<&str>) -> Result<[u8; 16], Failure> {
    match text {
        Some(text) => micromoment::ids::parse_hex128(text)
            .map_err(|e| Failure::Usage(format!("--{flag}: {e}"))),
        None => {
            let mut id = [0u8; 16];
            getrandom::fill(&mut id)
                .map_err(|e| Failure::Usage(format!("cannot read random bytes: {e}")))?;
            Ok(id)
        }
    }
}

/// A duration given as `--<flag> 30m|12h|7d|2w`, in seconds: a period as caps spell it
/// (`bundle::Period`), but never `lifetime`.
pub(crate) fn duration_arg(flag: &str, text: &str) -> Result<i64, Failure> {
    match micromoment::bundle::Period::parse(text) {
        Some(micromoment::bundle::Period::Seconds(s)) => Ok(s),
        _ => Err(Failure::Usage(format!(
            "--{flag}: {text:?} is not a duration like 30m, 12h, 7d or 2w"
        ))),
    }
}
