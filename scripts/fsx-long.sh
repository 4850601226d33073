#!/usr/bin/env bash
# The long fsx run: OPS random operations (default 1,000,000) with every operation fsx offers
# (tests/fsx/fsx.toml: reads, writes, mmap, truncate, fallocate, punch hole, sendfile,
# copy_file_range, fadvise, fsync, close/open), each read checked against fsx's model of the
# file, on a real mount. The suite runs the same test with 100,000 operations; this one takes
# about ten times as long (tens of minutes on a busy machine).
#
#   scripts/fsx-long.sh [OPS] [SEED]
#
# SEED defaults to a new random one, printed first so that a failure can be replayed. On a
# miscompare, fsx's artifacts (the expected file and the operation log) are kept in
# target/release/build/../tmp/fsx-SEED (the path is in the failure message).
set -euo pipefail
ops=${1:-1000000}
seed=${2:-$RANDOM$RANDOM}
[[ $ops =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [OPS] [SEED]" >&2; exit 2; }
[[ $seed =~ ^[0-9]+$ ]] || { echo "usage: $0 [OPS] [SEED]" >&2; exit 2; }
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "fsx-long: $ops operations, seed $seed (replay: scripts/fsx-long.sh $ops $seed)"
SNAPFS_FSX_OPS=$ops SNAPFS_FSX_SEED=$seed exec cargo test --release --test integration \
    conformance::fsx_100k_operations_without_miscompare -- --exact --nocapture
