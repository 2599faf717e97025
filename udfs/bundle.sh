#!/usr/bin/env bash
# Print a single-file Arroyo UDF definition for one plugin crate of this workspace.
#
# Arroyo's UDF compiler takes ONE lib.rs (plus crates.io dependencies declared in a
# `/* [dependencies] ... */` comment); it cannot see the path dependency `news2_table`. This
# script appends the table crate as an inline `mod news2_table { ... }`, so the crate's own
# source, including its #[udf] function, is used unchanged (`news2_table::...` paths resolve to
# the inline module).
#
#   ./bundle.sh news2 > /tmp/news2.rs     # paste into Arroyo's UDF editor / API `definition`
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
crate="${1:?usage: $0 <news2|news2_missing|news2_max_param>}"
src="$here/$crate/src/lib.rs"
[ -f "$src" ] || { echo "no such crate: $crate" >&2; exit 1; }
grep -q '^#\[udf' "$src" || { echo "$crate has no #[udf] function" >&2; exit 1; }
cat "$src"
printf '\n// ---- inlined from udfs/news2_table/src/lib.rs by udfs/bundle.sh ----\n'
printf '#[allow(dead_code)]\nmod news2_table {\n'
cat "$here/news2_table/src/lib.rs"
printf '}\n'
