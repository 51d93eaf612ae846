//! The main lcore's side of the live statistics: about once a second, and soon after a reader
//! asks ([`Board::fresh`]), it collects the workers' latest snapshots, the ports' DPDK
//! counters and extended counters and the pools' fill into a [`Stats`], and posts it on the
//! [`Board`].
//!
//! Only the main lcore calls this, from its control loop: the ports' control functions are
//! not thread-safe and the main lcore owns them. Workers are read through the snapshots they
//! publish, under a mutex each holds only while copying into it; a collection costs a worker
//! nothing. On-demand collections are at least [`MIN_INTERVAL`] apart, so readers cannot
//! keep the main lcore (which may be distributing packets) busy collecting.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ctfw_config::Config;
use ctfw_engine::Counters;

use super::control::MainCounters;
use super::ports::PortSetup;
use super::worker::{Shared, Snapshot};
use crate::json;
use crate::stats::{
    self, Board, DeviceStats, Main, Mempool, Polls, Port, PortVerdicts, Stats, Table, Worker,
    WorkerIo,
};

/// How often statistics are collected when nobody asks.
pub const INTERVAL: Duration = Duration::from_secs(1);
/// The least time between two collections, however often readers ask.
pub const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// What the main lcore needs to collect statistics.
pub struct Publisher<'a> {
    board: Arc<Board>,
    /// The configuration in force (rule names; a reload replaces it).
    cfg: Config,
    ports: &'a [PortSetup],
    workers: &'a [Arc<Shared>],
    lcores: &'a [u32],
    started: Instant,
    /// TSC ticks per second, for the workers' cycle counts.
    hz: u64,
    /// The last collection, and each worker's polls then (for the busy ratio).
    last: Option<(Instant, Vec<super::worker::Polls>)>,
}

/// One port: what it is, and what its device and pool say now.
pub struct PortReading<'a> {
    /// Its name in the configuration.
    pub name: &'a str,
    /// Its DPDK device.
    pub device: &'a str,
    /// Its driver.
    pub driver: &'a str,
    /// Its pool's name.
    pub pool: &'a str,
    /// Basic counters, if the device gave them.
    pub stats: Option<rte::PortStats>,
    /// Extended counters (empty if the device gave none).
    pub xstats: Vec<(String, u64)>,
    /// Mbufs free in its pool.
    pub free: u32,
    /// Mbufs its pool holds.
    pub size: u32,
}

impl<'a> Publisher<'a> {
    /// A publisher posting on `board` what `workers` (running on `lcores`) and `ports`
    /// report, the workers having started at `started`.
    pub fn new(
        board: Arc<Board>,
        cfg: &'a Config,
        ports: &'a [PortSetup],
        workers: &'a [Arc<Shared>],
        lcores: &'a [u32],
        started: Instant,
    ) -> Publisher<'a> {
        Publisher {
            board,
            cfg: cfg.clone(),
            ports,
            workers,
            lcores,
            started,
            hz: rte::tsc_hz().max(1),
            last: None,
        }
    }

    /// Collect and post if it is time: [`INTERVAL`] since the last collection, or a reader
    /// asked and [`MIN_INTERVAL`] has passed.
    pub fn tick(&mut self, main: &MainCounters) {
        let due = match &self.last {
            None => true,
            Some((at, _)) => {
                let since = at.elapsed();
                since >= INTERVAL || (since >= MIN_INTERVAL && self.board.wanted())
            }
        };
        if due {
            self.publish(main);
        }
    }

    /// Statistics as of now, for a reader on this lcore (the control socket's `stats`):
    /// collected now unless the last collection is less than [`MIN_INTERVAL`] old.
    pub fn fresh(&mut self, main: &MainCounters) -> Arc<Stats> {
        if self
            .last
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= MIN_INTERVAL)
        {
            self.publish(main);
        }
        self.board.latest()
    }

    /// After a reload: name rules after `cfg` from now on.
    pub fn set_config(&mut self, cfg: &Config) {
        self.cfg.clone_from(cfg);
    }

    /// Collect and post now.
    pub fn publish(&mut self, main: &MainCounters) {
        let now = Instant::now();
        let snapshots: Vec<Snapshot> = self
            .workers
            .iter()
            .map(|s| {
                s.snapshot
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .collect();
        let readings: Vec<PortReading<'_>> = self
            .ports
            .iter()
            .map(|p| PortReading {
                name: &p.name,
                device: &p.device,
                driver: &p.driver,
                pool: p.pool.name(),
                stats: p.port.stats().ok(),
                xstats: p.port.xstats().unwrap_or_default(),
                free: p.pool.avail(),
                size: p.pool.size(),
            })
            .collect();
        let previous = self.last.as_ref().map(|(_, polls)| polls.as_slice());
        let stats = assemble(&Inputs {
            cfg: &self.cfg,
            lcores: self.lcores,
            snapshots: &snapshots,
            previous,
            readings: &readings,
            main,
            uptime: now.duration_since(self.started),
            hz: self.hz,
        });
        self.last = Some((now, snapshots.iter().map(|s| s.polls).collect()));
        self.board.post(stats);
    }
}

/// Everything a [`Stats`] is made of.
struct Inputs<'a> {
    cfg: &'a Config,
    lcores: &'a [u32],
    snapshots: &'a [Snapshot],
    /// Each worker's polls at the previous collection, if there was one.
    previous: Option<&'a [super::worker::Polls]>,
    readings: &'a [PortReading<'a>],
    main: &'a MainCounters,
    uptime: Duration,
    hz: u64,
}

