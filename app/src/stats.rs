//! Live statistics of a running `ctfw run`: one [`Stats`] value, its JSON form and its human
//! form ([`render`]), and the [`Board`] it is posted on.
//!
//! Who touches what: each worker copies its counters into its own snapshot every ~100 ms
//! (`run::worker`); the main lcore collects those snapshots, the ports' DPDK counters and
//! extended counters and the packet pools' fill into a `Stats` about once a second, and soon
//! after a reader asks for a fresh one (`run::publish`), and posts it on the board. Readers
//! (the control socket's `stats` command, the `/metrics` endpoint of [`crate::metrics`]) take
//! the latest `Arc<Stats>` from the board. So a reader never reaches a worker, and the main
//! lcore never waits for a reader longer than a pointer swap.
//!
//! The JSON form (serde, both ways) is what the control socket answers and `ctfw stats -o
//! json` prints: its field names are stable, scripts and tests read them. Counters are
//! integers that only grow while the process runs; `_seconds`, `fill` and `busy_ratio` are
//! floating point. The engine's counters and rule hits have the same form as in the final
//! report (`--report-json`, [`crate::json`]). The human form may change freely.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::json;

/// The data plane at one moment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Seconds from the workers' start to this snapshot.
    pub uptime_seconds: f64,
    /// The engine's counters, summed over the workers.
    pub counters: json::Counters,
    /// Packets decided per rule and by the default policy, summed over the workers.
    pub rule_hits: json::RuleHits,
    /// The connection tables, summed over the workers.
    pub table: Table,
    /// Each worker, by index.
    pub workers: Vec<Worker>,
    /// Each port, in configuration order.
    pub ports: Vec<Port>,
    /// The main lcore's packet duties.
    pub main: Main,
}

/// Connection table fill.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Table {
    /// Entries in use.
    pub entries: u64,
    /// Entries it can hold.
    pub capacity: u64,
    /// `entries / capacity` (0 when there is no table).
    pub fill: f64,
    /// Entries by protocol and TCP state, every class listed (zeros included).
    #[serde(default)]
    pub by_state: Vec<StateCount>,
}

/// Entries of one protocol (and, for TCP, one state).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StateCount {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `gre` or `other`.
    pub proto: String,
    /// The TCP state (`ESTABLISHED`, ...); empty for the other protocols.
    pub state: String,
    /// Entries in it.
    pub entries: u64,
}

impl Table {
    /// A table holding `entries` of `capacity`, `by_class` of them per
    /// [`EntryClass`](ctfw_engine::table::EntryClass) (indexed by its `index`).
    pub fn new(entries: u64, capacity: u64, by_class: &[u64]) -> Table {
        use ctfw_engine::table::EntryClass;
        Table {
            entries,
            capacity,
            fill: ratio(entries as f64, capacity as f64),
            by_state: EntryClass::all()
                .map(|c| StateCount {
                    proto: c.proto().to_owned(),
                    state: c.state().to_owned(),
                    entries: by_class.get(c.index()).copied().unwrap_or(0),
                })
                .collect(),
        }
    }
}

/// One worker: an lcore with its own engine and table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Worker {
    /// Worker index (0-based).
    pub worker: u32,
    /// The lcore it runs on.
    pub lcore: u32,
    /// Its engine's counters.
    pub counters: json::Counters,
    /// Packets its engine decided per rule and by the default policy.
    pub rule_hits: json::RuleHits,
    /// Its connection table.
    pub table: Table,
    /// Packets its engine decided, by ingress port (in configuration order).
    pub ports: Vec<PortVerdicts>,
    /// Packets around its engine.
    pub io: WorkerIo,
    /// Busy and idle rounds.
    pub polls: Polls,
}

/// Packets and bytes the engine decided for one ingress port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PortVerdicts {
    /// The port's name.
    pub port: String,
    /// Packets forwarded.
    pub accepted_packets: u64,
    /// Their bytes (frame lengths).
    pub accepted_bytes: u64,
    /// Packets dropped.
    pub dropped_packets: u64,
    /// Their bytes (frame lengths).
    pub dropped_bytes: u64,
}

