#!/usr/bin/env bash
# Instruction counts of every adapter against its two baselines, in one run:
# the deterministic half of the performance contract (DESIGN.md, "Performance
# contract"). Per workload, instructions per item of
#   naive    the plain loop, body inline (what the guarantees cost),
#   fair     the same closures with the same guarantees by hand,
#            loopscope_benches::fair (what the adapter itself costs),
#   adapter  the loopscope adapter;
# the ratio adapter / fair (the target), the overhead adapter - naive in
# instructions per item (reported, never targeted), and the heap allocations
# per item of each variant. The sync workloads have no separate fair baseline
# (it is the naive loop): their ratio is adapter / naive.
#
# Usage:
#   bash benches/callgrind.sh                     # every workload of sync_adapters
#   bash benches/callgrind.sh files_for_each ...  # only these workloads
#   bash benches/callgrind.sh --bench stream_adapters [workload ...]
#   bash benches/callgrind.sh --bench concurrent_adapters
#   LOOPSCOPE_CALLGRIND_FEATURES=tokio bash benches/callgrind.sh --bench concurrent_adapters
#   LOOPSCOPE_CALLGRIND_REPS=20 bash benches/callgrind.sh
#   LOOPSCOPE_CALLGRIND_FEATURES=tracing bash benches/callgrind.sh  # extra features
#
# Needs valgrind. It builds the bench binary of benches/benches/<bench>.rs (--bench, or
# LOOPSCOPE_CALLGRIND_BENCH; default sync_adapters) in the bench (release)
# profile, one codegen unit, then runs every variant of every workload, each in
# its own process, under
#   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*callgrind_measured*'
# with LOOPSCOPE_CALLGRIND=<workload>/<variant>. The binary then skips criterion
# and calls the variant LOOPSCOPE_CALLGRIND_REPS times (default 10) inside its
# #[inline(never)] function callgrind_measured, after one uncounted warm-up run;
# only what executes inside that function is counted (see the top of
# benches/benches/sync_adapters.rs). Counts are per item: total / reps / 1,000
# items. Allocations are the calls to malloc, calloc, realloc, posix_memalign,
# aligned_alloc and memalign that callgrind records inside the same function
# (no counting allocator in the binary, so the instruction counts are not
# disturbed). Kernel work (the file workloads' system calls) is not counted.
#
# The callgrind.out files go to a temporary directory, removed on exit. Exits
# non-zero if a ratio is above the target (LOOPSCOPE_CALLGRIND_TARGET; default
# 1.02 for sync_adapters, against the naive loop; 1.05 for stream_adapters and
# concurrent_adapters, against the fair baseline).
set -euo pipefail
cd "$(dirname "$0")/.."

bench=${LOOPSCOPE_CALLGRIND_BENCH:-sync_adapters}
if (($# > 0)) && [[ $1 == --bench ]]; then
    (($# >= 2)) || {
        echo "callgrind.sh: --bench needs a bench name" >&2
        exit 2
    }
    bench=$2
    shift 2
elif (($# > 0)) && [[ $1 == --bench=* ]]; then
    bench=${1#--bench=}
    shift
fi
case $bench in
stream_adapters | concurrent_adapters) default_target=1.05 ;;
*) default_target=1.02 ;;
esac

reps=${LOOPSCOPE_CALLGRIND_REPS:-10}
target=${LOOPSCOPE_CALLGRIND_TARGET:-$default_target}

command -v valgrind >/dev/null || {
    echo "callgrind.sh: valgrind is not installed" >&2
    exit 2
}

# Build, and take the bench executable from cargo's JSON messages.
features=()
if [[ -n ${LOOPSCOPE_CALLGRIND_FEATURES:-} ]]; then
    features=(--features "$LOOPSCOPE_CALLGRIND_FEATURES")
fi
bin=$(
    cargo bench -p loopscope-benches --bench "$bench" "${features[@]}" --no-run --message-format=json-render-diagnostics |
        grep "\"name\":\"$bench\"" |
        grep -o '"executable":"[^"]*"' |
        tail -n 1 |
        cut -d '"' -f 4
)
if [[ -z $bin || ! -x $bin ]]; then
    echo "callgrind.sh: could not find the $bench bench executable" >&2
    exit 2
fi

# "<workload> <variants>" per line: naive,fair,adapter, or naive,adapter
# where the fair baseline is the naive loop.
mapfile -t listed < <(LOOPSCOPE_CALLGRIND=list "$bin")
if (($# > 0)); then
    workloads=("$@")
else
    mapfile -t workloads < <(printf '%s\n' "${listed[@]}" | cut -d ' ' -f 1)
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Instructions and allocations per run of one workload variant: "instr allocs".
count() {
    local spec=$1 out
    out="$tmp/callgrind.out.${spec//\//.}"
    if ! LOOPSCOPE_CALLGRIND=$spec LOOPSCOPE_CALLGRIND_REPS=$reps \
        valgrind --tool=callgrind --callgrind-out-file="$out" \
        --compress-strings=no --compress-pos=no \
        --collect-atstart=no --toggle-collect='*callgrind_measured*' \
        "$bin" >"$tmp/log" 2>&1; then
        cat "$tmp/log" >&2
        echo "callgrind.sh: $spec failed" >&2
        exit 1
    fi
    awk -v reps="$reps" '
        /^summary:/ { instr = $2 }
        /^cfn=/ { fn = substr($0, 5) }
        /^calls=/ && fn ~ /^(malloc|calloc|realloc|posix_memalign|aligned_alloc|memalign)$/ {
            split(substr($0, 7), c, " ")
            allocs += c[1]
        }
        END { printf "%.1f %.1f\n", instr / reps, allocs / reps }
    ' "$out"
}

items=${LOOPSCOPE_CALLGRIND_ITEMS:-1000}
echo "$bench: per item (${items} items per run, ${reps} reps), target adapter/fair <= ${target}x"
printf '%-30s %9s %9s %9s %8s %9s   %s\n' workload naive fair adapter /fair -naive 'allocs/item naive fair adapter'
above=0
for workload in "${workloads[@]}"; do
    variants=$(printf '%s\n' "${listed[@]}" | awk -v w="$workload" '$1 == w { print $2 }')
    [[ -n $variants ]] || variants=naive,adapter
    read -r naive naive_allocs < <(count "$workload/naive")
    if [[ $variants == *fair* ]]; then
        read -r fair fair_allocs < <(count "$workload/fair")
    else
        fair=$naive fair_allocs=$naive_allocs
    fi
    read -r adapter adapter_allocs < <(count "$workload/adapter")
    line=$(awk -v n="$naive" -v f="$fair" -v a="$adapter" -v na="$naive_allocs" \
        -v fa="$fair_allocs" -v aa="$adapter_allocs" -v items="$items" -v t="$target" \
        -v same="$([[ $variants == *fair* ]] || echo 1)" -v w="$workload" 'BEGIN {
            r = a / f
            printf "%-30s %9.1f %9s %9.1f %8.3f %+9.1f   %.3f %s %.3f%s",
                w, n / items, same ? "=naive" : sprintf("%.1f", f / items), a / items, r,
                (a - n) / items, na / items, same ? "=" : sprintf("%.3f", fa / items),
                aa / items, (r > t) ? "  ABOVE TARGET" : ""
        }')
    [[ $line != *"ABOVE TARGET"* ]] || above=1
    echo "$line"
done
exit "$above"
