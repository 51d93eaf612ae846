#!/usr/bin/env bash
# differential.sh: ctfw against the Linux kernel, packet by packet, on random traces.
#
#   generate   ctfw-tracegen --seed S random --first N --count K --out OUT/traces
#   kernel     kernel_check.sh --config C --out OUT/kernel   (netns router, conntrack, nft)
#   ctfw       ctfw replay --config config/conformance/C.yaml TRACE --jsonl OUT/ctfw/T.jsonl
#   compare    compare.py OUT/kernel OUT/ctfw   (the conformance set's comparer; the kernel
#              records are the expected side) and triage.py (differences grouped by kind)
#   recheck    the differing traces through the kernel once more (OUT/kernel-recheck): a
#              difference the kernel does not reproduce is a replay artefact, counted apart
#
# Everything stays in OUT: the traces with their manifest.json (what each packet is meant to
# be), both record folders, compare.txt, triage.txt and summary.txt. Nothing leaves the
# namespaces kernel_check.sh creates and deletes.
#
# Usage: differential.sh [--seed S] [--count K] [--first N] [--config C] [--out OUT]
#                        [--jobs J] [--max-minutes M] [--traces DIR] [--validate]
#   --seed S         generator seed (default 1); trace i of a seed never changes
#   --count K        traces to generate (default 100), starting at index --first (default 0)
#   --config C       conformance config (default classic-loose1-liberal0), see kernel_check.sh
#   --out OUT        output directory (default ./kcheck-C-sS-N-K)
#   --jobs J         kernel routers in parallel, each with its share of the traces (default 1)
#   --max-minutes M  start no kernel replay after M minutes (default 60); whole run bounded too
#   --traces DIR     use the *.pcapng in DIR instead of generating (e.g. a reduced trace)
#   --validate       check the oracle itself: the conformance traces that have expected
#                    records for C, through the kernel, compared with those records; then
#                    ctfw against the kernel as usual
# Binaries: $CTFW (default <repo>/target/release/ctfw) and $TRACEGEN (default
# <repo>/target/release/ctfw-tracegen); build them first:
#   cargo build --release -p ctfw --bin ctfw -p ctfw-tracegen
# Needs root (see kernel_check.sh). A developer-machine tool, not a CI job.
set -euo pipefail

here=$(dirname "$(realpath "$0")")
repo=$(realpath "$here/../..")
seed=1
count=100
first=0
config=classic-loose1-liberal0
out=""
jobs=1
max_minutes=60
traces_dir=""
validate=0
while [ $# -gt 0 ]; do
  case $1 in
    --seed) seed=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --first) first=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --max-minutes) max_minutes=$2; shift 2 ;;
    --traces) traces_dir=$(realpath "$2"); shift 2 ;;
    --validate) validate=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
ctfw=${CTFW:-$repo/target/release/ctfw}
tracegen=${TRACEGEN:-$repo/target/release/ctfw-tracegen}
yaml=$repo/config/conformance/$config.yaml
conf=$("$here/conformance_dir.sh")
for f in "$ctfw" "$tracegen" "$yaml"; do
  [ -e "$f" ] || { echo "missing $f (build: cargo build --release -p ctfw --bin ctfw -p ctfw-tracegen)" >&2; exit 2; }
done
if [ $validate = 1 ]; then
  [ -d "$conf/expected/$config" ] || { echo "no expected records for $config in $conf" >&2; exit 2; }
  out=${out:-./kcheck-validate-$config}
else
  out=${out:-./kcheck-$config-s$seed-n$first-$count}
fi
mkdir -p "$out"
out=$(realpath "$out")
log=$out/summary.txt
: >"$log"
say() { echo "$*" | tee -a "$log"; }
started=$(date +%s)
deadline=$((started + max_minutes * 60))