impl PortVerdicts {
    /// Add `other`'s counts to these.
    pub fn add(&mut self, other: &PortVerdicts) {
        self.accepted_packets += other.accepted_packets;
        self.accepted_bytes += other.accepted_bytes;
        self.dropped_packets += other.dropped_packets;
        self.dropped_bytes += other.dropped_bytes;
    }
}

/// A worker's packets around its engine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerIo {
    /// Received from its RX queues.
    pub received_from_ports: u64,
    /// Taken from its input ring (the distributor's, and ICMP errors other workers handed
    /// over).
    pub received_from_ring: u64,
    /// Handed to its own TX queues.
    pub transmitted_to_ports: u64,
    /// Put in shared TX rings (the main lcore transmits them).
    pub transmitted_to_rings: u64,
    /// Accepted, but the device (or a full TX buffer) would not take them: freed.
    pub tx_dropped: u64,
    /// ICMP errors handed to the worker that owns the flow they quote.
    pub icmp_errors_redispatched: u64,
    /// ICMP errors freed because that worker's ring was full.
    pub icmp_errors_redispatch_dropped: u64,
}

/// How a worker's rounds went: busy (it received packets or had some waiting for TX) or
/// idle (it polled and found nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Polls {
    /// Busy rounds.
    pub busy: u64,
    /// Idle rounds.
    pub idle: u64,
    /// Time spent in busy rounds.
    pub busy_seconds: f64,
    /// Time spent in idle rounds.
    pub idle_seconds: f64,
    /// Share of the time spent in busy rounds since the previous snapshot (0 to 1): how
    /// loaded the worker is now.
    pub busy_ratio: f64,
}

/// One port.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Port {
    /// Its name in the configuration.
    pub name: String,
    /// Its DPDK device (devargs included).
    pub device: String,
    /// The driver's name.
    pub driver: String,
    /// Packets received on it that the engine decided, summed over the workers.
    pub decided: PortVerdicts,
    /// The device's basic counters; `null` if it could not give them.
    pub stats: Option<DeviceStats>,
    /// The device's extended counters by name; empty if it could not give them.
    pub xstats: BTreeMap<String, u64>,
    /// Its packet pool.
    pub mempool: Mempool,
}

/// A port's basic device counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Dropped by the device: RX queue full.
    pub rx_missed: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// RX failed for want of an mbuf.
    pub rx_nombuf: u64,
}

impl From<&rte::PortStats> for DeviceStats {
    fn from(s: &rte::PortStats) -> DeviceStats {
        DeviceStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }
}

/// A port's packet pool.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mempool {
    /// The pool's name.
    pub name: String,
    /// Mbufs it holds.
    pub size: u32,
    /// Mbufs free in it (per-lcore caches included).
    pub free: u32,
    /// Mbufs out of it: in device queues, rings, workers' buffers.
    pub in_use: u32,
}

/// The main lcore's packet duties.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Main {
    /// Received by the software distributor.
    pub distributor_received: u64,
    /// Received by the distributor and freed because the owner's ring was full.
    pub distributor_ring_full_dropped: u64,
    /// Transmitted from the shared TX rings.
    pub transmitted: u64,
    /// From the shared TX rings, but the device would not take them: freed.
    pub tx_dropped: u64,
}

/// `part / whole`, or 0 when `whole` is 0.
pub fn ratio(part: f64, whole: f64) -> f64 {
    if whole > 0.0 { part / whole } else { 0.0 }
}

/// Where the main lcore posts the latest [`Stats`] and readers take it.
///
/// The lock guards a pointer and a generation number only: posting swaps the pointer,
/// reading clones it, and a reader formats its copy after letting go.
#[derive(Debug, Default)]
pub struct Board {
    current: Mutex<Current>,
    /// Signalled on each post.
    posted: Condvar,
    /// A reader asked for a fresh snapshot; the main lcore clears it when it posts.
    wanted: AtomicBool,
}

#[derive(Debug, Default)]
struct Current {
    stats: Arc<Stats>,
    /// Posts so far.
    generation: u64,
}

impl Board {
    /// A board holding empty statistics until the first post.
    pub fn new() -> Board {
        Board::default()
    }

