#!/usr/bin/env bash
# Whole-binary data-plane throughput: `ctfw run` against DPDK's own `dpdk-testpmd` (io
# forwarding, no processing at all) on the same virtual devices, the same CPU and the same
# looped capture, so the ratio ctfw/testpmd says what connection tracking costs on top of
# the bare DPDK receive/transmit path. Method, caveats and recorded figures:
# benches/dataplane.md.
#
#   source: net_pcap0,rx_pcap=FILE,infinite_rx=1  (the whole capture preloaded into mbufs,
#           copied into a fresh mbuf on every receive, looped forever)
#   sink:   net_null0,no-rx=1                     (frees what it is given, receives nothing)
#
# For each flow count N the capture holds N established TCP flows, one 118-byte data packet
# each, all from the inside client (ctfw-tracegen established --data-only --order rr
# --packets N): every flow appears once per loop, so the table holds N entries and every
# packet after the first loop is a lookup hit plus a full TCP window check.
#
# Usage: benches/dataplane.sh [options]
#   --flows "N ..."     flow counts (default "1000 100000 1000000")
#   --seconds S         measured seconds per run (default 10)
#   --warmup W          seconds at the start of each run left out of the rate (default 2)
#   --rounds R          testpmd/ctfw alternations per flow count (default 2)
#   --workers N         ctfw workers (default 1; testpmd always forwards on one core)
#   --hugepages off|on  EAL memory for both programs (default off: --no-huge)
#   --cpus MAIN,WORKER  CPUs of the main and the forwarding/worker lcore (default 0,1)
#   --ctfw LABEL=PATH   a ctfw binary to measure (repeatable: every one alternates with
#                       testpmd in the same rounds, e.g. before/after a change); default
#                       ctfw=target/release/ctfw
#   --profile           also run ctfw (each --ctfw) once per flow count under `perf record`
#                       and print where the worker's time goes, by pipeline stage
#   --no-build          use the existing release binaries
#   -h, --help
#
# Rates: testpmd's, from its periodic statistics of port 0 (cumulative RX-packets and the
# TSC-timed Rx-pps of each period) over the periods after the warm-up; ctfw's, the
# least-squares slope of its packet counter against time over its `--stats-interval 1`
# progress lines after the warm-up. Neither includes start-up or the capture preload. Logs
# and results stay in target/bench-data/runs/<date>/.
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=../ci/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../ci/common.sh"

FLOWS="1000 100000 1000000"
RUN_SECONDS=10
WARMUP=2
ROUNDS=2
WORKERS=1
HUGE=off
CPUS="0,1"
PROFILE=0
BUILD=1
CTFWS=()

die() {
    printf 'dataplane.sh: %s\n' "$*" >&2
    exit 1
}

usage() { sed -n '/^# Usage:/,/^#   -h, --help/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
    case "$1" in
        --flows) FLOWS=${2:?--flows needs a list}; shift 2 ;;
        --seconds) RUN_SECONDS=${2:?--seconds needs a value}; shift 2 ;;
        --warmup) WARMUP=${2:?--warmup needs a value}; shift 2 ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
        --workers) WORKERS=${2:?--workers needs a value}; shift 2 ;;
        --hugepages) HUGE=${2:?--hugepages needs off or on}; shift 2 ;;
        --cpus) CPUS=${2:?--cpus needs MAIN,WORKER}; shift 2 ;;
        --ctfw) CTFWS+=("${2:?--ctfw needs LABEL=PATH}"); shift 2 ;;
        --profile) PROFILE=1; shift ;;
        --no-build) BUILD=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

for n in $FLOWS; do
    is_uint "$n" && [ "$n" -ge 1 ] || die "--flows: \"$n\" is not a positive whole number"
