//! The studio's WebAssembly (DESIGN §13, docs/studio.md): the npm package's whole API
//! (`Bundle.compile`, `decide`, tokens), so every preview is the engine's own decision,
//! plus what the studio needs before a publish, from the same core the CLI runs:
//!
//! - [`validate`]: every problem of an authoring document at its JSON path, with the
//!   CLI's words;
//! - [`report`]: the coverage matrix of `micromoment report`, as JSON;
//! - [`impact`]: the audiences whose page changes between the live bundle and a draft;
//! - [`changes`]: what changed between two documents, in words;
//! - [`build`]: the compiled, signed `.mmb` the studio writes to KV.
//!
//! Answers are JSON text (the studio parses it), except the build's bytes.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
#![forbid(unsafe_code)]

use serde_json::{json, Value as Json};
use wasm_bindgen::prelude::*;

use micromoment::bundle::{self, SigningKey};
use micromoment::time::UnixSeconds;
use micromoment::Budget;
use micromoment::Bundle as Compiled;
use micromoment_report as report_crate;

/// The npm package's API, exported by this module too.
pub use micromoment_npm::*;

fn error(message: impl std::fmt::Display) -> JsError {
    JsError::new(&message.to_string())
}

/// The document compiled, or every diagnostic as the studio shows them.
fn compiled(source: &str) -> Result<Compiled, Json> {
    bundle::compile(source, Budget::default()).map_err(|diagnostics| {
        Json::Array(
            diagnostics
                .iter()
                .map(|d| {
                    json!({"path": d.path, "message": d.message, "line": d.line,
                           "column": d.column, "text": d.to_string()})
                })
                .collect(),
        )
    })
}

/// Every problem of an authoring document: `[{path, message, line, column, text}]`
/// (`text` is the CLI's line), empty when it compiles.
#[wasm_bindgen]
pub fn validate(source: &str) -> String {
    match compiled(source) {
        Ok(_) => "[]".into(),
        Err(diagnostics) => diagnostics.to_string(),
    }
}

/// The coverage matrix of a document at `now` (Unix seconds): per slot, the stage ×
/// device/channel matrix of `micromoment report`, with experiments split.
#[wasm_bindgen]
pub fn report(source: &str, now: f64) -> Result<String, JsError> {
    let bundle = compiled(source).map_err(|_| error("the document does not compile"))?;
    serde_json::to_string(&report_crate::coverage(&bundle, now as UnixSeconds)).map_err(error)
}

/// The audiences and slots whose content changes from `live` to `draft` (authoring
/// documents) at `now`: `{audiences, dimensions, dropped, changed: [{stage, column,
/// values, slot, before, after}]}`.
#[wasm_bindgen]
pub fn impact(live: &str, draft: &str, now: f64) -> Result<String, JsError> {
    let live = compiled(live).map_err(|_| error("the live document does not compile"))?;
    let draft = compiled(draft).map_err(|_| error("the draft does not compile"))?;
    let limit = report_crate::impact_budget(&live, &draft);
    let impact = report_crate::impact(&live, &draft, now as UnixSeconds, limit);
    serde_json::to_string(&impact).map_err(error)
}

/// What changed from `before` to `after` (authoring documents), in words:
/// `[{at, field, what, text}]`.
#[wasm_bindgen]
pub fn changes(before: &str, after: &str) -> Result<String, JsError> {
    let before: Json = serde_json::from_str(before).map_err(|e| error(format!("before: {e}")))?;
    let after: Json = serde_json::from_str(after).map_err(|e| error(format!("after: {e}")))?;
    let out: Vec<Json> = report_crate::changes(&before, &after)
        .into_iter()
        .map(|c| json!({"at": c.at, "field": c.field, "what": c.what, "text": c.to_string()}))
        .collect();
    Ok(Json::Array(out).to_string())
}

/// The variables rules and placeholders read, by name, as the table of variables of the
/// core names them (`geo.city`, `utm.campaign`, …), for the rule builder and the
/// placeholder picker; a bundle adds `intent.<topic>`, `seen.<content>` and feeds' fields.
#[wasm_bindgen]
pub fn variables() -> Vec<String> {
    micromoment::context::FIXED_VARIABLES
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

/// The public key (base64, as `BUNDLE_PUBKEY` takes it) of a signing key (base64
/// Ed25519 seed), so the studio can check it signs what the edge verifies.
#[wasm_bindgen(js_name = signingPublicKey)]
pub fn signing_public_key(signing_key: &str) -> Result<String, JsError> {
    SigningKey::from_base64(signing_key)
        .map(|k| k.public_base64())
        .map_err(|e| error(format!("signing key: {e}")))
}

/// The rollback record (JSON) that lets the edge serve `id` `version` (`hash`) again
/// although versions up to `over` were published, signed with `signing_key` when given.
#[wasm_bindgen(js_name = rollbackRecord)]
pub fn rollback_record(
    signing_key: Option<String>,
    id: &str,
    version: f64,
    hash: &str,
    over: f64,
    at: f64,
) -> Result<String, JsError> {
    let key = signing_key
        .map(|k| SigningKey::from_base64(&k))
        .transpose()
        .map_err(|e| error(format!("signing key: {e}")))?;
    let record = micromoment::bundle::RollbackRecord::new(
        id,
        version as u64,
        hash,
        over as u64,
        at as i64,
        key.as_ref(),
    );
    Ok(record.to_json())
}

/// A compiled bundle, ready for KV.
#[wasm_bindgen]
pub struct Built {
    bytes: Vec<u8>,
    hash: String,
    id: String,
    version: f64,
}

#[wasm_bindgen]
impl Built {
    /// The `.mmb` bytes.
    #[wasm_bindgen(getter)]
    pub fn bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }
    /// The content hash (`bundle:<hash>` in KV).
    #[wasm_bindgen(getter)]
    pub fn hash(&self) -> String {
        self.hash.clone()
    }
    /// The bundle id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.id.clone()
    }
    /// The bundle version.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> f64 {
        self.version
    }
}

/// Compiles a document to a `.mmb`, signed with `signing_key` (base64 Ed25519 seed, as
/// `micromoment keygen ed25519` writes it) when given.
#[wasm_bindgen]
pub fn build(source: &str, signing_key: Option<String>) -> Result<Built, JsError> {
    let bundle = compiled(source).map_err(|d| {
        let lines: Vec<&str> = d
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| d.get("text").and_then(Json::as_str))
            .collect();
        error(lines.join("\n"))
    })?;
    let key = signing_key
        .map(|k| SigningKey::from_base64(&k))
        .transpose()
        .map_err(|e| error(format!("signing key: {e}")))?;
    let bytes = bundle.to_mmb(key.as_ref()).map_err(error)?;
    let header = Compiled::read_header(&bytes, &Budget::default()).map_err(error)?;
    Ok(Built {
        hash: header.hash,
        id: header.id,
        version: header.version as f64,
        bytes,
    })
}
