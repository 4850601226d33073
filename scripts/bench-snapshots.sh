#!/usr/bin/env bash
# Snapshot benchmarks, each at several share sizes (files of 1-4 KiB, 100 per directory):
#   create-first   the first snapshot of a mount (encodes the whole tree)
#   create-10      a snapshot after changing 10 files (median of 5), through the control file
#   growth-10      store growth for those 10 changes plus the snapshot (median of 5)
#   find           cold `find` inside the newest snapshot, and on the live share
#   read-all       cold `tar -c | cat >/dev/null` inside the snapshot, and on the live share
# and, when btrfs can be loop-mounted here, `btrfs subvolume snapshot -r` after the same
# 10 changes, for comparison. Then the scale run: a 10,000-file share with --many snapshots
# (default 1,000, one file changed before each): `ls -l .snapshots`, `find` in the oldest
# snapshot, `verify --quick`, `verify` and `gc` (which walk every snapshot: their time should
# follow the distinct data, not the number of snapshots), and a 256 MiB write and cold read on
# the live share, before and after.
#
#   scripts/bench-snapshots.sh [--sizes "1000 10000 100000"] [--many N] [--no-btrfs]
set -euo pipefail
cd "$(dirname "$0")/.."
sizes="1000 10000 100000"
btrfs=1
many=1000
while (($#)); do
    case $1 in
    --sizes) sizes=$2; shift 2 ;;
    --many) many=$2; shift 2 ;;
    --no-btrfs) btrfs=0; shift ;;
    *) echo "usage: $0 [--sizes LIST] [--no-btrfs]" >&2; exit 2 ;;
    esac
done
cargo build --release --quiet
snapfs=$PWD/target/release/snapfs
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-snapbench.XXXXXX")
mnt=$work/mnt btrfs_mnt=$work/btrfs
mkdir -p "$mnt" "$btrfs_mnt"
cleanup() {
    mountpoint -q "$mnt" && { "$snapfs" umount "$mnt" >/dev/null 2>&1 || umount -l "$mnt"; }
    mountpoint -q "$btrfs_mnt" && umount -l "$btrfs_mnt"
    rm -rf "$work"
}
trap cleanup EXIT

source scripts/bench-tree.sh
pack_bytes() { du -sb "$1/packs" | cut -f1; }

change_ten() { # change_ten DIR ROUND
    for k in $(seq 0 9); do
        echo "round $2 change $k" >>"$1/d$(printf %05d $((k * 7 % ($n / 100 > 0 ? $n / 100 : 1))))/f$(printf %03d $k)"
    done
}

if ((btrfs)) && ! command -v mkfs.btrfs >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq btrfs-progs >/dev/null || btrfs=0
fi

printf '%-8s %-14s %12s %12s\n' files measure snapfs other
for n in $sizes; do
    src=$work/src-$n
    make_tree "$src" "$n"
    store=$work/store-$n
    "$snapfs" init "$store" >/dev/null
    "$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
    for _ in $(seq 400); do mountpoint -q "$mnt" && break; sleep 0.05; done
    cp -a "$src/." "$mnt/"
    sync "$mnt"
    t0=$(now); echo "create first" >"$mnt/.snapshots/.control"; t1=$(now)
    printf '%-8s %-14s %11ss %12s\n' "$n" create-first "$(elapsed "$t0" "$t1")" ""
    times=() growths=()
    for round in 1 2 3 4 5; do
        change_ten "$mnt" "$round"
        before=$(pack_bytes "$store")
        t0=$(now); echo "create r$round" >"$mnt/.snapshots/.control"; t1=$(now)
        times+=("$(elapsed "$t0" "$t1")")
        growths+=("$(($(pack_bytes "$store") - before))")
    done
    other=
    if ((btrfs)); then
        truncate -s $((2 + n / 20000))G "$work/btrfs.img"
        mkfs.btrfs -q -f "$work/btrfs.img"
        mount -o loop "$work/btrfs.img" "$btrfs_mnt"
        btrfs -q subvolume create "$btrfs_mnt/share"
        cp -a "$src/." "$btrfs_mnt/share/"
        sync
        btrfs -q subvolume snapshot -r "$btrfs_mnt/share" "$btrfs_mnt/first"
        btimes=()
        for round in 1 2 3 4 5; do
            change_ten "$btrfs_mnt/share" "$round"
            t0=$(now); btrfs -q subvolume snapshot -r "$btrfs_mnt/share" "$btrfs_mnt/r$round"; t1=$(now)
            btimes+=("$(elapsed "$t0" "$t1")")
        done
        other="$(echo "${btimes[*]}" | median)s"
        umount "$btrfs_mnt"
        rm -f "$work/btrfs.img"
    fi
    printf '%-8s %-14s %11ss %12s\n' "$n" create-10 "$(echo "${times[*]}" | median)" "${other:-n/a}"
    printf '%-8s %-14s %10sB %12s\n' "$n" growth-10 "$(echo "${growths[*]}" | median)" ""
    snap=$mnt/.snapshots/r5
    drop_caches; t0=$(now); find "$snap" >/dev/null; t1=$(now)
    drop_caches; t2=$(now); find "$mnt" >/dev/null; t3=$(now)
    printf '%-8s %-14s %11ss %11ss  (snapshot, live)\n' "$n" find "$(elapsed "$t0" "$t1")" "$(elapsed "$t2" "$t3")"
    drop_caches; t0=$(now); tar -C "$snap" -cf - . | cat >/dev/null; t1=$(now)
    drop_caches; t2=$(now); tar -C "$mnt" -cf - . | cat >/dev/null; t3=$(now)
    printf '%-8s %-14s %11ss %11ss  (snapshot, live)\n' "$n" read-all "$(elapsed "$t0" "$t1")" "$(elapsed "$t2" "$t3")"
    "$snapfs" umount "$mnt" >/dev/null
    rm -rf "$src" "$store"
