#!/usr/bin/env bash
# Backups into a snapfs vault against restic (Debian's package) on the same data, in the same
# run, both repositories encrypted and on the same local disk:
#   1. first backup of a share of 10,000 small files and 1 GiB of large ones;
#   2. incremental backup after 1 MiB changed in one file (snapfs: snapshot + backup), twice
#      (the first is the share's second snapshot), and after 10 small files changed (the
#      backup issue: "a 100,000-file share with 10 files changed backs up in well under a
#      second": run with --files 100000);
#   3. restore of everything (snapfs: `vault restore` to a new store; restic: `restore`);
#   4. `find` over a mounted backup (`snapfs vault mount` / `restic mount`), when both exist.
# restic reads a plain directory holding the same files (its best case: no FUSE between it
# and the data); snapfs reads its own store. Page caches are dropped before every step.
# Prints each time and the ratios the backup issue asks for.
#
#   scripts/bench-vault.sh [--mib N] [--files N]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-tree.sh
mib=1024
files=10000
parse_mib_files "$@"
if ! command -v restic >/dev/null; then
    apt-get update -qq && apt-get install -y -qq restic >/dev/null
fi
cargo build --release --quiet
snapfs=$PWD/target/release/snapfs
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-vaultbench.XXXXXX")
mnt=$work/mnt store=$work/store vault=$work/vault plain=$work/plain repo=$work/restic
vmnt=$work/vault-mnt rmnt=$work/restic-mnt
mkdir -p "$mnt" "$plain" "$vmnt" "$rmnt"
export SNAPFS_PASSPHRASE=bench-passphrase RESTIC_PASSWORD=bench-passphrase
pids=()
cleanup() {
    for m in "$vmnt" "$rmnt" "$mnt" "$work/restored-mnt"; do
        mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || umount -l "$m"; }
    done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
wait_mounted() { for _ in $(seq 600); do mountpoint -q "$1" && return 0; sleep 0.05; done; return 1; }
timed() { # timed VAR COMMAND...: runs COMMAND with cold caches, sets VAR to its seconds
    local var=$1; shift
    drop_caches
    local t0 t1
    t0=$(now)
    "$@" >>"$work/commands.log" 2>&1
    t1=$(now)
    printf -v "$var" '%s' "$(elapsed "$t0" "$t1")"
}

# The share: 10,000 small files and 16 large ones, the same bytes in the snapfs share and in
# the plain directory restic reads.
"$snapfs" init "$store" >/dev/null
"$snapfs" mount "$store" "$mnt" 2>>"$work/daemon.log" &
pids+=($!)
wait_mounted "$mnt"
make_tree "$plain/small" "$files"
mkdir -p "$plain/large"
for i in $(seq 0 15); do
    head -c "$((mib / 16))M" /dev/urandom >"$plain/large/f$i"
done
cp -a "$plain/." "$mnt/"
sync -f "$mnt/"
"$snapfs" snapshot create first --mount "$mnt" >/dev/null
"$snapfs" vault init "$vault" --encrypt >/dev/null
restic init --repo "$repo" >/dev/null

timed snapfs_first "$snapfs" backup first --to "$vault" --mount "$mnt"
timed restic_first restic backup --repo "$repo" "$plain"

# 1 MiB changed in the middle of one large file, on both sides.
head -c 1M /dev/urandom >"$work/change"
for root in "$mnt" "$plain"; do
    dd if="$work/change" of="$root/large/f3" bs=1M seek=$((mib / 32)) conv=notrunc status=none
done
sync -f "$mnt/"
vault_before=$(du -sb "$vault" | cut -f1)
restic_before=$(du -sb "$repo" | cut -f1)
timed snapfs_incr "$snapfs" backup --to "$vault" --mount "$mnt"
timed restic_incr restic backup --repo "$repo" "$plain"
vault_added=$(($(du -sb "$vault" | cut -f1) - vault_before))
restic_added=$(($(du -sb "$repo" | cut -f1) - restic_before))
head -c 1M /dev/urandom >"$work/change"
for root in "$mnt" "$plain"; do
    dd if="$work/change" of="$root/large/f5" bs=1M seek=$((mib / 32)) conv=notrunc status=none
