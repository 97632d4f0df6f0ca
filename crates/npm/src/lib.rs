//! The npm package's API (wasm-bindgen): the same engine the Worker runs, for any JS
//! runtime (Node, Deno, Vercel and Netlify edge functions).
//!
//! A thin adapter: JS values in, `session` in the middle, JS objects out. A loaded bundle
//! is a handle (`Bundle`) reused across calls, never decoded again. `decide` crosses the
//! boundary without JSON where it can: plainly typed options are packed by JavaScript
//! into one string (`js/options.js` writes it, `options.rs` reads it), and the answer
//! comes back as numbers and one string naming the bundle's strings by index (`wire.rs`
//! writes it, `js/wire.js` reads it); other options go through their JSON, which also
//! words every error. The TypeScript declarations are `js/*.d.ts`. Errors are JS
//! `Error`s carrying the Rust message. The clock and entropy default to `Date.now()`
//! and `crypto.getRandomValues`, and can be passed in for reproducible answers; this
//! crate decides nothing itself.

use std::borrow::Cow;
use std::cell::RefCell;
use std::rc::Rc;

use base64::engine::general_purpose::STANDARD_NO_PAD as IMAGE;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use wasm_bindgen::prelude::*;

use micromoment::bundle::{self, public_key_of};
use micromoment::context::Context;
use micromoment::ids::parse_hex128;
use micromoment::rules::{self, JsonData, JsonSchema, Limits};
use micromoment::session::{self, Entropy, Mode, Request, Slots, Visitor};
use micromoment::time::parse_rfc3339;
use micromoment::token::{self, Keys, State};
use micromoment::view::state_from_json;
use micromoment::Budget;

mod options;
mod wire;

// The package's TypeScript declarations, real files beside the JavaScript (`js/`): what
// this crate exports (micromoment.d.ts), and the request context's (context.d.ts), which
// tests/it/npm_types.rs writes from the table of variables.
#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = include_str!("../js/micromoment.d.ts");
#[wasm_bindgen(typescript_custom_section)]
const CONTEXT_TYPES: &str = include_str!("../js/context.d.ts");

fn error(message: impl std::fmt::Display) -> JsError {
    JsError::new(&message.to_string())
}

/// Reads any JS value as typed options through its JSON form.
fn from_js<T: for<'de> Deserialize<'de>>(value: &JsValue, what: &str) -> Result<T, JsError> {
    if value.is_undefined() || value.is_null() {
        return serde_json::from_str("{}").map_err(|e| error(format!("{what}: {e}")));
    }
    let text = js_sys::JSON::stringify(value)
        .map_err(|_| error(format!("{what}: not serializable to JSON")))?
        .as_string()
        .unwrap_or_default();
    serde_json::from_str(&text).map_err(|e| error(format!("{what}: {e}")))
}

fn to_js(value: &serde_json::Value) -> Result<JsValue, JsError> {
    js_sys::JSON::parse(&value.to_string()).map_err(|_| error("result is not JSON"))
}

