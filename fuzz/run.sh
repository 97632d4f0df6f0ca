#!/usr/bin/env bash
# Runs the fuzz targets one after the other, each for SECS seconds (default 1800),
# from the committed seeds (fuzz/seeds/<target>) into a working corpus
# (fuzz/corpus/<target>, not committed). Prints each target's last libFuzzer status
# line (runs, coverage, corpus) and fails if a target found a crash.
#   SECS=60 bash fuzz/run.sh token_payload html
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${SECS:-1800}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(token token_payload link calls ofrep feed bundle_load bundle_payload bundle_compile rule html request)
fi
mkdir -p fuzz/corpus fuzz/logs
status=0
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t" "fuzz/seeds/$t"
  log="fuzz/logs/$t.log"
  if (cd fuzz && cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2560 -timeout=10 -print_final_stats=1) >"$log" 2>&1; then
    verdict="ok"
  else
    verdict="CRASH (see $log and fuzz/artifacts/$t)"
    status=1
  fi
  runs=$(grep -E "^stat::number_of_executed_units" "$log" | awk '{print $2}' | tail -1)
  last=$(grep -E "^#[0-9]+" "$log" | tail -1)
  printf '%s: %s, %s runs in %s s; %s\n' "$t" "$verdict" "${runs:-?}" "$SECS" "$last"
done
exit $status
