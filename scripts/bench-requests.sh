#!/usr/bin/env bash
# What creating small files costs in FUSE requests, snapfs beside libfuse's passthrough_ll.
#
#   scripts/bench-requests.sh [FILES] [RUNS]
#
# FILES files of 1-16 KiB (default 10,000), 100 to a directory, are extracted with `tar -x`,
# then `sync` (and an fsync of the directory, which commits snapfs), as `bench.sh --only untar`
# does. Printed: the requests of each kind each daemon received per file created (snapfs counts
# them itself, `--metrics`; passthrough_ll's are counted from its `-d` log, in an untimed run of
# their own), the median wall time of RUNS (default 5, odd for a true median) timed runs of each, interleaved, their
# ratio, and the time per request. When both spend about the same per request, the ratio of the
# times is the ratio of the request counts: the round trips through the kernel are the cost.
#
# Needs root (mounts, drops the page cache). SNAPFS_BIN (default target/release/snapfs of this
# repository, built first) and PASSTHROUGH_LL_BIN (default target/passthrough_ll, built by
# scripts/build-passthrough-ll.sh when missing) are what run; BENCH_DIR (default /var/tmp) holds
# the work directory.
set -euo pipefail

files=${1:-10000}
runs=${2:-5}
[[ $files =~ ^[1-9][0-9]*$ && $runs =~ ^[1-9][0-9]*$ ]] || {
    echo "usage: $0 [FILES] [RUNS]" >&2
    exit 2
}
((EUID == 0)) || { echo "bench-requests: must run as root" >&2; exit 1; }
cd "$(dirname "$0")/.."
source scripts/bench-tree.sh
if [[ -z ${SNAPFS_BIN:-} ]]; then cargo build --release --quiet --bin snapfs; fi
snapfs=${SNAPFS_BIN:-$PWD/target/release/snapfs}
ll=${PASSTHROUGH_LL_BIN:-$PWD/target/passthrough_ll}
[[ -x $ll ]] || scripts/build-passthrough-ll.sh "$ll"
command -v fusermount3 >/dev/null || { apt-get update -qq && apt-get install -y -qq fuse3 >/dev/null; }

work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/snapfs-requests.XXXXXX")
mnt=$work/mnt
mkdir "$mnt"
ll_pid=
cleanup() {
    if mountpoint -q "$mnt"; then
        if [[ -n $ll_pid ]]; then fusermount3 -u "$mnt"; else "$snapfs" umount "$mnt" >/dev/null; fi
    fi
    [[ -n $ll_pid ]] && wait "$ll_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

echo "bench-requests: making a tar of $files files of 1-16 KiB" >&2
make_tree "$work/src" "$files" 16
tar -C "$work/src" -cf "$work/files.tar" .
rm -rf "$work/src"

untar_sync() { tar -C "$mnt/x" -xf "$work/files.tar" && sync && sync "$mnt/x"; }
wait_mounted() {
    local i
    for ((i = 0; i < 3000; i++)); do mountpoint -q "$mnt" && return 0; sleep 0.01; done
    echo "bench-requests: $1 did not mount" >&2
    exit 1
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# mount TARGET [ll options...]: a fresh, empty mount of TARGET at $mnt with a directory x.
mount_target() {
    local target=$1
    shift
    rm -rf "$work/backing" && mkdir "$work/backing"
    if [[ $target == snapfs ]]; then
        "$snapfs" init "$work/backing/store" >/dev/null
        "$snapfs" mount "$work/backing/store" "$mnt" --daemon "$@" >/dev/null
    else
        "$ll" -f "$@" -o "source=$work/backing" "$mnt" 2>>"$work/ll.log" &
        ll_pid=$!
    fi
    wait_mounted "$target"
    mkdir "$mnt/x"
}
unmount_target() {
    if [[ -n $ll_pid ]]; then
        fusermount3 -u "$mnt"
        wait "$ll_pid" || true
        ll_pid=
    else
        "$snapfs" umount "$mnt" >/dev/null
    fi
}

# Requests counted: snapfs's metrics before and after, passthrough_ll's debug log likewise.
declare -A SNAPFS_N=() LL_N=()
snapfs_counts() {
    curl -s "http://127.0.0.1:$1/metrics" |
        sed -n 's/^snapfs_requests_total{op="\([a-z_]*\)"} \([0-9]*\)$/\1 \2/p'
}
ll_counts() { grep -o 'opcode: [A-Z_]*' "$work/ll.log" | awk '{ n[tolower($2)]++ } END { for (o in n) print o, n[o] }'; }

# count OUT COMMAND...: into array OUT, the requests of each kind that untar_sync adds to the
# counts COMMAND prints (one "kind count" a line).
count() {
    local -n out=$1
    local op n
    while read -r op n; do out[$op]=$((-n)); done < <("${@:2}")
    untar_sync
    while read -r op n; do out[$op]=$((${out[$op]:-0} + n)); done < <("${@:2}")
}

echo "bench-requests: counting snapfs's requests" >&2
port=$(free_port)
mount_target snapfs --metrics "127.0.0.1:$port"
count SNAPFS_N snapfs_counts "$port"
unmount_target

echo "bench-requests: counting passthrough_ll's requests (its -d log)" >&2
: >"$work/ll.log"
mount_target passthrough_ll -d
count LL_N ll_counts
unmount_target

declare -A TIMES=()
for ((r = 1; r <= runs; r++)); do
    for target in passthrough_ll snapfs; do
        mount_target "$target"
        drop_caches
        cat "$work/files.tar" >/dev/null
        secs=$(time_of untar_sync)
        unmount_target
        TIMES[$target]+="$secs "
        echo "bench-requests: run $r/$runs $target $secs s" >&2
    done
done
s_time=$(median <<<"${TIMES[snapfs]% }") l_time=$(median <<<"${TIMES[passthrough_ll]% }")

echo
echo "FUSE requests per file created: tar -x of $files files of 1-16 KiB, then sync"
printf '%-14s %8s %15s\n' request snapfs passthrough_ll
s_total=0 l_total=0
for op in $(printf '%s\n' "${!SNAPFS_N[@]}" "${!LL_N[@]}" | sort -u); do
    s=${SNAPFS_N[$op]:-0} l=${LL_N[$op]:-0}
    ((s > 0 || l > 0)) || continue
    s_total=$((s_total + s)) l_total=$((l_total + l))
    awk -v op="$op" -v s="$s" -v l="$l" -v f="$files" 'BEGIN { printf "%-14s %8.2f %15.2f\n", op, s / f, l / f }'
done
awk -v s="$s_total" -v l="$l_total" -v f="$files" -v st="$s_time" -v lt="$l_time" -v r="$runs" 'BEGIN {
    printf "%-14s %8.2f %15.2f   ratio %.2f\n", "all", s / f, l / f, s / l
    printf "%-14s %7.2fs %14.2fs   ratio %.2f (median of %d)\n", "wall time", st, lt, st / lt, r
    printf "%-14s %6.1fus %13.1fus\n", "per request", st / s * 1e6, lt / l * 1e6
}'
