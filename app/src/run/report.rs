//! What `ctfw run` reports: the layout at start-up, progress lines, and the final report,
//! printed and, with `--report-json`, written as JSON.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use ctfw_config::Config;
use ctfw_engine::Counters;
use ctfw_engine::time::Instant;
use ctfw_engine::view::EntryView;
use serde::Serialize;

use super::control::{MainCounters, MainIo, Stop};
use super::eal::{self, Memory};
use super::layout::{RxMode, TxMode};
use super::memory::{self, Advice, Engines};
use super::ports::{Closed, PortSetup};
use super::rings::Rings;
use super::worker::{Finished, IoCounters, PortVerdicts, Shared};
use super::worker_capacity;
use crate::stats::{self, DeviceStats};
use crate::{json, summary};

/// Print the start-up layout: memory (the EAL's and the connection tables'), ports and their
/// queues, what each lcore polls.
pub fn print_layout(
    cfg: &Config,
    ports: &[PortSetup],
    rings: &Rings,
    lcores: &[u32],
    memory: Memory,
    engines: &Engines,
) {
    outln!("ctfw run: {}", cfg.source.display());
    outln!(
        "  memory: {} MiB {}; {} worker(s); burst {}",
        cfg.dataplane.memory_mb,
        match memory {
            Memory::Hugepages => "of hugepages (--in-memory)",
            Memory::NoHuge => "without hugepages (--no-huge)",
        },
        cfg.dataplane.workers,
        cfg.dataplane.burst
    );
    outln!(
        "  conntrack: capacity {} in {} table(s), exactly as configured; {} for the tables{}",
        cfg.engine.capacity,
        cfg.dataplane.workers,
        memory::human(engines.bytes),
        match (&engines.advice, engines.huge_bytes) {
            (Advice::NotAsked, _) => ", ordinary pages".to_owned(),
            (Advice::Asked(mode), Some(huge)) => format!(
                ", {} of it on transparent huge pages (kernel mode {mode})",
                memory::human(huge)
            ),
            (Advice::Asked(mode), None) => {
                format!(", transparent huge pages advised (kernel mode {mode})")
            }
            (Advice::Failed(e), _) => format!(", ordinary pages (huge page advice failed: {e})"),
        }
    );
    for (i, p) in ports.iter().enumerate() {
        let peer = &cfg.ports[usize::from(cfg.ports[i].peer.0)].name;
        outln!(
            "  port {i} {:<8} {} (driver {}, ethdev {}) -> {peer}: RX {} queue(s) x {} desc, TX {} queue(s) x {} desc{}; {}",
            p.name,
            eal::device_name(&p.device),
            p.driver,
            p.port.id(),
            p.accepted.rx_queues,
            p.accepted.rx_desc,
            p.accepted.tx_queues,
            p.accepted.tx_desc,
            p.accepted
                .rss
                .as_ref()
                .map_or(String::new(), |r| format!(", RSS hf {:#x}", r.hf)),
            p.plan.why
        );
    }
    for (w, lcore) in lcores
        .iter()
        .take(usize::from(cfg.dataplane.workers))
        .enumerate()
    {
        let capacity = worker_capacity(cfg, w as u16);
        let polls: Vec<String> = ports
            .iter()
            .flat_map(|p| {
                p.plan
                    .worker_rx(w as u16)
                    .map(move |q| format!("{} q{q}", p.name))
            })
            .chain((!rings.workers.is_empty()).then(|| "its ring".to_owned()))
            .collect();
        outln!(
            "  worker {w}: lcore {lcore}, table capacity {capacity}, polls {}",
            polls.join(", ")
        );
    }
    let dist: Vec<_> = ports
        .iter()
        .filter(|p| p.plan.rx == RxMode::Distributed)
        .map(|p| p.name.as_str())
        .collect();
    let txs: Vec<_> = ports
        .iter()
        .filter(|p| p.plan.tx == TxMode::Shared)
        .map(|p| p.name.as_str())
        .collect();
    outln!(
        "  main lcore: control{}{}",
        if dist.is_empty() {
            String::new()
        } else {
            format!(
                ", software distribution of {} ({})",
                dist.join(", "),
                if ports.iter().any(|p| p.plan.rx == RxMode::Rss) {
                    "symmetric Toeplitz hash, as the RSS ports"
                } else {
                    "keyed symmetric hash, secret per start"
                }
            )
        },
        if txs.is_empty() {
            String::new()
        } else {
            format!(", TX for {}", txs.join(", "))
        }
    );
}

/// Print one progress line (`--stats-interval`) from the workers' latest snapshots.
pub fn print_progress(shared: &[Arc<Shared>], cfg: &Config, started: std::time::Instant) {
    let mut c = Counters::default();
    let mut entries = 0;
    for s in shared {
        let g = s
            .snapshot
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        c.merge(&g.counters);
        entries += g.entries;
    }
    outln!(
        "[{:>8.1} s] packets {} accepted {} dropped {} entries {} (capacity {})",
        started.elapsed().as_secs_f64(),
        c.packets,
        c.accepted,
        c.dropped,
        entries,
        cfg.engine.capacity
    );
}

