#!/usr/bin/env python3
"""ctfw replay against Open vSwitch's userspace conntrack, CPU time of the whole process.

Started by benches/vs-ovs.sh (which installs and builds OVS's tests/ovstest and makes the
captures); the method is in benches/README.md ("vs-ovs"). Subcommands:

  patch-ovs FILE   edit OVS's tests/test-conntrack.c in place so that `test-conntrack pcap`
                   counts each packet's ct_state instead of printing a line per packet, and
                   prints one summary line at the end; prints the diff. Fails unless every
                   place it edits is found exactly once.
  patch-key        print a hash of that edit (vs-ovs.sh rebuilds ovstest when it changes).
  measure ...      time the programs on the captures, alternating, and report medians.

Each run is one process, `ctfw replay --config C --map 10.0.0.0/8=inside --port outside
--burst 32 --max-entries 0 --report-json R TRACE` or `ovstest test-conntrack pcap TRACE 32`,
and its CPU time is the user + system time of that process and all its threads (the rusage
wait4 returns). After each run the script checks that the program tracked the capture as
expected (see check_ctfw and check_ovs), so a misconfigured run fails instead of reporting.
"""
import argparse
import difflib
import hashlib
import json
import os
import platform
import signal
import re
import statistics
import subprocess
import sys
import threading
import time

# --- patch-ovs -------------------------------------------------------------------------------

# (what OVS 3.1's tests/test-conntrack.c has, what vs-ovs puts there). Each must match once.
PRINT_LINES = (
    "            format_flags(&ds, ct_state_to_string, packet->md.ct_state, '|');\n"
    '            printf("%"PRIuSIZE": %s\\n", total_count, ds_cstr(&ds));\n'
)
COUNT_LINES = (
    "            /* vs-ovs: count the packet's ct_state instead of printing it. */\n"
    "            vs_ovs_states[packet->md.ct_state]++;\n"
)
TEST_PCAP = "static void\ntest_pcap(struct ovs_cmdl_context *ctx)\n"
COUNTERS = (
    "/* vs-ovs: packets per ct_state value (a uint8_t), printed once at the end of\n"
    " * test_pcap instead of one line per packet. */\n"
    "static size_t vs_ovs_states[256];\n"
    "\n"
)
PCAP_CLOSE = "    conntrack_destroy(ct);\n    ovs_pcap_close(pcap);\n"
SUMMARY = (
    "    /* vs-ovs: one summary line: packets, and packets with each ct_state bit set. */\n"
    '    printf("vs-ovs: %"PRIuSIZE" packets;", total_count);\n'
    "    for (int bit = 0; bit < 8; bit++) {\n"
    "        size_t n = 0;\n"
    "        for (int s = 0; s < 256; s++) {\n"
    "            n += s & (1 << bit) ? vs_ovs_states[s] : 0;\n"
    "        }\n"
    '        printf(" %s %"PRIuSIZE, ct_state_to_string(1 << bit), n);\n'
    "    }\n"
    '    printf("\\n");\n'
)
PATCH = [
    (PRINT_LINES, COUNT_LINES),
    (TEST_PCAP, COUNTERS + TEST_PCAP),
    (PCAP_CLOSE, PCAP_CLOSE + SUMMARY),
]


def patch_ovs(path):
    with open(path) as f:
        before = f.read()
    after = before
    for old, new in PATCH:
        n = after.count(old)
        if n != 1:
            sys.exit(f"vs-ovs.py: {path}: expected this text once, found it {n} times:\n{old}")
        after = after.replace(old, new)
    with open(path, "w") as f:
        f.write(after)
    sys.stdout.writelines(difflib.unified_diff(
        before.splitlines(True), after.splitlines(True),
        "a/tests/test-conntrack.c", "b/tests/test-conntrack.c"))


# --- measure ---------------------------------------------------------------------------------

GNU_TIME = "/usr/bin/time"

def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def die(msg):
    sys.exit(f"vs-ovs.py: {msg}")


