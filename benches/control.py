#!/usr/bin/env python3
"""What the operator's tools cost the packet path, measured on a running `ctfw run`.

Started by benches/control.sh (which builds the binaries). One worker forwards a looped
capture (net_pcap, infinite_rx) into net_null, as benches/dataplane.sh does; the rate is read
from `ctfw stats -o json` (the engine's packet counter) every 0.25 s.

  listing    the table holds N established flows; `ctfw conntrack list` (text and -o json)
             lists them all while the rate is sampled: how long the listing takes, and the
             rate during it against the rate just before.
  accounting conntrack.accounting off and on, alternating runs: the steady rate of each.
  events     a SYN flood into a small table (every SYN evicts: a NEW and a DESTROY event each)
             and the established load, each with and without a `ctfw conntrack -E -o json`
             listener attached, alternating: the steady rate, and events received and lost.

Prints one table per experiment; every figure is a median over the rounds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.realpath(os.path.join(os.path.dirname(__file__), ".."))
CTFW = os.path.join(ROOT, "target/release/ctfw")
TRACEGEN = os.path.join(ROOT, "target/release/ctfw-tracegen")
DATA = os.path.join(ROOT, "target/bench-data")


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def mbufs_for(n):
    need, m = n + 8192, 16383
    while m < need:
        m = m * 2 + 1
    return m


def trace(kind, n):
    """The capture for `kind` ('established' or 'synflood') of n flows, generated once."""
    os.makedirs(DATA, exist_ok=True)
    path = os.path.join(DATA, f"control-{kind}-{n}.pcap")
    if not os.path.exists(path):
        log(f"generating {path}")
        if kind == "established":
            args = ["established", "--flows", str(n), "--packets", str(n), "--data-only",
                    "--payload", "64", "--order", "rr"]
        else:
            args = ["synflood", "--count", str(n)]
        subprocess.run([TRACEGEN, *args, "--out", path + ".tmp"], check=True,
                       stdout=subprocess.DEVNULL)
        os.rename(path + ".tmp", path)
    return path


class Ctfw:
    """One `ctfw run` in the background, with its own socket and file prefix."""

    def __init__(self, tmp, name, trace_file, packets, capacity, accounting, huge):
        self.sock = os.path.join(tmp, f"{name}.sock")
        cfg = os.path.join(tmp, f"{name}.yaml")
        mbufs = mbufs_for(packets)
        per = 4096 if huge == "off" else 2560
        pool_mb = (mbufs * per + 1048575) // 1048576
        with open(cfg, "w") as f:
            f.write(f"""ports:
  - {{name: inside, device: "net_pcap0,rx_pcap={trace_file},infinite_rx=1", peer: outside}}
  - {{name: outside, device: "net_null0,no-rx=1", peer: inside}}
dataplane:
  workers: 1
  lcores: "0@0,1@1"
  main_lcore: 0
  memory_mb: {2 * pool_mb + 256}
  mbufs_per_port: {mbufs}
conntrack:
  capacity: {capacity}
  accounting: {"true" if accounting else "false"}
control:
  socket: {self.sock}
policy: drop
rules:
  - {{name: established, ct_state: [established, related], action: accept}}
  - {{name: new_from_inside, ct_state: [new], in_port: inside, action: accept}}
