#!/usr/bin/env bash
# Builds the npm package into js/: the engine compiled once to wasm32 (crates/npm),
# bound with wasm-bindgen for Node (js/node, CommonJS) and for ES module runtimes
# (js/web: Deno, Vercel and Netlify Edge, browsers), then `npm pack` -> js/micromoment-<v>.tgz.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
bash scripts/worker-setup.sh >/dev/null

cargo build --locked --release --lib --target wasm32-unknown-unknown -p micromoment-npm
wasm="target/wasm32-unknown-unknown/release/micromoment_npm.wasm"
rm -rf js/node js/web
wasm-bindgen --target nodejs --out-dir js/node --out-name micromoment "$wasm"
wasm-bindgen --target web --out-dir js/web --out-name micromoment "$wasm"
raw="$(wc -c < js/node/micromoment_bg.wasm)"
gz="$(gzip -9 -c js/node/micromoment_bg.wasm | wc -c)"
printf '[build-npm] micromoment_bg.wasm: %s bytes raw, %s bytes gzip -9\n' "$raw" "$gz" >&2
(cd js && rm -f micromoment-*.tgz && npm pack --silent >/dev/null && ls micromoment-*.tgz)
