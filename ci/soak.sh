#!/usr/bin/env bash
# Soak test: `ctfw run` on virtual devices under a churning attack mix for SECONDS (default
# 600), sampled every few seconds; it fails unless the process's memory stays flat after the
# warm-up, every packet is accounted for, and every mbuf is back in its pool at exit. Not run
# by CI; app/tests/soak.rs runs a 20-second soak in the test suite so that this script cannot
# rot. What it checks and why, and a recorded run: docs/robustness.md ("Soak").
#
#   traffic: net_pcap0,rx_pcap=CAPTURE,infinite_rx=1 -> ctfw -> net_null0,no-rx=1
#            CAPTURE: `ctfw-tracegen soak` (conversations opening, exchanging and closing with
#            FIN or RST, UDP, pings, ICMP errors quoting live flows, SYN/ACK/UDP floods from
#            spoofed sources, blind RSTs, malformed frames), looped for as long as it runs.
#   churn:   every conntrack timeout is 1 s and the table is small (--capacity), so entries
#            are created, evicted, closed, expire (every entry not refreshed for 1 s: all of
#            them when one loop of the capture lasts longer) and are created again all the
#            time.
#   samples: every --interval seconds, the RSS of the process (/proc/PID/status) and
#            `ctfw stats -o json` (counters, table fill, per-worker and per-port figures),
#            one JSON line each in OUT/samples.jsonl.
#   end:     SIGTERM; the exit status and the final report (--report-json OUT/report.json)
#            are checked with the samples by ci/soak_check.py, which prints what failed.
#
# Usage: ci/soak.sh [SECONDS] [options]
#   --workers N         ctfw workers (default 2; they may share CPUs)
#   --packets N         packets in the looped capture (default 400000; each holds an mbuf
#                       of 4 KiB for the whole run)
#   --capacity N        conntrack.capacity (default 16384)
#   --interval S        seconds between samples (default 2)
#   --warmup-share F    share of the run before the RSS reference is taken (default 0.2)
#   --rss-slack-pct P   RSS allowed above the reference, percent (default 0.25) ...
#   --rss-slack-mib M   ... or MiB, whichever is larger (default 4)
#   --hugepages MODE    off (default: DPDK's memory is ordinary memory, counted in RSS), on
#   --capture FILE      loop this capture instead of generating one
#   --ctfw PATH         the ctfw binary (default target/release/ctfw, built first)
#   --tracegen PATH     the ctfw-tracegen binary (default target/release/ctfw-tracegen)
#   --out DIR           logs, samples, configuration and report (default
#                       target/soak/<date>)
#   --no-build          use the existing release binaries
#   -h, --help
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

SECONDS_TO_RUN=600
WORKERS=2
PACKETS=400000
CAPACITY=16384
INTERVAL=2
WARMUP_SHARE=0.2
RSS_SLACK_PCT=0.25
RSS_SLACK_MIB=4
HUGE=off
CAPTURE=
CTFW=
TRACEGEN=
OUT=
BUILD=1

die() {
    printf 'soak.sh: %s\n' "$*" >&2
    exit 2
}

usage() { sed -n '/^# Usage:/,/^#   -h, --help/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }
is_num() { [[ $1 =~ ^[0-9]+(\.[0-9]+)?$ ]]; }

if [ $# -gt 0 ] && is_uint "$1"; then
    SECONDS_TO_RUN=$1
    shift
fi
while [ $# -gt 0 ]; do
    case "$1" in
        --workers) WORKERS=${2:?--workers needs a value}; shift 2 ;;
        --packets) PACKETS=${2:?--packets needs a value}; shift 2 ;;
        --capacity) CAPACITY=${2:?--capacity needs a value}; shift 2 ;;
        --interval) INTERVAL=${2:?--interval needs a value}; shift 2 ;;
        --warmup-share) WARMUP_SHARE=${2:?--warmup-share needs a value}; shift 2 ;;
        --rss-slack-pct) RSS_SLACK_PCT=${2:?--rss-slack-pct needs a value}; shift 2 ;;
        --rss-slack-mib) RSS_SLACK_MIB=${2:?--rss-slack-mib needs a value}; shift 2 ;;
        --hugepages) HUGE=${2:?--hugepages needs off or on}; shift 2 ;;
        --capture) CAPTURE=${2:?--capture needs a file}; shift 2 ;;
        --ctfw) CTFW=${2:?--ctfw needs a path}; shift 2 ;;
        --tracegen) TRACEGEN=${2:?--tracegen needs a path}; shift 2 ;;
        --out) OUT=${2:?--out needs a directory}; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

