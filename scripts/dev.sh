#!/usr/bin/env bash
# The run command: the Worker under `wrangler dev` (local workerd) with the embedded
# default bundle, on http://127.0.0.1:8787, with the profiles' Durable Object (local
# SQLite). Installs what it needs first; creates a .dev.vars with fresh development
# secrets if there is none.
#   PORT=9000 ORIGIN=http://127.0.0.1:8080 scripts/dev.sh
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

export WRANGLER_SEND_METRICS=false
args=(dev --ip 127.0.0.1 --port "${PORT:-8787}" --var MM_DEV:1 --show-interactive-dev-session=false)
[ -n "${ORIGIN:-}" ] && args+=(--var "ORIGIN:$ORIGIN")
echo "[dev] serving on http://127.0.0.1:${PORT:-8787} (try /healthz, /v1/bundle, /v1/decide?slots=hero,sidebar)" >&2
exec node_modules/.bin/wrangler "${args[@]}"
