#!/usr/bin/env python3
"""The verdict of a soak run (ci/soak.sh): reads its samples and ctfw's final report and
fails, naming each broken promise, unless

  memory   the RSS stays flat after the warm-up: no sample after the first WARMUP_SHARE of
           the run exceeds the RSS at the end of the warm-up by more than RSS_SLACK_PCT
           percent or RSS_SLACK_MIB MiB, whichever is larger;
  counters every packet is accounted for, exactly, in the final report (in total, per port,
           per worker, per rule) and in every live sample (per worker); see IDENTITIES;
  mbufs    ctfw exited 0 after SIGTERM, and every port's pool is full again;
  churn    the table really churned: more entries were created than it holds, and entries
           left it by ageing (the run's timeouts are short: --max-timeout) or under pressure
           (evicted), or both.

Prints what it measured and what failed; exits 1 on any failure. --summary writes the
figures as JSON (docs/robustness.md records one run's).

IDENTITIES (report fields; "unparsed" are the dropped_by_reason keys other than the policy
reasons rule_drop, default_policy and table_full):
  packets  = accepted + dropped;   dropped = sum of dropped_by_reason
  io.received = packets + io.distributor_ring_full_dropped + io.icmp_errors_redispatch_dropped
  accepted = io.transmitted + io.tx_dropped
  per port p: stats.rx_packets(p) >= decided(p) (accepted + dropped), and the differences
      add up to the ring and re-dispatch drops above; sum of decided = packets (and bytes);
      sum of rx_packets = io.received
  per port p: what its peers accepted (sum of decided.accepted of the ports whose peer is
      p) >= stats.tx_packets(p), and the differences add up to io.tx_dropped; sum of
      tx_packets = io.transmitted
  per worker: packets = accepted + dropped, and the workers add up to the totals
  rules:   sum of rule hits = packets - unparsed; hits of the drop rules = rule_drop;
           default policy hits = default_policy (policy drop); hits of the accept rules =
           accepted + table_full
  table:   created = expired + closed + evicted + evicted_closing + deleted + table.entries,
           and table.entries = the workers' entries summed
Each live sample, per worker (one snapshot, taken at one moment by the worker itself):
  packets = accepted + dropped = received_from_ports + received_from_ring
            - icmp_errors_redispatched - icmp_errors_redispatch_dropped;
  dropped = sum of dropped_by_reason;  the table identity above with the worker's entries;
  0 <= accepted - (transmitted_to_ports + transmitted_to_rings + tx_dropped) <= packets
       waiting in its TX buffers (at most 256 per port);
and every counter only grows from one sample to the next.
"""
import argparse
import json
import sys

POLICY_REASONS = ("rule_drop", "default_policy", "table_full")
# A worker's TX buffers: one per port, at most MAX_BURST (256) packets each.
MAX_BURST = 256


class Verdict:
    def __init__(self):
        self.failures = []

    def fail(self, what):
        self.failures.append(what)

    def equal(self, what, left, right):
        """`left == right`, else a failure naming both sides."""
        if left != right:
            self.fail(f"{what}: {left} != {right} (off by {left - right})")
        return left == right


def load_samples(path):
    samples = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    samples.append(json.loads(line))
                except json.JSONDecodeError as e:
                    sys.exit(f"soak_check: {path}:{n}: not JSON: {e}")
    return samples


def mib(kib):
    return kib / 1024


# --- memory ---------------------------------------------------------------------------------


