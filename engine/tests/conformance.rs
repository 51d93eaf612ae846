//! The Linux conformance set through the real [`Engine`]: every configuration in
//! `config/conformance/*.yaml`, every trace the set recorded under it, every packet compared
//! with what the kernel did.
//!
//! The engine is driven as `ctfw replay --jsonl` drives it: the configuration loaded by the
//! real loader, pcapng interface names choosing the ingress port, one packet per burst with
//! its capture timestamp as the clock, a sweep after each packet, and the table read after
//! each packet. The comparison is the data set's `compare.py` with its defaults (what
//! `ci/conformance.sh` runs on `ctfw replay`'s records): the packet count, and per packet
//! `forwarded`, `ct_state`, and the conntrack table as a set of entries keyed by family,
//! protocol and ORIGINAL tuple (ports for TCP and UDP, type, code and id for ICMP queries),
//! each with its state, flags, REPLY tuple and timeout. The kernel's timeouts count down in
//! real time while its harness replays more slowly than the timestamps, so a timeout may
//! differ by [`TIMEOUT_TOLERANCE_S`] plus the record's drift `|wall_t - t|`.
//!
//! The data set is found by `ctfw_tracegen::conformance::dir` (vendored copy, or
//! `CTFW_CONFORMANCE_DIR`); a missing set, a configuration without expected results or
//! expected results without a configuration fail the test.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use ctfw_capture::CaptureReader;
use ctfw_config::Config;
use ctfw_engine::pipeline::{Engine, Pkt, Verdict};
use ctfw_engine::time::Instant;
use ctfw_engine::view::EntryView;
use ctfw_engine::wire::{ChecksumHint, Family, proto};
use serde_json::Value;

/// `compare.py --timeout-tolerance`'s default, in seconds.
const TIMEOUT_TOLERANCE_S: f64 = 2.0;
/// Any fixed seeds: the traces are far too small for the hash to matter.
const SEEDS: [u64; 4] = [1, 2, 3, 4];
/// Entries examined by the sweep after each packet, as `ctfw replay` does.
const SWEEP_BUDGET: usize = 64;
/// The only link type the engine parses (`ctfw replay` refuses others).
const LINKTYPE_ETHERNET: u16 = 1;
/// Differences shown per trace (`compare.py --max-diffs`'s default).
const MAX_DIFFS: usize = 10;

/// What `compare.py`'s `ekey` identifies an entry by, in the engine's terms: family, protocol,
/// ORIGINAL addresses, then ports (TCP and UDP) and ICMP type, code and id (ICMP queries).
type Key = (Family, u8, u128, u128, Ports, Option<Icmp>);
/// Source and destination port; `None` where the records write `null` (neither TCP nor UDP).
type Ports = Option<(u16, u16)>;
/// ICMP type, code and identifier of one direction.
type Icmp = (u8, u8, u16);

/// What `compare.py`'s `ent_diff` compares of one entry.
#[derive(Debug, PartialEq)]
struct Entry {
    /// TCP state name; `None` for other protocols.
    state: Option<String>,
    /// Sorted flag names (`ASSURED`, `UNREPLIED`).
    flags: Vec<String>,
    /// The REPLY tuple: source, destination, ports, ICMP fields.
    reply: (u128, u128, Ports, Option<Icmp>),
    /// Seconds left; `None` (in the expected records only) when not recorded.
    timeout: Option<f64>,
}

/// `key` as a person reads it, e.g. `ipv4 proto 6 10.0.1.2:40000 > 10.0.2.2:80`.
fn show(key: &Key) -> String {
    let &(family, protocol, src, dst, ports, icmp) = key;
    let ip = |a: u128| match family {
        Family::V4 => IpAddr::from(Ipv4Addr::from(a as u32)),
        Family::V6 => IpAddr::from(Ipv6Addr::from(a)),
    };
    let l3 = if family == Family::V4 { "ipv4" } else { "ipv6" };
    match (ports, icmp) {
        (Some((sp, dp)), _) => format!("{l3} proto {protocol} {}:{sp} > {}:{dp}", ip(src), ip(dst)),
        (None, Some((t, c, id))) => {
            format!(
                "{l3} proto {protocol} {} > {} type {t} code {c} id {id}",
                ip(src),
                ip(dst)
            )
        }
        (None, None) => format!("{l3} proto {protocol} {} > {}", ip(src), ip(dst)),
    }
}

