#!/usr/bin/env bash
# Where a one-shot `vitalflow query` spends its start-up: the figures the
# README's query-benchmark section quotes (time, system time and page faults;
# threads started; the binary's pages mapped at exit; the share of page
# faults taken by the dynamic loader's relocations).
#
#   scripts/query-startup.sh BINARY PIPELINE [SQL] [RUNS]
#
# PIPELINE is a pipeline file whose datasets exist, e.g. the one the query
# bench leaves with `VITALFLOW_BENCH_QUERY_DATA=DIR vitalflow bench --query`
# (DIR/query-bench.yaml). Needs perf, strace and a C compiler (cc).
set -euo pipefail

binary=${1:?usage: $0 BINARY PIPELINE [SQL] [RUNS]}
pipeline=${2:?usage: $0 BINARY PIPELINE [SQL] [RUNS]}
sql=${3:-SELECT date, count(*) AS readings FROM vitals GROUP BY date ORDER BY date}
runs=${4:-20}
for tool in perf strace cc; do
    command -v "$tool" >/dev/null || { echo "$0: needs $tool" >&2; exit 2; }
done
query=("$binary" --log warn query --format csv --pipeline "$pipeline" "$sql")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== time, system time and page faults (perf stat, $runs runs)"
perf stat -r "$runs" -e task-clock,page-faults,user_time,system_time "${query[@]}" \
    2>&1 >/dev/null | grep -E 'task-clock|page-faults|user_time|system_time|elapsed'

echo "== threads started (strace -f)"
strace -f -qq -e trace=clone3,clone -o "$work/strace" "${query[@]}" >/dev/null
echo "$(grep -cE 'clone3?\(' "$work/strace") threads"

echo "== page faults by where they happened (perf record -e page-faults)"
perf record -q -e page-faults -c 1 -o "$work/faults" -- "${query[@]}" >/dev/null 2>&1
perf report -i "$work/faults" --stdio --sort dso 2>/dev/null | grep -E '^ +[0-9]' | head -5
echo "(ld-linux: the loader, mostly applying relocations to .data.rel.ro)"

echo "== the binary's pages mapped when the process exits (/proc/self/smaps)"
cat >"$work/dump.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
__attribute__((destructor)) static void dump(void) {
    FILE *in = fopen("/proc/self/smaps", "r"), *out = fopen(getenv("SMAPS_OUT"), "w");
    char buf[4096];
    size_t n;
    if (!in || !out) return;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
}
EOF
cc -O2 -shared -fPIC -o "$work/dump.so" "$work/dump.c"
SMAPS_OUT="$work/smaps" LD_PRELOAD="$work/dump.so" "${query[@]}" >/dev/null
real=$(readlink -f "$binary")
awk -v exe="$real" '
    /^[0-9a-f]+-[0-9a-f]+ / { mine = ($6 == exe); perms = $2; size = 0 }
    mine && /^Size:/ { size = $2 }
    mine && /^Rss:/ { rss[perms] += $2; total[perms] += size }
    mine && /^Anonymous:/ { anon[perms] += $2 }
    END {
        for (p in rss)
            printf "%s: %.1f MB of %.1f MB mapped, %.1f MB of it private copies (relocated)\n",
                p, rss[p] / 1024, total[p] / 1024, anon[p] / 1024
    }' "$work/smaps"
echo "(r-xp: code; r--p: constants and .data.rel.ro)"
