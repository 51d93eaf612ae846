//! The main lcore: the control loop (signals, idle exit, periodic counters, the live
//! statistics of [`super::publish`], the control socket's commands: [`Service`]) and, when a
//! device needs it, the software distributor and the transmitter for shared TX rings.
//!
//! The control work runs every millisecond, or every [`BUSY_POLL`] while commands are in
//! progress (a listing's next chunk waits for it); between two, the loop distributes and
//! transmits, or sleeps if it has no packet duties (and only yields while commands are in
//! progress).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use ctfw_engine::rss::Dispatch;
use rte::{Mbuf, MbufBurst, Ring, RxQueue, TxQueue};

use super::args::Args;
use super::csum_watch::ChecksumWatch;
use super::ports::PortSetup;
use super::publish::Publisher;
use super::report;
use super::rings::Rings;
use super::service::Service;
use super::worker::{Shared, TX_RETRIES, TX_STALL};
use crate::MAX_BURST;

/// The control loop's period while control commands are in progress.
const BUSY_POLL: Duration = Duration::from_micros(50);

/// Why the control loop ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// SIGINT or SIGTERM.
    Signal,
    /// `--idle-exit`: no packet received for this many seconds.
    Idle(f64),
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Signal => f.write_str("signal"),
            Stop::Idle(s) => write!(f, "no packet for {s} s (--idle-exit)"),
        }
    }
}

/// A shared TX ring and the device queue the main lcore drains it into.
struct SharedTx {
    ring: Ring,
    queue: TxQueue,
    /// Taken from the ring, refused by the device so far: offered again first.
    pending: MbufBurst<MAX_BURST>,
    /// Since when the device has taken nothing while packets waited.
    blocked_since: Option<std::time::Instant>,
}

/// The main lcore's packet duties and counters.
pub struct MainIo {
    /// The RX queues it distributes, with their port's id.
    dist: Vec<(RxQueue, u16)>,
    tx_queues: Vec<SharedTx>,
    /// Packets taken from a shared TX ring per device burst.
    burst: usize,
    rings: Vec<Ring>,
    /// Per-worker staging for one distributed burst (allocated once, here).
    stage: Vec<MbufBurst<MAX_BURST>>,
    /// Which worker gets each distributed packet.
    dispatch: Dispatch,
    /// What it counted.
    pub counters: MainCounters,
    csum_watch: ChecksumWatch,
}

/// The main lcore's packet counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct MainCounters {
    /// Packets the distributor received.
    pub rx: u64,
    /// Packets transmitted from the shared TX rings.
    pub tx: u64,
    /// Packets from the shared TX rings freed because the device took nothing for
    /// [`TX_STALL`], or still refused at the end.
    pub tx_dropped: u64,
    /// Packets the distributor received and freed because the owner's ring was full.
    pub ring_dropped: u64,
}

impl MainIo {
    pub fn new(
        ports: &[PortSetup],
        rings: &Rings,
        dispatch: Dispatch,
        burst: u16,
    ) -> Result<MainIo> {
        let mut dist = Vec::new();
        let mut tx = Vec::new();
        for (i, p) in ports.iter().enumerate() {
            for q in p.plan.distributor_rx() {
                dist.push((p.port.rx_queue(q)?, p.port.id()));
            }
            if let Some(r) = &rings.tx[i] {
                tx.push(SharedTx {
                    ring: r.clone(),
                    queue: p.port.tx_queue(0)?,
                    pending: MbufBurst::default(),
                    blocked_since: None,
                });
            }
        }
        Ok(MainIo {
            dist,
            tx_queues: tx,
            burst: usize::from(burst).clamp(1, MAX_BURST),
            rings: rings.workers.clone(),
            stage: rings.workers.iter().map(|_| MbufBurst::default()).collect(),
            dispatch,
            counters: MainCounters::default(),
            csum_watch: ChecksumWatch::new(ports, std::time::Instant::now()),
        })
    }

