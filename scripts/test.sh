#!/usr/bin/env bash
# The test command: formatting, lints (native and wasm32), every test, and a build of the
# fuzz targets. Installs what it needs and skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "toolchain (rust-toolchain.toml pins it and the wasm32 target)"
rustup show active-toolchain
rustup target add wasm32-unknown-unknown >/dev/null

step "cargo fmt --check"
cargo fmt --all -- --check

step "clippy, native, all targets: the core, the crawler matcher, the CLI with its report and analysis"
cargo clippy --all-targets --locked -- -D warnings

step "clippy, wasm32: the core, the Worker, the npm package API, the studio's engine"
cargo clippy --lib --locked --target wasm32-unknown-unknown -p micromoment --no-default-features -- -D warnings
cargo clippy --lib --locked --target wasm32-unknown-unknown -p micromoment-worker -- -D warnings
cargo clippy --lib --locked --target wasm32-unknown-unknown -p micromoment-npm -- -D warnings
cargo clippy --lib --locked --target wasm32-unknown-unknown -p micromoment-studio -- -D warnings

step "tests (native: unit, conformance, scenarios, properties, CLI)"
cargo test --locked

step "analyze against its peers: gbstats 0.8.0, scipy, ChannelAttribution 2.2.5 (Python venv from PyPI)"
bash tests/peers/run.sh

step "npm package: the JS API under Node (wasm-bindgen-test), every scenario"
bash scripts/worker-setup.sh
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
  cargo test --locked --target wasm32-unknown-unknown -p micromoment-npm --test wasm

step "builds: the npm package (packed), the Worker (offline), the studio (its engine and app), the CLI"
bash scripts/build-npm.sh
bash scripts/build-worker.sh
bash scripts/build-studio.sh
cargo build --locked -p micromoment-cli --bin micromoment

step "Chromium for the browser tests (pages and reports as visitors open them)"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get install -y chromium >/dev/null 2>&1 \
    || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
fi
chromium --version

step "json-logic-js 2.0.5 for the differential test, standardwebhooks 1.1.1 to verify the Worker's webhooks (tests/peers, pinned by their lock files)"
(cd tests/peers/jsonlogic && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/peers/webhooks && npm ci --no-audit --no-fund --loglevel=error)

step "OpenFeature's web and server SDKs with their OFREP providers (examples/ofrep), schemathesis 4.32.5 for the API description (target/api-venv, PyPI)"
(cd examples/ofrep && npm ci --no-audit --no-fund --loglevel=error)
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
[ -x target/api-venv/bin/python ] || "$python" -m venv target/api-venv
target/api-venv/bin/pip freeze 2>/dev/null | grep -qi '^schemathesis==4.32.5$' \
  || target/api-venv/bin/pip install --quiet --disable-pip-version-check schemathesis==4.32.5

step "end to end: the packed npm package, the Worker under wrangler dev, the studio and pages and reports in Chromium, json-logic-js, OpenFeature's SDKs, the API description under schemathesis"
node --test tests/e2e/

step "fuzz targets build (cargo-fuzz on nightly)"
if ! cargo +nightly --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi
(cd fuzz && cargo +nightly fuzz build)
