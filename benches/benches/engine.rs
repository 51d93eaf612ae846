//! Engine benchmarks: the whole pipeline, frame bytes to verdict, on one core, in bursts of
//! [`BURST`] packets, with the classic policy (the `rules` group: sets of up to 10,000 rules)
//! and Linux default knobs. See `README.md` beside `Cargo.toml` for what each group measures
//! and how to run it.
//!
//! Every group that replays traffic uses `iter_custom`: frames are written (and tables reset)
//! between timed stretches, and only `Engine::process_burst` calls are inside the clock. One
//! criterion iteration is one burst, so the reported throughput is packets per second.
//!
//! Setup is deterministic (fixed seeds, fixed flow-hash keys); each group checks after its
//! run that the engine did what the benchmark claims (no drops on established flows, every
//! SYN evicting in the full table, ...), so a figure never silently measures a drop path.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant as WallClock};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use ctfw_benches::rules::{Position, rule_set};
use ctfw_benches::{
    FlowFactory, Frames, Rotation, START, Seg, Tally, drive, engine, establish, timed_bursts,
};
use ctfw_engine::pipeline::{BURST, Engine, Pkt, Verdict};
use ctfw_engine::rules::PortId;
use ctfw_engine::time::Tick;
use ctfw_engine::wire::{ChecksumHint, Family, IpAddrs, L4, ParseConfig};
use ctfw_engine::{Instant, Reason, wire};
use ctfw_tracegen::generate::{self, MixedOpts};
use ctfw_tracegen::{Packet, Side};

/// Bursts written between two timed stretches: 512 frames, about 160 KB, which stay in L2
/// as a NIC's DDIO would leave them in cache.
const CHUNK_BURSTS: usize = 16;

const SEED: u64 = 0x5eed_c7f3;

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Established flows and the traffic over them.
struct Established {
    e: Engine,
    rot: Rotation,
    frames: Frames,
    now: Instant,
}

impl Established {
    /// Set up `flows` ASSURED connections (untimed).
    fn new(factory: &FlowFactory, name: &str, flows: u64) -> Established {
        let t0 = WallClock::now();
        let mut e = engine(flows as u32);
        let mut now = START;
        let setup = establish(&mut e, factory, 0..flows, &mut now);
        assert_eq!(setup.dropped, 0, "setup of {name}: {setup:?}");
        assert_eq!(e.table().len() as u64, flows);
        eprintln!(
            "established/{name}: {flows} flows set up in {:.1?}; table {:.0} MiB, {:.1} B/flow",
            t0.elapsed(),
            mb(e.table().memory_bytes()),
            e.table().memory_bytes() as f64 / flows as f64,
        );
        Established {
            e,
            rot: Rotation::new(flows, 2, SEED),
            frames: Frames::new(CHUNK_BURSTS * BURST, factory.max_len()),
            now,
        }
    }

    /// Time `iters` bursts of traffic.
    fn run(&mut self, factory: &FlowFactory, iters: u64, csum: ChecksumHint) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let n = left.min(CHUNK_BURSTS as u64);
            self.rot.fill(factory, &mut self.frames, n as usize * BURST);
            total += timed_bursts(&mut self.e, &self.frames, n as usize, &mut self.now, csum);
            left -= n;
        }
        total
    }

    /// The traffic was what the benchmark claims: nothing dropped, no entry created.
    fn check(&self, name: &str, flows: u64) {
        let k = self.e.counters();
        assert_eq!(
            (k.dropped, k.created, k.packets - k.accepted),
            (0, flows, 0),
            "established/{name}: traffic was dropped or created entries"
        );
    }
}

