//! `ctfw replay`: the engine's burst pipeline over a capture, deterministically.
//!
//! The packet timestamps are the clock, the flow hash has a fixed seed, and packets are fed in
//! capture order, so a replay gives the same verdicts every time. The ingress port of a packet is
//! chosen by `--map PREFIX=PORT` (source address), else `--port NAME` (every packet), else the
//! name of its pcapng interface; classic pcap files carry no interface names, so they need
//! `--port` or `--map`.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant as WallClock;

use anyhow::{Context, Result, bail};
use ctfw_config::Config;
use ctfw_engine::pipeline::{Engine, Pkt, Verdict};
use ctfw_engine::rules::{PortId, Prefix, PrefixError};
use ctfw_engine::time::Instant;
use ctfw_engine::view::EntryView;
use ctfw_engine::wire::{self, ChecksumHint, Family, ParseConfig};
use serde::Serialize;

use crate::capture::Capture;
use crate::{json, records, summary};

/// Packets join a burst only while they are at most this much later than its first packet:
/// the whole burst is processed at one `now` (its first packet's timestamp), as a data-plane
/// worker processes a polling round at one clock reading, so a burst must not stretch over
/// time a capture spreads out.
const BURST_WINDOW_NS: u64 = 100_000;
/// Fixed flow-hash seeds: replay is reproducible (the data plane uses random seeds).
const REPLAY_SEEDS: [u64; 4] = [0x6374_6677_7265_706c, 0x6179_0000_0000_0001, 7, 11];
/// Table entries examined by the sweeper after each burst (a data-plane worker sweeps after
/// each busy round too).
const SWEEP_BUDGET: usize = 64;

/// Arguments of `ctfw replay`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The YAML configuration (ports, conntrack knobs, rules).
    #[arg(long, short)]
    config: PathBuf,
    /// The capture: pcapng (interface names select ports) or classic pcap.
    trace: PathBuf,
    /// Write one JSON record per packet here (the Linux conformance format) instead of a summary.
    #[arg(long, value_name = "OUT.jsonl")]
    jsonl: Option<PathBuf>,
    /// Ingress port for every packet: overrides pcapng interface names, and is needed for
    /// classic pcap unless --map covers every packet (--map takes precedence).
    #[arg(long, value_name = "NAME")]
    port: Option<String>,
    /// Ingress port by source prefix, e.g. `--map 10.0.1.0/24=inside`; repeatable; the
    /// longest matching prefix wins, --port is the fallback.
    #[arg(long, value_name = "PREFIX=NAME")]
    map: Vec<String>,
    /// Packets per burst (1..=256). With --jsonl the burst is always 1, to record the table
    /// after every packet.
    #[arg(long, default_value_t = 32,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(ctfw_config::MAX_BURST)))]
    burst: u16,
    /// Entries of the final table to print in the summary (and to list in the JSON report).
    #[arg(long, default_value_t = 50)]
    max_entries: usize,
    /// Also write the final report as JSON to FILE: counters, counters by reason, rule hits,
    /// the table.
    #[arg(long, value_name = "FILE")]
    report_json: Option<PathBuf>,
}

/// How packets are assigned an ingress port.
struct PortChooser {
    fixed: Option<PortId>,
    /// `--map`, longest prefix first.
    map: Vec<MapEntry>,
    /// The port named like each pcapng interface, resolved once per interface as the capture
    /// declares them (interface blocks may appear anywhere in a pcapng file).
    interfaces: Vec<Option<PortId>>,
}

