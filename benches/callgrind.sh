#!/usr/bin/env bash
# Instruction counts of the adapters against the hand-written code they replace:
# the deterministic half of the performance contract (DESIGN.md, "Performance
# contract": adapter / hand-written <= 1.02x for the sync adapters, <= 1.05x for
# the stream adapters).
#
# Usage:
#   bash benches/callgrind.sh                     # every workload of sync_adapters
#   bash benches/callgrind.sh files_for_each ...  # only these workloads
#   bash benches/callgrind.sh --bench stream_adapters [workload ...]
#   LOOPSCOPE_CALLGRIND_REPS=20 bash benches/callgrind.sh
#   LOOPSCOPE_CALLGRIND_FEATURES=tracing bash benches/callgrind.sh  # extra features
#
# Needs valgrind. It builds the bench binary of benches/benches/<bench>.rs (--bench, or
# LOOPSCOPE_CALLGRIND_BENCH; default sync_adapters) in the bench (release)
# profile, then runs every workload's two variants, each in its own process, under
#   valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*callgrind_measured*'
# with LOOPSCOPE_CALLGRIND=<workload>/<variant>. The binary then skips criterion
# and calls the variant LOOPSCOPE_CALLGRIND_REPS times (default 10) inside its
# #[inline(never)] function callgrind_measured, after one uncounted warm-up run;
# only what executes inside that function is counted (see the top of
# benches/benches/sync_adapters.rs). The table gives instructions per run of a workload
# (1,000 items: total / reps) and the ratio adapter / hand-written. Kernel work
# (the file workloads' system calls) is not counted by callgrind.
#
# The callgrind.out files go to a temporary directory, removed on exit. Exits
# non-zero if a ratio is above the target (LOOPSCOPE_CALLGRIND_TARGET; default
# 1.02 for sync_adapters, 1.05 for stream_adapters and concurrent_adapters).
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

if (($# > 0)); then
    workloads=("$@")
else
    mapfile -t workloads < <(LOOPSCOPE_CALLGRIND=list "$bin")
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Instructions per run of one workload variant.
count() {
    local spec=$1 out
    out="$tmp/callgrind.out.${spec//\//.}"
    if ! LOOPSCOPE_CALLGRIND=$spec LOOPSCOPE_CALLGRIND_REPS=$reps \
        valgrind --tool=callgrind --callgrind-out-file="$out" \
        --collect-atstart=no --toggle-collect='*callgrind_measured*' \
        "$bin" >"$tmp/log" 2>&1; then
        cat "$tmp/log" >&2
        echo "callgrind.sh: $spec failed" >&2
        exit 1
    fi
    awk -v reps="$reps" '/^summary:/ { printf "%d\n", $2 / reps }' "$out"
}

echo "$bench: instructions per run (1,000 items), ${reps} reps each, target <= ${target}x"
printf '%-30s %14s %14s %8s\n' workload hand_written adapter ratio
above=0
for workload in "${workloads[@]}"; do
    hand=$(count "$workload/hand_written")
    adapter=$(count "$workload/adapter")
    ratio=$(awk -v a="$adapter" -v h="$hand" 'BEGIN { printf "%.4f", a / h }')
    mark=$(awk -v r="$ratio" -v t="$target" 'BEGIN { print (r > t) ? "  ABOVE TARGET" : "" }')
    [[ -z $mark ]] || above=1
    printf '%-30s %14s %14s %8s%s\n' "$workload" "$hand" "$adapter" "$ratio" "$mark"
done
exit "$above"