/// 1. Established TCP flows: N ASSURED connections, then data and ACK segments of flows drawn
///    uniformly at random, each flow's segments in rotation so all stay in window.
fn established(c: &mut Criterion) {
    let v4 = FlowFactory::new(false);
    let v6 = FlowFactory::new(true);
    // (name, flows, factory, variants: (name suffix, checksum hint))
    type Case<'a> = (
        &'static str,
        u64,
        &'a FlowFactory,
        &'static [(&'static str, ChecksumHint)],
    );
    let cases: [Case<'_>; 5] = [
        ("1K", 1_000, &v4, &[("", ChecksumHint::Good)]),
        ("100K", 100_000, &v4, &[("", ChecksumHint::Good)]),
        (
            "1M",
            1_000_000,
            &v4,
            &[
                ("", ChecksumHint::Good),
                ("_sw_csum", ChecksumHint::Unknown),
            ],
        ),
        ("1M_v6", 1_000_000, &v6, &[("", ChecksumHint::Good)]),
        ("10M", 10_000_000, &v4, &[("", ChecksumHint::Good)]),
    ];
    let mut g = c.benchmark_group("established");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, flows, factory, variants) in cases {
        // Set up on first use: a filtered-out case costs nothing.
        let mut state: Option<Established> = None;
        for &(suffix, csum) in variants {
            g.bench_function(format!("{name}{suffix}"), |b| {
                let s = state.get_or_insert_with(|| Established::new(factory, name, flows));
                b.iter_custom(|iters| s.run(factory, iters, csum))
            });
        }
        if let Some(s) = state {
            s.check(name, flows);
        }
    }
    g.finish();
}

/// SYNs for consecutive flows, in chunks, timed; optionally in rounds over a fixed range of
/// flows with an untimed reset after each round.
struct SynFeed<'a> {
    factory: &'a FlowFactory,
    frames: Frames,
    now: Instant,
    /// The next flow to send a SYN for.
    flow: u64,
    /// `(first, len)`: after flow `first + len - 1`, reset and start again at `first`.
    round: Option<(u64, u64)>,
}

impl<'a> SynFeed<'a> {
    fn new(factory: &'a FlowFactory, now: Instant, first: u64, round: Option<u64>) -> Self {
        SynFeed {
            factory,
            frames: Frames::new(CHUNK_BURSTS * BURST, factory.max_len()),
            now,
            flow: first,
            round: round.map(|len| (first, len)),
        }
    }

    /// Time `iters` bursts of SYNs into `e`.
    fn run(
        &mut self,
        e: &mut Engine,
        iters: u64,
        reset: &mut dyn FnMut(&mut Engine, &mut Instant),
    ) -> Duration {
        let mut total = Duration::ZERO;
        let mut left = iters;
        while left > 0 {
            let mut n = left.min(CHUNK_BURSTS as u64);
            if let Some((first, len)) = self.round {
                n = n.min((first + len - self.flow) / BURST as u64);
            }
            self.frames.clear();
            for _ in 0..n * BURST as u64 {
                self.frames.push_seg(self.factory, self.flow, Seg::Syn);
                self.flow += 1;
            }
            total += timed_bursts(
                e,
                &self.frames,
                n as usize,
                &mut self.now,
                ChecksumHint::Good,
            );
            left -= n;
            if let Some((first, len)) = self.round {
                if self.flow == first + len {
                    reset(e, &mut self.now);
                    self.flow = first;
                }
            }
        }
        total
    }
}

