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

# make_tree DIR N: N files of 1-4 KiB of random bytes, 100 per directory (dNNNNN/fNNN).
make_tree() {
    python3 - "$1" "$2" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(n)
for i in range(n):
    d = os.path.join(root, f"d{i // 100:05}")
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i % 100:03}"), "wb") as f:
        f.write(rng.randbytes(rng.randint(1024, 4096)))
PY
}
