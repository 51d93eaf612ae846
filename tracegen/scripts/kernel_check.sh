#!/usr/bin/env bash
# Replays a capture written by ctfw-tracegen (pcapng, interfaces inside/outside) through a
# real Linux router with the conformance "classic" ruleset, then prints the conntrack table
# summary and the ruleset counters. Evidence that generated traffic is what a Linux-exact
# tracker expects (e.g. every `established` flow ESTABLISHED and ASSURED, no INVALID).
#
# Needs root, iproute2, nftables, conntrack-tools and python3; everything happens in two
# network namespaces of its own (tgr: the router, tgh: the hosts), deleted at the end.
# Usage: kernel_check.sh CAPTURE.pcapng [--per-packet]
set -euo pipefail
cap=$(realpath "$1"); shift
here=$(dirname "$(realpath "$0")")
conf=${CTFW_CONFORMANCE:-}
d=$here
while [ -z "$conf" ] && [ "$d" != / ]; do
  [ -f "$d/shared/conformance/classic.nft" ] && conf=$d/shared/conformance
  d=$(dirname "$d")
done
[ -n "$conf" ] || { echo "shared/conformance not found; set CTFW_CONFORMANCE" >&2; exit 2; }
nft_file=$conf/classic.nft
R="ip netns exec tgr"; H="ip netns exec tgh"
cleanup() { ip netns del tgr 2>/dev/null || true; ip netns del tgh 2>/dev/null || true; }
trap cleanup EXIT
cleanup
ip netns add tgr; ip netns add tgh
ip link add r-c netns tgr type veth peer name c-r netns tgh
ip link add r-s netns tgr type veth peer name s-r netns tgh
$R ip link set lo up
$R ip link set r-c address 02:00:00:00:01:01 up
$R ip link set r-s address 02:00:00:00:02:01 up
$H ip link set c-r mtu 9000 up; $H ip link set s-r mtu 9000 up
$R ip link set r-c mtu 9000; $R ip link set r-s mtu 9000
for k in net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.rp_filter=0 \
         net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.r-c.rp_filter=0 net.ipv4.conf.r-s.rp_filter=0; do
  $R sysctl -qw "$k"
done
$R ip addr add 10.0.1.1/24 dev r-c; $R ip addr add 10.0.2.1/24 dev r-s
$R ip -6 addr add fd01::1/64 dev r-c nodad; $R ip -6 addr add fd02::1/64 dev r-s nodad
$R ip neigh replace 10.0.1.2 lladdr 02:00:00:00:01:02 dev r-c nud permanent
$R ip neigh replace 10.0.2.2 lladdr 02:00:00:00:02:02 dev r-s nud permanent
$R ip -6 neigh replace fd01::2 lladdr 02:00:00:00:01:02 dev r-c nud permanent
$R ip -6 neigh replace fd02::2 lladdr 02:00:00:00:02:02 dev r-s nud permanent
$R ip route add 10.1.0.0/16 via 10.0.1.2 dev r-c
$R ip route add 10.128.0.0/9 via 10.0.1.2 dev r-c
$R ip route add default via 10.0.2.2 dev r-s
$R ip -6 route add fd00:1::/64 via fd01::2 dev r-c
$R ip -6 route add default via fd02::2 dev r-s
$R nft -f "$nft_file"
$R sysctl net.netfilter.nf_conntrack_tcp_loose net.netfilter.nf_conntrack_tcp_be_liberal
$H python3 "$here/kernel_replay.py" "$cap" tgr "$@"
sleep 1
echo "conntrack entries by protocol/state/flags:"
$R conntrack -L 2>/dev/null | awk '{p=$1; s=($1=="tcp")?$4:"-"; f=""; if ($0 ~ /UNREPLIED/) f=f"UNREPLIED "; if ($0 ~ /ASSURED/) f=f"ASSURED"; print p, s, f}' | sort | uniq -c
$R nft list counters table inet orc | awk '/counter /{n=$2} /packets/{print "  " n, $2}'