is_uint "$SECONDS_TO_RUN" && [ "$SECONDS_TO_RUN" -ge 10 ] || die "SECONDS: a whole number >= 10"
is_uint "$WORKERS" && [ "$WORKERS" -ge 1 ] && [ "$WORKERS" -le 64 ] || die "--workers: 1 to 64"
is_uint "$PACKETS" && [ "$PACKETS" -ge 1000 ] || die "--packets: a whole number >= 1000"
is_uint "$CAPACITY" && [ "$CAPACITY" -ge 1024 ] || die "--capacity: a whole number >= 1024"
is_num "$INTERVAL" && awk -v i="$INTERVAL" 'BEGIN {exit !(i >= 0.5)}' ||
    die "--interval: seconds, at least 0.5"
is_num "$WARMUP_SHARE" && awk -v w="$WARMUP_SHARE" 'BEGIN {exit !(w > 0 && w < 1)}' ||
    die "--warmup-share: a fraction between 0 and 1"
is_num "$RSS_SLACK_PCT" || die "--rss-slack-pct: a number"
is_num "$RSS_SLACK_MIB" || die "--rss-slack-mib: a number"
case "$HUGE" in off | on) ;; *) die "--hugepages: off or on" ;; esac

need() { command -v "$1" >/dev/null || die "$1 not found: $2"; }
need python3 "install python3"
need awk "install gawk or mawk"

cd "$ROOT"
if [ -z "$CTFW" ] || { [ -z "$TRACEGEN" ] && [ -z "$CAPTURE" ]; }; then
    if [ "$BUILD" = 1 ]; then
        log "building ctfw and ctfw-tracegen (release)"
        cargo build --release -q -p ctfw -p ctfw-tracegen
    fi
    CTFW=${CTFW:-$ROOT/target/release/ctfw}
    TRACEGEN=${TRACEGEN:-$ROOT/target/release/ctfw-tracegen}
fi
[ -x "$CTFW" ] || die "$CTFW is not an executable: build it or give --ctfw"

OUT=${OUT:-$ROOT/target/soak/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
case "$OUT" in *,*) die "the path $OUT contains a comma, which DPDK devargs cannot carry" ;; esac

# --- the capture ----------------------------------------------------------------------------

if [ -z "$CAPTURE" ]; then
    [ -x "$TRACEGEN" ] || die "$TRACEGEN is not an executable: build it, give --tracegen or --capture"
    CAPTURE=$OUT/soak-$PACKETS.pcap
    log "generating $CAPTURE ($PACKETS packets)"
    "$TRACEGEN" soak --packets "$PACKETS" --flows 2000 --out "$CAPTURE" 2>"$OUT/tracegen.log" ||
        die "ctfw-tracegen failed: $(cat "$OUT/tracegen.log")"
fi
[ -s "$CAPTURE" ] || die "no capture at $CAPTURE"
CAPTURE=$(cd "$(dirname "$CAPTURE")" && pwd)/$(basename "$CAPTURE")
case "$CAPTURE" in *,*) die "the path $CAPTURE contains a comma, which DPDK devargs cannot carry" ;; esac
# Packets in it: a classic pcap record header is 16 bytes and holds the captured length at
# offset 8 (either byte order; the magic says which).
CAPTURE_PACKETS=$(python3 - "$CAPTURE" <<'PY'
import struct, sys
with open(sys.argv[1], "rb") as f:
    head = f.read(24)
    if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        order = "<"
    elif head[:4] in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        order = ">"
    else:
        sys.exit(f"{sys.argv[1]}: not a classic pcap file (net_pcap reads only those)")
    n = 0
    while True:
        rec = f.read(16)
        if len(rec) < 16:
            break
        f.seek(struct.unpack(order + "I", rec[8:12])[0], 1)
        n += 1
print(n)
PY
) || die "cannot read $CAPTURE"

# --- sizes ----------------------------------------------------------------------------------

