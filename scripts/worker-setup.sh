#!/usr/bin/env bash
# Installs what the offline Worker build and `wrangler dev` need, each step skipped when
# the right version is already there:
#   - the wasm32-unknown-unknown target (rust-toolchain.toml pins it)
#   - wasm-bindgen-cli at exactly the wasm-bindgen version in Cargo.lock
#   - worker-build 0.8.7
#   - wrangler and esbuild from package-lock.json (npm ci)
# Only crates.io and the npm registry are used: nothing is downloaded from GitHub.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

WORKER_BUILD_VERSION="0.8.7"
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

log() { printf '[worker-setup] %s\n' "$*" >&2; }
lock_version() {
  awk -v n="$1" '$0 == "name = \"" n "\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock
}

rustup target add wasm32-unknown-unknown >/dev/null 2>&1 || rustup target add wasm32-unknown-unknown

WB_VERSION="$(lock_version wasm-bindgen)"
have_wb="$("$CARGO_BIN/wasm-bindgen" --version 2>/dev/null | awk '{print $2}' || true)"
if [ "$have_wb" != "$WB_VERSION" ]; then
  log "installing wasm-bindgen-cli $WB_VERSION (have: ${have_wb:-none}), several minutes"
  # Its published lock file can pin a crate the registry mirror lacks: fall back to a
  # fresh resolve of the same version.
  cargo install wasm-bindgen-cli --version "$WB_VERSION" --locked --force \
    || cargo install wasm-bindgen-cli --version "$WB_VERSION" --force
fi

have_wbuild="$("$CARGO_BIN/worker-build" --version 2>/dev/null || true)"
if [ "$have_wbuild" != "$WORKER_BUILD_VERSION" ]; then
  log "installing worker-build $WORKER_BUILD_VERSION (have: ${have_wbuild:-none}), several minutes"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --force \
    || cargo install worker-build --version "$WORKER_BUILD_VERSION" --force
fi

stamp="node_modules/.mm-package-lock.sha256"
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x node_modules/.bin/wrangler ]; }; then
  log "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  printf '%s\n' "$want" > "$stamp"
fi
log "ok: wasm-bindgen $WB_VERSION, worker-build $WORKER_BUILD_VERSION, wrangler $(node_modules/.bin/wrangler --version 2>/dev/null | tail -1)"