/// Sum and label what was collected.
fn assemble(i: &Inputs<'_>) -> Stats {
    let rules = &i.cfg.rules;
    let port_names: Vec<&str> = i.cfg.ports.iter().map(|p| p.name.as_str()).collect();
    let mut total = Counters::default();
    let mut hits = vec![0u64; rules.len() + 1];
    let mut table = (0u64, 0u64);
    let mut by_class = [0u64; ctfw_engine::table::EntryClass::COUNT];
    let mut decided: Vec<PortVerdicts> = port_names
        .iter()
        .map(|&n| PortVerdicts {
            port: n.to_owned(),
            ..PortVerdicts::default()
        })
        .collect();
    let mut workers = Vec::new();
    for (w, s) in i.snapshots.iter().enumerate() {
        total.merge(&s.counters);
        // One count per rule and the default policy's, even before the worker's first
        // publication.
        let mut own = vec![0u64; rules.len() + 1];
        for (a, b) in own.iter_mut().zip(&s.rule_hits) {
            *a = *b;
        }
        for (a, b) in hits.iter_mut().zip(&own) {
            *a += b;
        }
        table.0 += s.entries as u64;
        table.1 += s.capacity as u64;
        for (t, &n) in by_class.iter_mut().zip(&s.by_class) {
            *t += u64::from(n);
        }
        let ports: Vec<PortVerdicts> = port_names
            .iter()
            .zip(&s.by_port)
            .map(|(&n, v)| PortVerdicts {
                port: n.to_owned(),
                accepted_packets: v.accepted_packets,
                accepted_bytes: v.accepted_bytes,
                dropped_packets: v.dropped_packets,
                dropped_bytes: v.dropped_bytes,
            })
            .collect();
        for (sum, v) in decided.iter_mut().zip(&ports) {
            sum.add(v);
        }
        let p = &s.polls;
        let before = i
            .previous
            .and_then(|prev| prev.get(w))
            .copied()
            .unwrap_or_default();
        let seconds = |cycles: u64| cycles as f64 / i.hz as f64;
        let io = &s.io;
        workers.push(Worker {
            worker: w as u32,
            lcore: i.lcores.get(w).copied().unwrap_or(u32::MAX),
            counters: (&s.counters).into(),
            rule_hits: json::RuleHits::new(rules, &own),
            table: Table::new(
                s.entries as u64,
                s.capacity as u64,
                &s.by_class.map(u64::from),
            ),
            ports,
            io: WorkerIo {
                received_from_ports: io.rx_port,
                received_from_ring: io.rx_ring,
                transmitted_to_ports: io.tx_port,
                transmitted_to_rings: io.tx_ring,
                tx_dropped: io.tx_dropped,
                icmp_errors_redispatched: io.redispatched,
                icmp_errors_redispatch_dropped: io.redispatch_dropped,
            },
            polls: Polls {
                busy: p.busy,
                idle: p.idle,
                busy_seconds: seconds(p.busy_cycles),
                idle_seconds: seconds(p.idle_cycles),
                busy_ratio: stats::ratio(
                    p.busy_cycles.saturating_sub(before.busy_cycles) as f64,
                    (p.busy_cycles + p.idle_cycles)
                        .saturating_sub(before.busy_cycles + before.idle_cycles)
                        as f64,
                ),
            },
        });
    }
    let ports = i
        .readings
        .iter()
        .zip(decided)
        .map(|(r, decided)| Port {
            name: r.name.to_owned(),
            device: r.device.to_owned(),
            driver: r.driver.to_owned(),
            decided,
            stats: r.stats.as_ref().map(DeviceStats::from),
            xstats: r.xstats.iter().cloned().collect(),
            mempool: Mempool {
                name: r.pool.to_owned(),
                size: r.size,
                free: r.free,
                in_use: r.size.saturating_sub(r.free),
            },
        })
        .collect();
    let m = i.main;
    Stats {
        uptime_seconds: i.uptime.as_secs_f64(),
        counters: (&total).into(),
        rule_hits: json::RuleHits::new(rules, &hits),
        table: Table::new(table.0, table.1, &by_class),
        workers,
        ports,
        main: Main {
            distributor_received: m.rx,
            distributor_ring_full_dropped: m.ring_dropped,
            transmitted: m.tx,
            tx_dropped: m.tx_dropped,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::worker::{IoCounters, Polls as WorkerPolls, PortVerdicts as Tally};

    const CONFIG: &str = "ports:
  - {name: inside, device: net_null0, peer: outside}
  - {name: outside, device: net_null1, peer: inside}
rules:
  - {name: established, ct_state: [established], action: accept}
  - {name: outbound, ct_state: [new], in_port: inside, action: accept}
";

    fn snapshot(packets: u64, busy: u64, idle: u64) -> Snapshot {
        let mut counters = Counters {
            packets,
            accepted: packets - 1,
            dropped: 1,
            ..Counters::default()
        };
        counters.count(ctfw_engine::Reason::DefaultPolicy);
        Snapshot {
            counters,
            rule_hits: vec![packets - 2, 1, 1],
            entries: 3,
            capacity: 1024,
            by_class: {
                let mut c = [0; ctfw_engine::table::EntryClass::COUNT];
                c[3] = 2; // ESTABLISHED
                c[10] = 1; // UDP
                c
            },
            io: IoCounters {
                rx_port: packets,
                ..IoCounters::default()
            },
            by_port: vec![
                Tally {
                    accepted_packets: packets - 1,
                    accepted_bytes: 100 * (packets - 1),
                    dropped_packets: 1,
                    dropped_bytes: 100,
                    ..Tally::default()
                },
                Tally::default(),
            ],
            polls: WorkerPolls {
                busy: 10,
                idle: 90,
                busy_cycles: busy,
                idle_cycles: idle,
            },
        }
    }

    #[test]
    fn workers_are_summed_and_labelled() {
        let cfg = Config::from_str(CONFIG, "test.yaml").expect("config");
        let snapshots = [snapshot(10, 1_000, 3_000), snapshot(20, 4_000, 4_000)];
        let previous = [WorkerPolls::default(), snapshot(2, 2_000, 2_000).polls];
        let readings = [
            PortReading {
                name: "inside",
                device: "net_null0",
                driver: "net_null",
                pool: "ctfw_p0",
                stats: Some(rte::PortStats {
                    ipackets: 30,
                    ..rte::PortStats::default()
                }),
                xstats: vec![("rx_good_packets".into(), 30)],
                free: 8000,
                size: 8191,
            },
            PortReading {
                name: "outside",
                device: "net_null1",
                driver: "net_null",
                pool: "ctfw_p1",
                stats: None,
                xstats: Vec::new(),
                free: 8191,
                size: 8191,
            },
        ];
        let main = MainCounters::default();
        let s = assemble(&Inputs {
            cfg: &cfg,
            lcores: &[1, 2],
            snapshots: &snapshots,
            previous: Some(&previous),
            readings: &readings,
            main: &main,
            uptime: Duration::from_millis(2500),
            hz: 1_000,
        });
        assert_eq!(s.counters.packets, 30);
        assert_eq!(s.counters.dropped_by_reason["default_policy"], 2);
        assert_eq!(s.rule_hits.rules[0].rule, "established");
        assert_eq!(s.rule_hits.rules[0].packets, 8 + 18);
        assert_eq!(s.rule_hits.default_policy, 2);
        let mut by_class = [0u64; ctfw_engine::table::EntryClass::COUNT];
        (by_class[3], by_class[10]) = (4, 2);
        assert_eq!(s.table, Table::new(6, 2048, &by_class));
        let established = s.table.by_state.iter().find(|c| c.state == "ESTABLISHED");
        assert_eq!(established.map(|c| c.entries), Some(4));
        assert_eq!(s.workers[1].lcore, 2);
        assert_eq!(s.workers[1].ports[0].port, "inside");
        assert_eq!(s.workers[1].io.received_from_ports, 20);
        // Worker 0: 1000 of 4000 cycles busy since the start; worker 1: 2000 of 4000 since
        // the previous collection.
        assert_eq!(s.workers[0].polls.busy_ratio, 0.25);
        assert_eq!(s.workers[1].polls.busy_ratio, 0.5);
        assert_eq!(s.workers[1].polls.busy_seconds, 4.0);
        assert_eq!(s.ports[0].decided.accepted_packets, 9 + 19);
        assert_eq!(s.ports[0].decided.dropped_bytes, 200);
        assert_eq!(s.ports[0].stats.map(|d| d.rx_packets), Some(30));
        assert_eq!(s.ports[0].xstats["rx_good_packets"], 30);
        assert_eq!(s.ports[0].mempool.in_use, 191);
        assert_eq!(s.ports[1].stats, None);
        assert_eq!(s.ports[1].decided.port, "outside");
        assert_eq!(s.uptime_seconds, 2.5);
    }

    #[test]
    fn a_worker_that_never_published_still_lists_every_rule() {
        let cfg = Config::from_str(CONFIG, "test.yaml").expect("config");
        let s = assemble(&Inputs {
            cfg: &cfg,
            lcores: &[1],
            snapshots: &[Snapshot::default()],
            previous: None,
            readings: &[],
            main: &MainCounters::default(),
            uptime: Duration::ZERO,
            hz: 1,
        });
        assert_eq!(s.workers[0].rule_hits.rules.len(), 2);
        assert_eq!(s.workers[0].polls.busy_ratio, 0.0);
        assert_eq!(s.table.fill, 0.0);
    }
}
