#!/usr/bin/env bash
# Run the firewall on a fresh machine: installs what it needs, builds ctfw, and runs the real
# DPDK data plane on two net_pcap virtual devices fed with the bundled sample capture
# (samples/inside.pcap, samples/outside.pcap: DNS, HTTP, ping, IPv6, an SSH attempt from
# outside, an impossible SYN/FIN) under config/sample.yaml. It prints the port/core layout,
# then the verdicts by reason, the rule hits and the conntrack table; what the firewall let
# through is written to out/sample-{inside,outside}-tx.pcap.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

ensure_build_deps
ensure_hugepages || true
log "building ctfw (release)"
cargo build --release --quiet --bin ctfw
CTFW="$ROOT/target/release/ctfw"

log "ctfw check-config config/sample.yaml"
"$CTFW" check-config config/sample.yaml

mkdir -p out
log "ctfw run --config config/sample.yaml --idle-exit 1"
"$CTFW" run --config config/sample.yaml --idle-exit 1

log "done: what the firewall forwarded is in out/sample-inside-tx.pcap and out/sample-outside-tx.pcap (tcpdump -r FILE)"
