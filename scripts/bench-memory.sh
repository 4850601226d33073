#!/usr/bin/env bash
# Peak resident memory of the snapfs daemon while it writes and then reads back one large file.
# The daemon's memory must stay bounded by its caches (dirty-block budget, metadata cache,
# mapped pack pages), whatever the file's size.
#
#   scripts/bench-memory.sh [SIZE_GIB]     (default 10)
set -euo pipefail
size_gib=${1:-10}
cd "$(dirname "$0")/.."
cargo build --release --quiet
snapfs=$PWD/target/release/snapfs
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-mem.XXXXXX")
store=$work/store mnt=$work/mnt
mkdir "$mnt"
cleanup() {
    if mountpoint -q "$mnt"; then "$snapfs" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"; fi
    rm -rf "$work"
}
trap cleanup EXIT

mount_store() {
    "$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
    for _ in $(seq 400); do mountpoint -q "$mnt" && break; sleep 0.05; done
    mountpoint -q "$mnt" || { cat "$work/daemon.log" >&2; exit 1; }
    pid=$(pgrep -f "snapfs mount $store $mnt" | head -n1)
}
peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }

"$snapfs" init "$store" >/dev/null
mount_store
# Incompressible, non-repeating data (AES-CTR keystream), so neither dedup nor compression
# shrinks the work.
# (openssl is stopped by SIGPIPE once head has enough: not a failure.)
{ openssl enc -aes-128-ctr -pass pass:snapfs -nosalt -pbkdf2 </dev/zero 2>/dev/null || true; } |
    head -c "$((size_gib << 30))" | dd of="$mnt/big" bs=1M iflag=fullblock conv=fsync status=none
write_peak=$(peak_kib)
"$snapfs" umount "$mnt" >/dev/null
mount_store
sync; echo 3 >/proc/sys/vm/drop_caches
dd if="$mnt/big" of=/dev/null bs=1M status=none
read_peak=$(peak_kib)
"$snapfs" umount "$mnt" >/dev/null
printf 'file size              %6d GiB\n' "$size_gib"
printf 'daemon peak RSS write  %6d MiB\n' "$((write_peak / 1024))"
printf 'daemon peak RSS read   %6d MiB\n' "$((read_peak / 1024))"