/// 2. New connections: SYNs with distinct 5-tuples, accepted by the classic policy, each
///    creating an entry.
fn new_conns(c: &mut Criterion) {
    let factory = FlowFactory::new(false);
    let mut g = c.benchmark_group("new_conns");
    g.throughput(Throughput::Elements(BURST as u64));

    // a) An empty 1M table: rounds of 256K SYNs (the table never passes 25% full), each
    //    followed (untimed) by the servers' RSTs, which remove the entries again.
    {
        const CAP: u32 = 1 << 20;
        const ROUND: u64 = 1 << 18;
        let mut state: Option<(Engine, SynFeed<'_>)> = None;
        let mut rounds = 0u64;
        let mut reset = |e: &mut Engine, now: &mut Instant| {
            let t = drive(
                e,
                &factory,
                0..ROUND,
                &[Seg::ServerRst],
                now,
                ChecksumHint::Good,
            );
            assert_eq!(t.invalid, 0);
            assert!(
                e.table().is_empty(),
                "RSTs left {} entries",
                e.table().len()
            );
            rounds += 1;
        };
        g.bench_function("empty_table", |b| {
            let (e, feed) = state.get_or_insert_with(|| {
                (engine(CAP), SynFeed::new(&factory, START, 0, Some(ROUND)))
            });
            b.iter_custom(|iters| feed.run(e, iters, &mut reset))
        });
        if let Some((e, _)) = &state {
            let k = e.counters();
            assert_eq!((k.dropped, k.evicted), (0, 0), "empty_table: {k:?}");
            eprintln!(
                "new_conns/empty_table: {} SYNs accepted, {rounds} table resets",
                k.created
            );
        }
    }

    // b) 95% full of ASSURED connections; rounds of SYNs filling 4 of the remaining 5 points,
    //    each followed (untimed) by RSTs that remove them.
    {
        const CAP: u32 = 1_000_000;
        const ASSURED: u64 = 950_000;
        const ROUND: u64 = 40_000 / BURST as u64 * BURST as u64;
        let mut state: Option<(Engine, SynFeed<'_>)> = None;
        let mut reset = |e: &mut Engine, now: &mut Instant| {
            let t = drive(
                e,
                &factory,
                ASSURED..ASSURED + ROUND,
                &[Seg::ServerRst],
                now,
                ChecksumHint::Good,
            );
            assert_eq!(t.invalid, 0);
            assert_eq!(e.table().len() as u64, ASSURED);
        };
        g.bench_function("95pct_assured", |b| {
            let (e, feed) = state.get_or_insert_with(|| {
                let t0 = WallClock::now();
                let mut e = engine(CAP);
                let mut now = START;
                let t = establish(&mut e, &factory, 0..ASSURED, &mut now);
                assert_eq!(t.dropped, 0);
                eprintln!(
                    "new_conns/95pct_assured: {ASSURED} connections set up in {:.1?}",
                    t0.elapsed()
                );
                (e, SynFeed::new(&factory, now, ASSURED, Some(ROUND)))
            });
            b.iter_custom(|iters| feed.run(e, iters, &mut reset))
        });
        if let Some((e, _)) = &state {
            let k = e.counters();
            assert_eq!(
                (k.dropped, k.evicted, k.get(Reason::TableFull)),
                (0, 0, 0),
                "95pct_assured: {k:?}"
            );
        }
    }

    // c) A table full of SYN_SENT (non-ASSURED) entries: every SYN evicts one.
    {
        const CAP: u32 = 1 << 20;
        let mut state: Option<(Engine, SynFeed<'_>, u64)> = None;
        g.bench_function("full_evict", |b| {
            let (e, feed, _) = state.get_or_insert_with(|| {
                let mut e = engine(CAP);
                let mut now = START;
                let t = drive(
                    &mut e,
                    &factory,
                    0..u64::from(CAP),
                    &[Seg::Syn],
                    &mut now,
                    ChecksumHint::Good,
                );
                assert_eq!(t.dropped, 0);
                assert_eq!(e.table().len(), CAP as usize);
                let created = e.counters().created;
                (
                    e,
                    SynFeed::new(&factory, now, u64::from(CAP), None),
                    created,
                )
            });
            b.iter_custom(|iters| feed.run(e, iters, &mut |_, _| {}))
        });
        if let Some((e, _, created0)) = &state {
            let k = e.counters();
            assert_eq!(k.dropped, 0, "full_evict: {k:?}");
            assert_eq!(k.evicted, k.created - created0, "every SYN must evict");
        }
    }
    g.finish();
}

/// A captured packet, owned, with its engine inputs.
struct Recorded {
    data: Vec<u8>,
    port: PortId,
    /// What a NIC that verifies IPv4/TCP/UDP checksums would report.
    nic: ChecksumHint,
    ts: Instant,
}

fn has_bad_checksum(data: &[u8]) -> bool {
    match wire::parse(data, &ParseConfig::default(), ChecksumHint::Unknown) {
        Err(Reason::Ipv4BadChecksum) => true,
        Ok(p) => matches!(
            p.l4,
            L4::Malformed(Reason::TcpBadChecksum | Reason::UdpBadChecksum)
        ),
        Err(_) => false,
    }
}

/// The mixed trace, generated once, truncated to whole bursts; described on stderr.
fn mixed_trace() -> Vec<Recorded> {
    let opts = MixedOpts {
        flows: MIXED_FLOWS,
        packets: MIXED_PACKETS,
        ..MixedOpts::default()
    };
    let mut trace: Vec<Packet> = Vec::new();
    let summary = generate::mixed(&opts, &mut trace).expect("writing to a Vec cannot fail");
    trace.truncate(trace.len() / BURST * BURST);
    let recs: Vec<Recorded> = trace
        .into_iter()
        .map(|p| Recorded {
            port: match p.side {
                Side::Inside => PortId(0),
                Side::Outside => PortId(1),
            },
            nic: if has_bad_checksum(&p.data) {
                ChecksumHint::Unknown
            } else {
                ChecksumHint::Good
            },
            ts: Instant(p.ts_ns),
            data: p.data,
        })
        .collect();
    // One pass to describe the mix.
    let mut e = engine(MIXED_CAPACITY);
    let mut out = [Verdict::default(); BURST];
    let mut tally = Tally::default();
    for chunk in recs.chunks(BURST) {
        let pkts: Vec<Pkt<'_>> = chunk
            .iter()
            .map(|r| Pkt {
                data: &r.data,
                tail: &[],
                port: r.port,
                csum: r.nic,
            })
            .collect();
        e.process_burst(chunk[0].ts, &pkts, &mut out);
        tally.add(&out);
    }
    let bytes: usize = recs.iter().map(|r| r.data.len()).sum();
    let k = e.counters();
    eprintln!(
        "mixed: {} packets ({} conversations, mean {} B, {} with a bad checksum), \
         {} forwarded, {} dropped, {} invalid; {} entries created, {} live at the end, \
         {} evicted",
        recs.len(),
        summary.flows,
        bytes / recs.len(),
        recs.iter()
            .filter(|r| r.nic == ChecksumHint::Unknown)
            .count(),
        tally.forwarded,
        tally.dropped,
        tally.invalid,
        k.created,
        e.table().len(),
        k.evicted,
    );
    recs
}

const MIXED_FLOWS: u64 = 2_000;
const MIXED_PACKETS: u64 = 200_000;
const MIXED_CAPACITY: u32 = 1 << 16;

/// Packet `i` of `frames` with the checksum hint of `rec` (or software checksums if `sw`).
#[inline]
fn mixed_pkt<'a>(frames: &'a Frames, i: usize, rec: &Recorded, sw: bool) -> Pkt<'a> {
    let (data, port) = frames.frame(i);
    Pkt {
        data,
        tail: &[],
        port,
        csum: if sw { ChecksumHint::Unknown } else { rec.nic },
    }
}

/// Copy bursts `first..first + n` of the trace into `frames` (as a NIC would have written them).
fn load_bursts(frames: &mut Frames, recs: &[Recorded], first: usize, n: usize) {
    frames.clear();
    for r in &recs[first * BURST..(first + n) * BURST] {
        frames.push_with(r.port, |out| {
            out[..r.data.len()].copy_from_slice(&r.data);
            r.data.len()
        });
    }
}

/// 3. The mixed trace (handshakes, data, closes, UDP, ICMP, invalid packets, VLAN, IPv6),
///    replayed from the start into a fresh engine, in bursts, `now` taken from the trace.
fn mixed(c: &mut Criterion) {
    let mut recs: Option<Vec<Recorded>> = None;
    let mut g = c.benchmark_group("mixed");
    g.throughput(Throughput::Elements(BURST as u64));
    for (name, sw) in [("nic_csum", false), ("sw_csum", true)] {
        let mut e = engine(MIXED_CAPACITY);
        let mut next = 0usize;
        g.bench_function(name, |b| {
            let recs = recs.get_or_insert_with(mixed_trace);
            let bursts = recs.len() / BURST;
            let slot = recs.iter().map(|r| r.data.len()).max().unwrap_or(0);
            let mut frames = Frames::new(CHUNK_BURSTS * BURST, slot);
            b.iter_custom(|iters| {
                let mut out = [Verdict::default(); BURST];
                let mut total = Duration::ZERO;
                let mut left = iters as usize;
                while left > 0 {
                    if next == bursts {
                        // Replay from the start into a fresh engine (untimed).
                        e = engine(MIXED_CAPACITY);
                        next = 0;
                    }
                    let n = left.min(bursts - next).min(CHUNK_BURSTS);
                    load_bursts(&mut frames, recs, next, n);
                    let t = WallClock::now();
                    for k in 0..n {
                        let base = (next + k) * BURST;
                        let pkts: [Pkt<'_>; BURST] = core::array::from_fn(|i| {
                            mixed_pkt(&frames, k * BURST + i, &recs[base + i], sw)
                        });
                        e.process_burst(recs[base].ts, &pkts, &mut out);
                        black_box(&out);
                    }
                    total += t.elapsed();
                    next += n;
                    left -= n;
                }
                total
            })
        });
    }
    g.finish();
}

