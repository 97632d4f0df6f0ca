#!/usr/bin/env bash
# Load test under local workerd: micromoment vs a pass-through Worker on the same origin.
#   bash bench/workerd-load.sh            (DURATION=20s CONNECTIONS=8 THREADS=2)
# Starts a static origin, the built micromoment Worker and bench/passthrough under
# `wrangler dev` on free loopback ports, runs wrk against each, prints latency and
# throughput, and stops everything. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION="${DURATION:-20s}"; CONNECTIONS="${CONNECTIONS:-1}"; THREADS="${THREADS:-1}"
command -v wrk >/dev/null || { apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }; }
bash scripts/worker-setup.sh
[ -f build/worker/shim.mjs ] || bash scripts/build-worker.sh

export WRANGLER_SEND_METRICS=false CI=true
tmp="$(mktemp -d /tmp/mm-load.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done; sleep 1; for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$tmp/site"
python3 - "$tmp/site/page.html" <<'PY'
import sys
body = "".join(f"<p>Paragraph {i}: the 2027 range, financing and service.</p>" for i in range(300))
open(sys.argv[1], "w").write(f"""<!doctype html><html><head><title>Acme</title></head><body>
<div data-mm-slot="hero"><p>origin hero</p></div>{body}
<aside data-mm-slot="sidebar">origin sidebar</aside></body></html>""")
PY
ORIGIN_PORT="$(port)"; MM_PORT="$(port)"; PT_PORT="$(port)"
# A keep-alive origin in Node, so the origin is not what is measured.
cat > "$tmp/origin.mjs" <<'JS'
import { createServer } from "node:http";
import { readFileSync } from "node:fs";
const page = readFileSync(process.argv[2]);
createServer((req, res) => {
  res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-length": page.length });
  res.end(page);
}).listen(Number(process.argv[3]), "127.0.0.1");
JS
setsid node "$tmp/origin.mjs" "$tmp/site/page.html" "$ORIGIN_PORT" >/dev/null 2>&1 & pids+=($!)
sed -e '/^\[build\]/,/^$/d' -e "s|^main = .*|main = \"$PWD/build/worker/shim.mjs\"|" wrangler.toml > "$tmp/wrangler.toml"
KEYS='{"current":"k1","keys":{"k1":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}}'
setsid node_modules/.bin/wrangler dev --config "$tmp/wrangler.toml" --ip 127.0.0.1 --port "$MM_PORT" --inspector-port "$(port)" \
  --persist-to "$tmp/state" --show-interactive-dev-session=false --log-level warn \
  --var "ORIGIN:http://127.0.0.1:$ORIGIN_PORT" --var "JOURNEY_KEYS:$KEYS" </dev/null >"$tmp/mm.log" 2>&1 & pids+=($!)
setsid node_modules/.bin/wrangler dev --config bench/passthrough/wrangler.toml --ip 127.0.0.1 --port "$PT_PORT" --inspector-port "$(port)" \
  --persist-to "$tmp/state-pt" --show-interactive-dev-session=false --log-level warn \
  --var "ORIGIN:http://127.0.0.1:$ORIGIN_PORT" </dev/null >"$tmp/pt.log" 2>&1 & pids+=($!)
for url in "http://127.0.0.1:$MM_PORT/healthz" "http://127.0.0.1:$PT_PORT/page.html"; do
  deadline=$(( $(date +%s) + 300 ))
  until curl -fs -m 2 -o /dev/null "$url"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "not ready: $url"; tail -20 "$tmp"/*.log; exit 1; }
    sleep 0.5
  done
done
# Warm both isolates.
for i in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$MM_PORT/page.html"; curl -s -o /dev/null "http://127.0.0.1:$PT_PORT/page.html"; done

run() { # name url
  echo "== $1: $2"
  wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$2" | grep -E "Latency|50%|90%|99%|requests in|Requests/sec|Non-2xx"
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); wrk $THREADS threads, $CONNECTIONS connections, $DURATION each"
run "origin direct" "http://127.0.0.1:$ORIGIN_PORT/page.html"
run "pass-through worker, page" "http://127.0.0.1:$PT_PORT/page.html"
run "micromoment, page (2 slots rewritten)" "http://127.0.0.1:$MM_PORT/page.html"
run "micromoment, /v1/decide (3 slots)" "http://127.0.0.1:$MM_PORT/v1/decide?slots=hero,sidebar,banner"