done
echo "other: btrfs subvolume snapshot -r on a loop-mounted btrfs, after the same 10 changes"

# Scale: many snapshots of a 10,000-file share.
n=10000
src=$work/src-scale
make_tree "$src" "$n"
store=$work/store-scale
"$snapfs" init "$store" >/dev/null
"$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
for _ in $(seq 400); do mountpoint -q "$mnt" && break; sleep 0.05; done
cp -a "$src/." "$mnt/"
io_times() { # write then cold-read 256 MiB on the live share; prints "write read"
    local t0 t1 t2
    t0=$(now); head -c 256M /dev/urandom >"$work/io.src"; t0=$(now)
    dd if="$work/io.src" of="$mnt/io" bs=1M conv=fsync status=none; t1=$(now)
    drop_caches; dd if="$mnt/io" of=/dev/null bs=1M status=none; t2=$(now)
    rm -f "$mnt/io" "$work/io.src"
    echo "$(elapsed "$t0" "$t1") $(elapsed "$t1" "$t2")"
}
read -r w0 r0 <<<"$(io_times)"
walks() { # verify --quick, verify and gc, cold; prints "quick full gc" in seconds
    local t0 t1 t2 t3
    drop_caches; t0=$(now); "$snapfs" verify --quick --mount "$mnt" >/dev/null
    drop_caches; t1=$(now); "$snapfs" verify --mount "$mnt" >/dev/null
    drop_caches; t2=$(now); "$snapfs" gc --mount "$mnt" >/dev/null; t3=$(now)
    echo "$(elapsed "$t0" "$t1") $(elapsed "$t1" "$t2") $(elapsed "$t2" "$t3")"
}
echo "create m0" >"$mnt/.snapshots/.control"
read -r q0 v0 g0 <<<"$(walks)"
t0=$(now)
for i in $(seq "$many"); do
    echo "$i" >>"$mnt/d00000/f000"
    echo "create m$i" >"$mnt/.snapshots/.control"
done
t1=$(now)
read -r w1 r1 <<<"$(io_times)"
read -r q1 v1 g1 <<<"$(walks)"
drop_caches; t2=$(now); ls -l "$mnt/.snapshots" >/dev/null; t3=$(now)
drop_caches; t4=$(now); find "$mnt/.snapshots/m1" >/dev/null; t5=$(now)
printf '\nscale: %d files, %d snapshots taken in %ss\n' "$n" "$many" "$(elapsed "$t0" "$t1")"
printf '  ls -l .snapshots            %ss\n' "$(elapsed "$t2" "$t3")"
printf '  find in the oldest snapshot %ss\n' "$(elapsed "$t4" "$t5")"
printf '  verify --quick              %ss with one snapshot, %ss with all\n' "$q0" "$q1"
printf '  verify                      %ss with one snapshot, %ss with all\n' "$v0" "$v1"
printf '  gc                          %ss with one snapshot, %ss with all\n' "$g0" "$g1"
printf '  live 256 MiB write + fsync  %ss before, %ss after\n' "$w0" "$w1"
printf '  live 256 MiB cold read      %ss before, %ss after\n' "$r0" "$r1"
printf '  store: %s\n' "$(du -sh "$store" | cut -f1)"
"$snapfs" umount "$mnt" >/dev/null
