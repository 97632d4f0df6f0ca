// The npm package's answers, the JavaScript half: reads the numbers and the text that
// crates/npm/src/wire.rs writes for an answer (both halves of one format: a change to
// what that file writes is a change to what this file reads), and builds the answer
// object. Bound to the Rust by `#[wasm_bindgen(module = "/js/wire.js")]` in wire.rs, and
// copied by wasm-bindgen into the package's `snippets/`.
//
// What the bundle holds comes from the handle's string table, so an answer builds its
// objects from a few numbers and parses no JSON; only the new `state` is written when it
// is read (by names, by the bundle's `stateOf`, from its bytes in base64): a getter of
// the `Answer` class, which `toJSON` includes, so `JSON.stringify(answer)` is the whole
// answer. A class, not accessors defined on each object: `Object.defineProperty` gives
// every answer its own hidden class, which cost V8 more (~8 µs) than the decision.
// Nothing is held in WebAssembly memory for an answer: the state is a JavaScript string
// the garbage collector owns.

const UNREAD = Symbol("unread");
class Answer {
  #stateOf; #image; #state = UNREAD;
  constructor(stage, decisions, token, exposures, stateOf, image) {
    this.stage = stage;
    this.decisions = decisions;
    this.token = token;
    this.exposures = exposures;
    this.#stateOf = stateOf;
    this.#image = image;
  }
  /** The visitor's new state, by names (written the first time it is read). */
  get state() {
    if (this.#state === UNREAD) {
      this.#state = JSON.parse(this.#stateOf(this.#image));
      this.#image = undefined;
    }
    return this.#state;
  }
  set state(value) { this.#state = value; this.#image = undefined; }
  /** The whole answer as a plain object: what `JSON.stringify` writes. */
  toJSON() {
    const plain = { ...this };
    const { html, exposures, triggers, trace } = plain;
    delete plain.html;
    delete plain.exposures;
    delete plain.triggers;
    delete plain.trace;
    if (html !== undefined) plain.html = html;
    plain.state = this.state;
    plain.exposures = exposures;
    if (triggers !== undefined) plain.triggers = triggers;
    if (trace !== undefined) plain.trace = trace;
    return plain;
  }
}
// A reference of wire.rs: -1 none, k >= 0 the table's, -(2 + i) the ith inline string.
function str(table, inline, r) {
  return r >= 0 ? table[r] : r === -1 ? null : inline[-2 - r];
}
export function answerObject(nums, text, table, stateOf, html) {
  if (nums[0] !== table.length) throw new Error("answer: the string table is out of step");
  let at = 1, pos = 0;
  for (let n = nums[at++]; n > 0; n--) {
    const end = pos + nums[at++];
    table.push(text.slice(pos, end));
    pos = end;
  }
  const inline = [];
  for (let n = nums[at++]; n > 0; n--) {
    const end = pos + nums[at++];
    inline.push(text.slice(pos, end));
    pos = end;
  }
  const stage = str(table, inline, nums[at]);
  const token = str(table, inline, nums[at + 1]);
  const image = str(table, inline, nums[at + 2]);
  const triggers = nums[at + 3] === -1 ? undefined : JSON.parse(str(table, inline, nums[at + 3]));
  const trace = nums[at + 4] === -1 ? undefined : JSON.parse(str(table, inline, nums[at + 4]));
  at += 5;
  const decisions = [];
  for (let n = nums[at++]; n > 0; n--, at += 9) {
    const d = { slot: table[nums[at]], content: table[nums[at + 1]], candidate: str(table, inline, nums[at + 2]) };
    if (nums[at + 3] !== -1) d.experiment = str(table, inline, nums[at + 3]);
    if (nums[at + 4] !== -1) d.variant = str(table, inline, nums[at + 4]);
    d.reason = table[nums[at + 5]];
    if (nums[at + 6] !== -1) d.html = str(table, inline, nums[at + 6]);
    if (nums[at + 7] !== -1) d.json = JSON.parse(str(table, inline, nums[at + 7]));
    if (nums[at + 8] !== -1) d.text = str(table, inline, nums[at + 8]);
    decisions.push(d);
  }
  const exposures = [];
  if (nums[at] === -2) {
    // One per decision, each repeating it: only what they share was sent.
    const visitor = str(table, inline, nums[at + 1]);
    const bundle = table[nums[at + 2]];
    const version = nums[at + 3];
    const when = nums[at + 4];
    for (const d of decisions) {
      exposures.push({
        visitor,
        bundle,
        bundle_version: version,
        slot: d.slot,
        content: d.content,
        candidate: d.candidate,
        experiment: d.experiment === undefined ? null : d.experiment,
        variant: d.variant === undefined ? null : d.variant,
        reason: d.reason,
        stage,
        at: when,
      });
    }
  } else for (let n = nums[at++]; n > 0; n--, at += 11) {
    exposures.push({
      visitor: str(table, inline, nums[at]),
      bundle: table[nums[at + 1]],
      bundle_version: nums[at + 2],
      slot: table[nums[at + 3]],
      content: table[nums[at + 4]],
      candidate: str(table, inline, nums[at + 5]),
      experiment: str(table, inline, nums[at + 6]),
      variant: str(table, inline, nums[at + 7]),
      reason: table[nums[at + 8]],
      stage: table[nums[at + 9]],
      at: nums[at + 10],
    });
  }
  const answer = new Answer(stage, decisions, token, exposures, stateOf, image);
  if (triggers !== undefined) answer.triggers = triggers;
  if (html !== undefined) answer.html = html;
  if (trace !== undefined) answer.trace = trace;
  return answer;
}
