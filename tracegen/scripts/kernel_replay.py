#!/usr/bin/env python3
"""Replays a two-interface pcapng (inside/outside) through a Linux router namespace.

Run by kernel_check.sh inside the host namespace: interface 0 frames go out of `c-r`
(arriving on the router's `r-c`, the inside), interface 1 frames out of `s-r` (arriving on
`r-s`, the outside). With --per-packet, reads the router's nft `st_invalid` counter after
each packet and prints the indices of packets conntrack found INVALID.
"""
import socket
import struct
import subprocess
import sys
import time


def packets(path):
    data = open(path, "rb").read()
    at = 0
    while at + 8 <= len(data):
        ty, ln = struct.unpack_from("<II", data, at)
        if ty == 6:
            iface, _hi, _lo, cap, _orig = struct.unpack_from("<IIIII", data, at + 8)
            yield iface, data[at + 28 : at + 28 + cap]
        at += ln


def invalid_count(router_ns):
    out = subprocess.run(
        ["ip", "netns", "exec", router_ns, "nft", "list", "counter", "inet", "orc", "st_invalid"],
        capture_output=True, text=True, check=True).stdout
    return int(out.split("packets")[1].split()[0])


def main():
    path, router_ns = sys.argv[1], sys.argv[2]
    per_packet = "--per-packet" in sys.argv
    socks = []
    for name in ("c-r", "s-r"):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
        s.bind((name, 0))
        socks.append(s)
    n = 0
    last = invalid_count(router_ns) if per_packet else 0
    invalid = []
    for iface, frame in packets(path):
        socks[iface].send(frame)
        n += 1
        if per_packet:
            time.sleep(0.001)
            now = invalid_count(router_ns)
            if now != last:
                invalid.append(n - 1)
                last = now
    print(f"sent {n} packets")
    if per_packet:
        print("invalid packet indices:", " ".join(map(str, invalid)))


main()
