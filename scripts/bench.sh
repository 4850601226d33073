#!/usr/bin/env bash
# Benchmark snapfs against a plain directory and a bare FUSE passthrough, on the same disk.
#
#   scripts/bench.sh [--quick] [--only LIST] [--targets LIST] [--runs N] [--size-mib N]
#                    [--files N] [--no-build] [--no-verify] [--keep] [--tsv FILE]
#
# Targets (columns): plain       a directory under $BENCH_DIR
#                    passthrough target/release/snapfs-passthrough over a directory there
#                    passthrough_ll  libfuse's C example passthrough_ll (Debian's libfuse3-dev),
#                                with its default options, over a directory there
#                    snapfs      `snapfs mount` of a store there
# The passthrough columns are what FUSE itself costs; snapfs/passthrough is what snapfs adds.
# passthrough_ll is the baseline FUSE users know; it is built into target/passthrough_ll the
# first time (installing libfuse3-dev, pkg-config and gcc if they are missing).
#
# Workloads (rows; --only takes a comma-separated subset):
#   write-random  copy a 1 GiB incompressible file in (dd bs=1M conv=fsync: write + fsync)
#   write-text    the same with 1 GiB of generated text that zstd packs ~3.3x (never repeats)
#   read-random   cold sequential read of that file (caches dropped, FUSE targets remounted)
#   read-text     the same for the text file
#   untar         tar -x of 10,000 files of 1-16 KiB in 100 directories, then sync (+ fsync of the dir)
#   read-small    cold read of them all (tar -c . | cat >/dev/null)
#   find          cold find over them
# A read workload whose input is missing (not selected with --only) writes it first, untimed.
# --quick: 128 MiB files and 2,000 small files. --runs N: repeat everything N times (each run
# goes through every target, on fresh directories) and report medians; --tsv FILE: every
# measurement, one per line. --no-verify skips checking what is read back; --keep keeps the
# work directory.
#
# Environment: BENCH_DIR (default /var/tmp/snapfs-bench; its disk is the one measured),
#   SNAPFS_BIN, PASSTHROUGH_BIN (default: target/release/ of this repository, built first),
#   PASSTHROUGH_LL_BIN (default: target/passthrough_ll, built from Debian's examples),
#   PASSTHROUGH_ARGS (the passthrough's options; default "--writeback": its other defaults
#   match `snapfs mount`'s, 4 threads and a 1 s cache TTL), SNAPFS_ARGS (extra options for
#   `snapfs mount`, e.g. "--writeback-cache" or "--cache-ttl 60", to measure a caching choice).
# The test data is made once, in /dev/shm when it has room (else under BENCH_DIR).
# Needs root: it mounts, and it drops the page cache before every cold measurement.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_DIR=${BENCH_DIR:-/var/tmp/snapfs-bench}
SNAPFS_BIN=${SNAPFS_BIN:-$REPO/target/release/snapfs}
PASSTHROUGH_BIN=${PASSTHROUGH_BIN:-$REPO/target/release/snapfs-passthrough}
PASSTHROUGH_LL_BIN=${PASSTHROUGH_LL_BIN:-$REPO/target/passthrough_ll}
# Like `snapfs mount`'s defaults: 4 threads, 1 s cache TTL, the kernel's writeback cache.
read -r -a PASSTHROUGH_OPTS <<<"${PASSTHROUGH_ARGS---writeback}"
# Extra `snapfs mount` options, to measure a caching choice (e.g. "--writeback-cache off").
read -r -a SNAPFS_OPTS <<<"${SNAPFS_ARGS:-}"

ALL_WORKLOADS=(write-random write-text read-random read-text untar read-small find)
ALL_TARGETS=(plain passthrough passthrough_ll snapfs)
SIZE_MIB=1024
RUNS=1
NFILES=10000
FILES_PER_DIR=100
BUILD=1
VERIFY=1
KEEP=0
TSV=
ONLY=
TARGETS=
MOUNT_TIMEOUT=30   # seconds for a daemon to mount
UMOUNT_TIMEOUT=120 # seconds for a daemon to flush, unmount and exit

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while (($#)); do
    case $1 in
        --quick) SIZE_MIB=128 NFILES=2000 ;;
        --only) ONLY=${2:?--only needs a list}; shift ;;
        --targets) TARGETS=${2:?--targets needs a list}; shift ;;
        --runs) RUNS=${2:?}; shift ;;
        --size-mib) SIZE_MIB=${2:?}; shift ;;
        --files) NFILES=${2:?}; shift ;;
        --no-build) BUILD=0 ;;
        --no-verify) VERIFY=0 ;;
        --keep) KEEP=1 ;;
        --tsv) TSV=${2:?}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done

