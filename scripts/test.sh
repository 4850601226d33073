#!/usr/bin/env bash
# The whole test suite, as CI runs it: setup, formatting, lints, unit, property and integration
# tests (every integration test mounts a real snapfs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo fmt --all -- --check
cargo clippy --release --all-targets -- -D warnings
cargo test --release
# clap checks its command definitions only in builds with debug assertions.
cargo test --lib cli::tests
