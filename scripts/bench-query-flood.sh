#!/usr/bin/env bash
# /predict under a flood of expensive SQL: the model API's latency with and
# without concurrent analysts' queries that join the whole dataset, same
# server, same run. The queries run on their own thread pool with a memory
# pool, a timeout and a concurrency limit; the target is /predict p99 within
# 2x of its unloaded value.
#   scripts/bench-query-flood.sh [seconds] [connections] [flooders]
# VITALFLOW_BIN picks the binary (default: the optimised build).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
connections="${2:-16}"
flooders="${3:-4}"
port=18081
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
bin="${VITALFLOW_BIN:-target/release/vitalflow}"
[ -x "$bin" ] || cargo bench --locked --no-run --bench pipeline
data="$(mktemp -d -t vitalflow-flood.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$data"
}
trap cleanup EXIT
# One token for both load generators (clinician for /predict, analyst for SQL).
VITALFLOW_TOKEN="$("$bin" token create --name bench --role clinician --role analyst \
  --tokens "$data/tokens.yaml" 2>/dev/null)"
export VITALFLOW_TOKEN

echo "== dataset: 500,000 scored readings of 50 patients"
"$bin" --log error bench --events 500000 --output "$data/vitals" | grep -E "rows stored"
# The load generators are one client each: per-client rate limits are lifted
# so that the isolation of the query runtime is what this measures.
VITALFLOW_DATA_DIR="$data" "$bin" --log error serve --addr "127.0.0.1:$port" \
  --pipeline pipelines/vitals.yaml --query-timeout 5s \
  --tokens "$data/tokens.yaml" --audit-dir "$data/audit" \
  --query-rate 100000 --query-burst 100000 --model-rate 100000000 --model-burst 4000000000 &
pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done

predict() {
  wrk -t1 -c"$connections" -d"${seconds}s" --latency -s benches/http/predict.lua \
    "http://127.0.0.1:$port/predict" | tee "$data/wrk-$1.txt" | grep -E "Requests/sec|  99%|non-2xx"
}
echo "== /predict alone: wrk -t1 -c$connections -d${seconds}s"
predict alone

# The flood: `flooders` connections, each sending a self-join on patient
# (every pair of one patient's readings: ~2.5e9 rows to count) again as soon
# as the answer or the refusal comes back. wrk, not a shell loop: forking a
# client per request would load the 2 cores more than the server does.
wrk -t1 -c"$flooders" -d"$((seconds + 4))s" -s benches/http/flood.lua \
  "http://127.0.0.1:$port/api/query" >"$data/flood.txt" 2>&1 &
pids+=($!)
sleep 2
echo "== /predict with $flooders clients flooding /api/query"
predict flooded
wait "${pids[-1]}" 2>/dev/null || true
grep "answers" "$data/flood.txt" || true

p99() { awk '/  99%/ { v=$2; if (v ~ /us$/) { sub(/us/,"",v); v/=1000 } else if (v ~ /ms$/) { sub(/ms/,"",v) } else if (v ~ /s$/) { sub(/s/,"",v); v*=1000 } print v }' "$1"; }
alone="$(p99 "$data/wrk-alone.txt")"
flooded="$(p99 "$data/wrk-flooded.txt")"
awk -v a="$alone" -v f="$flooded" 'BEGIN { printf "/predict p99: %.2f ms alone, %.2f ms flooded: %.2fx (target <= 2x)\n", a, f, f / a }'
