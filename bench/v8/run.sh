#!/usr/bin/env bash
# The V8 comparison in one command: installs the pinned peers (bench/v8/package-lock.json),
# builds the npm package and the CLI (which compiles the .mmb files of the load figures),
# then runs compare.mjs. Prints figures; exits 1 only when a peer's answers differ.
#   bash bench/v8/run.sh            (ROUNDS, BATCH_MS, SAMPLES, PARTS: see compare.mjs)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
stamp="bench/v8/node_modules/.mm-package-lock.sha256"
want="$(sha256sum bench/v8/package-lock.json | cut -d' ' -f1)"
if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; }; then
  npm ci --prefix bench/v8 --no-audit --no-fund --loglevel=error
  printf '%s\n' "$want" > "$stamp"
fi
bash scripts/build-npm.sh >/dev/null
cargo build --locked --release --bin micromoment
exec node bench/v8/compare.mjs