    /// The latest statistics (at most about a second old while the data plane runs).
    pub fn latest(&self) -> Arc<Stats> {
        Arc::clone(&self.lock().stats)
    }

    /// Statistics collected after this call: asks the main lcore for a snapshot and waits
    /// for it, at most `timeout`; then (or if the main lcore is gone) the latest. The
    /// workers' parts are as of their last publication (every ~100 ms).
    pub fn fresh(&self, timeout: Duration) -> Arc<Stats> {
        let current = self.lock();
        let asked_at = current.generation;
        self.wanted.store(true, Ordering::Relaxed);
        let (current, _) = self
            .posted
            .wait_timeout_while(current, timeout, |c| c.generation == asked_at)
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&current.stats)
    }

    /// Whether a reader is waiting for a fresh snapshot.
    pub fn wanted(&self) -> bool {
        self.wanted.load(Ordering::Relaxed)
    }

    /// Post `stats` as the latest, and wake the readers waiting for it.
    pub fn post(&self, stats: Stats) {
        let stats = Arc::new(stats);
        let old = {
            let mut current = self.lock();
            current.generation += 1;
            self.wanted.store(false, Ordering::Relaxed);
            std::mem::replace(&mut current.stats, stats)
        };
        self.posted.notify_all();
        // The previous snapshot is freed here, outside the lock (unless a reader holds it).
        drop(old);
    }

    fn lock(&self) -> MutexGuard<'_, Current> {
        // Nothing can be left half-done under this lock: a poisoned one is still consistent.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The human form of `stats`, for `ctfw stats`: totals, then each worker, each port and the
/// main lcore. Reasons, rule hits and extended counters are listed when not zero.
pub fn render(stats: &Stats) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_stats(&mut out, stats);
    out
}

