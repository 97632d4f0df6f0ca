//! `micromoment feed push FILE`: a feed's rows to the edge (docs/feeds.md). The file is
//! read in the shape it comes in (NDJSON, CSV with a header, Shopify's
//! `storeAvailability`, Google's local-inventory feed), checked against the feed's
//! declaration as the served bundle has it (`GET /v1/feeds/<name>`), and pushed in
//! parts: a full push is applied once every part is there (nothing half-written is
//! read), a delta at once. Every part carries an `Idempotency-Key` of the run and the
//! part, so a part sent twice within a run is applied once; running the command again
//! pushes again (a full push replaces the feed; a delta's rows are written again, which
//! changes nothing).

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value as Json};

use super::{print_json, read_file, Failure, Outcome};

#[derive(Subcommand)]
pub(crate) enum FeedCmd {
    /// Push a file of rows to a feed of the served bundle.
    Push(PushArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// From the file's extension and first bytes.
    Auto,
    /// One JSON object per line, with the feed's columns.
    Ndjson,
    /// Comma-separated, a header row naming the feed's columns.
    Csv,
    /// Shopify's product variants with `storeAvailability` (a GraphQL answer, or its
    /// list of variants): sku, store (the location's id), qty.
    Shopify,
    /// Google's local inventory feed (`store_code`, `id`, `quantity`, `availability`;
    /// tab- or comma-separated, or JSON lines): sku, store, qty.
    Google,
}

#[derive(Args)]
pub(crate) struct PushArgs {
    /// The file of rows.
    pub file: PathBuf,
    /// The feed's name in the bundle.
    #[arg(long)]
    pub feed: String,
    /// The Worker.
    #[arg(long, env = "MM_URL", default_value = "http://127.0.0.1:8787")]
    pub url: String,
    /// The backend API's bearer token (`MM_BACKEND_TOKEN`).
    #[arg(long, env = "MM_BACKEND_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The file's shape.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Apply the rows as changes (rows not in the file stay; `_delete` removes one),
    /// visible within seconds; without it the file replaces the feed.
    #[arg(long)]
    pub delta: bool,
    /// Rows per request.
    #[arg(long, default_value_t = 50_000)]
    pub part_rows: usize,
}

pub(crate) fn run(cmd: FeedCmd) -> Outcome {
    match cmd {
        FeedCmd::Push(args) => push(args),
    }
}

/// A feed's declaration as the edge serves it.
struct Declared {
    key: Vec<String>,
    fields: Vec<(String, String)>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn declared(args: &PushArgs) -> Result<Declared, Failure> {
    let url = format!("{}/v1/feeds/{}", args.url.trim_end_matches('/'), args.feed);
    let mut answer = agent()
        .get(&url)
        .header("Authorization", &format!("Bearer {}", args.token))
        .call()
        .map_err(|e| Failure::Usage(format!("{url}: {e}")))?;
    let status = answer.status().as_u16();
    let text = answer.body_mut().read_to_string().unwrap_or_default();
    let body: Json = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{url}: answered {status}, not JSON: {e}")))?;
    if status != 200 {
        return Err(Failure::Findings(format!(
            "{url}: {status}: {}",
            body.get("error")
                .unwrap_or(&Json::Null)
                .as_str()
                .unwrap_or("refused")
        )));
    }
    let key = body
        .get("key")
        .unwrap_or(&Json::Null)
        .as_array()
        .map(|k| {
            k.iter()
                .filter_map(|c| c.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let fields = body
        .get("fields")
        .unwrap_or(&Json::Null)
        .as_object()
        .map(|f| {
            f.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("string").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Declared { key, fields })
}

/// The rows of the file, each with the line of the file it came from.
fn rows(args: &PushArgs, text: &str, decl: &Declared) -> Result<Vec<(usize, Json)>, Failure> {
    let format = match args.format {
        Format::Auto => {
            let name = args.file.display().to_string().to_ascii_lowercase();
            if name.ends_with(".csv") || name.ends_with(".tsv") || name.ends_with(".txt") {
                if text
                    .lines()
                    .next()
                    .is_some_and(|h| h.contains("store_code"))
                {
                    Format::Google
                } else {
                    Format::Csv
                }
            } else if text.trim_start().starts_with('{') && text.contains("storeAvailability") {
                Format::Shopify
            } else if text.contains("\"store_code\"") || text.contains("\"storeCode\"") {
                Format::Google
            } else {
                Format::Ndjson
            }
        }
        other => other,
    };
    let bad = |line: usize, message: String| {
        Failure::Findings(format!("{}:{line}: {message}", args.file.display()))
    };
    match format {
        Format::Ndjson | Format::Auto => Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| {
                serde_json::from_str::<Json>(l)
                    .map(|v| (i + 1, v))
                    .map_err(|e| bad(i + 1, format!("not JSON: {e}")))
            })
            .collect::<Result<_, _>>()?),
        Format::Csv => {
            let mut out = Vec::new();
            for (line, cells) in table(text).map_err(|(line, m)| bad(line, m))? {
                let mut row = Map::new();
                for (name, value) in cells {
                    let value = typed(decl, &name, &value).map_err(|m| bad(line, m))?;
                    row.insert(name, value);
                }
                out.push((line, Json::Object(row)));
            }
            Ok(out)
        }
        Format::Shopify => shopify(text, decl)
            .map_err(|m| Failure::Findings(format!("{}: {m}", args.file.display()))),
        Format::Google => google(text, decl).map_err(|(line, m)| bad(line, m)),
    }
}

/// A record of a table: its line, and its (column, cell) pairs.
type Record = (usize, Vec<(String, String)>);

/// A CSV or TSV file with a header row, record by record; an unreadable one is its
/// line and why.
fn table(text: &str) -> Result<Vec<Record>, (usize, String)> {
    let tabs = text.lines().next().is_some_and(|h| h.contains('\t'));
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(if tabs { b'\t' } else { b',' })
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| (1, e.to_string()))?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            (usize::try_from(line).unwrap_or(0), e.to_string())
        })?;
        let line = usize::try_from(record.position().map_or(0, |p| p.line())).unwrap_or(0);
        let cells = header
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.clone(), v.to_owned()))
            .collect();
        out.push((line, cells));
    }
    Ok(out)
}

