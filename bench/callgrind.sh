#!/usr/bin/env bash
# Instructions per operation under callgrind (benches/callgrind.rs): repeatable on a busy
# machine, for judging a change to a hot path. Prints figures; asserts nothing.
#   bash bench/callgrind.sh                 every operation
#   bash bench/callgrind.sh decide verify   some of them
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v valgrind >/dev/null || { apt-get install -y valgrind >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }; }
ops=("$@")
[ ${#ops[@]} -gt 0 ] || ops=(decide decide-only decide-capped answer verify sign load-10000 load-10000-unsigned html html-tiny)
bin="$(cargo bench -p micromoment --no-default-features --bench callgrind --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "callgrind" and m.get("executable"):
        print(m["executable"])')"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
printf '%-22s %14s\n' operation "instructions/op"
for op in "${ops[@]}"; do
  case "$op" in load-*) n=3 ;; html) n=20 ;; *) n=1000 ;; esac
  valgrind --tool=callgrind --collect-atstart=no --toggle-collect='callgrind::measured' \
    --callgrind-out-file="$tmp/$op.out" "$bin" "$op" "$n" >/dev/null 2>"$tmp/$op.log"
  total="$(grep -E '^summary:|^totals:' "$tmp/$op.out" | head -1 | awk '{print $2}')"
  printf '%-22s %14s\n' "$op" "$(( total / n ))"
  [ -z "${KEEP:-}" ] || cp "$tmp/$op.out" "callgrind.$op.out"
done