/// The engine's table after a packet, keyed as `compare.py` keys it.
fn engine_entries(engine: &Engine, now: Instant) -> BTreeMap<Key, Entry> {
    let tick = now.tick();
    let mut out = BTreeMap::new();
    for (_, e) in engine.table().iter(tick) {
        let v = EntryView::new(e, tick);
        let ports = |sport, dport| {
            (v.icmp.is_none() && matches!(v.proto, proto::TCP | proto::UDP))
                .then_some((sport, dport))
        };
        let icmp = v
            .icmp
            .map(|(o, r)| ((o.type_, o.code, o.id), (r.type_, r.code, r.id)));
        let mut flags = Vec::new();
        if v.assured {
            flags.push("ASSURED".to_owned());
        }
        if !v.seen_reply {
            flags.push("UNREPLIED".to_owned());
        }
        flags.sort();
        let key = (
            v.family,
            v.proto,
            v.orig.src,
            v.orig.dst,
            ports(v.orig.sport, v.orig.dport),
            icmp.map(|i| i.0),
        );
        let entry = Entry {
            state: v.tcp_state.map(|s| s.name().to_owned()),
            flags,
            reply: (
                v.reply.src,
                v.reply.dst,
                ports(v.reply.sport, v.reply.dport),
                icmp.map(|i| i.1),
            ),
            timeout: Some(f64::from(v.timeout)),
        };
        assert!(
            out.insert(key, entry).is_none(),
            "two entries with the key {}",
            show(&key)
        );
    }
    out
}

/// An address as the engine holds it (IPv4 in the low 32 bits).
fn addr(v: &Value) -> Result<u128, String> {
    let text = v
        .as_str()
        .ok_or_else(|| format!("address {v} is not a string"))?;
    match text.parse::<IpAddr>().map_err(|e| format!("{text}: {e}"))? {
        IpAddr::V4(a) => Ok(u128::from(u32::from(a))),
        IpAddr::V6(a) => Ok(u128::from(a)),
    }
}

/// `sport` and `dport` of a tuple object: both numbers, or both `null`.
fn ports(t: &Value) -> Result<Ports, String> {
    match (&t["sport"], &t["dport"]) {
        (Value::Null, Value::Null) => Ok(None),
        (s, d) => {
            let port = |p: &Value| p.as_u64().and_then(|p| u16::try_from(p).ok());
            match (port(s), port(d)) {
                (Some(s), Some(d)) => Ok(Some((s, d))),
                _ => Err(format!("bad ports in {t}")),
            }
        }
    }
}

/// The `icmp` object of a tuple, if it has one.
fn icmp(t: &Value) -> Result<Option<Icmp>, String> {
    let Some(i) = t.get("icmp").filter(|i| !i.is_null()) else {
        return Ok(None);
    };
    let field = |k: &str| i[k].as_u64().ok_or_else(|| format!("bad icmp {k} in {t}"));
    let narrow = |k: &str| -> Result<u8, String> {
        u8::try_from(field(k)?).map_err(|e| format!("icmp {k}: {e}"))
    };
    let id = u16::try_from(field("id")?).map_err(|e| format!("icmp id: {e}"))?;
    Ok(Some((narrow("type")?, narrow("code")?, id)))
}

