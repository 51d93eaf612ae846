#!/usr/bin/env python3
"""The kernel oracle: replays pcapng traces through the Linux router set up by kernel_check.sh.

Started by kernel_check.sh (root) in the initial namespace, with the names of the two
namespaces it made: HOST holds `c-r` (the inside link) and `s-r` (the outside link), ROUTER
holds their peers `r-c` and `r-s` and the nftables ruleset. The script opens its packet
sockets in HOST, then moves itself into ROUTER, so every `nft` and `conntrack` it runs reads
the router's state without an `ip netns exec` per call.

Records mode (--out DIR): for each trace, flush conntrack, then send each packet at its trace
time (or as soon as the previous measurement is done, if that is later) out of `c-r`
(pcapng interface 0, `inside`) or `s-r` (interface 1, `outside`), and after each packet run
one `nft -j list counters` and one `conntrack -L -o extended`. The counter deltas give
`reached_netfilter` (pre_seen), `ct_state` (st_*), `ct_dir` (dir_*), `rule` (r_*) and
`forwarded` (fwd_passed); the listing gives `ct_entries`. One JSON line per packet goes to
DIR/<trace>.jsonl in the conformance record format (shared/conformance/README.md), plus
information fields: `wall_t` (when it was really sent, seconds after the trace's first
packet), `summary`, `note` (from a manifest.json beside the trace), `seen_out` (a copy of
the packet left the router on the other link) and `extra_frames` (anything else the router
sent at that moment: its own ICMP errors, ARP or ND; a harness artefact, never ctfw's
business). DIR/run_info.json (or --info) records the kernel, tools, sysctls and per-trace
timing.

Summary mode (--summary): sends every packet of each capture back to back and prints the
conntrack table by protocol/state/flags and the rule counters (a quick look at big captures).

A packet that never reaches netfilter (a bad IPv4 header, say) is re-checked after 50 ms
and 250 ms before it is recorded as such, so a slow softirq cannot pass for a drop.
"""
import argparse
import ctypes
import json
import os
import platform
import select
import socket
import struct
import subprocess
import sys
import time

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
LINKS = ("c-r", "s-r")  # host ends of the inside and outside links, by pcapng interface id

ST = {"st_new": "new", "st_established": "established", "st_related": "related",
      "st_invalid": "invalid", "st_untracked": "untracked"}
DIRS = {"dir_original": "original", "dir_reply": "reply"}
KEEP_FLAGS = ("UNREPLIED", "ASSURED")


def setns(name):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, "setns(%s): %s" % (name, os.strerror(err)))
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------- pcapng

def read_pcapng(path):
    """Yields (interface id, timestamp in ns, frame) from a little-endian pcapng file."""
    data = open(path, "rb").read()
    at = 0
    resol = []  # per interface: ns per tick
    while at + 12 <= len(data):
        ty, ln = struct.unpack_from("<II", data, at)
        if ln < 12 or at + ln > len(data):
            raise ValueError("%s: bad block at %d" % (path, at))
        body = data[at + 8: at + ln - 4]
        if ty == 0x0A0D0D0A:
            resol = []
        elif ty == 1:
            ns = 1000  # default: microseconds
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack_from("<HH", body, o)
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    v = body[o + 4]
                    ns = (2 ** -(v & 0x7F) if v & 0x80 else 10 ** -v) * 1e9
                o += 4 + (olen + 3) // 4 * 4
            resol.append(ns)
        elif ty == 6:
            iface, hi, lo, cap, _orig = struct.unpack_from("<IIIII", body, 0)
            ts = ((hi << 32) | lo) * resol[iface]
            yield iface, int(round(ts)), body[20: 20 + cap]
        at += ln


# ----------------------------------------------------------------------------- decoding

def _ip(b):
    return socket.inet_ntop(socket.AF_INET if len(b) == 4 else socket.AF_INET6, b)


