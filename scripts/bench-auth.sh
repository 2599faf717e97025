#!/usr/bin/env bash
# The cost of authentication on /predict, measured side by side in one run:
# the same binary serves twice from the same model, once with access
# control off (--insecure-no-auth) and once requiring an API token, and wrk
# drives each in turn with the same load (rounds alternate, so drift in the
# machine's speed hits both alike). Both servers write the audit trail.
#   scripts/bench-auth.sh [seconds] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-10}"
connections="${2:-16}"
rounds="${3:-3}"
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
bin="${VITALFLOW_BIN:-target/release/vitalflow}"
if [ -z "${VITALFLOW_BIN:-}" ]; then
  cargo bench --locked --no-run --bench pipeline
fi
work="$(mktemp -d)"
open_port=18090
token_port=18091
token="$("$bin" token create --name bench --role clinician --tokens "$work/tokens.yaml" 2>/dev/null)"
# One load generator is one principal: lift the per-principal rate limit,
# which would otherwise be what this measures.
limits=(--model-rate 100000000 --model-burst 4000000000)
"$bin" --log warn serve --addr "127.0.0.1:$open_port" --insecure-no-auth \
  --audit-dir "$work/audit-open" --tokens "$work/unused.yaml" "${limits[@]}" 2>/dev/null &
open_pid=$!
"$bin" --log warn serve --addr "127.0.0.1:$token_port" --tokens "$work/tokens.yaml" \
  --audit-dir "$work/audit-token" "${limits[@]}" &
token_pid=$!
trap 'kill $open_pid $token_pid 2>/dev/null || true; rm -rf "$work"' EXIT
for port in $open_port $token_port; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
done
# Without the token the guarded server refuses: the run measures what it claims.
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST "http://127.0.0.1:$token_port/predict")" = 401 ]

run() { # port token -> "rps p99_ms non200"
  VITALFLOW_TOKEN="$2" wrk -t1 -c"$connections" -d"${seconds}s" --latency \
    -s benches/http/predict.lua "http://127.0.0.1:$1/predict" \
    | awk '/Requests\/sec/ {rps=$2} /non-200/ {bad=$3} /^p50/ {gsub(",", ""); p99=$8} END {print rps, p99, bad}'
}
echo "== /predict, wrk -t1 -c$connections -d${seconds}s, $rounds alternating rounds"
sum_open=0; sum_token=0; p99_open=0; p99_token=0
for round in $(seq "$rounds"); do
  read -r rps99 p99 bad <<<"$(run $open_port "")"
  echo "round $round  no credential : $rps99 req/s  p99 $p99 ms  non-200 $bad"
  sum_open=$(echo "$sum_open + $rps99" | bc -l); p99_open=$(echo "$p99_open + $p99" | bc -l)
  read -r rps99 p99 bad <<<"$(run $token_port "$token")"
  echo "round $round  API token     : $rps99 req/s  p99 $p99 ms  non-200 $bad"
  sum_token=$(echo "$sum_token + $rps99" | bc -l); p99_token=$(echo "$p99_token + $p99" | bc -l)
done
echo "== mean over $rounds rounds"
printf "no credential: %.0f req/s, p99 %.3f ms\n" "$(echo "$sum_open / $rounds" | bc -l)" "$(echo "$p99_open / $rounds" | bc -l)"
printf "API token    : %.0f req/s, p99 %.3f ms\n" "$(echo "$sum_token / $rounds" | bc -l)" "$(echo "$p99_token / $rounds" | bc -l)"
printf "token/none throughput ratio: %.3f (target >= 0.95)\n" "$(echo "$sum_token / $sum_open" | bc -l)"
printf "p99 difference: %+.3f ms (target <= 0.2 ms)\n" "$(echo "($p99_token - $p99_open) / $rounds" | bc -l)"
