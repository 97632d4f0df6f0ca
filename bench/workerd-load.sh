#!/usr/bin/env bash
# Load test under local workerd: micromoment against the Workers a site would run instead,
# on the same origin, page and requests.
#   bash bench/workerd-load.sh      (ROUNDS=4 DURATION=30s CONNECTIONS=1 THREADS=1)
# Starts a static origin and, under `wrangler dev` on free loopback ports: (a)
# bench/passthrough (forwards only), (b) bench/peers/growthbook (GrowthBook's JS SDK
# deciding the same hero and sidebar, HTMLRewriter filling them, an HMAC-signed cookie),
# (c) bench/peers/handwritten (the same in plain JS), and (d) the built micromoment
# Worker with its embedded default bundle. Pages are requested at /models/suv/x5 (a new
# visitor each time: a transition, an intent, the hero experiment); the JSON API at
# /v1/decide?slots=hero,sidebar&path=/models/suv/x5. Each peer's answer is checked first
# (its hero is one of the experiment's arms or the holdout's default). Then wrk runs
# against each target in turn, ROUNDS times (interleaved, so a noisy neighbour hits every
# target alike), and the script prints per round and overall requests, req/s and
# p50/p90/p99, per round the p50 each Worker adds over (a), and CPU time per request:
# the user + system time the kernel accounts to each target's workerd process (all its
# threads) over the round, from /proc/<pid>/stat, divided by the requests wrk completed.
# (workerd's own accounting is not available locally: a tail consumer under `wrangler dev`
# gets `cpuTime` and `wallTime` 0, and `performance.now()` in workerd only moves on I/O.)
# Stops everything at the end. Prints figures; asserts nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROUNDS="${ROUNDS:-4}"; DURATION="${DURATION:-30s}"; CONNECTIONS="${CONNECTIONS:-1}"; THREADS="${THREADS:-1}"
for tool in wrk bc; do
  command -v "$tool" >/dev/null || { apt-get install -y "$tool" >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y "$tool" >/dev/null; }; }
done
bash scripts/worker-setup.sh
bash scripts/build-worker.sh   # the Worker as the sources are now
npm ci --prefix bench/peers --silent

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
ORIGIN_PORT="$(port)"; MM_PORT="$(port)"; PT_PORT="$(port)"; GB_PORT="$(port)"; JS_PORT="$(port)"
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
MM_PID=""; PT_PID=""; GB_PID=""; JS_PID=""
setsid node_modules/.bin/wrangler dev --config "$tmp/wrangler.toml" --ip 127.0.0.1 --port "$MM_PORT" --inspector-port "$(port)" \
  --persist-to "$tmp/state" --show-interactive-dev-session=false --log-level warn \
  --var "ORIGIN:http://127.0.0.1:$ORIGIN_PORT" --var "JOURNEY_KEYS:$KEYS" </dev/null >"$tmp/mm.log" 2>&1 & pids+=($!); MM_PID=$!
setsid node_modules/.bin/wrangler dev --config bench/passthrough/wrangler.toml --ip 127.0.0.1 --port "$PT_PORT" --inspector-port "$(port)" \
  --persist-to "$tmp/state-pt" --show-interactive-dev-session=false --log-level warn \
  --var "ORIGIN:http://127.0.0.1:$ORIGIN_PORT" </dev/null >"$tmp/pt.log" 2>&1 & pids+=($!); PT_PID=$!
for peer in growthbook:$GB_PORT handwritten:$JS_PORT; do
  setsid node_modules/.bin/wrangler dev --config "bench/peers/${peer%%:*}/wrangler.toml" --ip 127.0.0.1 --port "${peer#*:}" \
    --inspector-port "$(port)" --persist-to "$tmp/state-${peer%%:*}" --show-interactive-dev-session=false --log-level warn \
    --var "ORIGIN:http://127.0.0.1:$ORIGIN_PORT" </dev/null >"$tmp/${peer%%:*}.log" 2>&1 & pids+=($!)
  if [ "${peer%%:*}" = growthbook ]; then GB_PID=$!; else JS_PID=$!; fi