def check_rss(v, samples, warmup_share, slack_pct, slack_mib):
    """RSS flat after the warm-up; returns the figures."""
    if len(samples) < 5:
        v.fail(f"memory: {len(samples)} samples; at least 5 are needed to judge the RSS")
        return {}
    duration = samples[-1]["t"]
    warmup_end = warmup_share * duration
    before = [s for s in samples if s["t"] <= warmup_end]
    after = [s for s in samples if s["t"] > warmup_end]
    if not before or len(after) < 3:
        v.fail(f"memory: {len(before)} samples in the warm-up and {len(after)} after it: "
               "sample more often (--interval) or run longer")
        return {}
    ref = before[-1]
    ref_kib = ref["rss_kib"]
    allowed_kib = max(ref_kib * slack_pct / 100, slack_mib * 1024)
    peak = max(after, key=lambda s: s["rss_kib"])
    low = min(after, key=lambda s: s["rss_kib"])
    # Least-squares slope of RSS over the samples after the warm-up, for the record.
    n = len(after)
    ts = [s["t"] for s in after]
    rs = [s["rss_kib"] for s in after]
    mt, mr = sum(ts) / n, sum(rs) / n
    var = sum((t - mt) ** 2 for t in ts)
    slope = sum((t - mt) * (r - mr) for t, r in zip(ts, rs)) / var if var else 0.0
    if peak["rss_kib"] > ref_kib + allowed_kib:
        v.fail(f"memory: RSS grew after the warm-up: {mib(ref_kib):.1f} MiB at {ref['t']:.0f} s "
               f"(end of the warm-up), {mib(peak['rss_kib']):.1f} MiB at {peak['t']:.0f} s; "
               f"allowed {mib(allowed_kib):.1f} MiB more (max of {slack_pct}% and {slack_mib} MiB)")
    return {
        "samples": len(samples),
        "warmup_end_seconds": round(warmup_end, 1),
        "reference_mib": round(mib(ref_kib), 2),
        "reference_at_seconds": round(ref["t"], 1),
        "allowed_growth_mib": round(mib(allowed_kib), 2),
        "after_warmup_min_mib": round(mib(low["rss_kib"]), 2),
        "after_warmup_max_mib": round(mib(peak["rss_kib"]), 2),
        "last_mib": round(mib(samples[-1]["rss_kib"]), 2),
        "first_mib": round(mib(samples[0]["rss_kib"]), 2),
        "slope_kib_per_minute": round(slope * 60, 1),
        "hwm_mib": round(mib(samples[-1].get("hwm_kib", 0)), 2),
    }


# --- counters: the final report -------------------------------------------------------------


def unparsed(dropped_by_reason):
    return sum(n for r, n in dropped_by_reason.items() if r not in POLICY_REASONS)


