// The engine in the studio Worker: the same WebAssembly the browser runs (crates/studio),
// instantiated once per isolate from the module wrangler bundles.
import { initSync, build, validate, changes, signingPublicKey, rollbackRecord, Bundle } from "../engine/engine.js";
import module from "../engine/engine_bg.wasm";

initSync({ module });

/** The id and version of a compiled bundle's bytes, or null when they are not one. */
export function describe(bytes) {
  try {
    const bundle = Bundle.load(bytes);
    const out = { id: bundle.id, version: bundle.version };
    bundle.free();
    return out;
  } catch {
    return null;
  }
}

export { build, validate, changes, signingPublicKey, rollbackRecord };