fn write_stats(out: &mut String, s: &Stats) -> std::fmt::Result {
    let c = &s.counters;
    writeln!(
        out,
        "ctfw stats: up {:.1} s, {} worker(s), {} port(s)",
        s.uptime_seconds,
        s.workers.len(),
        s.ports.len()
    )?;
    writeln!(
        out,
        "  packets {}  accepted {}  dropped {}  bytes {}",
        c.packets, c.accepted, c.dropped, c.bytes
    )?;
    let conn = &c.connections;
    writeln!(
        out,
        "  connections: {} created, {} expired, {} closed, {} evicted ({} closing ASSURED); {} in the tables of {} ({:.1}% full)",
        conn.created,
        conn.expired,
        conn.closed,
        conn.evicted + conn.evicted_closing,
        conn.evicted_closing,
        s.table.entries,
        s.table.capacity,
        s.table.fill * 100.0
    )?;
    let by_state: Vec<String> = s
        .table
        .by_state
        .iter()
        .filter(|c| c.entries > 0)
        .map(|c| {
            if c.state.is_empty() {
                format!("{} {}", c.proto, c.entries)
            } else {
                format!("{} {} {}", c.proto, c.state, c.entries)
            }
        })
        .collect();
    if !by_state.is_empty() {
        writeln!(out, "  entries by state: {}", by_state.join(", "))?;
    }
    writeln!(
        out,
        "  deleted by operators {}; sweeper examined {} slots; events lost {}; log records {} written, {} suppressed",
        conn.deleted, c.sweep_examined, c.events_lost, c.logged, c.log_suppressed
    )?;
    write_reasons(out, "dropped by reason:", &c.dropped_by_reason)?;
    write_reasons(
        out,
        "invalid by reason (the rules then decided):",
        &c.invalid_by_reason,
    )?;
    write_reasons(
        out,
        "ignored by tracking, by reason (connection not updated; the rules then decided):",
        &c.ignored_by_reason,
    )?;
    let hits = &s.rule_hits;
    if !hits.rules.is_empty() || hits.default_policy > 0 {
        writeln!(out, "  rule hits:")?;
        for h in &hits.rules {
            writeln!(out, "    {:<28} {}", h.rule, h.packets)?;
        }
        writeln!(
            out,
            "    {:<28} {}",
            "(default policy)", hits.default_policy
        )?;
    }
    for w in &s.workers {
        let (c, t, p, io) = (&w.counters, &w.table, &w.polls, &w.io);
        writeln!(
            out,
            "  worker {} (lcore {}): packets {} accepted {} dropped {}; table {} of {} ({:.1}%), {} evicted, {} table-full drops",
            w.worker,
            w.lcore,
            c.packets,
            c.accepted,
            c.dropped,
            t.entries,
            t.capacity,
            t.fill * 100.0,
            c.connections.evicted + c.connections.evicted_closing,
            c.dropped_by_reason.get("table_full").copied().unwrap_or(0)
        )?;
        writeln!(
            out,
            "    busy {:.1}% now; rounds {} busy ({:.1} s), {} idle ({:.1} s)",
            p.busy_ratio * 100.0,
            p.busy,
            p.busy_seconds,
            p.idle,
            p.idle_seconds
        )?;
        writeln!(
            out,
            "    rx {} from ports, {} from its ring; tx {} to ports, {} to shared rings, {} dropped; ICMP errors re-dispatched {}, dropped {}",
            io.received_from_ports,
            io.received_from_ring,
            io.transmitted_to_ports,
            io.transmitted_to_rings,
            io.tx_dropped,
            io.icmp_errors_redispatched,
            io.icmp_errors_redispatch_dropped
        )?;
    }
    for p in &s.ports {
        let d = &p.decided;
        writeln!(
            out,
            "  port {} (driver {}): decided {} accepted ({} bytes), {} dropped ({} bytes)",
            p.name,
            p.driver,
            d.accepted_packets,
            d.accepted_bytes,
            d.dropped_packets,
            d.dropped_bytes
        )?;
        match &p.stats {
            Some(st) => writeln!(
                out,
                "    device: rx {} ({} bytes) tx {} ({} bytes) missed {} rx errors {} tx errors {} no-mbuf {}",
                st.rx_packets,
                st.rx_bytes,
                st.tx_packets,
                st.tx_bytes,
                st.rx_missed,
                st.rx_errors,
                st.tx_errors,
                st.rx_nombuf
            )?,
            None => writeln!(out, "    device: no statistics")?,
        }
        let m = &p.mempool;
        writeln!(
            out,
            "    mempool {}: {} of {} mbufs in use",
            m.name, m.in_use, m.size
        )?;
        let nonzero: Vec<String> = p
            .xstats
            .iter()
            .filter(|&(_, &v)| v != 0)
            .map(|(n, v)| format!("{n} {v}"))
            .collect();
        if !nonzero.is_empty() {
            writeln!(out, "    xstats (non-zero): {}", nonzero.join(", "))?;
        }
    }
    let m = &s.main;
    writeln!(
        out,
        "  main lcore: distributor received {}, {} dropped on full rings; transmitted {} from shared TX rings, {} dropped",
        m.distributor_received, m.distributor_ring_full_dropped, m.transmitted, m.tx_dropped
    )
}

