#!/usr/bin/env bash
# Compare ctfw with Linux packet for packet: replay every trace each recorded set holds for a
# config in config/conformance/, and compare ctfw's per-packet results with the kernel's
# records using the conformance set's own compare.py. Two sets:
#   - the Linux conformance set (vendored tests/linux-conformance, or $CTFW_CONFORMANCE_DIR);
#   - tests/kernel-recorded: corner cases ctfw's developers recorded on the same kernel.
# Every config must report "0 failed", in each set. Usage: ci/conformance.sh [OUTDIR]
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$ROOT"

CONF=$(conformance_dir)
OUT=${1:-$(mktemp -d -t ctfw-conformance.XXXXXX)}
log "conformance set: $CONF; results in $OUT"
cargo build --release --quiet --bin ctfw
CTFW="$ROOT/target/release/ctfw"

failed=0
# check_set NAME DIR: every expected/<config> of DIR against ctfw under config/conformance/.
check_set() {
    local set=$1 dir=$2 configs=0 name exp f trace
    for exp in "$dir"/expected/*/; do
        name=$(basename "$exp")
        if [ ! -f "config/conformance/$name.yaml" ]; then
            echo "$set: no config/conformance/$name.yaml for $exp" >&2
            failed=1
            continue
        fi
        configs=$((configs + 1))
        mkdir -p "$OUT/$set/$name"
        for f in "$exp"/*.jsonl; do
            trace=$(basename "$f" .jsonl)
            "$CTFW" replay --config "config/conformance/$name.yaml" "$dir/traces/$trace.pcapng" \
                --jsonl "$OUT/$set/$name/$trace.jsonl"
        done
        printf '%-18s %-34s ' "$set" "$name:"
        if ! python3 "$CONF/compare.py" "$exp" "$OUT/$set/$name" | tail -n 1; then
            python3 "$CONF/compare.py" "$exp" "$OUT/$set/$name" | head -n 40 >&2 || true
            failed=1
        fi
    done
    if [ "$configs" -eq 0 ]; then
        echo "$set: no expected records in $dir/expected" >&2
        failed=1
    fi
}

check_set linux-conformance "$CONF"
check_set kernel-recorded "$ROOT/tests/kernel-recorded"
# Every config must be checked against the conformance set, so none is silently skipped.
for cfg in config/conformance/*.yaml; do
    name=$(basename "$cfg" .yaml)
    [ -d "$CONF/expected/$name" ] || { echo "no expected results for $name in $CONF/expected" >&2; failed=1; }
done
[ "$failed" -eq 0 ] && log "conformance: ctfw agrees with Linux on both sets, every config" || { log "conformance: FAILED"; exit 1; }