done
[ -n "${FLOWS// /}" ] || die "--flows: empty list"
is_uint "$RUN_SECONDS" && [ "$RUN_SECONDS" -ge 3 ] || die "--seconds: a whole number >= 3"
is_uint "$WARMUP" && [ "$WARMUP" -ge 1 ] || die "--warmup: a whole number >= 1"
is_uint "$ROUNDS" && [ "$ROUNDS" -ge 1 ] || die "--rounds: a whole number >= 1"
is_uint "$WORKERS" && [ "$WORKERS" -ge 1 ] && [ "$WORKERS" -le 64 ] || die "--workers: 1 to 64"
case "$HUGE" in off | on) ;; *) die "--hugepages: off or on" ;; esac
[[ $CPUS =~ ^[0-9]+,[0-9]+$ ]] || die "--cpus: MAIN,WORKER, e.g. 0,1"
for spec in ${CTFWS[@]+"${CTFWS[@]}"}; do
    [[ $spec =~ ^[A-Za-z0-9_.-]+=.+$ ]] || die "--ctfw $spec: expected LABEL=PATH (LABEL: letters, digits, . _ -)"
    [ "${spec%%=*}" != testpmd ] || die "--ctfw $spec: the label testpmd is taken"
done
MAIN_CPU=${CPUS%,*}
WORKER_CPU=${CPUS#*,}

# --- tools --------------------------------------------------------------------------------

ensure_build_deps
ensure_packages dpdk-dev # dpdk-testpmd lives there on Debian
need() { command -v "$1" >/dev/null || die "$1 not found: $2"; }
need dpdk-testpmd "install Debian's dpdk-dev (apt-get install dpdk-dev)"
need stdbuf "install coreutils"
need awk "install gawk or mawk"
if [ "$PROFILE" = 1 ]; then
    need perf "install linux-perf (or run without --profile)"
    need addr2line "install binutils"
    need nm "install binutils"
    need python3 "install python3"
fi
# Both programs must see the same CPUs: refuse CPUs this process may not use.
allowed=$(awk '/^Cpus_allowed_list:/ {print $2}' /proc/self/status)
cpu_allowed() {
    local c=$1 part lo hi
    for part in ${allowed//,/ }; do
        lo=${part%-*}
        hi=${part#*-}
        [ "$c" -ge "$lo" ] && [ "$c" -le "$hi" ] && return 0
    done
    return 1
}
for c in "$MAIN_CPU" "$WORKER_CPU"; do
    cpu_allowed "$c" || die "--cpus: CPU $c is not available here (allowed: $allowed)"
done
[ "$MAIN_CPU" != "$WORKER_CPU" ] || log "warning: main and worker lcores share CPU $MAIN_CPU"

cd "$ROOT"
if [ "$BUILD" = 1 ]; then
    log "building ctfw and ctfw-tracegen (release)"
    cargo build --release -q -p ctfw -p ctfw-tracegen
fi
TRACEGEN=$ROOT/target/release/ctfw-tracegen
[ -x "$TRACEGEN" ] || die "$TRACEGEN missing: run without --no-build"
# The ctfw binaries to measure: LABELS[i] runs CTFW_BIN[i].
[ ${#CTFWS[@]} -gt 0 ] || CTFWS=("ctfw=$ROOT/target/release/ctfw")
LABELS=()
CTFW_BIN=()
for spec in "${CTFWS[@]}"; do
    label=${spec%%=*}
    for l in ${LABELS[@]+"${LABELS[@]}"}; do [ "$l" != "$label" ] || die "--ctfw: the label $label is given twice"; done
    [ -x "${spec#*=}" ] || die "--ctfw $spec: ${spec#*=} is not an executable file (run without --no-build for the default)"
    LABELS+=("$label")
    CTFW_BIN+=("$(realpath "${spec#*=}")")
done

DATA=$ROOT/target/bench-data
RUN_DIR=$DATA/runs/$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN_DIR"
case "$DATA" in *,*) die "the path $DATA contains a comma, which DPDK devargs cannot carry" ;; esac

# --- clean-up -----------------------------------------------------------------------------

# Every background process this script starts, so none outlives it.
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill -0 "$p" 2>/dev/null || continue
        kill -INT "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
    done
}
# forget PID: it has been waited for; never signal that number again.
forget() {
    local keep=() p
    for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- sizes --------------------------------------------------------------------------------

# Mbufs for a capture of $1 packets: net_pcap keeps the whole capture in mbufs of the RX
# pool, and the queues, caches and bursts need a few thousand more. 2^k - 1 suits the
# mempool.
mbufs_for() {
    local need=$(($1 + 8192)) m=16383
    while [ $m -lt $need ]; do m=$((m * 2 + 1)); done
    echo $m
}
# MiB for one pool of $1 mbufs. An mbuf is 2368 bytes (128-byte header, 2176-byte buffer,
# mempool header); with hugepages they pack (2560 bytes allowed each), without (--no-huge)
# the mempool keeps each object within one 4 KiB page, so each takes a page.
pool_mb() {
    local per=4096
    [ "$HUGE" = off ] || per=2560
    echo $((($1 * per + 1048575) / 1048576))
}
# Conntrack capacity: at least twice the flows (a table run at half its size), >= 65536.
capacity_for() {
    local c=65536
    while [ $c -lt $(($1 * 2)) ]; do c=$((c * 2)); done
    [ $c -le 16777215 ] || c=16777215
    echo $c
}
# The --lcores map: lcore 0 on the main CPU, lcore l >= 1 alternating worker CPU, main CPU.
lcores_for() {
    local w=$1 l map="0@$MAIN_CPU"
    for l in $(seq 1 "$w"); do
        if [ $((l % 2)) = 1 ]; then map="$map,$l@$WORKER_CPU"; else map="$map,$l@$MAIN_CPU"; fi
    done
    echo "$map"
}

check_memory() {
    local mb=$1 what=$2
    if [ "$HUGE" = on ]; then
        local free
        free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
        [ $((free * 2)) -ge "$mb" ] ||
            die "$what needs $mb MiB of hugepages, $((free * 2)) MiB free: use --hugepages off or reserve more"
    else
        local avail
        avail=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
        [ "$avail" -ge $((mb + 512)) ] ||
            die "$what needs $mb MiB of memory, $avail MiB available: lower --flows"
    fi
}

# --- traces -------------------------------------------------------------------------------

# The capture for N flows, generated once and cached.
trace_for() {
    local n=$1 f=$DATA/established-$1.pcap
    if [ ! -s "$f" ] || [ ! -s "$f.ok" ]; then
        log "generating $f ($n flows, one packet each)"
        local out
        out=$("$TRACEGEN" established --flows "$n" --packets "$n" --data-only --payload 64 \
            --order rr --out "$f.tmp" 2>&1)
        # Every packet must come from the client side, or the loop is not one-directional.
        case "$out" in
            *"wrote $n packets ($n inside, 0 outside"*) ;;
            *) rm -f "$f.tmp"; die "unexpected capture from ctfw-tracegen: $out" ;;
        esac
        mv "$f.tmp" "$f"
        echo "$out" >"$f.ok"
    fi
    echo "$f"
}

# --- running one program ------------------------------------------------------------------

BG_PID=
# start LOG CMD...: run CMD in the background, line-buffered, output to LOG (after the
# command line itself).
start() {
    local logf=$1
    shift
    printf '$ %s\n' "$*" >"$logf"
    stdbuf -oL -eL "$@" >>"$logf" 2>&1 &
    BG_PID=$!
    PIDS+=("$BG_PID")
}

# wait_for PID LOG REGEX: until LOG matches (the program is forwarding); fail if it exits.
wait_for() {
    local pid=$1 logf=$2 re=$3 i
    for i in $(seq 6000); do
        grep -Eq "$re" "$logf" && return 0
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$logf" >&2
            die "the program exited before forwarding (log: $logf)"
        fi
        sleep 0.1
    done
    kill -INT "$pid" 2>/dev/null || true
    die "nothing forwarded after 600 s (log: $logf)"
}

# stop PID LOG: SIGINT, then wait for a clean exit (SIGKILL after 120 s). Fails on a
# non-zero status.
stop() {
    local pid=$1 logf=$2 i rc=0
    kill -INT "$pid" 2>/dev/null || true
    for i in $(seq 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        die "did not stop within 120 s of SIGINT (log: $logf)"
    fi
    wait "$pid" || rc=$?
    forget "$pid"
    [ "$rc" = 0 ] || { tail -n 30 "$logf" >&2; die "exit status $rc (log: $logf)"; }
}

# The thread id of DPDK lcore 1 (the forwarding core / worker 0) of PID.
worker_tid() {
    local t
    for t in /proc/"$1"/task/*; do
        [ "$(cat "$t/comm" 2>/dev/null)" = rte-worker-1 ] && { basename "$t"; return 0; }
    done
    die "no rte-worker-1 thread in process $1"
}

# Nanoseconds thread $1 of process $2 has run (first field of schedstat).
run_ns() { awk '{print $1}' "/proc/$2/task/$1/schedstat" 2>/dev/null || echo 0; }
now_ns() { date +%s%N; }
loadavg() { awk '{print $1}' /proc/loadavg; }

# nap S: sleep, but let a signal to this script interrupt it (a foreground `sleep` would
# hold the INT/TERM trap, and so the clean-up, until it ends).
nap() {
    sleep "$1" &
    wait $! || true
}

# measure PID: let it run WARMUP + SECONDS; sets MEAS_CPU, the on-CPU share (%) of its
# worker lcore over the measured seconds, and MEAS_LOAD, the 1-minute load average then.
MEAS_CPU=
MEAS_LOAD=
measure() {
    local pid=$1 tid r0 t0 r1 t1
    tid=$(worker_tid "$pid")
    nap "$WARMUP"
    r0=$(run_ns "$tid" "$pid")
    t0=$(now_ns)
    nap "$RUN_SECONDS"
    r1=$(run_ns "$tid" "$pid")
    t1=$(now_ns)
    MEAS_CPU=$(awk -v r="$((r1 - r0))" -v t="$((t1 - t0))" 'BEGIN {printf "%.0f", 100 * r / t}')
    MEAS_LOAD=$(loadavg)
}

# Rate of testpmd from its periodic port statistics of port 0. The blocks are not exactly
# --stats-period apart (testpmd sleeps a second between checks of a TSC-timed period, so in
# a VM a block often comes every 2 s), but each gives the cumulative RX-packets and the
# Rx-pps since the previous block, timed by testpmd with the TSC: so each block's length is
# (its RX-packets - the previous) / Rx-pps. The rate is packets over time for the blocks that
# start at or after the warm-up (the first block comes as forwarding starts).
testpmd_rate() {
    awk -v w="$WARMUP" '
        /NIC statistics for port 0/ {in0 = 1; next}
        /NIC statistics for port/ {in0 = 0}
        in0 && /RX-packets:/ {rx = $2}
        in0 && /Rx-pps:/ {
            pps = $2; blk++
            if (blk > 1 && pps > 0) {
                dt = (rx - prev) / pps; t += dt
                if (t - dt >= w - 0.2) {n++; sum_rx += rx - prev; sum_t += dt}
            }
            prev = rx
        }
        END {if (n < 1 || sum_t < 1) exit 1; printf "%.3f\n", sum_rx / sum_t / 1e6}' "$1"
}

# Rate of ctfw: least-squares slope of "packets" over the progress lines at t >= warm-up.
# (The worker publishes its counters every ~100 ms, so each point lags by up to 0.1 s; the
# fit over ~10 points averages that out.)
ctfw_rate() {
    awk -v w="$WARMUP" '
        /^\[ *[0-9.]+ s\] packets / {
            line = $0; gsub(/[][]/, " ", line); split(line, f, " ")
            t = f[1]; p = f[4]
            if (t >= w) {n++; st += t; sp += p; stt += t * t; stp += t * p}
        }
        END {
            if (n < 3) exit 1
            printf "%.3f\n", (n * stp - st * sp) / (n * stt - st * st) / 1e6
        }' "$1"
}

# EAL memory arguments shared by both programs.
eal_memory_args() {
    if [ "$HUGE" = on ]; then echo "-m $1 --in-memory"; else echo "-m $1 --no-huge --no-shconf"; fi
}

RUN_NO=0
# What the last run measured: Mpps, on-CPU % of the worker lcore, 1-minute load average.
# (Globals, not output: a run must start its program from this shell, so that the EXIT trap
# knows the process and `wait` can collect it.)
RES_RATE=
RES_CPU=
RES_LOAD=

# run_testpmd N TRACE
run_testpmd() {
    local n=$1 trace=$2 mbufs mem logf
    mbufs=$(mbufs_for "$n")
    mem=$(($(pool_mb "$mbufs") + 256))
    check_memory "$mem" "testpmd at $n flows"
    RUN_NO=$((RUN_NO + 1))
    logf=$RUN_DIR/testpmd-$n-$RUN_NO.log
    # shellcheck disable=SC2046 # the memory arguments are words
    start "$logf" dpdk-testpmd --lcores="0@$MAIN_CPU,1@$WORKER_CPU" --main-lcore=0 \
        $(eal_memory_args "$mem") --file-prefix="dpbench-$$-$RUN_NO" --no-pci --no-telemetry \
        --vdev="net_pcap0,rx_pcap=$trace,infinite_rx=1" --vdev="net_null0,no-rx=1" \
        -- --forward-mode=io --nb-cores=1 --total-num-mbufs="$mbufs" --stats-period=1 \
        --no-flush-rx
    local pid=$BG_PID
    wait_for "$pid" "$logf" "NIC statistics for port 0"
    measure "$pid"
    nap 0.5 # one more statistics block
    stop "$pid" "$logf"
    RES_RATE=$(testpmd_rate "$logf") || die "no rate in $logf"
    RES_CPU=$MEAS_CPU
    RES_LOAD=$MEAS_LOAD
}

# write_config N TRACE FILE: the ctfw configuration for N flows. Its rules are the benchmark's
# own (this traffic starts mid-stream and flows one way), not the conformance policy, whose one
# definition is config/conformance/classic-loose1-liberal0.yaml.
write_config() {
    local n=$1 trace=$2 mbufs
    mbufs=$(mbufs_for "$n")
    cat >"$3" <<EOF
# Written by benches/dataplane.sh for $n flows.
ports:
  - {name: inside, device: "net_pcap0,rx_pcap=$trace,infinite_rx=1", peer: outside}
  - {name: outside, device: "net_null0,no-rx=1", peer: inside}
dataplane:
  workers: $WORKERS
  lcores: "$(lcores_for "$WORKERS")"
  main_lcore: 0
  memory_mb: $((2 * $(pool_mb "$mbufs") + 256))
  mbufs_per_port: $mbufs
conntrack:
  capacity: $(capacity_for "$n")
policy: drop
rules:
  - {name: established, ct_state: [established, related], action: accept}
  # Loose pickup makes each flow's first packet an ESTABLISHED entry, but until a reply is
  # seen Linux (and ctfw) give original-direction packets the ctinfo NEW: this rule takes them.
  - {name: new_from_inside, ct_state: [new], in_port: inside, action: accept}
EOF
}

# check_ctfw REPORT N: the run (its --report-json REPORT) must have tracked N flows and
# dropped nothing.
check_ctfw() {
    local report=$1 n=$2
    python3 - "$report" "$n" <<'PY' || die "ctfw's report $1 says the run did not measure forwarding of $2 flows"
import json, sys
r = json.load(open(sys.argv[1]))
dropped, entries = r["counters"]["dropped"], r["table"]["entries"]
if dropped != 0:
    sys.exit(f"ctfw dropped {dropped} packets")
if entries != int(sys.argv[2]):
    sys.exit(f"ctfw's table holds {entries} entries, not {sys.argv[2]}")
PY
}

# run_ctfw I N TRACE [PERF_DATA]: the ctfw binary CTFW_BIN[I] (label LABELS[I]).
run_ctfw() {
    local bin=${CTFW_BIN[$1]} label=${LABELS[$1]} n=$2 trace=$3 perf_data=${4:-} cfg logf
    cfg=$RUN_DIR/ctfw-$n.yaml
    write_config "$n" "$trace" "$cfg"
    local mem
    mem=$(awk '/memory_mb:/ {print $2}' "$cfg")
    check_memory "$mem" "ctfw at $n flows"
    RUN_NO=$((RUN_NO + 1))
    logf=$RUN_DIR/ctfw-$label-$n-$RUN_NO.log
    start "$logf" "$bin" run --config "$cfg" --hugepages "$HUGE" --stats-interval 1 \
        --file-prefix "dpbench-$$-$RUN_NO" --max-entries 0 --report-json "$logf.json"
    local pid=$BG_PID
    wait_for "$pid" "$logf" '^\[ *[0-9.]+ s\] packets '
    if [ -n "$perf_data" ]; then
        local tid perf_pid rc=0
        tid=$(worker_tid "$pid")
        nap "$WARMUP"
        perf record -q -e cpu-clock -F 1999 -t "$tid" -o "$perf_data" -- sleep "$RUN_SECONDS" \
            >"$perf_data.log" 2>&1 &
        perf_pid=$!
        PIDS+=("$perf_pid")
        wait "$perf_pid" || rc=$?
        forget "$perf_pid"
        [ "$rc" = 0 ] || die "perf record failed ($rc): $(cat "$perf_data.log")"
        MEAS_CPU=-
        MEAS_LOAD=$(loadavg)
    else
        measure "$pid"
    fi
    stop "$pid" "$logf"
    check_ctfw "$logf.json" "$n"
    RES_RATE=$(ctfw_rate "$logf") || die "no rate in $logf"
    RES_CPU=$MEAS_CPU
    RES_LOAD=$MEAS_LOAD
}

# --- profile ------------------------------------------------------------------------------

# stage_breakdown PERF_DATA BINARY: where the worker's samples fall, by pipeline stage. Each sample
# in ctfw is resolved to its chain of inlined functions (addr2line -i) and given the stage of
# the outermost function that belongs to one (process_burst inlines the whole pipeline).
stage_breakdown() {
    perf script --no-demangle -i "$1" -F ip,sym,symoff,dso 2>/dev/null |
        python3 "$RUN_DIR/stages.py" "$2"
}

write_stages_py() {
    cat >"$RUN_DIR/stages.py" <<'PY'
import collections, os, re, subprocess, sys

binary = os.path.realpath(sys.argv[1])
line_re = re.compile(r'^\s*[0-9a-f]+\s+(\S+?)(?:\+0x([0-9a-f]+))?\s+\((.*)\)\s*$')
samples = collections.Counter()
for line in sys.stdin:
    m = line_re.match(line)
    if m:
        dso = m.group(3)
        if dso.startswith('/'):
            dso = os.path.realpath(dso)
        samples[(dso, m.group(1), int(m.group(2) or '0', 16))] += 1
total = sum(samples.values())
if total == 0:
    sys.exit("no samples")

syms = {}
for l in subprocess.run(['nm', binary], capture_output=True, text=True).stdout.splitlines():
    parts = l.split()
    if len(parts) == 3:
        syms[parts[2]] = int(parts[0], 16)

# Stage of one (function, source file) frame, or None for glue (pipeline, worker loop, std).
def stage_of(func, path):
    p = path.rsplit(':', 1)[0]
    last = func.split('<')[0].split('::')[-1]
    if '/engine/src/wire/checksum' in p: return 'parse: checksums'
    if '/engine/src/wire/' in p or p.endswith('/engine/src/view.rs'): return 'parse'
    if '/engine/src/flow.rs' in p or '/engine/src/rss.rs' in p: return 'key + hash'
    if '/engine/src/table.rs' in p: return 'key + hash' if last == 'hash' else 'table lookup'
    if '/engine/src/track/' in p: return 'TCP tracking'
    if '/engine/src/rules/' in p: return 'rules'
    if '/engine/src/counters.rs' in p: return 'counters'
    if 'rx_burst' in func: return 'rx (rx_burst)'
    if 'tx_burst' in func or last in ('send', 'flush'): return 'tx (tx_burst)'
    if 'drop_in_place<rte::mbuf::Mbuf>' in func or ('/rte/src/mbuf.rs' in p and last == 'drop'):
        return 'mbuf free'
    if '/rte/src/mbuf.rs' in p: return 'mbuf access + burst bookkeeping'
    return None

SHIM = {
    'ctfw_rte_eth_rx_burst': 'rx (rx_burst)',
    'ctfw_rte_eth_tx_burst': 'tx (tx_burst)',
    'ctfw_rte_pktmbuf_free': 'mbuf free',
}

to_resolve = sorted({syms[s] + off for (dso, s, off) in samples
                     if dso == binary and s in syms})
chains = {}
if to_resolve:
    out = subprocess.run(['addr2line', '-a', '-i', '-f', '-C', '-e', binary],
                         input='\n'.join(hex(a) for a in to_resolve) + '\n',
                         capture_output=True, text=True).stdout.splitlines()
    cur = None
    i = 0
    while i < len(out):
        if out[i].startswith('0x'):
            cur = int(out[i], 16); chains[cur] = []; i += 1; continue
        func, loc = out[i], out[i + 1] if i + 1 < len(out) else '??:0'
        chains[cur].append((func, loc.split(' ')[0]))
        i += 2

stages = collections.Counter()
for (dso, s, off), n in samples.items():
    name = dso.rsplit('/', 1)[-1]
    if dso == binary:
        if s.startswith('ctfw_rte_'):
            stage = SHIM.get(s, 'mbuf access + burst bookkeeping'
                             if 'mbuf' in s or 'mtod' in s else 'other (C shim)')
        else:
            stage = None
            for func, path in reversed(chains.get(syms.get(s, -1) + off, [])):
                stage = stage_of(func, path)
                if stage: break
            stage = stage or 'pipeline + worker glue'
    elif 'librte_net_pcap' in name: stage = 'rx (net_pcap PMD: alloc + copy)'
    elif 'librte_net_null' in name: stage = 'tx (net_null PMD: frees)'
    elif 'librte_mempool' in name or 'librte_mbuf' in name: stage = 'mempool'
    elif 'libc.so' in name and 'mem' in s: stage = 'memcpy/memset (libc)'
    elif 'kernel' in name: stage = 'kernel (interrupts, scheduler)'
    else: stage = 'other: ' + name
    stages[stage] += n

print(f"  {'stage':<36} {'samples':>8} {'share':>7}")
for stage, n in stages.most_common():
    print(f"  {stage:<36} {n:>8} {100 * n / total:>6.1f}%")
print(f"  {'total':<36} {total:>8}")

# The hottest places in ctfw itself: innermost source line, then the inlined callers.
lines = collections.Counter()
for (dso, s, off), n in samples.items():
    if dso == binary:
        ch = chains.get(syms.get(s, -1) + off, [])
        if ch:
            lines[' <- '.join(f"{f.split('<')[0].split('::')[-1]} {l.rsplit('/', 1)[-1]}"
                              for f, l in ch[:4])] += n
        else:
            lines[s] += n
print("  hottest lines (innermost first; function names of inlined frames may be off by one):")
for k, n in lines.most_common(12):
    print(f"  {100 * n / total:5.1f}%  {k}")
PY
}

# --- main ---------------------------------------------------------------------------------

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

RESULTS=$RUN_DIR/results.tsv
printf 'flows\tround\tprogram\tmpps\tratio_to_testpmd\tworker_cpu_pct\tload\n' >"$RESULTS"

log "$(nproc) CPUs; main lcore on CPU $MAIN_CPU, forwarding/worker lcore on CPU $WORKER_CPU; ctfw workers: $WORKERS; hugepages: $HUGE"
for i in "${!LABELS[@]}"; do log "ctfw binary ${LABELS[$i]}: ${CTFW_BIN[$i]}"; done
log "load now: $(cut -d' ' -f1-3 /proc/loadavg); logs in $RUN_DIR"
# The programs of a round: testpmd, then each ctfw binary by its index into LABELS.
PROGS=(testpmd "${!LABELS[@]}")
for n in $FLOWS; do
    trace=$(trace_for "$n")
    for r in $(seq "$ROUNDS"); do
        # Rotate which program goes first every round, so a drift in the machine's load hits
        # all of them (with one ctfw: testpmd first in odd rounds, ctfw first in even ones).
        k=$(((r - 1) % ${#PROGS[@]}))
        declare -A rate=() cpu=() load=()
        for prog in "${PROGS[@]:k}" "${PROGS[@]:0:k}"; do
            if [ "$prog" = testpmd ]; then
                log "$n flows, round $r: testpmd"
                run_testpmd "$n" "$trace"
            else
                log "$n flows, round $r: ${LABELS[$prog]}"
                run_ctfw "$prog" "$n" "$trace"
            fi
            rate[$prog]=$RES_RATE cpu[$prog]=$RES_CPU load[$prog]=$RES_LOAD
        done
        msg="testpmd ${rate[testpmd]} Mpps (worker on CPU ${cpu[testpmd]}%)"
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$r" testpmd "${rate[testpmd]}" 1.000 \
            "${cpu[testpmd]}" "${load[testpmd]}" >>"$RESULTS"
        for i in "${!LABELS[@]}"; do
            ratio=$(awk -v a="${rate[$i]}" -v b="${rate[testpmd]}" 'BEGIN {printf "%.3f", a / b}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$n" "$r" "${LABELS[$i]}" "${rate[$i]}" \
                "$ratio" "${cpu[$i]}" "${load[$i]}" >>"$RESULTS"
            msg="$msg, ${LABELS[$i]} ${rate[$i]} Mpps (${cpu[$i]}%): ratio $ratio"
        done
        log "  $msg"
        unset rate cpu load
    done
done

echo
echo "ctfw vs dpdk-testpmd: $(nproc) CPUs ($(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)), DPDK $(pkg-config --modversion libdpdk 2>/dev/null || echo '?'), ctfw workers $WORKERS, hugepages $HUGE, ${RUN_SECONDS} s measured after ${WARMUP} s"
for i in "${!LABELS[@]}"; do echo "  ${LABELS[$i]}: ${CTFW_BIN[$i]}"; done
printf '%-9s %-7s %-10s %9s %13s %13s %10s\n' flows round program Mpps "x testpmd" "worker CPU %" "load 1 min"
for n in $FLOWS; do
    awk -F'\t' -v n="$n" '$1 == n {
        printf "%-9s %-7s %-10s %9.2f %13.3f %13s %10s\n", $1, $2, $3, $4, $5, $6, $7
    }' "$RESULTS"
    for prog in testpmd "${LABELS[@]}"; do
        med=$(awk -F'\t' -v n="$n" -v p="$prog" '$1 == n && $3 == p {print $4}' "$RESULTS" | median)
        ra_med=$(awk -F'\t' -v n="$n" -v p="$prog" '$1 == n && $3 == p {print $5}' "$RESULTS" | median)
        printf '%-9s %-7s %-10s %9.2f %13.3f\n' "$n" median "$prog" "$med" "$ra_med"
    done
done
echo "(x testpmd: the program's rate over testpmd's in the same round; the median row is the"
echo " median of those ratios. worker CPU %: on-CPU share of the forwarding/worker thread over"
echo " the measured seconds; load: 1-minute load average at the end of each run, the benchmark"
echo " itself included)"
echo "results: $RESULTS"

if [ "$PROFILE" = 1 ]; then
    write_stages_py
    for n in $FLOWS; do
        trace=$(trace_for "$n")
        for i in "${!LABELS[@]}"; do
            data=$RUN_DIR/perf-${LABELS[$i]}-$n.data
            log "$n flows: ctfw ${LABELS[$i]} under perf record (cpu-clock, 1999 Hz, worker thread)"
            run_ctfw "$i" "$n" "$trace" "$data"
            echo
            echo "ctfw ${LABELS[$i]} worker at $n flows: $RES_RATE Mpps while sampled (load $RES_LOAD); $data"
            stage_breakdown "$data" "${CTFW_BIN[$i]}"
        done
    done
fi