/// 4. Rule evaluation at scale: established traffic over 1K flows (as `established/1K`),
///    decided by a set of 10, 1,000 or 10,000 rules whose deciding rule comes first or last,
///    or by the default policy after none matched (`ctfw_benches::rules`).
fn rules(c: &mut Criterion) {
    const FLOWS: u64 = 1_000;
    let factory = FlowFactory::new(false);
    let mut g = c.benchmark_group("rules");
    g.throughput(Throughput::Elements(BURST as u64));
    for (size, count) in [("10", 10), ("1K", 1_000), ("10K", 10_000)] {
        for (pos_name, pos) in Position::ALL {
            let name = format!("{size}/{pos_name}");
            let mut state: Option<Established> = None;
            g.bench_function(&name, |b| {
                let s = state.get_or_insert_with(|| {
                    // Set up with the classic policy, which accepts the handshakes; then
                    // swap in the large set, as a reload does (the table stays).
                    let mut s = Established::new(&factory, &name, FLOWS);
                    let t0 = WallClock::now();
                    let set = rule_set(count, pos);
                    eprintln!(
                        "rules/{name}: {count} rules built in {:.1?} ({}, {} KiB beside the rules)",
                        t0.elapsed(),
                        if set.is_classified() {
                            "classifier"
                        } else {
                            "scanned"
                        },
                        set.classifier_bytes() / 1024,
                    );
                    let cfg = s.e.config().clone();
                    s.e.reload(set, &cfg).expect("only the rules change");
                    s
                });
                b.iter_custom(|iters| s.run(&factory, iters, ChecksumHint::Good))
            });
            if let Some(s) = state {
                s.check(&name, FLOWS);
                let hits = s.e.rule_hits();
                let decided = pos.deciding(count).unwrap_or(hits.len() - 1);
                let total: u64 = hits.iter().sum();
                assert_eq!(
                    hits[decided], total,
                    "rules/{name}: a rule other than the deciding one matched"
                );
            }
        }
    }
    g.finish();
}

