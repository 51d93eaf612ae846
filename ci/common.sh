# Shared helpers for the ci/ scripts (sourced, not run).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

# ensure_packages PKG...: install the Debian packages that are missing (needs root or sudo).
ensure_packages() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -q >/dev/null
    $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# The packages ctfw builds and tests with, and the pinned Rust toolchain. `prometheus` brings
# promtool, which the metrics end-to-end test validates the /metrics exposition with.
ensure_build_deps() {
    ensure_packages pkg-config libdpdk-dev dpdk clang libclang-dev libpcap-dev python3 prometheus
    command -v cargo >/dev/null || { echo "cargo not found: install Rust (https://rustup.rs)" >&2; exit 1; }
    ensure_toolchain
}

# The tools the deployment tests use: systemd-analyze (app/tests/deploy.rs verifies
# deploy/ctfw.service), and for app/tests/netns.rs (real kernel TCP through ctfw on veth
# ports) ip and ss, sysctl, ethtool, curl and iperf3. Those tests fail without them, naming
# the package.
ensure_deploy_test_deps() {
    ensure_packages systemd iproute2 procps ethtool curl iperf3
}

# ensure_toolchain: the toolchain rust-toolchain.toml pins. With rustup, an installed toolchain
# of exactly that version (e.g. `stable`) is made available under the pinned name when the
# machine cannot download it (rustup refuses to `link` a release name, so as a symlink in
# $RUSTUP_HOME/toolchains, as rustup itself lays toolchains out); otherwise rustup installs it.
ensure_toolchain() {
    command -v rustup >/dev/null || return 0
    local want tc host dir
    want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")
    rustup toolchain list | grep -q "^$want" && return 0
    for tc in $(rustup toolchain list | awk '{print $1}'); do
        if [ "$(rustup run "$tc" rustc --version 2>/dev/null | awk '{print $2}')" = "$want" ]; then
            host=$(rustup run "$tc" rustc -vV | sed -n 's/^host: //p')
            dir="${RUSTUP_HOME:-$HOME/.rustup}/toolchains/$want-$host"
            log "using the installed toolchain $tc as $want ($dir)"
            ln -sfn "$(rustup run "$tc" rustc --print sysroot)" "$dir"
            return 0
        fi
    done
    log "installing Rust $want"
    rustup toolchain install "$want" --profile minimal -c rustfmt -c clippy
}

# The Linux conformance set: the vendored copy, or the one CTFW_CONFORMANCE_DIR names (the
# same rule as ctfw_tracegen::conformance::dir). A missing set is an error, never a skip.
conformance_dir() {
    local dir="${CTFW_CONFORMANCE_DIR:-$ROOT/tests/linux-conformance}"
    for p in traces expected compare.py; do
        if [ ! -e "$dir/$p" ]; then
            echo "no Linux conformance data set at $dir (missing $p): restore tests/linux-conformance or set CTFW_CONFORMANCE_DIR" >&2
            return 1
        fi
    done
    (cd "$dir" && pwd)
}

# ensure_hugepages: best effort (root only) to reserve 256 x 2 MiB hugepages and mount
# hugetlbfs; ctfw falls back to --no-huge by itself when there are none. Returns 0 when
# hugepages are available afterwards.
ensure_hugepages() {
    local nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
    if [ "$(id -u)" -eq 0 ]; then
        if [ -w "$nr" ] && [ "$(cat "$nr")" -lt 256 ]; then
            echo 256 > "$nr" 2>/dev/null || true
        fi
        if ! grep -qs hugetlbfs /proc/mounts; then
            mkdir -p /dev/hugepages && mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
        fi
    fi
    [ -r "$nr" ] && [ "$(cat "$nr")" -gt 0 ] && grep -qs hugetlbfs /proc/mounts
}