/// A CSV cell as the feed's declaration types it: an empty cell is null.
fn typed(decl: &Declared, column: &str, value: &str) -> Result<Json, String> {
    if decl.key.iter().any(|k| k == column) {
        return Ok(Json::String(value.to_owned()));
    }
    let kind = decl
        .fields
        .iter()
        .find(|(n, _)| n == column)
        .map(|(_, k)| k.as_str());
    let value = value.trim();
    if value.is_empty() {
        return Ok(Json::Null);
    }
    match kind {
        Some("number") => value
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .map(|n| json!(n))
            .ok_or_else(|| format!("`{column}` must be a number, not \"{value}\"")),
        Some("boolean") => match value.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(Json::Bool(true)),
            "false" | "0" | "no" => Ok(Json::Bool(false)),
            _ => Err(format!("`{column}` must be true or false, not \"{value}\"")),
        },
        // Unknown columns go as text: the edge names them in its refusal.
        _ => Ok(Json::String(value.to_owned())),
    }
}

/// Shopify's variants with `storeAvailability`: a GraphQL answer (`data.product.variants`
/// or `data.productVariants`), or the list of variants itself.
fn shopify(text: &str, decl: &Declared) -> Result<Vec<(usize, Json)>, String> {
    let doc: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let nodes = |v: &Json| -> Vec<Json> {
        match v {
            Json::Array(items) => items.clone(),
            Json::Object(o) => o
                .get("edges")
                .and_then(Json::as_array)
                .map(|e| e.iter().filter_map(|e| e.get("node").cloned()).collect())
                .or_else(|| o.get("nodes").and_then(Json::as_array).cloned())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    };
    let variants = if let Some(v) = doc.pointer("/data/product/variants") {
        nodes(v)
    } else if let Some(v) = doc.pointer("/data/productVariants") {
        nodes(v)
    } else {
        nodes(&doc)
    };
    let (sku_col, store_col) = match decl.key.as_slice() {
        [sku, store] => (sku.clone(), store.clone()),
        _ => ("sku".to_owned(), "store".to_owned()),
    };
    let mut out = Vec::new();
    let mut skipped = 0;
    for (n, variant) in variants.iter().enumerate() {
        // A variant without a SKU (Shopify allows it) cannot be looked up: left out.
        let Some(sku) = variant
            .get("sku")
            .and_then(Json::as_str)
            .filter(|s| !s.is_empty())
        else {
            skipped += 1;
            continue;
        };
        for at in nodes(variant.get("storeAvailability").unwrap_or(&Json::Null)) {
            let store = at
                .pointer("/location/id")
                .or_else(|| at.pointer("/location/name"))
                .and_then(Json::as_str)
                .ok_or_else(|| {
                    format!(
                        "variant {} ({sku}): a storeAvailability without a location",
                        n + 1
                    )
                })?;
            let qty = at
                .get("quantityAvailable")
                .and_then(Json::as_f64)
                .unwrap_or_else(|| {
                    f64::from(u8::from(
                        at.get("available").and_then(Json::as_bool) == Some(true),
                    ))
                });
            out.push((
                n + 1,
                json!({ sku_col.clone(): sku, store_col.clone(): store, "qty": qty }),
            ));
        }
    }
    if skipped > 0 {
        eprintln!("{skipped} variants without a sku left out");
    }
    Ok(out)
}

/// Google's local inventory feed: `store_code`, `id` (or `itemid`, `offerId`),
/// `quantity`, `availability` (`in_stock`, `limited_availability`, `out_of_stock`).
fn google(text: &str, decl: &Declared) -> Result<Vec<(usize, Json)>, (usize, String)> {
    let records: Vec<(usize, Map<String, Json>)> = if text.trim_start().starts_with('{') {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| match serde_json::from_str::<Json>(l) {
                Ok(Json::Object(o)) => Ok((i + 1, o)),
                _ => Err((i + 1, "not a JSON object".to_owned())),
            })
            .collect::<Result<_, _>>()?
    } else {
        table(text)?
            .into_iter()
            .map(|(line, cells)| {
                let map = cells
                    .into_iter()
                    .map(|(h, v)| (h, Json::String(v)))
                    .collect();
                (line, map)
            })
            .collect()
    };
    let pick = |o: &Map<String, Json>, names: &[&str]| -> Option<String> {
        names.iter().find_map(|n| match o.get(*n)? {
            Json::String(s) if !s.is_empty() => Some(s.clone()),
            Json::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    let (sku_col, store_col) = match decl.key.as_slice() {
        [sku, store] => (sku.clone(), store.clone()),
        _ => ("sku".to_owned(), "store".to_owned()),
    };
    records
        .into_iter()
        .map(|(line, o)| {
            let sku = pick(&o, &["id", "itemid", "item_id", "offerId", "offer_id"])
                .ok_or((line, "no item id (`id`)".to_owned()))?;
            let store = pick(&o, &["store_code", "storeCode"])
                .ok_or((line, "no `store_code`".to_owned()))?;
            let qty = match pick(&o, &["quantity"]) {
                Some(q) => q
                    .parse::<f64>()
                    .map_err(|_| (line, format!("quantity \"{q}\" is not a number")))?,
                None => match pick(&o, &["availability"]).as_deref() {
                    Some("in_stock" | "in stock" | "limited_availability") => 1.0,
                    Some(_) | None => 0.0,
                },
            };
            Ok((
                line,
                json!({ sku_col.clone(): sku, store_col.clone(): store, "qty": qty }),
            ))
        })
        .collect()
}

fn push(args: PushArgs) -> Outcome {
    let started = Instant::now();
    let decl = declared(&args)?;
    let bytes = read_file(&args.file)?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Failure::Usage(format!("{} is not UTF-8", args.file.display())))?;
    let rows = rows(&args, &text, &decl)?;
    let read_secs = started.elapsed().as_secs_f64();
    let per = args
        .part_rows
        .clamp(1, micromoment::feed::MAX_ROWS_PER_PUSH);
    let parts: Vec<&[(usize, Json)]> = rows.chunks(per).collect();
    let total = parts.len().max(1);
    let mut upload = [0u8; 16];
    getrandom::fill(&mut upload).map_err(|e| Failure::Usage(format!("entropy: {e}")))?;
    let upload = micromoment::ids::hex128_string(&upload);
    let base = format!("{}/v1/feeds/{}", args.url.trim_end_matches('/'), args.feed);
    let agent = agent();
    let mut last = Json::Null;
    let empty: &[(usize, Json)] = &[];
    let parts = if parts.is_empty() { vec![empty] } else { parts };
    for (i, part) in parts.iter().enumerate() {
        let body: String = part.iter().map(|(_, r)| format!("{r}\n")).collect();
        // One key per part of this run: a retry of the run's part applies it once; a
        // later run is new rows, with new keys.
        let key = format!("{upload}-{}", i + 1);
        let url = if args.delta {
            format!("{base}?mode=delta")
        } else {
            format!(
                "{base}?mode=full&upload={upload}&part={}&parts={total}&rows={}",
                i + 1,
                rows.len()
            )
        };
        let mut answer = agent
            .put(&url)
            .header("Authorization", &format!("Bearer {}", args.token))
            .header("Content-Type", "application/x-ndjson")
            .header("Idempotency-Key", &key)
            .send(body.as_bytes())
            .map_err(|e| Failure::Usage(format!("{url}: {e}")))?;
        let status = answer.status().as_u16();
        let reply: Json =
            serde_json::from_str(&answer.body_mut().read_to_string().unwrap_or_default())
                .unwrap_or(Json::Null);
        if status != 200 {
            // The edge names the line of the part: say the file's.
            let line = reply
                .get("line")
                .unwrap_or(&Json::Null)
                .as_u64()
                .and_then(|l| part.get(usize::try_from(l).ok()?.checked_sub(1)?))
                .map(|(l, _)| *l);
            let at = line.map_or(String::new(), |l| format!("{}:{l}: ", args.file.display()));
            return Err(Failure::Findings(format!(
                "{at}{status}: {}",
                reply
                    .get("error")
                    .unwrap_or(&Json::Null)
                    .as_str()
                    .unwrap_or("refused")
            )));
        }
        last = reply;
    }
    print_json(&json!({
        "feed": args.feed,
        "mode": if args.delta { "delta" } else { "full" },
        "rows": rows.len(),
        "parts": total,
        "read_secs": (read_secs * 1000.0).round() / 1000.0,
        "secs": (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        "answer": last,
    }))
}
