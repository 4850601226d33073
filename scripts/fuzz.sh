#!/usr/bin/env bash
# Fuzzes every decoder of on-disk data and the control-file parser (cargo-fuzz, libFuzzer) for
# DURATION seconds in all, split evenly between the targets, and prints executions per target.
#
#   scripts/fuzz.sh DURATION_SECONDS
set -euo pipefail
duration=${1:?usage: $0 DURATION_SECONDS}
cd "$(dirname "$0")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
targets=(decode_pack decode_records decode_object control_commands)
per_target=$((duration / ${#targets[@]} > 0 ? duration / ${#targets[@]} : 1))
total=0
for target in "${targets[@]}"; do
    log=$(mktemp)
    if ! cargo +nightly fuzz run "$target" -- -max_total_time="$per_target" -rss_limit_mb=2048 >"$log" 2>&1; then
        tail -40 "$log" >&2
        echo "fuzz: $target FAILED (crash input in fuzz/artifacts/$target)" >&2
        exit 1
    fi
    runs=$(grep -oE 'Done [0-9]+ runs' "$log" | grep -oE '[0-9]+' | tail -1)
    echo "fuzz: $target: ${runs:-0} executions in ${per_target}s, no crash"
    total=$((total + ${runs:-0}))
    rm -f "$log"
done
echo "fuzz: $total executions in all"
