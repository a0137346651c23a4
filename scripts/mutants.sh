#!/usr/bin/env bash
# Mutation testing of the engine of the async adapters (issue: the tests must
# catch a broken engine, quickly): every mutant cargo-mutants makes in the
# stream adapters, the sync scope and the tokio brackets, tested by the test
# files that exercise them.
#
# Usage:
#   cargo install cargo-mutants --locked      # once (version 27 was used)
#   bash scripts/mutants.sh                   # all of them (about an hour on 2 cores)
#   bash scripts/mutants.sh -f src/stream/concurrent.rs   # a part
#   bash scripts/mutants.sh --output /tmp/mutants         # other cargo-mutants options
#
# Not in .ci/run: too slow. The results are in mutants.out/ (caught.txt,
# missed.txt, timeout.txt, unviable.txt).
#
# CARGO_INCREMENTAL=0: rustc's incremental cache crashed on some mutants. The
# proptest case count (tests-integration/tests/common/cases.rs) is lowered so that each mutant's test run takes seconds;
# every test has its own time limit (3 s here), and --timeout catches the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_INCREMENTAL=0
export CARGO_PROFILE_DEV_DEBUG=0
export CARGO_PROFILE_TEST_DEBUG=0
export LOOPSCOPE_PROPTEST_CASES=${LOOPSCOPE_PROPTEST_CASES:-24}
export LOOPSCOPE_TEST_TIME_LIMIT=${LOOPSCOPE_TEST_TIME_LIMIT:-3}

# The engine's files, unless the arguments name files of their own.
files=(-f 'src/stream/**' -f src/scope.rs -f src/tokio.rs)
for argument in "$@"; do
    if [[ $argument == -f || $argument == --file || $argument == --file=* ]]; then
        files=()
    fi
done

# The test files that exercise the engine, for the build (`-C`: every cargo
# invocation) as for the run: building the crate's other test files for each
# mutant would take most of the time.
tests=(prop_stream_concurrent prop_stream_sequential structured_concurrency spawned
    spawned_tasks release_timeout panics prop_for_each_scoped prop_try_map_scoped tokio_files
    tracing release_with public_types)
cargo_args=()
for test in "${tests[@]}"; do
    cargo_args+=(-C "--test=$test")
done

# The mutants are the crate's (`--package loopscope`); its tests are the
# workspace member `tests-integration`'s.
exec cargo mutants --package loopscope --test-package loopscope-tests \
    --all-features --timeout 60 --build-timeout 600 \
    "${cargo_args[@]}" "${files[@]}" "$@"