""")
        self.log = open(os.path.join(tmp, f"{name}.log"), "w")
        self.proc = subprocess.Popen(
            [CTFW, "run", "--config", cfg, "--hugepages", huge,
             "--file-prefix", f"ctlbench-{os.getpid()}-{name}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        while not os.path.exists(self.sock):
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"ctfw {name} did not start: see {self.log.name}")
            time.sleep(0.2)

    def stats(self):
        out = subprocess.run([CTFW, "stats", "-o", "json", "--socket", self.sock],
                             check=True, capture_output=True, text=True).stdout
        return json.loads(out)

    def packets(self):
        return self.stats()["counters"]["packets"]

    def wait_entries(self, n, timeout=300):
        deadline = time.time() + timeout
        while self.stats()["table"]["entries"] < n:
            if time.time() > deadline:
                raise SystemExit("the table never filled")
            time.sleep(0.5)

    def rate(self, seconds):
        """Packets per second over `seconds`."""
        p0, t0 = self.packets(), time.monotonic()
        time.sleep(seconds)
        p1, t1 = self.packets(), time.monotonic()
        return (p1 - p0) / (t1 - t0)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def sampled_while(ctfw, cmd, out=subprocess.DEVNULL):
    """Run cmd while sampling the rate every 0.25 s: (seconds cmd took, [rates])."""
    p_prev, t_prev = ctfw.packets(), time.monotonic()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL)
    rates = []
    while proc.poll() is None:
        time.sleep(0.25)
        p, t = ctfw.packets(), time.monotonic()
        rates.append((p - p_prev) / (t - t_prev))
        p_prev, t_prev = p, t
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise SystemExit(f"{cmd} failed ({proc.returncode})")
    return took, rates


def mpps(x):
    return f"{x / 1e6:6.2f}"


def listing(args, tmp):
    n = args.flows
    f = trace("established", n)
    rows = []
    for r in range(args.rounds):
        c = Ctfw(tmp, f"list{r}", f, n, 2 * n, False, args.hugepages)
        try:
            c.wait_entries(n)
            time.sleep(args.warmup)
            base = c.rate(args.seconds)
            for form in ("text", "json"):
                cmd = [CTFW, "conntrack", "list", "--socket", c.sock, "-o", form]
                took, rates = sampled_while(c, cmd)
                during = statistics.mean(rates) if rates else base
                low = min(rates) if rates else base
                rows.append((r, form, took, base, during, low))
                log(f"round {r} {form}: {n} entries listed in {took:.2f} s; rate {mpps(base)} "
                    f"before, {mpps(during)} mean / {mpps(low)} lowest quarter-second during")
        finally:
            c.stop()
    print(f"\nlisting {n} entries (1 worker; rates in Mpps; medians of {args.rounds} rounds)")
    print("form   seconds   rate before   rate during (mean)   lowest 0.25 s   dip")
    for form in ("text", "json"):
        sel = [x for x in rows if x[1] == form]
        took = statistics.median(x[2] for x in sel)
        base = statistics.median(x[3] for x in sel)
        during = statistics.median(x[4] for x in sel)
        low = statistics.median(x[5] for x in sel)
        print(f"{form:5}  {took:7.2f}   {mpps(base):>11}   {mpps(during):>18}   {mpps(low):>13}"
              f"   {100 * (1 - during / base):4.1f}%")


def accounting(args, tmp):
    n = args.flows
    f = trace("established", n)
    res = {False: [], True: []}
    for r in range(args.rounds):
        for acct in (False, True):
            c = Ctfw(tmp, f"acct{r}{int(acct)}", f, n, 2 * n, acct, args.hugepages)
            try:
                c.wait_entries(n)
                time.sleep(args.warmup)
                res[acct].append(c.rate(args.seconds))
                log(f"round {r} accounting {'on ' if acct else 'off'}: {mpps(res[acct][-1])} Mpps")
            finally:
                c.stop()
    off, on = statistics.median(res[False]), statistics.median(res[True])
    print(f"\naccounting, {n} established flows (1 worker; medians of {args.rounds} rounds)")
    print(f"off {mpps(off)} Mpps, on {mpps(on)} Mpps: {100 * (1 - on / off):.1f}% lower")


def events(args, tmp):
    loads = [("established", trace("established", args.flows), args.flows, 2 * args.flows),
             ("synflood", trace("synflood", args.synflood), args.synflood, 65536)]
    print(f"\nevents with a listener (1 worker; medians of {args.rounds} rounds)")
    print("load          listener   Mpps   events/s received   lost")
    for name, f, packets, capacity in loads:
        res = {False: [], True: []}
        got, lost = [], []
        for r in range(args.rounds):
            c = Ctfw(tmp, f"ev-{name}{r}", f, packets, capacity, False, args.hugepages)
            try:
                c.wait_entries(min(packets, capacity))
                time.sleep(args.warmup)
                res[False].append(c.rate(args.seconds))
                listener = subprocess.Popen(
                    [CTFW, "conntrack", "events", "-o", "json", "--socket", c.sock],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(1)
                t0 = time.monotonic()
                res[True].append(c.rate(args.seconds))
                listener.terminate()
                _, err = listener.communicate()
                t2 = time.monotonic()

                # The listener's trailer: "ctfw: N flow events have been shown." and, when
                # some were lost (the engine's buffer, the worker's queue or the listener's
                # buffer was full), "ctfw: M flow events were lost."
                def trailer(words):
                    return next((int(w.split()[1]) for w in err.splitlines()
                                 if w.startswith("ctfw: ") and words in w), 0)
                # Over the whole subscription: the rate window plus the second before it.
                got.append(trailer("events have been shown") / (t2 - t0 + 1))
                lost.append(trailer("events were lost") / (t2 - t0 + 1))
                log(f"{name} round {r}: {mpps(res[False][-1])} Mpps without, {mpps(res[True][-1])} "
                    f"with a listener; {got[-1]:.0f} events/s received, {lost[-1]:.0f}/s lost")
            finally:
                c.stop()
        print(f"{name:12}  no         {mpps(statistics.median(res[False]))}")
        print(f"{name:12}  yes        {mpps(statistics.median(res[True]))}   "
              f"{statistics.median(got):17.0f}   {statistics.median(lost):.0f}/s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--synflood", type=int, default=1_000_000,
                    help="SYNs in the looped flood capture (table of 65536: every SYN evicts)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hugepages", choices=["off", "on"], default="off")
    ap.add_argument("experiments", nargs="*", default=["listing", "accounting", "events"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="ctfw-control-bench.") as tmp:
        for e in args.experiments:
            {"listing": listing, "accounting": accounting, "events": events}[e](args, tmp)


if __name__ == "__main__":
    main()
