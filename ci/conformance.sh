#!/usr/bin/env bash
# Replay every public Linux conformance trace under every config in config/conformance/ and
# compare ctfw's per-packet results with the kernel's using the set's own compare.py.
# Every config must report "0 failed". Usage: ci/conformance.sh [OUTDIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

CONF=$(conformance_dir)
OUT=${1:-$(mktemp -d -t ctfw-conformance.XXXXXX)}
log "conformance set: $CONF; results in $OUT"
cargo build --release --quiet --bin ctfw
CTFW="$ROOT/target/release/ctfw"

failed=0
configs=0
for cfg in config/conformance/*.yaml; do
    name=$(basename "$cfg" .yaml)
    exp="$CONF/expected/$name"
    if [ ! -d "$exp" ]; then
        echo "$name: no expected results in $CONF/expected" >&2
        failed=1
        continue
    fi
    configs=$((configs + 1))
    mkdir -p "$OUT/$name"
    for f in "$exp"/*.jsonl; do
        trace=$(basename "$f" .jsonl)
        "$CTFW" replay --config "$cfg" "$CONF/traces/$trace.pcapng" --jsonl "$OUT/$name/$trace.jsonl"
    done
    printf '%-34s ' "$name:"
    if ! python3 "$CONF/compare.py" "$exp" "$OUT/$name" | tail -n 1; then
        python3 "$CONF/compare.py" "$exp" "$OUT/$name" | head -n 40 >&2 || true
        failed=1
    fi
done
# Every expected folder must have a config, so no part of the set is silently skipped.
for exp in "$CONF"/expected/*/; do
    name=$(basename "$exp")
    [ -f "config/conformance/$name.yaml" ] || { echo "missing config/conformance/$name.yaml" >&2; failed=1; }
done
[ "$configs" -gt 0 ] || { echo "no conformance configs found" >&2; exit 1; }
[ "$failed" -eq 0 ] && log "conformance: all $configs configs agree with Linux" || { log "conformance: FAILED"; exit 1; }