def check_report_counters(v, r, accept_rules, peers):
    c, io = r["counters"], r["io"]
    by = c["dropped_by_reason"]
    v.equal("packets = accepted + dropped", c["packets"], c["accepted"] + c["dropped"])
    v.equal("dropped = sum of dropped_by_reason", c["dropped"], sum(by.values()))
    lost_before_engine = io["distributor_ring_full_dropped"] + io["icmp_errors_redispatch_dropped"]
    v.equal("io.received = packets + ring-full drops + re-dispatch drops",
            io["received"], c["packets"] + lost_before_engine)
    v.equal("accepted = io.transmitted + io.tx_dropped",
            c["accepted"], io["transmitted"] + io["tx_dropped"])

    # Per port.
    ports = r["ports"]
    names = [p["name"] for p in ports]
    for name, peer in peers.items():
        if name not in names or peer not in names:
            v.fail(f"--peer {name}={peer}: the report's ports are {names}")
            return
    rx_excess = 0
    for p in ports:
        d, st = p["decided"], p["stats"]
        decided = d["accepted_packets"] + d["dropped_packets"]
        if st is None:
            v.fail(f"port {p['name']}: no device statistics in the report")
            return
        if st["rx_packets"] < decided:
            v.fail(f"port {p['name']}: the device received {st['rx_packets']} packets, the "
                   f"engine decided {decided} from it")
        rx_excess += st["rx_packets"] - decided
    v.equal("per port: received - decided, summed = ring-full + re-dispatch drops",
            rx_excess, lost_before_engine)
    v.equal("sum of ports' decided packets = packets",
            sum(p["decided"]["accepted_packets"] + p["decided"]["dropped_packets"] for p in ports),
            c["packets"])
    v.equal("sum of ports' decided bytes = bytes",
            sum(p["decided"]["accepted_bytes"] + p["decided"]["dropped_bytes"] for p in ports),
            c["bytes"])
    v.equal("sum of ports' rx_packets = io.received",
            sum(p["stats"]["rx_packets"] for p in ports), io["received"])
    v.equal("sum of ports' decided accepted = accepted",
            sum(p["decided"]["accepted_packets"] for p in ports), c["accepted"])
    tx_short = 0
    for p in ports:
        sent_to = sum(q["decided"]["accepted_packets"] for q in ports
                      if peers.get(q["name"]) == p["name"])
        if p["stats"]["tx_packets"] > sent_to:
            v.fail(f"port {p['name']}: the device sent {p['stats']['tx_packets']} packets, its "
                   f"peers accepted {sent_to} for it")
        tx_short += sent_to - p["stats"]["tx_packets"]
    v.equal("per port: accepted for it - sent, summed = io.tx_dropped", tx_short, io["tx_dropped"])
    v.equal("sum of ports' tx_packets = io.transmitted",
            sum(p["stats"]["tx_packets"] for p in ports), io["transmitted"])

    # Per worker.
    for i, w in enumerate(r["workers"]):
        v.equal(f"worker {i}: packets = accepted + dropped", w["packets"], w["accepted"] + w["dropped"])
    for key in ("packets", "accepted", "dropped"):
        v.equal(f"workers' {key} summed = {key}", sum(w[key] for w in r["workers"]), c[key])

    # Rules (default policy: drop).
    hits = r["rule_hits"]
    rules = {h["rule"]: h["packets"] for h in hits["rules"]}
    for name in accept_rules:
        if name not in rules:
            v.fail(f"--accept-rules: no rule {name} in the report (rules: {sorted(rules)})")
            return
    v.equal("sum of rule hits = packets - unparsed drops",
            sum(rules.values()) + hits["default_policy"], c["packets"] - unparsed(by))
    v.equal("hits of the drop rules = rule_drop",
            sum(n for k, n in rules.items() if k not in accept_rules), by["rule_drop"])
    v.equal("default policy hits = default_policy drops", hits["default_policy"], by["default_policy"])
    v.equal("hits of the accept rules = accepted + table_full",
            sum(n for k, n in rules.items() if k in accept_rules), c["accepted"] + by["table_full"])

    # The table.
    conn = c["connections"]
    removed = (conn["expired"] + conn["closed"] + conn["evicted"] + conn["evicted_closing"]
               + conn["deleted"])
    v.equal("created = expired + closed + evicted + evicted_closing + deleted + entries",
            conn["created"], removed + r["table"]["entries"])
    v.equal("workers' entries summed = table.entries",
            sum(w["entries"] for w in r["workers"]), r["table"]["entries"])


# --- counters: the live samples -------------------------------------------------------------

# Counters that only grow, as (path, ...) into a sample's stats.
GROWING = [("counters", k) for k in ("packets", "bytes", "accepted", "dropped")] + [
    ("counters", "connections", k)
    for k in ("created", "expired", "closed", "evicted", "evicted_closing", "deleted")
]


def dig(d, path):
    for k in path:
        d = d[k]
    return d


def check_samples(v, samples):
    prev = None
    bad = 0
    for s in samples:
        st = s.get("stats")
        t = s["t"]
        if not st:
            v.fail(f"sample at {t:.1f} s: `ctfw stats` gave nothing")
            continue
        before = len(v.failures)
        nports = len(st["ports"])
        for w in st["workers"]:
            c, io, n = w["counters"], w["io"], w["worker"]
            at = f"sample at {t:.1f} s, worker {n}"
            v.equal(f"{at}: packets = accepted + dropped", c["packets"], c["accepted"] + c["dropped"])
            v.equal(f"{at}: dropped = sum of dropped_by_reason", c["dropped"],
                    sum(c["dropped_by_reason"].values()))
            v.equal(f"{at}: packets = received from ports and ring - ICMP errors handed over",
                    c["packets"],
                    io["received_from_ports"] + io["received_from_ring"]
                    - io["icmp_errors_redispatched"] - io["icmp_errors_redispatch_dropped"])
            conn = c["connections"]
            v.equal(f"{at}: created = removed + entries", conn["created"],
                    conn["expired"] + conn["closed"] + conn["evicted"] + conn["evicted_closing"]
                    + conn["deleted"] + w["table"]["entries"])
            pending = c["accepted"] - (io["transmitted_to_ports"] + io["transmitted_to_rings"]
                                       + io["tx_dropped"])
            if not 0 <= pending <= nports * MAX_BURST:
                v.fail(f"{at}: accepted - (transmitted + tx_dropped) = {pending}, outside "
                       f"0..{nports * MAX_BURST} (its TX buffers)")
        if prev is not None:
            for path in GROWING:
                a, b = dig(prev["stats"], path), dig(st, path)
                if b < a:
                    v.fail(f"sample at {t:.1f} s: {'.'.join(path)} went down from {a} to {b}")
        if len(v.failures) > before:
            bad += 1
        prev = s
    return bad


