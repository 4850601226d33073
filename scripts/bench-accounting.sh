#!/usr/bin/env bash
# Space accounting: how long `snapfs snapshot list` and `snapfs status` take on a share of
# FILES files (1-4 KiB, 100 per directory) with SNAPSHOTS snapshots (one file changed before
# each), computed by walking every snapshot (before) and read from the tables kept up to date
# (after); also the time of one more `snapshot create`, which now updates the tables.
#
#   scripts/bench-accounting.sh [SNAPSHOTS] [FILES]        (defaults 200 and 10000)
#
# "before" is the release given as SNAPFS_BEFORE (a binary of the version-2 format, which
# walks); without it, this build's hidden `--full-walk`, the same walk. Each is measured on a
# store of its own, built the same way. Times are the median of 5 runs. Needs root (mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
snapshots=${1:-200}
files=${2:-10000}
[[ ${NO_BUILD:-} ]] || cargo build --release --quiet
after_bin=${SNAPFS_BIN:-$PWD/target/release/snapfs}
before_bin=${SNAPFS_BEFORE:-}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-acctbench.XXXXXX")
mnt=$work/mnt
mkdir -p "$mnt"
current_bin=$after_bin
cleanup() {
    mountpoint -q "$mnt" && { "$current_bin" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"; }
    rm -rf "$work"
}
trap cleanup EXIT
source scripts/bench-tree.sh

make_tree "$work/src" "$files"

# mount_new BIN STORE: a new store with the tree and $snapshots snapshots, mounted at $mnt.
mount_new() {
    local bin=$1 store=$2
    current_bin=$bin
    "$bin" init "$store" >/dev/null
    "$bin" mount "$store" "$mnt" 2>>"$work/daemon.log" &
    for _ in $(seq 400); do mountpoint -q "$mnt" && break; sleep 0.05; done
    cp -a "$work/src/." "$mnt/"
    sync "$mnt"
    local dirs=$(((files + 99) / 100))
    for i in $(seq 1 "$snapshots"); do
        echo "change $i" >>"$mnt/d$(printf %05d $((i % dirs)))/f$(printf %03d $((i % 100)))"
        echo "create s$i" >"$mnt/.snapshots/.control"
    done
}

# time_of CMD...: median wall seconds of 5 runs.
time_of() {
    local times=() t0 t1
    for _ in 1 2 3 4 5; do
        t0=$(now)
        "$@" >/dev/null
        t1=$(now)
        times+=("$(elapsed "$t0" "$t1")")
    done
    echo "${times[*]}" | median
}

measure() { # measure BIN [FLAG]: prints "list status create"
    local bin=$1 flag=${2:-}
    local list status create t0 t1
    list=$(time_of "$bin" snapshot list --json --mount "$mnt" $flag)
    status=$(time_of "$bin" status --json --mount "$mnt" $flag)
    echo "change extra" >>"$mnt/d00000/f000"
    t0=$(now); echo "create extra" >"$mnt/.snapshots/.control"; t1=$(now)
    create=$(elapsed "$t0" "$t1")
    echo "$list $status $create"
}

mount_new "$after_bin" "$work/store-after"
read -r a_list a_status a_create < <(measure "$after_bin")
if [[ -n $before_bin ]]; then
    before_label="release $(basename "$before_bin")"
    "$after_bin" umount "$mnt" >/dev/null
    mount_new "$before_bin" "$work/store-before"
    read -r b_list b_status b_create < <(measure "$before_bin")
    "$before_bin" umount "$mnt" >/dev/null
else
    before_label="--full-walk"
    read -r b_list b_status _ < <(measure "$after_bin" --full-walk)
    b_create=$a_create
    "$after_bin" umount "$mnt" >/dev/null
fi
current_bin=$after_bin

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }
echo
echo "space accounting: $files files, $snapshots snapshots; before = $before_label; median of 5"
printf '%-16s %12s %12s %10s\n' measure before after before/after
printf '%-16s %11ss %11ss %10s\n' "snapshot list" "$b_list" "$a_list" "$(ratio "$b_list" "$a_list")"
printf '%-16s %11ss %11ss %10s\n' status "$b_status" "$a_status" "$(ratio "$b_status" "$a_status")"
printf '%-16s %11ss %11ss %10s\n' "snapshot create" "$b_create" "$a_create" "$(ratio "$b_create" "$a_create")"
