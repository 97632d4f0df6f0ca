#!/usr/bin/env bash
# The run command: the edge Worker under `wrangler dev` (local workerd) with the embedded
# default bundle on http://127.0.0.1:8787 (with no ORIGIN, the demo site), and the studio
# (studio/, docs/studio.md) on http://127.0.0.1:8788, sharing one local KV (.wrangler/state)
# so that a publish in the studio changes what the edge serves. Installs what it needs
# first; creates .dev.vars and studio/.dev.vars with fresh development secrets if missing.
#   PORT=9000 STUDIO_PORT=9001 ORIGIN=http://127.0.0.1:8080 scripts/dev.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/worker-setup.sh

if [ ! -f .dev.vars ]; then
  key="$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
  preview="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  cat > .dev.vars <<VARS
# Development secrets for wrangler dev (never deploy these; use wrangler secret put).
JOURNEY_KEYS={"current":"dev","keys":{"dev":"$key"}}
MM_PREVIEW_SECRET=$preview
VARS
  echo "[dev] wrote .dev.vars (JOURNEY_KEYS, MM_PREVIEW_SECRET=$preview)" >&2
fi
# The backend API's bearer token (/v1/profiles/...), added to an older .dev.vars too.
if ! grep -q '^MM_BACKEND_TOKEN=' .dev.vars; then
  backend="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  echo "MM_BACKEND_TOKEN=$backend" >> .dev.vars
  echo "[dev] added MM_BACKEND_TOKEN=$backend to .dev.vars" >&2
fi

# The studio's secrets: the Ed25519 key it signs bundles with (the edge gets its public
# half as BUNDLE_PUBKEY) and the key of its development sign-in cookie.
if [ ! -f studio/.dev.vars ]; then
  node -e '
    const { generateKeyPairSync, randomBytes } = require("node:crypto");
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(-32).toString("base64");
    const pub = publicKey.export({ format: "der", type: "spki" }).subarray(-32).toString("base64");
    console.log("# Development secrets of the studio (never deploy these; use wrangler secret put).");
    console.log(`MM_SIGNING_KEY=${seed}`);
    console.log(`# BUNDLE_PUBKEY=${pub} (the edge verifies the studio'"'"'s bundles with it)`);
    console.log(`MM_SESSION_KEY=${randomBytes(32).toString("base64")}`);
  ' > studio/.dev.vars
  echo "[dev] wrote studio/.dev.vars (MM_SIGNING_KEY, MM_SESSION_KEY)" >&2
fi
pubkey="$(sed -n 's/^# BUNDLE_PUBKEY=\([^ ]*\).*/\1/p' studio/.dev.vars)"

export WRANGLER_SEND_METRICS=false
state="$PWD/.wrangler/state"
port="${PORT:-8787}"
studio_port="${STUDIO_PORT:-8788}"
args=(dev --ip 127.0.0.1 --port "$port" --persist-to "$state" --var MM_DEV:1 --show-interactive-dev-session=false)
[ -n "${ORIGIN:-}" ] && args+=(--var "ORIGIN:$ORIGIN")
[ -n "$pubkey" ] && args+=(--var "BUNDLE_PUBKEY:$pubkey")
studio_args=(dev --ip 127.0.0.1 --port "$studio_port" --inspector-port 0 --persist-to "$state" --var MM_DEV:1
  --var "EDGE_URL:http://127.0.0.1:$port" --show-interactive-dev-session=false)
[ -n "$pubkey" ] && studio_args+=(--var "BUNDLE_PUBKEY:$pubkey")

node_modules/.bin/wrangler "${args[@]}" &
edge=$!
(cd studio && exec ../node_modules/.bin/wrangler "${studio_args[@]}") &
studio=$!
trap 'kill "$edge" "$studio" 2>/dev/null || true' EXIT INT TERM
echo "[dev] the edge on http://127.0.0.1:$port (the demo site; /v1/bundle, /v1/decide?slots=hero,sidebar)" >&2
echo "[dev] the studio on http://127.0.0.1:$studio_port (sign in with your name)" >&2
wait -n "$edge" "$studio"