# pick OUT LIST ALL...: set array OUT to the names in LIST (comma-separated), in the order of
# ALL; to all of ALL if LIST is empty.
pick() {
    local -n out=$1
    local list=$2 name
    shift 2
    out=()
    local -A want=()
    for name in ${list//,/ }; do
        [[ " $* " == *" $name "* ]] || die "unknown name '$name' (known: $*)"
        want[$name]=1
    done
    for name in "$@"; do
        if [[ -z $list || -n ${want[$name]:-} ]]; then out+=("$name"); fi
    done
}
pick WORKLOADS "$ONLY" "${ALL_WORKLOADS[@]}"
pick RUN_TARGETS "$TARGETS" "${ALL_TARGETS[@]}"
((${#WORKLOADS[@]} && ${#RUN_TARGETS[@]})) || die "nothing to run"
for n in "$SIZE_MIB" "$NFILES" "$RUNS"; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "sizes and counts must be positive integers, not '$n'"
done
((EUID == 0)) || die "must run as root (mounts FUSE filesystems and drops caches)"
[[ $BENCH_DIR != *[[:space:]]* ]] || die "BENCH_DIR must not contain whitespace"
for tool in dd tar find mountpoint awk tr sync; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

wants_target() { [[ " ${RUN_TARGETS[*]} " == *" $1 "* ]]; }

if ((BUILD)); then
    note "building release binaries in $REPO"
    (cd "$REPO" && cargo build --release --quiet)
fi
if wants_target passthrough; then
    [[ -x $PASSTHROUGH_BIN ]] || die "no passthrough binary at $PASSTHROUGH_BIN"
fi
if wants_target snapfs; then
    [[ -x $SNAPFS_BIN ]] || die "no snapfs binary at $SNAPFS_BIN"
fi
if wants_target passthrough_ll && [[ ! -x $PASSTHROUGH_LL_BIN ]]; then
    "$REPO/scripts/build-passthrough-ll.sh" "$PASSTHROUGH_LL_BIN" || die "cannot build passthrough_ll"
fi

# ---------------------------------------------------------------- state and cleanup

mkdir -p "$BENCH_DIR"
WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
DATA=
LOGDIR=$WORK/logs
mkdir -p "$LOGDIR"
declare -A DAEMON_PID=()  # mountpoint -> pid of the daemon serving it (our child)
declare -A DAEMON_KIND=() # mountpoint -> passthrough | passthrough_ll | snapfs
declare -A RESULT=()      # "workload target" -> seconds of each run, space-separated
COLD_OK=1

# is_mounted PATH: PATH is a mountpoint in /proc/mounts (works even if its daemon died).
is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

# proc_state PID: the one-letter state of PID, or nothing if it is gone.
proc_state() { sed -E 's/^.*\) (.).*$/\1/' "/proc/$1/stat" 2>/dev/null || true; }

# wait_exit PID SECONDS: reap our child PID once it exits; fails if it is still running after SECONDS.
wait_exit() {
    local pid=$1 deadline=$((SECONDS + $2)) state
    while :; do
        state=$(proc_state "$pid")
        [[ -z $state || $state == Z ]] && break
        ((SECONDS < deadline)) || return 1
        sleep 0.05
    done
    local rc=0
    wait "$pid" 2>/dev/null || rc=$?
    ((rc == 0)) || note "daemon $pid exited with status $rc"
    return 0
}

# stop_daemon MNT: unmount MNT the proper way and wait for its daemon to exit.
stop_daemon() {
    local mnt=$1 pid=${DAEMON_PID[$1]} kind=${DAEMON_KIND[$1]}
    if is_mounted "$mnt"; then
        if [[ $kind == snapfs ]]; then
            timeout "$UMOUNT_TIMEOUT" "$SNAPFS_BIN" umount "$mnt" >>"$LOGDIR/snapfs.log" 2>&1 ||
                note "snapfs umount $mnt failed (see below)"
        else
            umount "$mnt" || note "umount $mnt failed"
        fi
    fi
    local ok=1
    wait_exit "$pid" "$UMOUNT_TIMEOUT" || ok=0
    if ((!ok)); then
        note "daemon $pid for $mnt did not exit; terminating it"
        kill -TERM "$pid" 2>/dev/null || true
        wait_exit "$pid" 10 || { kill -KILL "$pid" 2>/dev/null || true; wait_exit "$pid" 10 || true; }
    fi
    if is_mounted "$mnt" && ! umount "$mnt" 2>/dev/null; then
        note "$mnt still mounted; lazy unmount"
        umount -l "$mnt" || true
    fi
    unset "DAEMON_PID[$mnt]" "DAEMON_KIND[$mnt]"
    ((ok)) || return 1
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    local mnt
    for mnt in "${!DAEMON_PID[@]}"; do
        stop_daemon "$mnt"
    done
    if ((rc != 0)); then
        local log
        for log in "$LOGDIR"/*.log; do
            [[ -s $log ]] || continue
            echo "--- last lines of $(basename "$log"):" >&2
            tail -n 20 "$log" >&2
        done
    fi
    # Never recurse into a live mount.
    if awk -v w="$WORK/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
        note "something under $WORK is still mounted; leaving it in place"
    elif ((KEEP)); then
        note "kept $WORK"
    else
        rm -rf --one-file-system "$WORK"
        rmdir "$BENCH_DIR" 2>/dev/null # if nothing else is in it
    fi
    [[ -n $DATA && $DATA != "$WORK"/* ]] && rm -rf "$DATA"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { echo "${EPOCHREALTIME:-$(date +%s.%N)}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# warm FILE: have a test-data file in the page cache, so reading it costs next to nothing.
warm() { if ((!DATA_IN_RAM)); then cat "$1" >/dev/null; fi; }

drop_caches() {
    sync
    if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
        ((COLD_OK)) && note "cannot drop the page cache: 'cold' reads are not cold"
        COLD_OK=0
    fi
}

# ---------------------------------------------------------------- test data

# Test data lives in RAM when /dev/shm has room, so reading it costs next to nothing.
SIZE=$((SIZE_MIB * 1024 * 1024))
need_kib=$((2 * SIZE / 1024 + NFILES * 20 + 262144))
if [[ -d /dev/shm ]] && (($(df -Pk /dev/shm | awk 'NR == 2 { print $4 }') > need_kib)); then
    DATA=$(mktemp -d /dev/shm/snapfs-bench.XXXXXX)
    DATA_IN_RAM=1
else
    DATA_IN_RAM=0
    DATA=$WORK/data
    mkdir -p "$DATA"
fi
avail_kib=$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')
((avail_kib > 3 * SIZE / 1024)) || note "warning: only $((avail_kib / 1024)) MiB free under $BENCH_DIR"

# text_block SEED FILE: 64 MiB (or SIZE, if smaller) of pseudo-English from a seeded generator:
# Zipf-skewed words, punctuation, a few numbers. zstd -3 compresses it about 3.3x.
text_block() {
    local block=$((SIZE < 67108864 ? SIZE : 67108864))
    awk -v seed="$1" -v bytes="$block" '
    BEGIN {
        nw = split("the of and to in a is that for it as was with be by on not he i this are or " \
            "his from at which but have an they you were her she there one all we their can has " \
            "been if more when will would who so no time people about out up into just like them " \
            "other than some could what only its also over new after first two may any these " \
            "year way use work well our because most even such made back should me many good " \
            "very through being where day much before those long great little world same own " \
            "down life still school state between never last while high against under might " \
            "need house old another place end does each part right used both since number say " \
            "small give large point city company case public government system group problem " \
            "fact hand program question during home water room area money story month lot " \
            "study book eye job word business issue side kind head far black power change", W, " ")
        split(". . , , , ; : ? !", P, " ")
        srand(seed)
        while (total < bytes) {
            words = 6 + int(rand() * 10)
            line = ""
            for (i = 0; i < words; i++) {
                w = W[1 + int(nw * rand() * rand() * rand() * rand())]
                if (i == 0) w = toupper(substr(w, 1, 1)) substr(w, 2)
                line = line w
                if (rand() < 0.08) line = line P[1 + int(rand() * 9)]
                line = line (i < words - 1 ? " " : ".")
            }
            if (rand() < 0.02) line = line sprintf(" %d", int(rand() * 1000))
            print line
            total += length(line) + 1
        }
    }' | head -c "$block" >"$2"
}

# text_stream BYTES CASE: BYTES of text, every 64 MiB block a different letter rotation of the
# generator's output, so nothing repeats at any scale (no dedup). CASE=upper gives text that
# shares no chunk with CASE=lower.
text_stream() {
    local bytes=$1 case=$2 alpha=abcdefghijklmnopqrstuvwxyz copy=0 to
    local block
    (
        set +o pipefail
        while :; do
            block=$DATA/text-block.$((copy / 26))
            [[ -f $block ]] || text_block $((1000 + copy / 26)) "$block"
            to=${alpha:copy % 26}${alpha:0:copy % 26}
            [[ $case == upper ]] && to=${to^^}
            # shellcheck disable=SC2018 # ASCII rotation is the point
            tr 'a-z' "$to" <"$block" || exit 0 # a closed pipe ends the stream
            copy=$((copy + 1))
        done | head -c "$bytes"
    )
}

prepare_data() {
    local t0
    t0=$(now)
    note "making test data in $DATA ($SIZE_MIB MiB files, $NFILES small files)"
    if command -v openssl >/dev/null; then
        (set +o pipefail
            openssl enc -aes-128-ctr -nosalt -pbkdf2 -pass pass:snapfs-bench -in /dev/zero 2>/dev/null |
                head -c "$SIZE" >"$DATA/random.bin")
    else
        head -c "$SIZE" /dev/urandom >"$DATA/random.bin"
    fi
    text_stream "$SIZE" lower >"$DATA/text.bin"
    local f
    for f in random.bin text.bin; do
        [[ $(stat -c %s "$DATA/$f") == "$SIZE" ]] || die "failed to make $f"
    done

    # Small files: 1-16 KiB slices of upper-case text, $FILES_PER_DIR to a directory.
    local src=$DATA/small
    mkdir -p "$src"
    (set +o pipefail
        text_stream $((NFILES * 17 * 1024)) upper |
            awk -v n="$NFILES" -v per="$FILES_PER_DIR" -v root="$src" '
            function next_file() {
                if (f >= n) exit
                dir = sprintf("%s/d%03d", root, int(f / per))
                if (f % per == 0) system("mkdir -p \"" dir "\"")
                name = sprintf("%s/f%05d.txt", dir, f)
                want = 1024 + int(rand() * 15361)
                have = 0
            }
            BEGIN { srand(7); f = 0; next_file() }
            {
                s = $0 "\n"
                while (length(s) > 0) {
                    room = want - have
                    if (length(s) < room) { printf "%s", s > name; have += length(s); break }
                    printf "%s", substr(s, 1, room) > name
                    close(name)
                    s = substr(s, room + 1)
                    f++
                    next_file()
                }
            }')
    local made
    made=$(find "$src" -type f | wc -l)
    ((made == NFILES)) || die "made $made small files, wanted $NFILES"
    SMALL_ENTRIES=$(find "$src" | wc -l)
    tar -C "$src" -cf "$DATA/small.tar" .
    rm -rf "$src" "$DATA"/text-block.*
    note "test data ready in $(elapsed "$t0" "$(now)") s"
}

# ---------------------------------------------------------------- targets

# start_daemon KIND MNT CMD...: run CMD in the background and wait until MNT is mounted.
start_daemon() {
    local kind=$1 mnt=$2
    shift 2
    mkdir -p "$mnt"
    "$@" >>"$LOGDIR/$kind.log" 2>&1 &
    local pid=$!
    DAEMON_PID[$mnt]=$pid
    DAEMON_KIND[$mnt]=$kind
    local deadline=$((SECONDS + MOUNT_TIMEOUT))
    until mountpoint -q "$mnt"; do
        if [[ -z $(proc_state "$pid") || $(proc_state "$pid") == Z ]]; then
            die "$kind daemon exited before mounting $mnt"
        fi
        ((SECONDS < deadline)) || die "$kind did not mount $mnt within ${MOUNT_TIMEOUT}s"
        sleep 0.05
    done
}

# Each target has a directory DIR the workloads use; mount/unmount bring it up and down.
target_dir() {
    case $1 in
        plain) echo "$WORK/plain" ;;
        passthrough) echo "$WORK/passthrough-mnt" ;;
        passthrough_ll) echo "$WORK/passthrough_ll-mnt" ;;
        snapfs) echo "$WORK/snapfs-mnt" ;;
    esac
}

target_setup() {
    case $1 in
        plain) mkdir -p "$WORK/plain" ;;
        passthrough) mkdir -p "$WORK/passthrough-backing" ;;
        passthrough_ll) mkdir -p "$WORK/passthrough_ll-backing" ;;
        snapfs) "$SNAPFS_BIN" init "$WORK/snapfs-store" >>"$LOGDIR/snapfs.log" 2>&1 ||
            die "snapfs init failed" ;;
    esac
    target_mount "$1"
}

target_mount() {
    case $1 in
        plain) ;;
        passthrough) start_daemon passthrough "$WORK/passthrough-mnt" \
            "$PASSTHROUGH_BIN" "$WORK/passthrough-backing" "$WORK/passthrough-mnt" "${PASSTHROUGH_OPTS[@]}" ;;
        passthrough_ll) start_daemon passthrough_ll "$WORK/passthrough_ll-mnt" \
            "$PASSTHROUGH_LL_BIN" -f -o "source=$WORK/passthrough_ll-backing" "$WORK/passthrough_ll-mnt" ;;
        snapfs) start_daemon snapfs "$WORK/snapfs-mnt" \
            "$SNAPFS_BIN" mount "$WORK/snapfs-store" "$WORK/snapfs-mnt" "${SNAPFS_OPTS[@]}" ;;
    esac
}

target_unmount() {
    local dir
    dir=$(target_dir "$1")
    if [[ $1 != plain ]]; then stop_daemon "$dir"; fi
}

target_teardown() {
    target_unmount "$1"
    rm -rf --one-file-system "$WORK/plain" "$WORK/passthrough-backing" "$WORK/passthrough-mnt" \
        "$WORK/passthrough_ll-backing" "$WORK/passthrough_ll-mnt" "$WORK/snapfs-store" "$WORK/snapfs-mnt"
    sync
}

# make_cold TARGET: nothing of the target's data left in any cache.
make_cold() {
    if [[ $1 != plain ]]; then
        target_unmount "$1"
        target_mount "$1"
    fi
    drop_caches
}

# ---------------------------------------------------------------- workloads

# timed WORKLOAD TARGET CMD...: run CMD and record its wall time.
timed() {
    local wl=$1 target=$2 t0 t1
    shift 2
    t0=$(now)
    "$@"
    t1=$(now)
    local secs
    secs=$(elapsed "$t0" "$t1")
    RESULT["$wl $target"]+="$secs "
    note "$(printf 'run %d/%d  %-12s %-12s %8s s' "$RUN" "$RUNS" "$wl" "$target" "$secs")"
}

copy_in() { dd if="$1" of="$2" bs=1M conv=fsync status=none; }
read_out() { dd if="$1" of=/dev/null bs=1M status=none; }
# `sync` alone cannot reach a FUSE daemon's own state (the kernel has no syncfs request for
# it), so the extracted tree is also fsynced through its directory, which commits snapfs.
untar_sync() { tar -C "$1" -xf "$DATA/small.tar" && sync && sync "$1"; }
tar_read() { tar -C "$1" -cf - . | cat >/dev/null; }
find_all() {
    local n
    n=$(find "$1" | wc -l)
    ((n == SMALL_ENTRIES)) || die "find saw $n entries in $1, expected $SMALL_ENTRIES"
}

# write_file WORKLOAD TARGET NAME [untimed]
write_file() {
    local wl=$1 target=$2 name=$3 dir
    dir=$(target_dir "$target")
    rm -f "$dir/$name"
    drop_caches
    warm "$DATA/$name"
    if [[ ${4:-} == untimed ]]; then
        copy_in "$DATA/$name" "$dir/$name"
    else
        timed "$wl" "$target" copy_in "$DATA/$name" "$dir/$name"
    fi
}

read_file() {
    local wl=$1 target=$2 name=$3 dir
    dir=$(target_dir "$target")
    [[ -f $dir/$name ]] || write_file "$wl" "$target" "$name" untimed
    make_cold "$target"
    timed "$wl" "$target" read_out "$dir/$name"
    if ((VERIFY)); then
        cmp -s "$DATA/$name" "$dir/$name" || die "$target: $name reads back wrong"
    fi
}

ensure_small() {
    local dir
    dir=$(target_dir "$1")
    if [[ ! -d $dir/small ]]; then
        mkdir "$dir/small"
        untar_sync "$dir/small"
    fi
}

run_workload() {
    local wl=$1 target=$2 dir
    dir=$(target_dir "$target")
    case $wl in
        write-random) write_file "$wl" "$target" random.bin ;;
        write-text) write_file "$wl" "$target" text.bin ;;
        read-random) read_file "$wl" "$target" random.bin ;;
        read-text) read_file "$wl" "$target" text.bin ;;
        untar)
            rm -rf "$dir/small"
            mkdir "$dir/small"
            drop_caches
            warm "$DATA/small.tar"
            timed "$wl" "$target" untar_sync "$dir/small"
            if ((VERIFY)); then find_all "$dir/small"; fi
            ;;
        read-small)
            ensure_small "$target"
            make_cold "$target"
            timed "$wl" "$target" tar_read "$dir/small"
            ;;
        find)
            ensure_small "$target"
            make_cold "$target"
            timed "$wl" "$target" find_all "$dir/small"
            ;;
    esac
}

# ---------------------------------------------------------------- report

is_sequential() { [[ $1 == write-random || $1 == write-text || $1 == read-random || $1 == read-text ]]; }

ratio() {
    if [[ -n $1 && -n $2 ]]; then
        awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'
    else
        echo "-"
    fi
}

# median SECONDS...: the median of the arguments (nothing if there are none).
median() {
    (($#)) || return 0
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { printf "%.3f", NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

cell() {
    local wl=$1 secs=$2
    if [[ -z $secs ]]; then
        echo "-"
    elif is_sequential "$wl"; then
        awk -v s="$secs" -v m="$SIZE_MIB" 'BEGIN { printf "%.3fs %6.0f MiB/s", s, (s > 0 ? m / s : 0) }'
    else
        echo "${secs}s"
    fi
}

report() {
    local fs
    fs=$(df -PT "$WORK" | awk 'NR == 2 { print $2 " on " $1 }')
    echo
    echo "snapfs benchmark: $SIZE_MIB MiB sequential files, $NFILES small files;" \
        "$BENCH_DIR is $fs; kernel $(uname -r), $(nproc) CPUs"
    ((COLD_OK)) || echo "WARNING: the page cache could not be dropped; cold reads were warm"
    local runs="1 run"
    ((RUNS == 1)) || runs="the median of $RUNS runs"
    echo "Times are wall seconds, $runs (lower is better); ratios are snapfs time / other time."
    printf '%-13s %-22s %-22s %-22s %-22s %9s %9s %9s\n' workload plain passthrough passthrough_ll \
        snapfs snapfs/pt snapfs/ll snapfs/plain
    local wl p t l s
    for wl in "${WORKLOADS[@]}"; do
        # shellcheck disable=SC2086 # one word per run
        p=$(median ${RESULT["$wl plain"]:-}) t=$(median ${RESULT["$wl passthrough"]:-})
        # shellcheck disable=SC2086
        l=$(median ${RESULT["$wl passthrough_ll"]:-}) s=$(median ${RESULT["$wl snapfs"]:-})
        printf '%-13s %-22s %-22s %-22s %-22s %9s %9s %9s\n' "$wl" "$(cell "$wl" "$p")" \
            "$(cell "$wl" "$t")" "$(cell "$wl" "$l")" "$(cell "$wl" "$s")" \
            "$(ratio "$s" "$t")" "$(ratio "$s" "$l")" "$(ratio "$s" "$p")"
    done
    if [[ -n $TSV ]]; then
        {
            printf 'workload\ttarget\trun\tseconds\tmib\tfiles\n'
            local run secs
            for wl in "${WORKLOADS[@]}"; do
                for t in "${RUN_TARGETS[@]}"; do
                    run=0
                    for secs in ${RESULT["$wl $t"]:-}; do
                        run=$((run + 1))
                        printf '%s\t%s\t%d\t%s\t%s\t%s\n' "$wl" "$t" "$run" "$secs" "$SIZE_MIB" "$NFILES"
                    done
                done
            done
        } >"$TSV"
        echo "results also in $TSV"
    fi
}

# ---------------------------------------------------------------- main

prepare_data
for ((RUN = 1; RUN <= RUNS; RUN++)); do
    for target in "${RUN_TARGETS[@]}"; do
        note "run $RUN/$RUNS: target $target"
        target_setup "$target"
        for wl in "${WORKLOADS[@]}"; do
            run_workload "$wl" "$target"
        done
        target_teardown "$target"
    done
done
report
