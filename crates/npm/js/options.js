// The npm package's options, the JavaScript half: `decide`'s options packed into one
// string of tagged fields that crates/npm/src/options.rs reads (both halves of one
// format: a change to what this file writes is a change to what that file reads), and
// the helpers that hand text to WebAssembly as UTF-8. Bound to the Rust by
// `#[wasm_bindgen(module = "/js/options.js")]` in options.rs, and copied by wasm-bindgen
// into the package's `snippets/`.
//
// Plainly typed options are packed by `packOptions`, written as UTF-8 straight into the
// bundle's buffer in WebAssembly memory; any others go as their JSON, UTF-8 encoded by
// `optionsJson` (`TextEncoder.encode` is a native copy, where a string parameter would
// take wasm-bindgen's per-character loop).

const encoder = new TextEncoder();
export function utf8(text) {
  return encoder.encode(text);
}
export function optionsJson(options) {
  if (options === undefined || options === null) return encoder.encode("{}");
  let text;
  try { text = JSON.stringify(options); } catch { return undefined; }
  return typeof text === "string" ? encoder.encode(text) : undefined;
}
// packOptions: the options as options.rs reads them (its tags), or undefined when only
// their JSON says what they mean (anything but plain objects with known keys, strings
// without NUL, finite numbers and booleans).
const table = (o) => Object.assign(Object.create(null), o);
// How a field is packed, by its kind in the table of variables (options.rs reads each
// kind back): a finite number as `String` writes it; a boolean as 1 or 0; a text, a
// keyword or the channel as it is; a query as each parameter's name and value, two
// fields. A kind this file does not know is left to the JSON path.
const NUMBER = 0, BOOLEAN = 1, TEXT = 2, QUERY = 3, UNKNOWN = 4;
const PACKING = table({
  number: NUMBER, flag: BOOLEAN, switch: BOOLEAN, text: TEXT, keyword: TEXT, channel: TEXT, query: QUERY,
});
// The context's fields, from the table of variables (micromoment::context::PACKED_FIELDS,
// which options.rs hands over once, as JSON rows of [name, tag, kind, nullable]): no
// second list of the fields here. Each field is one object of one shape, { tag, packing,
// nullable }: at the top level (`top`) or in a group (`groups`, `geo.city`).
export function contextTags(json) {
  const top = table({});
  const groups = table({});
  for (const [name, tag, kind, nullable] of JSON.parse(json)) {
    const packing = PACKING[kind];
    const field = { tag, packing: packing === undefined ? UNKNOWN : packing, nullable };
    const dot = name.indexOf(".");
    if (dot === -1) {
      top[name] = field;
    } else {
      const group = name.slice(0, dot);
      if (groups[group] === undefined) groups[group] = table({});
      groups[group][name.slice(dot + 1)] = field;
    }
  }
  return { top, groups };
}
const plain = (o) => typeof o === "object" && o !== null && Object.getPrototypeOf(o) === Object.prototype;
// A value with a NUL in it takes the JSON path; so do options with a lone surrogate
// anywhere (serde_json refuses the escape JSON.stringify writes for it), checked once on
// the whole packed string.
const wellFormed = String.prototype.isWellFormed
  ? (s) => s.isWellFormed()
  : (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?:[^\uD800-\uDBFF]|^)[\uDC00-\uDFFF]/.test(s);
