// The engine in the studio Worker: the same WebAssembly the browser runs (crates/studio),
// instantiated once per isolate from the module wrangler bundles.
import { initSync, build, validate, changes } from "../engine/engine.js";
import module from "../engine/engine_bg.wasm";

initSync({ module });

export { build, validate, changes };