def l3(frame):
    """(family, src, dst, proto, l4 bytes, note) of an untagged frame, or None."""
    if len(frame) < 14:
        return None
    et = struct.unpack_from("!H", frame, 12)[0]
    p = frame[14:]
    if et == 0x0800 and len(p) >= 20:
        ihl = (p[0] & 0xF) * 4
        total = struct.unpack_from("!H", p, 2)[0]
        bad = None
        if ihl < 20:
            bad = "bad IHL %d" % (p[0] & 0xF)
        elif ihl > len(p) or total > len(p):
            bad = "bad IHL %d / length %d" % (p[0] & 0xF, total)
        return "IPv4", _ip(p[12:16]), _ip(p[16:20]), p[9], p[ihl:total] if not bad else b"", bad
    if et == 0x86DD and len(p) >= 40:
        nh, at = p[6], 40
        while nh in (0, 43, 60, 44) and at + 8 <= len(p):
            nxt, hl = p[at], (p[at + 1] + 1) * 8
            if nh == 44:
                hl = 8
            nh, at = nxt, at + hl
        return "IPv6", _ip(p[8:24]), _ip(p[24:40]), nh, p[at:], None
    return None


def summary(frame):
    d = l3(frame)
    if d is None:
        return "non-IP frame (ethertype 0x%s)" % frame[12:14].hex()
    fam, src, dst, proto, l4, bad = d
    if bad:
        return "%s %s > %s %s" % (fam, src, dst, bad)
    if proto == 6 and len(l4) >= 20:
        sp, dp, seq, ack, off, fl, win = struct.unpack_from("!HHIIBBH", l4, 0)
        names = "".join(c for c, bit in zip("FSRPAUEC", range(8)) if fl >> bit & 1)
        return "%s TCP %s:%d > %s:%d [%s] seq=%d ack=%d win=%d len=%d" % (
            fam, src, sp, dst, dp, names, seq, ack, win, max(0, len(l4) - (off >> 4) * 4))
    if proto == 6:
        return "%s TCP %s > %s truncated header (%d bytes)" % (fam, src, dst, len(l4))
    if proto == 17 and len(l4) >= 8:
        sp, dp, ln = struct.unpack_from("!HHH", l4, 0)
        return "%s UDP %s:%d > %s:%d len=%d" % (fam, src, sp, dst, dp, ln)
    if proto in (1, 58) and len(l4) >= 8:
        ty, code = l4[0], l4[1]
        s = "%s %s %s > %s type=%d code=%d" % (fam, "ICMP" if proto == 1 else "ICMPv6", src, dst,
                                              ty, code)
        if ty in (0, 8, 13, 14, 128, 129):
            s += " id=%d seq=%d" % struct.unpack_from("!HH", l4, 4)
        return s
    return "%s proto %d %s > %s" % (fam, proto, src, dst)


# ----------------------------------------------------------------------------- kernel state

def counters():
    out = subprocess.run(["nft", "-j", "list", "counters", "table", "inet", "orc"],
                         capture_output=True, text=True, check=True).stdout
    res = {}
    for item in json.loads(out)["nftables"]:
        c = item.get("counter")
        if c:
            res[c["name"]] = c["packets"]
    return res


def parse_entry(line):
    """One line of `conntrack -L -o extended` as a conformance ct_entries item."""
    tok = line.split()
    if len(tok) < 6:
        return None
    l3name, proto, timeout = tok[0], tok[2], int(tok[4])
    i = 5
    state = None
    if "=" not in tok[5] and not tok[5].startswith("["):
        state, i = tok[5], 6
    orig, reply, flags, mark = {}, {}, [], 0
    cur = orig
    for t in tok[i:]:
        if t.startswith("["):
            flags.append(t.strip("[]"))
            continue
        k, _, v = t.partition("=")
        if k == "src" and "src" in orig:
            cur = reply
        if k in ("src", "dst", "sport", "dport", "type", "code", "id"):
            cur[k] = v
        elif k == "mark":
            mark = int(v)

    def tup(d):
        t = {"src": d.get("src"), "dst": d.get("dst"),
             "sport": int(d["sport"]) if "sport" in d else None,
             "dport": int(d["dport"]) if "dport" in d else None}
        if "type" in d:
            t["icmp"] = {"type": int(d["type"]), "code": int(d["code"]), "id": int(d["id"])}
        return t

    o, r = tup(orig), tup(reply)
    e = {"l3": l3name, "proto": proto, "state": state, "timeout": timeout,
         "src": o["src"], "dst": o["dst"], "sport": o["sport"], "dport": o["dport"]}
    if "icmp" in o:
        e["icmp"] = o["icmp"]
    e["flags"] = [f for f in flags if f in KEEP_FLAGS]
    other = [f for f in flags if f not in KEEP_FLAGS]
    if other:
        e["other_flags"] = other
    e["reply"] = r
    e["mark"] = mark
    return e


