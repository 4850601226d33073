#!/usr/bin/env bash
# Build libfuse's C example `passthrough_ll` (from Debian's libfuse3-dev) into the path given
# (default target/passthrough_ll of this repository), installing libfuse3-dev, pkg-config and
# gcc first when they are missing. It is the FUSE baseline the benchmarks compare snapfs with.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$REPO/target/passthrough_ll}
examples=/usr/share/doc/libfuse3-dev/examples
if [[ ! -f $examples/passthrough_ll.c ]] || ! command -v gcc pkg-config >/dev/null; then
    echo "build-passthrough-ll: installing libfuse3-dev, pkg-config and gcc" >&2
    apt-get update -qq && apt-get install -y -qq libfuse3-dev pkg-config gcc >/dev/null
fi
mkdir -p "$(dirname "$out")"
# shellcheck disable=SC2046 # pkg-config prints several words
gcc -O2 -I"$examples" "$examples/passthrough_ll.c" $(pkg-config fuse3 --cflags --libs) -o "$out"
