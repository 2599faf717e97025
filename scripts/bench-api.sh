#!/usr/bin/env bash
# HTTP benchmark of the model API with a real load generator (wrk) on loopback.
# Optimised build; prints requests/s and latency percentiles for /predict and /explain.
#   scripts/bench-api.sh [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
connections="${2:-32}"
port=18080
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# `cargo bench` builds the binary too (bench profile = release settings), and
# shares its build with the pipeline benchmark instead of a second one.
cargo bench --locked --no-run --bench pipeline
# One load generator is one client: lift the per-client rate limit, which
# would otherwise be what this measures.
work="$(mktemp -d)"
VITALFLOW_TOKEN="$(target/release/vitalflow token create --name bench --role clinician \
  --tokens "$work/tokens.yaml" 2>/dev/null)"
export VITALFLOW_TOKEN
target/release/vitalflow --log warn serve --addr "127.0.0.1:$port" \
  --tokens "$work/tokens.yaml" --audit-dir "$work/audit" \
  --model-rate 100000000 --model-burst 4000000000 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
for path in predict explain; do
  echo "== POST /$path: wrk -t1 -c$connections -d${seconds}s (one wrk thread, so the server keeps a core)"
  wrk -t1 -c"$connections" -d"${seconds}s" --latency -s benches/http/predict.lua "http://127.0.0.1:$port/$path" \
    | grep -E "Requests/sec|Latency|non-200|p50|Socket errors"
done
