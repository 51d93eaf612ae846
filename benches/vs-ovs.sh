#!/usr/bin/env bash
# ctfw against Open vSwitch's userspace connection tracker, on the same classic-pcap captures:
# `ctfw replay` against OVS's `ovstest test-conntrack pcap FILE 32`, whole process (capture
# read + tracking), CPU time (user + sys), alternating, several rounds. Method and recorded
# figures: benches/README.md ("vs-ovs").
#
# OVS is built here from Debian's `openvswitch-source` package (installed when missing); its
# tree is unpacked into target/bench-data/ovs/, never into the repository. Only tests/ovstest
# is built, twice: as shipped (`ovstest-printing`, which prints one line per packet) and with
# tests/test-conntrack.c patched by benches/vs-ovs.py patch-ovs (`ovstest`: the per-packet
# printf and its formatting replaced by one counter increment, one summary line at the end;
# the diff is printed). The quiet one is the reference; the printing one, stdout to
# /dev/null, is timed too unless --no-ovs-printing, to show what printing costs. Both are
# cached in target/bench-data/ovs/bin/ and rebuilt only when the source package or the patch
# changes.
#
# Usage: benches/vs-ovs.sh [options]
#   --ctfw LABEL=PATH   a ctfw binary to time (repeatable; all alternate with OVS in one
#                       sitting); default ctfw=target/release/ctfw (built unless --no-build)
#   --captures "C ..."  which captures (default "est-10k est-100k synflood"):
#                         est-10k   10,000 established flows, 1,030,000 packets
#                         est-100k  100,000 established flows, 1,300,000 packets
#                         synflood  1,000,000 SYNs from distinct spoofed sources
#   --rounds R          alternations per capture (default 5)
#   --timeout S         seconds allowed per run (default 300); a build step gets 3600
#   --no-ovs-printing   do not time the unpatched (printing) ovstest
#   --no-build          do not build ctfw and ctfw-tracegen (the release binaries must exist)
#   -h, --help
#
# Results (per run, medians and ratios) stay in target/bench-data/runs/vs-ovs-<date>/.
set -euo pipefail
shopt -s inherit_errexit

# shellcheck source=../ci/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../ci/common.sh"

CTFWS=()
CAPTURES="est-10k est-100k synflood"
ROUNDS=5
RUN_TIMEOUT=300
BUILD_TIMEOUT=3600
OVS_PRINTING=1
BUILD=1

die() {
    printf 'vs-ovs.sh: %s\n' "$*" >&2
    exit 1
}

usage() { sed -n '/^# Usage:/,/^#   -h, --help/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

is_uint() { [[ $1 =~ ^[0-9]+$ ]]; }

while [ $# -gt 0 ]; do
    case "$1" in
        --ctfw) CTFWS+=("${2:?--ctfw needs LABEL=PATH}"); shift 2 ;;
        --captures) CAPTURES=${2:?--captures needs a list}; shift 2 ;;
        --rounds) ROUNDS=${2:?--rounds needs a value}; shift 2 ;;
        --timeout) RUN_TIMEOUT=${2:?--timeout needs a value}; shift 2 ;;
        --no-ovs-printing) OVS_PRINTING=0; shift ;;
        --no-build) BUILD=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

{ is_uint "$ROUNDS" && [ "$ROUNDS" -ge 1 ]; } || die "--rounds: a whole number >= 1"
{ is_uint "$RUN_TIMEOUT" && [ "$RUN_TIMEOUT" -ge 10 ]; } || die "--timeout: a whole number >= 10"
[ -n "${CAPTURES// /}" ] || die "--captures: empty list"
for c in $CAPTURES; do
    case "$c" in est-10k | est-100k | synflood) ;; *) die "--captures: unknown capture $c" ;; esac
done
for spec in ${CTFWS[@]+"${CTFWS[@]}"}; do
    [[ $spec == ?*=?* ]] || die "--ctfw $spec: expected LABEL=PATH"
done

cd "$ROOT"
DATA=$ROOT/target/bench-data
OVS_DIR=$DATA/ovs
mkdir -p "$OVS_DIR"

