#!/usr/bin/env bash
# Runs every vitalflow test, doing its own set-up first.
#
# Debug profile on purpose: a cold release build takes ~20 minutes on a
# 2-core machine, a debug build ~5. Benchmarks are separate (`cargo bench`).
# Set CARGO_TARGET_DIR to reuse a build cache kept outside the clone.
set -uo pipefail
cd "$(dirname "$0")/.."
log="$(mktemp -t vitalflow-test.XXXXXX.log)"

echo "== vitalflow tests: $(date -u +%FT%TZ) on $(nproc) cores"
cargo --version

# What the tests drive for real: headless Chromium through chromedriver
# (dashboard tests) and a Prometheus server (scrape test), from Debian.
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
command -v prometheus >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
# A Prometheus installed as a Debian service would hold port 9090; the test
# starts its own on a free port, so the service is not needed.
if command -v systemctl >/dev/null && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl stop prometheus || true
fi

status=0
# The crate: unit tests, integration tests (tests/it), then doc tests.
cargo test --locked --lib --bins --tests --no-fail-fast 2>&1 | tee "$log" || status=1
cargo test --locked --doc 2>&1 | tee -a "$log" || status=1

# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "vitalflow: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
