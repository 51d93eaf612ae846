#!/usr/bin/env bash
# Run the firewall on the bundled sample: installs what it needs, builds ctfw, checks the
# sample configuration and runs the engine over the sample capture (samples/sample.pcapng:
# DNS, HTTP, HTTPS, ping, IPv6, an SSH attempt from outside, an impossible SYN/FIN), printing
# the verdicts by reason, the rule hits and the final conntrack table.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_build_deps
log "building ctfw (release)"
cargo build --release --quiet --bin ctfw
CTFW="$ROOT/target/release/ctfw"

log "ctfw check-config config/sample.yaml"
"$CTFW" check-config config/sample.yaml

log "ctfw replay --config config/sample.yaml samples/sample.pcapng"
"$CTFW" replay --config config/sample.yaml samples/sample.pcapng