# --- tools and ctfw -----------------------------------------------------------------------

# Bounded: a hung apt or cargo must not hold the benchmark forever.
timeout "$BUILD_TIMEOUT" bash -c '. ci/common.sh && ensure_packages openvswitch-source gcc make libc6-dev python3 time' ||
    die "could not install openvswitch-source and the C tool chain"
if [ "$BUILD" = 1 ]; then
    ensure_build_deps
    log "building ctfw and ctfw-tracegen (release)"
    timeout "$BUILD_TIMEOUT" cargo build --release -q -p ctfw -p ctfw-tracegen
fi
TRACEGEN=$ROOT/target/release/ctfw-tracegen
[ -x "$TRACEGEN" ] || die "$TRACEGEN missing: run without --no-build"
[ ${#CTFWS[@]} -gt 0 ] || CTFWS=("ctfw=$ROOT/target/release/ctfw")
for spec in "${CTFWS[@]}"; do
    [ -x "${spec#*=}" ] || die "--ctfw $spec: ${spec#*=} is not an executable file"
done

# --- Open vSwitch's tests/ovstest ---------------------------------------------------------

TARBALL=$(dpkg -L openvswitch-source | grep -E '/openvswitch\.tar\.(gz|xz|bz2)$' | head -n 1) ||
    die "openvswitch-source ships no openvswitch.tar.*: look at dpkg -L openvswitch-source"
OVS_PKG=$(dpkg-query -W -f='${Version}' openvswitch-source)
# --disable-ssl: conntrack needs no OpenSSL, and the build then needs no libssl-dev.
CONFIGURE_ARGS=(--disable-ssl)
SRC=$OVS_DIR/openvswitch
BIN=$OVS_DIR/bin
BUILD_LOG=$OVS_DIR/build.log
# The unpacked, configured tree is reused while the source package and configure arguments
# are the same; the binaries while the patch (vs-ovs.py) is the same too.
src_key="$(sha256sum "$TARBALL" | cut -d' ' -f1) ${CONFIGURE_ARGS[*]}"
bin_key="$src_key $(python3 benches/vs-ovs.py patch-key)"

# Run one build step in the OVS tree, bounded, output to the build log.
ovs_step() {
    printf '$ %s\n' "$*" >>"$BUILD_LOG"
    (cd "$SRC" && timeout "$BUILD_TIMEOUT" nice "$@") >>"$BUILD_LOG" 2>&1 ||
        die "OVS build step failed: $* (log: $BUILD_LOG)"
}

build_ovs() {
    : >"$BUILD_LOG"
    if [ "$(cat "$SRC/.vs-ovs-configured" 2>/dev/null)" != "$src_key" ]; then
        log "unpacking $TARBALL ($OVS_PKG) into $SRC and running ./configure ${CONFIGURE_ARGS[*]}"
        rm -rf "$SRC"
        tar -xf "$TARBALL" -C "$OVS_DIR"
        [ -x "$SRC/configure" ] || die "$TARBALL has no openvswitch/configure"
        ovs_step ./configure "${CONFIGURE_ARGS[@]}"
        echo "$src_key" >"$SRC/.vs-ovs-configured"
    fi
    log "building OVS's tests/ovstest with make -j2 (minutes the first time; log: $BUILD_LOG)"
    # The generated headers (include/odp-netlink.h, the IDLs) are automake BUILT_SOURCES,
    # which only `make all` makes first: name them as a target from a one-line makefile.
    # shellcheck disable=SC2016 # $(BUILT_SOURCES) is make's, not the shell's
    printf 'vs-ovs-built-sources: $(BUILT_SOURCES)\n' >"$OVS_DIR/built-sources.mk"
    ovs_step make -j2 -f Makefile -f "$OVS_DIR/built-sources.mk" vs-ovs-built-sources
    # As shipped (restored from the tarball with a fresh mtime, so make recompiles it).
    tar -xf "$TARBALL" -C "$OVS_DIR" --touch openvswitch/tests/test-conntrack.c
    ovs_step make -j2 tests/ovstest
    mkdir -p "$BIN"
    cp "$SRC/tests/ovstest" "$BIN/ovstest-printing"
    # Patched: counts instead of printing.
    python3 benches/vs-ovs.py patch-ovs "$SRC/tests/test-conntrack.c" >"$OVS_DIR/test-conntrack.diff"
    ovs_step make -j2 tests/ovstest
    cp "$SRC/tests/ovstest" "$BIN/ovstest"
    cp "$OVS_DIR/test-conntrack.diff" "$BIN/"
    awk -F"'" '/^PACKAGE_VERSION=/ {print $2; exit}' "$SRC/configure" >"$BIN/version"
    echo "$bin_key" >"$BIN/.vs-ovs-built"
}

if [ "$(cat "$BIN/.vs-ovs-built" 2>/dev/null)" != "$bin_key" ] || [ ! -x "$BIN/ovstest" ] ||
    [ ! -x "$BIN/ovstest-printing" ] || [ ! -s "$BIN/version" ] || [ ! -s "$BIN/test-conntrack.diff" ]; then
    build_ovs
else
    log "using the cached OVS build in $BIN ($OVS_PKG)"
fi
OVS_VERSION=$(cat "$BIN/version")
echo "OVS $OVS_VERSION (Debian openvswitch-source $OVS_PKG), tests/test-conntrack.c as patched for the reference ovstest:"
cat "$BIN/test-conntrack.diff"

# --- captures -----------------------------------------------------------------------------

# capture NAME FILE FLOWS TRACEGEN-ARGS...: make FILE once (classic pcap, from its name)
# and print NAME:KIND:PACKETS:FLOWS:FILE for vs-ovs.py (KIND: tracegen's subcommand).
# tracegen's own summary line, kept beside the file, gives the packet count.
capture() {
    local name=$1 f=$2 flows=$3 kind=$4 out packets
    shift 3
    if [ ! -s "$f" ] || [ ! -s "$f.ok" ]; then
        log "generating $f"
        out=$(timeout "$BUILD_TIMEOUT" "$TRACEGEN" "$@" --out "$f.tmp" 2>&1) ||
            die "ctfw-tracegen failed: $out"
        mv "$f.tmp" "$f"
        echo "$out" >"$f.ok"
    fi
    packets=$(sed -n 's/^wrote \([0-9]*\) packets .*/\1/p' "$f.ok")
    is_uint "$packets" || die "no packet count in $f.ok"
    echo "$name:$kind:$packets:$flows:$f"
}

CAP_ARGS=()
for c in $CAPTURES; do
    case "$c" in
        est-10k) spec=$(capture est-10k "$DATA/vs-ovs-established-10000.pcap" 10000 \
            established --flows 10000 --packets 1000000) ;;
        est-100k) spec=$(capture est-100k "$DATA/vs-ovs-established-100000.pcap" 100000 \
            established --flows 100000 --packets 1000000) ;;
        synflood) spec=$(capture synflood "$DATA/vs-ovs-synflood-1000000.pcap" 1000000 \
            synflood --count 1000000) ;;
    esac
    CAP_ARGS+=(--capture "$spec")
done

# --- measure ------------------------------------------------------------------------------

RUN_DIR=$DATA/runs/vs-ovs-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RUN_DIR"
cp "$BIN/test-conntrack.diff" "$RUN_DIR/"
MEASURE=(python3 benches/vs-ovs.py measure "${CAP_ARGS[@]}" --ovs "$BIN/ovstest"
    --ovs-version "$OVS_VERSION (Debian $OVS_PKG)"
    --config config/conformance/classic-loose1-liberal0.yaml --rounds "$ROUNDS"
    --timeout "$RUN_TIMEOUT" --out "$RUN_DIR")
[ "$OVS_PRINTING" = 0 ] || MEASURE+=(--ovs-printing "$BIN/ovstest-printing")
for spec in "${CTFWS[@]}"; do MEASURE+=(--ctfw "$spec"); done
log "load now: $(cut -d' ' -f1-3 /proc/loadavg); results in $RUN_DIR"
"${MEASURE[@]}" 2>&1 | tee "$RUN_DIR/output.txt"
