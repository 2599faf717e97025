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

# The Kafka tests run against a real Kafka-compatible broker: Tansu, built
# once from crates.io into a cache outside the clone (~16 min cold).
cache="${VITALFLOW_CACHE:-/opt/vitalflow-cache}"
export TANSU="${TANSU:-$cache/tansu/bin/tansu}"
if [ ! -x "$TANSU" ]; then
  echo "== installing tansu into $cache/tansu (one-off, ~16 min)"
  mkdir -p "$cache"
  cargo install tansu --version 0.6.0 --locked --features dynostore,libsql \
    --root "$cache/tansu" >"$cache/tansu-install.log" 2>&1 \
    || { tail -30 "$cache/tansu-install.log"; echo "tansu install failed"; exit 1; }
fi
# The object-store tests run against a real S3 server: s3s-fs (the s3s
# project's file-backed S3 server), built once from crates.io (~3 min).
# The tests start, stop and restart their own instances.
export VITALFLOW_S3_SERVER="${VITALFLOW_S3_SERVER:-$cache/s3s-fs/bin/s3s-fs}"
if [ ! -x "$VITALFLOW_S3_SERVER" ]; then
  echo "== installing s3s-fs into $cache/s3s-fs (one-off, ~3 min)"
  mkdir -p "$cache"
  cargo install s3s-fs --version 0.14.1 --locked --features binary \
    --root "$cache/s3s-fs" >"$cache/s3s-fs-install.log" 2>&1 \
    || { tail -30 "$cache/s3s-fs-install.log"; echo "s3s-fs install failed"; exit 1; }
fi
echo "== S3 server: $VITALFLOW_S3_SERVER"

# One shared broker for the tests that do not stop it (each uses its own
# topics and group): non-default port, durable sqlite engine.
broker_dir="$(mktemp -d -t vitalflow-broker.XXXXXX)"
port=$((20000 + RANDOM % 20000))
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
(cd "$broker_dir" && exec "$TANSU" broker \
  --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
  --storage-engine "sqlite://tansu.db" >tansu.log 2>&1) &
broker_pid=$!
trap 'kill "$broker_pid" 2>/dev/null; wait "$broker_pid" 2>/dev/null; rm -rf "$broker_dir"' EXIT
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  sleep 0.2
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null \
  || { cat "$broker_dir/tansu.log"; echo "tansu did not start"; exit 1; }
export VITALFLOW_TEST_BROKER="127.0.0.1:$port"
echo "== tansu $("$TANSU" --version 2>/dev/null | head -1) on $VITALFLOW_TEST_BROKER"

# Incremental state is dead weight for a one-off build (GBs on disk); the
# disk is shared with other work, so say how much is free up front.
export CARGO_INCREMENTAL=0
target_dir="${CARGO_TARGET_DIR:-target}"
mkdir -p "$target_dir"
echo "== disk free for $target_dir: $(df -h --output=avail "$target_dir" | tail -1 | tr -d ' ')"

status=0
# The UDF plugins (their own workspace, see udfs/README.md): the NEWS2 band
# tests, then the release dylibs the engine's plugin tests load.
# VITALFLOW_UDF_TARGET_DIR keeps their build outside the clone in CI.
udf_target="${VITALFLOW_UDF_TARGET_DIR:-$PWD/udfs/target}"
export VITALFLOW_UDF_TARGET_DIR="$udf_target"
echo "== UDF plugins (target: $udf_target)"
# Both in the release profile, so arrow 51 and friends are compiled once.
(cd udfs && cargo test --locked --release --target-dir "$udf_target") 2>&1 | tee "$log" || status=1
(cd udfs && cargo build --locked --release --target-dir "$udf_target") 2>&1 | tail -3 || status=1

# Every program above is installed: a test that cannot find one fails here
# instead of skipping itself as it does in a plain `cargo test`.
export VITALFLOW_TEST_REQUIRE_ALL=1

# The crate: unit tests, integration tests (tests/it), then doc tests.
cargo test --locked --lib --bins --tests --no-fail-fast 2>&1 | tee -a "$log" || status=1
cargo test --locked --doc 2>&1 | tee -a "$log" || status=1

# One closing line over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { printf "vitalflow: %d passed, %d failed, %d skipped\n", p, f, s }' "$log"
exit "$status"