# net_pcap holds the whole capture in mbufs of the RX port's pool for the whole run; the
# queues, caches, rings and bursts need a few thousand more. (Each port gets a pool of this
# size: ctfw has one mbufs_per_port.)
MBUFS=$((CAPTURE_PACKETS + 16384))
# Without hugepages each mbuf (2,368 bytes) takes a 4 KiB page of its own; with them they
# pack at about 2,560 bytes.
if [ "$HUGE" = off ]; then PER=4096; else PER=2560; fi
POOL_MB=$(((MBUFS * PER + 1048575) / 1048576))
MEMORY_MB=$((2 * POOL_MB + 256))
if [ "$HUGE" = on ]; then
    free_pages=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
    [ $((free_pages * 2)) -ge "$MEMORY_MB" ] ||
        die "the run needs $MEMORY_MB MiB of hugepages, $((free_pages * 2)) MiB are free: use --hugepages off or a smaller --packets"
else
    avail=$(awk '/^MemAvailable:/ {print int($2 / 1024)}' /proc/meminfo)
    [ "$avail" -ge $((MEMORY_MB + 1024)) ] ||
        die "the run needs $MEMORY_MB MiB of memory (and 1 GiB to spare), $avail MiB are available: use a smaller --packets"
fi

# lcores: the main lcore on the first CPU this process may use, workers on the others in
# turn (sharing them when there are fewer CPUs than workers).
CPUS=()
for part in $(awk '/^Cpus_allowed_list:/ {gsub(",", " ", $2); print $2}' /proc/self/status); do
    lo=${part%-*}
    hi=${part#*-}
    for c in $(seq "$lo" "$hi"); do CPUS+=("$c"); done
done
[ ${#CPUS[@]} -ge 1 ] || die "no CPU in Cpus_allowed_list"
LCORES="0@${CPUS[0]}"
for l in $(seq 1 "$WORKERS"); do
    if [ ${#CPUS[@]} -gt 1 ]; then
        cpu=${CPUS[$((1 + (l - 1) % (${#CPUS[@]} - 1)))]}
    else
        cpu=${CPUS[0]}
    fi
    LCORES="$LCORES,$l@$cpu"
done

# --- the configuration ----------------------------------------------------------------------

CONFIG=$OUT/soak.yaml
SOCKET=$OUT/ctfw.sock
# A Unix socket's path holds at most 107 bytes.
[ ${#SOCKET} -le 100 ] || SOCKET=${TMPDIR:-/tmp}/ctfw-soak-$$.sock
REPORT=$OUT/report.json
SAMPLES=$OUT/samples.jsonl
LOG=$OUT/ctfw.log
ACCEPT_RULES=estrel_accept,new_to_servers_accept
cat >"$CONFIG" <<EOF
# Written by ci/soak.sh. Every packet comes in on "inside" (one looped capture holds both
# directions: conntrack tells them apart by tuple), so the rules tell the sides apart by
# address: servers are 172.16.0.0/12 and fd00:2::/64 (ctfw-tracegen's address plan).
ports:
  - {name: inside, device: "net_pcap0,rx_pcap=$CAPTURE,infinite_rx=1", peer: outside}
  - {name: outside, device: "net_null0,no-rx=1", peer: inside}
dataplane:
  workers: $WORKERS
  lcores: "$LCORES"
  main_lcore: 0
  hugepages: $HUGE
  memory_mb: $MEMORY_MB
  mbufs_per_port: $MBUFS
conntrack:
  capacity: $CAPACITY
  timeouts: {tcp_syn_sent: 1, tcp_syn_recv: 1, tcp_established: 1, tcp_fin_wait: 1,
             tcp_close_wait: 1, tcp_last_ack: 1, tcp_time_wait: 1, tcp_close: 1,
             tcp_syn_sent2: 1, tcp_max_retrans: 1, tcp_unacknowledged: 1, udp: 1,
             udp_stream: 1, icmp: 1, icmpv6: 1, gre: 1, gre_stream: 1, generic: 1}
control:
  socket: $SOCKET
policy: drop
rules:
  - {name: invalid_drop, ct_state: [invalid], action: drop}
  - {name: estrel_accept, ct_state: [established, related], action: accept}
  - {name: new_to_servers_accept, ct_state: [new], dst: ["172.16.0.0/12", "fd00:2::/64"], action: accept}
EOF
# The longest timeout above: entries whose flow comes back later than this must expire.
MAX_TIMEOUT=1

# --- the run --------------------------------------------------------------------------------

PID=
cleanup() {
    [ -n "$PID" ] || return 0
    kill -0 "$PID" 2>/dev/null || return 0
    kill -TERM "$PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$PID" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# nap S: sleep, but let a signal to this script interrupt it (a foreground `sleep` would hold
# the INT/TERM trap, and so the clean-up, until it ends).
nap() {
    sleep "$1" &
    wait $! || true
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.3f", b - a}'; }
# stats: the live statistics as one JSON line, or nothing.
stats() { timeout 10 "$CTFW" stats -o json --socket "$SOCKET" 2>>"$OUT/stats-errors.log" | tr -d '\n'; }
# rss: "VmRSS RssAnon RssFile RssShmem VmHWM" of the process, in KiB.
rss() {
    awk '/^(VmRSS|RssAnon|RssFile|RssShmem|VmHWM):/ {v[$1] = $2}
         END {printf "%d %d %d %d %d", v["VmRSS:"], v["RssAnon:"], v["RssFile:"], v["RssShmem:"], v["VmHWM:"]}' \
        "/proc/$PID/status"
}

log "$(nproc) CPUs (load $(cut -d' ' -f1-3 /proc/loadavg)); $WORKERS worker(s) on lcores $LCORES; $CAPTURE_PACKETS packets looped; capacity $CAPACITY; memory $MEMORY_MB MiB ($HUGE hugepages); $SECONDS_TO_RUN s; output in $OUT"
"$CTFW" run --config "$CONFIG" --file-prefix "soak-$$" --report-json "$REPORT" \
    --max-entries 0 --stats-interval 1 >"$LOG" 2>&1 &
PID=$!

# Forwarding has started when a progress line (one a second) counts a packet. (Not `ctfw
# stats`: until the data plane runs, a request waits for a snapshot nobody posts yet.)
started=
for _ in $(seq 3000); do
    kill -0 "$PID" 2>/dev/null || { tail -n 30 "$LOG" >&2; die "ctfw exited before forwarding (log: $LOG)"; }
    if grep -Eq '^\[ *[0-9.]+ s\] packets [1-9]' "$LOG"; then
        started=$(now)
        break
    fi
    nap 0.1
done
[ -n "$started" ] || die "nothing forwarded after 300 s (log: $LOG)"
log "forwarding; sampling every $INTERVAL s"

: >"$SAMPLES"
next=0
while :; do
    t=$(since "$started")
    if awk -v t="$t" -v n="$next" 'BEGIN {exit !(t >= n)}'; then
        kill -0 "$PID" 2>/dev/null || { tail -n 30 "$LOG" >&2; die "ctfw exited during the soak, at $t s (log: $LOG)"; }
        read -r vmrss anon file shmem hwm <<<"$(rss)"
        s=$(stats || true)
        printf '{"t": %s, "rss_kib": %s, "rss_anon_kib": %s, "rss_file_kib": %s, "rss_shmem_kib": %s, "hwm_kib": %s, "stats": %s}\n' \
            "$t" "$vmrss" "$anon" "$file" "$shmem" "$hwm" "${s:-null}" >>"$SAMPLES"
        next=$(awk -v n="$next" -v i="$INTERVAL" 'BEGIN {print n + i}')
        awk -v t="$t" -v d="$SECONDS_TO_RUN" 'BEGIN {exit !(t >= d)}' && break
    fi
    nap 0.1
done

log "SIGTERM after $(since "$started") s"
kill -TERM "$PID"
rc=0
for _ in $(seq 1200); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    PID=
    die "ctfw did not stop within 120 s of SIGTERM (log: $LOG)"
fi
wait "$PID" || rc=$?
PID=

# The verdict, as a script of its own: it can be run again on these files (or, with
# --samples/--report/--exit-code FILE, on others: the last occurrence of an option wins).
cat >"$OUT/check.sh" <<EOF
#!/usr/bin/env bash
# The verdict of the soak run in $OUT (written by ci/soak.sh).
exec python3 "$ROOT/ci/soak_check.py" --samples "$SAMPLES" --report "$REPORT" --exit-code $rc \\
    --accept-rules "$ACCEPT_RULES" --capture-packets $CAPTURE_PACKETS --max-timeout $MAX_TIMEOUT \\
    --warmup-share $WARMUP_SHARE --rss-slack-pct $RSS_SLACK_PCT --rss-slack-mib $RSS_SLACK_MIB \\
    --summary "$OUT/summary.json" "\$@"
EOF
chmod +x "$OUT/check.sh"
"$OUT/check.sh" || {
    echo "soak.sh: FAILED (ctfw's output: $LOG; samples: $SAMPLES; report: $REPORT)" >&2
    exit 1
}
log "soak passed: $OUT"
