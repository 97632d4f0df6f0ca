// The engine in the browser: the studio's WebAssembly (crates/studio), which is the npm
// package's API plus validation, the coverage report, impact and changes. Every check
// and every preview here is the engine's own; nothing is decided in JavaScript.
import init, * as engine from "../engine/engine.js";

let ready;

/** Loads the WebAssembly once. */
export function load() {
  ready ??= init({ module_or_path: "/assets/engine.wasm" });
  return ready;
}

/** Every problem of a document: `[{path, message, line, column, text}]`. */
export function validate(doc) {
  return JSON.parse(engine.validate(JSON.stringify(doc)));
}

/** The compiled bundle of a valid document (an engine `Bundle`), or null. */
export function compile(doc) {
  try {
    return engine.Bundle.compile(JSON.stringify(doc));
  } catch {
    return null;
  }
}

/** The coverage report of `micromoment report`. */
export function report(doc, now) {
  return JSON.parse(engine.report(JSON.stringify(doc), Math.floor(now / 1000)));
}

/** The audiences whose page changes from `live` to `draft`. */
export function impact(live, draft, now) {
  return JSON.parse(engine.impact(JSON.stringify(live), JSON.stringify(draft), Math.floor(now / 1000)));
}

/** What changed from `before` to `after`, in words. */
export function changes(before, after) {
  return JSON.parse(engine.changes(JSON.stringify(before), JSON.stringify(after)));
}

export { engine };
