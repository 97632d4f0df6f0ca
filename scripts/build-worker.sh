#!/usr/bin/env bash
# Offline release build of the Worker (crates/worker) into build/ (wrangler's [build] command).
# worker-build takes every tool from a local path: WASM_BINDGEN_BIN (cargo-installed,
# equal to Cargo.lock's wasm-bindgen) and ESBUILD_BIN (node_modules). wasm-opt is off
# (Cargo.toml metadata): it saved about 1 % gzip here.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"
die() { printf '[build-worker] error: %s\n' "$*" >&2; exit 1; }
lock_version() {
  awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

command -v worker-build >/dev/null || die "worker-build missing: run scripts/worker-setup.sh"
[ -x node_modules/.bin/esbuild ] || die "node_modules missing: run scripts/worker-setup.sh"
export WASM_BINDGEN_BIN="${WASM_BINDGEN_BIN:-$CARGO_BIN/wasm-bindgen}"
want="$(lock_version wasm-bindgen)"
have="$("$WASM_BINDGEN_BIN" --version 2>/dev/null | awk '{print $2}' || true)"
[ "$have" = "$want" ] || die "wasm-bindgen CLI is '${have:-missing}' but Cargo.lock has $want: run scripts/worker-setup.sh"
export ESBUILD_BIN="${ESBUILD_BIN:-$PWD/node_modules/.bin/esbuild}"

# The Worker is its own crate; its build lands in build/ at the root, where wrangler.toml
# points.
worker-build --release --out-dir "$PWD/build" crates/worker

raw="$(wc -c < build/index_bg.wasm)"
gz="$(gzip -9 -c build/index_bg.wasm | wc -c)"
printf '[build-worker] build/index_bg.wasm: %s bytes raw, %s bytes gzip -9\n' "$raw" "$gz" >&2
