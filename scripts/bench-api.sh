#!/usr/bin/env bash
# HTTP benchmark of the model API with a real load generator (wrk) on loopback.
# Optimised build; prints requests/s and latency percentiles for /predict and /explain, and for
# GET /health as the floor (what the machine and wrk give a request that does no work).
#   scripts/bench-api.sh [seconds] [connections]
# BEFORE_BIN=path/to/an/older/vitalflow adds that binary, rounds alternating
# with this build's (same machine, same run), for before/after figures.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-15}"
connections="${2:-16}"
port=18080
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
# `cargo bench` builds the binary too (bench profile = release settings), and
# shares its build with the pipeline benchmark instead of a second one.
if [ -z "${VITALFLOW_BIN:-}" ]; then
  cargo bench --locked --no-run --bench pipeline
  VITALFLOW_BIN="${CARGO_TARGET_DIR:-target}/release/vitalflow"
fi
work="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
# One load generator is one client: lift the per-client rate limit, which
# would otherwise be what this measures.
VITALFLOW_TOKEN="$("$VITALFLOW_BIN" token create --name bench --role clinician \
  --tokens "$work/tokens.yaml" 2>/dev/null)"
export VITALFLOW_TOKEN
round() { # binary label
  local extra=()
  # (Builds before the dashboard's acknowledgements have no --acks-dir.)
  if "$1" serve --help | grep -q -- --acks-dir; then extra=(--acks-dir "$work/acks"); fi
  "$1" --log warn serve --addr "127.0.0.1:$port" \
    --tokens "$work/tokens.yaml" --audit-dir "$work/audit" "${extra[@]}" \
    --model-rate 100000000 --model-burst 4000000000 &
  local server=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
  for path in predict explain; do
    echo "== $2: POST /$path: wrk -t1 -c$connections -d${seconds}s (one wrk thread, so the server keeps a core)"
    wrk -t1 -c"$connections" -d"${seconds}s" --latency -s benches/http/predict.lua "http://127.0.0.1:$port/$path" \
      | grep -E "Requests/sec|non-200|p50|Socket errors"
  done
  echo "== $2: GET /health (the floor: no model work): wrk -t1 -c$connections -d${seconds}s"
  wrk -t1 -c"$connections" -d"${seconds}s" --latency -s benches/http/health.lua "http://127.0.0.1:$port/health" \
    | grep -E "Requests/sec|non-200|p50|Socket errors"
  kill "$server"; wait "$server" 2>/dev/null || true
}
for r in 1 2; do
  round "$VITALFLOW_BIN" "this build, round $r"
  if [ -n "${BEFORE_BIN:-}" ]; then round "$BEFORE_BIN" "before ($BEFORE_BIN), round $r"; fi
done
