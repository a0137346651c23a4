#!/usr/bin/env bash
# The extended proof run: every property test in tests-integration/tests/ at 10,000 cases.
#
#   scripts/proof-run.sh              # every file with a `proptest!` block
#   scripts/proof-run.sh combine      # only tests-integration/tests/combine.rs
#   LOOPSCOPE_PROPTEST_CASES=50000 scripts/proof-run.sh
#
# `cargo test` runs each property at its own small default count; the helper
# in tests-integration/tests/common/cases.rs replaces every one of those counts with
# LOOPSCOPE_PROPTEST_CASES when it is set. This script sets it (10,000 unless
# given), finds the properties of each file (the `#[test] fn`s inside its
# `proptest!` blocks), runs exactly those in release mode, and prints per file
# the number of properties, the cases run and the wall time, then the totals.
# A failing property prints its minimal input and seed (and proptest saves it
# under proptest-regressions/); the run goes on with the other files and exits
# non-zero at the end.
set -euo pipefail

# The property tests are the workspace member `tests-integration`'s.
cd "$(dirname "$0")/../tests-integration"

export LOOPSCOPE_PROPTEST_CASES="${LOOPSCOPE_PROPTEST_CASES:-10000}"
cargo_test=(cargo test --release --all-features)

# The `#[test] fn` names inside the `proptest!` blocks of a file, one a line.
properties() {
    awk '
        # A block opens at `proptest! {` and closes at the first `}` line with
        # the same indentation.
        !inside && /^[[:space:]]*proptest! \{[[:space:]]*$/ {
            inside = 1
            match($0, /^[[:space:]]*/)
            close_line = substr($0, 1, RLENGTH) "}"
            next
        }
        inside && $0 == close_line { inside = 0; test = 0; next }
        inside && /^[[:space:]]*#\[test\][[:space:]]*$/ { test = 1; next }
        inside && test && /^[[:space:]]*fn [A-Za-z0-9_]+[[:space:]]*\(/ {
            sub(/^[[:space:]]*fn /, "")
            sub(/[[:space:]]*\(.*/, "")
            print
            test = 0
        }
    ' "$1"
}

# Seconds since a `date +%s%N` time, to a tenth.
seconds_since() {
    awk -v start="$1" -v now="$(date +%s%N)" 'BEGIN { printf "%.1f", (now - start) / 1e9 }'
}

if (($# > 0)); then
    files=("$@")
else
    mapfile -t files < <(grep -l '^[[:space:]]*proptest! {' tests/*.rs | sed 's|^tests/||; s|\.rs$||')
fi

echo "proof run: ${LOOPSCOPE_PROPTEST_CASES} cases per property, files: ${files[*]}"

# Build everything first, so that the times below are the tests' alone.
build_args=()
for file in "${files[@]}"; do
    build_args+=(--test "$file")
done
build_start=$(date +%s)
"${cargo_test[@]}" --no-run "${build_args[@]}"
echo "build: $(($(date +%s) - build_start)) s"

rows=()
failed=()
total_properties=0
total_cases=0
run_start=$(date +%s%N)
for file in "${files[@]}"; do
    mapfile -t names < <(properties "tests/$file.rs")
    if ((${#names[@]} == 0)); then
        echo "error: no properties found in tests/$file.rs" >&2
        failed+=("$file")
        continue
    fi
    # Each property's full path in the test binary (properties inside a
    # `mod` have a prefix), so that `--exact` runs exactly these.
    listed=$("${cargo_test[@]}" --test "$file" -- --list | sed -n 's/: test$//p')
    paths=()
    for name in "${names[@]}"; do
        path=$(grep -E "(^|::)${name}\$" <<<"$listed" || true)
        if [[ $(grep -c . <<<"$path") -ne 1 ]]; then
            echo "error: property $name of tests/$file.rs is not one test of its binary" >&2
            failed+=("$file")
            continue 2
        fi
        paths+=("$path")
    done

    echo
    echo "=== tests/$file.rs: ${#paths[@]} properties x ${LOOPSCOPE_PROPTEST_CASES} cases"
    start=$(date +%s%N)
    log=$(mktemp)
    if "${cargo_test[@]}" --test "$file" -- --exact "${paths[@]}" 2>&1 | tee "$log"; then
        status=ok
    else
        status=FAILED
        failed+=("$file")
    fi
    seconds=$(seconds_since "$start")
    # Every property must have run: a filter that matched fewer is a failure.
    passed=$(sed -n 's/^test result: .* \([0-9]*\) passed.*/\1/p' "$log" | tail -n 1)
    rm -f "$log"
    if [[ $status == ok && ${passed:-0} -ne ${#paths[@]} ]]; then
        status="FAILED (${passed:-0} of ${#paths[@]} ran)"
        failed+=("$file")
    fi
    cases=$((${#paths[@]} * LOOPSCOPE_PROPTEST_CASES))
    total_properties=$((total_properties + ${#paths[@]}))
    total_cases=$((total_cases + cases))
    rows+=("$(printf '%-26s %10s %12s %9s s  %s' "$file" "${#paths[@]}" "$cases" "$seconds" "$status")")
done
total_seconds=$(seconds_since "$run_start")

echo
printf '%-26s %10s %12s %11s\n' file properties cases time
printf '%s\n' "${rows[@]}"
printf '%-26s %10s %12s %9s s\n' total "$total_properties" "$total_cases" "$total_seconds"

if ((${#failed[@]} > 0)); then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
