#!/usr/bin/env bash
# Builds snapfs, creates a store, mounts it, writes a few files (one of them twice, to show
# deduplication), remounts to show they persisted, and unmounts.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet
snapfs=$PWD/target/release/snapfs
work=$(mktemp -d /var/tmp/snapfs-demo.XXXXXX)
store=$work/store mnt=$work/mnt
mkdir "$mnt"
cleanup() {
    if mountpoint -q "$mnt"; then "$snapfs" umount "$mnt" >/dev/null || umount -l "$mnt"; fi
    rm -rf "$work"
}
trap cleanup EXIT

wait_mounted() {
    for _ in $(seq 200); do mountpoint -q "$mnt" && return 0; sleep 0.05; done
    echo "mount did not appear" >&2; return 1
}

"$snapfs" init "$store"
"$snapfs" mount "$store" "$mnt" 2>"$work/daemon.log" &
wait_mounted
echo "== mounted $store on $mnt"
mkdir -p "$mnt/etc" "$mnt/data"
echo "listen = 8080" >"$mnt/etc/app.conf"
head -c 64M /dev/urandom >"$mnt/data/blob"
cp "$mnt/data/blob" "$mnt/data/blob-copy"
sync "$mnt/data/blob-copy"
ls -lR "$mnt"
echo "== 128 MiB of files, store holds $(du -sh "$store/packs" | cut -f1) of packs (the copy is deduplicated)"
"$snapfs" umount "$mnt"
"$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
wait_mounted
echo "== after remount: $(cat "$mnt/etc/app.conf"); blob and copy equal: $(cmp -s "$mnt/data/blob" "$mnt/data/blob-copy" && echo yes)"
echo "create before-deploy" >"$mnt/.snapshots/.control"
echo "listen = 9090" >"$mnt/etc/app.conf"
echo "== snapshot taken, then app.conf changed:"
ls -l "$mnt/.snapshots/"
diff -r "$mnt/.snapshots/before-deploy" "$mnt" || true
"$snapfs" snapshot list --mount "$mnt"
echo "== what changed since the snapshot, and the versions of app.conf:"
"$snapfs" diff before-deploy live --mount "$mnt"
echo "create after-deploy" >"$mnt/.snapshots/.control"
"$snapfs" log etc/app.conf --mount "$mnt"
ls -l "$mnt/.snapshots/.history/etc/app.conf/@versions/"
echo "== restore app.conf by reference (no data copied):"
"$snapfs" restore before-deploy etc/app.conf --overwrite --mount "$mnt"
cat "$mnt/etc/app.conf"
"$snapfs" status --mount "$mnt"
df -h "$mnt"
