//! `analyze` and `analyze-generate`: experiment results and attribution from the
//! Worker's exposure and conversion logs (docs/results.md), and simulated logs to try it on.
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use micromoment_cli::analyze::{self, generate, Analysis, Input, Window, DEFAULT_DATASET};

use super::bundle::load_bundle;
use super::{Failure, Outcome};

#[derive(Args)]
pub(crate) struct AnalyzeArgs {
    /// NDJSON log files (exposure and conversion lines); `-` or none reads stdin.
    pub logs: Vec<PathBuf>,
    /// The bundle the experiments and goals come from (authoring JSON or `.mmb`).
    #[arg(long)]
    pub bundle: PathBuf,
    /// How long after an exposure a conversion counts: 30m, 12h, 7d, 2w or lifetime.
    #[arg(long, default_value = "7d")]
    pub window: String,
    /// Print the results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Write the results page (self-contained HTML) to this file.
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Read sufficient statistics (the `--sql` queries' answers) instead of logs.
    #[arg(long, conflicts_with = "logs")]
    pub aggregates: Vec<PathBuf>,
    /// Print the Analytics Engine SQL that computes the sufficient statistics.
    #[arg(long, conflicts_with_all = ["logs", "aggregates", "json", "output"])]
    pub sql: bool,
    /// The Analytics Engine dataset the SQL reads.
    #[arg(long, default_value = DEFAULT_DATASET, requires = "sql")]
    pub dataset: String,
}

fn io_error(what: &Path, e: &std::io::Error) -> Failure {
    Failure::Usage(format!("cannot read {}: {e}", what.display()))
}

fn open(path: &Path) -> Result<Box<dyn BufRead>, Failure> {
    if path == Path::new("-") {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let file = std::fs::File::open(path).map_err(|e| io_error(path, &e))?;
    Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
}

/// What was read and skipped, for stderr.
fn describe(input: &Input) -> String {
    let mut text = format!(
        "read {} lines: {} exposures, {} conversions, {} skipped",
        input.lines,
        input.exposures,
        input.conversions,
        input.skipped_total()
    );
    if !input.skipped.is_empty() {
        let reasons: Vec<String> = input
            .skipped
            .iter()
            .map(|(skip, n)| format!("{n} {}", skip.text()))
            .collect();
        text.push_str(&format!(" ({})", reasons.join(", ")));
    }
    for (n, what) in [
        (
            input.unknown_experiments,
            "exposures name an experiment the bundle does not have",
        ),
        (
            input.unknown_variants,
            "exposures name a variant their experiment does not have",
        ),
        (
            input.dropped_touches,
            "exposures dropped: over the per-person limit",
        ),
    ] {
        if n > 0 {
            text.push_str(&format!("\n{n} {what}"));
        }
    }
    text
}

pub(crate) fn analyze(args: AnalyzeArgs) -> Outcome {
    let bundle = load_bundle(&args.bundle)?;
    let window = Window::parse(&args.window).map_err(|e| Failure::Usage(e.to_string()))?;
    if args.sql {
        print!("{}", analyze::sql(&bundle, &window, &args.dataset));
        return Ok(());
    }
    if bundle.goals().next().is_none() {
        eprintln!(
            "{}: the bundle declares no goals: nothing counts as a conversion",
            args.bundle.display()
        );
    }
    let data = if args.aggregates.is_empty() {
        let mut analysis = Analysis::new(&bundle);
        let stdin = [PathBuf::from("-")];
        let logs = if args.logs.is_empty() {
            &stdin[..]
        } else {
            &args.logs[..]
        };
        for path in logs {
            analysis.read(open(path)?).map_err(|e| io_error(path, &e))?;
        }
        eprintln!("{}", describe(analysis.input()));
        analysis.finish(&window)
    } else {
        let mut all: Option<analyze::Sufficient> = None;
        for path in &args.aggregates {
            let data = analyze::read_aggregates(&bundle, open(path)?)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            all = Some(match all {
                None => data,
                Some(mut sum) => {
                    sum.merge(data);
                    sum
                }
            });
        }
        let data = all.ok_or_else(|| Failure::Usage("--aggregates needs a file".into()))?;
        if data.input.paths_without_ages > 0 {
            eprintln!(
                "{} path rows carry no time_decay shares: under time_decay their conversions are shared equally",
                data.input.paths_without_ages
            );
        }
        data
    };
    let report = analyze::results(&bundle, &data, &window);
    for line in analyze::summary(&report) {
        eprintln!("{line}");
    }
    if let Some(path) = &args.output {
        let page = analyze::html(&report, bundle.id());
        std::fs::write(path, &page)
            .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("wrote {} ({} bytes)", path.display(), page.len());
    }
    if args.json {
        let value = serde_json::to_value(&report)
            .map_err(|e| Failure::Usage(format!("cannot encode the results: {e}")))?;
        super::print_json(&value)?;
    }
    Ok(())
}

#[derive(Args)]
pub(crate) struct GenerateArgs {
    /// The bundle whose engine the simulated people meet (authoring JSON or `.mmb`).
    #[arg(long)]
    pub bundle: PathBuf,
    /// People to simulate.
    #[arg(long, default_value_t = 10_000)]
    pub people: usize,
    /// The seed: the same arguments and seed give the same lines.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The experiment with the planted effect (default: the bundle's first).
    #[arg(long)]
    pub experiment: Option<String>,
    /// The goal with the planted effect (default: the first goal with a value).
    #[arg(long)]
    pub goal: Option<String>,
    /// The control's chance to convert within five days of the first exposure.
    #[arg(long, default_value_t = 0.2)]
    pub base_rate: f64,
    /// Planted relative lifts of the conversion chance per arm (variants, then holdout).
    #[arg(long, value_delimiter = ',', default_value = "0,0.15,-0.1")]
    pub lifts: Vec<f64>,
    /// Planted relative lifts of a conversion's value per arm.
    #[arg(long, value_delimiter = ',', default_value = "0,0.05,0")]
    pub value_lifts: Vec<f64>,
    /// A planted sample-ratio mismatch, ARM:SHARE: that arm (0 = the control) loses
    /// this share of its people's experiment exposures.
    #[arg(long)]
    pub drop: Option<String>,
    /// The first possible visit, Unix seconds.
    #[arg(long, default_value_t = 1_790_000_000)]
    pub start: i64,
    /// Add a non-event log line after every this many lines.
    #[arg(long)]
    pub noise_every: Option<u64>,
    /// Where to write the lines (default: stdout).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
}

pub(crate) fn generate(args: GenerateArgs) -> Outcome {
    let bundle = load_bundle(&args.bundle)?;
    let drop = match &args.drop {
        None => None,
        Some(text) => {
            let parsed = text.split_once(':').and_then(|(arm, share)| {
                Some((arm.parse::<usize>().ok()?, share.parse::<f64>().ok()?))
            });
            match parsed {
                Some((arm, share)) if (0.0..=1.0).contains(&share) => Some((arm, share)),
                _ => {
                    return Err(Failure::Usage(format!(
                        "--drop \"{text}\" is not ARM:SHARE, such as 0:0.18"
                    )))
                }
            }
        }
    };
    let plan = generate::Plan {
        seed: args.seed,
        people: args.people,
        start: args.start,
        experiment: args.experiment,
        goal: args.goal,
        base_rate: args.base_rate,
        lifts: args.lifts,
        value_lifts: args.value_lifts,
        drop,
        noise_every: args.noise_every,
        ..generate::Plan::default()
    };
    let sink: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(
            std::fs::File::create(path)
                .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = BufWriter::with_capacity(1 << 16, sink);
    let mut failed: Option<std::io::Error> = None;
    let truth = generate::generate(&bundle, &plan, |line| {
        if failed.is_none() {
            if let Err(e) = out
                .write_all(line.as_bytes())
                .and_then(|()| out.write_all(b"\n"))
            {
                failed = Some(e);
            }
        }
    })
    .map_err(|e| Failure::Usage(e.to_string()))?;
    let flushed = out.flush();
    if let Some(e) = failed.or(flushed.err()) {
        return Err(Failure::Usage(format!("cannot write the lines: {e}")));
    }
    eprintln!(
        "{}",
        serde_json::json!({"experiment": truth.experiment, "goal": truth.goal, "arms": truth.arms,
            "rates": truth.rates, "lifts": truth.lifts, "value_lifts": truth.value_lifts,
            "exposed": truth.exposed, "lines": truth.lines})
    );
    Ok(())
}