    /// Distribute, transmit, keep the live statistics up to date, and watch for the end.
    /// Returns why it stopped.
    pub fn run(
        &mut self,
        term: &AtomicBool,
        args: &Args,
        shared: &[Arc<Shared>],
        started: std::time::Instant,
        publisher: &mut Publisher<'_>,
        service: &mut Service,
    ) -> Stop {
        let busy = !self.dist.is_empty() || !self.tx_queues.is_empty();
        let hz = rte::tsc_hz();
        let mut last_check = rte::tsc();
        let mut last_activity = (0u64, std::time::Instant::now());
        let mut last_stats = std::time::Instant::now();
        loop {
            let commands = service.busy();
            let period = if commands {
                BUSY_POLL
            } else {
                Duration::from_millis(1)
            };
            if busy {
                self.distribute();
                self.transmit();
                let t = rte::tsc();
                if t.wrapping_sub(last_check) < hz / 1_000_000 * period.as_micros() as u64 {
                    continue;
                }
                last_check = t;
            } else if commands {
                // A chunk's round trip to a worker takes one poll: poll again at once.
                std::thread::yield_now();
            } else {
                std::thread::sleep(period);
            }
            service.poll(publisher, &self.counters);
            if term.load(Ordering::Relaxed) {
                return Stop::Signal;
            }
            publisher.tick(&self.counters);
            let activity = self.counters.rx
                + shared
                    .iter()
                    .map(|s| s.rx.load(Ordering::Relaxed))
                    .sum::<u64>();
            if activity != last_activity.0 {
                last_activity = (activity, std::time::Instant::now());
            } else if let Some(idle) = args.idle_exit {
                if last_activity.1.elapsed().as_secs_f64() >= idle {
                    return Stop::Idle(idle);
                }
            }
            self.csum_watch.poll(std::time::Instant::now(), shared);
            if args.stats_interval > 0.0
                && last_stats.elapsed().as_secs_f64() >= args.stats_interval
            {
                last_stats = std::time::Instant::now();
                report::print_progress(shared, service.config(), started);
            }
        }
    }

    /// One RX burst from every software-distributed port, each packet to its owner's ring.
    fn distribute(&mut self) {
        let mut rx: MbufBurst<MAX_BURST> = MbufBurst::default();
        // Back-pressure: take from a device only what every worker ring can still hold, so
        // an overloaded worker makes packets wait in (and, sustained, overflow) the device's
        // own RX queue, where the NIC counts them, instead of being dropped after receipt.
        for (q, port) in &mut self.dist {
            let room = self
                .rings
                .iter()
                .map(|r| r.capacity() - r.count())
                .min()
                .unwrap_or(0);
            if room == 0 || q.rx_burst_max(&mut rx, (room as usize).min(64)) == 0 {
                continue;
            }
            self.counters.rx += rx.len() as u64;
            for mut m in rx.drain() {
                // Workers read the ingress port from the mbuf, and not every driver sets it.
                m.set_port(*port);
                let owner = self.dispatch.owner(m.data()) as usize;
                if let Err(m) = self.stage[owner].push(m) {
                    self.counters.ring_dropped += 1;
                    drop::<Mbuf>(m);
                }
            }
            for (buf, ring) in self.stage.iter_mut().zip(&self.rings) {
                ring.enqueue_burst(buf);
                if !buf.is_empty() {
                    self.counters.ring_dropped += buf.len() as u64;
                    buf.clear();
                }
            }
        }
    }

    /// Drain the shared TX rings into their ports: a burst at a time, while the device takes
    /// whole bursts (at most [`TX_RETRIES`] per ring). What a device refuses waits in
    /// `pending` and no more is taken from its ring, which fills and holds the workers back
    /// (back-pressure; [`super::worker`]); only a device that has taken nothing for
    /// [`TX_STALL`] has what waits for it freed and counted as `tx_dropped`.
    pub fn transmit(&mut self) {
        for t in &mut self.tx_queues {
            let mut sent = 0;
            for _ in 0..TX_RETRIES {
                if t.pending.is_empty() && t.ring.dequeue_burst_max(&mut t.pending, self.burst) == 0
                {
                    break;
                }
                let n = t.queue.tx_burst(&mut t.pending);
                sent += n;
                if !t.pending.is_empty() {
                    break; // the device is full: offer the rest on the next call
                }
            }
            self.counters.tx += sent as u64;
            if sent > 0 || t.pending.is_empty() {
                t.blocked_since = None;
            } else {
                let since = *t.blocked_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= TX_STALL {
                    self.counters.tx_dropped += t.pending.len() as u64;
                    t.pending.clear();
                }
            }
        }
    }

    /// Whether packets wait in a shared TX ring or in what the main lcore took from one.
    pub fn tx_waiting(&self) -> bool {
        self.tx_queues
            .iter()
            .any(|t| t.ring.count() > 0 || !t.pending.is_empty())
    }

    /// After the workers stopped: transmit what is left in the TX rings (a device that takes
    /// nothing for [`TX_STALL`] has it dropped, so this ends).
    pub fn drain_tx(&mut self) {
        while self.tx_waiting() {
            self.transmit();
        }
    }
}
