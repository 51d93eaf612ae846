#!/usr/bin/env bash
# The whole test suite: formatting, lints, documentation, the fuzz targets' build, unit,
# property and end-to-end tests, and the Linux conformance comparison. Installs the Debian
# packages and the pinned Rust toolchain it needs when they are missing.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_build_deps
ensure_deploy_test_deps
# The data-plane tests run with and without hugepages. When this machine has them, the
# hugepage tests must really use them (they fail instead of falling back to --no-huge).
if ensure_hugepages; then
    export CTFW_REQUIRE_HUGEPAGES=1
    log "hugepages available: the hugepage tests must use them"
else
    log "no hugepages: the hugepage tests run in their --no-huge fallback and say so"
fi

log "cargo fmt --check"
cargo fmt --all -- --check

log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

log "cargo doc (warnings denied)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

log "fuzz targets compile (cargo check of fuzz/)"
cargo check --quiet --manifest-path fuzz/Cargo.toml --bins

log "tests"
# The end-to-end tests spawn the binary cargo builds for the tests (CARGO_BIN_EXE_ctfw).
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast --cargo-quiet
else
    cargo test --workspace --no-fail-fast --quiet
fi

log "Linux conformance"
"$ROOT/ci/conformance.sh"

log "all checks passed"