def entries():
    out = subprocess.run(["conntrack", "-L", "-o", "extended"], capture_output=True,
                         text=True, check=True).stdout
    es = [e for e in (parse_entry(l) for l in out.splitlines() if l.strip()) if e]
    es.sort(key=lambda e: (e["l3"], e["proto"], e["src"], e["dst"], e["sport"] or 0,
                           e["dport"] or 0, json.dumps(e.get("icmp"), sort_keys=True)))
    return es


def flush_conntrack():
    subprocess.run(["conntrack", "-F"], capture_output=True, check=True)
    if entries():
        subprocess.run(["conntrack", "-F", "-f", "ipv6"], capture_output=True, check=True)
    left = entries()
    if left:
        raise RuntimeError("conntrack -F left %d entries" % len(left))


def delta(now, before):
    return {k: now.get(k, 0) - before.get(k, 0) for k in now}


def first(d, names):
    hit = [names[k] for k in names if d.get(k, 0) > 0]
    return hit[0] if len(hit) == 1 else (None if not hit else "+".join(hit))


# ----------------------------------------------------------------------------- replay

class Links:
    """Packet sockets on the host ends of the two links: one to send, one to watch."""

    def __init__(self):
        self.tx, self.rx = [], []
        for name in LINKS:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            s.bind((name, 0))
            self.tx.append(s)
            r = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            r.bind((name, 0))
            r.setblocking(False)
            self.rx.append(r)

    def drain(self):
        """Frames the router sent to the hosts since the last call: [(interface id, frame)]."""
        got = []
        while True:
            ready, _, _ = select.select(self.rx, [], [], 0)
            if not ready:
                return got
            for r in ready:
                try:
                    frame, addr = r.recvfrom(65535)
                except BlockingIOError:
                    continue
                if addr[2] != PACKET_OUTGOING:
                    got.append((self.rx.index(r), frame))


def load_manifest(trace_path):
    mf = os.path.join(os.path.dirname(trace_path), "manifest.json")
    try:
        with open(mf) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}


def replay_records(trace, out_dir, links, manifest):
    name = os.path.basename(trace)[:-len(".pcapng")]
    notes = {p["index"]: p.get("note") for p in manifest.get(name, {}).get("packets", [])}
    packets = list(read_pcapng(trace))
    flush_conntrack()
    links.drain()
    base = counters()
    records = []
    t0 = time.monotonic()
    ts0 = packets[0][1] if packets else 0
    max_drift = 0.0
    for i, (iface, ts, frame) in enumerate(packets):
        t = (ts - ts0) / 1e9
        wait = t0 + t - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        wall = time.monotonic() - t0
        links.tx[iface].send(frame)
        c = counters()
        d = delta(c, base)
        for pause in (0.05, 0.25):
            consistent = d.get("pre_seen", 0) == 0 or first(d, ST) is not None
            if d.get("pre_seen", 0) > 0 and consistent:
                break
            time.sleep(pause)
            c = counters()
            d = delta(c, base)
        ents = entries()
        egress = links.drain()
        base = c
        fam = l3(frame)
        seen_out, extra = False, []
        for side, f in egress:
            g = l3(f)
            if side != iface and fam and g and g[1:3] == fam[1:3] and g[3] == fam[3]:
                seen_out = True
            else:
                extra.append("%s: %s" % (LINKS[side], summary(f)))
        rule = first(d, {k: k[2:] for k in d if k.startswith("r_")})
        rec = {
            "index": i,
            "direction": "c2s" if iface == 0 else "s2c",
            "t": round(t, 6),
            "wall_t": round(wall, 6),
            "summary": summary(frame),
        }
        if notes.get(i):
            rec["note"] = notes[i]
        rec.update({
            "forwarded": d.get("fwd_passed", 0) > 0,
            "reached_netfilter": d.get("pre_seen", 0) > 0,
            "ct_state": first(d, ST),
            "ct_dir": first(d, DIRS),
            "rule": rule,
            "ct_entries": ents,
            "seen_out": seen_out,
        })
        if extra:
            rec["extra_frames"] = extra
        if rec["forwarded"] != seen_out:
            rec["inconsistent"] = "forward counter says %s, link says %s" % (rec["forwarded"],
                                                                            seen_out)
        max_drift = max(max_drift, wall - t)
        records.append(rec)
    with open(os.path.join(out_dir, name + ".jsonl"), "w") as fh:
        for r in records:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    return {"packets": len(packets), "seconds": round(time.monotonic() - t0, 3),
            "max_drift": round(max_drift, 3),
            "inconsistent": sum(1 for r in records if "inconsistent" in r),
            "extra_frames": sum(len(r.get("extra_frames", [])) for r in records)}


