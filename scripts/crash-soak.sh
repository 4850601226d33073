#!/usr/bin/env bash
# Runs the crash-consistency test (kill -9 of the daemon at random points during a random
# workload, then every promise checked) with new seeds until DURATION seconds have passed.
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
    echo "crash-soak: seed $seed, $rounds kill points"
    log=$(mktemp)
    if ! SNAPFS_CRASH_SEED=$seed SNAPFS_CRASH_ROUNDS=$rounds \
        cargo test --release --quiet --test integration crash::twenty_kill_points -- --nocapture >"$log" 2>&1; then
        cat "$log" >&2
        echo "crash-soak: FAILED with seed $seed (rerun: SNAPFS_CRASH_SEED=$seed)" >&2
        exit 1
    fi
    grep "kill points survived" "$log" || true
    rm -f "$log"
    runs=$((runs + 1)) kills=$((kills + rounds))
done
echo "crash-soak: $runs runs, $kills kill points survived"
