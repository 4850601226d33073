# Helpers shared by the benchmarks (sourced, not run).

# The time now, in seconds. Bash's own clock, not `date`: starting `date` takes a millisecond,
# which every interval timed with it counted. Still a subshell when used as `$(now)`; where a
# millisecond matters, read "$EPOCHREALTIME" directly (as `time_of` below does).
now() { printf '%s\n' "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
median() { tr ' ' '\n' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# The resident and the peak memory of the daemon whose process id is in `pid`, in MiB.
rss_mib() { awk '/^VmRSS/ { printf "%d", $2 / 1024 }' "/proc/$pid/status"; }
peak_mib() { awk '/^VmHWM/ { printf "%d", $2 / 1024 }' "/proc/$pid/status"; }
# time_of COMMAND...: the seconds COMMAND took (its output dropped). Reads the clock without
# starting a process or a subshell, so the figure is the command's own.
time_of() { local t0=${EPOCHREALTIME/,/.}; "$@" >/dev/null; elapsed "$t0" "${EPOCHREALTIME/,/.}"; }

# A writer that times every small write (open, write, close) to "$mnt/writer-file" while
# something else runs (the caller sets `mnt` and `work`, and kills "$writer" at its exit if set). It
# warms up for a second (its own first writes after a drop_caches read the disk), then counts;
# stop_writer stops it and sets $stalled to the longest it waited since.
start_writer() {
    rm -f "$work/stall.stop"
    python3 - "$mnt/writer-file" "$work/stall" <<'PY' &
import os, sys, time
path, out = sys.argv[1], sys.argv[2]
worst = 0.0
counting = time.monotonic() + 1
stop = time.monotonic() + 600
while time.monotonic() < stop and not os.path.exists(out + ".stop"):
    t = time.monotonic()
    with open(path, "wb") as f:
        f.write(b"x" * 4096)
    if t >= counting:
        worst = max(worst, time.monotonic() - t)
    with open(out, "w") as f:
        f.write(f"{worst:.4f}")
    time.sleep(0.001)
PY
    writer=$!
    sleep 1.2
}
stop_writer() {
    touch "$work/stall.stop"
    wait "$writer" || true
    writer=
    stalled=$(cat "$work/stall")
}
# parse_mib_files ARGS...: sets `mib` and `files` (the caller sets their defaults first) from
# `--mib N` and `--files N`, or prints the usage and exits.
parse_mib_files() {
    while (($#)); do
        case $1 in
        --mib) mib=$2; shift 2 ;;
        --files) files=$2; shift 2 ;;
        *) echo "usage: $0 [--mib N] [--files N]" >&2; exit 2 ;;
        esac
    done
}

# make_tree DIR N [MAX_KIB]: N files of 1 to MAX_KIB (default 4) KiB of random bytes, 100 per
# directory (dNNNNN/fNNN).
make_tree() {
    python3 - "$1" "$2" "${3:-4}" <<'PY'
import os, random, sys
root, n, max_kib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(n)
for i in range(n):
    d = os.path.join(root, f"d{i // 100:05}")
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i % 100:03}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, max_kib * 1024)))
PY
}