impl PortChooser {
    fn new(args: &Args, cfg: &Config) -> Result<PortChooser> {
        let lookup = |name: &str| -> Result<PortId> {
            cfg.port_by_name(name).with_context(|| {
                let names: Vec<_> = cfg.ports.iter().map(|p| p.name.as_str()).collect();
                format!(
                    "no port named {name:?} in {} (ports: {})",
                    cfg.source.display(),
                    names.join(", ")
                )
            })
        };
        let fixed = args.port.as_deref().map(lookup).transpose()?;
        let mut map = Vec::new();
        for m in &args.map {
            let (prefix, name) = m.split_once('=').with_context(|| {
                format!("--map {m:?}: expected PREFIX=PORT, e.g. 10.0.1.0/24=inside")
            })?;
            let prefix = parse_prefix(prefix).with_context(|| format!("--map {m:?}"))?;
            map.push(MapEntry {
                prefix,
                port: lookup(name)?,
            });
        }
        map.sort_by_key(|m| std::cmp::Reverse(m.prefix.prefix_len()));
        Ok(PortChooser {
            fixed,
            map,
            interfaces: Vec::new(),
        })
    }

    /// The port for a packet: --map by source (of a packet [`wire::parse`] accepts), then
    /// --port, then the name of its pcapng interface.
    fn choose(
        &mut self,
        frame: &[u8],
        interface: Option<u32>,
        capture: &Capture,
        cfg: &Config,
    ) -> Option<PortId> {
        if let Some(port) = self.mapped(frame) {
            return Some(port);
        }
        self.fixed.or_else(|| {
            let i = usize::try_from(interface?).ok()?;
            while self.interfaces.len() <= i && self.interfaces.len() < capture.interface_count() {
                let name = capture.interface_name(self.interfaces.len() as u32);
                self.interfaces.push(name.and_then(|n| cfg.port_by_name(n)));
            }
            self.interfaces.get(i).copied().flatten()
        })
    }
}

impl PortChooser {
    /// The `--map` port of `frame`: that of the longest prefix holding the source address of a
    /// frame [`wire::parse`] accepts. Parsing costs more than everything else replay does per
    /// packet outside the engine, so the frame is parsed only when the bytes where `parse`
    /// would find the source ([`claimed_source`]) fall in some prefix: otherwise no prefix
    /// can hold it, whether or not `parse` accepts the frame.
    fn mapped(&self, frame: &[u8]) -> Option<PortId> {
        if self.map.is_empty() {
            return None;
        }
        let (family, src) = claimed_source(frame)?;
        self.map.iter().find(|m| m.prefix.contains(family, src))?;
        let parse = ParseConfig {
            verify_l4_checksum: false,
        };
        let p = wire::parse(frame, &parse, ChecksumHint::Good).ok()?;
        let m = self
            .map
            .iter()
            .find(|m| m.prefix.contains(p.addrs.family, p.addrs.src))?;
        Some(m.port)
    }
}

/// The IP family and source address a frame claims: what [`wire::parse`] returns as
/// `addrs.family` and `addrs.src` for any frame it accepts (the IPv4 or IPv6 header starts
/// where [`wire::ethernet::network_layer`] says, and holds the source at the offset its RFC
/// gives), and `None` for some frames it refuses.
fn claimed_source(frame: &[u8]) -> Option<(Family, u128)> {
    let (ethertype, l3) = wire::ethernet::network_layer(frame).ok()?;
    match ethertype {
        wire::ethernet::ethertype::IPV4 => {
            let b: [u8; 4] = l3.get(12..16)?.try_into().ok()?;
            Some((Family::V4, u128::from(u32::from_be_bytes(b))))
        }
        wire::ethernet::ethertype::IPV6 => {
            let b: [u8; 16] = l3.get(8..24)?.try_into().ok()?;
            Some((Family::V6, u128::from_be_bytes(b)))
        }
        _ => None,
    }
}

/// One `--map PREFIX=PORT`.
struct MapEntry {
    prefix: Prefix,
    port: PortId,
}

/// `ADDR/LEN` or a single address, as a prefix. Host bits past the length are cleared
/// (`10.0.1.5/24` is `10.0.1.0/24`). Also reads the control protocol's address filters.
pub fn parse_prefix(s: &str) -> Result<Prefix> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (
            a,
            Some(l.parse::<u8>().context("prefix length is not a number")?),
        ),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .with_context(|| format!("{addr:?} is not an IP address"))?;
    let (family, value, width) = match ip {
        IpAddr::V4(a) => (Family::V4, u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (Family::V6, u128::from(a), 128),
    };
    let len = len.unwrap_or(width);
    match Prefix::new(family, value, len) {
        Ok(p) | Err(PrefixError::HostBitsSet { masked: p }) => Ok(p),
        Err(e) => Err(e.into()),
    }
}

