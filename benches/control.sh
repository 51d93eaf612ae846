#!/usr/bin/env bash
# What the operator's tools cost the packet path: listing 1M entries, accounting, events with a
# listener. Builds the release binaries, then runs benches/control.py (its docstring has the
# method). Usage: benches/control.sh [control.py options] [listing|accounting|events ...]
set -euo pipefail
source "$(dirname "$0")/../ci/common.sh"
cd "$ROOT"
ensure_build_deps
cargo build --release --quiet -p ctfw -p ctfw-tracegen
exec python3 "$ROOT/benches/control.py" "$@"
