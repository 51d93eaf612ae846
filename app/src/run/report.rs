//! What `ctfw run` prints: the layout at start-up, progress lines, and the final report.

use std::sync::Arc;
use std::time::Duration;

use ctfw_config::Config;
use ctfw_engine::Counters;
use ctfw_engine::time::Instant;

use super::args::Args;
use super::control::{MainIo, Stop};
use super::eal::{self, Memory};
use super::layout::{RxMode, TxMode};
use super::ports::{Closed, PortSetup};
use super::rings::Rings;
use super::worker::{Finished, IoCounters, Shared};
use super::worker_capacity;
use crate::summary;

/// Print the start-up layout: memory mode, ports and their queues, what each lcore polls.
pub fn print_layout(
    cfg: &Config,
    ports: &[PortSetup],
    rings: &Rings,
    lcores: &[u32],
    memory: Memory,
) {
    outln!("ctfw run: {}", cfg.source.display());
    outln!(
        "  memory: {}; {} worker(s); burst {}",
        match memory {
            Memory::Hugepages => "hugepages (--in-memory)",
            Memory::NoHuge => "no hugepages (--no-huge)",
        },
        cfg.dataplane.workers,
        cfg.dataplane.burst
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
    let capacity = worker_capacity(cfg);
    for (w, lcore) in lcores
        .iter()
        .take(usize::from(cfg.dataplane.workers))
        .enumerate()
    {
        let polls: Vec<String> = ports
            .iter()
            .filter_map(|p| match p.plan.rx {
                RxMode::Direct => Some(format!("{} q0", p.name)),
                RxMode::Rss => Some(format!("{} q{w}", p.name)),
                RxMode::Distributed => None,
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
            format!(", software distribution of {}", dist.join(", "))
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

/// Print the final report: why and when the run stopped, packets in and out, the engine
/// counters and rule hits summed over the workers, each worker's share, and the tables.
pub fn print_final(
    cfg: &Config,
    args: &Args,
    stop: Stop,
    elapsed: Duration,
    workers: &[Finished],
    main: &MainIo,
    now: Instant,
) {
    let mut total = Counters::default();
    let mut io_total = IoCounters::default();
    let mut hits = vec![0u64; cfg.rules.len() + 1];
    let (mut table_len, mut capacity) = (0, 0);
    for r in workers {
        total.merge(r.engine.counters());
        io_total += &r.io;
        for (a, b) in hits.iter_mut().zip(r.engine.rule_hits()) {
            *a += b;
        }
        table_len += r.engine.table().len();
        capacity += r.engine.table().capacity();
    }
    outln!(
        "ctfw run: stopped after {:.2} s ({stop})",
        elapsed.as_secs_f64()
    );
    outln!(
        "  received {}  transmitted {}  tx dropped {}  (distributor: {} received, {} ring-full drops; {} ICMP errors re-dispatched, {} dropped on a full ring)",
        io_total.rx_port + main.rx,
        io_total.tx_port + main.tx,
        io_total.tx_dropped + main.tx_dropped,
        main.rx,
        main.ring_dropped,
        io_total.redispatched,
        io_total.redispatch_dropped
    );
    outln!(
        "  rings: workers took {} from their input rings and put {} in shared TX rings",
        io_total.rx_ring,
        io_total.tx_ring
    );
    summary::print_counters(&total, table_len, capacity);
    summary::print_rule_hits(&cfg.rules, &hits);
    for (w, r) in workers.iter().enumerate() {
        let c = r.engine.counters();
        outln!(
            "  worker {w}: {} packets, {} accepted, {} dropped, {} entries",
            c.packets,
            c.accepted,
            c.dropped,
            r.engine.table().len()
        );
    }
    let mut entries: Vec<_> = workers
        .iter()
        .flat_map(|r| summary::snapshot(&r.engine, now))
        .collect();
    summary::sort_entries(&mut entries);
    summary::print_table(&entries, args.max_entries);
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
        outln!("  mempool {}: {} of {} mbufs free", c.pool, c.free, c.size);
    }
}