done
sync -f "$mnt/"
timed snapfs_incr2 "$snapfs" backup --to "$vault" --mount "$mnt"
timed restic_incr2 restic backup --repo "$repo" "$plain"

timed snapfs_restore "$snapfs" vault restore "$vault" first "$work/restored-store"
timed restic_restore restic restore latest --repo "$repo" --target "$work/restic-restored"
# The restored store serves the same bytes (checked, not timed).
mkdir -p "$work/restored-mnt"
"$snapfs" mount "$work/restored-store" "$work/restored-mnt" 2>>"$work/daemon.log" &
pids+=($!)
wait_mounted "$work/restored-mnt"
cmp -s <(cd "$work/restored-mnt/small" && find . -type f -exec md5sum {} + | sort) \
    <(cd "$plain/small" && find . -type f -exec md5sum {} + | sort) ||
    { echo "the restored share differs" >&2; exit 1; }
"$snapfs" umount "$work/restored-mnt" >/dev/null

# 10 small files rewritten, on both sides.
for i in $(seq 0 9); do
    f=small/d$(printf %05d $((i * files / 1000)))/f00$i
    head -c 2000 /dev/urandom >"$work/small-change"
    cp "$work/small-change" "$mnt/$f"
    cp "$work/small-change" "$plain/$f"
done
sync -f "$mnt/"
timed snapfs_ten "$snapfs" backup --to "$vault" --mount "$mnt"
timed restic_ten restic backup --repo "$repo" "$plain"

snapfs_find=- restic_find=-
if "$snapfs" vault mount --help >/dev/null 2>&1; then
    "$snapfs" vault mount "$vault" "$vmnt" 2>>"$work/vault-mount.log" &
    pids+=($!)
    restic mount --repo "$repo" "$rmnt" >>"$work/restic-mount.log" 2>&1 &
    pids+=($!)
    if wait_mounted "$vmnt" && wait_mounted "$rmnt"; then
        # Both list every entry of every backup of the share.
        timed snapfs_find find "$vmnt" -printf '%s %p\n'
        timed restic_find find "$rmnt/snapshots" -printf '%s %p\n'
    fi
fi

printf '%-34s %12s %12s\n' step snapfs restic
printf '%-34s %12s %12s\n' "first backup, $mib MiB + $files files (s)" "$snapfs_first" "$restic_first"
printf '%-34s %12s %12s\n' "incremental, 1 MiB changed (s)" "$snapfs_incr" "$restic_incr"
printf '%-34s %12s %12s\n' "  bytes added" "$vault_added" "$restic_added"
printf '%-34s %12s %12s\n' "incremental again, 1 MiB (s)" "$snapfs_incr2" "$restic_incr2"
printf '%-34s %12s %12s\n' "incremental, 10 files changed (s)" "$snapfs_ten" "$restic_ten"
printf '%-34s %12s %12s\n' "restore of the first backup (s)" "$snapfs_restore" "$restic_restore"
printf '%-34s %12s %12s\n' "find over a mounted backup (s)" "$snapfs_find" "$restic_find"
echo
awk -v s="$snapfs_first" -v r="$restic_first" \
    'BEGIN { printf "first backup: snapfs throughput is %.2fx restic'"'"'s (target: at least 2x)\n", r / s }'
awk -v s="$snapfs_incr" -v r="$restic_incr" \
    'BEGIN { printf "incremental:  snapfs takes %.3fx restic'"'"'s time (target: at most 0.1x)\n", s / r }'
awk -v s="$snapfs_incr2" -v r="$restic_incr2" \
    'BEGIN { printf "again:        snapfs takes %.3fx restic'"'"'s time\n", s / r }'
awk -v s="$snapfs_ten" -v r="$restic_ten" \
    'BEGIN { printf "10 files:     snapfs takes %.3fx restic'"'"'s time\n", s / r }'
awk -v s="$snapfs_restore" -v r="$restic_restore" \
    'BEGIN { printf "restore:      snapfs takes %.2fx restic'"'"'s time (target: at most 1x)\n", s / r }'
if [[ $snapfs_find != - ]]; then
    awk -v s="$snapfs_find" -v r="$restic_find" \
        'BEGIN { printf "find:         snapfs takes %.2fx restic'"'"'s time\n", s / r }'
fi