fn write_reasons(out: &mut String, title: &str, by: &BTreeMap<String, u64>) -> std::fmt::Result {
    if by.values().all(|&n| n == 0) {
        return Ok(());
    }
    writeln!(out, "  {title}")?;
    for (reason, n) in by.iter().filter(|&(_, &n)| n != 0) {
        writeln!(out, "    {reason:<28} {n}")?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A snapshot with something in every part.
    pub(crate) fn sample() -> Stats {
        let mut engine = ctfw_engine::Counters {
            packets: 21,
            bytes: 2100,
            accepted: 19,
            dropped: 2,
            created: 5,
            ..Default::default()
        };
        engine.count(ctfw_engine::Reason::RuleDrop);
        engine.count(ctfw_engine::Reason::TcpBadFlags);
        engine.count_ignored(ctfw_engine::Ignored::TcpAckUnderWindow);
        let counters = json::Counters::from(&engine);
        let rule_hits = json::RuleHits {
            rules: vec![json::RuleHit {
                rule: "established".into(),
                packets: 12,
            }],
            default_policy: 1,
        };
        let decided = PortVerdicts {
            port: "inside".into(),
            accepted_packets: 10,
            accepted_bytes: 1000,
            dropped_packets: 1,
            dropped_bytes: 100,
        };
        Stats {
            uptime_seconds: 3.25,
            counters: counters.clone(),
            rule_hits: rule_hits.clone(),
            table: Table::new(4, 1024, &[]),
            workers: vec![Worker {
                worker: 0,
                lcore: 1,
                counters,
                rule_hits,
                table: Table::new(4, 1024, &[]),
                ports: vec![decided.clone()],
                io: WorkerIo {
                    received_from_ports: 21,
                    ..Default::default()
                },
                polls: Polls {
                    busy: 3,
                    idle: 997,
                    busy_seconds: 0.5,
                    idle_seconds: 2.5,
                    busy_ratio: 0.25,
                },
            }],
            ports: vec![Port {
                name: "inside".into(),
                device: "net_null0".into(),
                driver: "net_null".into(),
                decided,
                stats: Some(DeviceStats {
                    rx_packets: 11,
                    ..Default::default()
                }),
                xstats: [("rx_good_packets".to_owned(), 11), ("rx_errors".into(), 0)].into(),
                mempool: Mempool {
                    name: "ctfw_p0".into(),
                    size: 8191,
                    free: 8000,
                    in_use: 191,
                },
            }],
            main: Main::default(),
        }
    }

    #[test]
    fn the_json_form_reads_back_and_keeps_its_names() {
        let s = sample();
        let text = serde_json::to_string(&s).expect("serialize");
        let back: Stats = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, s);
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        assert_eq!(v["counters"]["dropped_by_reason"]["rule_drop"], 1);
        assert_eq!(v["counters"]["invalid_by_reason"]["tcp_bad_flags"], 1);
        assert_eq!(
            v["counters"]["ignored_by_reason"]["tcp_ack_under_window"],
            1
        );
        assert_eq!(v["counters"]["ignored_by_reason"]["tcp_unexpected_syn"], 0);
        assert_eq!(v["workers"][0]["polls"]["busy_ratio"], 0.25);
        assert_eq!(v["workers"][0]["table"]["capacity"], 1024);
        assert_eq!(v["ports"][0]["xstats"]["rx_good_packets"], 11);
        assert_eq!(v["ports"][0]["mempool"]["in_use"], 191);
        assert_eq!(v["ports"][0]["decided"]["accepted_bytes"], 1000);
    }

    #[test]
    fn the_human_form_lists_what_is_not_zero() {
        let text = render(&sample());
        for want in [
            "packets 21  accepted 19  dropped 2",
            "rule_drop",
            "tcp_bad_flags",
            "ignored by tracking",
            "tcp_ack_under_window",
            "established",
            "(default policy)",
            "worker 0 (lcore 1)",
            "busy 25.0% now",
            "port inside (driver net_null)",
            "mempool ctfw_p0: 191 of 8191 mbufs in use",
            "xstats (non-zero): rx_good_packets 11",
        ] {
            assert!(text.contains(want), "{want:?} missing from:\n{text}");
        }
        assert!(!text.contains("rx_errors"), "{text}");
        assert!(!text.contains("table_full "), "{text}");
    }

    #[test]
    fn fresh_waits_for_the_next_post_and_latest_does_not() {
        let board = Arc::new(Board::new());
        assert_eq!(*board.latest(), Stats::default());
        // Nobody posts: `fresh` gives up after its timeout with what there is.
        assert_eq!(board.fresh(Duration::from_millis(10)).uptime_seconds, 0.0);
        assert!(board.wanted());
        board.post(Stats::default()); // clears `wanted`
        assert!(!board.wanted());
        let poster = {
            let board = Arc::clone(&board);
            std::thread::spawn(move || {
                while !board.wanted() {
                    std::thread::yield_now();
                }
                board.post(Stats {
                    uptime_seconds: 1.0,
                    ..Stats::default()
                });
            })
        };
        let got = board.fresh(Duration::from_secs(30));
        assert_eq!(got.uptime_seconds, 1.0);
        assert!(!board.wanted());
        poster.join().expect("poster");
    }
}