# 1. Traces.
if [ $validate = 1 ]; then
  mkdir -p "$out/traces"
  for e in "$conf/expected/$config"/*.jsonl; do
    ln -sf "$conf/traces/$(basename "$e" .jsonl).pcapng" "$out/traces/"
  done
  cp "$conf/traces/manifest.json" "$out/traces/"
  tdir=$out/traces
elif [ -n "$traces_dir" ]; then
  tdir=$traces_dir
else
  "$tracegen" --seed "$seed" random --first "$first" --count "$count" --out "$out/traces"
  tdir=$out/traces
fi
mapfile -t traces < <(find "$tdir" -maxdepth 1 -name '*.pcapng' | sort)
if [ $validate = 1 ] || [ -n "$traces_dir" ]; then
  say "differential check: config $config, ${#traces[@]} traces from $tdir"
else
  say "differential check: config $config, ${#traces[@]} traces, seed $seed, indices $first..$((first + count - 1))"
fi
say "  kernel $(uname -r), ctfw $ctfw ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo '?'))"

# 2. The kernel, in J routers at once, each bounded in time.
rm -rf "$out/kernel"
mkdir -p "$out/kernel"
pids=()
for ((j = 0; j < jobs; j++)); do
  share=()
  for ((i = j; i < ${#traces[@]}; i += jobs)); do share+=("${traces[i]}"); done
  [ ${#share[@]} -gt 0 ] || continue
  timeout --signal=TERM --kill-after=30 $((max_minutes * 60 + 300)) \
    "$here/kernel_check.sh" --config "$config" --out "$out/kernel" --tag "$$j$j" \
    --info "$out/kernel/run_info.$j.json" --deadline "$deadline" "${share[@]}" \
    >"$out/kernel.$j.log" 2>&1 &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=$?; done
[ $status = 0 ] || { say "kernel replay failed (status $status); see $out/kernel.*.log"; exit 1; }
kernel_done=$(date +%s)

# 3. ctfw, on every trace the kernel got to.
rm -rf "$out/ctfw"
mkdir -p "$out/ctfw"
replay_one() {
  "$ctfw" replay --config "$yaml" "$tdir/$1.pcapng" --jsonl "$out/ctfw/$1.jsonl" \
    2>>"$out/ctfw.log" || echo "ctfw replay failed on $1" | tee -a "$log"
}
export -f replay_one
export ctfw yaml tdir out log
# shellcheck disable=SC2016 # $1 belongs to the inner shell
find "$out/kernel" -name '*.jsonl' -printf '%f\n' | sed 's/\.jsonl$//' | sort |
  xargs -P "$jobs" -n 1 bash -c 'replay_one "$1"' _
ctfw_done=$(date +%s)

# 4. Compare.
if [ $validate = 1 ]; then
  python3 "$conf/compare.py" "$conf/expected/$config" "$out/kernel" --strict-fields \
    >"$out/oracle_vs_expected.txt" || true
  say "oracle vs published records (strict fields, timeouts +-2 s + drift): $(tail -1 "$out/oracle_vs_expected.txt")"
fi
python3 "$conf/compare.py" "$out/kernel" "$out/ctfw" --max-diffs 20 >"$out/compare.txt" || true
python3 "$here/triage.py" "$out/kernel" "$out/ctfw" --compare "$conf/compare.py" \
  --list "$out/differing.txt" >/dev/null || true

# 5. Recheck: the differing traces through a fresh router once more.
rm -rf "$out/kernel-recheck"
recheck=()
if [ -s "$out/differing.txt" ]; then
  mapfile -t names <"$out/differing.txt"
  for n in "${names[@]}"; do recheck+=("$tdir/$n.pcapng"); done
  timeout --signal=TERM --kill-after=30 $((max_minutes * 60 + 300)) \
    "$here/kernel_check.sh" --config "$config" --out "$out/kernel-recheck" --tag "$$r" \
    --info "$out/kernel-recheck/run_info.json" --deadline $((deadline + 600)) "${recheck[@]}" \
    >"$out/kernel-recheck.log" 2>&1 || say "kernel recheck failed; see $out/kernel-recheck.log"
fi
python3 "$here/triage.py" "$out/kernel" "$out/ctfw" --compare "$conf/compare.py" \
  --json "$out/triage.json" ${recheck[0]:+--recheck "$out/kernel-recheck"} \
  >"$out/triage.txt" || true
packets=$(cat "$out"/kernel/*.jsonl | wc -l)
artefacts=$(cat "$out"/kernel/*.jsonl | grep -c -e '"extra_frames"' -e '"inconsistent"' || true)
skipped=$(python3 -c 'import json,sys; print(sum(len(json.load(open(f)).get("skipped", [])) for f in sys.argv[1:]))' "$out"/kernel/run_info.*.json)
say "  kernel: $(find "$out/kernel" -name "*.jsonl" | wc -l) traces, $packets packets in $((kernel_done - started)) s ($skipped not run: deadline); packets with router artefacts: $artefacts"
say "  ctfw:   $((ctfw_done - kernel_done)) s"
say "  ctfw vs kernel: $(tail -1 "$out/compare.txt")"
grep -e '^[0-9]* traces, ' -e '^rechecked ' "$out/triage.txt" | sed 's/^/  /' | tee -a "$log"
grep '^[0-9]* trace(s):' "$out/triage.txt" | sed 's/^/  /' | tee -a "$log" || true
say "  details: $out/compare.txt, $out/triage.txt"
