#!/usr/bin/env bash
# A store with two weeks of history, and its report (`snapfs report --html`) rendered by
# scripts/report-png.sh to OUT.png (default docs/report.png, the picture in the README).
#
#   scripts/report-demo.sh [OUT.png]
#
# The daemon runs on its test clock (`mount --test-clock`, moved through the control file with
# `clock TIME`), so two weeks of daily snapshots, hourly ticks, a soft delete, gc runs and
# backups into a local vault take a minute, not two weeks. Everything lives in a temporary
# directory that is removed at the end; the share is unmounted whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-docs/report.png}")
cargo build --release --quiet
snapfs=$PWD/target/release/snapfs
work=$(mktemp -d /var/tmp/snapfs-report-demo.XXXXXX)
store=$work/store mnt=$work/mnt vault=$work/vault
mkdir "$mnt"
daemon=
cleanup() {
    if mountpoint -q "$mnt"; then "$snapfs" umount "$mnt" >/dev/null || umount -l "$mnt"; fi
    if [ -n "$daemon" ]; then wait "$daemon" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

day=86400
# Two weeks ago, midnight UTC.
start=$(( ($(date +%s) / day - 14) * day ))
clock() { echo "clock $1" >"$mnt/.snapshots/.control"; }
mib() { head -c "$(( $1 << 20 ))" /dev/urandom >"$2"; }

"$snapfs" init "$store" >/dev/null
"$snapfs" vault init "$vault" >/dev/null
"$snapfs" mount "$store" "$mnt" --test-clock "$start" 2>"$work/daemon.log" &
daemon=$!
for _ in $(seq 200); do mountpoint -q "$mnt" && break; sleep 0.05; done
mountpoint -q "$mnt" || { echo "mount did not appear" >&2; cat "$work/daemon.log" >&2; exit 1; }
"$snapfs" policy set --soft-delete 5d --mount "$mnt" >/dev/null

mkdir "$mnt/projects" "$mnt/media"
mib 24 "$mnt/media/archive.bin"
for d in $(seq 0 13); do
    today=$(( start + d * day ))
    # Through the day: work in the share, the scheduler's tick every four hours.
    for h in 8 12 16 20; do
        clock $(( today + h * 3600 ))
        mib $(( 1 + (d * 7 + h) % 5 )) "$mnt/projects/work-$d-$h.bin"
    done
    # A database rewritten every day: each day's snapshot alone holds its version.
    mib $(( 2 + d % 5 )) "$mnt/projects/db.bin"
    # Old work is cleared out now and then; a big import on day 6, gone the next day, so
    # that day's snapshot alone holds it.
    if [ $(( d % 4 )) -eq 3 ]; then rm -f "$mnt"/projects/work-$(( d - 3 ))-*.bin; fi
    [ "$d" -eq 6 ] && mib 40 "$mnt/media/import.bin"
    [ "$d" -eq 7 ] && rm "$mnt/media/import.bin"
    clock $(( today + 23 * 3600 ))
    name=daily-$(date -u -d "@$today" +%F)
    "$snapfs" snapshot create "$name" --mount "$mnt" >/dev/null
    # A backup every third day; one into a vault that is not there, which fails.
    if [ $(( d % 3 )) -eq 2 ]; then
        "$snapfs" backup "$name" --to "$vault" --mount "$mnt" >/dev/null
    fi
    if [ "$d" -eq 11 ]; then
        "$snapfs" backup "$name" --to "$work/missing-vault" --mount "$mnt" >/dev/null 2>&1 || true
    fi
    # The import's snapshot is deleted on day 9 (soft: recoverable for five days) and purged
    # on day 12; gc runs on days 1, 5, 9 and 13.
    import=daily-$(date -u -d "@$(( start + 6 * day ))" +%F)
    [ "$d" -eq 9 ] && "$snapfs" snapshot delete "$import" --mount "$mnt" >/dev/null
    [ "$d" -eq 12 ] && "$snapfs" snapshot purge "$import" --mount "$mnt" >/dev/null
    if [ $(( d % 4 )) -eq 1 ]; then "$snapfs" gc --mount "$mnt" >/dev/null; fi
done
clock $(( start + 14 * day + 9 * 3600 ))
"$snapfs" report --mount "$mnt" --html "$work/report.html" --jobs 12
mkdir -p "$(dirname "$out")"
REPORT_PNG_SIZE=${REPORT_PNG_SIZE:-1200,2300} scripts/report-png.sh "$work/report.html" "$out"
