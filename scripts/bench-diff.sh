#!/usr/bin/env bash
# `snapfs diff` cost: it should follow the size of the change, not of the share. For each share
# size (files of 1-4 KiB, 100 per directory) and each number of changed files (spread over
# the whole tree), times `snapfs diff A B --mount` between two snapshots (median of 5), next to
# the walk a user would otherwise run, `diff -rq .snapshots/A .snapshots/B` (cold cache,
# one run), and prints the ratios.
#
#   scripts/bench-diff.sh [--sizes "1000 10000 100000"] [--changes "1 10 100 1000"]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="1000 10000 100000"
changes="1 10 100 1000"
while (($#)); do
    case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --changes) changes=$2; shift 2 ;;
    *) echo "usage: $0 [--sizes LIST] [--changes LIST]" >&2; exit 2 ;;
    esac
done
cargo build --release --quiet
snapfs=$PWD/target/release/snapfs
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-diffbench.XXXXXX")
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
    mountpoint -q "$mnt" && { "$snapfs" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"; }
    rm -rf "$work"
}
trap cleanup EXIT

source scripts/bench-tree.sh

printf '%-8s %-8s %12s %14s %10s\n' files changed snapfs-diff "diff -rq" ratio
for n in $sizes; do
    store=$work/store-$n
    "$snapfs" init "$store" >/dev/null
    "$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
    for _ in $(seq 400); do mountpoint -q "$mnt" && break; sleep 0.05; done
    make_tree "$mnt" "$n"
    for k in $changes; do
        ((k <= n)) || continue
        echo "create a-$k" >"$mnt/.snapshots/.control"
        # k files, spread evenly over the tree, so every change touches its own directory when
        # there are enough of them.
        python3 - "$mnt" "$n" "$k" <<'PY'
import sys
root, n, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for j in range(k):
    i = j * n // k
    with open(f"{root}/d{i // 100:05}/f{i % 100:03}", "ab") as f:
        f.write(b"changed")
PY
        echo "create b-$k" >"$mnt/.snapshots/.control"
        times=""
        for _ in 1 2 3 4 5; do
            t0=$(now); "$snapfs" diff "a-$k" "b-$k" --mount "$mnt" >"$work/out"; t1=$(now)
            times="$times $(elapsed "$t0" "$t1")"
        done
        found=$(wc -l <"$work/out")
        ((found == k)) || { echo "diff found $found changes, expected $k" >&2; exit 1; }
        drop_caches
        t0=$(now); diff -rq "$mnt/.snapshots/a-$k" "$mnt/.snapshots/b-$k" >/dev/null || true; t1=$(now)
        ours=$(echo "$times" | median) walk=$(elapsed "$t0" "$t1")
        printf '%-8s %-8s %11ss %13ss %9.3fx\n' "$n" "$k" "$ours" "$walk" \
            "$(awk -v a="$ours" -v b="$walk" 'BEGIN { print a / b }')"
    done
    "$snapfs" umount "$mnt" >/dev/null
done
