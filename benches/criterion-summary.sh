#!/usr/bin/env bash
# The medians of the last criterion run, per item, for every naive / fair /
# adapter group: ns per item of each, adapter / fair (adapter / naive where a
# workload has no fair baseline), and the overhead adapter - naive in ns per
# item. Reads <target>/criterion/<group>/<variant>/new/estimates.json
# (CARGO_TARGET_DIR, default target/).
#
#   cargo bench --bench stream_adapters && bash benches/criterion-summary.sh
#   bash benches/criterion-summary.sh stream_     # groups whose name contains it
#
# Criterion measures a group's variants one after the other; on a noisy
# machine prefer the interleaved medians (LOOPSCOPE_INTERLEAVE, BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${CARGO_TARGET_DIR:-target}/criterion
filter=${1:-}

# Median ns per item of one variant, or nothing.
median() {
    local estimates=$1/new/estimates.json benchmark=$1/new/benchmark.json items
    [[ -f $estimates ]] || return 0
    items=$(grep -o '"Elements":[0-9]*' "$benchmark" | cut -d : -f 2)
    sed -E 's/.*"median":\{"confidence_interval":\{[^}]*\},"point_estimate":([-0-9.e+]+).*/\1/' "$estimates" |
        awk -v items="${items:-1}" '{ printf "%.2f", $1 / items }'
}

printf '%-32s %10s %10s %10s %8s %10s   (criterion medians, ns per item)\n' \
    group naive fair adapter /fair -naive
for group in "$dir"/*/; do
    name=$(basename "$group")
    [[ $name == *"$filter"* && -d $group/naive && -d $group/adapter ]] || continue
    naive=$(median "$group/naive")
    fair=$(median "$group/fair")
    adapter=$(median "$group/adapter")
    awk -v g="$name" -v n="$naive" -v f="$fair" -v a="$adapter" 'BEGIN {
        against = (f == "") ? n : f
        printf "%-32s %10.2f %10s %10.2f %8.3f %+10.2f\n", g, n, (f == "") ? "=naive" : f, a, a / against, a - n
    }'
done