/// A worker's share of the run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct WorkerShare {
    /// Packets it handed to its engine.
    pub packets: u64,
    /// Of those, forwarded.
    pub accepted: u64,
    /// Of those, dropped.
    pub dropped: u64,
    /// Entries left in its table.
    pub entries: usize,
}

/// The run's final numbers, summed over the workers and the main lcore, and per worker. They
/// outlive the workers' engines, so that the JSON report can be written once the ports are
/// closed.
pub struct Final {
    stop: Stop,
    elapsed: Duration,
    memory: Memory,
    main: MainCounters,
    io: IoCounters,
    counters: Counters,
    /// Per rule, then the default policy.
    hits: Vec<u64>,
    table_len: usize,
    capacity: usize,
    workers: Vec<WorkerShare>,
    /// Packets decided by ingress port, summed over the workers (indexed by `PortId`).
    by_port: Vec<PortVerdicts>,
    /// Every entry of every table, in the listings' order.
    entries: Vec<EntryView>,
}

impl Final {
    /// Sum what the `workers` handed back and what the main lcore counted; the tables are
    /// read at `now`.
    pub fn new(
        cfg: &Config,
        stop: Stop,
        elapsed: Duration,
        memory: Memory,
        workers: &[Finished],
        main: &MainIo,
        now: Instant,
    ) -> Final {
        let mut f = Final {
            stop,
            elapsed,
            memory,
            main: main.counters,
            io: IoCounters::default(),
            counters: Counters::default(),
            hits: vec![0; cfg.rules.len() + 1],
            table_len: 0,
            capacity: 0,
            workers: Vec::new(),
            by_port: vec![PortVerdicts::default(); cfg.ports.len()],
            entries: Vec::new(),
        };
        for w in workers {
            let (c, table) = (w.engine.counters(), w.engine.table());
            f.counters.merge(c);
            f.io += &w.io;
            for (a, b) in f.by_port.iter_mut().zip(&w.by_port) {
                a.accepted_packets += b.accepted_packets;
                a.accepted_bytes += b.accepted_bytes;
                a.dropped_packets += b.dropped_packets;
                a.dropped_bytes += b.dropped_bytes;
            }
            for (a, b) in f.hits.iter_mut().zip(w.engine.rule_hits()) {
                *a += b;
            }
            f.table_len += table.len();
            f.capacity += table.capacity();
            f.workers.push(WorkerShare {
                packets: c.packets,
                accepted: c.accepted,
                dropped: c.dropped,
                entries: table.len(),
            });
            f.entries.extend(summary::snapshot(&w.engine, now));
        }
        summary::sort_entries(&mut f.entries);
        f
    }

    /// Print the final report: why and when the run stopped, packets in and out, the engine
    /// counters and rule hits summed over the workers, each worker's share, and the table.
    pub fn print(&self, cfg: &Config, max_entries: usize) {
        let (io, main) = (&self.io, &self.main);
        outln!(
            "ctfw run: stopped after {:.2} s ({})",
            self.elapsed.as_secs_f64(),
            self.stop
        );
        outln!(
            "  received {}  transmitted {}  tx dropped {}  (distributor: {} received, {} ring-full drops; {} ICMP errors re-dispatched, {} dropped on a full ring)",
            io.rx_port + main.rx,
            io.tx_port + main.tx,
            io.tx_dropped + main.tx_dropped,
            main.rx,
            main.ring_dropped,
            io.redispatched,
            io.redispatch_dropped
        );
        outln!(
            "  rings: workers took {} from their input rings and put {} in shared TX rings; \
             RX held back by full TX buffers in {} rounds",
            io.rx_ring,
            io.tx_ring,
            io.rx_held
        );
        summary::print_counters(&self.counters, self.table_len, self.capacity);
        summary::print_rule_hits(&cfg.rules, &self.hits);
        for (w, s) in self.workers.iter().enumerate() {
            outln!(
                "  worker {w}: {} packets, {} accepted, {} dropped, {} entries",
                s.packets,
                s.accepted,
                s.dropped,
                s.entries
            );
        }
        summary::print_table(&self.entries, max_entries);
    }

