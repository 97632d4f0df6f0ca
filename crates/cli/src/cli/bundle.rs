//! `validate`, `compile`, `inspect`, `simulate`, `schema` and `keygen ed25519`.
use std::path::{Path, PathBuf};

use clap::Args;
use micromoment::bundle::{self, public_key_of, SigningKey};
use micromoment::token::Keys;
use micromoment::view::state_from_json;
use micromoment::{session, Budget, Bundle, Context};
use serde_json::json;

use super::{print_json, read_file, Failure, Outcome};

#[derive(Args)]
pub(crate) struct ValidateArgs {
    /// The bundle, as authoring JSON.
    pub bundle: PathBuf,
}

#[derive(Args)]
pub(crate) struct CompileArgs {
    /// The bundle, as authoring JSON.
    pub bundle: PathBuf,
    /// Where to write the compiled `.mmb`.
    #[arg(short, long)]
    pub output: PathBuf,
    /// An Ed25519 signing key file (from `keygen ed25519`).
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// A compiled `.mmb`.
    pub file: PathBuf,
    /// A public key file; the signature must verify under it.
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct SimulateArgs {
    /// The bundle: authoring JSON or compiled `.mmb`.
    pub bundle: PathBuf,
    /// Slots to decide, comma-separated (default: every slot).
    #[arg(long, value_delimiter = ',')]
    pub slots: Vec<String>,
    /// The request context, a CTX.json file.
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// The visitor's journey token.
    #[arg(long)]
    pub token: Option<String>,
    /// The JOURNEY_KEYS document to verify and sign tokens with.
    #[arg(long)]
    pub keys: Option<PathBuf>,
    /// The visitor's state by names (as `simulate` prints it), instead of a token.
    #[arg(long, conflicts_with = "token")]
    pub state: Option<PathBuf>,
    /// This request's app event.
    #[arg(long)]
    pub event: Option<String>,
    /// The clock, RFC 3339 (default: now).
    #[arg(long)]
    pub now: Option<String>,
    /// The visitor id for a new visitor, 32 hex digits (default: random).
    #[arg(long)]
    pub visitor: Option<String>,
    /// Add the trace: every candidate and why it was kept or skipped.
    #[arg(long)]
    pub explain: bool,
}

fn read_text(path: &Path) -> Result<String, Failure> {
    String::from_utf8(read_file(path)?)
        .map_err(|_| Failure::Usage(format!("{} is not UTF-8", path.display())))
}

fn report_diagnostics(path: &Path, diagnostics: &[micromoment::Diagnostic]) -> Failure {
    let lines: Vec<String> = diagnostics
        .iter()
        .map(|d| format!("{}:{d}", path.display()))
        .collect();
    let noun = if diagnostics.len() == 1 {
        "error"
    } else {
        "errors"
    };
    Failure::Findings(format!(
        "{}\n{} {noun} in {}",
        lines.join("\n"),
        diagnostics.len(),
        path.display()
    ))
}

/// Loads a bundle from authoring JSON or `.mmb`, whichever the bytes are.
pub(crate) fn load_bundle(path: &Path) -> Result<Bundle, Failure> {
    let bytes = read_file(path)?;
    if bytes.starts_with(bundle::MAGIC) {
        return Bundle::from_mmb(&bytes, None, &Budget::default())
            .map(|(b, _)| b)
            .map_err(|e| Failure::Findings(format!("{}: {e}", path.display())));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::Usage(format!("{} is not UTF-8", path.display())))?;
    bundle::compile(&text, Budget::default()).map_err(|d| report_diagnostics(path, &d))
}

pub(crate) fn validate(args: ValidateArgs) -> Outcome {
    let text = read_text(&args.bundle)?;
    match bundle::compile(&text, Budget::default()) {
        Ok(b) => {
            encoded(&args.bundle, &b, None)?;
            eprintln!("{}: ok ({} {})", args.bundle.display(), b.id(), b.version());
            Ok(())
        }
        Err(d) => Err(report_diagnostics(&args.bundle, &d)),
    }
}

/// The `.mmb` of a compiled bundle, checked as the edge will load it: within the byte
/// budget and, decoded, within the decoded-size budget.
fn encoded(path: &Path, bundle: &Bundle, key: Option<&SigningKey>) -> Result<Vec<u8>, Failure> {
    let bytes = bundle
        .to_mmb(key)
        .map_err(|e| Failure::Usage(format!("cannot encode the bundle: {e}")))?;
    let budget = Budget::default();
    if bytes.len() > budget.max_bundle_bytes {
        return Err(Failure::Findings(format!(
            "{}: compiled bundle is {} bytes, over the budget of {} (max_bundle_bytes)",
            path.display(),
            bytes.len(),
            budget.max_bundle_bytes
        )));
    }
    Bundle::from_mmb(&bytes, None, &budget).map_err(|e| {
        Failure::Findings(format!("{}: the edge would refuse it: {e}", path.display()))
    })?;
    Ok(bytes)
}

pub(crate) fn compile(args: CompileArgs) -> Outcome {
    let text = read_text(&args.bundle)?;
    let bundle = bundle::compile(&text, Budget::default())
        .map_err(|d| report_diagnostics(&args.bundle, &d))?;
    let key = match &args.sign_key {
        Some(path) => Some(
            SigningKey::from_base64(&read_text(path)?)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let bytes = encoded(&args.bundle, &bundle, key.as_ref())?;
    let budget = Budget::default();
    std::fs::write(&args.output, &bytes)
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", args.output.display())))?;
    let header = Bundle::read_header(&bytes, &budget).map_err(|e| Failure::Usage(e.to_string()))?;
    eprintln!(
        "{}: {} {} -> {} ({} bytes, {})",
        args.bundle.display(),
        header.id,
        header.version,
        args.output.display(),
        header.total_bytes,
        if header.signed { "signed" } else { "unsigned" }
    );
    print_json(
        &json!({"id": header.id, "version": header.version, "hash": header.hash,
        "bytes": header.total_bytes, "signed": header.signed, "output": args.output.display().to_string()}),
    )
}

pub(crate) fn inspect(args: InspectArgs) -> Outcome {
    let bytes = read_file(&args.file)?;
    let budget = Budget::default();
    let pubkey = match &args.pubkey {
        Some(path) => Some(
            public_key_of(&read_text(path)?)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let (bundle, header) = Bundle::from_mmb(&bytes, pubkey.as_ref(), &budget)
        .map_err(|e| Failure::Findings(format!("{}: {e}", args.file.display())))?;
    let signature = match (header.signed, pubkey.is_some()) {
        (true, true) => "valid",
        (true, false) => "present, not checked (no --pubkey)",
        (false, _) => "none",
    };
    let percent = |used: usize, limit: usize| (used as f64 * 1000.0 / limit as f64).round() / 10.0;
    let counts = bundle.counts();
    print_json(&json!({
        "id": header.id,
        "version": header.version,
        "hash": header.hash,
        "format_version": bundle::FORMAT_VERSION,
        "sizes": {"total_bytes": header.total_bytes, "payload_bytes": header.payload_bytes, "decoded_bytes": header.decoded_bytes},
        "counts": counts,
        "signature": signature,
        "budget": {
            "bundle_bytes": {"used": header.total_bytes, "limit": budget.max_bundle_bytes, "percent": percent(header.total_bytes, budget.max_bundle_bytes)},
            "decoded_bytes": {"used": header.decoded_bytes, "limit": budget.max_decoded_bytes, "percent": percent(header.decoded_bytes, budget.max_decoded_bytes)},
            "candidates": {"used": counts.candidates, "limit": budget.max_candidates, "percent": percent(counts.candidates, budget.max_candidates)},
            "contents": {"used": counts.contents, "limit": budget.max_contents, "percent": percent(counts.contents, budget.max_contents)},
            "slots": {"used": counts.slots, "limit": budget.max_slots, "percent": percent(counts.slots, budget.max_slots)},
            "stages": {"used": counts.stages, "limit": budget.max_stages, "percent": percent(counts.stages, budget.max_stages)},
        },
    }))
}

pub(crate) fn schema() -> Outcome {
    let value = bundle::schema().map_err(|e| Failure::Usage(format!("built-in schema: {e}")))?;
    print_json(&value)
}

pub(crate) fn keygen_ed25519(dir: &Path) -> Outcome {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| Failure::Usage(format!("no system entropy: {e}")))?;
    let key = bundle::keygen(seed);
    std::fs::create_dir_all(dir)
        .map_err(|e| Failure::Usage(format!("cannot create {}: {e}", dir.display())))?;
    let private = dir.join("bundle-signing.key");
    let public = dir.join("bundle-signing.pub");
    write_private(&private, &key.to_base64())?;
    std::fs::write(&public, format!("{}\n", key.public_base64()))
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", public.display())))?;
    eprintln!(
        "wrote {} (keep secret) and {}; set BUNDLE_PUBKEY={} on the worker",
        private.display(),
        public.display(),
        key.public_base64()
    );
    print_json(
        &json!({"private_key": private.display().to_string(), "public_key": public.display().to_string(),
        "public_key_base64": key.public_base64()}),
    )
}

fn write_private(path: &Path, contents: &str) -> Outcome {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
    writeln!(file, "{contents}")
        .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))
}

pub(crate) fn simulate(args: SimulateArgs) -> Outcome {
    let bundle = load_bundle(&args.bundle)?;
    let context: Context = match &args.context {
        Some(path) => serde_json::from_slice(&read_file(path)?).map_err(|e| {
            Failure::Usage(format!("{}: not a request context: {e}", path.display()))
        })?,
        None => Context::default(),
    };
    let now = super::now_arg(args.now.as_deref())?;
    let visitor = super::id_arg("visitor", args.visitor.as_deref())?;
    let keys = match &args.keys {
        Some(path) => Some(
            Keys::from_json(&read_text(path)?)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
        ),
        None => None,
    };
    let named = match &args.state {
        Some(path) => {
            let json: serde_json::Value = serde_json::from_slice(&read_file(path)?)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
            Some(
                state_from_json(&bundle, &json, visitor)
                    .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
            )
        }
        None => None,
    };
    let who = match (&named, &args.token, &keys) {
        (Some(state), _, _) => session::Visitor::State(state),
        (None, Some(_), None) => {
            return Err(Failure::Usage("--token needs --keys to verify it".into()))
        }
        (None, Some(token), Some(_)) => session::Visitor::Token(token),
        (None, None, _) => session::Visitor::New,
    };
    let names: Vec<&str> = args.slots.iter().map(String::as_str).collect();
    let request = session::Request {
        event: args.event.as_deref(),
        slots: if names.is_empty() {
            session::Slots::All
        } else {
            session::Slots::Names(&names)
        },
        mode: if args.explain {
            session::Mode::Explain
        } else {
            session::Mode::Serve
        },
        ..session::Request::new(who, &context, now, session::Entropy::Fixed(visitor))
    };
    let outcome = session::decide(&bundle, keys.as_ref(), &request)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(e) = &outcome.token_rejected {
        // The CLI may say why; the edge never does.
        eprintln!("token not accepted ({e}): deciding for a new visitor");
    }
    print_json(&session::answer(&bundle, &outcome, session::Shape::Full))
}

/// Where `publish` and `rollback` write: the Worker's KV namespace, through wrangler.
#[derive(Args)]
pub(crate) struct KvArgs {
    /// Write to the local KV of `wrangler dev` instead of Cloudflare.
    #[arg(long)]
    pub local: bool,
    /// The local state folder `wrangler dev` was started with (`--persist-to`).
    #[arg(long, requires = "local")]
    pub persist_to: Option<PathBuf>,
    /// The KV binding in wrangler.toml.
    #[arg(long, default_value = "BUNDLES")]
    pub binding: String,
    /// The wrangler to run (default: node_modules/.bin/wrangler, else `npx wrangler`).
    #[arg(long, env = "MM_WRANGLER")]
    pub wrangler: Option<PathBuf>,
}

impl KvArgs {
    /// Runs `wrangler kv key <verb> <args…>` on the namespace; its standard output.
    fn run(&self, verb: &str, args: &[String]) -> Result<String, Failure> {
        let (program, mut command): (PathBuf, Vec<String>) = match &self.wrangler {
            Some(path) => (path.clone(), Vec::new()),
            None if Path::new("node_modules/.bin/wrangler").exists() => {
                ("node_modules/.bin/wrangler".into(), Vec::new())
            }
            None => ("npx".into(), vec!["wrangler".into()]),
        };
        command.extend(["kv".into(), "key".into(), verb.into()]);
        command.extend(args.iter().cloned());
        command.extend(["--binding".to_owned(), self.binding.clone()]);
        command.push(if self.local { "--local" } else { "--remote" }.into());
        if let Some(dir) = &self.persist_to {
            command.extend(["--persist-to".into(), dir.display().to_string()]);
        }
        let output = std::process::Command::new(&program)
            .args(&command)
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .map_err(|e| Failure::Usage(format!("cannot run {}: {e}", program.display())))?;
        if !output.status.success() {
            return Err(Failure::Usage(format!(
                "{} {} failed ({})",
                program.display(),
                command.join(" "),
                output.status
            )));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Writes `key` = `value`.
    fn put(&self, key: &str, value: &str) -> Result<(), Failure> {
        self.run("put", &[key.to_owned(), value.to_owned()])
            .map(drop)
    }

    /// Writes `key` = the file's bytes.
    fn put_file(&self, key: &str, file: &Path) -> Result<(), Failure> {
        self.run(
            "put",
            &[key.to_owned(), "--path".into(), file.display().to_string()],
        )
        .map(drop)
    }

    fn place(&self) -> &'static str {
        if self.local {
            "local"
        } else {
            "remote"
        }
    }
}

/// The KV key that remembers which bundle was published as a version of an id, so that
/// `rollback` (and the studio) can serve it again: `version:<id>:<version>` = hash.
pub(crate) fn version_key(id: &str, version: u64) -> String {
    format!("version:{id}:{version}")
}

#[derive(Args)]
pub(crate) struct PublishArgs {
    /// A compiled `.mmb`.
    pub file: PathBuf,
    #[command(flatten)]
    pub kv: KvArgs,
    /// The public key the edge verifies bundles with (default: `BUNDLE_PUBKEY` in
    /// the `[vars]` of --config).
    #[arg(long)]
    pub pubkey: Option<PathBuf>,
    /// The Worker's wrangler.toml, read for `BUNDLE_PUBKEY`.
    #[arg(long, default_value = "wrangler.toml")]
    pub config: PathBuf,
}

/// `BUNDLE_PUBKEY` from a wrangler.toml's `[vars]`, when it sets one.
fn configured_pubkey(config: &Path) -> Option<String> {
    let text = std::fs::read_to_string(config).ok()?;
    let mut in_vars = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_vars = line == "[vars]";
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        if in_vars && key.trim() == "BUNDLE_PUBKEY" {
            let value = value
                .split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            return (!value.is_empty()).then(|| value.to_owned());
        }
    }
    None
}

/// Writes `bundle:<hash>`, the version's record, and then `current` through wrangler, so
/// an edge that reads the new `current` always finds its bundle.
pub(crate) fn publish(args: PublishArgs) -> Outcome {
    let bytes = read_file(&args.file)?;
    // The edge refuses what it cannot verify, silently for visitors: say so here, where
    // a person is reading.
    let key_text = match &args.pubkey {
        Some(path) => Some(read_text(path)?),
        None => configured_pubkey(&args.config),
    };
    let key = key_text
        .map(|text| public_key_of(&text).map_err(|e| Failure::Usage(format!("BUNDLE_PUBKEY: {e}"))))
        .transpose()?;
    let (bundle, header) = Bundle::from_mmb(&bytes, key.as_ref(), &Budget::default())
        .map_err(|e| {
            let why = if key.is_some() {
                " (the edge verifies bundles with BUNDLE_PUBKEY and would refuse it; compile with --sign-key)"
            } else {
                ""
            };
            Failure::Findings(format!("{}: {e}{why}", args.file.display()))
        })?;
    if key.is_none() && !args.kv.local {
        eprintln!(
            "warning: no BUNDLE_PUBKEY in {} or --pubkey: the edge refuses KV bundles outside development until it is set",
            args.config.display()
        );
    }
    let key = format!("bundle:{}", header.hash);
    args.kv.put_file(&key, &args.file)?;
    args.kv
        .put(&version_key(bundle.id(), bundle.version()), &header.hash)?;
    // The highest version of the id ever published: the edge refuses anything older
    // without a rollback record, in every isolate.
    let latest_key = micromoment::bundle::latest_key(bundle.id());
    let latest = args.kv.run("get", std::slice::from_ref(&latest_key))?;
    match latest.trim().parse::<u64>() {
        Ok(latest) if latest > bundle.version() => eprintln!(
            "warning: {} {} is older than {} {latest}, published before: the edge refuses it as a downgrade; serve it again with `micromoment rollback --id {} --to {}`",
            bundle.id(),
            bundle.version(),
            bundle.id(),
            bundle.id(),
            bundle.version()
        ),
        _ => args.kv.put(&latest_key, &bundle.version().to_string())?,
    }
    args.kv.put("current", &header.hash)?;
    eprintln!(
        "published {} {} as {key} and current ({})",
        bundle.id(),
        bundle.version(),
        args.kv.place()
    );
    print_json(
        &json!({"id": header.id, "version": header.version, "hash": header.hash, "key": key, "local": args.kv.local}),
    )
}

#[derive(Args)]
pub(crate) struct RollbackArgs {
    /// The bundle id (as in the bundle's `id`).
    #[arg(long)]
    pub id: String,
    /// The published version to serve again.
    #[arg(long)]
    pub to: u64,
    /// The bundle-signing key (`micromoment keygen ed25519`) that signs the rollback
    /// record: an edge with `BUNDLE_PUBKEY` refuses an older version without one.
    #[arg(long)]
    pub sign_key: Option<PathBuf>,
    #[command(flatten)]
    pub kv: KvArgs,
}

/// Serves a version published before again: `current` set to the hash its publish
/// recorded, after checking that bundle is still in KV.
pub(crate) fn rollback(args: RollbackArgs) -> Outcome {
    let record = version_key(&args.id, args.to);
    // wrangler answers a missing key with this line, and success.
    let found = |value: &str| value.trim() != "Value not found";
    let hash = args.kv.run("get", std::slice::from_ref(&record))?;
    if !found(&hash) {
        return Err(Failure::Findings(format!(
            "{} {} was never published here ({record} is not in KV)",
            args.id, args.to
        )));
    }
    let hash = hash.trim().to_owned();
    if hash.is_empty() || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Failure::Findings(format!("{record} holds no bundle hash")));
    }
    let bundle = format!("bundle:{hash}");
    if !found(&args.kv.run("get", std::slice::from_ref(&bundle))?) {
        return Err(Failure::Findings(format!(
            "{bundle} ({} {}) is no longer in KV",
            args.id, args.to
        )));
    }
    // The record first, so that an edge that reads the new `current` finds it.
    let key = match &args.sign_key {
        Some(path) => Some(
            SigningKey::from_base64(&read_text(path)?)
                .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?,
        ),
        None => {
            eprintln!("warning: no --sign-key: the rollback record is unsigned, which only an edge without BUNDLE_PUBKEY (development) takes");
            None
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let latest = args
        .kv
        .run("get", &[micromoment::bundle::latest_key(&args.id)])?
        .trim()
        .parse::<u64>()
        .unwrap_or(args.to);
    let record = micromoment::bundle::RollbackRecord::new(
        &args.id,
        args.to,
        &hash,
        latest.max(args.to),
        now,
        key.as_ref(),
    );
    args.kv
        .put(&micromoment::bundle::rollback_key(&hash), &record.to_json())?;
    args.kv.put("current", &hash)?;
    eprintln!(
        "rolled back {} to version {} ({bundle}, {})",
        args.id,
        args.to,
        args.kv.place()
    );
    print_json(&json!({"id": args.id, "version": args.to, "hash": hash, "local": args.kv.local}))
}

#[derive(Args)]
pub(crate) struct ReportArgs {
    /// The bundle: authoring JSON or compiled `.mmb`.
    pub bundle: PathBuf,
    /// Where to write the HTML report (or the JSON one with --json).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Write the report as JSON (to --output, or stdout) for CI pipelines.
    #[arg(long)]
    pub json: bool,
    /// Exit 1 when a candidate is unreachable, a slot only shows its default, or a
    /// trigger fires at no moment of the grid.
    #[arg(long)]
    pub strict: bool,
    /// The clock the grid is decided at, RFC 3339 (default: now).
    #[arg(long)]
    pub now: Option<String>,
}

/// Runs the engine over the bundle's grid of audiences and writes the coverage report.
pub(crate) fn report(args: ReportArgs) -> Outcome {
    let bundle = load_bundle(&args.bundle)?;
    let now = super::now_arg(args.now.as_deref())?;
    let bytes = bundle
        .to_mmb(None)
        .map_err(|e| Failure::Usage(format!("cannot encode the bundle: {e}")))?;
    let header = Bundle::read_header(&bytes, &Budget::default())
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let report = micromoment_cli::report::build(&bundle, &header.hash, bytes.len(), now);
    let text = if args.json {
        serde_json::to_string_pretty(&report).map_err(|e| Failure::Usage(e.to_string()))? + "\n"
    } else {
        micromoment_cli::report::html(&report)
    };
    match &args.output {
        Some(path) => {
            std::fs::write(path, &text)
                .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
            eprintln!(
                "{}: {} contexts, {} unreachable candidates, {} default-only slots, {} contents never shown -> {} ({} bytes)",
                args.bundle.display(),
                report.contexts,
                report.unreachable.len(),
                report.default_only.len(),
                report.never_shown.len(),
                path.display(),
                text.len()
            );
        }
        None if args.json => super::print_text(&text)?,
        None => return Err(Failure::Usage("an HTML report needs -o FILE".into())),
    }
    if args.strict && report.has_findings() {
        let names: Vec<String> = report
            .unreachable
            .iter()
            .map(|u| format!("unreachable: {} in {} ({})", u.candidate, u.slot, u.why))
            .chain(
                report
                    .default_only
                    .iter()
                    .map(|s| format!("slot {s} only shows its default")),
            )
            .chain(
                report
                    .triggers
                    .iter()
                    .filter(|t| t.audiences == 0)
                    .map(|t| format!("trigger {} fires at no moment of the grid", t.trigger)),
            )
            .collect();
        return Err(Failure::Findings(names.join("\n")));
    }
    Ok(())
}