const clean = (s) => typeof s === "string" && s.indexOf("\0") === -1;
function packField(field, v) {
  const tag = field.tag;
  switch (field.packing) {
    case NUMBER:
      return typeof v === "number" && Number.isFinite(v) ? tag + v + "\0" : undefined;
    case BOOLEAN:
      return typeof v === "boolean" ? tag + (v ? "1" : "0") + "\0" : undefined;
    case TEXT:
      return clean(v) ? tag + v + "\0" : undefined;
    case QUERY: {
      if (!plain(v)) return undefined;
      let out = "";
      for (const q in v) {
        const value = v[q];
        if (value === undefined) continue;
        if (!clean(q) || !clean(value)) return undefined;
        out += tag + q + "\0" + value + "\0";
      }
      return out;
    }
    default:
      return undefined;
  }
}
// null is unknown for a field that is an Option; for any other, only the JSON path says
// why it is refused.
function packContext(context, tags) {
  let out = "c\0";
  for (const key in context) {
    const v = context[key];
    if (v === undefined) continue;
    const field = tags.top[key];
    if (field !== undefined) {
      if (v === null && field.nullable) continue;
      const packed = packField(field, v);
      if (packed === undefined) return undefined;
      out += packed;
      continue;
    }
    const group = tags.groups[key];
    if (group === undefined || !plain(v)) return undefined;
    for (const name in v) {
      const inner = v[name];
      if (inner === undefined) continue;
      const member = group[name];
      if (member === undefined) return undefined;
      if (inner === null && member.nullable) continue;
      const packed = packField(member, inner);
      if (packed === undefined) return undefined;
      out += packed;
    }
  }
  return out;
}
// The keys' JSON, remembered for the object it was written from while its two levels
// hold the same values (a caller passes the same JOURNEY_KEYS object on every call).
function keysSnapshot(keys) {
  const top = [];
  for (const k in keys) {
    const v = keys[k];
    if (typeof v === "function") return undefined;
    if (plain(v)) {
      const inner = [];
      for (const i in v) {
        if ((typeof v[i] === "object" && v[i] !== null) || typeof v[i] === "function") return undefined;
        inner.push(i, v[i]);
      }
      top.push(k, v, inner);
    } else if (typeof v === "object" && v !== null) {
      return undefined;
    } else {
      top.push(k, v, undefined);
    }
  }
  return top;
}
function sameKeys(keys, top) {
  let n = 0;
  for (const k in keys) {
    if (top[n] !== k || keys[k] !== top[n + 1]) return false;
    const inner = top[n + 2];
    if (inner !== undefined) {
      const v = keys[k];
      let m = 0;
      for (const i in v) {
        if (inner[m] !== i || v[i] !== inner[m + 1]) return false;
        m += 2;
      }
      if (m !== inner.length) return false;
    }
    n += 3;
  }
  return n === top.length;
}
// The keys' JSON, with a number of its own (memo.id) that changes when the text does.
function keysText(keys, memo) {
  let text;
  if (typeof keys === "string") {
    if (!clean(keys)) return undefined;
    memo.keys = undefined;
    text = keys;
  } else {
    if (!plain(keys)) return undefined;
    if (memo.keys === keys && sameKeys(keys, memo.top)) return memo.text;
    text = JSON.stringify(keys);
    // JSON.stringify escapes a lone surrogate, which only the JSON path words right.
    if (/\\ud[89a-f]/i.test(text)) return undefined;
    const top = keysSnapshot(keys);
    memo.keys = top === undefined ? undefined : keys;
    memo.top = top;
  }
  if (memo.text !== text) {
    memo.text = text;
    memo.id = (memo.id | 0) + 1;
  }
  return text;
}
// The slots' field, remembered for the names it was written from: a caller names the
// same slots on every call (its page's, or `bundle.slots`), often in a new array.
function slotsText(slots, memo) {
  const last = memo.slots;
  if (last !== undefined && last.length === slots.length) {
    let i = 0;
    while (i < slots.length && last[i] === slots[i]) i++;
    if (i === slots.length) return memo.slotsText;
  }
  let field = "s\0";
  for (let i = 0; i < slots.length; i++) {
    if (!clean(slots[i])) return undefined;
    field += "l" + slots[i] + "\0";
  }
  memo.slots = slots.slice();
  memo.slotsText = field;
  return field;
}
// The packed options written as UTF-8 straight into the bundle's buffer in WebAssembly
// memory (`cap` bytes at `ptr`): the number of bytes written, -1 for "read their JSON",
// or -(bytes needed) when the buffer is too small. Returning the string would take
// wasm-bindgen's per-character loop, and `encode` allocates a buffer (2 µs in Node for
// a few hundred bytes) that is then copied again. `held`: the number of the keys' text
// the handle holds (0 none); keys of that text are sent as the number alone. `tags`:
// what contextTags made.
export function packOptions(options, memo, tags, memory, ptr, cap, held) {
  const packed = pack(options, memo, tags, held);
  if (packed === undefined || !wellFormed(packed)) return -1;
  if (memo.buffer !== memory.buffer || memo.ptr !== ptr || memo.view.length !== cap) {
    memo.buffer = memory.buffer;
    memo.ptr = ptr;
    memo.view = new Uint8Array(memo.buffer, ptr, cap);
  }
  const { read, written } = encoder.encodeInto(packed, memo.view);
  return read === packed.length ? written : -3 * packed.length;
}
function pack(options, memo, tags, held) {
  if (!plain(options)) return undefined;
  let out = "";
  for (const key in options) {
    const v = options[key];
    if (v === undefined) continue;
    let field;
    switch (key) {
      case "token": case "event": case "visitor":
        if (v === null) continue;
        field = clean(v) ? key[0] + v + "\0" : undefined;
        break;
      case "now":
        if (v === null) continue;
        field = typeof v === "number" ? (Number.isFinite(v) ? "n" + v + "\0" : undefined)
          : clean(v) ? "m" + v + "\0" : undefined;
        break;
      case "explain":
        field = v === true ? "x\0" : v === false ? "" : undefined;
        break;
      case "slots":
        if (v === null) continue;
        field = Array.isArray(v) ? slotsText(v, memo) : undefined;
        break;
      case "keys": {
        if (v === null) continue;
        const text = keysText(v, memo);
        field = text === undefined ? undefined
          : memo.id === held ? "k" + held + "\0" : "i" + memo.id + "\0q" + text + "\0";
        break;
      }
      case "state":
        if (v === null) continue;
        if (!plain(v)) return undefined;
        field = "j" + JSON.stringify(v) + "\0";
        break;
      case "context":
        if (v === null) continue;
        field = plain(v) ? packContext(v, tags) : undefined;
        break;
      default:
        return undefined;
    }
    if (field === undefined) return undefined;
    out += field;
  }
  return out;
}