done
for url in "http://127.0.0.1:$MM_PORT/healthz" "http://127.0.0.1:$PT_PORT/page.html" "http://127.0.0.1:$GB_PORT/healthz" "http://127.0.0.1:$JS_PORT/healthz"; do
  deadline=$(( $(date +%s) + 300 ))
  until curl -fs -m 2 -o /dev/null "$url"; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "not ready: $url"; tail -20 "$tmp"/*.log; exit 1; }
    sleep 0.5
  done
done
PAGE=/models/suv/x5
API="/v1/decide?slots=hero,sidebar&path=/models/suv/x5"
# Warm every isolate.
for i in $(seq 50); do
  for p in "$MM_PORT" "$PT_PORT" "$GB_PORT" "$JS_PORT"; do curl -s -o /dev/null "http://127.0.0.1:$p$PAGE"; done
done
# The peers decide what micromoment decides: a new visitor on an SUV page is in
# consideration, in the hero experiment (suv-teaser, ev-teaser, or the holdout's
# brand-film), with the default sidebar.
for p in "$MM_PORT" "$GB_PORT" "$JS_PORT"; do
  page="$(curl -s "http://127.0.0.1:$p$PAGE")"
  hero="$(grep -o 'data-mm-slot="hero"[^>]*data-mm-content="[^"]*"' <<<"$page" | sed 's/.*data-mm-content="//; s/"$//')"
  sidebar="$(grep -o 'data-mm-slot="sidebar"[^>]*data-mm-content="[^"]*"' <<<"$page" | sed 's/.*data-mm-content="//; s/"$//')"
  case "$hero/$sidebar" in
    suv-teaser/model-range|ev-teaser/model-range|brand-film/model-range) echo "port $p: hero $hero, sidebar $sidebar";;
    *) echo "port $p decided hero '$hero', sidebar '$sidebar': not the scenario's"; exit 1;;
  esac
done

# CPU time the kernel accounts to the workerd processes of a wrangler dev (its process
# group, as setsid started it): utime + stime of every one, in clock ticks.
TICK="$(getconf CLK_TCK)"
cpu_ticks() {
  local total=0 pid
  [ -n "$1" ] || { echo 0; return; }
  for pid in $(ps -o pid=,comm= -g "$1" | awk '$2 ~ /^workerd/ {print $1}'); do
    # Fields after the parenthesised name: utime and stime are the 12th and 13th.
    total=$(( total + $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0) ))
  done
  echo "$total"
}
for g in "$MM_PID" "$PT_PID" "$GB_PID" "$JS_PID"; do
  [ "$(ps -o comm= -g "$g" | grep -c '^workerd')" -gt 0 ] || { echo "no workerd process under wrangler dev $g"; exit 1; }
done
# wrk's own percentiles, as one line of numbers (microseconds).
cat > "$tmp/report.lua" <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %.3f %d %d %d %d\n", summary.requests, summary.duration / 1e6,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), summary.errors.status))
end
LUA
# name|url|process group of its wrangler dev (none for the origin)
targets=(
  "origin direct|http://127.0.0.1:$ORIGIN_PORT$PAGE|"
  "(a) pass-through Worker, page|http://127.0.0.1:$PT_PORT$PAGE|$PT_PID"
  "(b) GrowthBook SDK + HTMLRewriter, page|http://127.0.0.1:$GB_PORT$PAGE|$GB_PID"
  "(c) hand-written JS + HTMLRewriter, page|http://127.0.0.1:$JS_PORT$PAGE|$JS_PID"
  "(d) micromoment, page|http://127.0.0.1:$MM_PORT$PAGE|$MM_PID"
  "(b) GrowthBook SDK, JSON API|http://127.0.0.1:$GB_PORT$API|$GB_PID"
  "(c) hand-written JS, JSON API|http://127.0.0.1:$JS_PORT$API|$JS_PID"
  "(d) micromoment, JSON API|http://127.0.0.1:$MM_PORT$API|$MM_PID"
  "(a) pass-through Worker, /healthz (a JS Worker's floor)|http://127.0.0.1:$PT_PORT/healthz|$PT_PID"
  "(d) micromoment, /healthz (the Worker's floor)|http://127.0.0.1:$MM_PORT/healthz|$MM_PID"
)
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "wrk: $THREADS threads, $CONNECTIONS connections, $ROUNDS rounds of $DURATION per target, interleaved"
: > "$tmp/results"
for round in $(seq "$ROUNDS"); do
  for i in "${!targets[@]}"; do
    IFS='|' read -r name url group <<<"${targets[$i]}"
    before="$(cpu_ticks "$group")"
    line="$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" -s "$tmp/report.lua" "$url" | grep '^RESULT')"
    ticks=$(( $(cpu_ticks "$group") - before ))
    echo "$round $i $line $ticks" >> "$tmp/results"
    set -- $line
    cpu="-"
    [ -z "$group" ] || cpu="$(printf '%.1f' "$(echo "$ticks / $TICK / $2 * 1000000" | bc -l)")"
    printf 'round %s  %-52s %7d requests %8.1f req/s  p50 %6.2f ms  p90 %6.2f ms  p99 %6.2f ms  non-2xx %d  workerd CPU %s us/request\n' \
      "$round" "$name" "$2" "$(echo "$2 / $3" | bc -l)" "$(echo "$4 / 1000" | bc -l)" "$(echo "$5 / 1000" | bc -l)" "$(echo "$6 / 1000" | bc -l)" "$7" "$cpu"
  done
done
python3 - "$tmp/results" "$TICK" "${targets[@]}" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
tick = int(sys.argv.pop(2))
names = [t.split("|")[0] for t in sys.argv[2:]]
def cpu_us(r):
    # workerd's user + system time over the round, per request wrk completed.
    return int(r[9]) / tick / int(r[3]) * 1e6
print("\noverall (median of the rounds' figures; requests and req/s over all rounds):")
by = {}
for r in rows:
    by.setdefault(int(r[1]), []).append(r)
for i, name in enumerate(names):
    rs = by.get(i, [])
    req = sum(int(r[3]) for r in rs); secs = sum(float(r[4]) for r in rs)
    med = lambda k: statistics.median(int(r[k]) for r in rs) / 1000
    cpu = "" if i == 0 else f"  workerd CPU {statistics.median(cpu_us(r) for r in rs):7.1f} us/request"
    print(f"  {name:52} {req:8d} requests {req / secs:8.1f} req/s  p50 {med(5):6.2f} ms  p90 {med(6):6.2f} ms  p99 {med(7):6.2f} ms{cpu}")
def p(i, k):
    return {r[0]: int(r[k]) for r in by.get(i, [])}
print("\np50 and p99 added over (a) the pass-through Worker, per round (ms), and the median")
print("(pages over its page; the JSON API over its /healthz, a JS Worker answering without a subrequest):")
for i in (2, 3, 4, 5, 6, 7):
    for k, label in ((5, "p50"), (7, "p99")):
        base, mine = p(1 if i <= 4 else 8, k), p(i, k)
        added = [(mine[r] - base[r]) / 1000 for r in base if r in mine]
        if added:
            print(f"  {names[i]:52} {label} {', '.join(f'{a:+.2f}' for a in added)}; median {statistics.median(added):+.2f}")
print("\nworkerd CPU time per request added over (a), per round (us), and the median:")
for i in (2, 3, 4, 5, 6, 7):
    base = {r[0]: cpu_us(r) for r in by.get(1 if i <= 4 else 8, [])}
    mine = {r[0]: cpu_us(r) for r in by.get(i, [])}
    added = [mine[r] - base[r] for r in base if r in mine]
    if added:
        print(f"  {names[i]:52} {', '.join(f'{a:+.1f}' for a in added)}; median {statistics.median(added):+.1f}")
PY
