#!/usr/bin/env bash
# ctfw replay on a 1-million-packet capture of 10,000 concurrent TCP connections (handshakes,
# then 970,000 data/ACK segments across all of them, 512-byte payloads), three times; prints
# the total and engine-only packet rates ctfw replay reports. Usage: benches/replay.sh
set -euo pipefail
source "$(dirname "$0")/../ci/common.sh"
cd "$ROOT"
ensure_build_deps
cargo build --release --quiet -p ctfw -p ctfw-tracegen
data="$ROOT/target/bench-data"
mkdir -p "$data"
trace="$data/established-10000x1M.pcapng"
if [ ! -f "$trace" ]; then
    log "generating $trace"
    "$ROOT/target/release/ctfw-tracegen" established --flows 10000 --packets 970000 --out "$trace"
fi
report=$(mktemp -t ctfw-replay-report.XXXXXX.json)
trap 'rm -f "$report"' EXIT
for i in 1 2 3; do
    "$ROOT/target/release/ctfw" replay --config config/conformance/classic-loose1-liberal0.yaml \
        "$trace" --max-entries 0 --report-json "$report" >/dev/null
    python3 - "$report" "$i" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
n = r["counters"]["packets"]
print(f"run {sys.argv[2]}: {n} packets in {r['seconds']:.3f} s = {n / r['seconds'] / 1e6:.2f} Mpps overall, "
      f"{n / r['engine_seconds'] / 1e6:.2f} Mpps in the engine")
PY
done