/// One entry of an expected record, keyed as [`engine_entries`] keys the engine's.
fn expected_entry(e: &Value) -> Result<(Key, Entry), String> {
    let family = match e["l3"].as_str() {
        Some("ipv4") => Family::V4,
        Some("ipv6") => Family::V6,
        _ => return Err(format!("bad l3 in {e}")),
    };
    let protocol = match &e["proto"] {
        Value::String(name) => match name.as_str() {
            "tcp" => proto::TCP,
            "udp" => proto::UDP,
            "icmp" => proto::ICMP,
            "icmpv6" => proto::ICMPV6,
            "gre" => proto::GRE,
            other => return Err(format!("unknown protocol {other}")),
        },
        n => n
            .as_u64()
            .and_then(|n| u8::try_from(n).ok())
            .ok_or_else(|| format!("bad proto in {e}"))?,
    };
    let key = (
        family,
        protocol,
        addr(&e["src"])?,
        addr(&e["dst"])?,
        ports(e)?,
        icmp(e)?,
    );
    let r = &e["reply"];
    let state = match &e["state"] {
        Value::Null => None,
        s => Some(
            s.as_str()
                .ok_or_else(|| format!("bad state in {e}"))?
                .to_owned(),
        ),
    };
    let mut flags: Vec<String> = e["flags"]
        .as_array()
        .ok_or_else(|| format!("no flags in {e}"))?
        .iter()
        .map(|f| {
            f.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("bad flag in {e}"))
        })
        .collect::<Result<_, _>>()?;
    flags.sort();
    let entry = Entry {
        state,
        flags,
        reply: (addr(&r["src"])?, addr(&r["dst"])?, ports(r)?, icmp(r)?),
        timeout: e["timeout"].as_f64(),
    };
    Ok((key, entry))
}

/// `compare.py`'s `ent_diff`: state, REPLY tuple and flags equal, timeouts within `tol`.
fn entry_diff(want: &Entry, got: &Entry, tol: f64) -> Vec<String> {
    let mut out = Vec::new();
    if want.state != got.state {
        out.push(format!("state {:?} != {:?}", want.state, got.state));
    }
    if want.reply != got.reply {
        out.push(format!("reply {:x?} != {:x?}", want.reply, got.reply));
    }
    if want.flags != got.flags {
        out.push(format!("flags {:?} != {:?}", want.flags, got.flags));
    }
    if let (Some(w), Some(g)) = (want.timeout, got.timeout) {
        if (w - g).abs() > tol + 1e-9 {
            out.push(format!("timeout {w} != {g}"));
        }
    }
    out
}