/// Run `ctfw replay`.
pub fn run(args: &Args) -> Result<()> {
    let cfg = Config::load(&args.config)?;
    let mut chooser = PortChooser::new(args, &cfg)?;
    let mut capture = Capture::open(&args.trace)?;
    let mut engine = Engine::new(cfg.engine.clone(), cfg.rules.clone(), REPLAY_SEEDS);
    let mut jsonl = match &args.jsonl {
        Some(p) => Some(BufWriter::new(
            File::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
        None => None,
    };
    let burst = if jsonl.is_some() {
        1
    } else {
        args.burst as usize
    };

    // Where each packet of the burst is in `capture.frames()`: the engine reads the frames
    // where the capture reader put them.
    let mut spans: Vec<Range<usize>> = vec![0..0; burst];
    let mut ports = vec![PortId(0); burst];
    let mut stamps = vec![0u64; burst];
    let mut verdicts = vec![Verdict::default(); burst];
    let mut first_ts: Option<u64> = None;
    let mut index: u64 = 0;
    let mut engine_time = std::time::Duration::ZERO;
    let started = WallClock::now();
    let mut now = Instant(0);
    let mut carried = false;
    // A capture that cannot be read to its end (cut off mid-record, corrupt): what was read
    // before is still processed and reported, then the error is returned.
    let mut read_error = None;
    while read_error.is_none() {
        // A packet read last round that belonged to a later burst waits in slot 0.
        let mut n = usize::from(std::mem::take(&mut carried));
        let mut overflow = None;
        while n < burst {
            let (meta, span) = match capture.next_held() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    read_error = Some(e);
                    break;
                }
            };
            let frame = capture.frames().get(span.clone()).unwrap_or_default();
            let Some(port) = chooser.choose(frame, meta.interface, &capture, &cfg) else {
                bail!(
                    "{}: packet {}: cannot tell its ingress port: {}",
                    args.trace.display(),
                    index + n as u64,
                    match meta.interface.and_then(|i| capture.interface_name(i)) {
                        Some(name) => format!(
                            "interface {name:?} is not a configured port; use --port or --map"
                        ),
                        None =>
                            "the capture names no interface; use --port NAME or --map PREFIX=NAME"
                                .into(),
                    }
                );
            };
            spans[n] = span;
            ports[n] = port;
            stamps[n] = meta.ts_ns;
            if n > 0 && meta.ts_ns.saturating_sub(stamps[0]) > BURST_WINDOW_NS {
                // Too late for this burst's clock reading: it starts the next burst.
                overflow = Some(n);
                break;
            }
            n += 1;
        }
        if n == 0 {
            break;
        }
        let t0 = *first_ts.get_or_insert(stamps[0]);
        now = Instant(stamps[0]);
        // Exactly `n` packets: filling a MAX_BURST array each burst cost more than this
        // allocation.
        let frames = capture.frames();
        let pkts: Vec<Pkt<'_>> = spans[..n]
            .iter()
            .zip(&ports[..n])
            .map(|(span, &port)| {
                let frame = frames.get(span.clone()).unwrap_or_default();
                Pkt::new(frame, port, ChecksumHint::Unknown)
            })
            .collect();
        let t = WallClock::now();
        engine.process_burst(now, &pkts, &mut verdicts[..n]);
        engine.sweep(now, SWEEP_BUDGET);
        engine_time += t.elapsed();
        if let Some(out) = jsonl.as_mut() {
            let entries = summary::snapshot(&engine, now);
            let rec = records::packet_json(
                index,
                (stamps[0] - t0) as f64 / 1e9,
                &cfg.ports[ports[0].0 as usize].name,
                &verdicts[0],
                engine.rules(),
                &entries,
            );
            serde_json::to_writer(&mut *out, &rec)?;
            out.write_all(b"\n")?;
        }
        index += n as u64;
        drop(pkts);
        if let Some(k) = overflow {
            // Keep holding the packet that starts the next burst, as its slot 0.
            capture.hold_from(spans[k].start);
            spans[0] = 0..spans[k].len();
            ports[0] = ports[k];
            stamps[0] = stamps[k];
            carried = true;
        } else {
            capture.hold_from(capture.frames().len());
        }
    }
    let wall = started.elapsed();
    // With --max-entries 0 no entry is listed: count the live ones instead of building and
    // sorting a view of each (a large part of a big table's replay otherwise).
    let (live, entries) = if args.max_entries == 0 {
        (summary::live_entries(&engine, now), Vec::new())
    } else {
        let entries = summary::snapshot(&engine, now);
        (entries.len(), entries)
    };
    let error = read_error
        .as_ref()
        .map(|e| format!("the capture could not be read to its end: {e:#}"));
    match jsonl {
        Some(mut out) => out.flush()?,
        None => print_summary(
            args,
            &engine,
            &entries,
            live,
            index,
            wall,
            engine_time,
            error.is_some(),
        ),
    }
    if let Some(path) = &args.report_json {
        let table = engine.table();
        let report = Report {
            trace: args.trace.display().to_string(),
            config: cfg.source.display().to_string(),
            seconds: wall.as_secs_f64(),
            engine_seconds: engine_time.as_secs_f64(),
            counters: engine.counters().into(),
            rule_hits: json::RuleHits::new(engine.rules(), engine.rule_hits()),
            table: json::Table::new(&entries, table.len(), table.capacity(), args.max_entries),
            error: error.clone(),
        };
        json::write(path, &report)?;
    }
    match read_error {
        Some(e) => Err(e.context(format!(
            "the capture ends in error: stopped after {index} packet(s), reported above"
        ))),
        None => Ok(()),
    }
}

