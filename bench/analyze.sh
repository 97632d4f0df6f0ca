#!/usr/bin/env bash
# `micromoment analyze` over 1,000,000 log lines (BENCHMARKS.md: ≤ 10 s on 2 cores): lines
# simulated through the real engine (`analyze-generate`), then the analysis timed with
# its peak memory by /usr/bin/time -v. A benchmark, not a test: it prints figures.
set -euo pipefail
cd "$(dirname "$0")/.."

lines=${LINES:-1000000}
people=${PEOPLE:-70000}
work=target/bench-analyze
mkdir -p "$work"
cargo build --release --locked --bin micromoment
mm=target/release/micromoment
logs=$work/logs.ndjson
if [[ ! -s $logs || $(wc -l <"$logs") -ne $lines ]]; then
  # Enough people for the line count; the first $lines lines are kept.
  "$mm" analyze-generate --bundle fixtures/automotive.json --people "$people" --seed 1 --noise-every 50 \
    -o "$work/all.ndjson" 2>"$work/truth.json"
  total=$(wc -l <"$work/all.ndjson")
  if ((total < lines)); then
    echo "only $total lines from $people people: raise PEOPLE" >&2
    exit 1
  fi
  head -n "$lines" "$work/all.ndjson" >"$logs"
  rm "$work/all.ndjson"
fi
printf 'logs: %s lines, %s bytes\n' "$(wc -l <"$logs")" "$(wc -c <"$logs")"
for run in 1 2 3; do
  /usr/bin/time -v "$mm" analyze "$logs" --bundle fixtures/automotive.json --json -o "$work/results.html" \
    >"$work/results.json" 2>"$work/time-$run.txt"
  wall=$(grep 'Elapsed (wall clock)' "$work/time-$run.txt" | awk '{print $NF}')
  rss=$(grep 'Maximum resident set size' "$work/time-$run.txt" | awk '{print $NF}')
  user=$(grep 'User time' "$work/time-$run.txt" | awk '{print $NF}')
  printf 'run %s: wall %s, user %ss, peak RSS %s KiB\n' "$run" "$wall" "$user" "$rss"
done
grep '^read ' "$work/time-1.txt"