/// A time given as Unix ms, RFC 3339 text, or a Date (which JSON makes RFC 3339).
#[derive(Clone)]
enum Instant {
    Millis(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for Instant {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Instant;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("Unix milliseconds, an RFC 3339 string or a Date")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Instant, E> {
                Ok(Instant::Millis(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Instant, E> {
                Ok(Instant::Millis(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Instant, E> {
                Ok(Instant::Millis(v as f64))
            }
            fn visit_str<E>(self, v: &str) -> Result<Instant, E> {
                Ok(Instant::Text(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn seconds(instant: Option<Instant>) -> Result<i64, JsError> {
    match instant {
        None => Ok((js_sys::Date::now() / 1000.0).floor() as i64),
        Some(Instant::Millis(ms)) if ms.is_finite() => Ok((ms / 1000.0).floor() as i64),
        Some(Instant::Millis(_)) => Err(error("now: not a finite number")),
        Some(Instant::Text(text)) => parse_rfc3339(&text).map_err(error),
    }
}

/// The `JOURNEY_KEYS` document as given: its JSON, or a string holding it.
fn keys_text(raw: &RawValue) -> Result<Cow<'_, str>, JsError> {
    let text = raw.get();
    if text.starts_with('"') {
        let inner: String = serde_json::from_str(text).map_err(|e| error(format!("keys: {e}")))?;
        Ok(Cow::Owned(inner))
    } else {
        Ok(Cow::Borrowed(text))
    }
}

fn keys(raw: Option<&RawValue>) -> Result<Option<Keys>, JsError> {
    raw.map(|raw| Keys::from_json(&keys_text(raw)?).map_err(|e| error(format!("keys: {e}"))))
        .transpose()
}

/// 128 bits from `crypto.getRandomValues`: a new visitor's id. Should the platform have
/// no entropy (it always has), the clock still tells visitors apart.
fn random_visitor() -> [u8; 16] {
    let mut id = [0u8; 16];
    if getrandom::fill(&mut id).is_err() {
        id[..8].copy_from_slice(&js_sys::Date::now().to_le_bytes());
    }
    id
}

fn visitor(text: Option<&str>) -> Result<[u8; 16], JsError> {
    match text {
        Some(t) => parse_hex128(t).map_err(|e| error(format!("visitor: {e}"))),
        None => Ok(random_visitor()),
    }
}

/// A new visitor's id: the one the caller gave, else drawn from the platform's CSPRNG
/// (only if the request does make a new visitor).
fn entropy(given: Option<[u8; 16]>) -> Entropy<'static> {
    given.map_or(Entropy::Source(&random_visitor), Entropy::Fixed)
}

/// What [`Bundle::prepare`] reads from the options.
struct Prepared {
    now: i64,
    given: Option<[u8; 16]>,
    keys: Option<Rc<Keys>>,
    context: Context,
}

#[derive(Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
struct DecideOptions<'a> {
    #[serde(borrow)]
    token: Option<Cow<'a, str>>,
    #[serde(borrow)]
    keys: Option<&'a RawValue>,
    /// The keys' JSON as `packOptions` gave it (the JSON path has `keys`).
    #[serde(skip)]
    keys_text: Option<&'a str>,
    /// `packOptions`' number for that JSON (a new number for each new text).
    #[serde(skip)]
    keys_id: Option<u32>,
    /// `packOptions` sent no keys' JSON: the keys are those the handle holds under this
    /// number (it asked which before packing).
    #[serde(skip)]
    keys_held: Option<u32>,
    state: Option<serde_json::Value>,
    context: Option<Context>,
    slots: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow)]
    event: Option<Cow<'a, str>>,
    now: Option<Instant>,
    #[serde(borrow)]
    visitor: Option<Cow<'a, str>>,
    explain: bool,
}

/// For `tests/wasm.rs`, not the package: the context of `options` as `packOptions`
/// packs it and `options.rs` reads it back, as JSON; `None` when either leaves it to
/// the JSON path.
#[doc(hidden)]
pub fn packed_context(options: &JsValue) -> Option<String> {
    let mut buffer = vec![0; 64];
    let packed = options::pack(
        options,
        &js_sys::Object::new(),
        &wasm_bindgen::memory(),
        &mut buffer,
        0,
    )?;
    let context = options::unpack(packed)?.context?;
    serde_json::to_string(&context).ok()
}

/// A bundle's `stateOf`: state bytes ([`State::to_image`], in base64) to the state by
/// names, as JSON text. One per bundle handle, dropped with it.
type StateOf = Closure<dyn Fn(String) -> String>;

fn state_of(bundle: &Rc<micromoment::Bundle>) -> StateOf {
    let bundle = Rc::clone(bundle);
    Closure::new(move |image: String| {
        let bytes = IMAGE.decode(image).unwrap_or_default();
        State::from_image(&bytes).map_or_else(
            || "null".to_owned(),
            |state| {
                serde_json::to_string(&micromoment::view::state_view(&bundle, &state))
                    .unwrap_or_default()
            },
        )
    })
}

/// The `JOURNEY_KEYS` a bundle handle signed with last, by their JSON text: a caller
/// passes the same document on every call, and parsing it (base64, HMAC key setup) each
/// time would cost more than the decision. When `packOptions` sent the text it also
/// sent its number for it; while the handle holds that text, later packed calls send
/// only the number (`keys_held`), not the text again.
#[derive(Default)]
struct KeysCache(RefCell<Option<HeldKeys>>);

struct HeldKeys {
    text: String,
    /// `packOptions`' number for `text`; 0 when the JSON path last set it.
    id: u32,
    keys: Rc<Keys>,
}

impl KeysCache {
    fn get(&self, text: Option<Cow<'_, str>>, id: u32) -> Result<Option<Rc<Keys>>, JsError> {
        let Some(text) = text else { return Ok(None) };
        if let Some(held) = self.0.borrow_mut().as_mut() {
            if held.text == *text {
                if id != 0 {
                    held.id = id;
                }
                return Ok(Some(held.keys.clone()));
            }
        }
        let keys = Rc::new(Keys::from_json(&text).map_err(|e| error(format!("keys: {e}")))?);
        *self.0.borrow_mut() = Some(HeldKeys {
            text: text.into_owned(),
            id,
            keys: keys.clone(),
        });
        Ok(Some(keys))
    }

    /// `packOptions`' number for the keys held (0: none, or set by the JSON path).
    fn held_id(&self) -> u32 {
        self.0.borrow().as_ref().map_or(0, |held| held.id)
    }

    /// The keys held under `id`, if they still are.
    fn held(&self, id: u32) -> Option<Rc<Keys>> {
        let held = self.0.borrow();
        let held = held.as_ref()?;
        (id != 0 && held.id == id).then(|| held.keys.clone())
    }
}

/// A compiled bundle, loaded once and reused for every decision.
#[wasm_bindgen]
pub struct Bundle {
    inner: Rc<micromoment::Bundle>,
    hash: Option<String>,
    keys: KeysCache,
    state_of: StateOf,
    /// The bundle's strings answers have named, on both sides of the boundary: which
    /// ones (here) and the strings themselves (the JavaScript array).
    table: RefCell<wire::Table>,
    strings: js_sys::Array,
    /// The last answer's message, its buffers kept for the next one.
    wire: RefCell<wire::Wire>,
    /// `packOptions`' memory (the keys' JSON, for the keys object it was written from).
    memo: js_sys::Object,
    /// Where `packOptions` writes (its bytes are only read, as UTF-8, after it returns),
    /// and the memory it is in.
    packed: RefCell<Vec<u8>>,
    memory: JsValue,
}

impl Bundle {
    fn new(inner: micromoment::Bundle, hash: Option<String>) -> Bundle {
        let inner = Rc::new(inner);
        Bundle {
            state_of: state_of(&inner),
            inner,
            hash,
            keys: KeysCache::default(),
            table: RefCell::default(),
            strings: js_sys::Array::new(),
            wire: RefCell::default(),
            memo: js_sys::Object::new(),
            packed: RefCell::new(vec![0; 2048]),
            memory: wasm_bindgen::memory(),
        }
    }
}

#[wasm_bindgen]
impl Bundle {
    /// Loads a compiled `.mmb`; with a public key (base64), its signature must verify.
    #[wasm_bindgen(js_name = load)]
    pub fn load(bytes: &[u8], public_key: Option<String>) -> Result<Bundle, JsError> {
        let key = public_key
            .map(|k| public_key_of(&k))
            .transpose()
            .map_err(error)?;
        let (inner, header) =
            micromoment::Bundle::from_mmb(bytes, key.as_ref(), &Budget::default())
                .map_err(error)?;
        Ok(Bundle::new(inner, Some(header.hash)))
    }

    /// Validates and compiles authoring JSON; the error lists every problem.
    #[wasm_bindgen(js_name = compile)]
    pub fn compile(source: &str) -> Result<Bundle, JsError> {
        let inner = bundle::compile(source, Budget::default()).map_err(|diagnostics| {
            error(
                diagnostics
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
        Ok(Bundle::new(inner, None))
    }

    /// The bundle id.
    #[wasm_bindgen(getter)]
    pub fn id(&self) -> String {
        self.inner.id().to_owned()
    }

    /// The bundle version.
    #[wasm_bindgen(getter)]
    pub fn version(&self) -> f64 {
        self.inner.version() as f64
    }

    /// The content hash of the `.mmb` it was loaded from (undefined when compiled here).
    #[wasm_bindgen(getter)]
    pub fn hash(&self) -> Option<String> {
        self.hash.clone()
    }

    /// Slot names, in bundle order.
    #[wasm_bindgen(getter)]
    pub fn slots(&self) -> Vec<String> {
        self.inner.slot_names().map(str::to_owned).collect()
    }

    /// Decides for one request, exactly as the edge does: the `/v1/decide` answer plus
    /// the new `state` and the `exposures` to send.
    #[wasm_bindgen(unchecked_return_type = "Decision")]
    pub fn decide(
        &self,
        #[wasm_bindgen(unchecked_param_type = "DecideOptions")] options: JsValue,
    ) -> Result<JsValue, JsError> {
        self.with_options(&options, |options| {
            let outcome = self.run(options)?;
            self.answer(&outcome, None)
        })
    }

    /// Personalizes a page as the Worker's proxy does, in one pass: each
    /// `[data-mm-slot]` element the bundle knows is decided in document order and
    /// filled; the answer is `decide`'s plus the `html`, or `null` when the page has no
    /// slot the bundle knows (nothing decided, nothing to write: serve it as it is).
    /// The options are `decide`'s without `slots` (the page names them) or `state`.
    #[wasm_bindgen(unchecked_return_type = "PersonalizedPage | null")]
    pub fn personalize(
        &self,
        #[wasm_bindgen(unchecked_param_type = "string | Uint8Array")] page: JsValue,
        #[wasm_bindgen(unchecked_param_type = "PageOptions")] options: JsValue,
    ) -> Result<JsValue, JsError> {
        let given_text = page.is_string();
        let page = match page.dyn_ref::<js_sys::JsString>() {
            Some(text) => options::utf8(text),
            None => page
                .dyn_ref::<js_sys::Uint8Array>()
                .ok_or_else(|| error("page: expected a string or a Uint8Array"))?
                .to_vec(),
        };
        self.with_options(&options, |options| self.fill(&page, given_text, options))
    }

    /// [`Bundle::decide`] from JSON text to JSON text, for a caller that holds the
    /// options as JSON already (a request body) and sends the answer on as JSON (a
    /// response body): no JavaScript objects are built either way. The answer is the one
    /// `decide` gives, as JSON text (whole numbers may be written `25.0`).
    #[wasm_bindgen(js_name = decideJson)]
    pub fn decide_json(&self, options: &js_sys::JsString) -> Result<String, JsError> {
        let bytes = options::utf8(options);
        let options: DecideOptions<'_> =
            serde_json::from_slice(&bytes).map_err(|e| error(format!("options: {e}")))?;
        let outcome = self.run(options)?;
        Ok(session::Answer::of(&self.inner, &outcome, session::Shape::Full).to_text())
    }
}

impl Bundle {
    /// Calls `then` with the options read: packed (`packOptions`, no JSON) when they are
    /// plainly typed, else through their JSON, which also words every error.
    fn with_options(
        &self,
        options: &JsValue,
        then: impl FnOnce(DecideOptions<'_>) -> Result<JsValue, JsError>,
    ) -> Result<JsValue, JsError> {
        // A buffer still borrowed (by a call an exception left) is not shared: read the JSON.
        if let Ok(mut buffer) = self.packed.try_borrow_mut() {
            let unpacked = self.pack(options, &mut buffer).and_then(options::unpack);
            // Keys sent by number are those held under it (packOptions asked), else JSON.
            if let Some(options) =
                unpacked.filter(|o| o.keys_held.is_none_or(|id| self.keys.held(id).is_some()))
            {
                return then(options);
            }
        }
        let bytes = options::options_json(options)
            .ok_or_else(|| error("options: not serializable to JSON"))?;
        let options: DecideOptions<'_> =
            serde_json::from_slice(&bytes).map_err(|e| error(format!("options: {e}")))?;
        then(options)
    }

    /// The options packed into `buffer` (grown to fit), or `None` for "read their JSON".
    fn pack<'a>(&self, options: &JsValue, buffer: &'a mut Vec<u8>) -> Option<&'a str> {
        options::pack(
            options,
            &self.memo,
            &self.memory,
            buffer,
            self.keys.held_id(),
        )
    }

    /// `personalize` once its options are read.
    fn fill(
        &self,
        page: &[u8],
        given_text: bool,
        mut options: DecideOptions<'_>,
    ) -> Result<JsValue, JsError> {
        if options.slots.is_some() {
            return Err(error("options.slots: a page names its own slots"));
        }
        if options.state.is_some() {
            return Err(error("options.state: pages take the visitor's token"));
        }
        let Prepared {
            now,
            given,
            keys,
            context,
        } = self.prepare(&mut options)?;
        let visitor = options
            .token
            .as_deref()
            .map_or(Visitor::New, Visitor::Token);
        let request = Request {
            event: options.event.as_deref(),
            mode: mode(options.explain),
            ..Request::new(visitor, &context, now, entropy(given))
        };
        match session::personalize(&self.inner, keys.as_deref(), &request, page) {
            Ok(Some(filled)) => {
                // As given: text stays text; bytes (of any encoding) stay bytes.
                let html: JsValue = if given_text {
                    String::from_utf8_lossy(&filled.html).as_ref().into()
                } else {
                    js_sys::Uint8Array::from(filled.html.as_slice()).into()
                };
                self.answer(&filled.outcome, Some(&html))
            }
            Ok(None) => Ok(JsValue::NULL),
            Err(e) => Err(error(e)),
        }
    }

    /// The answer object (see `answerObject`), with the page's `html` for `personalize`.
    fn answer(
        &self,
        outcome: &session::Outcome<'_>,
        html: Option<&JsValue>,
    ) -> Result<JsValue, JsError> {
        // A message left borrowed by a call that never came back (an exception thrown
        // through it) is not reused: this answer gets its own.
        let mut own = None;
        let mut wire = match self.wire.try_borrow_mut() {
            Ok(wire) => wire,
            Err(_) => own.insert(RefCell::<wire::Wire>::default()).borrow_mut(),
        };
        {
            let wire = &mut *wire;
            outcome.decision.state.image_into(&mut wire.image);
            wire.image_text.clear();
            IMAGE.encode_string(&wire.image, &mut wire.image_text);
        }
        // Twice at most: should the two sides of the table ever disagree (answerObject
        // checks), both start again from an empty one and the answer sends every string.
        let mut last = JsValue::UNDEFINED;
        for _ in 0..2 {
            {
                let Ok(mut table) = self.table.try_borrow_mut() else {
                    return Err(error("answer: the string table is in use"));
                };
                wire.build(&mut table, outcome);
            }
            match wire::answer_object(
                &wire.nums,
                &wire.text,
                &self.strings,
                self.state_of.as_ref(),
                html,
            ) {
                Ok(answer) => return Ok(answer),
                Err(e) => {
                    last = e;
                    if let Ok(mut table) = self.table.try_borrow_mut() {
                        table.clear();
                    }
                    self.strings.set_length(0);
                }
            }
        }
        let why = last
            .dyn_ref::<js_sys::Error>()
            .map(|e| String::from(e.message()))
            .unwrap_or_default();
        Err(error(format!("answer: could not be built ({why})")))
    }

    /// What every request needs from the options: the clock, a visitor id if one was
    /// given, the keys and the context.
    fn prepare(&self, options: &mut DecideOptions<'_>) -> Result<Prepared, JsError> {
        let now = seconds(options.now.clone())?;
        let given = options
            .visitor
            .as_deref()
            .map(|t| parse_hex128(t).map_err(|e| format!("visitor: {e}")))
            .transpose()
            .map_err(error)?;
        let keys_text = match (options.keys_text, options.keys) {
            (Some(text), _) => Some(Cow::Borrowed(text)),
            (None, Some(raw)) => Some(keys_text(raw)?),
            (None, None) => None,
        };
        let keys = match options.keys_held {
            Some(id) => Some(
                self.keys
                    .held(id)
                    .ok_or_else(|| error("keys: no longer held"))?,
            ),
            None => self.keys.get(keys_text, options.keys_id.unwrap_or(0))?,
        };
        let context = options.context.take().unwrap_or_default();
        Ok(Prepared {
            now,
            given,
            keys,
            context,
        })
    }

    /// One request's outcome from parsed options.
    fn run(&self, mut options: DecideOptions<'_>) -> Result<session::Outcome<'_>, JsError> {
        let bundle = &self.inner;
        let Prepared {
            now,
            given,
            keys,
            context,
        } = self.prepare(&mut options)?;
        let names: Vec<&str> = options.slots.iter().flatten().map(|s| &**s).collect();
        let named = match &options.state {
            Some(state) => {
                let fallback = given.unwrap_or_else(|| {
                    if state.get("visitor").is_some() {
                        [0; 16]
                    } else {
                        random_visitor()
                    }
                });
                Some(
                    state_from_json(bundle, state, fallback)
                        .map_err(|e| error(format!("state: {e}")))?,
                )
            }
            None => None,
        };
        let visitor = match (&named, options.token.as_deref()) {
            (Some(state), _) => Visitor::State(state),
            (None, Some(token)) => Visitor::Token(token),
            (None, None) => Visitor::New,
        };
        let request = Request {
            event: options.event.as_deref(),
            slots: if options.slots.is_some() {
                Slots::Names(&names)
            } else {
                Slots::All
            },
            mode: mode(options.explain),
            ..Request::new(visitor, &context, now, entropy(given))
        };
        session::decide(bundle, keys.as_deref(), &request).map_err(error)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MintOptions {
    keys: Box<RawValue>,
    stage: Option<String>,
    #[serde(default)]
    segments: Vec<String>,
    profile: Option<String>,
    visitor: Option<String>,
    ttl_seconds: Option<f64>,
    now: Option<Instant>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LinkOptions {
    keys: Box<RawValue>,
    profile: String,
    ttl_seconds: Option<f64>,
    campaign: Option<String>,
    now: Option<Instant>,
}

/// A profile id: 32 hex digits, never all zeros.
fn profile_id(text: &str) -> Result<[u8; 16], JsError> {
    match parse_hex128(text) {
        Ok(id) if id != [0; 16] => Ok(id),
        Ok(_) => Err(error("profile: the all-zero id is not a profile")),
        Err(e) => Err(error(format!("profile: {e}"))),
    }
}

/// Mints an identity link for `?mm_link=`: the device whose person confirms it joins the
/// profile (single use; `inspectLink` gives its id, to revoke it).
#[wasm_bindgen(js_name = mintLink)]
pub fn mint_link(
    #[wasm_bindgen(unchecked_param_type = "LinkOptions")] options: JsValue,
) -> Result<String, JsError> {
    let options: LinkOptions = from_js(&options, "options")?;
    let keys = keys(Some(&options.keys))?.ok_or_else(|| error("keys: required"))?;
    let now = seconds(options.now)?;
    let ttl = options
        .ttl_seconds
        .map_or(token::DEFAULT_LINK_TTL, |t| t as i64);
    let link = token::IdentityLink::new(
        profile_id(&options.profile)?,
        visitor(None)?,
        now,
        ttl,
        options.campaign,
    )
    .map_err(error)?;
    Ok(link.sign(&keys))
}

/// Verifies an identity link; throws with the reason when it does not verify.
#[wasm_bindgen(js_name = inspectLink, unchecked_return_type = "IdentityLink")]
pub fn inspect_link(
    link: &str,
    #[wasm_bindgen(unchecked_param_type = "JourneyKeys | string")] keys_input: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Instant | undefined")] now: JsValue,
) -> Result<JsValue, JsError> {
    let (keys, now) = keys_and_now(&keys_input, &now)?;
    let link = token::IdentityLink::verify(link, &keys, now).map_err(error)?;
    to_js(&serde_json::json!({
        "profile": micromoment::ids::hex128_string(&link.profile),
        "id": micromoment::ids::hex128_string(&link.id),
        "issuedAt": micromoment::time::rfc3339(link.issued_at),
        "expiresAt": micromoment::time::rfc3339(link.expires_at),
        "campaign": link.campaign,
    }))
}

/// The session mode of `explain`: a tool's explain writes state too.
fn mode(explain: bool) -> Mode {
    if explain {
        Mode::Explain
    } else {
        Mode::Serve
    }
}

/// Mints a token for a visitor a backend knows (after login, from a CDP), with the same
/// format and keys as the edge. The stage is not checked against a bundle:
/// `bundle.mintToken` checks it.
#[wasm_bindgen(js_name = mintToken)]
pub fn mint_token(
    #[wasm_bindgen(unchecked_param_type = "MintOptions")] options: JsValue,
) -> Result<String, JsError> {
    mint(&options, None)
}

/// Verifies a token and returns its state by stable ids (`bundle.inspectToken` names
/// them); throws with the reason when it does not verify.
#[wasm_bindgen(js_name = inspectToken)]
pub fn inspect_token(
    token: &str,
    #[wasm_bindgen(unchecked_param_type = "JourneyKeys | string")] keys_input: JsValue,
    #[wasm_bindgen(unchecked_param_type = "Instant | undefined")] now: JsValue,
) -> Result<JsValue, JsError> {
    let state = verified(token, &keys_input, &now)?;
    to_js(&state.to_json())
}

fn mint(options: &JsValue, bundle: Option<&micromoment::Bundle>) -> Result<String, JsError> {
    let options: MintOptions = from_js(options, "options")?;
    let keys = keys(Some(&options.keys))?.ok_or_else(|| error("keys: required"))?;
    let now = seconds(options.now)?;
    let ttl = options.ttl_seconds.map_or(token::DEFAULT_TTL, |t| t as i64);
    let mut state = State::new_visitor(visitor(options.visitor.as_deref())?, now, ttl);
    if let Some(stage) = options.stage.as_deref() {
        if let Some(bundle) = bundle {
            if !bundle.stage_names().any(|s| s == stage) {
                let hint = micromoment::did_you_mean(stage, bundle.stage_names())
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                return Err(error(format!(
                    "stage: {stage:?} is not a stage of {} {}{hint}",
                    bundle.id(),
                    bundle.version()
                )));
            }
        }
        state.stage = Some(micromoment::ids::stable_id(
            micromoment::ids::IdKind::Stage,
            stage,
        ));
    }
    state.segments = options.segments;
    if let Some(profile) = options.profile.as_deref() {
        state.link = Some(token::Link {
            profile: profile_id(profile)?,
            seq: 0,
            devices: 1,
            linked_at: now,
        });
    }
    token::sign(&state, &keys).map_err(error)
}

/// The keys and the clock of an `inspect…(text, keys, now?)` call.
fn keys_and_now(keys_input: &JsValue, now: &JsValue) -> Result<(Keys, i64), JsError> {
    let given: Box<RawValue> = from_js(keys_input, "keys")?;
    let keys = keys(Some(&given))?.ok_or_else(|| error("keys: required"))?;
    let now = seconds(if now.is_undefined() || now.is_null() {
        None
    } else {
        Some(from_js(now, "now")?)
    })?;
    Ok((keys, now))
}

fn verified(token: &str, keys_input: &JsValue, now: &JsValue) -> Result<State, JsError> {
    let (keys, now) = keys_and_now(keys_input, now)?;
    token::verify(token, &keys, now).map_err(error)
}

#[wasm_bindgen]
impl Bundle {
    /// [`mint_token`], the stage checked against this bundle: an unknown one throws,
    /// with a did-you-mean.
    #[wasm_bindgen(js_name = mintToken)]
    pub fn mint_token(
        &self,
        #[wasm_bindgen(unchecked_param_type = "MintOptions")] options: JsValue,
    ) -> Result<String, JsError> {
        mint(&options, Some(&self.inner))
    }

    /// [`inspect_token`], with stages, contents, topics and experiments named by this
    /// bundle (the `simulate` state shape).
    #[wasm_bindgen(js_name = inspectToken)]
    pub fn inspect_token(
        &self,
        token: &str,
        #[wasm_bindgen(unchecked_param_type = "JourneyKeys | string")] keys_input: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Instant | undefined")] now: JsValue,
    ) -> Result<JsValue, JsError> {
        let state = verified(token, &keys_input, &now)?;
        to_js(&micromoment::view::state_to_json(&self.inner, &state))
    }

    /// Joins two tokens of one person (the merge of docs/profiles.md, as the profile joins
    /// devices) into one token of the first's device: for a backend that holds both,
    /// e.g. an app's and a web session's at login. Two tokens of the same device give
    /// the fresher one. Throws when either does not verify.
    #[wasm_bindgen(js_name = joinTokens)]
    pub fn join_tokens(
        &self,
        first: &str,
        second: &str,
        #[wasm_bindgen(unchecked_param_type = "JourneyKeys | string")] keys_input: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Instant | undefined")] now: JsValue,
    ) -> Result<String, JsError> {
        let (keys, at) = keys_and_now(&keys_input, &now)?;
        let a = token::verify(first, &keys, at).map_err(|e| error(format!("first: {e}")))?;
        let b = token::verify(second, &keys, at).map_err(|e| error(format!("second: {e}")))?;
        let mut joined = micromoment::profile::join_states(&self.inner, &a, &b, at);
        joined.reissue(at, token::DEFAULT_TTL);
        token::sign(&joined, &keys).map_err(error)
    }
}

/// Evaluates a JSON Logic rule (with micromoment's extensions) against data.
#[wasm_bindgen(js_name = evalRule)]
pub fn eval_rule(rule: JsValue, data: JsValue) -> Result<JsValue, JsError> {
    let rule: serde_json::Value = from_js_value(&rule, "rule")?;
    let data: serde_json::Value = from_js_value(&data, "data")?;
    let compiled = rules::compile(&rule, &JsonSchema, Limits::default()).map_err(error)?;
    let data = JsonData::new(&data);
    let value = compiled.eval(&data).map_err(error)?;
    to_js(&value.to_json())
}

/// How deep `evalRule` reads a rule or data (as deep as serde_json parses JSON text).
const MAX_JS_DEPTH: usize = 128;

/// A rule or data as JSON, read from the JS value itself, as json-logic-js reads it:
/// null is null (options, `from_js`, take it for `{}`), and -0 stays -0, which JSON
/// text would write as 0 (`{"/": [1, -0]}` is -Infinity). Anything but null, booleans,
/// numbers, strings, arrays and plain objects (a `Date`, an object with `toJSON`) is
/// read as `JSON.stringify` writes it; so are NaN and the infinities (null), and
/// `undefined` or a function inside an array (null) or an object (left out).
fn from_js_value(value: &JsValue, what: &str) -> Result<serde_json::Value, JsError> {
    json_of(value, what, MAX_JS_DEPTH)
}

fn json_of(value: &JsValue, what: &str, depth: usize) -> Result<serde_json::Value, JsError> {
    use serde_json::Value as Json;
    if value.is_null() || value.is_undefined() || value.is_function() || value.is_symbol() {
        return Ok(Json::Null);
    }
    if let Some(b) = value.as_bool() {
        return Ok(Json::Bool(b));
    }
    if let Some(n) = value.as_f64() {
        return Ok(serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number));
    }
    if let Some(s) = value.as_string() {
        return Ok(Json::String(s));
    }
    let Some(depth) = depth.checked_sub(1) else {
        return Err(error(format!(
            "{what}: nested deeper than {MAX_JS_DEPTH} levels"
        )));
    };
    if js_sys::Array::is_array(value) {
        let array: &js_sys::Array = value.unchecked_ref();
        return array
            .iter()
            .map(|item| json_of(&item, what, depth))
            .collect::<Result<_, _>>()
            .map(Json::Array);
    }
    let plain = value.is_object() && {
        let proto = js_sys::Object::get_prototype_of(value);
        (proto.is_null() || js_sys::Object::get_prototype_of(&proto).is_null())
            && !js_sys::Reflect::get(value, &JsValue::from_str("toJSON"))
                .is_ok_and(|f| f.is_function())
    };
    if !plain {
        return from_js(value, what);
    }
    let mut map = serde_json::Map::new();
    for entry in js_sys::Object::entries(value.unchecked_ref()).iter() {
        let entry: js_sys::Array = entry.unchecked_into();
        let item = entry.get(1);
        if item.is_undefined() || item.is_function() || item.is_symbol() {
            continue;
        }
        let key = entry.get(0).as_string().unwrap_or_default();
        map.insert(key, json_of(&item, what, depth)?);
    }
    Ok(Json::Object(map))
}