/// The JSON form of the summary (`--report-json`; [`json`] has the shared parts).
#[derive(Debug, Serialize)]
struct Report {
    /// The capture.
    trace: String,
    /// The configuration.
    config: String,
    /// Wall-clock time of the replay.
    seconds: f64,
    /// Time spent in the engine.
    engine_seconds: f64,
    counters: json::Counters,
    rule_hits: json::RuleHits,
    table: json::Table,
    /// Why the capture could not be read to its end (absent when it was): the report covers
    /// the packets read before.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Print the summary of a replay of `packets` packets, whose final table has `live` entries,
/// the first `entries` of them in order (at least `--max-entries` of them, or all); `cut_short`
/// if the capture could not be read to its end (the error follows on stderr).
#[allow(clippy::too_many_arguments)]
fn print_summary(
    args: &Args,
    engine: &Engine,
    entries: &[EntryView],
    live: usize,
    packets: u64,
    wall: std::time::Duration,
    engine_time: std::time::Duration,
    cut_short: bool,
) {
    let c = engine.counters();
    let rate = |d: std::time::Duration| packets as f64 / d.as_secs_f64().max(1e-9);
    outln!(
        "ctfw replay: {}{}",
        args.trace.display(),
        if cut_short {
            format!(" (cut short: the {packets} packet(s) read before a read error, below)")
        } else {
            String::new()
        }
    );
    outln!(
        "  time {:.3} s total ({:.2} Mpps), {:.3} s in the engine ({:.2} Mpps)",
        wall.as_secs_f64(),
        rate(wall) / 1e6,
        engine_time.as_secs_f64(),
        rate(engine_time) / 1e6
    );
    summary::print_counters(c, engine.table().len(), engine.table().capacity());
    summary::print_rule_hits(engine.rules(), engine.rule_hits());
    summary::print_listing(live, entries, args.max_entries);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn map_prefixes_clear_host_bits_and_refuse_impossible_lengths() {
        let p = |s: &str| parse_prefix(s).map(|p| format!("{p} len {}", p.prefix_len()));
        assert_eq!(p("10.0.1.5/24").expect("v4"), "10.0.1.0/24 len 24");
        assert_eq!(p("10.0.1.7").expect("host"), "10.0.1.7 len 32");
        assert_eq!(p("fd00:1::1/64").expect("v6"), "fd00:1::/64 len 64");
        assert_eq!(p("0.0.0.0/0").expect("any"), "0.0.0.0/0 len 0");
        assert!(p("10.0.0.0/33").is_err());
        assert!(p("10.0.0.0/x").is_err());
        assert!(p("inside/8").is_err());
    }

    /// Packets a few microseconds apart share a burst until one comes more than
    /// [`BURST_WINDOW_NS`] after the burst's first: that one is carried over to start the
    /// next burst, and every packet is processed once. The trace is re-timed so that bursts
    /// are cut by the window as well as by their size; over its 17 ms no timeout can expire,
    /// so the counters must be those of a replay one packet at a time, except the sweeper's,
    /// which examines [`SWEEP_BUDGET`] entries after each burst.
    #[test]
    fn bursts_cut_by_the_window_carry_the_late_packet_into_the_next() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let dir = std::env::temp_dir().join(format!("ctfw-replay-window-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let trace = dir.join("retimed.pcapng");
        let source = root.join("tests/linux-conformance/traces/tcp_parallel_50_flows.pcapng");
        let mut w = ctfw_capture::PcapngWriter::new(Vec::new()).expect("writer");
        let mut ts = 1_700_000_000_000_000_000u64;
        let gaps = [
            2_000, 3_000, 2_000, 4_000, 2_000, 3_000, 2_000, 150_000, 10_000, 95_000, 300_000,
            1_000,
        ];
        let mut stamps = Vec::new();
        for (i, rec) in ctfw_capture::CaptureReader::open(&source)
            .expect("open")
            .enumerate()
        {
            let rec = rec.expect("record");
            ts += gaps[i % gaps.len()];
            w.write(ts, rec.interface.expect("pcapng"), &rec.data)
                .expect("write");
            stamps.push(ts);
        }
        std::fs::write(&trace, w.finish().expect("finish")).expect("write trace");
        let counters = |burst: u16| {
            let report = dir.join(format!("report-{burst}.json"));
            run(&Args {
                config: root.join("config/conformance/classic-loose1-liberal0.yaml"),
                trace: trace.clone(),
                jsonl: None,
                port: None,
                map: Vec::new(),
                burst,
                max_entries: 0,
                report_json: Some(report.clone()),
            })
            .expect("replay");
            let mut v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("json");
            let swept = v["counters"]["sweep_examined"].take();
            (v["counters"].clone(), v["rule_hits"].clone(), swept)
        };
        // The bursts as the window defines them: each takes packets while it has fewer than
        // `size` and they are at most the window after its first.
        let bursts = |size: usize| {
            let (mut n, mut i) = (0u64, 0);
            while i < stamps.len() {
                let mut k = 1;
                while k < size
                    && i + k < stamps.len()
                    && stamps[i + k] - stamps[i] <= BURST_WINDOW_NS
                {
                    k += 1;
                }
                i += k;
                n += 1;
            }
            n
        };
        // Bursts of 32 are cut by the window only, bursts of 4 by their size too.
        assert!(bursts(32) < stamps.len() as u64 / 2 && bursts(4) > bursts(32));
        let one_by_one = counters(1);
        assert_eq!(one_by_one.0["packets"], stamps.len());
        assert!(stamps.len() > 300);
        for burst in [4, 32] {
            let (c, hits, swept) = counters(burst);
            assert_eq!((&c, &hits), (&one_by_one.0, &one_by_one.1), "burst {burst}");
            let expected = bursts(usize::from(burst));
            assert_eq!(swept, expected * SWEEP_BUDGET as u64, "burst {burst}");
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// The `--map` choice as it reads in words: parse the frame, then the longest prefix
    /// holding its source.
    fn mapped_by_parse(chooser: &PortChooser, frame: &[u8]) -> Option<PortId> {
        let parse = ParseConfig {
            verify_l4_checksum: false,
        };
        let p = wire::parse(frame, &parse, ChecksumHint::Good).ok()?;
        let m = chooser
            .map
            .iter()
            .find(|m| m.prefix.contains(p.addrs.family, p.addrs.src))?;
        Some(m.port)
    }

    /// Parsing only the frames whose claimed source falls in a prefix changes no choice: on
    /// every frame of the conformance traces, each cut short at every length, tagged with a
    /// VLAN, and with each of its first 64 bytes replaced by a few values.
    #[test]
    fn map_parses_only_frames_it_may_map_and_chooses_as_parsing_every_frame() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/linux-conformance/traces");
        let mut frames = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .expect("traces")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "pcapng"))
            .collect();
        paths.sort();
        for path in &paths {
            let reader = ctfw_capture::CaptureReader::open(path).expect("open");
            frames.extend(reader.map(|r| r.expect("record").data));
        }
        assert!(frames.len() > 100, "{} frames", frames.len());
        // Prefixes around sources the traces use: each v4 source's /32 and /16, v6 /64.
        let mut sources: Vec<(Family, u128)> = frames
            .iter()
            .filter(|f| wire::parse(f, &ParseConfig::default(), ChecksumHint::Good).is_ok())
            .filter_map(|f| claimed_source(f))
            .collect();
        sources.sort();
        sources.dedup();
        let v4: Vec<_> = sources.iter().filter(|s| s.0 == Family::V4).collect();
        let v6 = sources
            .iter()
            .find(|s| s.0 == Family::V6)
            .expect("an IPv6 source");
        assert!(v4.len() >= 2);
        let v4_addr = |a: u128| std::net::Ipv4Addr::from(a as u32).to_string();
        let mut map = vec![
            MapEntry {
                prefix: parse_prefix(&format!("{}/32", v4_addr(v4[0].1))).expect("p"),
                port: PortId(1),
            },
            MapEntry {
                prefix: parse_prefix(&format!("{}/16", v4_addr(v4[1].1))).expect("p"),
                port: PortId(0),
            },
            MapEntry {
                prefix: parse_prefix(&format!("{}/64", std::net::Ipv6Addr::from(v6.1))).expect("p"),
                port: PortId(1),
            },
        ];
        map.sort_by_key(|m| std::cmp::Reverse(m.prefix.prefix_len()));
        let chooser = PortChooser {
            fixed: None,
            map,
            interfaces: Vec::new(),
        };

        let mut variants = Vec::new();
        for f in &frames {
            variants.push(f.clone());
            for len in 0..f.len().min(80) {
                variants.push(f[..len].to_vec());
            }
            let mut tagged = f[..12.min(f.len())].to_vec();
            tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
            tagged.extend_from_slice(f.get(12..).unwrap_or_default());
            variants.push(tagged);
            for at in 0..f.len().min(64) {
                for v in [0x00, 0x01, 0x45, 0x60, 0x81, 0xff] {
                    let mut g = f.clone();
                    g[at] = v;
                    variants.push(g);
                }
            }
        }
        let (mut mapped, mut refused_after_claim) = (0, 0);
        for f in &variants {
            let expected = mapped_by_parse(&chooser, f);
            assert_eq!(chooser.mapped(f), expected, "frame {f:02x?}");
            mapped += usize::from(expected.is_some());
            let claimed_in_map = claimed_source(f)
                .is_some_and(|(fam, src)| chooser.map.iter().any(|m| m.prefix.contains(fam, src)));
            refused_after_claim += usize::from(claimed_in_map && expected.is_none());
        }
        // Both sides of the shortcut were taken: frames mapped, and frames whose claimed
        // source is in a prefix but which parsing refuses.
        assert!(mapped > 1000, "{mapped} mapped");
        assert!(
            refused_after_claim > 100,
            "{refused_after_claim} refused after a claim"
        );
    }
}
