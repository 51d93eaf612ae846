#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit/property/end-to-end tests, and the Linux
# conformance comparison. Installs the Debian packages it needs when they are missing.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_build_deps
# The data-plane tests run with and without hugepages; reserve some when we can.
ensure_hugepages

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "tests"
# The end-to-end tests spawn the release binary, as a user would run it.
cargo build --release --quiet --workspace --bins
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --cargo-quiet
else
    cargo test --workspace --no-fail-fast --quiet
fi

log "Linux conformance"
"$ROOT/ci/conformance.sh"

log "all checks passed"
