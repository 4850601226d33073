#!/usr/bin/env bash
# Runs the concurrency stress test (random operations on overlapping paths, snapshots created
# and deleted, gc, a deadlock watchdog, verify at the end) for DURATION seconds.
#
#   scripts/stress.sh DURATION_SECONDS
set -euo pipefail
duration=${1:?usage: $0 DURATION_SECONDS}
cd "$(dirname "$0")/.."
SNAPFS_STRESS_SECS=$duration exec cargo test --release --test integration \
    stress::random_operations_snapshots_and_gc_together -- --nocapture