/// Replays `trace` under `cfg` and compares with `expected` (one JSON record per line), as
/// `compare.py` does. Returns the differences.
fn run_trace(cfg: &Config, trace: &Path, expected: &Path) -> Result<Vec<String>, String> {
    let text =
        std::fs::read_to_string(expected).map_err(|e| format!("{}: {e}", expected.display()))?;
    let records: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", expected.display()))?;
    let mut reader = CaptureReader::open(trace).map_err(|e| format!("{}: {e}", trace.display()))?;
    let mut engine = Engine::new(cfg.engine.clone(), cfg.rules.clone(), SEEDS);
    let mut diffs = Vec::new();
    let mut packets = 0;
    while let Some(rec) = reader
        .next_record()
        .map_err(|e| format!("{}: {e}", trace.display()))?
    {
        let index = packets;
        packets += 1;
        let Some(want) = records.get(index) else {
            continue;
        };
        if rec.link_type != LINKTYPE_ETHERNET {
            return Err(format!(
                "packet {index}: link type {} is not Ethernet",
                rec.link_type
            ));
        }
        let name = rec
            .interface_name
            .ok_or_else(|| format!("packet {index}: the capture names no interface"))?;
        let port = cfg.port_by_name(name).ok_or_else(|| {
            format!("packet {index}: interface {name:?} is not a configured port")
        })?;
        let now = Instant(rec.ts_ns);
        let mut verdict = [Verdict::default()];
        let pkt = Pkt {
            data: rec.data,
            tail: &[],
            port,
            csum: ChecksumHint::Unknown,
        };
        engine.process_burst(now, &[pkt], &mut verdict);
        engine.sweep(now, SWEEP_BUDGET);
        let verdict = verdict[0];

        let i = want["index"].as_u64().ok_or("record without index")?;
        let want_fwd = want["forwarded"]
            .as_bool()
            .ok_or("record without forwarded")?;
        let forwarded = verdict.forward.is_some();
        if want_fwd != forwarded {
            let summary = want["summary"].as_str().unwrap_or("");
            diffs.push(format!(
                "#{i} forwarded: expected {want_fwd}, got {forwarded}  ({summary})"
            ));
        }
        if let Some(want_ct) = want.get("ct_state") {
            let ct = verdict.ct.map(|c| c.name());
            if want_ct.as_str() != ct {
                diffs.push(format!("#{i} ct_state: expected {want_ct}, got {ct:?}"));
            }
        }
        let t = want["t"].as_f64().unwrap_or(0.0);
        let drift = (want["wall_t"].as_f64().unwrap_or(t) - t).abs();
        let want_entries: BTreeMap<Key, Entry> = want["ct_entries"]
            .as_array()
            .ok_or("record without ct_entries")?
            .iter()
            .map(expected_entry)
            .collect::<Result<_, _>>()?;
        let got_entries = engine_entries(&engine, now);
        for (key, w) in &want_entries {
            match got_entries.get(key) {
                None => diffs.push(format!("#{i} missing entry {}", show(key))),
                Some(g) => {
                    let d = entry_diff(w, g, TIMEOUT_TOLERANCE_S + drift);
                    if !d.is_empty() {
                        diffs.push(format!("#{i} entry {}: {}", show(key), d.join("; ")));
                    }
                }
            }
        }
        for key in got_entries.keys().filter(|k| !want_entries.contains_key(k)) {
            diffs.push(format!("#{i} extra entry {}", show(key)));
        }
    }
    if packets != records.len() {
        diffs.insert(0, format!("packet count {} != {packets}", records.len()));
    }
    Ok(diffs)
}

/// The names of the entries of `dir` that `keep` selects, sorted.
fn names(dir: &Path, keep: impl Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| {
            keep(
                &e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .path(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn every_config_agrees_with_linux_on_every_trace() {
    let set = ctfw_tracegen::conformance::dir();
    let configs_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/conformance");
    let configs = names(&configs_dir, |p| {
        (p.extension()? == "yaml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
    });
    let expected_dirs = names(&set.join("expected"), |p| {
        p.is_dir()
            .then(|| p.file_name()?.to_str().map(str::to_owned))?
    });
    assert!(
        !configs.is_empty(),
        "no configurations in {}",
        configs_dir.display()
    );
    // Every configuration is checked, and no part of the set goes unchecked.
    assert_eq!(
        configs,
        expected_dirs,
        "config/conformance/*.yaml and {}/expected/*/ must name the same configurations",
        set.display()
    );

    let (mut total, mut passed, mut report) = (0, 0, String::new());
    for name in &configs {
        let cfg = Config::load(configs_dir.join(format!("{name}.yaml")))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = set.join("expected").join(name);
        let traces = names(&expected, |p| {
            (p.extension()? == "jsonl").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        });
        assert!(!traces.is_empty(), "{name}: no expected results");
        for trace in traces {
            total += 1;
            let pcap = set.join("traces").join(format!("{trace}.pcapng"));
            match run_trace(&cfg, &pcap, &expected.join(format!("{trace}.jsonl"))) {
                Ok(d) if d.is_empty() => passed += 1,
                Ok(d) => {
                    let _ = writeln!(report, "{name}/{trace}: {} difference(s)", d.len());
                    for x in d.iter().take(MAX_DIFFS) {
                        let _ = writeln!(report, "    {x}");
                    }
                }
                Err(e) => {
                    let _ = writeln!(report, "{name}/{trace}: {e}");
                }
            }
        }
    }
    println!("conformance: {passed} of {total} traces agree with Linux");
    assert!(
        report.is_empty(),
        "traces that differ from Linux:\n{report}"
    );
}
