#!/usr/bin/env bash
# Runs the crash tests with new seeds until DURATION seconds have passed: the random workload
# (kill -9 of the daemon at random points, then every promise checked) and the commit-ordering
# workloads (an append-only log, files written then given times and a mode, a large `cp -a`,
# each cut by kill -9 and compared byte for byte after the remount).
#
#   scripts/crash-soak.sh DURATION_SECONDS [ROUNDS_PER_RUN]
set -euo pipefail
duration=${1:?usage: $0 DURATION_SECONDS [ROUNDS_PER_RUN]}
rounds=${2:-50}
cd "$(dirname "$0")/.."
cargo build --release --tests --quiet
end=$((SECONDS + duration))
runs=0 kills=0
while ((SECONDS < end)); do
    seed=$RANDOM$RANDOM
    for tests in crash::twenty_kill_points crash_ordering::; do
        echo "crash-soak: $tests with seed $seed"
        log=$(mktemp)
        if ! SNAPFS_CRASH_SEED=$seed SNAPFS_CRASH_ROUNDS=$rounds \
            cargo test --release --quiet --test integration "$tests" -- --nocapture >"$log" 2>&1; then
            cat "$log" >&2
            echo "crash-soak: FAILED: $tests with seed $seed (rerun: SNAPFS_CRASH_SEED=$seed)" >&2
            exit 1
        fi
        grep "kill points survived" "$log" || true
        rm -f "$log"
    done
    # The ordering workloads kill 8 times per run.
    runs=$((runs + 1)) kills=$((kills + rounds + 8))
done
echo "crash-soak: $runs runs, $kills kill points survived"
