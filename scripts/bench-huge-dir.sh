#!/usr/bin/env bash
# One huge directory: the daemon's memory and the time of each way of reading it after a
# remount (`ls -f`, `ls -l`, `find`, `du`, reading every file), then of a change in it (one
# file created, which lists it), and of a snapshot with it. Shows what `--metadata-cache`
# bounds and what it does not.
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
row() { printf '%-40s %10s s %8s MiB %10s\n' "$1" "$2" "$3" "${4:-}"; }
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
row "what" "time" "RSS" "writer wait"
row "ls -f" "$(time_of ls -f "$mnt/huge")" "$(rss_mib)"
row "ls -l" "$(time_of ls -l "$mnt/huge")" "$(rss_mib)"
drop_caches
row "find (kernel caches dropped)" "$(time_of find "$mnt/huge")" "$(rss_mib)"
row "du -s" "$(time_of du -s "$mnt/huge")" "$(rss_mib)"
drop_caches
row "cat of every file (caches dropped)" "$(time_of sh -c "cd '$mnt/huge' && find . -type f -print0 | xargs -0 cat")" "$(rss_mib)"
waited "create one file in it (lists it)" touch "$mnt/huge/new"
waited "snapshot create (the first)" "$snapfs" snapshot create s1 --mount "$mnt"
touch "$mnt/huge/new2"
waited "snapshot create (one file more)" "$snapfs" snapshot create s2 --mount "$mnt"
for i in $(seq 3 12); do touch "$mnt/huge/more-$i"; done
waited "snapshot create (ten files more)" "$snapfs" snapshot create s3 --mount "$mnt"
row "ls -f of the snapshot" "$(time_of ls -f "$mnt/.snapshots/s1/huge")" "$(rss_mib)"
row "ls -l of the snapshot" "$(time_of ls -l "$mnt/.snapshots/s1/huge")" "$(rss_mib)"
echo "peak RSS: $(peak_mib) MiB"
"$snapfs" umount "$mnt" >/dev/null
wait "$pid" || true
