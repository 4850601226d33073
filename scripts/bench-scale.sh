#!/usr/bin/env bash
# The core at the size of a real share: how memory, mount, snapshots, listings and tree walks
# grow with the number of files. Prints each figure beside the one measured before the work
# on issue 10 (the same workload at 1,000,000 files, or 300,000 where noted).
#
#   scripts/bench-scale.sh [FILES] [SNAPSHOTS]     (defaults 1000000 and 3)
#
# The share is FILES/10,000 extractions of one tar of 10,000 files of 4 KiB (100 directories
# of 100), each into a directory of its own. Then: SNAPSHOTS snapshots (one file changed
# between them), a remount, and, measured after it: the mount time, the daemon's RSS, the time
# of the first snapshot after the remount with 10 files changed and the longest a writer
# (a loop writing a small file and timing each write) waited during it, the next snapshot by
# the command line and by a script writing the control file (median of 5 each), `snapshot
# list` and `status`, `find` (with the writer's longest wait during it) and `tar -c` over the
# share and `find` over a snapshot, with the daemon's RSS after each;
# then the snapshot inodes the daemon holds (`status --json`) and its RSS once the kernel has
# dropped its caches and forgotten them, and the peak RSS of each mount (VmHWM); last, `gc`
# and `verify --quick` through the daemon, with its RSS after each and its peak since.
# Needs root (it mounts and drops caches). BENCH_DIR (default /var/tmp) holds the store;
# SNAPFS_BIN (default target/release/snapfs of this repository, built first) is what runs.
set -euo pipefail
files=${1:-1000000}
snaps=${2:-3}
[[ $files =~ ^[1-9][0-9]*$ && $snaps =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [FILES] [SNAPSHOTS]" >&2; exit 2; }
((EUID == 0)) || { echo "bench-scale: must run as root" >&2; exit 1; }
cd "$(dirname "$0")/.."
source scripts/bench-tree.sh
if [[ -z ${SNAPFS_BIN:-} ]]; then
    cargo build --release --quiet
fi
snapfs=${SNAPFS_BIN:-$PWD/target/release/snapfs}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-scale.XXXXXX")
store=$work/store mnt=$work/mnt
mkdir "$mnt"
pid=
cleanup() {
    [[ -n ${writer:-} ]] && kill "$writer" 2>/dev/null
    if mountpoint -q "$mnt"; then "$snapfs" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"; fi
    rm -rf "$work"
}
trap cleanup EXIT

mount_store() {
    local t0
    t0=$(now)
    "$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
    pid=$!
    until mountpoint -q "$mnt"; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
        sleep 0.005
    done
    mount_secs=$(elapsed "$t0" "$(now)")
}
row() { printf '%-44s %12s   %s\n' "$1" "$2" "${3:-}"; }

echo "bench-scale: making a tar of 10,000 files of 4 KiB" >&2
mkdir "$work/src"
python3 - "$work/src" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(1)
for i in range(10000):
    d = os.path.join(root, f"d{i // 100:03}")
    if i % 100 == 0:
        os.makedirs(d)
    with open(os.path.join(d, f"f{i % 100:03}"), "wb") as f:
        f.write(rng.randbytes(4096))
PY
tar -C "$work/src" -cf "$work/tree.tar" .
rm -rf "$work/src"

"$snapfs" init "$store" >/dev/null
mount_store
copies=$(((files + 9999) / 10000))
echo "bench-scale: extracting $copies copies ($((copies * 10000)) files)" >&2
t0=$(now)
for ((i = 0; i < copies; i++)); do
    mkdir "$mnt/c$i"
    tar -C "$mnt/c$i" -xf "$work/tree.tar"
done
sync
create_secs=$(elapsed "$t0" "$(now)")
rss_created=$(rss_mib)
for ((s = 1; s <= snaps; s++)); do
    echo "change $s" >"$mnt/changed"
    "$snapfs" snapshot create "s$s" --mount "$mnt" >/dev/null
done
rss_snapshots=$(rss_mib)
peak_first_mount=$(peak_mib)
"$snapfs" umount "$mnt" >/dev/null
wait "$pid" || true

drop_caches
mount_store
rss_mounted=$(rss_mib)

# The changes list their directories (read from the disk, the caches being cold); the writer
# starts after them, so what it waits for is the snapshot.
for i in $(seq 0 9); do echo "changed after remount" >"$mnt/c0/d000/f00$i"; done
start_writer
snap_after_remount=$(time_of "$snapfs" snapshot create after-remount --mount "$mnt")
sleep 0.2
stop_writer
worst_stall=$stalled
# The next snapshots by the command line: median of 5, 10 files changed before each.
took=()
again=$mnt/c$((copies > 1 ? 1 : 0))/d000
for n in 1 2 3 4 5; do
    for i in $(seq 0 9); do echo "changed again $n" >"$again/f00$i"; done
    took+=("$(time_of "$snapfs" snapshot create "next-$n" --mount "$mnt")")
done
snap_next=$(echo "${took[*]}" | median)
# The same request written to the control file by a script that is already running: the
# command line's own start (about 2 ms here) left out. Median of 5, 10 files changed before each.
snap_control=$(python3 - "$mnt" <<'PY'
import os, sys, time
mnt = sys.argv[1]
took = []
for n in range(5):
    for i in range(10):
        with open(f"{mnt}/c0/d001/f00{i}", "w") as f:
            f.write(f"change {n}\n")
    with open(f"{mnt}/.snapshots/.control", "r+b", buffering=0) as control:
        t = time.monotonic()
        control.write(f"create by-control-{n}\n".encode())
        control.seek(0)
        outcome = control.read(4096).split(b"\n", 1)[0]
        took.append(time.monotonic() - t)
    if not outcome.startswith(b"last: ok"):
        sys.exit(f"bench-scale: snapshot through the control file failed: {outcome!r}")
print(f"{sorted(took)[2]:.4f}")
PY
)
list_secs=$(time_of "$snapfs" snapshot list --mount "$mnt")
status_secs=$(time_of "$snapfs" status --mount "$mnt")
drop_caches
start_writer
find_live=$(time_of find "$mnt" -xdev)
stop_writer
stall_find=$stalled
rss_find=$(rss_mib)
drop_caches
# Through a pipe: GNU tar reads no file when its archive is /dev/null.
tar_live=$(time_of bash -c 'tar -C "$1" --exclude=./.snapshots -cf - . | cat >/dev/null' _ "$mnt")
rss_tar=$(rss_mib)
drop_caches
find_snap=$(time_of find "$mnt/.snapshots/s1")
rss_find_snap=$(rss_mib)
# What the snapshot view remembers is what the kernel holds: it falls once the kernel forgets.
view_inodes() {
    "$snapfs" status --json --mount "$mnt" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["snapshot_view"]["inodes"])'
}
held_find_snap=$(view_inodes)
drop_caches
sleep 2  # the kernel sends its forgets in its own time
held_dropped=$(view_inodes)
rss_dropped=$(rss_mib)
peak_second_mount=$(peak_mib)
# The walks over every snapshot, in the daemon: their sets of what they saw are bounded by the
# walk's part of --metadata-cache, and spill to a scratch file past it.
gc_secs=$(time_of "$snapfs" gc --mount "$mnt")
rss_gc=$(rss_mib)
verify_secs=$(time_of "$snapfs" verify --quick --mount "$mnt")
rss_verify=$(rss_mib)
peak_walks=$(peak_mib)
"$snapfs" umount "$mnt" >/dev/null
wait "$pid" || true

echo
echo "bench-scale: $((copies * 10000)) files, $((snaps + 11)) snapshots; kernel $(uname -r), $(nproc) CPUs"
row "figure" "measured" "before issue 10 (1,000,000 files; 300,000 in brackets)"
row "create the files (tar -x + sync)" "${create_secs}s" "327 s"
row "daemon RSS after creating them" "${rss_created} MiB" "1,967 MiB (621)"
row "daemon RSS after $snaps snapshots" "${rss_snapshots} MiB" "1,581 MiB (511)"
row "daemon peak RSS: creating, $snaps snapshots" "${peak_first_mount} MiB" ""
row "mount time (remount)" "${mount_secs}s" "2.1 s"
row "daemon RSS after the remount" "${rss_mounted} MiB" "874 MiB (289)"
row "first snapshot after remount, 10 changed" "${snap_after_remount}s" "5.7 s (1.53)"
row "worst writer wait during it" "${worst_stall}s" "5.7 s (1.53)"
row "next snapshot, 10 changed (median of 5)" "${snap_next}s" "(4 ms)"
row "... through the control file (median of 5)" "${snap_control}s" ""
row "snapshot list" "${list_secs}s" "8.9 s with 3 snapshots"
row "status" "${status_secs}s" "(3.2 s with 3 snapshots)"
row "find over the share (cold)" "${find_live}s" ""
row "worst writer wait during it" "${stall_find}s" ""
row "daemon RSS after it" "${rss_find} MiB" ""
row "tar -c over the share (cold)" "${tar_live}s" ""
row "daemon RSS after it" "${rss_tar} MiB" ""
row "find over a snapshot (cold)" "${find_snap}s" ""
row "daemon RSS after it" "${rss_find_snap} MiB" ""
row "snapshot inodes held after it" "${held_find_snap}" ""
row "... after drop_caches" "${held_dropped}" ""
row "daemon RSS after drop_caches" "${rss_dropped} MiB" ""
row "daemon peak RSS since the remount" "${peak_second_mount} MiB" ""
row "gc (every snapshot)" "${gc_secs}s" ""
row "daemon RSS after it" "${rss_gc} MiB" ""
row "verify --quick (every snapshot)" "${verify_secs}s" ""
row "daemon RSS after it" "${rss_verify} MiB" ""
row "daemon peak RSS with gc and verify" "${peak_walks} MiB" ""