def sysctls():
    res = {}
    base = "/proc/sys/net/netfilter"
    for n in sorted(os.listdir(base)):
        if n.startswith("nf_conntrack_"):
            try:
                with open(os.path.join(base, n)) as fh:
                    v = fh.read().strip()
                res[n] = int(v) if v.lstrip("-").isdigit() else v
            except OSError:
                pass
    return res


def tool_version(cmd):
    p = subprocess.run(cmd, capture_output=True, text=True)
    return (p.stdout or p.stderr).strip().splitlines()[0] if (p.stdout or p.stderr) else None


def replay_summary(traces, links):
    for trace in traces:
        n = 0
        for iface, _ts, frame in read_pcapng(trace):
            links.tx[iface].send(frame)
            n += 1
        print("%s: sent %d packets" % (trace, n))
    time.sleep(0.5)
    tally = {}
    for e in entries():
        k = (e["proto"], e["state"] or "-", " ".join(e["flags"]))
        tally[k] = tally.get(k, 0) + 1
    print("conntrack entries by protocol/state/flags:")
    for k in sorted(tally):
        print("  %7d %s" % (tally[k], " ".join(k)))
    for name, packets in counters().items():
        print("  counter %-18s %d" % (name, packets))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host-ns", required=True)
    ap.add_argument("--router-ns", required=True)
    ap.add_argument("--config", required=True, help="config name, for run_info.json")
    ap.add_argument("--ruleset", required=True, help="ruleset file, for run_info.json")
    ap.add_argument("--out", help="records mode: write DIR/<trace>.jsonl")
    ap.add_argument("--summary", action="store_true", help="summary mode")
    ap.add_argument("--info", help="records mode: where run_info.json goes (default DIR/run_info.json)")
    ap.add_argument("--deadline", type=float, default=0,
                    help="records mode: start no trace after this Unix time")
    ap.add_argument("traces", nargs="+")
    args = ap.parse_args()

    setns(args.host_ns)
    links = Links()
    setns(args.router_ns)
    if args.summary or not args.out:
        replay_summary(args.traces, links)
        return
    os.makedirs(args.out, exist_ok=True)
    # The router's own MLD reports after link-up (two within a second) are not part of any
    # trace: let them pass before the first one.
    time.sleep(2)
    links.drain()
    manifests = {}
    info = {
        "config": args.config,
        "ruleset_file": args.ruleset,
        "kernel": platform.release(),
        "nft": tool_version(["nft", "--version"]),
        "conntrack": tool_version(["conntrack", "--version"]),
        "sysctls_in_effect": sysctls(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "traces": {},
        "skipped": [],
    }
    started = time.monotonic()
    for n, trace in enumerate(args.traces):
        if args.deadline and time.time() > args.deadline:
            info["skipped"] = [os.path.basename(t) for t in args.traces[n:]]
            print("deadline reached: %d traces not run" % len(info["skipped"]), file=sys.stderr)
            break
        d = os.path.dirname(os.path.abspath(trace))
        if d not in manifests:
            manifests[d] = load_manifest(trace)
        name = os.path.basename(trace)[:-len(".pcapng")]
        info["traces"][name] = replay_records(trace, args.out, links, manifests[d])
    info["seconds"] = round(time.monotonic() - started, 1)
    info["packets"] = sum(t["packets"] for t in info["traces"].values())
    with open(args.info or os.path.join(args.out, "run_info.json"), "w") as fh:
        json.dump(info, fh, indent=1, sort_keys=True)
        fh.write("\n")
    print("%d traces, %d packets in %.0f s -> %s" % (len(info["traces"]), info["packets"],
                                                   info["seconds"], args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
