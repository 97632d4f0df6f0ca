#!/usr/bin/env bash
# Builds the studio (studio/, docs/studio.md) into studio/dist and studio/engine:
#   - the engine: crates/studio (the npm package's API plus validation at the field, the
#     coverage report, impact and changes) compiled once to wasm32 and bound with
#     wasm-bindgen for ES modules, used by the browser and by the studio Worker alike;
#   - the app: studio/ui bundled by esbuild (Preact + htm, SortableJS, CodeMirror 6, all
#     from package-lock.json) with its page and stylesheet, and the example document.
# Offline: every tool comes from crates.io and npm (scripts/worker-setup.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
bash scripts/worker-setup.sh >/dev/null

cargo build --locked --release --lib --target wasm32-unknown-unknown -p micromoment-studio
wasm="target/wasm32-unknown-unknown/release/micromoment_studio.wasm"
rm -rf studio/engine studio/dist
mkdir -p studio/dist/assets
wasm-bindgen --target web --out-dir studio/engine --out-name engine "$wasm"
cp studio/engine/engine_bg.wasm studio/dist/assets/engine.wasm
cp studio/ui/index.html studio/ui/login.html studio/ui/app.css studio/dist/
cp studio/ui/login.js studio/dist/assets/
cp fixtures/automotive.json studio/dist/assets/example.json
node_modules/.bin/esbuild studio/ui/app.js --bundle --format=esm --minify --sourcemap \
  --target=es2022 --outfile=studio/dist/assets/app.js --log-level=warning
raw="$(wc -c < studio/dist/assets/engine.wasm)"
gz="$(gzip -9 -c studio/dist/assets/engine.wasm | wc -c)"
app="$(gzip -9 -c studio/dist/assets/app.js | wc -c)"
printf '[build-studio] engine.wasm %s bytes (%s gzip -9), app.js %s bytes gzip -9\n' "$raw" "$gz" "$app" >&2
