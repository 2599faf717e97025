#!/usr/bin/env bash
# Run one integration test (or a filter) N times in a row and count the
# outcomes: the check that a fix for a flaky test holds. Not part of CI.
#
#   scripts/repeat-test.sh 20 browser::
#
# Uses the same set-up as scripts/test.sh expects (chromium, chromedriver,
# tansu, s3s-fs installed); builds once, then runs the test binary directly.
set -uo pipefail
cd "$(dirname "$0")/.."
runs="${1:?usage: $0 RUNS FILTER}"
filter="${2:?usage: $0 RUNS FILTER}"
cargo test --locked --test it --no-run 2>&1 | tail -1
binary="$(cargo test --locked --test it --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*"' | tail -1 | cut -d'"' -f4)"
[ -x "$binary" ] || { echo "test binary not found"; exit 1; }
passed=0; failed=0
for i in $(seq 1 "$runs"); do
  started=$(date +%s)
  if "$binary" "$filter" --test-threads=1 >"/tmp/repeat-test-$i.log" 2>&1; then
    passed=$((passed + 1)); verdict=ok
  else
    failed=$((failed + 1)); verdict="FAILED (log: /tmp/repeat-test-$i.log)"
  fi
  echo "run $i/$runs: $verdict in $(( $(date +%s) - started )) s"
done
# Live processes only: a killed Chromium helper stays a zombie (already
# dead) until init reaps it, which takes a moment.
left="$(ps -eo stat=,args= | awk '$1 !~ /^Z/ && /[c]hromium|[c]hromedriver/' | wc -l)"
echo "$filter: $passed passed, $failed failed of $runs runs; browser processes left: ${left:-0}"
[ "$failed" -eq 0 ]
