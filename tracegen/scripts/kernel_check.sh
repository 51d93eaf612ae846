#!/usr/bin/env bash
# kernel_check.sh: the Linux kernel as an oracle for ctfw's connection tracking.
#
# Builds a router out of two network namespaces of its own (deleted on exit, whatever
# happens), loads a conformance ruleset and conntrack sysctls into it, and replays pcapng
# traces through it with kernel_replay.py:
#
#   ROUTER ns (kc<tag>r)                       HOST ns (kc<tag>h)
#     r-c 02:00:00:00:01:01 10.0.1.1 fd01::1 <-veth-> c-r  pcapng interface 0 "inside"
#     r-s 02:00:00:00:02:01 10.0.2.1 fd02::1 <-veth-> s-r  pcapng interface 1 "outside"
#
# The router forwards between inside (10.0.1.0/24, 10.1.0.0/16, 10.128.0.0/9, fd00:1::/64,
# fd01::/64) and outside (everything else) with permanent neighbour entries for the MACs of
# the conformance traces, so it never sends ARP or ND. HOST has no addresses and no IPv6, so it
# answers nothing: packets injected on c-r / s-r are the only traffic, and they never leave
# the two namespaces.
#
# Records mode (--out DIR): one JSONL file per trace in the conformance record format (see
# shared/conformance/README.md and kernel_replay.py), conntrack flushed before each trace,
# each packet sent at its trace time, one `nft` and one `conntrack` call after each packet.
# Summary mode (no --out): captures sent back to back, then the table summary and counters.
#
# Usage: kernel_check.sh [--config NAME] [--out DIR] [--info FILE] [--tag TAG]
#                        [--deadline UNIX_TIME] TRACE.pcapng|DIR...
#   --config NAME  <ruleset>-loose<0|1>-liberal<0|1>, ruleset classic or classic_synchk
#                  (default classic-loose1-liberal0; the configs of config/conformance/)
#   --out DIR      records mode, into DIR (created)
#   --info FILE    where run_info.json goes (default DIR/run_info.json)
#   --tag TAG      namespace name tag (default: this shell's PID), for parallel instances
#   --deadline T   start no trace after Unix time T
# A DIR argument means every *.pcapng in it. Rulesets come from the conformance set that
# conformance_dir.sh finds (the vendored tests/linux-conformance, or $CTFW_CONFORMANCE_DIR).
# Needs root, iproute2, nftables, conntrack-tools and python3. Not for CI: it changes kernel
# state (namespaces) and its timing depends on the machine.
set -euo pipefail

here=$(dirname "$(realpath "$0")")
config=classic-loose1-liberal0
out=""
info=""
tag=$$
deadline=0
traces=()
while [ $# -gt 0 ]; do
  case $1 in
    --config) config=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --info) info=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    --deadline) deadline=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    -*) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
    *)
      if [ -d "$1" ]; then
        while IFS= read -r f; do traces+=("$f"); done < <(find "$1" -maxdepth 1 -name '*.pcapng' | sort)
      else
        traces+=("$(realpath "$1")")
      fi
      shift ;;
  esac
done
[ ${#traces[@]} -gt 0 ] || { echo "no traces given (see --help)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "kernel_check.sh needs root (network namespaces)" >&2; exit 2; }

if [[ $config =~ ^(classic|classic_synchk)-loose([01])-liberal([01])$ ]]; then
  ruleset=${BASH_REMATCH[1]}; loose=${BASH_REMATCH[2]}; liberal=${BASH_REMATCH[3]}
else
  echo "bad --config $config: expected <classic|classic_synchk>-loose<0|1>-liberal<0|1>" >&2
  exit 2
fi

conf=$("$here/conformance_dir.sh")
nft_file=$conf/$ruleset.nft
[ -f "$nft_file" ] || { echo "no ruleset $nft_file" >&2; exit 2; }

rns=kc${tag}r
hns=kc${tag}h
R=(ip netns exec "$rns")
H=(ip netns exec "$hns")
child=""
cleanup() {
  [ -n "$child" ] && kill "$child" 2>/dev/null
  ip netns del "$rns" 2>/dev/null || true
  ip netns del "$hns" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cleanup
ip netns add "$rns"
ip netns add "$hns"
# The host side must stay silent: no IPv6 (no link-local, DAD, RS or MLD), no addresses.
"${H[@]}" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip link add r-c netns "$rns" type veth peer name c-r netns "$hns"
ip link add r-s netns "$rns" type veth peer name s-r netns "$hns"
"${R[@]}" ip link set lo up
for l in r-c r-s; do
  # No link-local address on the router either: it has nothing to announce.
  "${R[@]}" ip link set "$l" addrgenmode none mtu 9000
done
"${R[@]}" ip link set r-c address 02:00:00:00:01:01 up
"${R[@]}" ip link set r-s address 02:00:00:00:02:01 up
"${H[@]}" ip link set c-r mtu 9000 up
"${H[@]}" ip link set s-r mtu 9000 up
"${R[@]}" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
  net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
  net.ipv4.conf.r-c.rp_filter=0 net.ipv4.conf.r-s.rp_filter=0 \
  net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.r-c.send_redirects=0 \
  net.ipv4.conf.r-s.send_redirects=0
"${R[@]}" ip addr add 10.0.1.1/24 dev r-c
"${R[@]}" ip addr add 10.0.2.1/24 dev r-s
"${R[@]}" ip -6 addr add fd01::1/64 dev r-c nodad
"${R[@]}" ip -6 addr add fd02::1/64 dev r-s nodad
for h in $(seq 2 30); do
  "${R[@]}" ip neigh replace "10.0.1.$h" lladdr 02:00:00:00:01:02 dev r-c nud permanent
done
"${R[@]}" ip neigh replace 10.0.2.2 lladdr 02:00:00:00:02:02 dev r-s nud permanent
"${R[@]}" ip -6 neigh replace fd01::2 lladdr 02:00:00:00:01:02 dev r-c nud permanent
"${R[@]}" ip -6 neigh replace fd02::2 lladdr 02:00:00:00:02:02 dev r-s nud permanent
"${R[@]}" ip route add 10.1.0.0/16 via 10.0.1.2 dev r-c
"${R[@]}" ip route add 10.128.0.0/9 via 10.0.1.2 dev r-c
"${R[@]}" ip route add default via 10.0.2.2 dev r-s
"${R[@]}" ip -6 route add fd00:1::/64 via fd01::2 dev r-c
"${R[@]}" ip -6 route add default via fd02::2 dev r-s
# The ruleset loads nf_conntrack, whose sysctls exist only from then on.
"${R[@]}" nft -f "$nft_file"
"${R[@]}" sysctl -qw "net.netfilter.nf_conntrack_tcp_loose=$loose" \
  "net.netfilter.nf_conntrack_tcp_be_liberal=$liberal"

args=(--host-ns "$hns" --router-ns "$rns" --config "$config" --ruleset "$nft_file")
if [ -n "$out" ]; then
  mkdir -p "$out"
  args+=(--out "$(realpath "$out")" --deadline "$deadline")
  [ -n "$info" ] && args+=(--info "$info")
else
  args+=(--summary)
fi
# In the background, so that a signal reaches the trap at once (bash runs traps only between
# foreground commands), and the trap stops the replayer before the namespaces go.
python3 "$here/kernel_replay.py" "${args[@]}" "${traces[@]}" &
child=$!
wait "$child"
child=""