/// A distinct IPv4 key per `i < 2^24`, cheap enough to build inside a timed loop.
#[inline]
fn v4_key(i: u64) -> ctfw_engine::flow::FlowKey {
    use ctfw_engine::flow::{Endpoints, FlowKey};
    FlowKey::from_ports(Endpoints {
        addrs: IpAddrs {
            family: Family::V4,
            src: u128::from(0x0a00_0000 | (i as u32 & 0x00ff_ffff)),
            dst: 0xac10_0001,
        },
        sport: 1024 + (i % 50_000) as u16,
        dport: 443,
        proto: 6,
    })
    .key
}

/// 5. Micro-benchmarks: parsing alone, table lookups at 1M entries, flow hashing.
fn micro(c: &mut Criterion) {
    use ctfw_engine::flow::{Endpoints, FlowHasher, FlowKey};
    use ctfw_engine::table::{Entry, Table};
    use ctfw_engine::time::Ticks;
    use ctfw_engine::track::ProtoState;
    use ctfw_tracegen::rng::Rng;

    let factory = FlowFactory::new(false);
    let data = factory.frame(12_345, Seg::ClientData);
    let ack = factory.frame(12_345, Seg::ClientAck);
    let cfg = ParseConfig::default();
    let mut g = c.benchmark_group("parse");
    g.throughput(Throughput::Elements(1));
    for (name, frame, hint) in [
        ("tcp_data_566B_nic_csum", &data, ChecksumHint::Good),
        ("tcp_data_566B_sw_csum", &data, ChecksumHint::Unknown),
        ("tcp_ack_54B_nic_csum", &ack, ChecksumHint::Good),
        ("tcp_ack_54B_sw_csum", &ack, ChecksumHint::Unknown),
    ] {
        assert!(wire::parse(frame, &cfg, hint).is_ok());
        g.bench_function(name, |b| {
            b.iter(|| wire::parse(black_box(frame), &cfg, black_box(hint)))
        });
    }
    g.finish();

    // Table lookups: 1M live entries (a full pool), keys drawn uniformly.
    const N: u64 = 1 << 20;
    let now = Tick(1_000);
    let mut table: Option<Table> = None;
    let fill = || {
        let mut t = Table::new(N as u32, FlowHasher::with_seeds(ctfw_benches::SEEDS));
        for i in 0..N {
            let k = v4_key(i);
            let h = t.hash(&k);
            let e = Entry::new(
                &k,
                false,
                now.after(Ticks::from_secs(3600)),
                ProtoState::Generic,
            );
            t.insert(&h, e, now).expect("the index holds a full pool");
        }
        t
    };
    let mut g = c.benchmark_group("table_lookup_1M");
    g.throughput(Throughput::Elements(BURST as u64));
    let mut rng = Rng::new(SEED);
    let mut expired = 0u64;
    g.bench_function("one_by_one", |b| {
        let table = table.get_or_insert_with(fill);
        b.iter(|| {
            let mut found = 0u32;
            for _ in 0..BURST {
                let k = v4_key(rng.below(N));
                let h = table.hash(&k);
                found += table.find(&k, &h, now, &mut expired).is_some() as u32;
            }
            assert_eq!(found, BURST as u32);
        })
    });
    g.bench_function("staged_prefetch", |b| {
        let table = table.get_or_insert_with(fill);
        b.iter(|| {
            let keys: [FlowKey; BURST] = core::array::from_fn(|_| v4_key(rng.below(N)));
            let hashes = keys.map(|k| table.hash(&k));
            for h in &hashes {
                table.prefetch_buckets(h);
            }
            let cands = hashes.map(|h| table.candidate(&h));
            for c in cands {
                table.prefetch_entry(c);
            }
            let mut found = 0u32;
            for (k, h) in keys.iter().zip(&hashes) {
                found += table.find(k, h, now, &mut expired).is_some() as u32;
            }
            assert_eq!(found, BURST as u32);
        })
    });
    g.bench_function("keys_only", |b| {
        b.iter(|| {
            let keys: [FlowKey; BURST] = core::array::from_fn(|_| v4_key(rng.below(N)));
            black_box(keys);
        })
    });
    g.finish();

    let hasher = FlowHasher::with_seeds(ctfw_benches::SEEDS);
    let v6 = FlowKey::from_ports(Endpoints {
        addrs: IpAddrs {
            family: Family::V6,
            src: 0xfd00_0001_0000_0000_0000_0000_0000_0002,
            dst: 0xfd00_0002_0000_0000_0000_0000_0000_0002,
        },
        sport: 40_200,
        dport: 443,
        proto: 6,
    })
    .key;
    let mut g = c.benchmark_group("flow_hash");
    g.throughput(Throughput::Elements(1));
    for (name, key) in [("v4", v4_key(77)), ("v6", v6)] {
        g.bench_function(name, |b| b.iter(|| hasher.hash(black_box(&key))));
    }
    g.finish();
}

criterion_group!(benches, established, new_conns, mixed, rules, micro);
criterion_main!(benches);
