#!/usr/bin/env bash
# Renders a report written by `snapfs report --html` to a PNG with headless Chromium, so that a
# person can look at it (docs/report.png is made this way, by scripts/report-demo.sh).
#
#   scripts/report-png.sh REPORT.html OUT.png
#
# Installs Debian's `chromium` if it is absent. The page needs no network and the browser is
# told not to use one (no background networking, component updates, sync or QUIC), with a
# throwaway profile. REPORT_PNG_SIZE=WIDTH,HEIGHT changes the window (default 1200,1600): the
# screenshot is of the window, so a long report needs a taller one.
set -euo pipefail
if [ $# -ne 2 ]; then
    echo "usage: $0 REPORT.html OUT.png" >&2
    exit 2
fi
html=$(realpath "$1")
out=$(realpath -m "$2")
[ -f "$html" ] || { echo "no such file: $1" >&2; exit 1; }
if ! command -v chromium >/dev/null; then
    apt-get update
    apt-get install -y chromium
fi
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
# --screenshot makes headless Chromium load the page, write the PNG and exit; the timeout
# bounds a browser that hangs.
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$profile" --window-size="${REPORT_PNG_SIZE:-1200,1600}" \
    --screenshot="$out" "file://$html" 2>"$profile/chromium.log" || {
    cat "$profile/chromium.log" >&2
    exit 1
}
[ -s "$out" ] || { echo "chromium wrote no picture" >&2; cat "$profile/chromium.log" >&2; exit 1; }
echo "$out"
