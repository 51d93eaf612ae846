#!/usr/bin/env python3
"""Cuts a trace down to the packets that matter, for a minimal reproduction of a difference.

  reduce.py TRACE.pcapng --keep 0,3-5,9 --out DIR [--name NAME] [--description TEXT]

Writes DIR/NAME.pcapng (default NAME: the trace's, with "-min") holding only the kept
packets, with their original timestamps and interfaces (inside/outside, nanosecond
resolution, as ctfw-tracegen writes them), and adds NAME to DIR/manifest.json with the kept
packets' notes from the trace's own manifest.json, renumbered. Check the result with
`differential.sh --traces DIR --config C`: the difference must still be there.
"""
import argparse
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
from kernel_replay import read_pcapng  # noqa: E402  (one pcapng reader for all scripts)


def block(ty, body):
    body += b"\0" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", ty, n) + body + struct.pack("<I", n)


def option(code, value):
    return struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def write_pcapng(path, packets):
    out = [block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + b"\0" * 4)]
    for name in (b"inside", b"outside"):
        out.append(block(1, struct.pack("<HHI", 1, 0, 0) + option(2, name) + option(9, b"\x09")
                         + b"\0" * 4))
    for iface, ts, frame in packets:
        out.append(block(6, struct.pack("<IIIII", iface, ts >> 32, ts & 0xFFFFFFFF, len(frame),
                                        len(frame)) + frame))
    with open(path, "wb") as fh:
        fh.write(b"".join(out))


def parse_keep(spec):
    keep = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        keep.extend(range(int(a), int(b or a) + 1))
    return keep


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace")
    ap.add_argument("--keep", required=True, help="packet indices, e.g. 0-2,5,7")
    ap.add_argument("--out", required=True)
    ap.add_argument("--name")
    ap.add_argument("--description")
    args = ap.parse_args()
    src = os.path.basename(args.trace)[:-len(".pcapng")]
    name = args.name or src + "-min"
    packets = list(read_pcapng(args.trace))
    keep = parse_keep(args.keep)
    os.makedirs(args.out, exist_ok=True)
    write_pcapng(os.path.join(args.out, name + ".pcapng"), [packets[i] for i in keep])

    try:
        with open(os.path.join(os.path.dirname(args.trace), "manifest.json")) as fh:
            entry = json.load(fh).get(src, {})
    except (OSError, ValueError):
        entry = {}
    notes = {p["index"]: p for p in entry.get("packets", [])}
    t0 = packets[keep[0]][1]
    mpath = os.path.join(args.out, "manifest.json")
    try:
        with open(mpath) as fh:
            manifest = json.load(fh)
    except (OSError, ValueError):
        manifest = {}
    manifest[name] = {
        "description": args.description or "%s, packets %s" % (src, args.keep),
        "source": {"trace": src, "packets": keep},
        "packets": [{"index": k, "direction": "c2s" if packets[i][0] == 0 else "s2c",
                     "t": round((packets[i][1] - t0) / 1e9, 6),
                     "note": notes.get(i, {}).get("note", "")} for k, i in enumerate(keep)],
    }
    with open(mpath, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print("%s: %d of %d packets" % (os.path.join(args.out, name + ".pcapng"), len(keep),
                                    len(packets)))


if __name__ == "__main__":
    main()
