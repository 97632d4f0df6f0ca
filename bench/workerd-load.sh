#!/usr/bin/env bash
# Load test under local workerd: micromoment vs a pass-through Worker on the same origin.
#   bash bench/workerd-load.sh      (ROUNDS=4 DURATION=30s CONNECTIONS=1 THREADS=1)
# Starts a static origin, the built micromoment Worker and bench/passthrough under
# `wrangler dev` on free loopback ports, then runs wrk against each target in turn,
# ROUNDS times (interleaved, so a noisy neighbour hits every target alike), and prints
# per round and overall: requests, req/s, p50/p90/p99. The added latency is micromoment's
# page p50 less the pass-through's, per round. Stops everything at the end. Prints
# figures; asserts nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${ROUNDS:-4}"; DURATION="${DURATION:-30s}"; CONNECTIONS="${CONNECTIONS:-1}"; THREADS="${THREADS:-1}"
for tool in wrk bc; do
  command -v "$tool" >/dev/null || { apt-get install -y "$tool" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$tool" >/dev/null; }; }
done
bash scripts/worker-setup.sh
bash scripts/build-worker.sh   # the Worker as the sources are now

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

# wrk's own percentiles, as one line of numbers (microseconds).
cat > "$tmp/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %.3f %d %d %d %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), summary.errors.status))
end
LUA
targets=(
  "origin direct|http://127.0.0.1:$ORIGIN_PORT/page.html"
  "pass-through Worker, page|http://127.0.0.1:$PT_PORT/page.html"
  "micromoment, page (2 slots decided and filled)|http://127.0.0.1:$MM_PORT/page.html"
  "micromoment, /v1/decide (3 slots)|http://127.0.0.1:$MM_PORT/v1/decide?slots=hero,sidebar,banner"
  "micromoment, /healthz (the Worker's floor)|http://127.0.0.1:$MM_PORT/healthz"
  "pass-through Worker, /healthz (a JS Worker's floor)|http://127.0.0.1:$PT_PORT/healthz"
)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: $THREADS threads, $CONNECTIONS connections, $ROUNDS rounds of $DURATION per target, interleaved"
: > "$tmp/results"
for round in $(seq "$ROUNDS"); do
  for i in "${!targets[@]}"; do
    name="${targets[$i]%%|*}"; url="${targets[$i]#*|}"
    line="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$tmp/report.lua" "$url" | grep '^RESULT')"
    echo "$round $i $line" >> "$tmp/results"
    set -- $line
    printf 'round %s  %-52s %7d requests %8.1f req/s  p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  non-2xx %d\n' \
      "$round" "$name" "$2" "$(echo "$2 / $3" | bc -l)" "$(echo "$4 / 1000" | bc -l)" "$(echo "$5 / 1000" | bc -l)" "$(echo "$6 / 1000" | bc -l)" "$7"
  done
done
python3 - "$tmp/results" "${targets[@]}" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
names = [t.split("|")[0] for t in sys.argv[2:]]
print("\noverall (median of the rounds' figures; requests and req/s over all rounds):")
by = {}
for r in rows:
    by.setdefault(int(r[1]), []).append(r)
for i, name in enumerate(names):
    rs = by.get(i, [])
    req = sum(int(r[3]) for r in rs); secs = sum(float(r[4]) for r in rs)
    med = lambda k: statistics.median(int(r[k]) for r in rs) / 1000
    print(f"  {name:52} {req:8d} requests {req / secs:8.1f} req/s  p50 {med(5):6.2f} ms  p90 {med(6):6.2f} ms  p99 {med(7):6.2f} ms")
pt = {r[0]: int(r[5]) for r in by.get(1, [])}
mm = {r[0]: int(r[5]) for r in by.get(2, [])}
added = [(mm[k] - pt[k]) / 1000 for k in pt if k in mm]
print(f"\nadded p50 latency of the page proxy, per round: {', '.join(f'{a:+.2f}' for a in added)} ms; median {statistics.median(added):+.2f} ms")
PY