    /// Write the JSON form of the report, with the closed ports, to `path`.
    pub fn write_json(
        &self,
        path: &Path,
        cfg: &Config,
        max_entries: usize,
        closed: &[Closed],
    ) -> Result<()> {
        let (io, main) = (&self.io, &self.main);
        let report = Report {
            config: cfg.source.display().to_string(),
            stopped_by: match self.stop {
                Stop::Signal => "signal",
                Stop::Idle(_) => "idle_exit",
            },
            seconds: self.elapsed.as_secs_f64(),
            memory: match self.memory {
                Memory::Hugepages => "hugepages",
                Memory::NoHuge => "no_huge",
            },
            io: Io {
                received: io.rx_port + main.rx,
                transmitted: io.tx_port + main.tx,
                tx_dropped: io.tx_dropped + main.tx_dropped,
                distributor_received: main.rx,
                distributor_ring_full_dropped: main.ring_dropped,
                icmp_errors_redispatched: io.redispatched,
                icmp_errors_redispatch_dropped: io.redispatch_dropped,
                from_worker_rings: io.rx_ring,
                to_shared_tx_rings: io.tx_ring,
                rx_held_rounds: io.rx_held,
            },
            counters: (&self.counters).into(),
            rule_hits: json::RuleHits::new(&cfg.rules, &self.hits),
            workers: &self.workers,
            table: json::Table::new(&self.entries, self.table_len, self.capacity, max_entries),
            ports: closed
                .iter()
                .zip(&self.by_port)
                .map(|(c, d)| Port {
                    name: &c.name,
                    decided: stats::PortVerdicts {
                        port: c.name.clone(),
                        accepted_packets: d.accepted_packets,
                        accepted_bytes: d.accepted_bytes,
                        dropped_packets: d.dropped_packets,
                        dropped_bytes: d.dropped_bytes,
                    },
                    stats: c.stats.as_ref().map(DeviceStats::from),
                    mempool: Mempool {
                        name: &c.pool,
                        free: c.free,
                        size: c.size,
                        driver_keeps: c.driver_keeps,
                    },
                })
                .collect(),
            mbufs_leaked: closed.iter().any(Closed::leaked),
        };
        json::write(path, &report)
    }
}

/// The JSON form of the final report (`--report-json`; [`json`] has the parts it shares with
/// `ctfw replay`).
#[derive(Debug, Serialize)]
struct Report<'a> {
    /// The configuration.
    config: String,
    /// `signal` or `idle_exit`.
    stopped_by: &'static str,
    /// From the workers' start to the stop.
    seconds: f64,
    /// `hugepages` or `no_huge`.
    memory: &'static str,
    io: Io,
    counters: json::Counters,
    rule_hits: json::RuleHits,
    /// Each worker's share, by worker index.
    workers: &'a [WorkerShare],
    table: json::Table,
    /// In configuration order.
    ports: Vec<Port<'a>>,
    /// Whether some pool missed mbufs after the ports closed (the run then fails).
    mbufs_leaked: bool,
}

/// Packets around the engine: received from and handed to devices, and moved between lcores.
#[derive(Debug, Serialize)]
struct Io {
    /// From the ports, by the workers and the distributor.
    received: u64,
    /// Handed to the ports, by the workers and the main lcore.
    transmitted: u64,
    /// Accepted, but their device took nothing for a while (a stalled TX path) or still
    /// refused them at the end: freed. Overload holds RX back instead.
    tx_dropped: u64,
    /// Received by the software distributor.
    distributor_received: u64,
    /// Received by the distributor and freed because the owner's ring was full.
    distributor_ring_full_dropped: u64,
    /// ICMP errors handed to the worker that owns the flow they quote.
    icmp_errors_redispatched: u64,
    /// ICMP errors freed because that worker's ring was full.
    icmp_errors_redispatch_dropped: u64,
    /// Taken by workers from their input rings.
    from_worker_rings: u64,
    /// Put by workers in shared TX rings.
    to_shared_tx_rings: u64,
    /// Worker rounds that left packets unread because a TX buffer could not take a burst
    /// (back-pressure).
    rx_held_rounds: u64,
}

/// One port at the end.
#[derive(Debug, Serialize)]
struct Port<'a> {
    name: &'a str,
    /// Packets received on it that the engine decided, summed over the workers (as the live
    /// statistics' `ports[].decided`).
    decided: stats::PortVerdicts,
    /// `null` if the device could not give them.
    stats: Option<DeviceStats>,
    mempool: Mempool<'a>,
}

/// A port's packet pool after the port closed.
#[derive(Debug, Serialize)]
struct Mempool<'a> {
    name: &'a str,
    /// Mbufs back in the pool.
    free: u32,
    /// Mbufs it holds when none is out.
    size: u32,
    /// Mbufs the driver keeps through close by design (`net_af_xdp`'s fill rings), not a
    /// leak: exactly as many as it took before the first packet.
    driver_keeps: u32,
}

/// Print each closed port's statistics and whether its pool is full again.
pub fn print_ports(closed: &[Closed]) {
    for c in closed {
        if let Some(s) = &c.stats {
            outln!(
                "  port {}: rx {} tx {} missed {} rx errors {} tx errors {} no-mbuf {}",
                c.name,
                s.ipackets,
                s.opackets,
                s.imissed,
                s.ierrors,
                s.oerrors,
                s.rx_nombuf
            );
        }
        if c.driver_keeps > 0 {
            outln!(
                "  mempool {}: {} of {} mbufs free ({} stay in the driver's rings by design)",
                c.pool,
                c.free,
                c.size,
                c.driver_keeps
            );
        } else {
            outln!("  mempool {}: {} of {} mbufs free", c.pool, c.free, c.size);
        }
    }
}