class Run:
    """One finished process: CPU seconds (user, sys), wall seconds, peak RSS in KiB.

    The CPU times are the rusage wait4 returns for the process started here, which is GNU
    time running the program: the program's threads plus time's own fork, exec and wait
    (about 1 ms, the same for every program). GNU time is there for the peak RSS alone: a
    child's ru_maxrss starts at its parent's RSS at fork (Linux keeps the pre-exec high-water
    mark), and this Python process is larger than some of the programs it measures.
    """

    def __init__(self, argv, stdout, timeout, rss_file):
        t0 = time.monotonic()
        proc = subprocess.Popen([GNU_TIME, "-f", "%M", "-o", rss_file, "--"] + argv,
                                stdout=stdout, stderr=subprocess.PIPE, start_new_session=True)
        killed = []

        def kill():
            killed.append(1)
            os.killpg(proc.pid, signal.SIGKILL)  # time and the program: their own group

        timer = threading.Timer(timeout, kill)
        timer.start()
        # Read stderr on a thread: a full pipe must not stall the process.
        err = []
        reader = threading.Thread(target=lambda: err.append(proc.stderr.read()))
        reader.start()
        _, status, ru = os.wait4(proc.pid, 0)
        timer.cancel()
        reader.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        self.wall = time.monotonic() - t0
        self.user, self.sys = ru.ru_utime, ru.ru_stime
        self.cpu = self.user + self.sys
        self.stderr = err[0].decode(errors="replace") if err else ""
        if killed:
            die(f"timed out after {timeout} s: {' '.join(argv)}")
        if proc.returncode != 0:
            die(f"exit status {proc.returncode}: {' '.join(argv)}\n{self.stderr[-2000:]}")
        try:
            with open(rss_file) as f:
                self.maxrss_kb = int(f.read().split()[-1])
        except (OSError, ValueError, IndexError):
            die(f"no peak RSS from {GNU_TIME} in {rss_file}")


OVS_SUMMARY = re.compile(r"^vs-ovs: (\d+) packets;((?: \S+ \d+)+)\s*$", re.M)


def parse_ovs_summary(text):
    m = OVS_SUMMARY.search(text)
    if not m:
        die(f"no 'vs-ovs:' summary line in the output of ovstest: {text[-500:]!r}")
    words = m.group(2).split()
    return int(m.group(1)), {words[i]: int(words[i + 1]) for i in range(0, len(words), 2)}


def check_ctfw(label, cap, report):
    """The run tracked what the capture holds: every packet accepted, one entry per flow (per
    SYN in a flood, but for the SYNs that repeat an earlier SYN's addresses and ports, which
    the random sources of tracegen's flood sometimes do: those are retransmissions)."""
    c = report["counters"]
    problems = []
    if c["packets"] != cap["packets"]:
        problems.append(f"{c['packets']} packets, the capture has {cap['packets']}")
    if c["dropped"] != 0:
        problems.append(f"{c['dropped']} dropped")
    created = c["connections"]["created"]
    if cap["kind"] == "established" and created != cap["flows"]:
        problems.append(f"{created} connections created, expected {cap['flows']}")
    retrans = c["ignored_by_reason"]["tcp_syn_retransmit"]
    if cap["kind"] == "synflood" and created + retrans != cap["packets"]:
        problems.append(f"{created} connections created and {retrans} SYN retransmissions, "
                        f"expected {cap['packets']} together")
    if c["connections"]["evicted"] != 0:
        problems.append(f"{c['connections']['evicted']} evicted")
    if problems:
        die(f"{label} on {cap['name']}: " + "; ".join(problems))


def check_ovs(cap, packets, states):
    """OVS tracked every packet and found none invalid; every SYN of an established flow and
    of a flood is +new (a repeated SYN too), every other packet of a flow +est."""
    problems = []
    if packets != cap["packets"]:
        problems.append(f"{packets} packets, the capture has {cap['packets']}")
    if states.get("trk") != cap["packets"]:
        problems.append(f"{states.get('trk')} packets tracked")
    if states.get("inv") != 0:
        problems.append(f"{states.get('inv')} invalid")
    new = cap["flows"] if cap["kind"] == "established" else cap["packets"]
    if states.get("new") != new or states.get("est") != cap["packets"] - new:
        problems.append(f"{states.get('new')} packets +new and {states.get('est')} +est, "
                        f"expected {new} and {cap['packets'] - new}")
    if problems:
        die(f"ovs on {cap['name']}: " + "; ".join(problems))


def write_config(src, capacity, out):
    """The classic conformance policy (src) with conntrack.capacity set."""
    with open(src) as f:
        text = f.read()
    if text.count("\nconntrack:\n") != 1 or "capacity:" in text:
        die(f"{src}: expected one 'conntrack:' section without a capacity")
    text = text.replace("\nconntrack:\n", f"\nconntrack:\n  capacity: {capacity}\n")
    with open(out, "w") as f:
        f.write(f"# Written by benches/vs-ovs.sh: {src} with conntrack.capacity {capacity}.\n")
        f.write(text)


def capacity_for(flows):
    """ctfw's default (262,144), or the power of two >= 2 x flows if that is larger: the
    table never runs more than half full, as in benches/dataplane.sh."""
    c = 262_144
    while c < 2 * flows:
        c *= 2
    return c


