#!/usr/bin/env bash
# Writes link/order-query.txt and link/order-pipeline.txt: the functions a
# one-shot `vitalflow query` executes, then those a pipeline run executes
# besides, which build.rs asks the linker (lld) to place first in .text, in
# that order.
#
#   scripts/symbol-order.sh BINARY DATA_DIR [LINK_DIR]
#
# BINARY is a release build; DATA_DIR the dataset the query bench leaves
# (`VITALFLOW_BENCH_QUERY_DATA=DATA_DIR vitalflow bench --query`). Needs
# valgrind (callgrind lists every function executed, not a sample).
#
# Why: the kernel maps a file's pages 64 KiB at a time around each page
# fault (fault-around), so a query that executes 6 MB of functions spread
# over 133 MB of code has ~60 MB of the binary in its RSS. Packed together,
# ~14 MB of it is mapped (README "Binary").
#
# First the query command's paths: the bench's five queries, other shapes
# an analyst writes (windows, joins, DISTINCT, a filter on a timestamp),
# every output format, and an error. Then, after them, the functions the
# pipeline runs (simulator -> SQL -> Parquet: `vitalflow bench --events`),
# so a run's executed code is packed too without spreading the query's.
#
# Symbol names carry a hash of their crate's build settings; Cargo.toml
# names the dependency features the tests and benches turn on, so
# `cargo build --release` and `cargo bench` name them alike
# (tests/it/link.rs). The files keep the names they already list (after
# this binary's); start from empty files after a dependency or toolchain
# upgrade, as symbols a binary lacks are skipped, not an error.
set -euo pipefail

binary=${1:?usage: $0 BINARY DATA_DIR [LINK_DIR]}
data=${2:?usage: $0 BINARY DATA_DIR [LINK_DIR]}
out=${3:-$(dirname "$0")/../link}
command -v valgrind >/dev/null || { echo "$0: needs valgrind" >&2; exit 2; }
pipeline=$data/query-bench.yaml
[[ -f $pipeline ]] || { echo "$0: no $pipeline (run the query bench first)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
real=$(readlink -f "$binary")

# The functions of the binary's own object (ob=) a callgrind profile
# names (fn=), recursion marks ('2) cut, unnamed code left out.
functions() {
    awk -v exe="$real" '/^ob=/ { mine = (substr($0, 4) == exe) }
        mine && /^fn=/ { name = substr($0, 4); sub(/\047[0-9]+$/, "", name); print name }' "$1" \
        | grep -v -e '^(below main)$' -e '^0x' | sort -u
}

workloads=(
    "csv|SELECT date, count(*) AS readings FROM vitals GROUP BY date ORDER BY date"
    "csv|SELECT date_trunc('hour', ts) AS hour, avg(heart_rate) AS hr, min(spo2) AS spo2_min, max(news2_score) AS news2_max FROM vitals WHERE patient_id = 'P00042' GROUP BY 1 ORDER BY 1"
    "csv|SELECT patient_id, count(*) AS low_spo2 FROM vitals WHERE spo2 <= 91 AND date BETWEEN '2026-01-02' AND '2026-01-05' GROUP BY patient_id ORDER BY low_spo2 DESC, patient_id LIMIT 10"
    "csv|SELECT date_trunc('hour', ts) AS hour, approx_percentile_cont(heart_rate, 0.5) AS p50, approx_percentile_cont(heart_rate, 0.95) AS p95 FROM vitals WHERE date = '2026-01-03' GROUP BY 1 ORDER BY 1"
    "csv|SELECT CASE WHEN p.age < 40 THEN 'under 40' WHEN p.age < 60 THEN '40-59' ELSE '60+' END AS band, count(*) AS readings, avg(v.news2_score) AS news2 FROM vitals v JOIN patients p ON v.patient_id = p.patient_id WHERE v.date = '2026-01-07' GROUP BY 1 ORDER BY 1"
    "json|SELECT patient_id, ts, heart_rate, row_number() OVER (PARTITION BY patient_id ORDER BY ts DESC) AS n FROM vitals WHERE date = '2026-01-01' AND patient_id IN ('P00001', 'P00002') ORDER BY patient_id, n LIMIT 20"
    "table|SELECT count(DISTINCT patient_id) AS patients, stddev(temperature) AS sd, median(respiratory_rate) AS rr FROM vitals WHERE ts >= TIMESTAMP '2026-01-06 12:00:00'"
    "csv|SELECT * FROM vitals WHERE date = '2026-01-02' AND news2_score >= 7 LIMIT 100"
    "csv|SELECT no_such_column FROM vitals"
)

for i in "${!workloads[@]}"; do
    format=${workloads[$i]%%|*}
    sql=${workloads[$i]#*|}
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$i" --dump-instr=no \
        --compress-strings=no --compress-pos=no --demangle=no \
        "$binary" --log warn query --format "$format" --pipeline "$pipeline" \
        --table "patients=$data/patients" "$sql" >/dev/null 2>&1 || true
    functions "$work/cg.$i" >"$work/fns.$i"
    echo "$0: workload $i: $(wc -l <"$work/fns.$i") functions" >&2
done

valgrind --tool=callgrind --callgrind-out-file="$work/cg.run" --dump-instr=no \
    --compress-strings=no --compress-pos=no --demangle=no \
    "$binary" --log warn bench --events 300000 >/dev/null 2>&1
functions "$work/cg.run" >"$work/run"
echo "$0: the pipeline: $(wc -l <"$work/run") functions" >&2

# NAMES then the lines of FILE not among them, into FILE.
merge() {
    local names=$1 file=$2
    [[ -f $file ]] || : >"$file"
    awk '!seen[$0]++' "$names" "$file" >"$work/merged"
    mv "$work/merged" "$file"
}

mkdir -p "$out"
# The query's: those most workloads execute first, then by name (a stable file).
cat "$work"/fns.* | sort | uniq -c | awk '{ print $1, $2 }' \
    | sort -k1,1nr -k2,2 | awk '{ print $2 }' >"$work/query"
merge "$work/query" "$out/order-query.txt"
# The pipeline's others.
comm -23 "$work/run" <(sort -u "$out/order-query.txt") >"$work/pipeline"
merge "$work/pipeline" "$out/order-pipeline.txt"
wc -l "$out"/order-*.txt >&2