# --- mbufs and exit -------------------------------------------------------------------------


def check_exit(v, r, exit_code):
    if exit_code != 0:
        v.fail(f"exit: ctfw exited with status {exit_code} after SIGTERM (0 expected)")
    if r["stopped_by"] != "signal":
        v.fail(f"exit: stopped by {r['stopped_by']}, not by the signal")
    if r["mbufs_leaked"]:
        v.fail("mbufs: the report says mbufs leaked")
    for p in r["ports"]:
        m = p["mempool"]
        missing = m["size"] - m["free"]
        if missing > m["driver_keeps"]:
            v.fail(f"mbufs: pool {m['name']} of port {p['name']}: {missing} of {m['size']} mbufs "
                   f"not back at exit (the driver keeps at most {m['driver_keeps']})")


# --- churn ----------------------------------------------------------------------------------


def check_churn(v, r, samples, capture_packets, max_timeout):
    c, conn = r["counters"], r["counters"]["connections"]
    capacity = r["table"]["capacity"]
    seconds = r["seconds"]
    rate = r["io"]["received"] / seconds if seconds > 0 else 0
    loop = capture_packets / rate if rate > 0 else float("inf")
    if conn["created"] <= capacity:
        v.fail(f"churn: {conn['created']} entries created in a table of {capacity}: it never "
               "turned over (a larger capture or a smaller --capacity)")
    # Entries must also leave on their own: by ageing (every entry not refreshed within the
    # timeouts) or under pressure (evicted to make room). Which of the two dominates depends on
    # the rate: a slow run ages its whole table out between loops of the capture; a fast one
    # fills it and evicts. Both are reported; at least one must have happened.
    if conn["expired"] + conn["evicted"] + conn["evicted_closing"] == 0:
        v.fail(f"churn: in {seconds:.0f} s no entry expired (timeouts of {max_timeout:g} s) and "
               "none was evicted: the table never aged nor filled")
    fills = [s["stats"]["table"]["fill"] for s in samples if s.get("stats")]
    return {
        "capacity": capacity,
        "created": conn["created"],
        "expired": conn["expired"],
        "closed": conn["closed"],
        "evicted": conn["evicted"],
        "evicted_closing": conn["evicted_closing"],
        "entries_at_exit": r["table"]["entries"],
        "turnovers": round(conn["created"] / capacity, 1),
        "fill_min": round(min(fills), 3) if fills else None,
        "fill_max": round(max(fills), 3) if fills else None,
        "loop_seconds": round(loop, 3),
        "table_full_drops": c["dropped_by_reason"]["table_full"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", required=True)
    ap.add_argument("--report", required=True)
    ap.add_argument("--exit-code", type=int, required=True)
    ap.add_argument("--accept-rules", required=True,
                    help="comma-separated names of the rules that accept (the others drop; the "
                         "default policy is drop)")
    ap.add_argument("--peer", action="append", default=[],
                    help="NAME=PEER, per port (default: inside=outside and outside=inside)")
    ap.add_argument("--capture-packets", type=int, required=True)
    ap.add_argument("--max-timeout", type=float, required=True)
    ap.add_argument("--warmup-share", type=float, default=0.2)
    ap.add_argument("--rss-slack-pct", type=float, default=0.25)
    ap.add_argument("--rss-slack-mib", type=float, default=4)
    ap.add_argument("--summary", help="write the figures here as JSON")
    a = ap.parse_args()

    v = Verdict()
    samples = load_samples(a.samples)
    try:
        with open(a.report) as f:
            report = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        report = None
        v.fail(f"exit: no readable final report ({e}); ctfw exited with status {a.exit_code}")
    peers = dict(p.split("=", 1) for p in a.peer) or {"inside": "outside", "outside": "inside"}
    accept_rules = [r for r in a.accept_rules.split(",") if r]

    rss = check_rss(v, samples, a.warmup_share, a.rss_slack_pct, a.rss_slack_mib)
    bad_samples = check_samples(v, samples)
    summary = {"rss": rss, "bad_samples": bad_samples}
    if report is not None:
        check_exit(v, report, a.exit_code)
        check_report_counters(v, report, accept_rules, peers)
        churn = check_churn(v, report, samples, a.capture_packets, a.max_timeout)
        c, io = report["counters"], report["io"]
        summary.update({
            "seconds": round(report["seconds"], 1),
            "workers": len(report["workers"]),
            "received": io["received"],
            "mpps": round(io["received"] / report["seconds"] / 1e6, 3),
            "accepted": c["accepted"],
            "dropped": c["dropped"],
            "transmitted": io["transmitted"],
            "tx_dropped": io["tx_dropped"],
            "distributor_ring_full_dropped": io["distributor_ring_full_dropped"],
            "icmp_errors_redispatch_dropped": io["icmp_errors_redispatch_dropped"],
            "dropped_by_reason": {k: n for k, n in c["dropped_by_reason"].items() if n},
            "invalid_by_reason": {k: n for k, n in c["invalid_by_reason"].items() if n},
            "ignored_by_reason": {k: n for k, n in c.get("ignored_by_reason", {}).items() if n},
            "rx_missed": sum((p["stats"] or {}).get("rx_missed", 0) for p in report["ports"]),
            "rx_nombuf": sum((p["stats"] or {}).get("rx_nombuf", 0) for p in report["ports"]),
            "churn": churn,
            "exit_code": a.exit_code,
            "mempools": [{"name": p["mempool"]["name"], "free": p["mempool"]["free"],
                          "size": p["mempool"]["size"]} for p in report["ports"]],
        })
    summary["failures"] = v.failures
    if a.summary:
        with open(a.summary, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")

    print(f"soak: {summary.get('seconds', '?')} s, {summary.get('workers', '?')} worker(s), "
          f"{summary.get('received', '?')} packets received ({summary.get('mpps', '?')} Mpps), "
          f"{summary.get('accepted', '?')} accepted, {summary.get('dropped', '?')} dropped")
    if rss:
        print(f"  RSS: {rss['first_mib']} MiB at start, {rss['reference_mib']} MiB at the end of "
              f"the warm-up ({rss['reference_at_seconds']} s); after it {rss['after_warmup_min_mib']}"
              f"..{rss['after_warmup_max_mib']} MiB (allowed up to "
              f"{round(rss['reference_mib'] + rss['allowed_growth_mib'], 2)}), slope "
              f"{rss['slope_kib_per_minute']} KiB/min, {rss['samples']} samples")
    if "churn" in summary:
        ch = summary["churn"]
        print(f"  table: capacity {ch['capacity']}, fill {ch['fill_min']}..{ch['fill_max']}; "
              f"{ch['created']} created ({ch['turnovers']}x the capacity), {ch['expired']} "
              f"expired, {ch['closed']} closed, {ch['evicted']} + {ch['evicted_closing']} evicted, "
              f"{ch['table_full_drops']} table-full drops; capture loop {ch['loop_seconds']} s")
        print(f"  dropped by reason: {summary['dropped_by_reason']}")
        print(f"  invalid by reason: {summary['invalid_by_reason']}")
        print(f"  ignored by tracking (forwarded as Linux does): {summary['ignored_by_reason']}")
        print(f"  mempools at exit: "
              + ", ".join(f"{m['name']} {m['free']}/{m['size']}" for m in summary["mempools"]))
    print(f"  live samples: {len(samples)}, {bad_samples} with a broken identity")
    if v.failures:
        print(f"soak: FAILED, {len(v.failures)} finding(s):")
        for f in v.failures[:50]:
            print(f"  - {f}")
        if len(v.failures) > 50:
            print(f"  ... and {len(v.failures) - 50} more")
        return 1
    print("soak: passed (RSS flat, every packet accounted for, every mbuf back, table churned)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