def version_of(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout
        return out.strip().splitlines()[0] if out.strip() else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def median(xs):
    return statistics.median(xs)


def measure(a):
    os.makedirs(a.out, exist_ok=True)
    caps = []
    for spec in a.capture:
        try:
            name, kind, packets, flows, path = spec.split(":", 4)
            caps.append({"name": name, "kind": kind, "packets": int(packets),
                         "flows": int(flows), "path": path})
        except ValueError:
            die(f"--capture {spec}: expected NAME:KIND:PACKETS:FLOWS:PATH")
        if kind not in ("established", "synflood"):
            die(f"--capture {spec}: KIND is established or synflood")
    programs = []  # (label, kind, binary)
    for spec in a.ctfw:
        label, sep, path = spec.partition("=")
        if not sep or not label or not path:
            die(f"--ctfw {spec}: expected LABEL=PATH")
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            die(f"--ctfw {spec}: {path} is not an executable file")
        if label in ("ovs", "ovs-printing") or label in [p[0] for p in programs]:
            die(f"--ctfw {spec}: the label {label} is taken")
        programs.append((label, "ctfw", os.path.realpath(path)))
    programs.append(("ovs", "ovs", a.ovs))
    if a.ovs_printing:
        programs.append(("ovs-printing", "ovs-printing", a.ovs_printing))

    env = {
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, {cpu_model()}, {platform.release()}",
        "load_at_start": open("/proc/loadavg").read().split()[0],
        "ovs": f"Open vSwitch {a.ovs_version}, {a.ovs} (test-conntrack.c patched: counts, "
               "does not print)",
        "ovs_printing": a.ovs_printing and f"{a.ovs_printing} (unpatched, stdout to /dev/null)",
        "ctfw": {label: {"path": path, "version": version_of([path, "--version"]),
                         "sha256": sha256_of(path)}
                 for label, kind, path in programs if kind == "ctfw"},
        "rounds": a.rounds,
        "batch": a.batch,
    }
    rows = []
    tsv = open(os.path.join(a.out, "results.tsv"), "w")
    tsv.write("capture\tround\tprogram\tcpu_s\tuser_s\tsys_s\twall_s\tmaxrss_kib\tload1\n")
    ovs_states = {}
    for cap in caps:
        cfg = os.path.join(a.out, f"ctfw-{cap['name']}.yaml")
        write_config(a.config, capacity_for(cap["flows"]), cfg)
        # Warm the page cache: no program reads the capture from disk.
        with open(cap["path"], "rb") as f:
            while f.read(1 << 20):
                pass
        for r in range(a.rounds):
            # Rotate the order every round, so no program always runs first (or after the same
            # one).
            order = programs[r % len(programs):] + programs[:r % len(programs)]
            for label, kind, path in order:
                report = os.path.join(a.out, f"report-{cap['name']}-{label}.json")
                ovs_out = os.path.join(a.out, f"ovs-{cap['name']}.out")
                rss = os.path.join(a.out, "rss.tmp")
                if kind == "ctfw":
                    argv = [path, "replay", "--config", cfg, "--map", "10.0.0.0/8=inside",
                            "--port", "outside", "--burst", str(a.batch), "--max-entries", "0",
                            "--report-json", report, cap["path"]]
                    with open(os.devnull, "w") as null:
                        run = Run(argv, null, a.timeout, rss)
                    with open(report) as f:
                        check_ctfw(label, cap, json.load(f))
                elif kind == "ovs":
                    argv = [path, "test-conntrack", "pcap", cap["path"], str(a.batch)]
                    with open(ovs_out, "w") as out:
                        run = Run(argv, out, a.timeout, rss)
                    with open(ovs_out) as f:
                        packets, states = parse_ovs_summary(f.read())
                    check_ovs(cap, packets, states)
                    ovs_states[cap["name"]] = states
                else:
                    argv = [path, "test-conntrack", "pcap", cap["path"], str(a.batch)]
                    with open(os.devnull, "w") as null:
                        run = Run(argv, null, a.timeout, rss)
                load = open("/proc/loadavg").read().split()[0]
                rows.append({"capture": cap["name"], "round": r + 1, "program": label,
                             "cpu_s": run.cpu, "user_s": run.user, "sys_s": run.sys,
                             "wall_s": run.wall, "maxrss_kib": run.maxrss_kb, "load1": load})
                tsv.write(f"{cap['name']}\t{r + 1}\t{label}\t{run.cpu:.3f}\t{run.user:.3f}\t"
                          f"{run.sys:.3f}\t{run.wall:.3f}\t{run.maxrss_kb}\t{load}\n")
                tsv.flush()
                log(f"{cap['name']} round {r + 1}: {label:<14} cpu {run.cpu:6.3f} s "
                    f"(user {run.user:.3f}, sys {run.sys:.3f}), wall {run.wall:.3f} s, "
                    f"load {load}")
    tsv.close()

    summary = []
    for cap in caps:
        mine = [x for x in rows if x["capture"] == cap["name"]]
        progs = {}
        for label, _, _ in programs:
            rs = [x for x in mine if x["program"] == label]
            progs[label] = {k: median([x[k] for x in rs])
                            for k in ("cpu_s", "user_s", "sys_s", "wall_s", "maxrss_kib")}
            progs[label]["cpu_s_all"] = [round(x["cpu_s"], 3) for x in rs]
        ovs = progs["ovs"]["cpu_s"]
        for label, kind, _ in programs:
            if kind == "ovs":
                continue
            # The ratio of the medians, and the range of the per-round ratios (each against
            # the OVS run of the same round) to show the noise.
            per_round = []
            for r in range(1, a.rounds + 1):
                mine_r = {x["program"]: x["cpu_s"] for x in mine if x["round"] == r}
                per_round.append(mine_r[label] / mine_r["ovs"])
            progs[label]["ratio_to_ovs"] = progs[label]["cpu_s"] / ovs
            progs[label]["ratio_to_ovs_rounds"] = [round(x, 3) for x in per_round]
        summary.append({"capture": cap["name"], "kind": cap["kind"], "packets": cap["packets"],
                        "flows": cap["flows"], "ovs_ct_states": ovs_states.get(
                            cap["name"]), "programs": progs})
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump({"env": env, "captures": summary}, f, indent=1)

    print()
    print(f"ctfw replay vs {env['ovs'].split(',')[0]} `ovstest test-conntrack pcap FILE "
          f"{a.batch}`: CPU time (user + sys) of the whole process, median of {a.rounds} "
          f"rounds, alternating")
    print(f"{env['machine']}; load at start {env['load_at_start']}")
    for label, v in env["ctfw"].items():
        print(f"  {label}: {v['path']} ({v['version']}, sha256 {v['sha256'][:12]})")
    print(f"{'capture':<20} {'packets':>9} {'program':<14} {'CPU s':>7} {'user':>7} "
          f"{'sys':>6} {'ns/pkt':>7} {'RSS MiB':>8} {'x OVS':>6}  per-round x OVS")
    for s in summary:
        first = True
        for label, p in s["programs"].items():
            ratio = f"{p['ratio_to_ovs']:6.3f}" if "ratio_to_ovs" in p else f"{1:6.3f}"
            rounds = " ".join(f"{x:.3f}" for x in p.get("ratio_to_ovs_rounds", []))
            print(f"{s['capture'] if first else '':<20} "
                  f"{s['packets'] if first else '':>9} {label:<14} {p['cpu_s']:7.3f} "
                  f"{p['user_s']:7.3f} {p['sys_s']:6.3f} "
                  f"{1e9 * p['cpu_s'] / s['packets']:7.0f} {p['maxrss_kib'] / 1024:8.0f} "
                  f"{ratio}  {rounds}")
            first = False
        st = s["ovs_ct_states"] or {}
        print(f"{'':<20} {'':>9} (OVS ct_state: " +
              ", ".join(f"{k} {v}" for k, v in st.items() if v) + ")")
    print(f"results: {os.path.join(a.out, 'results.tsv')}, "
          f"{os.path.join(a.out, 'results.json')}")


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("patch-ovs", help="patch OVS's tests/test-conntrack.c in place")
    pp.add_argument("file")
    sub.add_parser("patch-key", help="print a hash of the patch")
    pm = sub.add_parser("measure", help="time the programs, alternating")
    pm.add_argument("--capture", action="append", required=True,
                    help="NAME:KIND:PACKETS:FLOWS:PATH (repeatable; KIND established or "
                    "synflood; FLOWS the connections, or the SYNs of a flood)")
    pm.add_argument("--ctfw", action="append", required=True, help="LABEL=PATH (repeatable)")
    pm.add_argument("--ovs", required=True, help="the patched (quiet) ovstest")
    pm.add_argument("--ovs-printing", help="the unpatched ovstest, also timed if given")
    pm.add_argument("--ovs-version", default="?")
    pm.add_argument("--config", required=True, help="the classic conformance configuration")
    pm.add_argument("--rounds", type=int, default=5)
    pm.add_argument("--batch", type=int, default=32)
    pm.add_argument("--timeout", type=float, default=300, help="seconds per run")
    pm.add_argument("--out", required=True, help="directory for configs, logs and results")
    a = p.parse_args()
    if a.cmd == "patch-ovs":
        patch_ovs(a.file)
    elif a.cmd == "patch-key":
        print(hashlib.sha256(repr(PATCH).encode()).hexdigest())
    else:
        if a.rounds < 1:
            die("--rounds: at least 1")
        measure(a)


if __name__ == "__main__":
    main()
