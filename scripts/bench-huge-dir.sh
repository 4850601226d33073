#!/usr/bin/env bash
# One huge directory: the daemon's memory and the time of each way of reading it after a
# remount (`ls -f`, `ls -l`, `find`, `du`, reading every file), then of a change in it (one
# file created, which lists it), and of snapshots with it, with what each added to the store.
# Shows what `--metadata-cache` bounds and what it does not.
#
#   scripts/bench-huge-dir.sh [FILES]     (default 200000)
#
# Needs root (it mounts and drops caches). BENCH_DIR (default /var/tmp) holds the store;
# SNAPFS_BIN (default target/release/snapfs of this repository, built first) is what runs.
set -euo pipefail
files=${1:-200000}
[[ $files =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [FILES]" >&2; exit 2; }
((EUID == 0)) || { echo "bench-huge-dir: must run as root" >&2; exit 1; }
cd "$(dirname "$0")/.."
source scripts/bench-tree.sh
if [[ -z ${SNAPFS_BIN:-} ]]; then
    cargo build --release --quiet
fi
snapfs=${SNAPFS_BIN:-$PWD/target/release/snapfs}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-huge-dir.XXXXXX")
store=$work/store mnt=$work/mnt
mkdir "$mnt"
cleanup() {
    [[ -n ${writer:-} ]] && kill "$writer" 2>/dev/null
    if mountpoint -q "$mnt"; then "$snapfs" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"; fi
    rm -rf "$work"
}
trap cleanup EXIT

mount_store() {
    "$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
    pid=$!
    until mountpoint -q "$mnt"; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/daemon.log" >&2; exit 1; }
        sleep 0.005
    done
}
row() { printf '%-40s %10s s %8s MiB %12s %14s\n' "$1" "$2" "$3" "${4:-}" "${5:-}"; }
# waited ROW COMMAND...: the row of COMMAND with the longest a writer elsewhere in the share
# waited while it ran.
waited() {
    local what=$1 took
    shift
    start_writer
    took=$(time_of "$@")
    stop_writer
    row "$what" "$took" "$(rss_mib)" "${stalled} s"
}
packs_kib() { du -s --apparent-size --block-size=1K "$store/packs" | cut -f1; }
# snapshot ROW NAME: the row of taking snapshot NAME, with the writer's longest wait and what
# the snapshot added to the store's packs.
snapshot() {
    local took before
    before=$(packs_kib)
    start_writer
    took=$(time_of "$snapfs" snapshot create "$2" --mount "$mnt")
    stop_writer
    row "$1" "$took" "$(rss_mib)" "${stalled} s" "+$(($(packs_kib) - before)) KiB"
}

"$snapfs" init "$store" >/dev/null
mount_store
echo "bench-huge-dir: creating $files files of 16 bytes in one directory" >&2
python3 - "$mnt/huge" "$files" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
for i in range(n):
    fd = os.open(os.path.join(d, f"file-{i:08}"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, f"{i:015}\n".encode())
    os.close(fd)
PY
sync
"$snapfs" umount "$mnt" >/dev/null
wait "$pid" || true
drop_caches
mount_store
echo "bench-huge-dir: $files files in one directory, after a remount (RSS $(rss_mib) MiB)"
row "what" "time" "RSS" "writer wait" "store growth"
row "ls -f" "$(time_of ls -f "$mnt/huge")" "$(rss_mib)"
row "ls -l" "$(time_of ls -l "$mnt/huge")" "$(rss_mib)"
drop_caches
row "find (kernel caches dropped)" "$(time_of find "$mnt/huge")" "$(rss_mib)"
row "du -s" "$(time_of du -s "$mnt/huge")" "$(rss_mib)"
drop_caches
row "cat of every file (caches dropped)" "$(time_of sh -c "cd '$mnt/huge' && find . -type f -print0 | xargs -0 cat")" "$(rss_mib)"
waited "create one file in it (lists it)" touch "$mnt/huge/new"
snapshot "snapshot create (the first)" s1
touch "$mnt/huge/new2"
snapshot "snapshot create (one file more)" s2
for i in $(seq 3 12); do touch "$mnt/huge/more-$i"; done
snapshot "snapshot create (ten files more)" s3
row "ls -f of the snapshot" "$(time_of ls -f "$mnt/.snapshots/s1/huge")" "$(rss_mib)"
row "ls -l of the snapshot" "$(time_of ls -l "$mnt/.snapshots/s1/huge")" "$(rss_mib)"
echo "peak RSS: $(peak_mib) MiB"
"$snapfs" umount "$mnt" >/dev/null
wait "$pid" || true
