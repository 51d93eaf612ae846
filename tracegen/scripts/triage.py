#!/usr/bin/env python3
"""Groups the traces where ctfw and the kernel disagree by what the first difference is.

  triage.py KERNEL_DIR CTFW_DIR [--recheck KERNEL_DIR2] [--compare compare.py]
            [--timeout-tolerance S] [--json FILE] [--list FILE]

The verdict per trace is the conformance set's own compare.py (imported, so there is one
definition of "agree"). For each differing trace this takes the first packet compare.py
reports and describes it: the packet's note (from the kernel record, which copies the
generator's manifest) with numbers and the conversation tag removed, and per side
forwarded / ct_state / the state and flags of the entry the packet belongs to. Traces with
the same description are one group; the output lists groups, largest first, with the
shortest trace of each as the example to reduce. A cascade of later differences in a trace
is not counted: fixing the first one usually removes them.

--recheck names a second kernel run of (some of) the differing traces: a trace whose two
kernel runs disagree is a replay artefact (timing: a slow machine can push a packet over a
time-dependent rule such as UDP's 2 s stream rule), and is counted apart. Each example also
shows the first run's largest drift (wall_t - t). --list writes the differing traces' names,
one a line (what to recheck).
"""
import argparse
import importlib.util
import json
import os
import re
import sys


def load(path):
    with open(path) as fh:
        return [json.loads(l) for l in fh if l.strip()]


def entry_of(rec, entries):
    """The entry of this packet's tuple (either direction) in `entries`, as 'STATE [FLAGS]'."""
    m = re.match(r"IPv[46] (TCP|UDP) (\S+):(\d+) > (\S+):(\d+)", rec.get("summary", ""))
    if not m:
        return None
    src, sport, dst, dport = m.group(2), int(m.group(3)), m.group(4), int(m.group(5))
    for e in entries or []:
        if (e["src"], e["sport"], e["dst"], e["dport"]) in ((src, sport, dst, dport),
                                                            (dst, dport, src, sport)):
            return "%s %s" % (e.get("state") or e["proto"], "|".join(sorted(e["flags"])) or "-")
    return "no entry"


def side(rec, prev, tup):
    if rec is None:
        return "missing"
    return "fwd=%s ct=%s entry=%s (before: %s)" % (
        rec.get("forwarded"), rec.get("ct_state"), tup(rec, rec.get("ct_entries")),
        tup(rec, prev.get("ct_entries") if prev else []))


def generic(note):
    note = re.sub(r"^f\d+ ", "", note or "?")
    return re.sub(r"\d+", "N", note)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("kernel")
    ap.add_argument("ctfw")
    ap.add_argument("--compare", help="compare.py (default: from conformance_dir.sh)")
    ap.add_argument("--timeout-tolerance", type=float, default=2.0)
    ap.add_argument("--json", help="also write the groups here")
    ap.add_argument("--recheck", help="a second kernel run of the differing traces")
    ap.add_argument("--list", help="write the differing traces' names here")
    args = ap.parse_args()
    path = args.compare
    if not path:
        here = os.path.dirname(os.path.realpath(__file__))
        import subprocess
        conf = subprocess.run([os.path.join(here, "conformance_dir.sh")], capture_output=True,
                              text=True, check=True).stdout.strip()
        path = os.path.join(conf, "compare.py")
    spec = importlib.util.spec_from_file_location("compare", path)
    compare = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare)

    groups = {}
    ok = bad = missing = packets = 0
    for name in sorted(f[:-6] for f in os.listdir(args.kernel) if f.endswith(".jsonl")):
        kern = load(os.path.join(args.kernel, name + ".jsonl"))
        packets += len(kern)
        cpath = os.path.join(args.ctfw, name + ".jsonl")
        if not os.path.exists(cpath):
            missing += 1
            continue
        ctfw = load(cpath)
        diffs = compare.compare_trace(kern, ctfw, args.timeout_tolerance, False)
        if not diffs:
            ok += 1
            continue
        bad += 1
        m = re.match(r"#(\d+)", diffs[0])
        i = int(m.group(1)) if m else 0
        k = kern[i] if i < len(kern) else None
        c = ctfw[i] if i < len(ctfw) else None
        kp = kern[i - 1] if 0 < i <= len(kern) else None
        cp = ctfw[i - 1] if 0 < i <= len(ctfw) else None
        drift = max((r.get("wall_t", 0) - r.get("t", 0) for r in kern), default=0)
        rep = None
        if args.recheck:
            rpath = os.path.join(args.recheck, name + ".jsonl")
            if os.path.exists(rpath):
                rep = not compare.compare_trace(kern, load(rpath), args.timeout_tolerance, False)
        rec = k or c or {}
        key = "%s | kernel %s | ctfw %s" % (
            generic(rec.get("note") or rec.get("summary")),
            side(k, kp, entry_of) if k else "missing",
            side(dict(c, summary=rec.get("summary", "")), cp, entry_of) if c else "missing")
        if rep is False:
            key = "NOT REPRODUCED by a second kernel run (replay artefact) | " + key
        g = groups.setdefault(key, [])
        g.append({"trace": name, "packet": i, "packets": len(kern), "first": diffs[0],
                  "diffs": len(diffs), "drift": round(drift, 3), "reproduced": rep})

    print("%d traces, %d packets: %d agree, %d differ, %d without a ctfw record"
          % (ok + bad + missing, packets, ok, bad, missing))
    if args.recheck:
        flaky = sum(len(g) for k, g in groups.items() if k.startswith("NOT REPRODUCED"))
        checked = sum(1 for g in groups.values() for x in g if x["reproduced"] is not None)
        print("rechecked %d of the %d differing traces in a second kernel run: %d reproduced, "
              "%d not (replay artefacts)" % (checked, bad, checked - flaky, flaky))
    for key, g in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        ex = min(g, key=lambda x: (x["packets"], x["trace"]))
        print("\n%d trace(s): %s" % (len(g), key))
        print("   e.g. %s packet #%d of %d (max drift %.3f s): %s" % (
            ex["trace"], ex["packet"], ex["packets"], ex["drift"], ex["first"]))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{"key": k, "traces": g} for k, g in
                       sorted(groups.items(), key=lambda kv: -len(kv[1]))], fh, indent=1)
    if args.list:
        with open(args.list, "w") as fh:
            for g in groups.values():
                for x in g:
                    fh.write(x["trace"] + "\n")
    sys.exit(1 if bad or missing else 0)


if __name__ == "__main__":
    main()
