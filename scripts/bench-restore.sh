#!/usr/bin/env bash
# Restore by reference against restore by copy: a 1 GiB file and a tree of 10,000 small files
# are snapshotted and deleted, then brought back with `snapfs restore` and with
# `cp -a .snapshots/...`; prints the time and the store's growth of each, and the ratios.
#
#   scripts/bench-restore.sh [--big-mib N] [--files N]
set -euo pipefail
cd "$(dirname "$0")/.."
big_mib=1024
files=10000
while (($#)); do
    case $1 in
    --big-mib) big_mib=$2; shift 2 ;;
    --files) files=$2; shift 2 ;;
    *) echo "usage: $0 [--big-mib N] [--files N]" >&2; exit 2 ;;
    esac
done
cargo build --release --quiet
snapfs=$PWD/target/release/snapfs
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-restorebench.XXXXXX")
mnt=$work/mnt store=$work/store
mkdir -p "$mnt"
cleanup() {
    mountpoint -q "$mnt" && { "$snapfs" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"; }
    rm -rf "$work"
}
trap cleanup EXIT
source scripts/bench-tree.sh
pack_bytes() { du -sb "$store/packs" | cut -f1; }

"$snapfs" init "$store" >/dev/null
"$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
for _ in $(seq 400); do mountpoint -q "$mnt" && break; sleep 0.05; done
head -c "${big_mib}M" /dev/urandom >"$mnt/big"
make_tree "$mnt/tree" "$files"
echo "create s" >"$mnt/.snapshots/.control"

printf '%-10s %-22s %10s %14s\n' what how seconds store-growth
for what in big tree; do
    for how in restore copy; do
        rm -rf "${mnt:?}/$what"
        "$snapfs" gc --mount "$mnt" >/dev/null
        drop_caches
        before=$(pack_bytes)
        t0=$(now)
        if [[ $how == restore ]]; then
            "$snapfs" restore s "$what" --mount "$mnt" >/dev/null
        else
            cp -a "$mnt/.snapshots/s/$what" "$mnt/$what"
        fi
        sync -f "$mnt/"
        t1=$(now)
        took=$(elapsed "$t0" "$t1")
        printf '%-10s %-22s %10s %14s\n' "$what" "$how" "$took" "$(($(pack_bytes) - before))"
        eval "${what}_$how=$took"
    done
    cmp -s <(cd "$mnt/.snapshots/s" && find "$what" -type f -exec md5sum {} + | sort) \
        <(cd "$mnt" && find "$what" -type f -exec md5sum {} + | sort) || { echo "$what differs" >&2; exit 1; }
done
echo
awk -v r="$big_restore" -v c="$big_copy" 'BEGIN { printf "big file: restore takes %.4fx the time of cp -a\n", r / c }'
awk -v r="$tree_restore" -v c="$tree_copy" 'BEGIN { printf "tree:     restore takes %.4fx the time of cp -a\n", r / c }'
